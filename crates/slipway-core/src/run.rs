//! Agent runs: a goal handed to a coding agent, its status, what it answered.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a run is. `Succeeded`, `Failed` and `Cancelled` are final: nothing revives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for the agent to start (a budget or the agent's rate limit may hold it).
    Queued,
    /// The agent is working on the goal or on an answer.
    Working,
    /// The agent replied or proposed a plan; a person answers (continue, confirm, modify).
    AwaitingInput,
    /// The agent's pull request is being validated.
    Validating,
    /// The agent is fixing its pull request after a failed validation.
    Fixing,
    /// The pull request passed validation (and was merged when the project allows it).
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Working => "working",
            Self::AwaitingInput => "awaiting_input",
            Self::Validating => "validating",
            Self::Fixing => "fixing",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    pub const ALL: [RunStatus; 8] = [
        Self::Queued,
        Self::Working,
        Self::AwaitingInput,
        Self::Validating,
        Self::Fixing,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown run status '{s}'"))
    }
}

/// Which agent a run drives: Codegen's API, or a coding CLI in the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    Codegen,
    Command,
}

impl AgentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Codegen => "codegen",
            Self::Command => "command",
        }
    }
}

impl fmt::Display for AgentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgentKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Codegen, Self::Command]
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| format!("unknown agent kind '{s}' (codegen or command)"))
    }
}

/// The three kinds of answer an agent gives (the brief's response types).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Response {
    /// A regular reply: a person may `continue` with text.
    Reply { text: String },
    /// A plan: a person may `confirm` it or `modify` it with text.
    Plan { text: String },
    /// A pull request, linked to the run and validated.
    PullRequest { number: i64, url: String },
}

/// What a person may do next with a run in `status` that last answered `response`.
pub fn allowed_actions(status: RunStatus, response: Option<&Response>) -> &'static [&'static str] {
    match (status, response) {
        (RunStatus::AwaitingInput, Some(Response::Plan { .. })) => &["confirm", "modify", "cancel"],
        (RunStatus::AwaitingInput, _) => &["continue", "cancel"],
        (status, _) if status.is_final() => &[],
        _ => &["cancel"],
    }
}

/// How an agent's own status reads (Codegen's `status` is a free string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExternalState {
    Working,
    Done,
    Failed,
    Stopped,
    /// A value we do not know: kept and shown, and the run is polled on.
    Unknown,
}

/// Reads an agent's status string, case-insensitively.
pub fn external_state(status: &str) -> ExternalState {
    match status.trim().to_ascii_lowercase().as_str() {
        "queued" | "pending" | "running" | "active" | "in_progress" | "evaluation"
        | "initializing" => ExternalState::Working,
        "complete" | "completed" | "succeeded" | "success" | "done" | "paused" => {
            ExternalState::Done
        }
        "failed" | "failure" | "error" | "errored" | "max_iterations_reached" | "out_of_tokens" => {
            ExternalState::Failed
        }
        "cancelled" | "canceled" | "stopped" => ExternalState::Stopped,
        _ => ExternalState::Unknown,
    }
}

/// The number of a GitHub pull request from its URL (`…/pull/42`).
pub fn pull_number_from_url(url: &str) -> Option<i64> {
    let mut parts = url.trim_end_matches('/').rsplit('/');
    let number = parts.next()?.parse().ok()?;
    matches!(parts.next(), Some("pull" | "pulls")).then_some(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_text() {
        for status in RunStatus::ALL {
            assert_eq!(status.as_str().parse::<RunStatus>(), Ok(status));
        }
        assert!("done".parse::<RunStatus>().is_err());
        for kind in [AgentKind::Codegen, AgentKind::Command] {
            assert_eq!(kind.as_str().parse::<AgentKind>(), Ok(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert!("claude".parse::<AgentKind>().is_err());
    }

    #[test]
    fn external_statuses_are_read_case_insensitively_and_unknown_ones_are_kept() {
        assert_eq!(external_state("COMPLETE"), ExternalState::Done);
        assert_eq!(external_state("Running"), ExternalState::Working);
        assert_eq!(external_state(" failed "), ExternalState::Failed);
        assert_eq!(external_state("CANCELLED"), ExternalState::Stopped);
        assert_eq!(external_state("THINKING_HARD"), ExternalState::Unknown);
    }

    #[test]
    fn pull_numbers_come_from_the_url() {
        assert_eq!(
            pull_number_from_url("https://github.com/o/r/pull/42"),
            Some(42)
        );
        assert_eq!(
            pull_number_from_url("https://github.com/o/r/pull/7/"),
            Some(7)
        );
        assert_eq!(
            pull_number_from_url("https://github.com/o/r/issues/7"),
            None
        );
        assert_eq!(pull_number_from_url("https://github.com/o/r/pull/x"), None);
    }

    #[test]
    fn actions_follow_the_answer() {
        let plan = Response::Plan {
            text: "1. do".into(),
        };
        assert_eq!(
            allowed_actions(RunStatus::AwaitingInput, Some(&plan)),
            ["confirm", "modify", "cancel"]
        );
        let reply = Response::Reply { text: "?".into() };
        assert_eq!(
            allowed_actions(RunStatus::AwaitingInput, Some(&reply)),
            ["continue", "cancel"]
        );
        assert!(allowed_actions(RunStatus::Cancelled, Some(&reply)).is_empty());
        assert_eq!(allowed_actions(RunStatus::Validating, None), ["cancel"]);
    }
}
