//! GitHub pull requests: a pending commit status when a head is queued, and a poller that
//! finds heads no webhook announced and passed heads whose merge is now allowed (a late
//! approval). (The verdict, report and merge are `merging.rs`'s.)

use crate::{Engine, Inner, Target};
use slipway_core::validation::ValidationStatus;
use slipway_core::{Project, ValidationId};
use slipway_forge::git::Git;
use slipway_forge::github::{GitHub, StatusState};
use slipway_store::ValidationRecord;
use std::sync::Arc;

/// Git with the credentials `source` needs for a GitHub project: the token, or as an App
/// the installation token of the project's repository (cached by the client). Other projects,
/// and a GitHub that cannot be asked, get the engine's default git.
pub(crate) async fn git_for(inner: &Inner, project: &Project, source: &str) -> Git {
    let (Some(repo), Some(github)) = (project.location.github(), &inner.config.github) else {
        return inner.git.clone();
    };
    match github.git_token(&repo).await {
        Ok(token) => Git::with_token_for(source, &token).unwrap_or_else(|| inner.git.clone()),
        Err(error) => {
            tracing::warn!(%error, %repo, "no GitHub token for git; trying without one");
            inner.git.clone()
        }
    }
}

/// Where people read a validation (from `SLIPWAY_PUBLIC_URL`), for statuses and reports.
pub(crate) fn link(inner: &Inner, id: ValidationId) -> Option<String> {
    inner
        .config
        .public_url
        .as_ref()
        .map(|base| format!("{}/api/v1/validations/{id}", base.trim_end_matches('/')))
}

/// Reports a queued head as pending (best effort: GitHub being down never blocks a validation).
pub(crate) async fn report_queued(inner: &Inner, project: &Project, record: &ValidationRecord) {
    let (Some(github), Some(repo), Some(_)) =
        (&inner.config.github, project.location.github(), record.pr)
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

pub(crate) fn pull_url(repo: &str, number: i64) -> String {
    format!("https://github.com/{repo}/pull/{number}")
}

/// Validates heads of open pull requests that no validation has seen yet (missed webhooks).
pub(crate) async fn poll(engine: &Engine, github: &Arc<GitHub>) -> anyhow::Result<usize> {
    let store = &engine.inner.store;
    let mut queued = 0;
    for project in store.list_projects().await?.iter() {
        let Some(repo) = project.location.github() else {
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
            let newest = match latest {
                Some(id) => Some(store.validation(id).await?),
                None => None,
            };
            let known = newest.as_ref().is_some_and(|v| v.sha == pull.head_sha);
            if known {
                // A passed head held back (an approval that came without a webhook, say):
                // the merge controller acts if it would merge now.
                let held = newest.as_ref().is_some_and(|v| {
                    v.status == ValidationStatus::Passed && !crate::merging::merged_step(v)
                });
                if held {
                    let note = crate::merging::after_approval(
                        engine,
                        project,
                        pull.number,
                        Some(&pull.head_sha),
                    )
                    .await;
                    match note {
                        Ok(note) => tracing::debug!(%note, "poll: a passed pull request"),
                        Err(error) => {
                            tracing::warn!(%error, pr = pull.number, "poll: not acted on")
                        }
                    }
                }
            } else {
                let target = Target::PullRequest {
                    number: pull.number,
                    sha: pull.head_sha,
                    head_ref: pull.head_ref,
                    source: pull.head_clone_url,
                    base_ref: pull.base_ref,
                    base_source: pull.base_clone_url,
                };
                engine
                    .submit_by(project, target, "GitHub: an unseen head (poll)")
                    .await?;
                queued += 1;
            }
        }
    }
    Ok(queued)
}
