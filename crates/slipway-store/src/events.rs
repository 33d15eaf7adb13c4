//! Events for live subscribers, stored so that a client that reconnects can replay them.

use crate::{now_millis, Store, StoreError};
use slipway_core::ProjectId;

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: i64,
    pub project_id: ProjectId,
    pub kind: String,
    pub payload: serde_json::Value,
}

impl Store {
    /// Appends an event; returns its id (monotonically increasing).
    pub async fn emit_event(
        &self,
        project: ProjectId,
        kind: &str,
        payload: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO events (project_id, kind, payload, created_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(project.0)
        .bind(kind)
        .bind(payload.to_string())
        .bind(now_millis())
        .fetch_one(&self.writer)
        .await?)
    }

    /// A project's events after `after`, in order.
    pub async fn events_after(
        &self,
        project: ProjectId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let rows: Vec<(i64, i64, String, String)> = sqlx::query_as(
            "SELECT id, project_id, kind, payload FROM events
             WHERE project_id = ? AND id > ? ORDER BY id LIMIT ?",
        )
        .bind(project.0)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, project_id, kind, payload)| {
                Ok(Event {
                    id,
                    project_id: ProjectId(project_id),
                    kind,
                    payload: serde_json::from_str(&payload)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                })
            })
            .collect()
    }
}
