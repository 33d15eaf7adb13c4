//! Events for live subscribers (DESIGN.md §5): stored, numbered in order, and fanned out.
//! Events are committed in id order by every process (SQLite's write lock; on PostgreSQL a
//! transaction-scoped advisory lock taken before the insert), so the table's ids are the
//! order. Each process runs one tail that reads the table after the last id it sent and
//! broadcasts to its subscribers: woken at once by this process's commits, by PostgreSQL's
//! `NOTIFY` for other processes' commits, else by a poll (SQLite shared by processes; a
//! safety net on PostgreSQL). A subscriber that falls behind replays from the table.

use crate::cache::Cached;
use crate::{now_millis, Backend, Store, StoreError};
use slipway_core::ProjectId;
use sqlx::postgres::PgListener;
use sqlx::AnyConnection;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch, Notify};

/// Live events a slow subscriber may fall behind by before it must replay from the table.
const LIVE_BUFFER: usize = 4_096;

/// What an event tells; stored, and sent as the message's `type`, as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A validation's status, or one of its steps', changed.
    ValidationUpdate,
    /// A validation's log line.
    Log,
    /// An agent run changed.
    AgentRunUpdate,
    /// Something happened to a pull request (opened, merged, commented).
    PrNotification,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        Self::ValidationUpdate,
        Self::Log,
        Self::AgentRunUpdate,
        Self::PrNotification,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValidationUpdate => "validation_update",
            Self::Log => "log",
            Self::AgentRunUpdate => "agent_run_update",
            Self::PrNotification => "pr_notification",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| format!("a stored event's kind is '{s}', which Slipway does not know"))
    }
}

crate::text::text_column!(EventKind);

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: i64,
    pub project_id: ProjectId,
    pub kind: EventKind,
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
                .or_insert_with(|| self.kind.as_str().into());
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

/// The fan-out of new events, and of wake-ups for queued jobs.
pub(crate) struct EventBus {
    live: broadcast::Sender<Arc<LiveEvent>>,
    jobs: broadcast::Sender<Arc<str>>,
    /// This process committed events: the tail reads them now.
    stored: Arc<Notify>,
    stop: watch::Sender<bool>,
}

impl EventBus {
    pub(crate) fn new() -> Self {
        Self {
            live: broadcast::channel(LIVE_BUFFER).0,
            jobs: broadcast::channel(256).0,
            stored: Arc::new(Notify::new()),
            stop: watch::channel(false).0,
        }
    }

    pub(crate) fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// The channel of new events' commits (PostgreSQL).
const EVENTS_CHANNEL: &str = "slipway_events";
/// The channel of newly queued jobs, with their kind (PostgreSQL).
pub(crate) const JOBS_CHANNEL: &str = "slipway_jobs";
/// Taken by every transaction that inserts events, until it commits (PostgreSQL).
const EVENT_ORDER_LOCK: i64 = 0x5eed_0001;

/// How often the tail reads the table unprompted: SQLite has no notifications, so other
/// processes' events arrive by this poll; on PostgreSQL it only covers a lost connection.
fn tail_poll(backend: Backend) -> Duration {
    match backend {
        Backend::Sqlite => Duration::from_millis(200),
        Backend::Postgres => Duration::from_secs(2),
    }
}

/// Starts the process's tail of the events table (and, on PostgreSQL, its listener).
pub(crate) async fn spawn_tail(store: &Store, database_url: &str) -> Result<(), StoreError> {
    // Other processes' commits (PostgreSQL): at most one wake-up waits, the rest coalesce.
    let (elsewhere_tx, mut elsewhere) = tokio::sync::mpsc::channel::<()>(1);
    if store.backend == Backend::Postgres {
        let mut listener = PgListener::connect(database_url).await?;
        listener.listen_all([EVENTS_CHANNEL, JOBS_CHANNEL]).await?;
        spawn_listener(listener, Arc::downgrade(&store.events), elsewhere_tx);
    }
    let mut last = store.last_event_id().await?;
    let mut caches = Caches {
        projects: store.projects.clone(),
        tokens: store.tokens.clone(),
        generation: None,
    };
    caches.check(&store.pool).await?;
    let bus = Arc::downgrade(&store.events);
    let stored = store.events.stored.clone();
    let mut stop = store.events.stop.subscribe();
    let pool = store.pool.clone();
    let poll = tail_poll(store.backend);
    tokio::spawn(async move {
        loop {
            // Holds no store alive while it waits: once every handle is gone, it ends.
            tokio::select! {
                _ = stored.notified() => {}
                // No sender on SQLite, nor once the listener ended: the branch is then off.
                Some(()) = elsewhere.recv() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = stop.changed() => break,
            }
            let Some(bus) = bus.upgrade() else { break };
            if let Err(error) = caches.check(&pool).await {
                tracing::warn!(%error, "the caches' generation could not be read");
            }
            match fan_out(&pool, &bus, last).await {
                Ok(sent) => last = sent,
                Err(_) if pool.is_closed() => break,
                Err(error) => tracing::warn!(%error, "new events could not be read; trying again"),
            }
        }
    });
    Ok(())
}

/// Receives PostgreSQL's notifications in a task of its own (a read is never cut short):
/// queued jobs go to the job wake-ups, new events wake the tail.
fn spawn_listener(
    mut listener: PgListener,
    bus: std::sync::Weak<EventBus>,
    elsewhere: tokio::sync::mpsc::Sender<()>,
) {
    let Some(mut stop) = bus.upgrade().map(|bus| bus.stop.subscribe()) else {
        return;
    };
    tokio::spawn(async move {
        loop {
            let received = tokio::select! {
                received = listener.recv() => received,
                _ = stop.changed() => break,
            };
            let Some(bus) = bus.upgrade() else { break };
            match received {
                Ok(note) if note.channel() == JOBS_CHANNEL => {
                    let _ = bus.jobs.send(note.payload().into());
                }
                Ok(_) => {
                    let _ = elsewhere.try_send(());
                }
                Err(sqlx::Error::PoolClosed) => break,
                Err(error) => {
                    // The listener reconnects on the next receive; the tail's poll covers
                    // what was announced meanwhile.
                    tracing::warn!(%error, "the database's notifications were interrupted");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
}

/// This process's read caches, dropped when another process changed what they hold.
struct Caches {
    projects: Arc<Cached<Arc<[slipway_core::Project]>>>,
    tokens: Arc<Cached<Arc<crate::tokens::LiveTokens>>>,
    generation: Option<Vec<u8>>,
}

impl Caches {
    async fn check(&mut self, pool: &sqlx::AnyPool) -> Result<(), StoreError> {
        let generation: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'cache_generation'")
                .fetch_optional(pool)
                .await?;
        if generation != self.generation {
            self.projects.invalidate();
            self.tokens.invalidate();
            self.generation = generation;
        }
        Ok(())
    }
}

/// Wakes every process's tail (PostgreSQL; SQLite's tails poll).
pub(crate) async fn announce(store: &Store) -> Result<(), StoreError> {
    if store.backend == Backend::Postgres {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(EVENTS_CHANNEL)
            .execute(&store.writer)
            .await?;
    }
    Ok(())
}

/// Broadcasts the events stored after `last`, in order; returns the last id sent. With no
/// subscriber, skips to the newest.
async fn fan_out(pool: &sqlx::AnyPool, bus: &EventBus, mut last: i64) -> Result<i64, StoreError> {
    const PAGE: i64 = 1_000;
    if bus.live.receiver_count() == 0 {
        return Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events")
                .fetch_one(pool)
                .await?,
        );
    }
    loop {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, project_id, kind, payload FROM events WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(last)
        .bind(PAGE)
        .fetch_all(pool)
        .await?;
        let full = rows.len() as i64 == PAGE;
        for row in rows {
            last = row.id;
            let event = row.event()?;
            let _ = bus.live.send(Arc::new(LiveEvent::from(event)));
        }
        if !full {
            return Ok(last);
        }
    }
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    project_id: i64,
    kind: EventKind,
    payload: String,
}

/// What a `validation_update` tells of the validation.
#[derive(sqlx::FromRow)]
struct ValidationHead {
    project_id: i64,
    status: String,
    sha: String,
    base_sha: Option<String>,
}

/// What a `validation_update` tells of the step that changed.
#[derive(sqlx::FromRow)]
struct StepHead {
    idx: i64,
    name: String,
    status: String,
}

impl EventRow {
    fn event(self) -> Result<Event, StoreError> {
        Ok(Event {
            id: self.id,
            project_id: ProjectId(self.project_id),
            kind: self.kind,
            payload: serde_json::from_str(&self.payload)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        })
    }
}

impl Store {
    /// Appends an event; returns its id (monotonically increasing). Live subscribers of
    /// every process get it after the commit.
    pub async fn emit_event(
        &self,
        project: ProjectId,
        kind: EventKind,
        payload: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let stored = self
            .insert_events(&mut tx, project, vec![(kind, payload.clone())])
            .await?;
        tx.commit().await?;
        self.events_committed();
        Ok(stored[0])
    }

    /// Inserts events of one project inside the caller's write transaction (which then
    /// holds the events' order until it commits); the caller calls `events_committed` after
    /// committing. Returns their ids.
    pub(crate) async fn insert_events(
        &self,
        conn: &mut AnyConnection,
        project: ProjectId,
        events: Vec<(EventKind, serde_json::Value)>,
    ) -> Result<Vec<i64>, StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(EVENT_ORDER_LOCK)
                .execute(&mut *conn)
                .await?;
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(EVENTS_CHANNEL)
                .execute(&mut *conn)
                .await?;
        }
        let mut ids = Vec::with_capacity(events.len());
        let now = now_millis();
        for (kind, payload) in events {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO events (project_id, kind, payload, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(project.0)
            .bind(kind)
            .bind(payload.to_string())
            .bind(now)
            .fetch_one(&mut *conn)
            .await?;
            ids.push(id);
        }
        Ok(ids)
    }

    /// Wakes this process's tail after a commit that stored events.
    pub(crate) fn events_committed(&self) {
        self.events.stored.notify_one();
    }

    /// New events as they are stored by any process (all projects; filter by `project_id`).
    pub fn subscribe_events(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.events.live.subscribe()
    }

    /// Kinds of jobs queued by any process, as they are queued (PostgreSQL's notifications;
    /// on SQLite nothing arrives here and workers poll).
    pub fn job_wakeups(&self) -> broadcast::Receiver<Arc<str>> {
        self.events.jobs.subscribe()
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
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, project_id, kind, payload FROM events
             WHERE project_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(project.0)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(EventRow::event).collect()
    }

    /// Records a `validation_update` for a validation (and the step that changed, if any).
    pub(crate) async fn emit_validation_update(
        &self,
        id: slipway_core::ValidationId,
        step: Option<u32>,
    ) -> Result<(), StoreError> {
        let validation: ValidationHead = sqlx::query_as(
            "SELECT project_id, status, sha, base_sha FROM validations WHERE id = $1",
        )
        .bind(id.0)
        .fetch_one(&self.pool)
        .await?;
        let step_row: Option<StepHead> = match step {
            Some(index) => sqlx::query_as(
                "SELECT idx, name, status FROM validation_steps WHERE validation_id = $1 AND idx = $2",
            )
            .bind(id.0)
            .bind(i64::from(index))
            .fetch_optional(&self.pool)
            .await?,
            None => None,
        };
        let payload = serde_json::json!({
            "type": "validation_update",
            "project_id": validation.project_id,
            "validation_id": id.0,
            "step_index": step_row.as_ref().map(|s| s.idx),
            "step": step_row.as_ref().map(|s| s.name.clone()),
            "step_status": step_row.as_ref().map(|s| s.status.clone()),
            "overall_status": validation.status,
            "head_sha": validation.sha,
            "base_sha": validation.base_sha,
        });
        self.emit_event(
            ProjectId(validation.project_id),
            EventKind::ValidationUpdate,
            &payload,
        )
        .await
        .map(drop)
    }
}
