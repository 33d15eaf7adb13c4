//! One turn of an agent run: the prompt (chosen by `slipway_core::turn`), the agent's work,
//! and its answer applied as the core decides.

use super::{fail_run, validating, Task, TurnEnd, CODEGEN_STARTS_PER_MINUTE, OUTPUT_TAIL_LINES};
use crate::jobs::Attempt;
use crate::{pipeline, Engine};
use slipway_agent::command::CommandAgent;
use slipway_agent::{Agent, AgentError, Answer, Progress, Turn, TurnKind};
use slipway_core::run::{AgentKind, Response, RunStatus};
use slipway_core::settings::AgentConfig;
use slipway_core::turn::{self, Answered, Ask, Decision, Prompted, RunFacts, Shape};
use slipway_core::{Masker, Project};
use slipway_forge::Forge;
use slipway_store::{RunChange, RunRecord, StoreError};
use std::collections::VecDeque;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why a turn ended without an answer applied; whether another attempt may help is its
/// variant's to say.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TurnError {
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error("the run could not be read or recorded: {0}")]
    Store(#[from] StoreError),
    /// The forge could not be asked (GitHub: the repository's clone address).
    #[error("{0:#}")]
    Forge(#[source] anyhow::Error),
    /// Applying the answer (the pull request opened or told, the run recorded) failed.
    #[error("the agent's answer could not be applied: {0:#}")]
    Apply(#[source] anyhow::Error),
}

impl TurnError {
    /// Whether another attempt of the turn may succeed.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            TurnError::Agent(error) => error.is_transient(),
            TurnError::Store(error) => error.is_transient(),
            TurnError::Forge(error) => slipway_forge::github::is_transient(error),
            TurnError::Apply(error) => {
                slipway_forge::github::is_transient(error)
                    || error.chain().any(|cause| {
                        cause
                            .downcast_ref::<StoreError>()
                            .is_some_and(StoreError::is_transient)
                            || cause
                                .downcast_ref::<slipway_forge::git::GitError>()
                                .is_some()
                    })
            }
        }
    }
}

pub(super) async fn turn(
    engine: &Engine,
    attempt: &Attempt,
    run_id: i64,
    task: Task,
    cancel: &CancellationToken,
) -> Result<TurnEnd, TurnError> {
    let store = &engine.inner.store;
    let run = store.run(run_id).await?;
    if run.status.is_final() {
        return Ok(TurnEnd::Done(None));
    }
    let project = store.project(run.project_id).await?;
    let settings = store.settings(project.id).await?;
    let secrets = store.secret_values(project.id).await?;
    let masker = Masker::new(secrets.iter().map(|(_, v)| v.expose()));
    let is_codegen = run.agent == AgentKind::Codegen;
    let (prompt, kind, plan_mode) = prompt_for(engine, &run, &settings, &task).await?;
    if is_codegen && kind == TurnKind::Start && run.external_id.is_none() {
        if let Some(postponed) = codegen_slot(engine, run.id).await? {
            return Ok(postponed);
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
    if engine.change_run(run.id, None, &begin).await?.is_none() {
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
        attempt: attempt.number(),
        timeout,
        cancel,
    };
    let (progress_tx, mut progress) = tokio::sync::mpsc::channel(slipway_sandbox::LINES_IN_FLIGHT);
    let record_progress = record_progress(engine, run.id, &masker, &mut progress);
    let answer = async {
        match &settings.agent {
            AgentConfig::Codegen { model, repo_id, .. } => {
                let agent = engine.codegen_agent(model, *repo_id).ok_or_else(|| {
                    AgentError::Refused(
                        "CODEGEN_API_TOKEN and CODEGEN_ORG_ID are no longer set".into(),
                    )
                })?;
                Ok(agent.work(turn, progress_tx).await?)
            }
            AgentConfig::Command { command, .. } => {
                let on = Working {
                    engine,
                    project: &project,
                    run: &run,
                    attempt: attempt.number(),
                    secrets: &secrets,
                };
                on.command_agent(command, turn, progress_tx).await
            }
        }
    };
    let (answer, tail) = tokio::join!(answer, record_progress);
    let answer = answer?;
    let output_tail = (!tail.is_empty()).then(|| tail.into_iter().collect::<Vec<_>>().join("\n"));
    let answering = Answering {
        engine,
        project: &project,
        run: store.run(run.id).await?,
        is_fix: matches!(task, Task::Fix { .. }),
        auto_confirm: settings.auto_confirm_plan,
    };
    let next = answering
        .apply(answer, output_tail, &masker)
        .await
        .map_err(TurnError::Apply)?;
    Ok(TurnEnd::Done(next))
}

/// The prompt of this turn, its kind and whether the agent answers with a plan, as
/// `slipway_core::turn` decides from the run and what was asked.
async fn prompt_for(
    engine: &Engine,
    run: &RunRecord,
    settings: &slipway_core::Settings,
    task: &Task,
) -> Result<(String, TurnKind, bool), StoreError> {
    let plan_mode_setting = match &settings.agent {
        AgentConfig::Codegen { plan_mode, .. } | AgentConfig::Command { plan_mode, .. } => {
            *plan_mode
        }
    };
    let last_text = match &run.response {
        Some(Response::Reply { text } | Response::Plan { text }) => text.clone(),
        _ => String::new(),
    };
    let fix_prompt = match task {
        Task::Fix { validation_id } => engine
            .inner
            .store
            .fix_attempts(run.id)
            .await?
            .into_iter()
            .find(|a| a.validation_id == *validation_id)
            .map(|a| a.evidence)
            .unwrap_or_default(),
        _ => String::new(),
    };
    let ask = match task {
        Task::Start => Ask::Start,
        Task::Continue { text } => Ask::Continue(text),
        Task::Confirm => Ask::Confirm,
        Task::Modify { text } => Ask::Modify(text),
        Task::Fix { .. } => Ask::Fix(&fix_prompt),
    };
    let facts = RunFacts {
        first_prompt: &run.prompt,
        last_answer: &last_text,
        codegen: run.agent == AgentKind::Codegen,
        plan_mode: plan_mode_setting,
    };
    let Prompted {
        prompt,
        shape,
        plan_mode,
    } = turn::prompt(ask, &facts);
    let kind = match shape {
        Shape::Start => TurnKind::Start,
        Shape::Resume => TurnKind::Resume,
        Shape::Fix => TurnKind::Fix,
    };
    Ok((prompt, kind, plan_mode))
}

/// Codegen allows a few new runs a minute: the turn waits its slot (and says so) or goes.
async fn codegen_slot(engine: &Engine, run_id: i64) -> Result<Option<TurnEnd>, StoreError> {
    let Err(wait) = engine
        .inner
        .store
        .reserve_codegen_start(run_id, CODEGEN_STARTS_PER_MINUTE)
        .await?
    else {
        return Ok(None);
    };
    let note = format!(
        "queued: Codegen allows {CODEGEN_STARTS_PER_MINUTE} new runs a minute; this one starts in about {} s",
        wait.as_secs().max(1)
    );
    let change = RunChange {
        note: Some(note.clone()),
        ..RunChange::default()
    };
    let _ = engine.change_run(run_id, None, &change).await;
    Ok(Some(TurnEnd::Postponed(wait, note)))
}

/// Records the agent's progress on the run as it comes; returns the last output lines,
/// masked.
async fn record_progress(
    engine: &Engine,
    run_id: i64,
    masker: &Masker,
    progress: &mut tokio::sync::mpsc::Receiver<Progress>,
) -> VecDeque<String> {
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
        if let Err(error) = engine.change_run(run_id, None, &change).await {
            tracing::error!(%error, "agent progress not recorded");
        }
    }
    tail
}

/// What a command agent's turn works on.
struct Working<'a> {
    engine: &'a Engine,
    project: &'a Project,
    run: &'a RunRecord,
    attempt: u32,
    secrets: &'a [(String, slipway_core::secret::SecretValue)],
}

impl Working<'_> {
    /// A command agent's turn: a fresh clone of the run's branch (or the default branch),
    /// the command in the sandbox, its changes pushed to the run's branch.
    async fn command_agent(
        &self,
        command: &str,
        turn: Turn<'_>,
        progress: tokio::sync::mpsc::Sender<Progress>,
    ) -> Result<Answer, TurnError> {
        let (engine, project, run) = (self.engine, self.project, self.run);
        if let Some(why) = crate::no_sandbox(&engine.inner.config) {
            return Err(AgentError::Refused(why).into());
        }
        if let Err(why) = engine.check_agent_command(command) {
            return Err(AgentError::Refused(format!(
                "Slipway's configuration error, not the agent's failure: {why}"
            ))
            .into());
        }
        let workdir = engine
            .inner
            .agents
            .join(format!("run-{}-{}", run.id, self.attempt));
        crate::remove_tree(&workdir, "an agent's work directory").await;
        let mut env = engine.inner.store.variable_env(project.id).await?;
        env.extend(pipeline::secrets_env(self.secrets));
        env.push(("SLIPWAY_PROJECT_ID".into(), project.id.to_string()));
        let run_branch = format!("slipway/run-{}", run.id);
        let (start_branch, replace) = match &run.branch {
            Some(branch) if turn.kind == TurnKind::Fix || run.pr_number.is_some() => {
                (branch.clone(), false)
            }
            _ => (project.default_branch.clone(), true),
        };
        let source = match (project.location.github(), &engine.inner.config.github) {
            (Some(repo), Some(github)) => github
                .clone_url(&repo)
                .await
                .map_err(|e| TurnError::Forge(anyhow::Error::new(e).context("GitHub")))?,
            _ => project.location.source(),
        };
        let git = crate::github::git_for(&engine.inner, project, &source).await;
        let agent = CommandAgent {
            sandbox: &engine.inner.sandbox,
            git: &git,
            command: command.to_owned(),
            source,
            start_branch,
            push_branch: run.branch.clone().unwrap_or(run_branch),
            replace_branch: replace,
            workdir: workdir.clone(),
            env,
            title: commit_title(&run.goal, turn.kind),
            hidden: pipeline::repository_on_disk(&project.location),
        };
        let answer = agent.work(turn, progress).await;
        slipway_sandbox::snapshot::unmount_all_below(&workdir);
        crate::remove_tree(&workdir, "an agent's work directory").await;
        Ok(answer?)
    }
}

fn commit_title(goal: &str, kind: TurnKind) -> String {
    let first = turn::headline(goal, 60);
    match kind {
        TurnKind::Fix => format!("Fix: {first}"),
        _ => first,
    }
}

/// A turn's answer and what it is applied to.
struct Answering<'a> {
    engine: &'a Engine,
    project: &'a Project,
    /// The run as it is now.
    run: RunRecord,
    is_fix: bool,
    auto_confirm: bool,
}

impl Answering<'_> {
    /// How the lists say who started a validation of this run's pull request.
    fn started_by(&self) -> String {
        format!("agent run #{}", self.run.id)
    }

    /// Gathers what the decision needs (a pull request's validation is queued first, to
    /// know whether a fix changed its head), decides, and applies the decision.
    async fn apply(
        self,
        answer: Answer,
        output_tail: Option<String>,
        masker: &Masker,
    ) -> anyhow::Result<Option<Task>> {
        let mask = |text: &str| masker.mask(text).into_owned();
        let mut validation = None;
        let answered = match answer {
            Answer::Cancelled => Answered::Cancelled,
            Answer::Failed(message) => Answered::Failed(mask(&message)),
            Answer::Reply(text) => Answered::Reply(mask(&text)),
            Answer::Plan(text) => Answered::Plan(mask(&text)),
            Answer::PullRequest {
                number,
                url,
                branch,
            } => {
                // Codegen opened (or updated) a pull request on GitHub: validate its head.
                let record = self
                    .engine
                    .validate_pull_request_number(self.project, number, &self.started_by())
                    .await?;
                let unchanged = self.run.agent_head_sha.as_deref() == Some(record.sha.as_str());
                validation = Some((record, number, url, branch));
                Answered::PullRequest { unchanged }
            }
            Answer::Pushed { branch, sha } => {
                let (number, url) = self.open_or_update(&branch).await?;
                let record = self
                    .engine
                    .validate_pull_request_number(self.project, number, &self.started_by())
                    .await?;
                // The run follows the agent's own head.
                let record = slipway_store::ValidationRecord { sha, ..record };
                validation = Some((record, number, url, Some(branch)));
                Answered::PullRequest { unchanged: false }
            }
        };
        let mut change = RunChange {
            output_tail,
            ..RunChange::default()
        };
        let (engine, run_id) = (self.engine, self.run.id);
        match turn::decide(answered, self.is_fix, self.auto_confirm) {
            Decision::Nothing => Ok(None),
            Decision::Fail {
                note,
                attempt,
                tell,
            } => {
                if let Some((record, ..)) = &validation {
                    engine.cancel(record.id).await?;
                }
                if let Some(attempt) = attempt {
                    engine
                        .inner
                        .store
                        .finish_fix_attempt(run_id, &attempt)
                        .await?;
                }
                engine.change_run(run_id, None, &change).await?;
                fail_run(engine, run_id, &note, &tell).await;
                Ok(None)
            }
            Decision::Answer {
                response,
                status,
                note,
                then_confirm,
            } => {
                change.response = Some(response);
                change.status = Some(status);
                change.note = note;
                engine.change_run(run_id, None, &change).await?;
                Ok(then_confirm.then_some(Task::Confirm))
            }
            Decision::Validating => {
                let (record, number, url, branch) = validation.expect("a pull request");
                let change = validating(change, number, url, branch, record.sha);
                engine.change_run(run_id, None, &change).await?;
                Ok(None)
            }
        }
    }

    /// The run's pull request, opened on the project's forge the first time.
    async fn open_or_update(&self, branch: &str) -> anyhow::Result<(i64, String)> {
        let forge = self.engine.forge(self.project).ok_or_else(|| {
            anyhow::anyhow!("the project's forge cannot be reached (GITHUB_TOKEN is no longer set)")
        })?;
        let number = match self.run.pr_number {
            Some(number) => number,
            None => {
                let run = &self.run;
                let title = turn::headline(&run.goal, 120);
                let body = format!(
                    "Opened by Slipway for agent run {}.\n\n{}",
                    run.id, run.goal
                );
                forge
                    .open_pull(branch, &self.project.default_branch, &title, &body)
                    .await
                    .map_err(|e| anyhow::anyhow!("the pull request could not be opened: {e}"))?
                    .number
            }
        };
        Ok((number, forge.url(number)))
    }
}
