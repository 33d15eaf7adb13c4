//! The merge controller, one for every forge: after a verdict on a pull request's head it
//! reports to the pull request and merges it only when all hold — the project allows
//! auto-merge, the pull request is open and not a draft, the validation passed on exactly its
//! current head merged onto exactly its base's current head, it can merge, and enough
//! approvals are present. The merge names that pair, so a head or a base that moved is never
//! merged; the pair as it is now is validated instead. Merges into one base branch take
//! turns, and after each the other ready pull requests into it are validated again.

use crate::{Engine, Target};
use slipway_core::policy::{self, PullRequestPolicy};
use slipway_core::validation::{StepStatus, ValidationStatus};
use slipway_core::{PipelineConfig, Project, Settings, ValidationId};
use slipway_forge::{Forge, MergeResult, PullState, Report, Verdict};
use slipway_store::ValidationRecord;

/// Reports the verdict and merges when allowed. Returns the policy that applied, which the
/// fix loop follows too; `None` when the validation is not of a pull request on a forge.
pub(crate) async fn after_verdict(
    engine: &Engine,
    id: ValidationId,
) -> anyhow::Result<Option<PullRequestPolicy>> {
    let store = &engine.inner.store;
    let validation = store.validation(id).await?;
    let Some(number) = validation.pr else {
        return Ok(None);
    };
    let project = store.project(validation.project_id).await?;
    match engine.forge(&project) {
        Some(forge) => decide(engine, &forge, &project, &validation, number).await,
        None => Ok(None),
    }
}

/// The policy for a pull request into `base`, read from the base's `.slipway.toml`. A file
/// that cannot be read or is invalid leaves the project's settings in force, with a warning.
async fn policy<F: Forge>(forge: &F, settings: &Settings, base: &str) -> PullRequestPolicy {
    let file = match forge.file(base, ".slipway.toml").await {
        Ok(Some(text)) => match PipelineConfig::from_toml(".slipway.toml", &text) {
            Ok(config) => Some(config),
            Err(error) => {
                tracing::warn!(%error, base, "the base's .slipway.toml is invalid; the project's settings apply");
                None
            }
        },
        Ok(None) => None,
        Err(error) => {
            tracing::warn!(%error, base, "the base's .slipway.toml could not be read; the project's settings apply");
            None
        }
    };
    PullRequestPolicy::new(settings, file.as_ref())
}

async fn decide<F: Forge>(
    engine: &Engine,
    forge: &F,
    project: &Project,
    validation: &ValidationRecord,
    number: i64,
) -> anyhow::Result<Option<PullRequestPolicy>> {
    let (verdict, summary) = match validation.status {
        ValidationStatus::Passed => (
            Verdict::Success,
            format!("validation {} passed", validation.id),
        ),
        ValidationStatus::Failed => {
            let failing = validation
                .steps
                .iter()
                .find(|s| s.status == StepStatus::Failed);
            let detail = failing
                .map(|s| format!("{} failed: {}", s.name, s.detail.as_deref().unwrap_or("")))
                .unwrap_or_else(|| "failed".into());
            (Verdict::Failure, detail)
        }
        ValidationStatus::Error => (
            Verdict::Error,
            format!(
                "infrastructure error: {}",
                validation.error.as_deref().unwrap_or("see the log")
            ),
        ),
        // Cancelled: a newer head or a closed pull request; nothing to say.
        _ => return Ok(None),
    };
    let link = crate::github::link(&engine.inner, validation.id);
    let mut report = Report {
        sha: validation.sha.clone(),
        verdict,
        details: table(validation, &summary, link.as_deref()),
        summary,
        link,
        annotations: Vec::new(),
    };
    if let Some(evidence) = engine.analysis_evidence(validation.id).await {
        report
            .details
            .push_str(&crate::pipeline::findings_markdown(&evidence));
        report.annotations = crate::pipeline::annotations(&evidence);
    }
    // Marking, merging and telling are separate: a refusal of one is said, not fatal.
    let mut refusals = Vec::new();
    if let Err(error) = forge.mark(&report).await {
        refusals.push(format!(
            "The commit status (or check run) could not be set: {error}. {PERMISSIONS}"
        ));
    }
    let settings = engine.inner.store.settings(project.id).await?;
    let pull = forge.pull(number).await?;
    let policy = policy(forge, &settings, &pull.base_ref).await;
    let outcome = if verdict == Verdict::Success {
        merge_if_allowed(engine, forge, project, validation, number, pull, &policy).await?
    } else {
        Outcome::not_merged("the validation did not pass")
    };
    refusals.extend(outcome.refusal.clone());
    let mut said = outcome.sentence.clone();
    for refusal in &refusals {
        said.push_str(&format!("\n\n**Refused:** {refusal}"));
    }
    report.details.push_str(&format!("\n{said}\n"));
    if let Err(error) = forge.tell(number, &report).await {
        refusals.push(format!(
            "The report could not be posted: {error}. {PERMISSIONS}"
        ));
    }
    record_outcome(engine, validation, &outcome, &refusals).await;
    Ok(Some(policy))
}

/// Why pull request `number` may not merge itself, when it rewrites the checks that judged
/// it (its own `.slipway.toml` ran): a person reads that change and merges it.
async fn rewrites_its_checks<F: Forge>(forge: &F, number: i64) -> Option<String> {
    match forge.changed_files(number).await {
        Ok(files) if policy::changes_its_own_checks(&files) => Some(
            "it changes its own checks (.slipway.toml), so a person reads that change and merges it"
                .into(),
        ),
        Ok(_) => None,
        Err(error) => Some(format!(
            "its changed files could not be read ({error}), so whether it changes its own checks is unknown"
        )),
    }
}

/// What the token or App needs, said with every refusal.
const PERMISSIONS: &str = "Give Slipway's token (or GitHub App) what the README lists: \
contents, pull requests, commit statuses (and checks, for an App) with write access.";

/// What became of a pull request after its verdict.
#[derive(Debug, Clone)]
struct Outcome {
    merged: bool,
    /// The sentence for the report.
    sentence: String,
    /// What the forge refused, with its message.
    refusal: Option<String>,
}

impl Outcome {
    fn not_merged(why: &str) -> Self {
        Self {
            merged: false,
            sentence: format!("Not merged: {why}."),
            refusal: None,
        }
    }

    fn said(sentence: String) -> Self {
        Self {
            merged: false,
            sentence,
            refusal: None,
        }
    }
}

/// The merge step of the validation shows the outcome (the dashboard reads it there).
async fn record_outcome(
    engine: &Engine,
    validation: &ValidationRecord,
    outcome: &Outcome,
    refusals: &[String],
) {
    let Some(index) = validation
        .steps
        .iter()
        .find(|s| s.name == slipway_core::validation::StepName::Merge)
        .map(|s| s.index)
    else {
        return;
    };
    let status = if !refusals.is_empty() {
        StepStatus::Error
    } else if outcome.merged {
        StepStatus::Passed
    } else {
        StepStatus::Skipped
    };
    let mut detail = outcome.sentence.clone();
    for refusal in refusals {
        detail.push_str(&format!(" Refused: {refusal}"));
    }
    let update = slipway_store::StepUpdate {
        status: Some(status),
        detail: Some(detail),
        ..Default::default()
    };
    if let Err(error) = engine
        .inner
        .store
        .update_step(validation.id, index, &update)
        .await
    {
        tracing::warn!(%error, "the merge outcome was not recorded");
    }
}

/// Merges when every condition holds; says what happened.
async fn merge_if_allowed<F: Forge>(
    engine: &Engine,
    forge: &F,
    project: &Project,
    validation: &ValidationRecord,
    number: i64,
    pull: PullState,
    policy: &PullRequestPolicy,
) -> anyhow::Result<Outcome> {
    merge_when_allowed(
        engine, forge, project, validation, number, pull, policy, false,
    )
    .await
}

/// A person's merge of pull request `number`: every condition of the merge controller but
/// auto-merge holds (a passed validation of exactly the current head on the current base).
/// Returns what happened, in a sentence.
pub(crate) async fn merge_by_hand(
    engine: &Engine,
    project: &Project,
    number: i64,
) -> anyhow::Result<String> {
    let store = &engine.inner.store;
    let Some(forge) = engine.forge(project) else {
        anyhow::bail!("this project's forge cannot be reached");
    };
    let (_, newest) = store
        .validations_of_pull_request(project.id, number)
        .await?;
    let Some(newest) = newest else {
        return Ok(format!(
            "Not merged: pull request #{number} has no validation yet."
        ));
    };
    let validation = store.validation(newest).await?;
    if validation.status != ValidationStatus::Passed {
        return Ok(format!(
            "Not merged: its newest validation ({}) is {}, not passed.",
            validation.id, validation.status
        ));
    }
    let settings = store.settings(project.id).await?;
    let pull = forge.pull(number).await?;
    let policy = policy(&forge, &settings, &pull.base_ref).await;
    let outcome = merge_when_allowed(
        engine,
        &forge,
        project,
        &validation,
        number,
        pull,
        &policy,
        true,
    )
    .await?;
    let mut said = outcome.sentence.clone();
    if let Some(refusal) = &outcome.refusal {
        said.push_str(&format!(" Refused: {refusal}"));
    }
    let _ = store.note_pull_request(project.id, number, &said).await;
    Ok(said)
}

#[allow(clippy::too_many_arguments)]
async fn merge_when_allowed<F: Forge>(
    engine: &Engine,
    forge: &F,
    project: &Project,
    validation: &ValidationRecord,
    number: i64,
    pull: PullState,
    policy: &PullRequestPolicy,
    by_hand: bool,
) -> anyhow::Result<Outcome> {
    if !policy.auto_merge && !by_hand {
        return Ok(Outcome::not_merged(
            "auto-merge is off for this project, so a person merges it",
        ));
    }
    if !pull.open {
        return Ok(Outcome::not_merged("the pull request is not open"));
    }
    if pull.draft {
        return Ok(Outcome::not_merged("the pull request is a draft"));
    }
    if pull.head_sha != validation.sha {
        // A push that no event announced: validate the new head now.
        let moved_to = short(&pull.head_sha).to_owned();
        validate_head(engine, project, number, pull).await;
        return Ok(Outcome::not_merged(&format!(
            "the head moved to {moved_to}; that commit is validated next"
        )));
    }
    if !by_hand {
        if let Some(why) = rewrites_its_checks(forge, number).await {
            return Ok(Outcome::not_merged(&why));
        }
    }
    if pull.mergeable == Some(false) {
        return Ok(Outcome::not_merged(&format!(
            "not mergeable ({} into {})",
            pull.head_ref, pull.base_ref
        )));
    }
    if let Some(approvals) = pull.approvals {
        if approvals < policy.required_approvals as usize {
            return Ok(Outcome::not_merged(&format!(
                "{approvals} of the {} required approvals (from people who can write to the repository)",
                policy.required_approvals
            )));
        }
    }
    let Some(base_sha) = validation.base_sha.clone() else {
        // Validated alone, not merged onto its base: validate the pair first.
        validate_head(engine, project, number, pull).await;
        return Ok(Outcome::not_merged(
            "it was validated without its base; validating it merged onto the base",
        ));
    };
    // One merge into a base branch at a time: the next one sees the base this one made.
    let turn = engine.inner.merge_turn(project.id, &pull.base_ref);
    let _turn = turn.lock().await;
    let title = format!("{} (#{number})", pull.title);
    let base_ref = pull.base_ref.clone();
    let method = policy.merge_method;
    let merged = forge
        .merge(number, &validation.sha, &base_sha, method, &title)
        .await?;
    Ok(match merged {
        MergeResult::Refused { reason } => Outcome {
            merged: false,
            sentence: "Not merged: the forge refused the merge.".into(),
            refusal: Some(format!("The merge was refused: {reason}. {PERMISSIONS}")),
        },
        MergeResult::Merged { sha } => {
            tracing::info!(project = %project.id, pr = number, merge = %sha, "pull request merged");
            engine
                .notify_pull_request(project, &forge.url(number), "merged")
                .await;
            let mut outcome = Outcome {
                merged: true,
                sentence: format!(
                    "Merged as {} (exactly the validated head {} onto {base_ref} at {}).",
                    short(&sha),
                    short(&validation.sha),
                    short(&base_sha)
                ),
                refusal: None,
            };
            if policy.delete_branch_after_merge {
                if !pull.head_in_base {
                    outcome
                        .sentence
                        .push_str(" The branch is in a fork: it is left to its owner.");
                } else if let Err(error) = forge.delete_branch(&pull.head_ref).await {
                    outcome.refusal = Some(format!(
                        "Merged, but the branch {} was not deleted: {error}",
                        pull.head_ref
                    ));
                }
            }
            revalidate_others(engine, forge, project, &base_ref, &sha, number).await;
            outcome
        }
        MergeResult::BaseMoved { to } => {
            validate_head(engine, project, number, pull).await;
            Outcome::said(format!(
                "Not merged: {base_ref} moved to {} since the validation (on {}); validating \
                 the pull request merged onto it.",
                short(&to),
                short(&base_sha)
            ))
        }
        MergeResult::HeadMoved => {
            let pull = forge.pull(number).await?;
            let moved_to = short(&pull.head_sha).to_owned();
            validate_head(engine, project, number, pull).await;
            Outcome::not_merged(&format!(
                "the head moved to {moved_to} during the merge; validating it"
            ))
        }
        MergeResult::NotMergeable { reason } => {
            Outcome::not_merged(&format!("not mergeable ({reason})"))
        }
    })
}

/// After a merge into `base_ref` (now at `base_sha`), the other pull requests into it that
/// passed on the old base are validated again, on top of what was merged.
async fn revalidate_others<F: Forge>(
    engine: &Engine,
    forge: &F,
    project: &Project,
    base_ref: &str,
    base_sha: &str,
    merged: i64,
) {
    let store = &engine.inner.store;
    let ready = match store
        .passed_on_another_base(project.id, base_ref, base_sha)
        .await
    {
        Ok(ready) => ready,
        Err(error) => {
            tracing::warn!(%error, "the other ready pull requests could not be listed");
            return;
        }
    };
    for number in ready.into_iter().filter(|n| *n != merged) {
        match forge.pull(number).await {
            Ok(pull) if pull.open => validate_head(engine, project, number, pull).await,
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, pr = number, "not validated again"),
        }
    }
}

async fn validate_head(engine: &Engine, project: &Project, number: i64, pull: PullState) {
    let target = Target::of_pull(number, pull);
    if let Err(error) = engine
        .submit_by(project, target, "the base moved: validated again")
        .await
    {
        tracing::warn!(%error, pr = number, "the new head was not queued");
    }
}

fn table(validation: &ValidationRecord, summary: &str, link: Option<&str>) -> String {
    let mut text = format!(
        "### Slipway: {} for `{}`\n\n{summary}\n\n",
        validation.status,
        short(&validation.sha)
    );
    if let (Some(base), Some(sha)) = (&validation.base_ref, &validation.base_sha) {
        text.push_str(&format!(
            "Validated merged onto `{base}` at `{}`, as merging would make it.\n\n",
            short(sha)
        ));
    }
    if let Some(source) = validation.pipeline_source {
        text.push_str(&format!("Pipeline: {}.\n\n", source.describe()));
    }
    text.push_str("| step | status | time | detail |\n|---|---|---|---|\n");
    for step in &validation.steps {
        let time = step
            .duration_ms
            .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
            .unwrap_or_default();
        let detail = step
            .detail
            .as_deref()
            .unwrap_or("")
            .replace('|', "\\|")
            .replace('\n', " ");
        let flaky = if step.flaky { " (flaky)" } else { "" };
        text.push_str(&format!(
            "| {} | {}{flaky} | {time} | {detail} |\n",
            step.name, step.status
        ));
    }
    if let Some(link) = link {
        text.push_str(&format!("\n[Full log]({link})\n"));
        let ui_ran = validation.steps.iter().any(|s| {
            s.name == slipway_core::validation::StepName::Ui
                && matches!(s.status, StepStatus::Passed | StepStatus::Failed)
        });
        if ui_ran {
            let page = link.replacen("/api/v1/validations/", "/validations/", 1);
            text.push_str(&format!(
                "[Browser checks: screenshots, console and requests]({page})\n"
            ));
        }
    }
    text
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}
