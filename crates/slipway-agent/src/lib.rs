//! Coding agents behind one trait: the Codegen API (`codegen`) and any coding CLI run in
//! the sandbox (`command`). The engine drives a turn — a goal, an answer to a reply or a
//! plan, or a fix — and gets back what the agent answered.

pub mod codegen;
pub mod command;

use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;

/// One turn of an agent's work.
pub struct Turn<'a> {
    /// Slipway's run id (Codegen keeps it in the run's metadata).
    pub run_id: i64,
    pub project_id: i64,
    pub prompt: &'a str,
    pub kind: TurnKind,
    /// The answer expected is a plan, not changes.
    pub plan_mode: bool,
    /// The agent's own id of this run (Codegen), once it has one.
    pub external_id: Option<i64>,
    /// The job's attempt: above 1, an earlier attempt may have started the work already.
    pub attempt: u32,
    pub timeout: Duration,
    pub cancel: &'a CancellationToken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnKind {
    /// The goal.
    Start,
    /// Continue, confirm or modify.
    Resume,
    /// Fix the agent's pull request after a failed validation.
    Fix,
}

/// What the agent answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Reply(String),
    Plan(String),
    /// A pull request the agent opened itself (Codegen).
    PullRequest {
        number: i64,
        url: String,
        branch: Option<String>,
    },
    /// Changes committed and pushed to `branch` as `sha` (command agents); the engine opens
    /// or updates the pull request.
    Pushed {
        branch: String,
        sha: String,
    },
    /// The agent ended without an answer: it failed, gave up, or timed out.
    Failed(String),
    Cancelled,
}

/// What the agent reports while it works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The agent's own run exists (record its id before anything else can happen).
    Started {
        external_id: i64,
        url: Option<String>,
    },
    /// The agent's own status changed (kept as it said it, even when unknown to us).
    Status(String),
    /// A line of output (not yet masked).
    Output(String),
}

/// Why a turn ended without an answer. Whether another attempt may help is the variant's to
/// say ([`AgentError::is_transient`]), never the message's.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The agent's service (Codegen): unavailable for now, or a refusal.
    #[error(transparent)]
    Codegen(#[from] codegen::CodegenError),
    /// Slipway's own work around the agent (its directories and files) failed.
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// git on Slipway's own clone failed.
    #[error("{what}: {source}")]
    Git {
        what: &'static str,
        #[source]
        source: slipway_forge::git::GitError,
    },
    /// The agent's sandbox could not be made.
    #[error(transparent)]
    Cell(#[from] slipway_sandbox::CellError),
    /// The sandbox could not start the agent's command; what it printed.
    #[error("the sandbox could not start the agent: {0}")]
    Unstarted(String),
    /// A task of Slipway's ended abnormally (a panic while copying the agent's files).
    #[error("{what}: {source}")]
    Task {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    /// Trying again will not help; the run fails with this message.
    #[error("{0}")]
    Refused(String),
}

impl AgentError {
    /// Whether another attempt of the turn may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            AgentError::Codegen(error) => error.is_transient(),
            AgentError::Cell(error) => error.is_transient(),
            AgentError::Io { .. }
            | AgentError::Git { .. }
            | AgentError::Unstarted(_)
            | AgentError::Task { .. } => true,
            AgentError::Refused(_) => false,
        }
    }
}

/// A coding agent.
pub trait Agent: Send + Sync {
    /// Does one turn and returns the agent's answer.
    fn work(
        &self,
        turn: Turn<'_>,
        progress: Sender<Progress>,
    ) -> impl Future<Output = Result<Answer, AgentError>> + Send;

    /// Stops the agent's work on run `external_id` where the agent lives elsewhere
    /// (a local command is stopped by cancelling its turn).
    fn stop(&self, external_id: i64) -> impl Future<Output = Result<(), AgentError>> + Send;
}

/// A jittered exponential backoff (see `slipway_core::backoff`).
pub(crate) fn backoff(base: Duration, attempt: u32) -> Duration {
    let mut bytes = [0u8; 2];
    getrandom::getrandom(&mut bytes).expect("the OS random source is available");
    let random = f64::from(u16::from_le_bytes(bytes)) / 65_536.0;
    slipway_core::backoff::backoff(base, attempt, random)
}
