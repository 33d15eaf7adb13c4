//! Agent runs: a goal goes to the project's agent; its answer is a reply, a plan or a pull
//! request; a pull request is validated; a failed validation goes back to the agent with its
//! evidence, at most `max_fix_attempts` times. Each turn of the agent is a durable job.

use crate::{pipeline, Engine};
use serde::{Deserialize, Serialize};
use slipway_agent::codegen::CodegenAgent;
use slipway_agent::command::CommandAgent;
use slipway_agent::{Agent, AgentError, Answer, Progress, Turn, TurnKind};
use slipway_core::policy::PullRequestPolicy;
use slipway_core::prompt::{self, Evidence, Goal};
use slipway_core::run::{Response, RunStatus};
use slipway_core::settings::AgentConfig;
use slipway_core::validation::{StepStatus, ValidationStatus};
use slipway_core::{Masker, Project, ValidationId};
use slipway_forge::Forge;
use slipway_store::{
    Job, JobFailure, NewJob, NewRun, RunChange, RunRecord, RunRefused, StoreError,
};
use std::collections::VecDeque;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const AGENT_JOB: &str = "agent";
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
    pub async fn start_run(&self, project: &Project, goal: Goal) -> Result<RunRecord, RunError> {
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
                ("codegen", *plan_mode)
            }
            AgentConfig::Command { plan_mode, .. } => {
                if project.location.github().is_some() && self.inner.config.github.is_none() {
                    return Err(RunError::Invalid(
                        "a command agent's pull request on GitHub is opened through the GitHub API: set GITHUB_TOKEN (or a GitHub App)".into(),
                    ));
                }
                ("command", *plan_mode)
            }
        };
        let run = self
            .inner
            .store
            .create_run(&NewRun {
                project: project.id,
                agent: agent.into(),
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
        tracing::info!(run = run.id, project = %project.id, agent, "agent run queued");
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
        if let (Some(external), Some(codegen)) = (run.external_id, &self.inner.codegen) {
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

    async fn enqueue_turn(&self, run: i64, task: &Task) -> Result<(), StoreError> {
        let payload = serde_json::json!({"run_id": run, "turn": task});
        self.inner
            .store
            .enqueue(&NewJob {
                kind: AGENT_JOB.into(),
                payload: payload.to_string(),
                dedupe_key: Some(dedupe_key(run)),
                max_attempts: 5,
            })
            .await?;
        self.inner.agent_wake.notify_one();
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
            self.emit_run(run).await;
        }
        Ok(run)
    }

    async fn emit_run(&self, run: &RunRecord) {
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
            .emit_event(run.project_id, "agent_run_update", &payload)
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

/// Runs one leased agent job: one turn of the run's agent, then what its answer means.
pub(crate) async fn run_agent_job(engine: &Engine, job: Job, shutdown: &CancellationToken) {
    let parsed = serde_json::from_str::<serde_json::Value>(&job.payload)
        .ok()
        .and_then(|v| {
            Some((
                v["run_id"].as_i64()?,
                serde_json::from_value::<Task>(v["turn"].clone()).ok()?,
            ))
        });
    let store = &engine.inner.store;
    let Some((run_id, task)) = parsed else {
        let _ = store
            .fail(&job, &JobFailure::Fatal("malformed payload".into()))
            .await;
        return;
    };
    let cancel = shutdown.child_token();
    engine
        .inner
        .running_runs
        .lock()
        .expect("runs lock")
        .insert(run_id, cancel.clone());
    let watcher = tokio::spawn(watch_run(
        engine.clone(),
        job.clone(),
        run_id,
        cancel.clone(),
    ));
    let span = tracing::info_span!("agent_run", run = run_id, attempt = job.attempt);
    let result =
        tracing::Instrument::instrument(turn(engine, &job, run_id, task, &cancel), span).await;
    watcher.abort();
    engine
        .inner
        .running_runs
        .lock()
        .expect("runs lock")
        .remove(&run_id);
    let outcome = match result {
        Ok(TurnEnd::Done(next)) => {
            let completed = store.complete(&job).await;
            if let Some(next) = next {
                if let Err(error) = engine.enqueue_turn(run_id, &next).await {
                    tracing::error!(run = run_id, %error, "the next turn was not queued");
                }
            }
            completed
        }
        Ok(TurnEnd::Postponed(wait, reason)) => store.postpone(&job, wait, &reason).await,
        Err(AgentError::Unavailable(message))
            if !shutdown.is_cancelled() && job.attempt < job.max_attempts =>
        {
            let change = RunChange {
                note: Some(format!("retrying: {message}")),
                ..RunChange::default()
            };
            let _ = engine.change_run(run_id, None, &change).await;
            store.fail(&job, &JobFailure::Retryable(message)).await
        }
        Err(AgentError::Unavailable(message)) if shutdown.is_cancelled() => {
            store.fail(&job, &JobFailure::Retryable(message)).await
        }
        Err(error) => {
            let message = error.to_string();
            tracing::warn!(run = run_id, %message, "agent run failed");
            fail_run(engine, run_id, &message).await;
            store.fail(&job, &JobFailure::Fatal(message)).await
        }
    };
    if let Err(error) = outcome {
        tracing::error!(run = run_id, %error, "could not record the agent job's end");
    }
}

enum TurnEnd {
    /// The turn is over; the next one, if any, is queued once this job has ended.
    Done(Option<Task>),
    /// Not now (Codegen's creation rate limit): the job runs again after the wait.
    Postponed(Duration, String),
}

async fn turn(
    engine: &Engine,
    job: &Job,
    run_id: i64,
    task: Task,
    cancel: &CancellationToken,
) -> Result<TurnEnd, AgentError> {
    let store = &engine.inner.store;
    let internal = |e: StoreError| AgentError::Unavailable(e.to_string());
    let run = store.run(run_id).await.map_err(internal)?;
    if run.status.is_final() {
        return Ok(TurnEnd::Done(None));
    }
    let project = store.project(run.project_id).await.map_err(internal)?;
    let settings = store.settings(project.id).await.map_err(internal)?;
    let secrets = store.secret_values(project.id).await.map_err(internal)?;
    let masker = Masker::new(secrets.iter().map(|(_, v)| v.expose()));
    let is_codegen = run.agent == "codegen";
    let plan_mode_setting = match &settings.agent {
        AgentConfig::Codegen { plan_mode, .. } | AgentConfig::Command { plan_mode, .. } => {
            *plan_mode
        }
    };
    let last_text = match &run.response {
        Some(Response::Reply { text } | Response::Plan { text }) => text.clone(),
        _ => String::new(),
    };
    let (prompt, kind, plan_mode) = match &task {
        Task::Start => (run.prompt.clone(), TurnKind::Start, plan_mode_setting),
        Task::Continue { text } if is_codegen => (text.clone(), TurnKind::Resume, false),
        Task::Continue { text } => (
            prompt::for_continue(&run.prompt, &last_text, text),
            TurnKind::Resume,
            false,
        ),
        Task::Confirm if is_codegen => (
            "Your plan is confirmed: carry it out now and open a pull request.".into(),
            TurnKind::Resume,
            false,
        ),
        Task::Confirm => (
            prompt::for_confirm(&run.prompt, &last_text),
            TurnKind::Resume,
            false,
        ),
        Task::Modify { text } if is_codegen => (
            format!("{text}\n\nAnswer with the revised plan; do not change files yet."),
            TurnKind::Resume,
            true,
        ),
        Task::Modify { text } => (
            prompt::for_modify(&run.prompt, &last_text, text),
            TurnKind::Resume,
            true,
        ),
        Task::Fix { validation_id } => {
            let attempts = store.fix_attempts(run.id).await.map_err(internal)?;
            let evidence = attempts
                .iter()
                .find(|a| a.validation_id == *validation_id)
                .map(|a| a.evidence.clone())
                .unwrap_or_default();
            (evidence, TurnKind::Fix, false)
        }
    };
    if is_codegen && kind == TurnKind::Start && run.external_id.is_none() {
        if let Err(wait) = store
            .reserve_codegen_start(run.id, CODEGEN_STARTS_PER_MINUTE)
            .await
            .map_err(internal)?
        {
            let note = format!("queued: Codegen allows {CODEGEN_STARTS_PER_MINUTE} new runs a minute; this one starts in about {} s", wait.as_secs().max(1));
            let _ = engine
                .change_run(
                    run.id,
                    None,
                    &RunChange {
                        note: Some(note.clone()),
                        ..RunChange::default()
                    },
                )
                .await;
            return Ok(TurnEnd::Postponed(wait, note));
        }
    }
    let status = if kind == TurnKind::Fix {
        RunStatus::Fixing
    } else {
        RunStatus::Working
    };
    let begin = RunChange {
        status: Some(status),
        note: Some(String::new()),
        ..RunChange::default()
    };
    if engine
        .change_run(run.id, None, &begin)
        .await
        .map_err(internal)?
        .is_none()
    {
        return Ok(TurnEnd::Done(None)); // cancelled meanwhile
    }
    let timeout = Duration::from_secs(settings.agent_timeout_secs);
    let turn = Turn {
        run_id: run.id,
        project_id: project.id.0,
        prompt: &prompt,
        kind,
        plan_mode,
        external_id: run.external_id,
        attempt: job.attempt,
        timeout,
        cancel,
    };
    let (progress_tx, mut progress) = tokio::sync::mpsc::unbounded_channel();
    let record_progress = async {
        let mut tail = VecDeque::new();
        while let Some(event) = progress.recv().await {
            let change = match event {
                Progress::Started { external_id, url } => RunChange {
                    external_id: Some(external_id),
                    external_url: url,
                    ..RunChange::default()
                },
                Progress::Status(status) => RunChange {
                    external_status: Some(status),
                    ..RunChange::default()
                },
                Progress::Output(line) => {
                    if tail.len() == OUTPUT_TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(masker.mask(&line).into_owned());
                    continue;
                }
            };
            if let Err(error) = engine.change_run(run.id, None, &change).await {
                tracing::error!(%error, "agent progress not recorded");
            }
        }
        tail
    };
    let answer = async {
        match &settings.agent {
            AgentConfig::Codegen { model, repo_id, .. } => {
                let agent = engine.codegen_agent(model, *repo_id).ok_or_else(|| {
                    AgentError::Refused(
                        "CODEGEN_API_TOKEN and CODEGEN_ORG_ID are no longer set".into(),
                    )
                })?;
                agent.work(turn, progress_tx).await
            }
            AgentConfig::Command { command, .. } => {
                let workdir = engine
                    .inner
                    .agents
                    .join(format!("run-{}-{}", run.id, job.attempt));
                let _ = tokio::fs::remove_dir_all(&workdir).await;
                let mut env = pipeline::secrets_env(&secrets);
                env.push(("SLIPWAY_PROJECT_ID".into(), project.id.to_string()));
                let run_branch = format!("slipway/run-{}", run.id);
                let (start_branch, replace) = match &run.branch {
                    Some(branch) if kind == TurnKind::Fix || run.pr_number.is_some() => {
                        (branch.clone(), false)
                    }
                    _ => (project.default_branch.clone(), true),
                };
                let source = match (project.location.github(), &engine.inner.config.github) {
                    (Some(repo), Some(github)) => github
                        .clone_url(&repo)
                        .await
                        .map_err(|e| AgentError::Unavailable(format!("GitHub: {e}")))?,
                    _ => project.location.source(),
                };
                let git = crate::github::git_for(&engine.inner, &project, &source).await;
                let agent = CommandAgent {
                    sandbox: &engine.inner.sandbox,
                    git: &git,
                    command: command.clone(),
                    source,
                    start_branch,
                    push_branch: run.branch.clone().unwrap_or(run_branch),
                    replace_branch: replace,
                    workdir: workdir.clone(),
                    env,
                    title: commit_title(&run.goal, kind),
                    hidden: pipeline::repository_on_disk(&project.location),
                };
                let answer = agent.work(turn, progress_tx).await;
                slipway_sandbox::snapshot::unmount_all_below(&workdir);
                let _ = tokio::fs::remove_dir_all(&workdir).await;
                answer
            }
        }
    };
    let (answer, tail) = tokio::join!(answer, record_progress);
    let answer = answer?;
    let output_tail = (!tail.is_empty()).then(|| tail.into_iter().collect::<Vec<_>>().join("\n"));
    let next = handle_answer(
        engine,
        &project,
        run.id,
        &task,
        answer,
        output_tail,
        &masker,
        settings.auto_confirm_plan,
    )
    .await
    .map_err(|e| AgentError::Unavailable(e.to_string()))?;
    Ok(TurnEnd::Done(next))
}

fn commit_title(goal: &str, kind: TurnKind) -> String {
    let first = headline(goal, 60);
    match kind {
        TurnKind::Fix => format!("Fix: {first}"),
        _ => first,
    }
}

#[allow(clippy::too_many_arguments)]
async fn handle_answer(
    engine: &Engine,
    project: &Project,
    run_id: i64,
    task: &Task,
    answer: Answer,
    output_tail: Option<String>,
    masker: &Masker,
    auto_confirm: bool,
) -> anyhow::Result<Option<Task>> {
    let store = &engine.inner.store;
    let run = store.run(run_id).await?;
    let is_fix = matches!(task, Task::Fix { .. });
    let mut change = RunChange {
        output_tail,
        ..RunChange::default()
    };
    match answer {
        Answer::Cancelled => return Ok(None),
        Answer::Failed(message) => {
            let message = masker.mask(&message).into_owned();
            if is_fix {
                store
                    .finish_fix_attempt(run_id, &format!("the agent failed: {message}"))
                    .await?;
            }
            engine.change_run(run_id, None, &change).await?;
            fail_run(engine, run_id, &message).await;
            return Ok(None);
        }
        Answer::Reply(text) if is_fix => {
            store
                .finish_fix_attempt(run_id, "the agent changed nothing")
                .await?;
            let text = masker.mask(&text).into_owned();
            change.note = Some(format!(
                "the agent gave up fixing its pull request without a change: {}",
                headline(&text, 200)
            ));
            change.status = Some(RunStatus::Failed);
            engine.change_run(run_id, None, &change).await?;
            if let Some(number) = run.pr_number {
                engine.say_on_pull_request(project, &run, number, "Slipway: the agent gave up fixing this pull request; a person takes it from here.").await;
            }
        }
        Answer::Reply(text) => {
            change.response = Some(Response::Reply {
                text: masker.mask(&text).into_owned(),
            });
            change.status = Some(RunStatus::AwaitingInput);
            engine.change_run(run_id, None, &change).await?;
        }
        Answer::Plan(text) => {
            change.response = Some(Response::Plan {
                text: masker.mask(&text).into_owned(),
            });
            change.status = Some(if auto_confirm {
                RunStatus::Working
            } else {
                RunStatus::AwaitingInput
            });
            if auto_confirm {
                change.note =
                    Some("the plan was confirmed automatically (auto_confirm_plan)".into());
            }
            engine.change_run(run_id, None, &change).await?;
            if auto_confirm {
                return Ok(Some(Task::Confirm));
            }
        }
        Answer::PullRequest {
            number,
            url,
            branch,
        } => {
            // Codegen opened (or updated) a pull request on GitHub: validate its head.
            let record = engine
                .validate_pull_request_number(project, number)
                .await
                .map_err(anyhow::Error::from)?;
            if is_fix && run.agent_head_sha.as_deref() == Some(record.sha.as_str()) {
                engine.cancel(record.id).await?;
                store
                    .finish_fix_attempt(run_id, "the agent changed nothing")
                    .await?;
                change.status = Some(RunStatus::Failed);
                change.note = Some(
                    "the agent answered without changing its pull request; the fix loop ends"
                        .into(),
                );
                engine.change_run(run_id, None, &change).await?;
                engine.say_on_pull_request(project, &run, number, "Slipway: the agent answered without changing this pull request; a person takes it from here.").await;
                return Ok(None);
            }
            let change = validating(change, number, url, branch, record.sha);
            engine.change_run(run_id, None, &change).await?;
        }
        Answer::Pushed { branch, sha } => {
            let forge = engine.forge(project).ok_or_else(|| {
                anyhow::anyhow!(
                    "the project's forge cannot be reached (GITHUB_TOKEN is no longer set)"
                )
            })?;
            let number = match run.pr_number {
                Some(number) => number,
                None => {
                    let title = headline(&run.goal, 120);
                    let body = format!(
                        "Opened by Slipway for agent run {}.\n\n{}",
                        run.id, run.goal
                    );
                    forge
                        .open_pull(&branch, &project.default_branch, &title, &body)
                        .await
                        .map_err(|e| anyhow::anyhow!("the pull request could not be opened: {e}"))?
                        .number
                }
            };
            // The agent's head (or a later one, which the poller or a webhook also queues).
            engine
                .validate_pull_request_number(project, number)
                .await
                .map_err(anyhow::Error::from)?;
            let change = validating(change, number, forge.url(number), Some(branch), sha);
            engine.change_run(run_id, None, &change).await?;
        }
    }
    Ok(None)
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

async fn fail_run(engine: &Engine, run_id: i64, message: &str) {
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
                        .say_on_pull_request(
                            &project,
                            &run,
                            number,
                            &format!("Slipway: the agent run failed: {message}"),
                        )
                        .await;
                }
            }
        }
        Ok(None) => {}
        Err(error) => tracing::error!(run = run_id, %error, "the run's failure was not recorded"),
    }
}

/// The first non-empty line of `text`, at most `max` characters (titles, notes).
fn headline(text: &str, max: usize) -> String {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .chars()
        .take(max)
        .collect()
}

/// Heartbeats the agent job's lease and notices a cancel made elsewhere.
async fn watch_run(engine: Engine, job: Job, run_id: i64, cancel: CancellationToken) {
    let store = &engine.inner.store;
    let mut since_heartbeat = Duration::ZERO;
    loop {
        tokio::time::sleep(crate::CANCEL_CHECK_EVERY).await;
        since_heartbeat += crate::CANCEL_CHECK_EVERY;
        if let Ok(run) = store.run(run_id).await {
            if run.status == RunStatus::Cancelled {
                cancel.cancel();
            }
        }
        if since_heartbeat >= crate::HEARTBEAT_EVERY {
            since_heartbeat = Duration::ZERO;
            if let Ok(false) = store.heartbeat(&job, crate::LEASE).await {
                tracing::warn!(
                    run = run_id,
                    "lost the agent job's lease; stopping this turn"
                );
                cancel.cancel();
            }
        }
    }
}

/// After a verdict on a pull request an agent run owns: succeed, hand back to the agent with
/// the evidence, or stop the loop (a person pushed, or the budget is spent). The budget is
/// the merge controller's `policy`; without one (the forge did not answer), the settings'.
pub(crate) async fn after_validation(
    engine: &Engine,
    id: ValidationId,
    policy: Option<PullRequestPolicy>,
) -> anyhow::Result<()> {
    let store = &engine.inner.store;
    let validation = store.validation(id).await?;
    let Some(number) = validation.pr else {
        return Ok(());
    };
    let Some(run) = store
        .run_of_pull_request(validation.project_id, number)
        .await?
    else {
        return Ok(());
    };
    if run.status != RunStatus::Validating {
        return Ok(());
    }
    let project = store.project(run.project_id).await?;
    if run
        .agent_head_sha
        .as_deref()
        .is_some_and(|agent| agent != validation.sha)
    {
        if validation.status == ValidationStatus::Cancelled {
            return Ok(());
        }
        store
            .finish_fix_attempt(run.id, "a person pushed to the branch")
            .await?;
        let note = format!(
            "handed over: a person pushed {} to the branch, so the agent stops fixing this pull request",
            &validation.sha[..12]
        );
        let change = RunChange {
            status: Some(RunStatus::Failed),
            note: Some(note.clone()),
            ..RunChange::default()
        };
        engine
            .change_run(run.id, Some(&[RunStatus::Validating]), &change)
            .await?;
        engine
            .say_on_pull_request(&project, &run, number, &format!("Slipway: {note}."))
            .await;
        return Ok(());
    }
    match validation.status {
        ValidationStatus::Passed => {
            store
                .finish_fix_attempt(run.id, &format!("validation {id} passed"))
                .await?;
            let pull = store.pull_request(project.id, number).await.ok();
            let note = match pull {
                Some(pr) if pr.state == "merged" => {
                    format!("validation {id} passed; the pull request was merged")
                }
                Some(pr) => format!(
                    "validation {id} passed; {}",
                    pr.note.unwrap_or_else(|| "not merged".into())
                ),
                None => format!("validation {id} passed"),
            };
            let change = RunChange {
                status: Some(RunStatus::Succeeded),
                note: Some(note),
                ..RunChange::default()
            };
            engine
                .change_run(run.id, Some(&[RunStatus::Validating]), &change)
                .await?;
        }
        ValidationStatus::Failed => {
            let settings = store.settings(project.id).await?;
            let max_fix_attempts = policy
                .map(|p| p.max_fix_attempts)
                .unwrap_or(settings.max_fix_attempts);
            store
                .finish_fix_attempt(run.id, &format!("validation {id} failed"))
                .await?;
            if run.fix_attempts >= max_fix_attempts {
                let note = format!(
                    "the fix budget is spent: {} of {} fixes tried and validation {id} still fails",
                    run.fix_attempts, max_fix_attempts
                );
                let change = RunChange {
                    status: Some(RunStatus::Failed),
                    note: Some(note.clone()),
                    ..RunChange::default()
                };
                engine
                    .change_run(run.id, Some(&[RunStatus::Validating]), &change)
                    .await?;
                engine
                    .say_on_pull_request(
                        &project,
                        &run,
                        number,
                        &format!("Slipway: {note}. A person takes it from here."),
                    )
                    .await;
                return Ok(());
            }
            let attempt = run.fix_attempts + 1;
            let (step, evidence) =
                evidence_of(engine, &project, &validation, attempt, max_fix_attempts).await?;
            let goal = Goal {
                text: run.goal.clone(),
                requirements: run.requirements.clone(),
                acceptance_criteria: run.acceptance_criteria.clone(),
            };
            let fix_prompt = prompt::for_fix(&settings, &goal, &evidence);
            if !store
                .add_fix_attempt(run.id, attempt, id.0, &step, &fix_prompt)
                .await?
            {
                return Ok(()); // this verdict was handled already
            }
            let change = RunChange {
                status: Some(RunStatus::Fixing),
                note: Some(format!(
                    "fix {attempt} of {}: validation {id} failed at {step}",
                    max_fix_attempts
                )),
                ..RunChange::default()
            };
            if engine
                .change_run(run.id, Some(&[RunStatus::Validating]), &change)
                .await?
                .is_some()
            {
                engine
                    .enqueue_turn(
                        run.id,
                        &Task::Fix {
                            validation_id: id.0,
                        },
                    )
                    .await?;
            }
        }
        ValidationStatus::Error => {
            let change = RunChange {
                note: Some(format!(
                    "validation {id} hit an infrastructure error (not the agent's fault); retry it"
                )),
                ..RunChange::default()
            };
            engine.change_run(run.id, None, &change).await?;
        }
        _ => {}
    }
    Ok(())
}

/// The failing step, its command, exit code and masked log, and the files the PR changed.
async fn evidence_of(
    engine: &Engine,
    project: &Project,
    validation: &slipway_store::ValidationRecord,
    attempt: u32,
    max_attempts: u32,
) -> anyhow::Result<(String, Evidence)> {
    let failing = validation
        .steps
        .iter()
        .find(|s| s.status == StepStatus::Failed);
    let step_name = failing.map(|s| s.name);
    let log = match step_name {
        Some(step) => engine
            .inner
            .store
            .logs(validation.id, Some(step), 0, 100_000)
            .await?
            .into_iter()
            .map(|l| l.line)
            .collect(),
        None => Vec::new(),
    };
    let changed_files = match (engine.forge(project), validation.pr) {
        (Some(forge), Some(number)) => forge.changed_files(number).await.unwrap_or_default(),
        _ => Vec::new(),
    };
    let step = step_name
        .map(|s| s.to_string())
        .unwrap_or_else(|| "unknown".into());
    Ok((
        step.clone(),
        Evidence {
            step,
            command: failing.and_then(|s| s.command.clone()),
            exit_code: failing.and_then(|s| s.exit_code),
            detail: failing.and_then(|s| s.detail.clone()),
            log,
            changed_files,
            merged_onto: validation.base_ref.clone().zip(validation.base_sha.clone()),
            attempt,
            max_attempts,
        },
    ))
}
