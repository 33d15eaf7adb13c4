//! The `agent` job: one turn of a run's agent (a typed payload: the run and the turn asked),
//! then what the turn's end means for the job and the run: the next turn queued, a wait, a
//! retry of a transient fault, a hand-back at shutdown, or the run failed.

use super::turn::{self, TurnError};
use super::{dedupe_key, fail_run, Task, TurnEnd, TURN_ATTEMPTS};
use crate::jobs::{self, Attempt, JobKind, Outcome};
use crate::{Engine, Inner};
use serde::{Deserialize, Serialize};
use slipway_core::run::RunStatus;
use slipway_store::{NewJob, RunChange, StoreError};
use tokio::sync::Notify;

/// The job of turn `turn` of run `run`.
pub(super) fn next_turn(run: i64, turn: Task) -> Result<NewJob, StoreError> {
    let payload = TurnPayload { run_id: run, turn };
    jobs::new_job::<AgentJob>(&payload, Some(dedupe_key(run)), TURN_ATTEMPTS)
}

/// The `agent` job: one turn of a run's agent, then what its answer means.
pub(crate) struct AgentJob;

/// The agent job's payload: the run and the turn asked of its agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TurnPayload {
    run_id: i64,
    turn: Task,
}

impl JobKind for AgentJob {
    const KIND: &'static str = "agent";
    type Payload = TurnPayload;

    fn wake(inner: &Inner) -> &Notify {
        &inner.agent_wake
    }

    fn span(payload: &TurnPayload, attempt: u32) -> tracing::Span {
        tracing::info_span!("agent_run", run = payload.run_id, attempt)
    }

    async fn cancelled(engine: &Engine, payload: &TurnPayload) -> bool {
        let run = engine.inner.store.run(payload.run_id).await;
        run.is_ok_and(|run| run.status == RunStatus::Cancelled)
    }

    async fn run(engine: Engine, payload: TurnPayload, attempt: Attempt) -> Outcome {
        let run_id = payload.run_id;
        let registered = RunningRun::new(&engine, run_id, &attempt);
        let result = turn::turn(&engine, &attempt, run_id, payload.turn, &attempt.cancel).await;
        drop(registered);
        if attempt.fenced() {
            return Outcome::Fatal("fenced out".into()); // not recorded: see `run_one`
        }
        if attempt.stopping.is_cancelled() && interrupted(&engine, run_id, &result).await {
            return Outcome::HandBack("interrupted by a shutdown; another worker goes on".into());
        }
        turn_ended(&engine, run_id, &attempt, result).await
    }

    async fn panicked(engine: &Engine, payload: &TurnPayload, _attempt: u32, message: &str) {
        let tell = format!("Slipway: the agent run failed: {message}");
        fail_run(engine, payload.run_id, message, &tell).await;
    }
}

/// The run's cancel token in `Inner::running_runs` (for `Engine::cancel_run`) while a turn
/// runs.
struct RunningRun<'a> {
    engine: &'a Engine,
    run_id: i64,
}

impl<'a> RunningRun<'a> {
    fn new(engine: &'a Engine, run_id: i64, attempt: &Attempt) -> Self {
        let mut runs = engine.inner.running_runs.lock().expect("runs lock");
        runs.insert(run_id, attempt.cancel.clone());
        Self { engine, run_id }
    }
}

impl Drop for RunningRun<'_> {
    fn drop(&mut self) {
        if let Ok(mut runs) = self.engine.inner.running_runs.lock() {
            runs.remove(&self.run_id);
        }
    }
}

/// Whether the turn was cut short by this process's shutdown rather than ended by the agent:
/// the run is still being worked on, and nothing followed from it.
async fn interrupted(engine: &Engine, run_id: i64, result: &Result<TurnEnd, TurnError>) -> bool {
    let nothing_followed = match result {
        Ok(TurnEnd::Done(None)) => true,
        Ok(_) => false,
        Err(error) => error.is_transient(),
    };
    nothing_followed
        && engine
            .inner
            .store
            .run(run_id)
            .await
            .is_ok_and(|run| matches!(run.status, RunStatus::Working | RunStatus::Fixing))
}

/// What a turn's end means for its job, and for the run.
async fn turn_ended(
    engine: &Engine,
    run_id: i64,
    attempt: &Attempt,
    result: Result<TurnEnd, TurnError>,
) -> Outcome {
    match result {
        Ok(TurnEnd::Done(next)) => match next.map(|turn| next_turn(run_id, turn)) {
            Some(Ok(next)) => Outcome::Then(next),
            Some(Err(error)) => {
                tracing::error!(run = run_id, %error, "the next turn was not queued");
                Outcome::Complete
            }
            None => Outcome::Complete,
        },
        Ok(TurnEnd::Postponed(wait, reason)) => Outcome::Postpone(wait, reason),
        Err(error) if error.is_transient() && !attempt.is_last() => {
            let message = error.to_string();
            let change = RunChange {
                note: Some(format!("retrying: {message}")),
                ..RunChange::default()
            };
            let _ = engine.change_run(run_id, None, &change).await;
            Outcome::Retry(message)
        }
        Err(error) => {
            let message = error.to_string();
            tracing::warn!(
                run = run_id,
                error = format!("{error:#}"),
                "agent run failed"
            );
            let tell = format!("Slipway: the agent run failed: {message}");
            fail_run(engine, run_id, &message, &tell).await;
            Outcome::Fatal(message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_agent_payloads_keep_their_format() {
        let stored = r#"{"run_id":7,"turn":{"task":"continue","text":"go on"}}"#;
        let payload: TurnPayload = serde_json::from_str(stored).unwrap();
        assert_eq!(payload.run_id, 7);
        assert!(matches!(payload.turn, Task::Continue { ref text } if text == "go on"));
        let job = next_turn(7, Task::Fix { validation_id: 3 }).unwrap();
        assert_eq!(job.kind, "agent");
        let written: serde_json::Value = serde_json::from_str(&job.payload).unwrap();
        let expected =
            serde_json::json!({"run_id": 7, "turn": {"task": "fix", "validation_id": 3}});
        assert_eq!(written, expected);
        assert_eq!(job.dedupe_key.as_deref(), Some("run:7"));
    }
}
