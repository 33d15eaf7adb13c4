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
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT name, created_at, updated_at FROM secrets WHERE project_id = ? ORDER BY name",
        )
        .bind(project.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, created, updated)| SecretMeta {
                name,
                created_at: from_millis(created),
                updated_at: from_millis(updated),
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
        // Only writes in this transaction (see `append_logs`); a missing project shows as
        // a foreign-key violation.
        let mut tx = self.writer.begin().await?;
        let now = now_millis();
        let mut outcomes = Vec::with_capacity(entries.len());
        for (name, value) in entries {
            crate::variables::refuse_taken(&mut tx, project, name, "variable").await?;
            let (nonce, ciphertext) = self
                .vault
                .seal(value.expose().as_bytes(), &associated_data(project, name));
            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO secrets (project_id, name, nonce, ciphertext, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, name) DO NOTHING RETURNING 1",
            )
            .bind(project.0)
            .bind(name)
            .bind(&nonce)
            .bind(&ciphertext)
            .bind(now)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
                _ => StoreError::Database(e),
            })?;
            if inserted.is_none() {
                sqlx::query(
                    "UPDATE secrets SET nonce = ?, ciphertext = ?, updated_at = ?
                     WHERE project_id = ? AND name = ?",
                )
                .bind(&nonce)
                .bind(&ciphertext)
                .bind(now)
                .bind(project.0)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            }
            outcomes.push(ImportOutcome {
                name: (*name).to_owned(),
                write: if inserted.is_some() {
                    SecretWrite::Created
                } else {
                    SecretWrite::Updated
                },
            });
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    pub async fn delete_secret(&self, project: ProjectId, name: &str) -> Result<(), StoreError> {
        let deleted = sqlx::query("DELETE FROM secrets WHERE project_id = ? AND name = ?")
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
            "SELECT name, nonce, ciphertext FROM secrets WHERE project_id = ? ORDER BY name",
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
