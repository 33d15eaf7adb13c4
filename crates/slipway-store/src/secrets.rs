//! Encrypted secrets. Values go in sealed and come out only through [`Store::secret_values`].

use crate::{from_millis, now_millis, Store, StoreError};
use serde::Serialize;
use slipway_core::secret::SecretValue;
use slipway_core::ProjectId;
use time::OffsetDateTime;

/// A secret as anyone may see it: its name and dates, never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretMeta {
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct MetaRow {
    name: String,
    created_at: i64,
    updated_at: i64,
}

/// Whether a write made a new secret or replaced one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretWrite {
    Created,
    Updated,
}

/// One imported entry's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOutcome {
    pub name: String,
    pub write: SecretWrite,
}

fn associated_data(project: ProjectId, name: &str) -> Vec<u8> {
    format!("slipway:secret:v1:{project}:{name}").into_bytes()
}

#[derive(sqlx::FromRow)]
struct SealedRow {
    name: String,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl Store {
    pub async fn list_secrets(&self, project: ProjectId) -> Result<Vec<SecretMeta>, StoreError> {
        self.project(project).await?;
        let rows: Vec<MetaRow> = sqlx::query_as(
            "SELECT name, created_at, updated_at FROM secrets WHERE project_id = $1 ORDER BY name",
        )
        .bind(project.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| SecretMeta {
                name: r.name,
                created_at: from_millis(r.created_at),
                updated_at: from_millis(r.updated_at),
            })
            .collect())
    }

    /// Creates or replaces one secret.
    pub async fn put_secret(
        &self,
        project: ProjectId,
        name: &str,
        value: &SecretValue,
    ) -> Result<SecretWrite, StoreError> {
        let mut outcomes = self.put_secrets(project, &[(name, value)]).await?;
        Ok(outcomes.remove(0).write)
    }

    /// Creates or replaces several secrets in one transaction: all are written or none.
    pub async fn put_secrets(
        &self,
        project: ProjectId,
        entries: &[(&str, &SecretValue)],
    ) -> Result<Vec<ImportOutcome>, StoreError> {
        let (secrets, _) = self
            .put_secrets_and_variables(project, entries, &[])
            .await?;
        Ok(secrets)
    }

    /// Creates or replaces secrets and variables in one transaction: all are written or
    /// none. A name that is already the other kind is refused (`Conflict`).
    pub async fn put_secrets_and_variables(
        &self,
        project: ProjectId,
        secrets: &[(&str, &SecretValue)],
        variables: &[(&str, &str)],
    ) -> Result<(Vec<ImportOutcome>, Vec<ImportOutcome>), StoreError> {
        // Only writes in this transaction (see `append_logs`); a missing project shows as
        // a foreign-key violation.
        let mut tx = self.begin_write().await?;
        let now = now_millis();
        let mut written = Vec::with_capacity(secrets.len());
        for (name, value) in secrets {
            let write = self
                .write_secret(&mut tx, project, name, value, now)
                .await?;
            written.push(ImportOutcome {
                name: (*name).to_owned(),
                write,
            });
        }
        let mut variables_written = Vec::with_capacity(variables.len());
        for (name, value) in variables {
            let write =
                crate::variables::write_variable(&mut tx, project, name, value, now).await?;
            variables_written.push(ImportOutcome {
                name: (*name).to_owned(),
                write,
            });
        }
        tx.commit().await?;
        Ok((written, variables_written))
    }

    async fn write_secret(
        &self,
        tx: &mut sqlx::AnyConnection,
        project: ProjectId,
        name: &str,
        value: &SecretValue,
        now: i64,
    ) -> Result<SecretWrite, StoreError> {
        crate::variables::refuse_taken(&mut *tx, project, name, "variable").await?;
        let (nonce, ciphertext) = self
            .vault
            .seal(value.expose().as_bytes(), &associated_data(project, name));
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO secrets (project_id, name, nonce, ciphertext, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (project_id, name) DO NOTHING RETURNING 1",
        )
        .bind(project.0)
        .bind(name)
        .bind(&nonce)
        .bind(&ciphertext)
        .bind(now)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(crate::variables::missing_project)?;
        if inserted.is_some() {
            return Ok(SecretWrite::Created);
        }
        sqlx::query(
            "UPDATE secrets SET nonce = $1, ciphertext = $2, updated_at = $3
             WHERE project_id = $4 AND name = $5",
        )
        .bind(&nonce)
        .bind(&ciphertext)
        .bind(now)
        .bind(project.0)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        Ok(SecretWrite::Updated)
    }

    pub async fn delete_secret(&self, project: ProjectId, name: &str) -> Result<(), StoreError> {
        let deleted = sqlx::query("DELETE FROM secrets WHERE project_id = $1 AND name = $2")
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

    /// The decrypted values, for the sandbox's environment and the log masker only.
    pub async fn secret_values(
        &self,
        project: ProjectId,
    ) -> Result<Vec<(String, SecretValue)>, StoreError> {
        let rows: Vec<SealedRow> = sqlx::query_as(
            "SELECT name, nonce, ciphertext FROM secrets WHERE project_id = $1 ORDER BY name",
        )
        .bind(project.0)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let plain = self.vault.open(
                    &row.nonce,
                    &row.ciphertext,
                    &associated_data(project, &row.name),
                )?;
                let text = String::from_utf8(plain).map_err(|_| {
                    StoreError::Corrupt(format!("secret {} is not UTF-8", row.name))
                })?;
                let value = SecretValue::new(text)
                    .map_err(|e| StoreError::Corrupt(format!("secret {}: {e}", row.name)))?;
                Ok((row.name, value))
            })
            .collect()
    }
}
