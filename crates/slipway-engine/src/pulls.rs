//! The local forge's pull requests: opening one validates its head; a poller notices pushes
//! to open ones (the local forge has no webhooks). Merging is `merging.rs`'s, for every forge.

use crate::forges::local_url;
use crate::{Engine, SubmitError, Target};
use slipway_core::project::validate_branch;
use slipway_core::Project;
use slipway_forge::Forge;
use slipway_store::PullRequest;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const POLL_EVERY: Duration = Duration::from_secs(2);

impl Engine {
    /// Opens a pull request from `head` into `base` of a local project and validates it.
    pub async fn open_pull_request(
        &self,
        project: &Project,
        title: &str,
        head: &str,
        base: &str,
    ) -> Result<PullRequest, SubmitError> {
        let pr = self.open_local_pull(project, title, head, base).await?;
        self.validate_pull_request(project, &pr).await?;
        Ok(pr)
    }

    /// Opens a pull request of the local forge (not validated yet).
    pub(crate) async fn open_local_pull(
        &self,
        project: &Project,
        title: &str,
        head: &str,
        base: &str,
    ) -> Result<PullRequest, SubmitError> {
        if project.location.local_path().is_none() {
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
        let source = project.location.source();
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
        Ok(pr)
    }

    pub(crate) async fn validate_pull_request(
        &self,
        project: &Project,
        pr: &PullRequest,
    ) -> Result<(), SubmitError> {
        let target = Target::PullRequest {
            number: pr.number,
            sha: pr.head_sha.clone(),
            head_ref: pr.head.clone(),
            source: project.location.source(),
            base_ref: pr.base.clone(),
            base_source: String::new(),
        };
        let record = self
            .submit_by(
                project,
                target,
                format!("pull request #{} updated", pr.number),
            )
            .await?;
        tracing::info!(project = %project.id, pr = pr.number, validation = %record.id, "pull request head queued");
        Ok(())
    }

    /// Validates the current head of pull request `number` of the project, on its forge.
    pub async fn validate_pull_request_number(
        &self,
        project: &Project,
        number: i64,
        started_by: &str,
    ) -> Result<slipway_store::ValidationRecord, SubmitError> {
        let Some(forge) = self.forge(project) else {
            return Err(SubmitError::Invalid(
                "pr: reading a GitHub pull request needs GITHUB_TOKEN or a GitHub App".into(),
            ));
        };
        let pull = forge.pull(number).await.map_err(|e| {
            SubmitError::Invalid(format!(
                "pr: there is no pull request #{number} in this project, or it cannot be read: {e}"
            ))
        })?;
        let target = Target::of_pull(number, pull);
        self.submit_by(project, target, started_by).await
    }

    /// A person merges pull request `number` (the merge controller's conditions but
    /// auto-merge); the sentence says what happened.
    pub async fn merge_pull_request(
        &self,
        project: &Project,
        number: i64,
    ) -> anyhow::Result<String> {
        crate::merging::merge_by_hand(self, project, number).await
    }

    /// What a pull request changes and its commits, from its forge (GitHub or the local one);
    /// `None` when the project has no forge Slipway can ask.
    pub async fn pull_request_changes(
        &self,
        project: &Project,
        number: i64,
    ) -> Option<
        anyhow::Result<(
            Vec<slipway_forge::FileChange>,
            Vec<slipway_forge::CommitInfo>,
        )>,
    > {
        let forge = self.forge(project)?;
        let read = async {
            let (mut files, mut commits) =
                tokio::try_join!(forge.diff(number), forge.commits(number))?;
            // The pull request's words, shown: masked as every other output is.
            let secrets = self.inner.store.secret_values(project.id).await?;
            let masker = slipway_core::Masker::new(secrets.iter().map(|(_, v)| v.expose()));
            let mask = |text: &mut String| *text = masker.mask(text).into_owned();
            for file in &mut files {
                mask(&mut file.path);
                if let Some(patch) = &mut file.patch {
                    mask(patch);
                }
            }
            for commit in &mut commits {
                mask(&mut commit.title);
                mask(&mut commit.author);
            }
            Ok((files, commits))
        };
        Some(read.await)
    }

    /// A person closes a local pull request: its unfinished validations are cancelled.
    pub async fn close_pull_request(&self, project: &Project, number: i64) -> anyhow::Result<bool> {
        let closed = self
            .inner
            .store
            .close_pull_request(project.id, number)
            .await?;
        let (unfinished, _) = self
            .inner
            .store
            .validations_of_pull_request(project.id, number)
            .await?;
        for id in unfinished {
            self.cancel(id).await?;
        }
        Ok(closed)
    }

    /// Validates the new head of every open pull request whose branch moved; returns how many.
    pub async fn poll_pull_requests(&self) -> anyhow::Result<usize> {
        let store = &self.inner.store;
        let mut moved = 0;
        for pr in store.open_pull_requests().await? {
            let project = store.project(pr.project_id).await?;
            let source = project.location.source();
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
            let every = POLL_EVERY.min(engine.inner.config.github_poll_every);
            let mut last_github = std::time::Instant::now();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = shutdown.cancelled() => break,
                }
                // Once per interval across every process on the database.
                if engine.claim_interval("poll:local", every).await {
                    if let Err(error) = engine.poll_pull_requests().await {
                        tracing::error!(%error, "polling pull requests failed");
                    }
                }
                let github = engine.inner.config.github.clone();
                if let Some(github) = github {
                    let every = engine.inner.config.github_poll_every;
                    // Its interval after this process started, and once across processes.
                    if last_github.elapsed() >= every
                        && engine.claim_interval("poll:github", every).await
                    {
                        last_github = std::time::Instant::now();
                        if let Err(error) = crate::github::poll(&engine, &github).await {
                            tracing::error!(%error, "polling GitHub pull requests failed");
                        }
                    }
                }
            }
        })
    }

    /// Whether this process runs the periodic task `name` this interval.
    async fn claim_interval(&self, name: &str, every: std::time::Duration) -> bool {
        self.inner
            .store
            .claim_interval(name, every)
            .await
            .unwrap_or_else(|error| {
                tracing::error!(%error, name, "could not claim the interval; skipping it");
                false
            })
    }
}
