//! One repository of GitHub as a [`Forge`](crate::Forge).

use super::comments::report_page;
use super::pulls::base_was_modified;
use super::{GitHub, Merge, StatusState};
use slipway_core::pipeline::MergeMethod;

/// Marks Slipway's report comment, so that it is found and edited, never duplicated.
const REPORT_MARKER: &str = "<!-- slipway:validation-report -->";

/// One repository of GitHub, as a [`Forge`](crate::Forge).
pub struct GitHubRepo<'a> {
    client: &'a GitHub,
    repo: String,
}

impl GitHub {
    /// The repository `owner/name` as a forge.
    pub fn repo(&self, full_name: &str) -> GitHubRepo<'_> {
        GitHubRepo {
            client: self,
            repo: full_name.to_owned(),
        }
    }
}

impl crate::Forge for GitHubRepo<'_> {
    fn url(&self, number: i64) -> String {
        format!("https://github.com/{}/pull/{number}", self.repo)
    }

    fn computes_mergeability(&self) -> bool {
        true
    }

    async fn open_pull(
        &self,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> anyhow::Result<crate::Opened> {
        let pull = self
            .client
            .create_pull(&self.repo, head, base, title, body)
            .await?;
        Ok(crate::Opened {
            number: pull.number,
            url: self.url(pull.number),
        })
    }

    async fn changed_files(&self, number: i64) -> anyhow::Result<Vec<String>> {
        Ok(self.client.pull_files(&self.repo, number).await?)
    }

    async fn diff(&self, number: i64) -> anyhow::Result<Vec<crate::FileChange>> {
        Ok(self.client.pull_file_changes(&self.repo, number).await?)
    }

    async fn commits(&self, number: i64) -> anyhow::Result<Vec<crate::CommitInfo>> {
        Ok(self.client.pull_commits(&self.repo, number).await?)
    }

    async fn comment(&self, number: i64, marker: &str, text: &str) -> anyhow::Result<()> {
        Ok(self
            .client
            .upsert_comment(&self.repo, number, marker, text)
            .await?)
    }

    async fn pull(&self, number: i64) -> anyhow::Result<crate::PullState> {
        let pull = self
            .client
            .pull_with_mergeability(&self.repo, number)
            .await?;
        let approvals = self
            .client
            .approvals(&self.repo, number, &pull.head_sha)
            .await?;
        Ok(crate::PullState {
            open: pull.state == "open" && !pull.merged,
            merged: pull.merged,
            draft: pull.draft,
            title: pull.title,
            body: pull.body,
            head_sha: pull.head_sha,
            head_ref: pull.head_ref,
            head_clone_url: pull.head_clone_url,
            base_ref: pull.base_ref,
            base_clone_url: pull.base_clone_url,
            head_in_base: pull.head_in_base,
            mergeable: pull.mergeable,
            approvals: Some(approvals),
        })
    }

    async fn merge(
        &self,
        number: i64,
        sha: &str,
        base_sha: &str,
        method: MergeMethod,
        title: &str,
    ) -> anyhow::Result<crate::MergeResult> {
        // GitHub's merge names only the head: the base is read right before, so that a pair
        // other than the validated one is never merged (a move in between is the
        // remaining window; branch protection's "up to date" rule closes it). GitHub's 405
        // "Base branch was modified" (most often right after another merge into the same
        // base) is transient: the base is read again, and if it is still the validated one
        // the merge is tried again after a pause, within `Waits::merge_attempts`.
        let waits = self.client.waits;
        let mut pause = waits.backoff;
        let mut attempt = 1;
        loop {
            let pull = self.client.pull(&self.repo, number).await?;
            let base_now = self.client.branch_head(&self.repo, &pull.base_ref).await?;
            if base_now != base_sha {
                return Ok(crate::MergeResult::BaseMoved { to: base_now });
            }
            let merged = self
                .client
                .merge(&self.repo, number, sha, method, title)
                .await?;
            return Ok(match merged {
                Merge::Merged { sha } => crate::MergeResult::Merged { sha },
                Merge::HeadMoved => crate::MergeResult::HeadMoved,
                Merge::NotMergeable { message }
                    if base_was_modified(&message) && attempt < waits.merge_attempts =>
                {
                    tracing::info!(repo = %self.repo, number, ?pause, "base branch was modified: merging again");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    attempt += 1;
                    continue;
                }
                Merge::NotMergeable { message } => {
                    crate::MergeResult::NotMergeable { reason: message }
                }
                Merge::Refused { status, message } => crate::MergeResult::Refused {
                    reason: format!("GitHub answered {status}: {message}"),
                },
            });
        }
    }

    async fn delete_branch(&self, branch: &str) -> anyhow::Result<()> {
        Ok(self.client.delete_branch(&self.repo, branch).await?)
    }

    async fn file(&self, branch: &str, path: &str) -> anyhow::Result<Option<String>> {
        Ok(self.client.file(&self.repo, branch, path).await?)
    }

    async fn mark(&self, report: &crate::Report) -> anyhow::Result<()> {
        let (state, conclusion) = match report.verdict {
            crate::Verdict::Success => (StatusState::Success, "success"),
            crate::Verdict::Failure => (StatusState::Failure, "failure"),
            crate::Verdict::Error => (StatusState::Error, "neutral"),
        };
        let link = report.link.as_deref();
        self.client
            .set_status(&self.repo, &report.sha, state, &report.summary, link)
            .await?;
        if self.client.is_app() {
            self.client
                .complete_check_run(
                    &self.repo,
                    &report.sha,
                    conclusion,
                    &report.summary,
                    &report.details,
                    link,
                    &report.annotations,
                )
                .await?;
        }
        Ok(())
    }

    async fn tell(&self, number: i64, report: &crate::Report) -> anyhow::Result<()> {
        let page = report.link.as_deref().map(report_page);
        self.client
            .upsert_comment_linked(
                &self.repo,
                number,
                REPORT_MARKER,
                &report.details,
                page.as_deref(),
            )
            .await?;
        Ok(())
    }
}
