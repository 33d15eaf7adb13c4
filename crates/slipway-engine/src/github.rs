//! GitHub pull requests: a pending commit status when a head is queued; after the verdict the
//! final status, one report comment updated in place, and the guarded merge; and a poller that
//! finds heads no webhook announced.

use crate::{Engine, Inner, Target};
use slipway_core::validation::{StepStatus, ValidationStatus};
use slipway_core::{Project, RepoLocation, ValidationId};
use slipway_forge::github::{GitHub, Merge, StatusState};
use slipway_store::ValidationRecord;
use std::sync::Arc;

/// Marks Slipway's report comment, so that it is found and edited, never duplicated.
const REPORT_MARKER: &str = "<!-- slipway:validation-report -->";

/// `owner/name` when the project is on GitHub.
pub(crate) fn repo_of(project: &Project) -> Option<String> {
    match RepoLocation::parse(&project.repo) {
        Ok(RepoLocation::GitHub { owner, name }) => Some(format!("{owner}/{name}")),
        _ => None,
    }
}

fn link(inner: &Inner, id: ValidationId) -> Option<String> {
    inner
        .config
        .public_url
        .as_ref()
        .map(|base| format!("{}/api/v1/validations/{id}", base.trim_end_matches('/')))
}

/// Reports a queued head as pending (best effort: GitHub being down never blocks a validation).
pub(crate) async fn report_queued(inner: &Inner, project: &Project, record: &ValidationRecord) {
    let (Some(github), Some(repo), Some(_)) = (&inner.config.github, repo_of(project), record.pr)
    else {
        return;
    };
    let description = format!("validation {} queued", record.id);
    if let Err(error) = github
        .set_status(
            &repo,
            &record.sha,
            StatusState::Pending,
            &description,
            link(inner, record.id).as_deref(),
        )
        .await
    {
        tracing::warn!(%error, validation = %record.id, "pending status not reported");
    }
}

/// After a verdict on a GitHub pull request: status, comment, and the merge when all holds.
pub(crate) async fn after_verdict(
    inner: &Inner,
    engine: &Engine,
    record: &ValidationRecord,
    project: &Project,
) -> anyhow::Result<()> {
    let (Some(github), Some(repo), Some(number)) =
        (&inner.config.github, repo_of(project), record.pr)
    else {
        return Ok(());
    };
    let (state, summary) = summary(record);
    let Some(state) = state else {
        return Ok(()); // cancelled: a newer head or a closed PR; nothing to report
    };
    github
        .set_status(
            &repo,
            &record.sha,
            state,
            &summary,
            link(inner, record.id).as_deref(),
        )
        .await?;
    let mut report = comment(record, &summary, link(inner, record.id).as_deref());
    if github.is_app() {
        let conclusion = match state {
            StatusState::Success => "success",
            StatusState::Failure => "failure",
            _ => "neutral",
        };
        github
            .complete_check_run(
                &repo,
                &record.sha,
                conclusion,
                &summary,
                &report,
                link(inner, record.id).as_deref(),
            )
            .await?;
    }
    let merge_note = if state == StatusState::Success {
        merge(inner, engine, github, &repo, number, record, project).await?
    } else {
        "Not merged: the validation did not pass.".to_owned()
    };
    report.push_str(&format!("\n{merge_note}\n"));
    github
        .upsert_comment(&repo, number, REPORT_MARKER, &report)
        .await?;
    Ok(())
}

/// The guarded merge. Returns a sentence for the report.
async fn merge(
    inner: &Inner,
    engine: &Engine,
    github: &GitHub,
    repo: &str,
    number: i64,
    record: &ValidationRecord,
    project: &Project,
) -> anyhow::Result<String> {
    let settings = inner.store.settings(project.id).await?;
    if !settings.auto_merge {
        return Ok("Passed; auto-merge is off for this project, so a person merges it.".into());
    }
    let pull = github.pull(repo, number).await?;
    if pull.state != "open" || pull.merged {
        return Ok("Not merged: the pull request is not open.".into());
    }
    if pull.draft {
        return Ok("Not merged: the pull request is a draft.".into());
    }
    if pull.head_sha != record.sha {
        // A push we were not told about (a lost webhook): validate the new head now.
        let moved_to = pull.head_sha.clone();
        validate_head(engine, project, number, pull).await;
        return Ok(format!(
            "Not merged: the head moved to {}; that commit is validated next.",
            short(&moved_to)
        ));
    }
    if pull.mergeable != Some(true) {
        return Ok(format!(
            "Not merged: GitHub reports {} as not mergeable into {} (conflicts?).",
            pull.head_ref, pull.base_ref
        ));
    }
    let approvals = github.approvals(repo, number).await?;
    if approvals < settings.required_approvals as usize {
        return Ok(format!(
            "Not merged: {approvals} of the {} required approvals.",
            settings.required_approvals
        ));
    }
    let title = format!("Merge pull request #{number} (validated by Slipway)");
    match github
        .merge(repo, number, &record.sha, settings.merge_method, &title)
        .await?
    {
        Merge::Merged { sha } => {
            tracing::info!(repo, pr = number, merge = %sha, "pull request merged");
            engine
                .notify_pull_request(project, &pull_url(repo, number), "merged")
                .await;
            if settings.delete_branch_after_merge {
                if let Err(error) = github.delete_branch(repo, &pull.head_ref).await {
                    tracing::warn!(%error, "merged, but the branch was not deleted");
                }
            }
            Ok(format!(
                "Merged as {} (exactly the validated head {}).",
                short(&sha),
                short(&record.sha)
            ))
        }
        Merge::HeadMoved => {
            // GitHub refused because the head moved: validate the new head instead.
            let pull = github.pull(repo, number).await?;
            let moved_to = pull.head_sha.clone();
            validate_head(engine, project, number, pull).await;
            Ok(format!(
                "Not merged: the head moved to {} during the merge; validating it.",
                short(&moved_to)
            ))
        }
        Merge::NotMergeable { message } => {
            Ok(format!("Not merged: GitHub refused the merge ({message})."))
        }
    }
}

async fn validate_head(
    engine: &Engine,
    project: &Project,
    number: i64,
    pull: slipway_forge::github::Pull,
) {
    let target = Target::PullRequest {
        number,
        sha: pull.head_sha,
        head_ref: pull.head_ref,
        source: pull.head_clone_url,
    };
    if let Err(error) = engine.submit(project, target).await {
        tracing::warn!(%error, pr = number, "the new head was not queued");
    }
}

fn summary(record: &ValidationRecord) -> (Option<StatusState>, String) {
    match record.status {
        ValidationStatus::Passed => (
            Some(StatusState::Success),
            format!("validation {} passed", record.id),
        ),
        ValidationStatus::Failed => {
            let failing = record.steps.iter().find(|s| s.status == StepStatus::Failed);
            let detail = failing
                .map(|s| format!("{} failed: {}", s.name, s.detail.as_deref().unwrap_or("")))
                .unwrap_or_else(|| "failed".into());
            (Some(StatusState::Failure), detail)
        }
        ValidationStatus::Error => (
            Some(StatusState::Error),
            format!(
                "infrastructure error: {}",
                record.error.as_deref().unwrap_or("see the log")
            ),
        ),
        _ => (None, String::new()),
    }
}

fn comment(record: &ValidationRecord, summary: &str, link: Option<&str>) -> String {
    let mut text = format!("### Slipway: {} for `{}`\n\n{summary}\n\n| step | status | time | detail |\n|---|---|---|---|\n", record.status, short(&record.sha));
    for step in &record.steps {
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
        text.push_str(&format!(
            "| {} | {} | {time} | {detail} |\n",
            step.name, step.status
        ));
    }
    if let Some(link) = link {
        text.push_str(&format!("\n[Full log]({link})\n"));
    }
    text
}

pub(crate) fn pull_url(repo: &str, number: i64) -> String {
    format!("https://github.com/{repo}/pull/{number}")
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// Validates heads of open pull requests that no validation has seen yet (missed webhooks).
pub(crate) async fn poll(engine: &Engine, github: &Arc<GitHub>) -> anyhow::Result<usize> {
    let store = &engine.inner.store;
    let mut queued = 0;
    for project in store.list_projects().await?.iter() {
        let Some(repo) = repo_of(project) else {
            continue;
        };
        let settings = store.settings(project.id).await?;
        for pull in github.open_pulls(&repo).await? {
            if pull.draft && !settings.validate_drafts {
                continue;
            }
            let (_, latest) = store
                .validations_of_pull_request(project.id, pull.number)
                .await?;
            let known = match latest {
                Some(id) => store.validation(id).await?.sha == pull.head_sha,
                None => false,
            };
            if !known {
                let target = Target::PullRequest {
                    number: pull.number,
                    sha: pull.head_sha,
                    head_ref: pull.head_ref,
                    source: pull.head_clone_url,
                };
                engine.submit(project, target).await?;
                queued += 1;
            }
        }
    }
    Ok(queued)
}
