//! Validations asked for: which commit of a project (a branch's head, a commit, a pull
//! request's head merged onto its base), recorded and queued; retried and cancelled.

use crate::{git, github, Engine};
use slipway_core::validation::{self, ValidationStatus};
use slipway_core::{PipelineConfig, Project, ValidationId};
use slipway_forge::PullState;
use slipway_store::{Base, NewValidation, StoreError, ValidationRecord};

/// What to validate in a project.
#[derive(Debug, Clone)]
pub enum Target {
    Branch(String),
    Sha(String),
    /// The head of a pull request, fetched from `source` (a fork's URL for a PR from a fork).
    PullRequest {
        number: i64,
        sha: String,
        head_ref: String,
        source: String,
        /// The branch it merges into; the head is validated merged onto its head.
        base_ref: String,
        /// Where that branch is fetched from (empty: the project's repository).
        base_source: String,
    },
}

impl Target {
    /// The head of pull request `number` as its forge says it is now.
    pub fn of_pull(number: i64, pull: PullState) -> Self {
        Target::PullRequest {
            number,
            sha: pull.head_sha,
            head_ref: pull.head_ref,
            source: pull.head_clone_url,
            base_ref: pull.base_ref,
            base_source: pull.base_clone_url,
        }
    }
}

/// How to validate, beyond which commit.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Validate merged onto the head of this branch (set by a pull request's base).
    pub base: Option<String>,
    /// "Save and run setup": run exactly the settings' setup commands.
    pub setup_trial: bool,
    /// `slipway validate --config`: the pipeline used when the repository has none.
    pub config_file: Option<PipelineConfig>,
    /// Who or what asks (a token's name, "GitHub: synchronize"), shown in the lists.
    pub started_by: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The request names something that does not exist or is malformed.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Engine {
    /// Records and queues a validation of `target` in `project`. A newer commit of the same
    /// branch cancels the validations of older ones.
    pub async fn submit(
        &self,
        project: &Project,
        target: Target,
    ) -> Result<ValidationRecord, SubmitError> {
        self.submit_with(project, target, Options::default()).await
    }

    /// [`Engine::submit`], saying who or what asks (shown in the lists).
    pub async fn submit_by(
        &self,
        project: &Project,
        target: Target,
        started_by: impl Into<String>,
    ) -> Result<ValidationRecord, SubmitError> {
        let options = Options {
            started_by: Some(started_by.into()),
            ..Options::default()
        };
        self.submit_with(project, target, options).await
    }

    /// [`Engine::submit`] with options.
    pub async fn submit_with(
        &self,
        project: &Project,
        target: Target,
        options: Options,
    ) -> Result<ValidationRecord, SubmitError> {
        let mut source = project.location.source();
        let mut pr = None;
        let mut base = options.base.map(|branch| (branch, None));
        let (branch, sha) = match target {
            Target::PullRequest {
                number,
                sha,
                head_ref,
                source: from,
                base_ref,
                base_source,
            } => {
                base = Some((base_ref, Some(base_source).filter(|s| !s.is_empty())));
                if !git::is_full_sha(&sha) {
                    return Err(SubmitError::Invalid(format!(
                        "'{sha}' is not a full commit id"
                    )));
                }
                if !from.is_empty() {
                    source = from;
                }
                pr = Some(number);
                (Some(head_ref), sha.to_ascii_lowercase())
            }
            Target::Branch(branch) => {
                let git = github::git_for(&self.inner, project, &source).await;
                let sha = git
                    .branch_head(&source, &branch)
                    .await
                    .map_err(|e| SubmitError::Invalid(e.to_string()))?;
                (Some(branch), sha)
            }
            Target::Sha(sha) if git::is_full_sha(&sha) => (None, sha.to_ascii_lowercase()),
            Target::Sha(rev) => {
                let path = std::path::Path::new(&source);
                if !path.is_absolute() {
                    return Err(SubmitError::Invalid(format!(
                        "'{rev}' is not a full 40-character commit id"
                    )));
                }
                let sha = git::resolve_local(path, &rev)
                    .await
                    .map_err(|e| SubmitError::Invalid(e.to_string()))?;
                (None, sha)
            }
        };
        let base = match base {
            Some((branch, source)) => {
                slipway_core::project::validate_branch("base", &branch)
                    .map_err(|e| SubmitError::Invalid(e.to_string()))?;
                let source = source.unwrap_or_else(|| project.location.source());
                Some(Base { branch, source })
            }
            None => None,
        };
        if let Some(number) = pr {
            // The same head already waiting or running (a webhook, the poller and the agent
            // run can each notice one push): that validation serves all of them.
            let (unfinished, _) = self
                .inner
                .store
                .validations_of_pull_request(project.id, number)
                .await?;
            for id in unfinished {
                let record = self.inner.store.validation(id).await?;
                if record.sha == sha {
                    return Ok(record);
                }
            }
        }
        let new = NewValidation {
            project: project.id,
            source,
            branch,
            pr,
            sha,
            base,
            setup_trial: options.setup_trial,
            config_file: options.config_file,
            plan: Vec::new(),
            started_by: options.started_by,
        };
        self.record(project, new).await
    }

    /// Stops a validation: a queued one never starts, a running one's processes die.
    pub async fn cancel(&self, id: ValidationId) -> Result<ValidationStatus, StoreError> {
        let status = self.inner.store.request_cancel(id).await?;
        if let Some(token) = self.inner.running.lock().expect("running lock").get(&id) {
            token.cancel();
        }
        Ok(status)
    }

    /// Validates the same commit again, as a new validation.
    pub async fn retry(&self, id: ValidationId) -> Result<ValidationRecord, SubmitError> {
        let old = self.inner.store.validation(id).await?;
        let project = self.inner.store.project(old.project_id).await?;
        let new = NewValidation {
            project: project.id,
            source: old.source,
            branch: old.branch,
            pr: old.pr,
            sha: old.sha,
            base: old
                .base_ref
                .zip(old.base_source)
                .map(|(branch, source)| Base { branch, source }),
            setup_trial: old.setup_trial,
            config_file: old.config_file,
            plan: Vec::new(),
            started_by: Some(format!("retry of #{}", old.id)),
        };
        self.record(&project, new).await
    }

    /// Records and queues a validation with its planned steps, stops the validations of
    /// other commits of the same branch or pull request, wakes a worker and reports the head
    /// as pending to its forge.
    async fn record(
        &self,
        project: &Project,
        mut new: NewValidation,
    ) -> Result<ValidationRecord, SubmitError> {
        // Until checkout reads the repository's pipeline, the settings' plan stands in.
        let settings = self.inner.store.settings(project.id).await?;
        let defaults = slipway_core::pipeline_source::from_settings(&settings).unwrap_or_default();
        new.plan = validation::plan(&defaults, new.pr.is_some());
        // Slipway works on the pull request again (a push, a retry, a re-run): a ban left by
        // a cancelled Codegen run would keep Codegen's checks away from it.
        self.unban_cancelled_run(project, new.pr).await;
        let created = self.inner.store.create_validation(&new).await?;
        for older in created.superseded {
            tracing::info!(validation = %older, by = %created.validation.id, "superseded by a newer commit");
            self.cancel(older).await?;
        }
        self.inner.wake.notify_one();
        github::report_queued(&self.inner, project, &created.validation).await;
        Ok(created.validation)
    }
}
