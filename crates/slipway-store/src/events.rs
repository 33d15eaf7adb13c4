//! Events for live subscribers (DESIGN.md §5): stored, numbered in order, and fanned out.
//! Each is inserted and then broadcast while one lock is held, so subscribers see them in
//! exactly their id order; a subscriber that falls behind replays from the table.

use crate::{now_millis, Store, StoreError};
use slipway_core::ProjectId;
use std::sync::Arc;
use tokio::sync::{broadcast, Mutex};

/// Live events a slow subscriber may fall behind by before it must replay from the table.
const LIVE_BUFFER: usize = 4_096;

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: i64,
    pub project_id: ProjectId,
    pub kind: String,
    pub payload: serde_json::Value,
}

impl Event {
    /// The message a subscriber gets, as JSON text.
    pub fn message_text(&self) -> String {
        self.message().to_string()
    }

    /// The message a subscriber gets: the payload with its `event_id` (and `type`).
    pub fn message(&self) -> serde_json::Value {
        let mut message = self.payload.clone();
        if let Some(object) = message.as_object_mut() {
            object.insert("event_id".into(), self.id.into());
            object
                .entry("type")
                .or_insert_with(|| self.kind.clone().into());
        }
        message
    }
}

/// A new event with its message text, serialized once for every subscriber.
#[derive(Debug)]
pub struct LiveEvent {
    pub event: Event,
    pub text: String,
}

impl From<Event> for LiveEvent {
    fn from(event: Event) -> Self {
        Self {
            text: event.message_text(),
            event,
        }
    }
}

/// The fan-out of new events.
pub(crate) struct EventBus {
    order: Mutex<()>,
    live: broadcast::Sender<Arc<LiveEvent>>,
}

impl EventBus {
    pub(crate) fn new() -> Self {
        Self {
            order: Mutex::new(()),
            live: broadcast::channel(LIVE_BUFFER).0,
        }
    }
}

impl Store {
    /// Appends an event and broadcasts it; returns its id (monotonically increasing).
    pub async fn emit_event(
        &self,
        project: ProjectId,
        kind: &str,
        payload: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        let _order = self.lock_order().await;
        let mut conn = self.writer.acquire().await?;
        let stored =
            Store::insert_events(&mut conn, project, vec![(kind, payload.clone())]).await?;
        let id = stored[0].id;
        self.broadcast(stored);
        Ok(id)
    }

    /// Inserts events of one project inside the caller's transaction; the caller holds the
    /// order lock (`lock_order`) and broadcasts them (`broadcast`) after committing.
    pub(crate) async fn insert_events(
        conn: &mut sqlx::SqliteConnection,
        project: ProjectId,
        events: Vec<(&str, serde_json::Value)>,
    ) -> Result<Vec<Event>, StoreError> {
        let mut stored = Vec::with_capacity(events.len());
        let now = now_millis();
        for (kind, payload) in events {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO events (project_id, kind, payload, created_at) VALUES (?, ?, ?, ?) RETURNING id",
            )
            .bind(project.0)
            .bind(kind)
            .bind(payload.to_string())
            .bind(now)
            .fetch_one(&mut *conn)
            .await?;
            stored.push(Event {
                id,
                project_id: project,
                kind: kind.to_owned(),
                payload,
            });
        }
        Ok(stored)
    }

    /// Held from inserting events until they are broadcast, so that ids and order agree.
    pub(crate) async fn lock_order(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.events.order.lock().await
    }

    /// Sends committed events to live subscribers (under the order lock).
    pub(crate) fn broadcast(&self, stored: Vec<Event>) {
        for event in stored {
            let _ = self.events.live.send(Arc::new(LiveEvent::from(event)));
        }
    }

    /// New events as they are stored (all projects; filter by `project_id`).
    pub fn subscribe_events(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.events.live.subscribe()
    }

    /// The id of the newest event, 0 when there is none.
    pub async fn last_event_id(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events")
                .fetch_one(&self.pool)
                .await?,
        )
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

    /// Records a `validation_update` for a validation (and the step that changed, if any).
    pub(crate) async fn emit_validation_update(
        &self,
        id: slipway_core::ValidationId,
        step: Option<u32>,
    ) -> Result<(), StoreError> {
        let (project, status, sha, base_sha): (i64, String, String, Option<String>) =
            sqlx::query_as(
                "SELECT project_id, status, sha, base_sha FROM validations WHERE id = ?",
            )
            .bind(id.0)
            .fetch_one(&self.pool)
            .await?;
        let step_row: Option<(i64, String, String)> = match step {
            Some(index) => sqlx::query_as(
                "SELECT idx, name, status FROM validation_steps WHERE validation_id = ? AND idx = ?",
            )
            .bind(id.0)
            .bind(index)
            .fetch_optional(&self.pool)
            .await?,
            None => None,
        };
        let payload = serde_json::json!({
            "type": "validation_update",
            "project_id": project,
            "validation_id": id.0,
            "step_index": step_row.as_ref().map(|s| s.0),
            "step": step_row.as_ref().map(|s| s.1.clone()),
            "step_status": step_row.as_ref().map(|s| s.2.clone()),
            "overall_status": status,
            "head_sha": sha,
            "base_sha": base_sha,
        });
        self.emit_event(ProjectId(project), "validation_update", &payload)
            .await
            .map(drop)
    }
}
