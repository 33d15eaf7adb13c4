//! The `validate` tool: submit, notify progress per step until the verdict, and cancel the
//! validation when the client cancels the request (waiting until nothing of it runs).

use crate::error::ToolError;
use crate::tools::{self, LocalValidateArgs, ServerValidateArgs};
use crate::{report_result, Caller, Scope, SlipwayMcp};
use rmcp::model::{CallToolResult, JsonObject, ProgressNotificationParam, ProgressToken};
use rmcp::service::RequestContext;
use rmcp::{Peer, RoleServer};
use slipway_core::validation::{StepName, StepStatus};
use slipway_core::ValidationId;
use slipway_engine::{SubmitError, Target};
use slipway_store::{StepRecord, Store, ValidationRecord};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the state is read when no event wakes the watcher first.
const POLL: Duration = Duration::from_millis(250);

pub(crate) async fn call(
    server: &SlipwayMcp,
    arguments: Option<JsonObject>,
    caller: &Caller,
    context: RequestContext<RoleServer>,
) -> Result<CallToolResult, ToolError> {
    let record = match &server.scope {
        Scope::Local(repos) => {
            let args: LocalValidateArgs = tools::parse("validate", arguments)?;
            if args.path.trim().is_empty() {
                return Err(ToolError::BadArgument(
                    "path: send the repository's directory, e.g. \"/home/me/app\" or \".\"".into(),
                ));
            }
            repos.submit(&args.path, args.base.as_deref()).await?
        }
        Scope::Server => {
            let args: ServerValidateArgs = tools::parse("validate", arguments)?;
            submit_on_server(server, args, caller).await?
        }
    };
    let progress = context
        .meta
        .get_progress_token()
        .map(|token| Progress::new(context.peer.clone(), token));
    // The watcher is a task of its own: whatever becomes of this request, a cancellation
    // it saw is carried through to the end of the validation.
    let watcher = tokio::spawn(follow(
        server.store.clone(),
        server.engine.clone(),
        record.id,
        progress,
        context.ct.clone(),
    ));
    let done = watcher
        .await
        .map_err(|e| ToolError::Slipway(format!("the validation's watcher failed: {e}")))??;
    report_result(&server.report(&done).await?)
}

async fn submit_on_server(
    server: &SlipwayMcp,
    args: ServerValidateArgs,
    caller: &Caller,
) -> Result<ValidationRecord, ToolError> {
    let project = crate::runs::project(&server.store, &args.project).await?;
    let target = match (args.branch, args.sha) {
        (Some(branch), None) => {
            slipway_core::project::validate_branch("branch", &branch)
                .map_err(|e| ToolError::BadArgument(e.to_string()))?;
            Target::Branch(branch)
        }
        (None, Some(sha)) => Target::Sha(sha),
        _ => {
            return Err(ToolError::BadArgument(format!(
            "give exactly one of branch or sha, e.g. {{\"project\": \"{}\", \"branch\": \"{}\"}}",
            project.name, project.default_branch
        )))
        }
    };
    server
        .engine
        .submit_by(&project, target, format!("{} (MCP)", caller.name))
        .await
        .map_err(submit_error)
}

pub(crate) fn submit_error(error: SubmitError) -> ToolError {
    match error {
        SubmitError::Invalid(message) => ToolError::BadArgument(message),
        SubmitError::Store(error) => error.into(),
    }
}

/// Follows validation `id` to its end, notifying each step's start and end; `cancelled`
/// cancels it, and the validation is still followed until it has stopped.
async fn follow(
    store: Store,
    engine: slipway_engine::Engine,
    id: ValidationId,
    mut progress: Option<Progress>,
    cancelled: CancellationToken,
) -> Result<ValidationRecord, ToolError> {
    let mut events = store.subscribe_events();
    let mut cancelling = false;
    loop {
        let record = store.validation(id).await?;
        if let Some(progress) = &mut progress {
            progress.tell(&record).await;
        }
        if record.status.is_final() {
            return Ok(record);
        }
        tokio::select! {
            _ = cancelled.cancelled(), if !cancelling => {
                cancelling = true;
                tracing::info!(validation = %id, "MCP request cancelled: cancelling the validation");
                engine.cancel(id).await?;
            }
            event = events.recv() => {
                if let Err(tokio::sync::broadcast::error::RecvError::Closed) = event {
                    tokio::time::sleep(POLL).await;
                }
            }
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Progress notifications of one request: one per step started or ended.
struct Progress {
    peer: Peer<RoleServer>,
    token: ProgressToken,
    steps: StepProgress,
}

impl Progress {
    fn new(peer: Peer<RoleServer>, token: ProgressToken) -> Self {
        Self {
            peer,
            token,
            steps: StepProgress::default(),
        }
    }

    async fn tell(&mut self, record: &ValidationRecord) {
        for note in self.steps.news(&record.steps) {
            let mut param =
                ProgressNotificationParam::new(self.token.clone(), note.progress as f64)
                    .with_message(note.message);
            if let Some(total) = note.total {
                param = param.with_total(total as f64);
            }
            if let Err(error) = self.peer.notify_progress(param).await {
                tracing::debug!(%error, "a progress notification was not delivered");
            }
        }
    }
}

/// What a progress notification says: `progress` counts the notifications sent (the MCP
/// spec wants it to increase with each one, which counting finished steps does not: a
/// step can be told after one that ended later); `total` is the most there can be (a start
/// and an end per step), left out once it would be passed.
#[derive(Debug, PartialEq)]
struct Note {
    progress: u32,
    total: Option<u32>,
    message: String,
}

/// Which steps' starts and ends were told already.
#[derive(Default)]
struct StepProgress {
    told: Vec<(StepName, StepStatus)>,
    sent: u32,
}

impl StepProgress {
    /// The notes for what `steps` show that was not told yet.
    fn news(&mut self, steps: &[StepRecord]) -> Vec<Note> {
        let most = 2 * steps.len() as u32;
        let mut notes = Vec::new();
        for step in steps {
            let worth = step.status == StepStatus::Running
                || (step.status.is_final() && step.status != StepStatus::Skipped);
            if !worth || self.told.contains(&(step.name, step.status)) {
                continue;
            }
            self.told.push((step.name, step.status));
            self.sent += 1;
            let took = step
                .duration_ms
                .map(|ms| format!(" in {:.1}s", ms as f64 / 1000.0))
                .unwrap_or_default();
            notes.push(Note {
                progress: self.sent,
                total: (self.sent <= most).then_some(most),
                message: format!("{} {}{took}", step.name, step.status),
            });
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(index: u32, name: StepName, status: StepStatus) -> StepRecord {
        StepRecord {
            index,
            name,
            status,
            command: None,
            exit_code: None,
            detail: None,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            flaky: false,
        }
    }

    #[test]
    fn progress_increases_with_every_notification() {
        use StepName::*;
        use StepStatus::*;
        let mut progress = StepProgress::default();
        // Build ends while test is still told as running, then test ends, then a step
        // before both is told late: the count of finished steps would go 1, 2, 1.
        let reads = [
            vec![
                step(0, Build, Running),
                step(1, Test, Queued),
                step(2, Judge, Queued),
            ],
            vec![
                step(0, Build, Passed),
                step(1, Test, Running),
                step(2, Judge, Queued),
            ],
            vec![
                step(0, Build, Passed),
                step(1, Test, Passed),
                step(2, Judge, Running),
            ],
            vec![
                step(0, Build, Passed),
                step(1, Test, Passed),
                step(2, Judge, Failed),
            ],
        ];
        let notes: Vec<Note> = reads.iter().flat_map(|r| progress.news(r)).collect();
        let values: Vec<u32> = notes.iter().map(|n| n.progress).collect();
        assert_eq!(values, [1, 2, 3, 4, 5, 6], "{notes:?}");
        assert!(notes.iter().all(|n| n.total == Some(6)), "{notes:?}");
        assert_eq!(notes[5].message, "judge failed");
        // Nothing new, nothing told.
        assert!(progress.news(&reads[3]).is_empty());
    }
}
