//! A project's settings, kept as one JSON document of the core's `Settings` type.

use crate::{now_millis, Store, StoreError};
use slipway_core::{ProjectId, Settings};

impl Store {
    /// The project's settings; the defaults until they are first saved.
    pub async fn settings(&self, id: ProjectId) -> Result<Settings, StoreError> {
        self.project(id).await?;
        let document: Option<String> =
            sqlx::query_scalar("SELECT document FROM project_settings WHERE project_id = $1")
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await?;
        match document {
            Some(text) => {
                serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))
            }
            None => Ok(Settings::default()),
        }
    }

    /// Saves validated settings, replacing what was there.
    pub async fn put_settings(&self, id: ProjectId, settings: &Settings) -> Result<(), StoreError> {
        let document = serde_json::to_string(settings).expect("settings always serialize");
        let result = sqlx::query(
            "INSERT INTO project_settings (project_id, document, updated_at)
             SELECT id, $1, $2 FROM projects WHERE id = $3
             ON CONFLICT (project_id) DO UPDATE SET document = excluded.document,
                                                    updated_at = excluded.updated_at",
        )
        .bind(document)
        .bind(now_millis())
        .bind(id.0)
        .execute(&self.writer)
        .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
