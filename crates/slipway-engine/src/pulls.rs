//! The local forge's pull requests: opening one validates its head; a poller notices pushes
//! to open ones (the local forge has no webhooks); the merge controller merges a pull request
//! only when every condition holds, and says on the pull request why when one does not.

use crate::{pipeline, Engine, Inner, SubmitError, Target};
use slipway_core::project::validate_branch;
use slipway_core::validation::ValidationStatus;
use slipway_core::{Project, RepoLocation, ValidationId};
use slipway_forge::local::{self, MergeOutcome};
use slipway_store::PullRequest;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const POLL_EVERY: Duration = Duration::from_secs(2);
const MERGE_TRIES: usize = 3;

impl Engine {
    /// Opens a pull request from `head` into `base` of a local project and validates it.
    pub async fn open_pull_request(
        &self,
        project: &Project,
        title: &str,
        head: &str,
        base: &str,
    ) -> Result<PullRequest, SubmitError> {
        if !matches!(
            RepoLocation::parse(&project.repo),
            Ok(RepoLocation::Local { .. })
        ) {
            return Err(SubmitError::Invalid(
                "pull requests of GitHub projects are opened on GitHub; this API is the local forge's".into(),
            ));
        }
        let invalid = |e: slipway_core::Invalid| SubmitError::Invalid(e.to_string());
        validate_branch("head", head).map_err(invalid)?;
        validate_branch("base", base).map_err(invalid)?;
        if head == base {
            return Err(SubmitError::Invalid(
                "head and base are the same branch".into(),
            ));
        }
        let title = title.trim();
        if title.is_empty() || title.chars().count() > 256 {
            return Err(SubmitError::Invalid(
                "title: give 1 to 256 characters".into(),
            ));
        }
        let source = pipeline::source_of(&project.repo);
        let git = &self.inner.git;
        let sha = git
            .branch_head(&source, head)
            .await
            .map_err(|e| SubmitError::Invalid(format!("head: {e}")))?;
        git.branch_head(&source, base)
            .await
            .map_err(|e| SubmitError::Invalid(format!("base: {e}")))?;
        let pr = self
            .inner
            .store
            .open_pull_request(project.id, title, head, base, &sha)
            .await?;
        self.notify_pull_request(project, &local_url(project, pr.number), "opened")
            .await;
        self.validate_pull_request(project, &pr).await?;
        Ok(pr)
    }

    async fn validate_pull_request(
        &self,
        project: &Project,
        pr: &PullRequest,
    ) -> Result<(), SubmitError> {
        let target = Target::PullRequest {
            number: pr.number,
            sha: pr.head_sha.clone(),
            head_ref: pr.head.clone(),
            source: pipeline::source_of(&project.repo),
        };
        let record = self.submit(project, target).await?;
        tracing::info!(project = %project.id, pr = pr.number, validation = %record.id, "pull request head queued");
        Ok(())
    }

    /// Validates the new head of every open pull request whose branch moved; returns how many.
    pub async fn poll_pull_requests(&self) -> anyhow::Result<usize> {
        let store = &self.inner.store;
        let mut moved = 0;
        for pr in store.open_pull_requests().await? {
            let project = store.project(pr.project_id).await?;
            let source = pipeline::source_of(&project.repo);
            let Ok(head) = self.inner.git.branch_head(&source, &pr.head).await else {
                continue; // the branch is gone; nothing to validate
            };
            if head != pr.head_sha
                && store
                    .set_pull_request_head(project.id, pr.number, &head)
                    .await?
            {
                let pr = store.pull_request(project.id, pr.number).await?;
                if let Err(error) = self.validate_pull_request(&project, &pr).await {
                    tracing::warn!(%error, pr = pr.number, "new head not validated");
                }
                moved += 1;
            }
        }
        Ok(moved)
    }

    /// Polls the local forge every few seconds and GitHub every `github_poll_every`.
    pub(crate) fn spawn_poller(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        tokio::spawn(async move {
            let mut last_github = std::time::Instant::now();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(POLL_EVERY.min(engine.inner.config.github_poll_every)) => {}
                    _ = shutdown.cancelled() => break,
                }
                if let Err(error) = engine.poll_pull_requests().await {
                    tracing::error!(%error, "polling pull requests failed");
                }
                let github = engine.inner.config.github.clone();
                if let Some(github) = github {
                    if last_github.elapsed() >= engine.inner.config.github_poll_every {
                        last_github = std::time::Instant::now();
                        if let Err(error) = crate::github::poll(&engine, &github).await {
                            tracing::error!(%error, "polling GitHub pull requests failed");
                        }
                    }
                }
            }
        })
    }
}

/// Called with every verdict: merges the validation's local pull request if all holds —
/// the project allows auto-merge, the pull request is open, the validation passed on exactly
/// its current head, and the head merges cleanly — otherwise notes on it why not.
pub(crate) async fn after_verdict(engine: &Engine, id: ValidationId) -> anyhow::Result<()> {
    let inner: &Inner = &engine.inner;
    let store = &inner.store;
    let validation = store.validation(id).await?;
    let Some(number) = validation.pr else {
        return Ok(());
    };
    let project = store.project(validation.project_id).await?;
    let Ok(RepoLocation::Local { path }) = RepoLocation::parse(&project.repo) else {
        return crate::github::after_verdict(inner, engine, &validation, &project).await;
    };
    let Ok(pr) = store.pull_request(project.id, number).await else {
        return Ok(());
    };
    let note =
        |text: String| async move { store.note_pull_request(project.id, number, &text).await };
    if pr.state != "open" || pr.head_sha != validation.sha {
        return Ok(()); // closed, merged, or a newer head has its own validation
    }
    if validation.status != ValidationStatus::Passed {
        note(format!(
            "not merged: validation {id} of {} {}",
            short(&validation.sha),
            validation.status
        ))
        .await?;
        return Ok(());
    }
    let settings = store.settings(project.id).await?;
    if !settings.auto_merge {
        note(format!(
            "validation {id} passed; auto_merge is off, so it waits for a person"
        ))
        .await?;
        return Ok(());
    }
    let source = path.display().to_string();
    for attempt in 1..=MERGE_TRIES {
        // The head must still be the validated commit at the moment of merging.
        let head = inner.git.branch_head(&source, &pr.head).await?;
        if head != validation.sha {
            note(format!(
                "not merged: the head moved to {} after validation {id}",
                short(&head)
            ))
            .await?;
            return Ok(());
        }
        let scratch = inner
            .config
            .data_dir
            .join("merges")
            .join(format!("{}-{number}-{id}-{attempt}", project.id));
        let _ = tokio::fs::remove_dir_all(&scratch).await;
        let message = format!("{} (#{number})", pr.title);
        let outcome = local::merge(
            &source,
            &pr.base,
            &validation.sha,
            settings.merge_method,
            &message,
            &scratch,
        )
        .await;
        let _ = tokio::fs::remove_dir_all(&scratch).await;
        match outcome? {
            MergeOutcome::Merged { sha } => {
                if store
                    .mark_merged(project.id, number, &validation.sha, &sha)
                    .await?
                {
                    tracing::info!(project = %project.id, pr = number, merge = %sha, "pull request merged");
                    engine
                        .notify_pull_request(&project, &local_url(&project, number), "merged")
                        .await;
                    if settings.delete_branch_after_merge {
                        if let Err(error) = local::delete_branch(&path, &pr.head).await {
                            tracing::warn!(%error, "merged, but the branch was not deleted");
                        }
                    }
                }
                return Ok(());
            }
            MergeOutcome::Conflict { paths } => {
                note(format!(
                    "not mergeable: {} conflicts with {} in {}",
                    pr.head,
                    pr.base,
                    paths.join(", ")
                ))
                .await?;
                return Ok(());
            }
            MergeOutcome::BaseMoved => continue,
        }
    }
    note(format!(
        "not merged: {} kept moving during {MERGE_TRIES} merge attempts",
        pr.base
    ))
    .await?;
    Ok(())
}

/// Where a local pull request is listed.
fn local_url(project: &Project, number: i64) -> String {
    format!("/api/v1/projects/{}/pulls#{number}", project.id)
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}
