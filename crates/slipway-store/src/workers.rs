//! The registry of running processes: each `serve` or `worker` writes a heartbeat, so
//! `/ready` can count the live ones and `/metrics` show how recently each was heard from.

use crate::{from_millis, now_millis, Store, StoreError};
use std::time::Duration;
use time::OffsetDateTime;

/// A process as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRecord {
    /// Its stable id, also the owner of its job leases.
    pub id: String,
    /// `serve`, `worker`, …
    pub role: String,
    pub host: String,
    pub pid: i64,
    pub started_at: OffsetDateTime,
    pub heartbeat_at: OffsetDateTime,
}

/// Rows unheard of for this long are removed when a process registers.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

#[derive(sqlx::FromRow)]
struct WorkerRow {
    id: String,
    role: String,
    host: String,
    pid: i64,
    started_at: i64,
    heartbeat_at: i64,
}

impl Store {
    /// Registers (or re-registers after a restart) a process, heard from now.
    pub async fn register_worker(
        &self,
        id: &str,
        role: &str,
        host: &str,
        pid: u32,
    ) -> Result<(), StoreError> {
        let now = now_millis();
        sqlx::query("DELETE FROM workers WHERE heartbeat_at < $1")
            .bind(now - FORGET_AFTER.as_millis() as i64)
            .execute(&self.writer)
            .await?;
        sqlx::query(
            "INSERT INTO workers (id, role, host, pid, started_at, heartbeat_at)
             VALUES ($1, $2, $3, $4, $5, $5)
             ON CONFLICT (id) DO UPDATE SET role = excluded.role, host = excluded.host,
                 pid = excluded.pid, started_at = excluded.started_at,
                 heartbeat_at = excluded.heartbeat_at",
        )
        .bind(id)
        .bind(role)
        .bind(host)
        .bind(i64::from(pid))
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The process is alive; `false` when it is not registered (call `register_worker`).
    pub async fn worker_heartbeat(&self, id: &str) -> Result<bool, StoreError> {
        let updated = sqlx::query("UPDATE workers SET heartbeat_at = $1 WHERE id = $2")
            .bind(now_millis())
            .bind(id)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(updated == 1)
    }

    /// The process stopped cleanly.
    pub async fn remove_worker(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM workers WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Processes heard from within `within`, by id.
    pub async fn live_workers(&self, within: Duration) -> Result<Vec<WorkerRecord>, StoreError> {
        let rows: Vec<WorkerRow> = sqlx::query_as(
            "SELECT id, role, host, pid, started_at, heartbeat_at FROM workers
             WHERE heartbeat_at >= $1 ORDER BY id",
        )
        .bind(now_millis() - within.as_millis() as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| WorkerRecord {
                id: r.id,
                role: r.role,
                host: r.host,
                pid: r.pid,
                started_at: from_millis(r.started_at),
                heartbeat_at: from_millis(r.heartbeat_at),
            })
            .collect())
    }
}
