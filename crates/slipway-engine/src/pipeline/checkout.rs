//! The checkout step: the exact commit, merged onto its base for a pull request, and the
//! choice of the pipeline.

use super::{Attempt, PipelineResult, StepEnd};
use slipway_core::pipeline::PipelineConfig;
use slipway_core::pipeline_source::{self, ChosenPipeline};
use slipway_core::validation::StepName;
use slipway_forge::git::MergedCheckout;
use std::path::Path;

/// The largest `.slipway.toml` read: a pipeline is a page, never a tracked gigabyte.
const MAX_PIPELINE_BYTES: u64 = 1024 * 1024;

impl Attempt<'_> {
    /// Clones the exact commit (for a pull request, merged onto its base's head) and
    /// chooses the pipeline. `None` when the pipeline cannot go on.
    pub(super) async fn checkout(&mut self) -> PipelineResult<Option<ChosenPipeline>> {
        self.begin(StepName::Checkout).await?;
        let (source, head) = (self.record.source.clone(), self.record.sha.clone());
        let cloned = self.git.clone_commit(&source, &head, &self.workspace).await;
        if let Err(error) = cloned {
            self.end(StepName::Checkout, StepEnd::Error(error.to_string()))
                .await?;
            return Ok(None);
        }
        self.logs
            .line(StepName::Checkout, &format!("fetched {head} from {source}"));
        if let Ok((title, author)) = self.git.commit_summary(&self.workspace, &head).await {
            // The code's words: masked like everything else it says.
            let (title, author) = (self.logs.mask(&title), self.logs.mask(&author));
            self.inner
                .store
                .set_commit(self.id(), &title, &author)
                .await?;
        }
        // A pull request's files are those of its merge onto the base: made before any file
        // is written, so the workspace is checked out once.
        let target = match self.record.base_ref.clone() {
            Some(base_ref) => match self.merge_onto_base(&base_ref).await? {
                Ok(merged) => merged,
                Err(end) => {
                    self.end(StepName::Checkout, end).await?;
                    return Ok(None);
                }
            },
            None => head,
        };
        match self.git.switch_to(&self.workspace, &target).await {
            Ok(lines) => lines
                .iter()
                .for_each(|line| self.logs.line(StepName::Checkout, line)),
            Err(error) => {
                self.end(StepName::Checkout, StepEnd::Error(error.to_string()))
                    .await?;
                return Ok(None);
            }
        }
        let repository = match self.repository_pipeline().await {
            Ok(repository) => repository,
            Err(detail) => {
                let end = StepEnd::Failed {
                    exit_code: None,
                    detail,
                    retryable: false,
                };
                self.end(StepName::Checkout, end).await?;
                return Ok(None);
            }
        };
        let settings = self.inner.store.settings(self.record.project_id).await?;
        let chosen = pipeline_source::choose(
            repository,
            &settings,
            self.record.config_file.clone(),
            self.record.setup_trial,
        );
        match chosen {
            Ok(chosen) => {
                // A stored pipeline (the --config file, the settings) is checked again, as a
                // repository's is when read: the steps rely on its rules.
                if let Err(invalid) = chosen.config.validate() {
                    let detail = format!(
                        "the stored pipeline ({}) breaks its rules: {invalid}; Slipway's \
                         fault, not the code's: correct it and retry",
                        chosen.source.describe()
                    );
                    self.end(StepName::Checkout, StepEnd::Error(detail)).await?;
                    return Ok(None);
                }
                self.logs.line(StepName::Checkout, &chosen.why);
                self.end(StepName::Checkout, StepEnd::Passed(None)).await?;
                Ok(Some(chosen))
            }
            Err(nothing) => {
                self.end(StepName::Checkout, StepEnd::Error(nothing.to_owned()))
                    .await?;
                Ok(None)
            }
        }
    }

    /// Merges the head onto the current head of `base_ref`, as merging the pull request
    /// would; the merge commit to check out. `Err(end)` when the checkout must end here: a
    /// conflict is the code's failure (it names the files), a base that cannot be read is
    /// an error.
    async fn merge_onto_base(&mut self, base_ref: &str) -> PipelineResult<Result<String, StepEnd>> {
        let base_source =
            (self.record.base_source.clone()).unwrap_or_else(|| self.project.location.source());
        let git = crate::github::git_for(self.inner, &self.project, &base_source).await;
        let base_sha = match git.branch_head(&base_source, base_ref).await {
            Ok(sha) => sha,
            Err(error) => {
                return Ok(Err(StepEnd::Error(format!(
                    "the base branch's head could not be read: {error}"
                ))))
            }
        };
        self.inner.store.set_base_sha(self.id(), &base_sha).await?;
        self.record.base_sha = Some(base_sha.clone());
        self.env.push(("SLIPWAY_BASE_SHA".into(), base_sha.clone()));
        let head = self.record.sha.clone();
        let merged = git
            .merge_onto(&self.workspace, &base_source, &base_sha, &head)
            .await;
        Ok(match merged {
            Ok(MergedCheckout::Merged { sha }) => {
                self.logs.line(
                    StepName::Checkout,
                    &format!("merged onto {base_ref} at {base_sha}: validating {sha}"),
                );
                // Read from git before any of the change's code runs: whether the pipeline
                // that judges it is still the base's (the merge controller asks).
                let changes = self.changes_checks(&git, &base_sha, &sha).await;
                self.inner
                    .store
                    .set_changes_checks(self.id(), changes)
                    .await?;
                self.record.changes_checks = Some(changes);
                Ok(sha)
            }
            Ok(MergedCheckout::Conflict { paths }) => Err(StepEnd::Failed {
                exit_code: None,
                detail: format!(
                    "the pull request conflicts with {base_ref} at {} in: {}; merge {base_ref} \
                     into the branch (or rebase it) and resolve them",
                    &base_sha[..12],
                    paths.join(", ")
                ),
                retryable: false,
            }),
            Err(error) => Err(StepEnd::Error(format!(
                "merging onto {base_ref} at {base_sha} failed: {error}"
            ))),
        })
    }

    /// Whether `merged` holds another `.slipway.toml` than `base_sha` (changed, added,
    /// deleted or renamed away); when git cannot tell, it counts as changed.
    async fn changes_checks(
        &self,
        git: &slipway_forge::git::Git,
        base: &str,
        merged: &str,
    ) -> bool {
        use slipway_core::policy::PIPELINE_FILE;
        let ws = Some(self.workspace.as_path());
        let entry = |sha| ["ls-tree", "--full-tree", sha, "--", PIPELINE_FILE];
        let base = git.run(ws, &entry(base)).await;
        let merged = git.run(ws, &entry(merged)).await;
        match (base, merged) {
            (Ok(base), Ok(merged)) => base != merged,
            (Err(error), _) | (_, Err(error)) => {
                tracing::warn!(%error, "whether the pipeline file changed could not be read");
                true
            }
        }
    }

    /// The repository's `.slipway.toml`, if it has one (at most [`MAX_PIPELINE_BYTES`]); `Err` says why it is refused (the
    /// code's failure: the pull request may have broken it).
    async fn repository_pipeline(&self) -> Result<Option<PipelineConfig>, String> {
        let file = self.workspace.join(".slipway.toml");
        match tokio::fs::symlink_metadata(&file).await {
            Err(_) => return Ok(None),
            Ok(meta) if !meta.is_file() => {
                return Err("invalid pipeline file: .slipway.toml must be a regular file, not a link or a directory".into())
            }
            Ok(_) => {}
        }
        let workspace = self.workspace.clone();
        let bytes = tokio::task::spawn_blocking(move || {
            slipway_sandbox::read_file_below(
                &workspace,
                Path::new(".slipway.toml"),
                MAX_PIPELINE_BYTES,
            )
        })
        .await
        .map_err(|e| format!("invalid pipeline file: .slipway.toml cannot be read: {e}"))?
        .map_err(|e| format!("invalid pipeline file: .slipway.toml cannot be read: {e}"))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| "invalid pipeline file: .slipway.toml is not UTF-8".to_owned())?;
        PipelineConfig::from_toml(".slipway.toml", &text)
            .map(Some)
            .map_err(|error| format!("invalid pipeline file: {error}"))
    }
}
