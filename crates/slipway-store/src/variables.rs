//! Variables: plain configuration beside secrets, stored and shown as they are.

use crate::secrets::SecretWrite;
use crate::{from_millis, Store, StoreError};
use serde::Serialize;
use slipway_core::ProjectId;
use time::OffsetDateTime;

/// A variable, value included: variables are not secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Variable {
    pub name: String,
    pub value: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// One name is either a secret or a variable: the other kind with that name refuses a write.
pub(crate) async fn refuse_taken(
    tx: &mut sqlx::AnyConnection,
    project: ProjectId,
    name: &str,
    other: &str,
) -> Result<(), StoreError> {
    let (table, kind) = match other {
        "secret" => ("secrets", "secret"),
        _ => ("variables", "variable"),
    };
    let taken: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT 1 FROM {table} WHERE project_id = $1 AND name = $2"
    ))
    .bind(project.0)
    .bind(name)
    .fetch_optional(tx)
    .await?;
    match taken {
        Some(_) => Err(StoreError::Conflict(format!(
            "{name} is already a {kind} of this project; delete the {kind} first, or choose another name"
        ))),
        None => Ok(()),
    }
}

/// A foreign-key violation on insert: the project does not exist.
pub(crate) fn missing_project(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
        _ => StoreError::Database(e),
    }
}

pub(crate) async fn write_variable(
    tx: &mut sqlx::AnyConnection,
    project: ProjectId,
    name: &str,
    value: &str,
    now: i64,
) -> Result<SecretWrite, StoreError> {
    refuse_taken(&mut *tx, project, name, "secret").await?;
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO variables (project_id, name, value, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id, name) DO NOTHING RETURNING 1",
    )
    .bind(project.0)
    .bind(name)
    .bind(value)
    .bind(now)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await
    .map_err(missing_project)?;
    if inserted.is_some() {
        return Ok(SecretWrite::Created);
    }
    sqlx::query(
        "UPDATE variables SET value = $1, updated_at = $2 WHERE project_id = $3 AND name = $4",
    )
    .bind(value)
    .bind(now)
    .bind(project.0)
    .bind(name)
    .execute(&mut *tx)
    .await?;
    Ok(SecretWrite::Updated)
}

#[derive(sqlx::FromRow)]
struct VariableRow {
    name: String,
    value: String,
    created_at: i64,
    updated_at: i64,
}

impl Store {
    pub async fn list_variables(&self, project: ProjectId) -> Result<Vec<Variable>, StoreError> {
        self.project(project).await?;
        let rows: Vec<VariableRow> = sqlx::query_as(
            "SELECT name, value, created_at, updated_at FROM variables
             WHERE project_id = $1 ORDER BY name",
        )
        .bind(project.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Variable {
                name: r.name,
                value: r.value,
                created_at: from_millis(r.created_at),
                updated_at: from_millis(r.updated_at),
            })
            .collect())
    }

    /// Creates or replaces several variables in one transaction: all are written or none.
    /// A name that is a secret already is refused (`Conflict`).
    pub async fn put_variables(
        &self,
        project: ProjectId,
        entries: &[(&str, &str)],
    ) -> Result<Vec<SecretWrite>, StoreError> {
        let (_, variables) = self
            .put_secrets_and_variables(project, &[], entries)
            .await?;
        Ok(variables.into_iter().map(|outcome| outcome.write).collect())
    }

    pub async fn delete_variable(&self, project: ProjectId, name: &str) -> Result<(), StoreError> {
        let deleted = sqlx::query("DELETE FROM variables WHERE project_id = $1 AND name = $2")
            .bind(project.0)
            .bind(name)
            .execute(&self.writer)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// The variables as environment entries for a project's sandboxed commands.
    pub async fn variable_env(
        &self,
        project: ProjectId,
    ) -> Result<Vec<(String, String)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT name, value FROM variables WHERE project_id = $1 ORDER BY name")
                .bind(project.0)
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
