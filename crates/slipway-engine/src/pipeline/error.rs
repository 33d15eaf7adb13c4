//! Why a validation could not run. Every variant is a fault on Slipway's side (its database,
//! git, the sandbox, the machine, the browser it starts, its own configuration): the code's
//! failures are steps' results (`StepEnd::Failed`), never one of these. A validation that
//! ends with one is `error`, never `failed`, and the error keeps its cause.

use slipway_forge::git::GitError;
use slipway_sandbox::snapshot::SnapshotError;
use slipway_sandbox::CellError;
use slipway_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum PipelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// git failed on Slipway's side (reading the checkout it made).
    #[error(transparent)]
    Git(#[from] GitError),
    /// The cell could not be made.
    #[error(transparent)]
    Sandbox(#[from] CellError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A file or process of Slipway's own.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A task of the attempt's own panicked or was cancelled.
    #[error("a task of the validation did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// Chromium could not be started or driven.
    #[error(transparent)]
    Browser(anyhow::Error),
    /// Slipway's own work outlasted its limit.
    #[error("{0} did not end within its time limit")]
    TimedOut(&'static str),
    /// What Slipway was configured with cannot serve the pipeline (no model, say); or the
    /// pipeline's own settings are unusable (it says which).
    #[error("{0}")]
    Config(String),
    /// What Slipway stored for the validation cannot be used (its plan lost a step, say).
    #[error("{0}")]
    Stored(String),
}

pub(crate) type PipelineResult<T> = Result<T, PipelineError>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[test]
    fn the_cause_is_kept_under_what_slipway_says() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no room");
        let error = PipelineError::from(CellError::Io {
            what: "its directory".into(),
            source: io,
        });
        assert_eq!(
            error.to_string(),
            "the sandbox could not be made: its directory: no room"
        );
        let cause = error.source().expect("the system's error is kept");
        assert_eq!(cause.to_string(), "no room");
        let timed_out = PipelineError::TimedOut("the analysis");
        assert_eq!(
            timed_out.to_string(),
            "the analysis did not end within its time limit"
        );
    }
}
