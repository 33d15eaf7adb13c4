//! Agent runs and their fix attempts. A final run (succeeded, failed, cancelled) is never
//! changed again: every update is guarded by the status, so no late event revives it.

use crate::{from_millis, now_millis, Store, StoreError};
use serde::Serialize;
use slipway_core::run::{AgentKind, Response, RunStatus};
use slipway_core::ProjectId;
use time::OffsetDateTime;

const FINAL: &str = "('succeeded', 'failed', 'cancelled')";

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub project_id: ProjectId,
    pub agent: AgentKind,
    pub goal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requirements: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acceptance_criteria: Option<String>,
    #[serde(skip)]
    pub prompt: String,
    /// Who started it (a token's name).
    pub started_by: Option<String>,
    pub status: RunStatus,
    /// The agent's last answer: a reply, a plan or a pull request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Response>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tail: Option<String>,
    /// Why the run waits or why it stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr_number: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_head_sha: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_url: Option<String>,
    pub fix_attempts: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A run to record.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub project: ProjectId,
    pub agent: AgentKind,
    /// Who starts it (a token's name).
    pub started_by: Option<String>,
    pub goal: String,
    pub requirements: Option<String>,
    pub acceptance_criteria: Option<String>,
    pub prompt: String,
    pub max_concurrent: u32,
    pub max_per_hour: u32,
}

/// Why a run was refused.
#[derive(Debug, thiserror::Error)]
pub enum RunRefused {
    #[error("{reason}")]
    OverBudget {
        reason: String,
        retry_after_secs: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A change to a run; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct RunChange {
    pub status: Option<RunStatus>,
    pub response: Option<Response>,
    pub output_tail: Option<String>,
    pub note: Option<String>,
    pub pr_number: Option<i64>,
    pub pr_url: Option<String>,
    pub branch: Option<String>,
    pub agent_head_sha: Option<String>,
    pub external_id: Option<i64>,
    pub external_status: Option<String>,
    pub external_url: Option<String>,
}

/// One fix attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FixAttempt {
    pub number: u32,
    pub validation_id: i64,
    pub step: String,
    /// What the agent was told (the failure and the trimmed, masked log).
    pub evidence: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// When the evidence was sent.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct FixAttemptRow {
    number: i64,
    validation_id: i64,
    step: String,
    evidence: String,
    outcome: Option<String>,
    created_at: i64,
}

const COLUMNS: &str =
    "id, project_id, agent, goal, requirements, acceptance_criteria, prompt, started_by, status,
    response, output_tail, note, pr_number, pr_url, branch, agent_head_sha, external_id,
    external_status, external_url, created_at, updated_at,
    (SELECT COUNT(*) FROM fix_attempts f WHERE f.run_id = agent_runs.id) AS fixes";

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    project_id: i64,
    agent: String,
    goal: String,
    requirements: Option<String>,
    acceptance_criteria: Option<String>,
    prompt: String,
    started_by: Option<String>,
    status: String,
    response: Option<String>,
    output_tail: Option<String>,
    note: Option<String>,
    pr_number: Option<i64>,
    pr_url: Option<String>,
    branch: Option<String>,
    agent_head_sha: Option<String>,
    external_id: Option<i64>,
    external_status: Option<String>,
    external_url: Option<String>,
    created_at: i64,
    updated_at: i64,
    fixes: i64,
}

impl TryFrom<Row> for RunRecord {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self, StoreError> {
        let response = r
            .response
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("run {}: {e}", r.id)))?;
        Ok(RunRecord {
            id: r.id,
            project_id: ProjectId(r.project_id),
            agent: r
                .agent
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("run {}: {e}", r.id)))?,
            goal: r.goal,
            requirements: r.requirements,
            acceptance_criteria: r.acceptance_criteria,
            prompt: r.prompt,
            started_by: r.started_by,
            status: r.status.parse().map_err(StoreError::Corrupt)?,
            response,
            output_tail: r.output_tail,
            note: r.note,
            pr_number: r.pr_number,
            pr_url: r.pr_url,
            branch: r.branch,
            agent_head_sha: r.agent_head_sha,
            external_id: r.external_id,
            external_status: r.external_status,
            external_url: r.external_url,
            fix_attempts: r.fixes as u32,
            created_at: from_millis(r.created_at),
            updated_at: from_millis(r.updated_at),
        })
    }
}

impl Store {
    /// Records a queued run, unless the project's budgets refuse it: too many unfinished
    /// runs, or too many started in the last hour. Checked and recorded on the single writer,
    /// so two requests cannot both take the last slot.
    pub async fn create_run(&self, run: &NewRun) -> Result<RunRecord, RunRefused> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        self.lock_project(&mut tx, run.project).await?;
        let active: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM agent_runs WHERE project_id = $1 AND status NOT IN {FINAL}
               AND status != 'awaiting_input'"
        ))
        .bind(run.project.0)
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        if active >= i64::from(run.max_concurrent) {
            return Err(RunRefused::OverBudget {
                reason: format!(
                    "{active} agent runs of this project are unfinished, the most allowed at once (max_concurrent_runs); wait for one to end or cancel one"
                ),
                retry_after_secs: 30,
            });
        }
        let hour_ago = now - 3_600_000;
        let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(created_at) FROM agent_runs WHERE project_id = $1 AND created_at > $2",
        )
        .bind(run.project.0)
        .bind(hour_ago)
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        if count >= i64::from(run.max_per_hour) {
            let wait_ms = oldest.unwrap_or(now) + 3_600_000 - now;
            let retry_after_secs = (wait_ms.max(0) as u64).div_ceil(1_000).max(1);
            return Err(RunRefused::OverBudget {
                reason: format!(
                    "{count} agent runs started in the last hour, the most allowed (max_runs_per_hour); the next may start in {retry_after_secs} s"
                ),
                retry_after_secs,
            });
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO agent_runs (project_id, agent, goal, requirements, acceptance_criteria,
                prompt, started_by, status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $9) RETURNING id",
        )
        .bind(run.project.0)
        .bind(run.agent.as_str())
        .bind(&run.goal)
        .bind(&run.requirements)
        .bind(&run.acceptance_criteria)
        .bind(&run.prompt)
        .bind(&run.started_by)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(self.run(id).await?)
    }

    pub async fn run(&self, id: i64) -> Result<RunRecord, StoreError> {
        let row: Row = sqlx::query_as(&format!("SELECT {COLUMNS} FROM agent_runs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        row.try_into()
    }

    /// A project's runs, newest first; only those older than run `before`, if given (the
    /// cursor of the previous page).
    pub async fn runs_of_project(
        &self,
        project: ProjectId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM agent_runs WHERE project_id = $1 AND ($2 IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(project.0)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// The unfinished run that owns pull request `number` of a project, if any.
    pub async fn run_of_pull_request(
        &self,
        project: ProjectId,
        number: i64,
    ) -> Result<Option<RunRecord>, StoreError> {
        let row: Option<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM agent_runs WHERE project_id = $1 AND pr_number = $2
               AND status NOT IN {FINAL} ORDER BY id DESC LIMIT 1"
        ))
        .bind(project.0)
        .bind(number)
        .fetch_optional(&self.pool)
        .await?;
        row.map(TryInto::try_into).transpose()
    }

    /// The newest run of a pull request, finished or not.
    pub async fn newest_run_of_pull_request(
        &self,
        project: ProjectId,
        number: i64,
    ) -> Result<Option<RunRecord>, StoreError> {
        let row: Option<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM agent_runs WHERE project_id = $1 AND pr_number = $2
             ORDER BY id DESC LIMIT 1"
        ))
        .bind(project.0)
        .bind(number)
        .fetch_optional(&self.pool)
        .await?;
        row.map(TryInto::try_into).transpose()
    }

    /// Applies `change` unless the run is final (or, with `only_from`, in another status).
    /// Returns the run after the change, or `None` when it was not applied.
    pub async fn update_run(
        &self,
        id: i64,
        only_from: Option<&[RunStatus]>,
        change: &RunChange,
    ) -> Result<Option<RunRecord>, StoreError> {
        let mut guard = format!("status NOT IN {FINAL}");
        if let Some(statuses) = only_from {
            let list: Vec<String> = statuses.iter().map(|s| format!("'{s}'")).collect();
            guard.push_str(&format!(" AND status IN ({})", list.join(", ")));
        }
        let response = change
            .response
            .as_ref()
            .map(|r| serde_json::to_string(r).expect("a response serializes"));
        let updated = sqlx::query(&format!(
            "UPDATE agent_runs SET
                status = COALESCE($1, status), response = COALESCE($2, response),
                output_tail = COALESCE($3, output_tail), note = COALESCE($4, note),
                pr_number = COALESCE($5, pr_number), pr_url = COALESCE($6, pr_url),
                branch = COALESCE($7, branch), agent_head_sha = COALESCE($8, agent_head_sha),
                external_id = COALESCE($9, external_id),
                external_status = COALESCE($10, external_status),
                external_url = COALESCE($11, external_url),
                updated_at = $12
             WHERE id = $13 AND {guard}"
        ))
        .bind(change.status.map(|s| s.as_str()))
        .bind(response)
        .bind(&change.output_tail)
        .bind(&change.note)
        .bind(change.pr_number)
        .bind(&change.pr_url)
        .bind(&change.branch)
        .bind(&change.agent_head_sha)
        .bind(change.external_id)
        .bind(&change.external_status)
        .bind(&change.external_url)
        .bind(now_millis())
        .bind(id)
        .execute(&self.writer)
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(None);
        }
        Ok(Some(self.run(id).await?))
    }

    /// Takes one of Codegen's `per_minute` run creations for this run, in one statement (so
    /// concurrent starts cannot overshoot). `Err(wait)` says when the next slot frees up.
    pub async fn reserve_codegen_start(
        &self,
        run: i64,
        per_minute: u32,
    ) -> Result<Result<(), std::time::Duration>, StoreError> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        self.take_turn(&mut tx, "codegen-starts").await?;
        let taken = sqlx::query(
            "UPDATE agent_runs SET external_started_at = COALESCE(external_started_at, $1)
             WHERE id = $2 AND (external_started_at IS NOT NULL OR
                   (SELECT COUNT(*) FROM agent_runs WHERE external_started_at > $3) < $4)",
        )
        .bind(now)
        .bind(run)
        .bind(now - 60_000)
        .bind(i64::from(per_minute))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if taken == 1 {
            return Ok(Ok(()));
        }
        let (_, oldest) = self.codegen_starts_since(now - 60_000).await?;
        let free_at = oldest.unwrap_or(now) + 60_000;
        Ok(Err(std::time::Duration::from_millis(
            (free_at - now).max(100) as u64,
        )))
    }

    /// How many Codegen runs were created since `since_millis` (its creation rate limit),
    /// and when the oldest of them was.
    pub async fn codegen_starts_since(
        &self,
        since_millis: i64,
    ) -> Result<(u32, Option<i64>), StoreError> {
        let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(external_started_at) FROM agent_runs WHERE external_started_at > $1",
        )
        .bind(since_millis)
        .fetch_one(&self.pool)
        .await?;
        Ok((count as u32, oldest))
    }

    /// Records the start of fix attempt number `number`; `false` if it exists already.
    pub async fn add_fix_attempt(
        &self,
        run: i64,
        number: u32,
        validation_id: i64,
        step: &str,
        evidence: &str,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "INSERT INTO fix_attempts (run_id, number, validation_id, step, evidence, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(run)
        .bind(i64::from(number))
        .bind(validation_id)
        .bind(step)
        .bind(evidence)
        .bind(now_millis())
        .execute(&self.writer)
        .await?
        .rows_affected()
            == 1)
    }

    /// Records how the run's latest fix attempt ended.
    pub async fn finish_fix_attempt(&self, run: i64, outcome: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE fix_attempts SET outcome = $1
             WHERE run_id = $2 AND number = (SELECT MAX(number) FROM fix_attempts WHERE run_id = $3)
               AND outcome IS NULL",
        )
        .bind(outcome)
        .bind(run)
        .bind(run)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn fix_attempts(&self, run: i64) -> Result<Vec<FixAttempt>, StoreError> {
        let rows: Vec<FixAttemptRow> = sqlx::query_as(
            "SELECT number, validation_id, step, evidence, outcome, created_at FROM fix_attempts
             WHERE run_id = $1 ORDER BY number",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| FixAttempt {
                number: r.number as u32,
                validation_id: r.validation_id,
                step: r.step,
                evidence: r.evidence,
                outcome: r.outcome,
                created_at: from_millis(r.created_at),
            })
            .collect())
    }
}

/// One turn of a run's conversation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunMessage {
    /// `agent` or `person`.
    pub who: String,
    /// reply, plan, pull_request; continue, confirm, modify.
    pub kind: String,
    pub text: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    who: String,
    kind: String,
    text: String,
    created_at: i64,
}

impl Store {
    /// Adds a turn to a run's conversation (texts already masked).
    pub async fn add_run_message(
        &self,
        run: i64,
        who: &str,
        kind: &str,
        text: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO run_messages (run_id, who, kind, text, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(run)
        .bind(who)
        .bind(kind)
        .bind(text)
        .bind(crate::now_millis())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// A run's conversation, oldest first.
    pub async fn run_messages(&self, run: i64) -> Result<Vec<RunMessage>, StoreError> {
        let rows: Vec<MessageRow> = sqlx::query_as(
            "SELECT who, kind, text, created_at FROM run_messages WHERE run_id = $1 ORDER BY id",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| RunMessage {
                who: r.who,
                kind: r.kind,
                text: r.text,
                at: crate::from_millis(r.created_at),
            })
            .collect())
    }
}
