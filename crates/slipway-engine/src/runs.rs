//! Agent runs: a goal goes to the project's agent; its answer is a reply, a plan or a pull
//! request; a pull request is validated; a failed validation goes back to the agent with its
//! evidence, at most `max_fix_attempts` times. Each turn of the agent is a durable job.

mod fix;
mod job;
mod turn;

pub(crate) use fix::after_validation;
pub(crate) use job::AgentJob;

use crate::jobs;
use crate::Engine;
use serde::{Deserialize, Serialize};
use slipway_agent::codegen::CodegenAgent;
use slipway_core::prompt::{self, Goal};
use slipway_core::run::{AgentKind, Response, RunStatus};
use slipway_core::settings::AgentConfig;
use slipway_core::Project;
use slipway_forge::Forge;
use slipway_store::{EventKind, NewRun, RunChange, RunRecord, RunRefused, StoreError};
use std::time::Duration;

/// Attempts of one turn (transient faults: the agent's API, git, the store).
const TURN_ATTEMPTS: u32 = 5;
/// Codegen allows this many run creations a minute.
const CODEGEN_STARTS_PER_MINUTE: u32 = 10;
const OUTPUT_TAIL_LINES: usize = 40;
const MAX_GOAL_CHARS: usize = 20_000;

/// A turn the agent is asked for, stored as the agent job's payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
enum Task {
    Start,
    Continue { text: String },
    Confirm,
    Modify { text: String },
    Fix { validation_id: i64 },
}

/// A person's answer to a run that awaits input.
#[derive(Debug, Clone)]
pub enum RunAnswer {
    Continue(String),
    Confirm,
    Modify(String),
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Invalid(String),
    /// The run is not in a state that allows this.
    #[error("{0}")]
    Conflict(String),
    #[error("{reason}")]
    OverBudget {
        reason: String,
        retry_after_secs: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Engine {
    /// Starts an agent run for `goal`, within the project's budgets.
    pub async fn start_run(
        &self,
        project: &Project,
        goal: Goal,
        started_by: &str,
    ) -> Result<RunRecord, RunError> {
        let text = goal.text.trim();
        if text.is_empty() || goal.text.chars().count() > MAX_GOAL_CHARS {
            return Err(RunError::Invalid(format!(
                "goal: give 1 to {MAX_GOAL_CHARS} characters saying what the agent should do"
            )));
        }
        let settings = self.inner.store.settings(project.id).await?;
        let (agent, plan_mode) = match &settings.agent {
            AgentConfig::Codegen { plan_mode, .. } => {
                if self.inner.config.codegen.is_none() {
                    return Err(RunError::Invalid(
                        "this project's agent is Codegen, but CODEGEN_API_TOKEN and CODEGEN_ORG_ID are not set; set them, or give the project a command agent in its settings".into(),
                    ));
                }
                (AgentKind::Codegen, *plan_mode)
            }
            AgentConfig::Command {
                plan_mode, command, ..
            } => {
                if let Err(why) = self.check_agent_command(command) {
                    return Err(RunError::Invalid(format!(
                        "the agent's command cannot run (Slipway's configuration, not the agent): {why}"
                    )));
                }
                if project.location.github().is_some() && self.inner.config.github.is_none() {
                    return Err(RunError::Invalid(
                        "a command agent's pull request on GitHub is opened through the GitHub API: set GITHUB_TOKEN (or a GitHub App)".into(),
                    ));
                }
                (AgentKind::Command, *plan_mode)
            }
        };
        let run = self
            .inner
            .store
            .create_run(&NewRun {
                project: project.id,
                agent,
                started_by: Some(started_by.to_owned()),
                goal: goal.text.clone(),
                requirements: goal.requirements.clone(),
                acceptance_criteria: goal.acceptance_criteria.clone(),
                prompt: prompt::for_goal(&settings, &goal, plan_mode),
                max_concurrent: settings.max_concurrent_runs,
                max_per_hour: settings.max_runs_per_hour,
            })
            .await
            .map_err(|e| match e {
                RunRefused::OverBudget {
                    reason,
                    retry_after_secs,
                } => RunError::OverBudget {
                    reason,
                    retry_after_secs,
                },
                RunRefused::Store(e) => RunError::Store(e),
            })?;
        self.emit_run(&run).await;
        self.enqueue_turn(run.id, &Task::Start).await?;
        tracing::info!(run = run.id, project = %project.id, %agent, "agent run queued");
        Ok(run)
    }

    /// Answers a run that awaits input: continue a reply, confirm or modify a plan.
    pub async fn answer_run(&self, id: i64, answer: RunAnswer) -> Result<RunRecord, RunError> {
        let run = self.inner.store.run(id).await?;
        let is_plan = matches!(run.response, Some(Response::Plan { .. }));
        let task = match (answer, is_plan) {
            (RunAnswer::Continue(text), false) => Task::Continue {
                text: checked_text(text)?,
            },
            (RunAnswer::Confirm, true) => Task::Confirm,
            (RunAnswer::Modify(text), true) => Task::Modify {
                text: checked_text(text)?,
            },
            (RunAnswer::Continue(_), true) => {
                return Err(RunError::Conflict(
                    "the agent proposed a plan: confirm it, or modify it with text".into(),
                ))
            }
            (_, false) => {
                return Err(RunError::Conflict(
                    "there is no plan to confirm or modify; continue with text instead".into(),
                ))
            }
        };
        let change = RunChange {
            status: Some(RunStatus::Working),
            note: Some(String::new()),
            ..RunChange::default()
        };
        let Some(run) = self
            .change_run(id, Some(&[RunStatus::AwaitingInput]), &change)
            .await?
        else {
            return Err(RunError::Conflict(format!(
                "run {id} is {}, not awaiting input; only an agent's reply or plan can be answered",
                run.status
            )));
        };
        let (kind, text) = match &task {
            Task::Continue { text } => ("continue", text.clone()),
            Task::Modify { text } => ("modify", text.clone()),
            _ => ("confirm", String::new()),
        };
        self.inner
            .store
            .add_run_message(id, "person", kind, &text)
            .await?;
        self.enqueue_turn(id, &task).await?;
        Ok(run)
    }

    /// Cancels a run: a local agent's processes die, Codegen's agents on its pull request are
    /// stopped, and nothing later revives it.
    pub async fn cancel_run(&self, id: i64) -> Result<RunRecord, RunError> {
        let run = self.inner.store.run(id).await?;
        let change = RunChange {
            status: Some(RunStatus::Cancelled),
            note: Some("cancelled by a person".into()),
            ..RunChange::default()
        };
        let Some(cancelled) = self.change_run(id, None, &change).await? else {
            return Err(RunError::Conflict(format!(
                "run {id} is already {}",
                run.status
            )));
        };
        self.inner
            .store
            .cancel_jobs_by_dedupe_key(&dedupe_key(id))
            .await?;
        if let Some(token) = self.inner.running_runs.lock().expect("runs lock").get(&id) {
            token.cancel();
        }
        // Codegen has no cancel: its polling stops here; `ban` stops the agents of the run's
        // pull request (and flags it until `unban`, done when Slipway validates it again).
        if let (Some(external), Some(codegen), Some(_)) =
            (run.external_id, &self.inner.codegen, run.pr_number)
        {
            if let Err(error) = codegen.ban(external).await {
                tracing::warn!(run = id, %error, "Codegen's agents could not be stopped");
            }
        }
        if let Some(number) = run.pr_number {
            let project = self.inner.store.project(run.project_id).await?;
            self.say_on_pull_request(&project, &run, number, "Slipway: the agent run was cancelled; the agent will not push to this pull request again.").await;
        }
        Ok(cancelled)
    }

    /// A pull request whose Codegen run was cancelled (and so banned) is validated again
    /// (a push, a retry, a re-run): check-suite events may reach it again.
    pub(crate) async fn unban_cancelled_run(&self, project: &Project, pr: Option<i64>) {
        let (Some(number), Some(codegen)) = (pr, &self.inner.codegen) else {
            return;
        };
        let run = match self
            .inner
            .store
            .newest_run_of_pull_request(project.id, number)
            .await
        {
            Ok(Some(run)) => run,
            Ok(None) => return,
            Err(error) => return tracing::warn!(%error, "the pull request's run was not read"),
        };
        if let (RunStatus::Cancelled, Some(external)) = (run.status, run.external_id) {
            if let Err(error) = codegen.unban(external).await {
                tracing::warn!(run = run.id, %error, "Codegen's ban was not lifted");
            }
        }
    }

    async fn enqueue_turn(&self, run: i64, task: &Task) -> Result<(), StoreError> {
        jobs::enqueue::<AgentJob>(&self.inner, job::next_turn(run, task.clone())?).await?;
        Ok(())
    }

    /// Applies a change and tells live subscribers; `None` when the run is final (or not in
    /// one of `only_from`).
    pub(crate) async fn change_run(
        &self,
        id: i64,
        only_from: Option<&[RunStatus]>,
        change: &RunChange,
    ) -> Result<Option<RunRecord>, StoreError> {
        let run = self.inner.store.update_run(id, only_from, change).await?;
        if let Some(run) = &run {
            // Each answer of the agent joins the run's conversation.
            if let Some(response) = &change.response {
                let (kind, text) = match response {
                    Response::Reply { text } => ("reply", text.clone()),
                    Response::Plan { text } => ("plan", text.clone()),
                    Response::PullRequest { url, .. } => ("pull_request", url.clone()),
                };
                self.inner
                    .store
                    .add_run_message(id, "agent", kind, &text)
                    .await?;
            }
            self.emit_run(run).await;
            if let Some(status) = change.status {
                crate::notify::run_changed(self, run, status).await;
            }
        }
        Ok(run)
    }

    async fn emit_run(&self, run: &RunRecord) {
        // Every viewer's event stream gets it: masked as the API shows it.
        let run = &match self.masked_run(run.clone()).await {
            Ok(masked) => masked,
            Err(error) => {
                tracing::error!(run = run.id, %error, "the run's update was not announced");
                return;
            }
        };
        let payload = serde_json::json!({
            "type": "agent_run_update",
            "project_id": run.project_id,
            "agent_run_id": run.id,
            "status": run.status,
            "data": {
                "response": run.response,
                "note": run.note,
                "pr_url": run.pr_url,
                "fix_attempts": run.fix_attempts,
                "external_status": run.external_status,
            },
        });
        if let Err(error) = self
            .inner
            .store
            .emit_event(run.project_id, EventKind::AgentRunUpdate, &payload)
            .await
        {
            tracing::error!(%error, "agent_run_update not recorded");
        }
    }

    /// The Codegen agent for a project's `model` and `repo_id`, when Codegen is configured.
    fn codegen_agent(&self, model: &Option<String>, repo_id: Option<i64>) -> Option<CodegenAgent> {
        Some(CodegenAgent {
            client: self.inner.codegen.clone()?,
            model: model.clone(),
            repo_id,
            poll_every: self.inner.config.agent_poll_every,
        })
    }

    /// Tells the pull request what became of the run (the local forge keeps it as its note).
    async fn say_on_pull_request(
        &self,
        project: &Project,
        run: &RunRecord,
        number: i64,
        text: &str,
    ) {
        let marker = format!("<!-- slipway-run-{} -->", run.id);
        let result = match self.forge(project) {
            Some(forge) => forge.comment(number, &marker, text).await,
            None => Ok(()),
        };
        if let Err(error) = result {
            tracing::warn!(run = run.id, pr = number, %error, "could not tell the pull request");
        }
    }
}

fn dedupe_key(run: i64) -> String {
    format!("run:{run}")
}

fn checked_text(text: String) -> Result<String, RunError> {
    if text.trim().is_empty() || text.chars().count() > MAX_GOAL_CHARS {
        return Err(RunError::Invalid(format!(
            "text: give 1 to {MAX_GOAL_CHARS} characters"
        )));
    }
    Ok(text)
}

enum TurnEnd {
    /// The turn is over; the next one, if any, is queued once this job has ended.
    Done(Option<Task>),
    /// Not now (Codegen's creation rate limit): the job runs again after the wait.
    Postponed(Duration, String),
}

/// `change`, plus: the run's answer is pull request `number`, whose head `sha` (the agent's)
/// is being validated.
fn validating(
    mut change: RunChange,
    number: i64,
    url: String,
    branch: Option<String>,
    sha: String,
) -> RunChange {
    change.status = Some(RunStatus::Validating);
    change.response = Some(Response::PullRequest {
        number,
        url: url.clone(),
    });
    change.pr_number = Some(number);
    change.pr_url = Some(url);
    change.branch = branch;
    change.agent_head_sha = Some(sha);
    change
}

/// Fails the run with `message` as its note, and tells its pull request `tell`.
async fn fail_run(engine: &Engine, run_id: i64, message: &str, tell: &str) {
    let change = RunChange {
        status: Some(RunStatus::Failed),
        note: Some(message.to_owned()),
        ..RunChange::default()
    };
    match engine.change_run(run_id, None, &change).await {
        Ok(Some(run)) => {
            if let Some(number) = run.pr_number {
                if let Ok(project) = engine.inner.store.project(run.project_id).await {
                    engine
                        .say_on_pull_request(&project, &run, number, tell)
                        .await;
                }
            }
        }
        Ok(None) => {}
        Err(error) => tracing::error!(run = run_id, %error, "the run's failure was not recorded"),
    }
}
