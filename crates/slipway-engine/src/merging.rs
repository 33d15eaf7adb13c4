//! The merge controller, one for every forge: after a verdict on a pull request's head it
//! marks the head, reads the pull request, asks `core::merge::decide` what to do, applies
//! that decision here (validate again, merge the exact validated pair under the base
//! branch's turn, delete the branch, validate the others into that base again), and tells
//! the pull request. What could not be made for a transient reason (a 5xx, a timeout, a rate
//! limit that outlasted the client's waits, mergeability still being computed) is tried
//! again by a `verdict` job (`retry.rs`), and the merge step shows "retrying: …" meanwhile.
//! A late approval runs the controller again without a new validation.

mod report;
mod retry;

pub(crate) use report::{merged as merged_step, Outcome};
pub(crate) use retry::VerdictJob;

use crate::{Engine, Target};
use report::{Shown, PERMISSIONS};
use slipway_core::merge::{self, Decision, Facts, Mergeable, OwnChecks, PullFacts};
use slipway_core::policy::{self, PullRequestPolicy};
use slipway_core::validation::ValidationStatus;
use slipway_core::{PipelineConfig, Project, Settings, ValidationId};
use slipway_forge::github::is_transient;
use slipway_forge::{Forge, MergeResult, PullState};
use slipway_store::ValidationRecord;

/// Why the controller runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Occasion {
    /// A verdict: mark the head, decide, tell.
    Verdict,
    /// An approval after the verdict (a review delivered, or the poller): act only if the
    /// decision is now to merge; the head is marked already.
    Approval,
}

/// How a run of the controller ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// Said and done. The policy that applied, when it was read.
    Done(Option<PullRequestPolicy>),
    /// Nothing to do now (an approval that does not make a merge): why.
    Nothing(String),
    /// Something could not be made for a transient reason: try `redo` later.
    Pending {
        redo: Redo,
        why: String,
        policy: Option<PullRequestPolicy>,
    },
}

/// What a later attempt does.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "redo", rename_all = "snake_case")]
pub(crate) enum Redo {
    /// The whole controller: mark, read, decide, merge, tell.
    All,
    /// Only tell the pull request this outcome (what was to be merged was).
    Tell { outcome: Outcome },
}

/// Reports the verdict and merges when allowed. Returns the policy that applied, which the
/// fix loop follows too; `None` when the validation is not of a pull request on a forge, or
/// the policy could not be read yet (a job tries again).
pub(crate) async fn after_verdict(
    engine: &Engine,
    id: ValidationId,
) -> anyhow::Result<Option<PullRequestPolicy>> {
    match control(engine, id, Occasion::Verdict, &Redo::All).await? {
        Ended::Done(policy) => Ok(policy),
        Ended::Nothing(_) => Ok(None),
        Ended::Pending { redo, why, policy } => {
            retry::later(engine, id, &redo, &why).await?;
            Ok(policy)
        }
    }
}

/// A late approval of pull request `number`: its newest validation, when it passed on
/// exactly the current head and has not merged, is acted on again (no new validation).
/// Returns what was done, in a sentence.
pub(crate) async fn after_approval(
    engine: &Engine,
    project: &Project,
    number: i64,
    head_sha: Option<&str>,
) -> anyhow::Result<String> {
    let store = &engine.inner.store;
    let (_, newest) = store
        .validations_of_pull_request(project.id, number)
        .await?;
    let Some(newest) = newest else {
        return Ok(format!("PR #{number} has no validation yet"));
    };
    let validation = store.validation(newest).await?;
    if validation.status != ValidationStatus::Passed
        || head_sha.is_some_and(|sha| sha != validation.sha)
        || report::merged(&validation)
    {
        return Ok(format!(
            "PR #{number}: its newest validation ({}, {}) is not a passed, unmerged one of this head",
            validation.id, validation.status
        ));
    }
    Ok(
        match control(engine, newest, Occasion::Approval, &Redo::All).await? {
            Ended::Done(_) => format!("PR #{number}: validation {newest} acted on again"),
            Ended::Nothing(why) => format!("PR #{number}: not merged: {why}"),
            Ended::Pending { redo, why, .. } => {
                retry::later(engine, newest, &redo, &why).await?;
                format!("PR #{number}: retrying: {why}")
            }
        },
    )
}

/// The controller: mark (for a verdict), read, decide, apply, tell — or only tell.
pub(crate) async fn control(
    engine: &Engine,
    id: ValidationId,
    occasion: Occasion,
    redo: &Redo,
) -> anyhow::Result<Ended> {
    let store = &engine.inner.store;
    let validation = store.validation(id).await?;
    let Some(number) = validation.pr else {
        return Ok(Ended::Done(None));
    };
    let project = store.project(validation.project_id).await?;
    let Some(forge) = engine.forge(&project) else {
        return Ok(Ended::Done(None));
    };
    let Some(report) = report::verdict_report(engine, &validation).await else {
        return Ok(Ended::Done(None));
    };
    let pending = |redo: Redo, why: String, policy| Ended::Pending { redo, why, policy };
    let (outcome, policy) = match redo {
        Redo::Tell { outcome } => (outcome.clone(), None),
        Redo::All => {
            let mut refusals = Vec::new();
            if occasion == Occasion::Verdict {
                // Marked before any merge: a branch protection that requires Slipway's
                // check sees it.
                if let Err(error) = forge.mark(&report).await {
                    if is_transient(&error) {
                        let why = format!("the commit status could not be set: {error}");
                        return Ok(pending(Redo::All, why, None));
                    }
                    refusals.push(format!(
                        "The commit status (or check run) could not be set: {error}. {PERMISSIONS}"
                    ));
                }
            }
            let gathered = match gather(engine, &forge, &project, &validation, number, false).await
            {
                Ok(gathered) => gathered,
                Err(error) if is_transient(&error) => {
                    let why = format!("the pull request could not be read: {error}");
                    return Ok(pending(Redo::All, why, None));
                }
                Err(error) => return Err(error),
            };
            let policy = Some(gathered.policy);
            let decision = merge::decide(&gathered.facts(&validation, false));
            if occasion == Occasion::Approval {
                match &decision {
                    Decision::NotMerged { why } | Decision::Revalidate { why } => {
                        return Ok(Ended::Nothing(why.clone()))
                    }
                    Decision::AlreadyMerged => {
                        return Ok(Ended::Nothing(merge::ALREADY_MERGED.into()))
                    }
                    Decision::WaitForMergeability | Decision::Merge(_) => {}
                }
            }
            let mut outcome =
                match apply(engine, &forge, &project, number, gathered, decision).await {
                    Ok(Applied::Outcome(outcome)) => outcome,
                    Ok(Applied::Wait(why)) => return Ok(pending(Redo::All, why, policy)),
                    Err(error) if is_transient(&error) => {
                        let why = format!("the merge could not be made: {error}");
                        return Ok(pending(Redo::All, why, policy));
                    }
                    Err(error) => return Err(error),
                };
            outcome.refusals.splice(0..0, refusals);
            (outcome, policy)
        }
    };
    let mut outcome = outcome;
    if let Err(error) = forge
        .tell(number, &report::with_outcome(&report, &outcome))
        .await
    {
        if is_transient(&error) {
            let why = format!("the report could not be posted: {error}");
            return Ok(pending(Redo::Tell { outcome }, why, policy));
        }
        outcome.refusals.push(format!(
            "The report could not be posted: {error}. {PERMISSIONS}"
        ));
    }
    report::show(engine, &validation, Shown::Final(&outcome)).await;
    Ok(Ended::Done(policy))
}

/// What the decision needs, read from the forge.
struct Gathered {
    pull: PullState,
    policy: PullRequestPolicy,
    own_checks: OwnChecks,
    computes_mergeability: bool,
}

impl Gathered {
    fn facts<'a>(&'a self, validation: &'a ValidationRecord, by_hand: bool) -> Facts<'a> {
        let pull = &self.pull;
        Facts {
            pull: PullFacts {
                open: pull.open,
                merged: pull.merged,
                draft: pull.draft,
                title: &pull.title,
                head_sha: &pull.head_sha,
                head_ref: &pull.head_ref,
                base_ref: &pull.base_ref,
                head_in_base: pull.head_in_base,
                mergeable: match pull.mergeable {
                    Some(true) => Mergeable::Yes,
                    Some(false) => Mergeable::No,
                    None if self.computes_mergeability => Mergeable::Computing,
                    None => Mergeable::NotReported,
                },
                approvals: pull.approvals,
            },
            validation: merge::ValidationFacts {
                passed: validation.status == ValidationStatus::Passed,
                sha: &validation.sha,
                base_sha: validation.base_sha.as_deref(),
            },
            policy: self.policy,
            by_hand,
            own_checks: self.own_checks.clone(),
        }
    }
}

async fn gather<F: Forge>(
    engine: &Engine,
    forge: &F,
    project: &Project,
    validation: &ValidationRecord,
    number: i64,
    by_hand: bool,
) -> anyhow::Result<Gathered> {
    let settings = engine.inner.store.settings(project.id).await?;
    let pull = forge.pull(number).await?;
    let policy = policy(forge, &settings, &pull.base_ref).await;
    // Only asked when it can matter: an automatic merge of a passed validation.
    let asked = !by_hand && policy.auto_merge && validation.status == ValidationStatus::Passed;
    let own_checks = if !asked {
        OwnChecks::Unchanged
    } else if let Some(changes) = validation.changes_checks {
        // Read from git at checkout: renames, deletions and long file lists included.
        if changes {
            OwnChecks::Changed
        } else {
            OwnChecks::Unchanged
        }
    } else {
        match forge.changed_files(number).await {
            Ok(files) if policy::changes_its_own_checks(&files) => OwnChecks::Changed,
            Ok(_) => OwnChecks::Unchanged,
            Err(error) if is_transient(&error) => return Err(error),
            Err(error) => OwnChecks::Unknown(error.to_string()),
        }
    };
    Ok(Gathered {
        pull,
        policy,
        own_checks,
        computes_mergeability: forge.computes_mergeability(),
    })
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

/// What applying a decision came to.
enum Applied {
    Outcome(Outcome),
    /// Not yet: why (asked again later).
    Wait(String),
}

/// Applies a decision: the one place the controller's effects are made.
async fn apply<F: Forge>(
    engine: &Engine,
    forge: &F,
    project: &Project,
    number: i64,
    gathered: Gathered,
    decision: Decision,
) -> anyhow::Result<Applied> {
    let pull = gathered.pull;
    let merge = match decision {
        Decision::NotMerged { why } => return Ok(Applied::Outcome(Outcome::not_merged(&why))),
        Decision::AlreadyMerged => {
            return Ok(Applied::Outcome(Outcome::said(
                merge::ALREADY_MERGED.into(),
            )))
        }
        Decision::Revalidate { why } => {
            validate_head(engine, project, number, pull).await;
            return Ok(Applied::Outcome(Outcome::not_merged(&why)));
        }
        Decision::WaitForMergeability => {
            return Ok(Applied::Wait(
                "the forge is still computing whether it can merge".into(),
            ))
        }
        Decision::Merge(merge) => merge,
    };
    // One merge into a base branch at a time: the next one sees the base this one made.
    // Across every process on the database (an advisory lock, or a lease row on SQLite).
    let _turn = engine
        .inner
        .store
        .merge_turn(project.id, &pull.base_ref)
        .await?;
    let title = format!("{} (#{number})", merge.title);
    let base_ref = pull.base_ref.clone();
    let merged = forge
        .merge(number, &merge.sha, &merge.base_sha, merge.method, &title)
        .await?;
    Ok(Applied::Outcome(match merged {
        MergeResult::Refused { reason } => Outcome {
            merged: false,
            sentence: "Not merged: the forge refused the merge.".into(),
            refusals: vec![format!("The merge was refused: {reason}. {PERMISSIONS}")],
        },
        MergeResult::Merged { sha } => {
            tracing::info!(project = %project.id, pr = number, merge = %sha, "pull request merged");
            engine
                .notify_pull_request(project, &forge.url(number), "merged")
                .await;
            crate::notify::pull_request_merged(
                engine,
                project,
                number,
                &forge.url(number),
                &merge.title,
            )
            .await;
            let mut outcome = Outcome {
                merged: true,
                sentence: merge::merged(&sha, &merge, &base_ref),
                refusals: Vec::new(),
            };
            if merge.delete_branch {
                if let Err(error) = forge.delete_branch(&pull.head_ref).await {
                    outcome.refusals.push(format!(
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
            Outcome::said(merge::base_moved(&base_ref, &to, &merge.base_sha))
        }
        MergeResult::HeadMoved => {
            let pull = forge.pull(number).await?;
            let moved_to = merge::short(&pull.head_sha).to_owned();
            validate_head(engine, project, number, pull).await;
            Outcome::not_merged(&format!(
                "the head moved to {moved_to} during the merge; validating it"
            ))
        }
        MergeResult::NotMergeable { reason } => match forge.pull(number).await {
            // Another run of the controller (a late approval beside a retry) merged it.
            Ok(now) if now.merged => Outcome::said(merge::ALREADY_MERGED.into()),
            _ => Outcome::not_merged(&format!("not mergeable ({reason})")),
        },
    }))
}

/// A person's merge of pull request `number`: every condition of the merge controller but
/// auto-merge and the own-checks rule holds (a passed validation of exactly the current head
/// on the current base). Returns what happened, in a sentence.
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
    let newest = match newest {
        Some(id) => Some(store.validation(id).await?),
        None => None,
    };
    let validation = match newest {
        Some(validation) if validation.status == ValidationStatus::Passed => validation,
        other => {
            // Refused before any merge is tried: why, and what would allow it, noted on the
            // pull request as every other outcome is.
            let said = not_passed(number, other.as_ref());
            let _ = store.note_pull_request(project.id, number, &said).await;
            return Ok(said);
        }
    };
    let gathered = gather(engine, &forge, project, &validation, number, true).await?;
    let decision = merge::decide(&gathered.facts(&validation, true));
    let outcome = match apply(engine, &forge, project, number, gathered, decision).await? {
        Applied::Outcome(outcome) => outcome,
        Applied::Wait(why) => Outcome::said(format!("Not merged yet: {why}; try again shortly.")),
    };
    let mut said = outcome.sentence.clone();
    for refusal in &outcome.refusals {
        said.push_str(&format!(" Refused: {refusal}"));
    }
    let _ = store.note_pull_request(project.id, number, &said).await;
    Ok(said)
}

/// Why a pull request without a passed newest validation is not merged, and what would allow it.
fn not_passed(number: i64, newest: Option<&ValidationRecord>) -> String {
    let Some(validation) = newest else {
        return format!(
            "Not merged: pull request #{number} has no validation yet. It can be merged once \
             a validation of its head has passed."
        );
    };
    let allows = match validation.status {
        ValidationStatus::Queued | ValidationStatus::Running => "Wait for it to pass, then merge.",
        ValidationStatus::Error | ValidationStatus::Cancelled => {
            "Retry the validation from its page; once it passes, merge."
        }
        _ => {
            "Push a fix to its branch (the new head is validated), or retry the validation \
             from its page if the failure was not the code's; once the newest validation \
             passes, merge."
        }
    };
    format!(
        "Not merged: its newest validation (#{}) is {}, not passed. {allows}",
        validation.id, validation.status
    )
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
