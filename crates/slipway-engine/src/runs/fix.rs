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
use slipway_store::RunChange;

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
                // The merge decision's note names the validation already.
                Some(pr) => pr
                    .note
                    .unwrap_or_else(|| format!("validation {id} passed; not merged")),
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
