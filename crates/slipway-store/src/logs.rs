//! A validation's log lines: appended masked and numbered, read by page or from a point.

use crate::{Store, StoreError};
use serde::Serialize;
use slipway_core::validation::StepName;
use slipway_core::ValidationId;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LogLine {
    pub seq: i64,
    pub step: String,
    pub line: String,
}

impl Store {
    /// The sequence number of a validation's last log line (0 when none).
    pub async fn last_log_seq(&self, id: ValidationId) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(MAX(seq), 0) FROM validation_logs WHERE validation_id = $1",
        )
        .bind(id.0)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Appends masked lines numbered from `after + 1`. The caller (one log writer per
    /// validation) owns the numbering, so the transaction only writes: SQLite would refuse
    /// a read-then-write transaction outright while another writer commits.
    pub async fn append_logs(
        &self,
        id: ValidationId,
        after: i64,
        lines: &[(StepName, String)],
    ) -> Result<i64, StoreError> {
        let project: i64 = sqlx::query_scalar("SELECT project_id FROM validations WHERE id = $1")
            .bind(id.0)
            .fetch_one(&self.pool)
            .await?;
        // The lines and their `log` events are committed together.
        let mut tx = self.begin_write().await?;
        let mut seq = after;
        let mut events = Vec::with_capacity(lines.len());
        for (step, line) in lines {
            seq += 1;
            sqlx::query(
                "INSERT INTO validation_logs (validation_id, seq, step, line) VALUES ($1, $2, $3, $4)",
            )
            .bind(id.0)
            .bind(seq)
            .bind(step.as_str())
            .bind(line)
            .execute(&mut *tx)
            .await?;
            events.push((
                crate::EventKind::Log,
                serde_json::json!({"type": "log", "validation_id": id.0, "step": step.as_str(),
                                   "seq": seq, "line": line}),
            ));
        }
        self.insert_events(&mut tx, slipway_core::ProjectId(project), events)
            .await?;
        tx.commit().await?;
        self.events_committed();
        Ok(seq)
    }

    /// Up to `limit` lines before `before` (all steps), oldest first: the tail when
    /// `before` is `i64::MAX`.
    pub async fn logs_before(
        &self,
        id: ValidationId,
        before: i64,
        limit: u32,
    ) -> Result<Vec<LogLine>, StoreError> {
        let mut rows: Vec<LogLine> = sqlx::query_as(
            "SELECT seq, step, line FROM validation_logs WHERE validation_id = $1 AND seq < $2
             ORDER BY seq DESC LIMIT $3",
        )
        .bind(id.0)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.reverse();
        Ok(rows)
    }

    /// Log lines after `after`, optionally of one step, at most `limit`.
    pub async fn logs(
        &self,
        id: ValidationId,
        step: Option<StepName>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<LogLine>, StoreError> {
        let rows: Vec<LogLine> = sqlx::query_as(
            "SELECT seq, step, line FROM validation_logs
             WHERE validation_id = $1 AND seq > $2 AND ($3 IS NULL OR step = $4)
             ORDER BY seq LIMIT $5",
        )
        .bind(id.0)
        .bind(after)
        .bind(step.map(StepName::as_str))
        .bind(step.map(StepName::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }
}
