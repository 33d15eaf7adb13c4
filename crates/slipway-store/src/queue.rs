//! The durable job queue: leases with expiry, heartbeats, the attempt number as a fencing
//! token, retryable vs fatal failures with exponential backoff and jitter, dedupe keys.
//! Every call is one short statement or transaction; no transaction spans a job's work.
//!
//! A dedupe key does two things. Adding a job absorbs it into one of the same key that has
//! not started yet (queued, never leased). And the jobs of one key run one at a time, in the
//! order they were added: a job added while another of its key runs is queued, and leased
//! only once every older job of its key has ended (the lease skips it; a unique index on
//! the running jobs' keys makes it so even for concurrent leases).

use crate::{now_millis, Backend, Store, StoreError};
use slipway_core::validation::ValidationStatus;
use std::time::Duration;

/// A job to add.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    /// JSON.
    pub payload: String,
    /// While a job with this key waits to start, adding another returns that one; jobs of
    /// one key run one at a time, oldest first (see the module's note).
    pub dedupe_key: Option<String>,
    pub max_attempts: u32,
}

/// A leased job. `attempt` fences: only the holder of the current attempt may report on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub attempt: u32,
    pub max_attempts: u32,
}

/// Where a job is. Stored as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting for its `run_at`, then for a worker.
    Queued,
    /// Leased by a worker (until its lease expires).
    Running,
    Done,
    /// Failed for good (a fatal failure, or its attempts spent).
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        Self::Queued,
        Self::Running,
        Self::Done,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("a stored job's state is '{s}', which Slipway does not know"))
    }
}

crate::text::text_column!(JobState);

/// A leased job's row.
#[derive(sqlx::FromRow)]
struct JobRow {
    id: i64,
    kind: String,
    payload: String,
    attempt: i64,
    max_attempts: i64,
}

/// How a job attempt ended badly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobFailure {
    /// Worth another attempt, after a backoff.
    Retryable(String),
    /// Never worth retrying.
    Fatal(String),
}

/// Backoff before attempt `attempt + 1`, with a random jitter (see `slipway_core::backoff`).
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let mut bytes = [0u8; 2];
    getrandom::getrandom(&mut bytes).expect("the OS random source is available");
    let random = f64::from(u16::from_le_bytes(bytes)) / 65_536.0;
    slipway_core::backoff::backoff(base, attempt, random)
}

const RETRY_BASE: Duration = Duration::from_secs(2);

/// Inserts a queued job (inside the caller's transaction, if any); `None` when a job with
/// the same dedupe key waits to start.
pub(crate) async fn insert_job(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    job: &NewJob,
) -> Result<Option<i64>, StoreError> {
    let now = now_millis();
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO jobs (kind, payload, dedupe_key, state, max_attempts, run_at, created_at, updated_at)
         VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7)
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(&job.kind)
    .bind(&job.payload)
    .bind(&job.dedupe_key)
    .bind(i64::from(job.max_attempts))
    .bind(now)
    .bind(now)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    if id.is_some() && backend == Backend::Postgres {
        // Delivered once the job is committed, to every process listening: a worker
        // wakes at once instead of at its next poll.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(crate::events::JOBS_CHANNEL)
            .bind(&job.kind)
            .execute(&mut *conn)
            .await?;
    }
    Ok(id)
}

impl Store {
    /// Adds a job, or returns the id of the job with the same dedupe key that waits to
    /// start (a running one absorbs nothing: the new job runs after it).
    pub async fn enqueue(&self, job: &NewJob) -> Result<i64, StoreError> {
        // The waiting job may start between the insert and the look-up: then insert again.
        for _ in 0..8 {
            let mut conn = self.writer.acquire().await?;
            if let Some(id) = insert_job(&mut conn, self.backend, job).await? {
                return Ok(id);
            }
            drop(conn);
            let waiting: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM jobs WHERE dedupe_key = $1 AND state = 'queued' AND attempt = 0",
            )
            .bind(&job.dedupe_key)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(id) = waiting {
                return Ok(id);
            }
        }
        Err(StoreError::Write(format!(
            "the job with dedupe key {:?} kept starting while another was added; add it again",
            job.dedupe_key
        )))
    }

    /// Completes the held attempt and queues `next` (subject to its dedupe key), in one
    /// transaction: `false`, and nothing queued, when the job is no longer this attempt's.
    pub async fn complete_then(&self, job: &Job, next: &NewJob) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_expires_at = NULL,
                    updated_at = $1
             WHERE id = $2 AND attempt = $3 AND state = 'running'",
        )
        .bind(now_millis())
        .bind(job.id)
        .bind(i64::from(job.attempt))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated != 1 {
            return Ok(false);
        }
        insert_job(&mut tx, self.backend, next).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Leases the next due job of one of `kinds`: queued and due, or running with an expired
    /// lease (its holder died). The attempt number goes up by one.
    pub async fn lease(
        &self,
        owner: &str,
        kinds: &[&str],
        lease: Duration,
    ) -> Result<Option<Job>, StoreError> {
        self.lease_excluding(owner, kinds, lease, &[]).await
    }

    /// [`Store::lease`], never one of the jobs `running` (a process still running an older
    /// attempt of a job must not start another beside it).
    pub async fn lease_excluding(
        &self,
        owner: &str,
        kinds: &[&str],
        lease: Duration,
        running: &[i64],
    ) -> Result<Option<Job>, StoreError> {
        let kinds_json = serde_json::to_string(kinds).expect("strings serialize");
        let running_json = serde_json::to_string(running).expect("numbers serialize");
        loop {
            let now = now_millis();
            let leased: Result<Option<JobRow>, sqlx::Error> = sqlx::query_as(self.lease_sql())
                .bind(owner)
                .bind(now + lease.as_millis() as i64)
                .bind(now)
                .bind(&kinds_json)
                .bind(&running_json)
                .bind(now)
                .fetch_optional(&self.writer)
                .await;
            let row = match leased {
                // A concurrent lease started another job of the same key first (PostgreSQL):
                // the next look skips this one.
                Err(sqlx::Error::Database(error)) if error.is_unique_violation() => continue,
                other => other?,
            };
            let Some(row) = row else {
                return Ok(None);
            };
            let job = Job {
                id: row.id,
                kind: row.kind,
                payload: row.payload,
                attempt: row.attempt as u32,
                max_attempts: row.max_attempts as u32,
            };
            if job.attempt > job.max_attempts {
                // Its holders kept dying: give up on it rather than loop forever.
                self.finish_job(
                    &job,
                    JobState::Failed,
                    Some("lease expired on every attempt"),
                )
                .await?;
                // A validation's job: the validation ends now, not at the next start.
                if let Some(id) = job.validation() {
                    let why = format!(
                        "its job was interrupted on all {} attempts (the worker running it \
                         crashed or lost its lease each time); retry it",
                        job.max_attempts
                    );
                    self.finish_validation(id, ValidationStatus::Error, Some(&why))
                        .await?;
                }
                continue;
            }
            return Ok(Some(job));
        }
    }

    /// The statement that leases the next due job whose key has no job running and no
    /// older one waiting: SQLite's one writer at a time needs no row locks; on PostgreSQL
    /// concurrent workers skip the rows others are taking.
    fn lease_sql(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => {
                "UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_owner = $1,
                        lease_expires_at = $2, updated_at = $3
                 WHERE id = (SELECT id FROM jobs c
                             WHERE kind IN (SELECT value FROM json_each($4))
                               AND id NOT IN (SELECT value FROM json_each($5))
                               AND ((state = 'queued' AND run_at <= $6)
                                    OR (state = 'running' AND lease_expires_at < $6))
                               AND NOT EXISTS (SELECT 1 FROM jobs o
                                               WHERE o.dedupe_key = c.dedupe_key AND o.id <> c.id
                                                 AND (o.state = 'running'
                                                      OR (o.state = 'queued' AND o.id < c.id)))
                             ORDER BY run_at, id LIMIT 1)
                 RETURNING id, kind, payload, attempt, max_attempts"
            }
            Backend::Postgres => {
                "UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_owner = $1,
                        lease_expires_at = $2, updated_at = $3
                 WHERE id = (SELECT id FROM jobs c
                             WHERE kind IN (SELECT jsonb_array_elements_text($4::jsonb))
                               AND id NOT IN (SELECT jsonb_array_elements_text($5::jsonb)::bigint)
                               AND ((state = 'queued' AND run_at <= $6)
                                    OR (state = 'running' AND lease_expires_at < $6))
                               AND NOT EXISTS (SELECT 1 FROM jobs o
                                               WHERE o.dedupe_key = c.dedupe_key AND o.id <> c.id
                                                 AND (o.state = 'running'
                                                      OR (o.state = 'queued' AND o.id < c.id)))
                             ORDER BY run_at, id LIMIT 1
                             FOR UPDATE SKIP LOCKED)
                 RETURNING id, kind, payload, attempt, max_attempts"
            }
        }
    }

    /// Extends the lease. `false` when the job is no longer this attempt's to run.
    pub async fn heartbeat(&self, job: &Job, lease: Duration) -> Result<bool, StoreError> {
        let now = now_millis();
        let updated = sqlx::query(
            "UPDATE jobs SET lease_expires_at = $1, updated_at = $2
             WHERE id = $3 AND attempt = $4 AND state = 'running'",
        )
        .bind(now + lease.as_millis() as i64)
        .bind(now)
        .bind(job.id)
        .bind(i64::from(job.attempt))
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// Marks the attempt done. `false` when a newer attempt holds the job.
    pub async fn complete(&self, job: &Job) -> Result<bool, StoreError> {
        self.finish_job(job, JobState::Done, None).await
    }

    /// Records a failed attempt: a retryable one is queued again after a backoff while
    /// attempts remain; otherwise the job fails for good.
    pub async fn fail(&self, job: &Job, failure: &JobFailure) -> Result<bool, StoreError> {
        match failure {
            JobFailure::Retryable(error) if job.attempt < job.max_attempts => {
                self.requeue(job, backoff(RETRY_BASE, job.attempt), error, 0)
                    .await
            }
            JobFailure::Retryable(error) | JobFailure::Fatal(error) => {
                self.finish_job(job, JobState::Failed, Some(error)).await
            }
        }
    }

    /// Replaces the held attempt's payload (what is left to do, for the next attempt).
    /// `false` when the job is no longer this attempt's.
    pub async fn set_payload(&self, job: &Job, payload: &str) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE jobs SET payload = $1, updated_at = $2
             WHERE id = $3 AND attempt = $4 AND state = 'running'",
        )
        .bind(payload)
        .bind(now_millis())
        .bind(job.id)
        .bind(i64::from(job.attempt))
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// Puts a job back for later without spending an attempt (a rate limit, not a fault).
    pub async fn postpone(
        &self,
        job: &Job,
        delay: Duration,
        reason: &str,
    ) -> Result<bool, StoreError> {
        self.requeue(job, delay, reason, 1).await
    }

    /// Queues the held attempt's job again after `delay`, granting `extra_attempts` more.
    async fn requeue(
        &self,
        job: &Job,
        delay: Duration,
        error: &str,
        extra_attempts: u32,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE jobs SET state = 'queued', run_at = $1, last_error = $2, lease_owner = NULL,
                    lease_expires_at = NULL, max_attempts = max_attempts + $3, updated_at = $4
             WHERE id = $5 AND attempt = $6 AND state = 'running'",
        )
        .bind(now_millis() + delay.as_millis() as i64)
        .bind(error)
        .bind(i64::from(extra_attempts))
        .bind(now_millis())
        .bind(job.id)
        .bind(i64::from(job.attempt))
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    async fn finish_job(
        &self,
        job: &Job,
        state: JobState,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE jobs SET state = $1, last_error = COALESCE($2, last_error), lease_owner = NULL,
                    lease_expires_at = NULL, updated_at = $3
             WHERE id = $4 AND attempt = $5 AND state = 'running'",
        )
        .bind(state)
        .bind(error)
        .bind(now_millis())
        .bind(job.id)
        .bind(i64::from(job.attempt))
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// Cancels a job that has not finished (queued jobs never start; a running one's
    /// holder is fenced out).
    pub async fn cancel_jobs_by_dedupe_key(&self, dedupe_key: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET state = 'cancelled', updated_at = $1
             WHERE dedupe_key = $2 AND state IN ('queued', 'running')",
        )
        .bind(now_millis())
        .bind(dedupe_key)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// At start-up: the jobs an earlier run of this process (the same `owner`) held died
    /// with it, so their leases expire at once; other processes' leases are left alone.
    /// Returns how many were released.
    pub async fn expire_leases_of(&self, owner: &str) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE jobs SET lease_expires_at = 0, updated_at = $1
             WHERE state = 'running' AND lease_owner = $2",
        )
        .bind(now_millis())
        .bind(owner)
        .execute(&self.writer)
        .await?
        .rows_affected())
    }

    /// Jobs waiting to run (queued, due or not), by kind: the queue's depth for `/metrics`.
    pub async fn queue_depth(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT kind, COUNT(*) FROM jobs WHERE state = 'queued' GROUP BY kind ORDER BY kind",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// A job's state, for tests and reconciliation.
    pub async fn job_state(&self, id: i64) -> Result<(JobState, u32), StoreError> {
        let (state, attempt): (JobState, i64) =
            sqlx::query_as("SELECT state, attempt FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::NotFound)?;
        Ok((state, attempt as u32))
    }
}
