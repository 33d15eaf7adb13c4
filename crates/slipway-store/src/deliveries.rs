//! Webhook deliveries: stored durably before the sender gets its answer (one INSERT, so
//! intake stays fast); a redelivery changes nothing. Pending rows are the processing queue.

use crate::queue::backoff;
use crate::{now_millis, Backend, Store, StoreError};
use sqlx::AnyPool;
use std::collections::HashSet;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::sync::{mpsc, oneshot};

/// The most deliveries written by one statement.
const INTAKE_BATCH: usize = 64;

/// Processing attempts before a delivery is given up as failed.
const MAX_ATTEMPTS: i64 = 5;

/// The largest payload a stored delivery may decompress to (GitHub's cap).
const MAX_PAYLOAD_BYTES: usize = 25 * 1024 * 1024;

/// Payloads are JSON: LZ4 makes them ~7x smaller, which makes durable intake several times
/// faster (SQLite's cost is in the bytes written) for ~20 µs of CPU.
fn compress(payload: &[u8]) -> Vec<u8> {
    lz4_flex::block::compress_prepend_size(payload)
}

fn decompress(stored: &[u8]) -> Result<Vec<u8>, StoreError> {
    let corrupt = || StoreError::Corrupt("a stored webhook payload does not decompress".into());
    let size = stored
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(corrupt)?;
    if size > MAX_PAYLOAD_BYTES {
        return Err(corrupt());
    }
    lz4_flex::block::decompress_size_prepended(stored).map_err(|_| corrupt())
}

/// What became of a delivery handed to [`Store::record_delivery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    /// Seen before (GitHub redelivers); nothing was changed.
    Duplicate,
}

/// Where a delivery is: waiting to be acted on, or what acting on it came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Pending,
    /// Acted on (a validation started, cancelled, …).
    Processed,
    /// Nothing to do (no project on the repository, an action Slipway does not act on).
    Ignored,
    /// Unreadable, or processing kept failing.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processed => "processed",
            Self::Ignored => "ignored",
            Self::Failed => "failed",
        }
    }

    fn parse(stored: &str) -> Result<Self, StoreError> {
        Ok(match stored {
            "pending" => Self::Pending,
            "processed" => Self::Processed,
            "ignored" => Self::Ignored,
            "failed" => Self::Failed,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "a stored delivery's state is '{other}'"
                )))
            }
        })
    }
}

/// A stored delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub delivery_id: String,
    pub event: String,
    pub repository: Option<String>,
    pub payload: Vec<u8>,
    pub state: DeliveryState,
    pub note: Option<String>,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    delivery_id: String,
    event: String,
    repository: Option<String>,
    payload: Vec<u8>,
    state: String,
    note: Option<String>,
}

/// A delivery waiting for the intake writer, with where to send the outcome.
pub(crate) struct Incoming {
    delivery_id: String,
    event: String,
    repository: Option<String>,
    compressed: Vec<u8>,
    process: bool,
    reply: oneshot::Sender<Result<Recorded, StoreError>>,
}

/// Group commit: once a writer is free, takes whatever deliveries are waiting (up to
/// [`INTAKE_BATCH`]) and writes them with one statement, then answers each caller. Under load
/// this turns many commits into one; alone, a delivery is written at once. SQLite has one
/// writer. On PostgreSQL a commit waits for a flush of the write-ahead log (a few ms on a
/// virtual disk, which flushes one at a time): two writers keep the disk busy (one inserts
/// while the other's commit is flushed) and leave each batch every delivery that arrived
/// during the previous flush; more writers only split the deliveries into more, smaller
/// flushes (measured in BENCHMARKS.md). Ends with the store.
pub(crate) fn spawn_intake(writer: AnyPool, backend: Backend) -> mpsc::Sender<Incoming> {
    let (tx, mut rx) = mpsc::channel::<Incoming>(4 * INTAKE_BATCH);
    let writers = match backend {
        Backend::Sqlite => 1,
        Backend::Postgres => 2,
    };
    let writers = Arc::new(Semaphore::new(writers));
    tokio::spawn(async move {
        loop {
            // The batch is taken only once a writer is free, so that it holds every
            // delivery that arrived while the writers were busy.
            let permit = writers.clone().acquire_owned().await.expect("never closed");
            let Some(first) = rx.recv().await else { break };
            let mut batch = Vec::with_capacity(INTAKE_BATCH);
            batch.push(first);
            while batch.len() < INTAKE_BATCH {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let writer = writer.clone();
            tokio::spawn(async move {
                write_batch(&writer, batch).await;
                drop(permit);
            });
        }
    });
    tx
}

async fn write_batch(writer: &AnyPool, batch: Vec<Incoming>) {
    // A delivery id twice in one batch: the first is the delivery, the rest duplicates.
    let mut seen = HashSet::new();
    let (mut rows, repeats): (Vec<Incoming>, Vec<Incoming>) = batch
        .into_iter()
        .partition(|d| seen.insert(d.delivery_id.clone()));
    // Every batch (of any process) inserts its ids in one order, so that two batches sharing
    // ids wait for each other instead of deadlocking on PostgreSQL's unique index.
    rows.sort_unstable_by(|a, b| a.delivery_id.cmp(&b.delivery_id));
    let now = now_millis();
    let mut sql = String::from(
        "INSERT INTO webhook_deliveries (delivery_id, event, repository, payload, received_at, state) VALUES ",
    );
    for i in 0..rows.len() {
        let n = i * 6;
        let comma = if i == 0 { "" } else { ", " };
        let _ = write!(
            sql,
            "{comma}(${}, ${}, ${}, ${}, ${}, ${})",
            n + 1,
            n + 2,
            n + 3,
            n + 4,
            n + 5,
            n + 6
        );
    }
    sql.push_str(" ON CONFLICT (delivery_id) DO NOTHING RETURNING delivery_id");
    let mut query = sqlx::query_scalar(&sql);
    for d in &rows {
        query = query
            .bind(&d.delivery_id)
            .bind(&d.event)
            .bind(&d.repository)
            .bind(&d.compressed)
            .bind(now)
            .bind(
                if d.process {
                    DeliveryState::Pending
                } else {
                    DeliveryState::Processed
                }
                .as_str(),
            );
    }
    let result: Result<Vec<String>, sqlx::Error> = query.fetch_all(writer).await;
    match result {
        Ok(inserted) => {
            let inserted: HashSet<String> = inserted.into_iter().collect();
            for d in rows {
                let recorded = if inserted.contains(&d.delivery_id) {
                    Recorded::New
                } else {
                    Recorded::Duplicate
                };
                let _ = d.reply.send(Ok(recorded));
            }
        }
        Err(error) => {
            let message = error.to_string();
            for d in rows {
                let _ = d.reply.send(Err(StoreError::Write(message.clone())));
            }
        }
    }
    for d in repeats {
        let _ = d.reply.send(Ok(Recorded::Duplicate));
    }
}

impl Store {
    /// Stores a verified delivery, `pending` processing unless `process` is false (ping).
    /// Returns once the delivery is committed.
    pub async fn record_delivery(
        &self,
        delivery_id: &str,
        event: &str,
        repository: Option<&str>,
        payload: &[u8],
        process: bool,
    ) -> Result<Recorded, StoreError> {
        let (reply, outcome) = oneshot::channel();
        let incoming = Incoming {
            delivery_id: delivery_id.to_owned(),
            event: event.to_owned(),
            repository: repository.map(str::to_owned),
            compressed: compress(payload),
            process,
            reply,
        };
        let gone = || StoreError::Write("the delivery writer has stopped".into());
        self.intake.send(incoming).await.map_err(|_| gone())?;
        outcome.await.map_err(|_| gone())?
    }

    /// Ids of deliveries due for processing, oldest first.
    pub async fn pending_deliveries(&self, limit: u32) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT delivery_id FROM webhook_deliveries
             WHERE state = 'pending' AND next_attempt_at <= $1 ORDER BY seq LIMIT $2",
        )
        .bind(now_millis())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn delivery(&self, delivery_id: &str) -> Result<Delivery, StoreError> {
        let row: DeliveryRow = sqlx::query_as(
            "SELECT delivery_id, event, repository, payload, state, note
             FROM webhook_deliveries WHERE delivery_id = $1",
        )
        .bind(delivery_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(Delivery {
            delivery_id: row.delivery_id,
            event: row.event,
            repository: row.repository,
            payload: decompress(&row.payload)?,
            state: DeliveryState::parse(&row.state)?,
            note: row.note,
        })
    }

    /// Records what processing made of a delivery.
    pub async fn finish_delivery(
        &self,
        delivery_id: &str,
        state: DeliveryState,
        note: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE webhook_deliveries SET state = $1, note = $2 WHERE delivery_id = $3")
            .bind(state.as_str())
            .bind(note)
            .bind(delivery_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Processing hit an infrastructure fault: try again after a backoff, or give up.
    pub async fn retry_delivery_later(
        &self,
        delivery_id: &str,
        error: &str,
    ) -> Result<(), StoreError> {
        let attempts: i64 = sqlx::query_scalar(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, note = $1
             WHERE delivery_id = $2 RETURNING attempts",
        )
        .bind(error)
        .bind(delivery_id)
        .fetch_one(&self.writer)
        .await?;
        if attempts >= MAX_ATTEMPTS {
            return self
                .finish_delivery(delivery_id, DeliveryState::Failed, error)
                .await;
        }
        let wait = backoff(Duration::from_secs(1), attempts as u32);
        sqlx::query("UPDATE webhook_deliveries SET next_attempt_at = $1 WHERE delivery_id = $2")
            .bind(now_millis() + wait.as_millis() as i64)
            .bind(delivery_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Puts a finished delivery (processed, ignored or failed) back in the queue, as new:
    /// GitHub's own redelivery of a stored one is a duplicate, so an operator replays it
    /// here. 404 when it is not stored; a conflict when it is still pending.
    pub async fn replay_delivery(&self, delivery_id: &str, note: &str) -> Result<(), StoreError> {
        let replayed = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'pending', note = $1, attempts = 0,
             next_attempt_at = 0 WHERE delivery_id = $2 AND state != 'pending'",
        )
        .bind(note)
        .bind(delivery_id)
        .execute(&self.writer)
        .await?
        .rows_affected();
        if replayed == 1 {
            return Ok(());
        }
        self.delivery(delivery_id).await?;
        Err(StoreError::Conflict(format!(
            "delivery {delivery_id} is still waiting to be processed; it needs no replay"
        )))
    }

    pub async fn count_deliveries(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
