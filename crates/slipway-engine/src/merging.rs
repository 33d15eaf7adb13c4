//! The merge controller, one for every forge: after a verdict on a pull request's head it
//! reports to the pull request and merges it only when all hold — the project allows
//! auto-merge, the pull request is open and not a draft, the validation passed on exactly its
//! current head, it can merge, and enough approvals are present. The merge names that head,
//! so a head that moved is never merged; the new head is validated instead.

use crate::{Engine, Inner, Target};
use slipway_core::policy::PullRequestPolicy;
use slipway_core::validation::{StepStatus, ValidationStatus};
use slipway_core::{PipelineConfig, Project, RepoLocation, Settings, ValidationId};
use slipway_forge::local::{self, MergeOutcome};
use slipway_forge::{Forge, MergeResult, PullState, Report, Verdict};
use slipway_store::ValidationRecord;
use std::path::PathBuf;

const MERGE_TRIES: usize = 3;

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
    match RepoLocation::parse(&project.repo) {
        Ok(RepoLocation::Local { path }) => {
            let forge = LocalRepo {
                inner: &engine.inner,
                project: &project,
                path,
            };
            decide(engine, &forge, &project, &validation, number).await
        }
        Ok(RepoLocation::GitHub { owner, name }) => match &engine.inner.config.github {
            Some(github) => {
                let forge = github.repo(&format!("{owner}/{name}"));
                decide(engine, &forge, &project, &validation, number).await
            }
            None => Ok(None),
        },
        Err(_) => Ok(None),
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
    };
    forge.mark(&report).await?;
    let settings = engine.inner.store.settings(project.id).await?;
    let pull = forge.pull(number).await?;
    let policy = policy(forge, &settings, &pull.base_ref).await;
    let outcome = if verdict == Verdict::Success {
        merge_if_allowed(engine, forge, project, validation, number, pull, &policy).await?
    } else {
        "Not merged: the validation did not pass.".to_owned()
    };
    report.details.push_str(&format!("\n{outcome}\n"));
    forge.tell(number, &report).await?;
    Ok(Some(policy))
}

/// Merges when every condition holds; returns the sentence saying what happened.
async fn merge_if_allowed<F: Forge>(
    engine: &Engine,
    forge: &F,
    project: &Project,
    validation: &ValidationRecord,
    number: i64,
    pull: PullState,
    policy: &PullRequestPolicy,
) -> anyhow::Result<String> {
    if !policy.auto_merge {
        return Ok("Not merged: auto-merge is off for this project, so a person merges it.".into());
    }
    if !pull.open {
        return Ok("Not merged: the pull request is not open.".into());
    }
    if pull.draft {
        return Ok("Not merged: the pull request is a draft.".into());
    }
    if pull.head_sha != validation.sha {
        // A push that no event announced: validate the new head now.
        let moved_to = short(&pull.head_sha).to_owned();
        validate_head(engine, project, number, pull).await;
        return Ok(format!(
            "Not merged: the head moved to {moved_to}; that commit is validated next."
        ));
    }
    if pull.mergeable == Some(false) {
        return Ok(format!(
            "Not merged: not mergeable ({} into {}).",
            pull.head_ref, pull.base_ref
        ));
    }
    if let Some(approvals) = pull.approvals {
        if approvals < policy.required_approvals as usize {
            return Ok(format!(
                "Not merged: {approvals} of the {} required approvals.",
                policy.required_approvals
            ));
        }
    }
    let title = format!("{} (#{number})", pull.title);
    match forge
        .merge(number, &validation.sha, policy.merge_method, &title)
        .await?
    {
        MergeResult::Merged { sha } => {
            tracing::info!(project = %project.id, pr = number, merge = %sha, "pull request merged");
            engine
                .notify_pull_request(project, &forge.url(number), "merged")
                .await;
            if policy.delete_branch_after_merge {
                if let Err(error) = forge.delete_branch(&pull.head_ref).await {
                    tracing::warn!(%error, "merged, but the branch was not deleted");
                }
            }
            Ok(format!(
                "Merged as {} (exactly the validated head {}).",
                short(&sha),
                short(&validation.sha)
            ))
        }
        MergeResult::HeadMoved => {
            let pull = forge.pull(number).await?;
            let moved_to = short(&pull.head_sha).to_owned();
            validate_head(engine, project, number, pull).await;
            Ok(format!(
                "Not merged: the head moved to {moved_to} during the merge; validating it."
            ))
        }
        MergeResult::NotMergeable { reason } => {
            Ok(format!("Not merged: not mergeable ({reason})."))
        }
    }
}

async fn validate_head(engine: &Engine, project: &Project, number: i64, pull: PullState) {
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

fn table(validation: &ValidationRecord, summary: &str, link: Option<&str>) -> String {
    let mut text = format!(
        "### Slipway: {} for `{}`\n\n{summary}\n\n| step | status | time | detail |\n|---|---|---|---|\n",
        validation.status,
        short(&validation.sha)
    );
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

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// The local forge of one project: pull requests kept in the store, merged with real git.
struct LocalRepo<'a> {
    inner: &'a Inner,
    project: &'a Project,
    path: PathBuf,
}

impl LocalRepo<'_> {
    fn source(&self) -> String {
        self.path.display().to_string()
    }
}

/// Where a local pull request is listed.
pub(crate) fn local_url(project: &Project, number: i64) -> String {
    format!("/api/v1/projects/{}/pulls#{number}", project.id)
}

impl Forge for LocalRepo<'_> {
    fn url(&self, number: i64) -> String {
        local_url(self.project, number)
    }

    async fn pull(&self, number: i64) -> anyhow::Result<PullState> {
        let store = &self.inner.store;
        let record = store.pull_request(self.project.id, number).await?;
        let head = self
            .inner
            .git
            .branch_head(&self.source(), &record.head)
            .await
            .unwrap_or_else(|_| record.head_sha.clone());
        if head != record.head_sha {
            // Keep the record current, so the poller does not queue this head a second time.
            store
                .set_pull_request_head(self.project.id, number, &head)
                .await?;
        }
        Ok(PullState {
            open: record.state == "open",
            draft: false,
            title: record.title,
            head_sha: head,
            head_ref: record.head,
            head_clone_url: self.source(),
            base_ref: record.base,
            mergeable: None,
            approvals: None,
        })
    }

    async fn merge(
        &self,
        number: i64,
        sha: &str,
        method: slipway_core::pipeline::MergeMethod,
        title: &str,
    ) -> anyhow::Result<MergeResult> {
        let store = &self.inner.store;
        let record = store.pull_request(self.project.id, number).await?;
        for attempt in 1..=MERGE_TRIES {
            let head = self
                .inner
                .git
                .branch_head(&self.source(), &record.head)
                .await?;
            if head != sha {
                return Ok(MergeResult::HeadMoved);
            }
            let scratch = self.inner.config.data_dir.join("merges").join(format!(
                "{}-{number}-{attempt}-{}",
                self.project.id,
                &sha[..12.min(sha.len())]
            ));
            let _ = tokio::fs::remove_dir_all(&scratch).await;
            let outcome =
                local::merge(&self.source(), &record.base, sha, method, title, &scratch).await;
            let _ = tokio::fs::remove_dir_all(&scratch).await;
            match outcome? {
                MergeOutcome::Merged { sha: merged } => {
                    store
                        .mark_merged(self.project.id, number, sha, &merged)
                        .await?;
                    return Ok(MergeResult::Merged { sha: merged });
                }
                MergeOutcome::Conflict { paths } => {
                    return Ok(MergeResult::NotMergeable {
                        reason: format!(
                            "{} conflicts with {} in {}",
                            record.head,
                            record.base,
                            paths.join(", ")
                        ),
                    })
                }
                MergeOutcome::BaseMoved => continue,
            }
        }
        Ok(MergeResult::NotMergeable {
            reason: format!(
                "{} kept moving during {MERGE_TRIES} merge attempts",
                record.base
            ),
        })
    }

    async fn delete_branch(&self, branch: &str) -> anyhow::Result<()> {
        Ok(local::delete_branch(&self.path, branch).await?)
    }

    async fn file(&self, branch: &str, path: &str) -> anyhow::Result<Option<String>> {
        let object = format!("refs/heads/{branch}:{path}");
        let git = &self.inner.git;
        if git
            .run(Some(&self.path), &["cat-file", "-e", &object])
            .await
            .is_err()
        {
            return Ok(None);
        }
        Ok(Some(
            git.run(Some(&self.path), &["cat-file", "blob", &object])
                .await?,
        ))
    }

    async fn mark(&self, _report: &Report) -> anyhow::Result<()> {
        Ok(()) // the local forge has no checks; its note says it all
    }

    async fn tell(&self, number: i64, report: &Report) -> anyhow::Result<()> {
        // The local forge shows its report as the pull request's note: the last line says
        // what became of it.
        let outcome = report.details.trim_end().lines().last().unwrap_or_default();
        let note = format!("{}. {outcome}", report.summary);
        self.inner
            .store
            .note_pull_request(self.project.id, number, &note)
            .await?;
        Ok(())
    }
}
