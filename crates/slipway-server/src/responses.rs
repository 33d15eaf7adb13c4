//! What the API answers with: the store's records as the API shows them, with their OpenAPI
//! schemas (the store knows nothing of HTTP). Each is made `From` its record; the JSON is the
//! record's, field for field, and the schemas keep the records' names.

use serde::Serialize;
use slipway_core::pipeline_source::PipelineSource;
use slipway_core::run::{AgentKind, Response, RunStatus};
use slipway_core::validation::{StepName, StepStatus, ValidationStatus};
use slipway_core::{ProjectId, ValidationId};
use time::OffsetDateTime;

/// A validation with its steps.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    /// Where the pipeline came from, once checkout chose it.
    #[schema(value_type = Option<String>)]
    pub pipeline_source: Option<PipelineSource>,
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
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub finished_at: Option<OffsetDateTime>,
    pub steps: Vec<StepRecord>,
}

impl From<slipway_store::ValidationRecord> for ValidationRecord {
    fn from(v: slipway_store::ValidationRecord) -> Self {
        Self {
            id: v.id,
            project_id: v.project_id,
            source: v.source,
            branch: v.branch,
            pr: v.pr,
            sha: v.sha,
            base_ref: v.base_ref,
            base_sha: v.base_sha,
            pipeline_source: v.pipeline_source,
            commit_title: v.commit_title,
            commit_author: v.commit_author,
            started_by: v.started_by,
            status: v.status,
            attempt: v.attempt,
            error: v.error,
            created_at: v.created_at,
            started_at: v.started_at,
            finished_at: v.finished_at,
            steps: v.steps.into_iter().map(StepRecord::from).collect(),
        }
    }
}

/// One step of a validation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    #[schema(value_type = Option<String>)]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub finished_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// Passed only after a failed try (`[test] retries`).
    pub flaky: bool,
}

impl From<slipway_store::StepRecord> for StepRecord {
    fn from(s: slipway_store::StepRecord) -> Self {
        Self {
            index: s.index,
            name: s.name,
            status: s.status,
            command: s.command,
            exit_code: s.exit_code,
            detail: s.detail,
            started_at: s.started_at,
            finished_at: s.finished_at,
            duration_ms: s.duration_ms,
            flaky: s.flaky,
        }
    }
}

/// One line of a validation's log (secrets masked).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LogLine {
    pub seq: i64,
    pub step: String,
    pub line: String,
}

impl From<slipway_store::LogLine> for LogLine {
    fn from(l: slipway_store::LogLine) -> Self {
        Self {
            seq: l.seq,
            step: l.step,
            line: l.line,
        }
    }
}

/// An agent run.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunRecord {
    pub id: i64,
    pub project_id: ProjectId,
    pub agent: AgentKind,
    pub goal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requirements: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acceptance_criteria: Option<String>,
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
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: OffsetDateTime,
}

impl From<slipway_store::RunRecord> for RunRecord {
    fn from(r: slipway_store::RunRecord) -> Self {
        Self {
            id: r.id,
            project_id: r.project_id,
            agent: r.agent,
            goal: r.goal,
            requirements: r.requirements,
            acceptance_criteria: r.acceptance_criteria,
            started_by: r.started_by,
            status: r.status,
            response: r.response,
            output_tail: r.output_tail,
            note: r.note,
            pr_number: r.pr_number,
            pr_url: r.pr_url,
            branch: r.branch,
            agent_head_sha: r.agent_head_sha,
            external_id: r.external_id,
            external_status: r.external_status,
            external_url: r.external_url,
            fix_attempts: r.fix_attempts,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// One fix attempt of a run.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
}

impl From<slipway_store::FixAttempt> for FixAttempt {
    fn from(f: slipway_store::FixAttempt) -> Self {
        Self {
            number: f.number,
            validation_id: f.validation_id,
            step: f.step,
            evidence: f.evidence,
            outcome: f.outcome,
            created_at: f.created_at,
        }
    }
}

/// Where a local pull request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PullState {
    Open,
    Merged,
    /// Closed without merging.
    Closed,
}

impl From<slipway_store::PullState> for PullState {
    fn from(state: slipway_store::PullState) -> Self {
        match state {
            slipway_store::PullState::Open => Self::Open,
            slipway_store::PullState::Merged => Self::Merged,
            slipway_store::PullState::Closed => Self::Closed,
        }
    }
}

/// A pull request of the local forge.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PullRequest {
    pub project_id: ProjectId,
    pub number: i64,
    pub title: String,
    pub head: String,
    pub base: String,
    pub head_sha: String,
    pub state: PullState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_sha: Option<String>,
    /// Why it is not merged (conflicting paths, a failed validation), when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: OffsetDateTime,
}

impl From<slipway_store::PullRequest> for PullRequest {
    fn from(p: slipway_store::PullRequest) -> Self {
        Self {
            project_id: p.project_id,
            number: p.number,
            title: p.title,
            head: p.head,
            base: p.base,
            head_sha: p.head_sha,
            state: p.state.into(),
            merge_sha: p.merge_sha,
            note: p.note,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}
