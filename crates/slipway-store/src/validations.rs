//! Validations and their steps.

use crate::queue::NewJob;

/// A planned step as stored: its initial status and, when skipped, why.
fn planned(step: &StepPlan) -> (StepStatus, Option<&str>) {
    match step {
        StepPlan::Run => (StepStatus::Queued, None),
        StepPlan::Skip(reason) => (StepStatus::Skipped, Some(reason.as_str())),
    }
}
use crate::{from_millis, now_millis, Store, StoreError};
use serde::Serialize;
use slipway_core::pipeline_source::PipelineSource;
use slipway_core::validation::{StepName, StepPlan, StepStatus, ValidationStatus};
use slipway_core::PipelineConfig;
use slipway_core::{ProjectId, ValidationId};
use time::OffsetDateTime;

/// The queue's job kind for validations.
pub const VALIDATION_JOB: &str = "validation";

/// What to validate.
#[derive(Debug, Clone)]
pub struct NewValidation {
    pub project: ProjectId,
    /// A path or URL that `git fetch` understands.
    pub source: String,
    pub branch: Option<String>,
    pub pr: Option<i64>,
    pub sha: String,
    /// For a pull request: its base, whose head at checkout the head is merged onto in the
    /// workspace.
    pub base: Option<Base>,
    /// "Save and run setup": exactly the settings' setup commands.
    pub setup_trial: bool,
    /// `slipway validate --config`: used when the repository has no `.slipway.toml`.
    pub config_file: Option<PipelineConfig>,
    pub plan: Vec<(StepName, StepPlan)>,
    /// Who or what asked for it ("token ci", "GitHub: synchronize"), for the lists.
    pub started_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRecord {
    pub index: u32,
    pub name: StepName,
    pub status: StepStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it was skipped, or what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// Passed only after a failed try (`[test] retries`).
    pub flaky: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationRecord {
    pub id: ValidationId,
    pub project_id: ProjectId,
    pub source: String,
    pub branch: Option<String>,
    pub pr: Option<i64>,
    /// The head commit validated.
    pub sha: String,
    /// A pull request's base branch, and its head that `sha` was merged onto.
    pub base_ref: Option<String>,
    pub base_sha: Option<String>,
    #[serde(skip)]
    pub base_source: Option<String>,
    /// Where the pipeline came from, once checkout chose it.
    pub pipeline_source: Option<PipelineSource>,
    #[serde(skip)]
    pub setup_trial: bool,
    #[serde(skip)]
    pub config_file: Option<PipelineConfig>,
    /// For a pull request: whether its merge onto the base changes `.slipway.toml` (read
    /// from git at checkout, so a rename, a deletion or a long file list cannot hide it).
    #[serde(skip)]
    pub changes_checks: Option<bool>,
    /// The head commit's first line and author, once checkout read them.
    pub commit_title: Option<String>,
    pub commit_author: Option<String>,
    /// Who or what asked for it.
    pub started_by: Option<String>,
    pub status: ValidationStatus,
    pub attempt: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    pub steps: Vec<StepRecord>,
}

/// A change to one step.
#[derive(Debug, Clone, Default)]
pub struct StepUpdate {
    pub status: Option<StepStatus>,
    pub command: Option<String>,
    pub exit_code: Option<i32>,
    pub detail: Option<String>,
    pub started: bool,
    pub finished: bool,
    pub flaky: bool,
}

/// The branch a pull request merges into, and where it is fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    pub branch: String,
    pub source: String,
}

/// Which of a project's validations a list shows (all by default), newest first.
#[derive(Debug, Clone, Default)]
pub struct ValidationFilter {
    pub pr: Option<i64>,
    pub status: Option<ValidationStatus>,
    pub branch: Option<String>,
    /// Only those older than this one: the cursor of the previous page.
    pub before: Option<ValidationId>,
}

/// A validation was made; these older ones of the same branch or PR must be cancelled.
#[derive(Debug)]
pub struct Created {
    pub validation: ValidationRecord,
    pub superseded: Vec<ValidationId>,
}

#[derive(sqlx::FromRow)]
struct ValidationRow {
    id: i64,
    project_id: i64,
    source: String,
    branch: Option<String>,
    pr_number: Option<i64>,
    sha: String,
    base_ref: Option<String>,
    base_sha: Option<String>,
    base_source: Option<String>,
    pipeline_source: Option<String>,
    setup_trial: i64,
    config_file: Option<String>,
    changes_checks: Option<i64>,
    commit_title: Option<String>,
    commit_author: Option<String>,
    started_by: Option<String>,
    status: String,
    attempt: i64,
    error: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct StepRow {
    idx: i64,
    name: String,
    status: String,
    command: Option<String>,
    exit_code: Option<i64>,
    detail: Option<String>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    flaky: i64,
}

const VALIDATION_COLUMNS: &str = "id, project_id, source, branch, pr_number, sha, base_ref, base_sha, base_source, pipeline_source, setup_trial, config_file, changes_checks, commit_title, commit_author, started_by, status, attempt, error, created_at, started_at, finished_at";
const STEP_COLUMNS: &str =
    "idx, name, status, command, exit_code, detail, started_at, finished_at, flaky";

fn corrupt(e: String) -> StoreError {
    StoreError::Corrupt(e)
}

/// The payload of a validation's job.
#[derive(serde::Serialize, serde::Deserialize)]
struct ValidationJob {
    validation_id: i64,
}

impl crate::Job {
    /// The validation a validation job runs; `None` for other jobs or a malformed payload.
    pub fn validation(&self) -> Option<ValidationId> {
        (self.kind == VALIDATION_JOB)
            .then(|| serde_json::from_str::<ValidationJob>(&self.payload).ok())
            .flatten()
            .map(|job| ValidationId(job.validation_id))
    }
}

fn dedupe_key(id: ValidationId) -> String {
    format!("validation:{id}")
}

/// A step row with the validation it belongs to (for loading many validations at once).
#[derive(sqlx::FromRow)]
struct OwnedStepRow {
    validation_id: i64,
    #[sqlx(flatten)]
    step: StepRow,
}

impl ValidationRow {
    fn record(self, steps: Vec<StepRow>) -> Result<ValidationRecord, StoreError> {
        Ok(ValidationRecord {
            id: ValidationId(self.id),
            project_id: ProjectId(self.project_id),
            source: self.source,
            branch: self.branch,
            pr: self.pr_number,
            sha: self.sha,
            base_ref: self.base_ref,
            base_sha: self.base_sha,
            base_source: self.base_source,
            pipeline_source: self
                .pipeline_source
                .map(|s| s.parse())
                .transpose()
                .map_err(corrupt)?,
            setup_trial: self.setup_trial != 0,
            config_file: self
                .config_file
                .map(|json| serde_json::from_str(&json))
                .transpose()
                .map_err(|e| corrupt(e.to_string()))?,
            changes_checks: self.changes_checks.map(|c| c != 0),
            commit_title: self.commit_title,
            commit_author: self.commit_author,
            started_by: self.started_by,
            status: self.status.parse().map_err(corrupt)?,
            attempt: self.attempt as u32,
            error: self.error,
            created_at: from_millis(self.created_at),
            started_at: self.started_at.map(from_millis),
            finished_at: self.finished_at.map(from_millis),
            steps: steps
                .into_iter()
                .map(StepRow::record)
                .collect::<Result<_, _>>()?,
        })
    }
}

impl StepRow {
    fn record(self) -> Result<StepRecord, StoreError> {
        Ok(StepRecord {
            index: self.idx as u32,
            name: self.name.parse().map_err(corrupt)?,
            status: self.status.parse().map_err(corrupt)?,
            command: self.command,
            exit_code: self.exit_code.map(|c| c as i32),
            detail: self.detail,
            duration_ms: self.started_at.zip(self.finished_at).map(|(s, f)| f - s),
            started_at: self.started_at.map(from_millis),
            finished_at: self.finished_at.map(from_millis),
            flaky: self.flaky != 0,
        })
    }
}

impl Store {
    /// Records a validation with its planned steps and queues its job, in one transaction.
    /// Older unfinished validations of the same project and branch (or PR) are marked for
    /// cancellation and returned, so the caller can stop them at once.
    pub async fn create_validation(&self, new: &NewValidation) -> Result<Created, StoreError> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO validations (project_id, source, branch, pr_number, sha, base_ref,
                                      base_source, setup_trial, config_file, started_by,
                                      status, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'queued', $11) RETURNING id",
        )
        .bind(new.project.0)
        .bind(&new.source)
        .bind(&new.branch)
        .bind(new.pr)
        .bind(&new.sha)
        .bind(new.base.as_ref().map(|b| &b.branch))
        .bind(new.base.as_ref().map(|b| &b.source))
        .bind(i64::from(new.setup_trial))
        .bind(
            new.config_file
                .as_ref()
                .map(|c| serde_json::to_string(c).expect("a pipeline serializes")),
        )
        .bind(&new.started_by)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        for (index, (name, plan)) in new.plan.iter().enumerate() {
            let (status, detail) = planned(plan);
            sqlx::query(
                "INSERT INTO validation_steps (validation_id, idx, name, status, detail)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(index as i64)
            .bind(name.as_str())
            .bind(status.as_str())
            .bind(detail)
            .execute(&mut *tx)
            .await?;
        }
        let superseded: Vec<i64> = if new.branch.is_some() || new.pr.is_some() {
            sqlx::query_scalar(
                "UPDATE validations SET cancel_requested = 1
                 WHERE project_id = $1 AND id <> $2 AND sha <> $3
                   AND status IN ('queued', 'running')
                   AND (($4 IS NOT NULL AND pr_number = $5) OR ($6 IS NULL AND branch = $7))
                 RETURNING id",
            )
            .bind(new.project.0)
            .bind(id)
            .bind(&new.sha)
            .bind(new.pr)
            .bind(new.pr)
            .bind(new.pr)
            .bind(&new.branch)
            .fetch_all(&mut *tx)
            .await?
        } else {
            Vec::new()
        };
        let job = NewJob {
            kind: VALIDATION_JOB.into(),
            payload: serde_json::to_string(&ValidationJob { validation_id: id })
                .expect("a number serializes"),
            dedupe_key: Some(dedupe_key(ValidationId(id))),
            max_attempts: 3,
        };
        crate::queue::insert_job(&mut tx, self.backend, &job).await?;
        tx.commit().await?;
        self.emit_validation_update(ValidationId(id), None).await?;
        Ok(Created {
            validation: self.validation(ValidationId(id)).await?,
            superseded: superseded.into_iter().map(ValidationId).collect(),
        })
    }

    pub async fn validation(&self, id: ValidationId) -> Result<ValidationRecord, StoreError> {
        let row: ValidationRow = sqlx::query_as(&format!(
            "SELECT {VALIDATION_COLUMNS} FROM validations WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        let steps: Vec<StepRow> = sqlx::query_as(&format!(
            "SELECT {STEP_COLUMNS} FROM validation_steps WHERE validation_id = $1 ORDER BY idx"
        ))
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        row.record(steps)
    }

    /// The project's validations that `filter` lets through, newest first.
    pub async fn list_validations(
        &self,
        project: ProjectId,
        filter: &ValidationFilter,
        limit: u32,
    ) -> Result<Vec<ValidationRecord>, StoreError> {
        self.project(project).await?;
        self.validations_where(project, filter, limit).await
    }

    /// A pull request's validations, newest first.
    pub async fn pull_request_validations(
        &self,
        project: ProjectId,
        pr: i64,
        limit: u32,
    ) -> Result<Vec<ValidationRecord>, StoreError> {
        let filter = ValidationFilter {
            pr: Some(pr),
            ..ValidationFilter::default()
        };
        self.validations_where(project, &filter, limit).await
    }

    /// A project's newest validations that `filter` lets through, with their steps, in two
    /// queries.
    async fn validations_where(
        &self,
        project: ProjectId,
        filter: &ValidationFilter,
        limit: u32,
    ) -> Result<Vec<ValidationRecord>, StoreError> {
        const NEWEST: &str = "FROM validations WHERE project_id = $1
               AND ($2 IS NULL OR pr_number = $2) AND ($3 IS NULL OR status = $3)
               AND ($4 IS NULL OR branch = $4) AND ($5 IS NULL OR id < $5)
             ORDER BY id DESC LIMIT $6";
        macro_rules! newest {
            ($sql:expr) => {
                sqlx::query_as($sql)
                    .bind(project.0)
                    .bind(filter.pr)
                    .bind(filter.status.map(|s| s.as_str()))
                    .bind(filter.branch.as_deref())
                    .bind(filter.before.map(|id| id.0))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            };
        }
        let rows: Vec<ValidationRow> = newest!(&format!("SELECT {VALIDATION_COLUMNS} {NEWEST}"));
        let steps: Vec<OwnedStepRow> = newest!(&format!(
            "SELECT validation_id, {STEP_COLUMNS}
             FROM validation_steps WHERE validation_id IN (SELECT id {NEWEST})
             ORDER BY validation_id, idx"
        ));
        let mut by_validation: std::collections::HashMap<i64, Vec<StepRow>> =
            std::collections::HashMap::new();
        for owned in steps {
            by_validation
                .entry(owned.validation_id)
                .or_default()
                .push(owned.step);
        }
        rows.into_iter()
            .map(|row| {
                let steps = by_validation.remove(&row.id).unwrap_or_default();
                row.record(steps)
            })
            .collect()
    }

    /// Marks a validation running for this attempt: steps that did not finish are queued
    /// again, so a retried attempt starts clean.
    pub async fn start_validation(&self, id: ValidationId, attempt: u32) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE validations SET status = 'running', attempt = $1, started_at = $2, error = NULL
             WHERE id = $3",
        )
        .bind(i64::from(attempt))
        .bind(now_millis())
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE validation_steps SET status = 'queued', command = NULL, exit_code = NULL,
                    started_at = NULL, finished_at = NULL, flaky = 0
             WHERE validation_id = $1 AND status <> 'skipped'",
        )
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.emit_validation_update(id, None).await
    }

    pub async fn update_step(
        &self,
        id: ValidationId,
        index: u32,
        update: &StepUpdate,
    ) -> Result<(), StoreError> {
        let now = now_millis();
        sqlx::query(
            "UPDATE validation_steps SET
                status = COALESCE($1, status),
                command = COALESCE($2, command),
                exit_code = COALESCE($3, exit_code),
                detail = COALESCE($4, detail),
                flaky = CASE WHEN $5 THEN 1 ELSE flaky END,
                started_at = CASE WHEN $6 THEN $7 ELSE started_at END,
                finished_at = CASE WHEN $8 THEN $9 ELSE finished_at END
             WHERE validation_id = $10 AND idx = $11",
        )
        .bind(update.status.map(StepStatus::as_str))
        .bind(&update.command)
        .bind(update.exit_code)
        .bind(&update.detail)
        .bind(update.flaky)
        .bind(update.started)
        .bind(now)
        .bind(update.finished)
        .bind(now)
        .bind(id.0)
        .bind(i64::from(index))
        .execute(&self.writer)
        .await?;
        if update.status.is_some() {
            self.emit_validation_update(id, Some(index)).await?;
        }
        Ok(())
    }

    /// Records the verdict. Steps still queued or running become cancelled (or error).
    pub async fn finish_validation(
        &self,
        id: ValidationId,
        status: ValidationStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let leftover = if status == ValidationStatus::Error {
            "error"
        } else {
            "cancelled"
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE validation_steps SET status = $1, finished_at = COALESCE(finished_at, $2)
             WHERE validation_id = $3 AND status IN ('queued', 'running')",
        )
        .bind(leftover)
        .bind(now_millis())
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE validations SET status = $1, error = $2, finished_at = $3 WHERE id = $4",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(now_millis())
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.emit_validation_update(id, None).await
    }

    /// Asks for a validation to stop. A queued one is cancelled at once; a running one
    /// stops at its runner's next check. Returns the status it had.
    pub async fn request_cancel(&self, id: ValidationId) -> Result<ValidationStatus, StoreError> {
        let record = self.validation(id).await?;
        if record.status.is_final() {
            return Ok(record.status);
        }
        sqlx::query("UPDATE validations SET cancel_requested = 1 WHERE id = $1")
            .bind(id.0)
            .execute(&self.writer)
            .await?;
        if record.status == ValidationStatus::Queued {
            self.cancel_jobs_by_dedupe_key(&dedupe_key(id)).await?;
            self.finish_validation(
                id,
                ValidationStatus::Cancelled,
                Some("cancelled before it started"),
            )
            .await?;
        }
        Ok(record.status)
    }

    pub async fn cancel_requested(&self, id: ValidationId) -> Result<bool, StoreError> {
        let flag: Option<i64> =
            sqlx::query_scalar("SELECT cancel_requested FROM validations WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await?;
        Ok(flag.unwrap_or(1) != 0)
    }

    /// Replaces the step plan once the pipeline is known (after checkout chose it), and
    /// records its source.
    pub async fn set_plan(
        &self,
        id: ValidationId,
        source: PipelineSource,
        plan: &[(StepName, StepPlan)],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE validations SET pipeline_source = $1 WHERE id = $2")
            .bind(source.as_str())
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        for (index, (name, step)) in plan.iter().enumerate() {
            let (status, detail) = planned(step);
            sqlx::query(
                "UPDATE validation_steps SET status = $1, detail = $2
                 WHERE validation_id = $3 AND idx = $4 AND name = $5 AND name <> 'checkout'",
            )
            .bind(status.as_str())
            .bind(detail)
            .bind(id.0)
            .bind(index as i64)
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Validations that are not finished but have no unfinished job (their job gave up).
    pub async fn orphaned_validations(&self) -> Result<Vec<ValidationId>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT v.id FROM validations v
             WHERE v.status IN ('queued', 'running')
               AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.dedupe_key = 'validation:' || v.id
                               AND j.state IN ('queued', 'running'))",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(ValidationId).collect())
    }

    /// Unfinished validations of a pull request, and the newest one of any state.
    pub async fn validations_of_pull_request(
        &self,
        project: ProjectId,
        pr: i64,
    ) -> Result<(Vec<ValidationId>, Option<ValidationId>), StoreError> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, status FROM validations WHERE project_id = $1 AND pr_number = $2 ORDER BY id DESC",
        )
        .bind(project.0)
        .bind(pr)
        .fetch_all(&self.pool)
        .await?;
        let mut unfinished = Vec::new();
        for (id, status) in &rows {
            let status: ValidationStatus = status.parse().map_err(corrupt)?;
            if matches!(status, ValidationStatus::Queued | ValidationStatus::Running) {
                unfinished.push(ValidationId(*id));
            }
        }
        Ok((unfinished, rows.first().map(|(id, _)| ValidationId(*id))))
    }

    /// Steps ever marked flaky (passed only on a retry), for `/metrics`.
    pub async fn flaky_step_count(&self) -> Result<u64, StoreError> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM validation_steps WHERE flaky = 1")
                .fetch_one(&self.pool)
                .await?;
        Ok(count as u64)
    }

    /// Records the head commit's title and author, as checkout read them.
    pub async fn set_commit(
        &self,
        id: ValidationId,
        title: &str,
        author: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE validations SET commit_title = $1, commit_author = $2 WHERE id = $3")
            .bind(title)
            .bind(author)
            .bind(id.0)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Records whether a pull request's merge changes the pipeline file (see
    /// [`ValidationRecord::changes_checks`]).
    pub async fn set_changes_checks(
        &self,
        id: ValidationId,
        changes: bool,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE validations SET changes_checks = $1 WHERE id = $2")
            .bind(i64::from(changes))
            .bind(id.0)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Records the base head a validation's checkout merged the head onto.
    pub async fn set_base_sha(&self, id: ValidationId, base_sha: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE validations SET base_sha = $1 WHERE id = $2")
            .bind(base_sha)
            .bind(id.0)
            .execute(&self.writer)
            .await?;
        self.emit_validation_update(id, None).await
    }

    /// Pull requests into `base_ref` whose newest validation passed on a base head other
    /// than `base_sha`: ready to merge before the base moved, so to validate again.
    pub async fn passed_on_another_base(
        &self,
        project: ProjectId,
        base_ref: &str,
        base_sha: &str,
    ) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT v.pr_number FROM validations v
             WHERE v.project_id = $1 AND v.base_ref = $2 AND v.status = 'passed'
               AND COALESCE(v.base_sha, '') <> $3
               AND v.id = (SELECT MAX(w.id) FROM validations w
                           WHERE w.project_id = v.project_id AND w.pr_number = v.pr_number)
             ORDER BY v.pr_number",
        )
        .bind(project.0)
        .bind(base_ref)
        .bind(base_sha)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Puts a running validation back in the queue's hands (shutdown, lost lease).
    pub async fn requeue_validation(&self, id: ValidationId, why: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE validations SET status = 'queued', error = $1 WHERE id = $2 AND status = 'running'")
            .bind(why)
            .bind(id.0)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
