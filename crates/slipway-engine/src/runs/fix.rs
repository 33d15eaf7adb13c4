//! The fix loop: after a verdict on an agent's pull request, succeed, hand the evidence back
//! to the agent, or stop.

use super::Task;
use crate::Engine;
use slipway_core::policy::PullRequestPolicy;
use slipway_core::prompt::{self, Evidence, Goal};
use slipway_core::run::RunStatus;
use slipway_core::validation::{StepStatus, ValidationStatus};
use slipway_core::{Project, ValidationId};
use slipway_forge::Forge;
use slipway_store::{RunChange, RunRecord, ValidationRecord};

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
    let verdict = Verdict {
        engine,
        project: &project,
        run: &run,
        validation: &validation,
        number,
    };
    if run
        .agent_head_sha
        .as_deref()
        .is_some_and(|agent| agent != validation.sha)
    {
        if validation.status == ValidationStatus::Cancelled {
            return Ok(());
        }
        return verdict.handed_over().await;
    }
    match validation.status {
        ValidationStatus::Passed => verdict.passed().await,
        ValidationStatus::Failed => verdict.failed(policy).await,
        ValidationStatus::Error => {
            let change = RunChange {
                note: Some(format!(
                    "validation {id} hit an infrastructure error (not the agent's fault); retry it"
                )),
                ..RunChange::default()
            };
            engine.change_run(run.id, None, &change).await?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A verdict on the pull request of a run that is validating it.
struct Verdict<'a> {
    engine: &'a Engine,
    project: &'a Project,
    run: &'a RunRecord,
    validation: &'a ValidationRecord,
    number: i64,
}

impl Verdict<'_> {
    /// A person pushed to the branch: the agent stops, the pull request is theirs.
    async fn handed_over(&self) -> anyhow::Result<()> {
        let (engine, run) = (self.engine, self.run);
        engine
            .inner
            .store
            .finish_fix_attempt(run.id, "a person pushed to the branch")
            .await?;
        let note = format!(
            "handed over: a person pushed {} to the branch, so the agent stops fixing this pull request",
            &self.validation.sha[..12]
        );
        self.stop(RunStatus::Failed, &note).await?;
        engine
            .say_on_pull_request(self.project, run, self.number, &format!("Slipway: {note}."))
            .await;
        Ok(())
    }

    /// The run succeeded; its note says what the merge controller did.
    async fn passed(&self) -> anyhow::Result<()> {
        let (store, id) = (&self.engine.inner.store, self.validation.id);
        store
            .finish_fix_attempt(self.run.id, &format!("validation {id} passed"))
            .await?;
        let pull = store.pull_request(self.project.id, self.number).await.ok();
        let note = match pull {
            Some(pr) if pr.state == slipway_store::PullState::Merged => {
                format!("validation {id} passed; the pull request was merged")
            }
            // The merge decision's note names the validation already.
            Some(pr) => pr
                .note
                .unwrap_or_else(|| format!("validation {id} passed; not merged")),
            None => format!("validation {id} passed"),
        };
        self.stop(RunStatus::Succeeded, &note).await
    }

    /// Within the budget, the evidence goes back to the agent for a fix; past it, the loop
    /// stops and says so on the pull request.
    async fn failed(&self, policy: Option<PullRequestPolicy>) -> anyhow::Result<()> {
        let (engine, run, id) = (self.engine, self.run, self.validation.id);
        let store = &engine.inner.store;
        let settings = store.settings(self.project.id).await?;
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
            self.stop(RunStatus::Failed, &note).await?;
            let said = format!("Slipway: {note}. A person takes it from here.");
            engine
                .say_on_pull_request(self.project, run, self.number, &said)
                .await;
            return Ok(());
        }
        let attempt = run.fix_attempts + 1;
        let (step, evidence) = evidence_of(
            engine,
            self.project,
            self.validation,
            attempt,
            max_fix_attempts,
        )
        .await?;
        let goal = Goal {
            text: run.goal.clone(),
            requirements: run.requirements.clone(),
            acceptance_criteria: run.acceptance_criteria.clone(),
        };
        // Built from the pull request's words (file names, log lines): masked before it is
        // stored, shown or sent.
        let secrets = store.secret_values(self.project.id).await?;
        let masker = slipway_core::Masker::new(secrets.iter().map(|(_, v)| v.expose()));
        let fix_prompt = masker
            .mask(&prompt::for_fix(&settings, &goal, &evidence))
            .into_owned();
        if !store
            .add_fix_attempt(run.id, attempt, id.0, &step, &fix_prompt)
            .await?
        {
            return Ok(()); // this verdict was handled already
        }
        let change = RunChange {
            status: Some(RunStatus::Fixing),
            note: Some(format!(
                "fix {attempt} of {max_fix_attempts}: validation {id} failed at {step}"
            )),
            ..RunChange::default()
        };
        if engine
            .change_run(run.id, Some(&[RunStatus::Validating]), &change)
            .await?
            .is_some()
        {
            let task = Task::Fix {
                validation_id: id.0,
            };
            engine.enqueue_turn(run.id, &task).await?;
        }
        Ok(())
    }

    /// Ends the run (if it is still validating) with `status` and `note`.
    async fn stop(&self, status: RunStatus, note: &str) -> anyhow::Result<()> {
        let change = RunChange {
            status: Some(status),
            note: Some(note.to_owned()),
            ..RunChange::default()
        };
        self.engine
            .change_run(self.run.id, Some(&[RunStatus::Validating]), &change)
            .await?;
        Ok(())
    }
}

/// The failing step, its command, exit code and masked log, and the files the PR changed.
async fn evidence_of(
    engine: &Engine,
    project: &Project,
    validation: &ValidationRecord,
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
            analysis: crate::pipeline::failure_note(&engine.artifacts_dir(validation.id)).await,
        },
    ))
}
