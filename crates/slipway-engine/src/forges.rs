//! The forge of a project, whichever it is: GitHub through its API, or the local forge (pull
//! requests kept in the store, merged with real git). Everything that acts on pull requests
//! (the merge controller, agent runs) goes through [`ProjectForge`], never the forge's kind.

use crate::{Engine, Inner};
use slipway_core::pipeline::MergeMethod;
use slipway_core::{Project, RepoLocation};
use slipway_forge::github::GitHubRepo;
use slipway_forge::local::{self, MergeOutcome};
use slipway_forge::{CommitInfo, FileChange, Forge, MergeResult, Opened, PullState, Report};
use std::path::PathBuf;

/// A project's forge.
pub(crate) enum ProjectForge<'a> {
    Local(LocalRepo<'a>),
    GitHub(GitHubRepo<'a>),
}

/// The most of a listing (files, commits) a pull request's git makes Slipway read.
const MAX_LISTING: usize = 16 << 20;

impl Engine {
    /// The project's forge; `None` for a GitHub project without GitHub credentials, and for
    /// a repository that is only a URL (`slipway validate`'s).
    pub(crate) fn forge<'a>(&'a self, project: &'a Project) -> Option<ProjectForge<'a>> {
        match &project.location {
            RepoLocation::Local { path } => Some(ProjectForge::Local(LocalRepo {
                engine: self,
                project,
                path: path.clone(),
            })),
            RepoLocation::GitHub { .. } => {
                let github = self.inner.config.github.as_ref()?;
                Some(ProjectForge::GitHub(
                    github.repo(&project.location.github()?),
                ))
            }
            RepoLocation::Url { .. } => None,
        }
    }
}

/// Calls the same method on whichever forge it is.
macro_rules! each {
    ($forge:expr, $f:ident => $call:expr) => {
        match $forge {
            ProjectForge::Local($f) => $call,
            ProjectForge::GitHub($f) => $call,
        }
    };
}

impl Forge for ProjectForge<'_> {
    fn url(&self, number: i64) -> String {
        each!(self, f => f.url(number))
    }
    fn computes_mergeability(&self) -> bool {
        each!(self, f => f.computes_mergeability())
    }
    async fn open_pull(
        &self,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> anyhow::Result<Opened> {
        each!(self, f => f.open_pull(head, base, title, body).await)
    }
    async fn changed_files(&self, number: i64) -> anyhow::Result<Vec<String>> {
        each!(self, f => f.changed_files(number).await)
    }
    async fn diff(&self, number: i64) -> anyhow::Result<Vec<FileChange>> {
        each!(self, f => f.diff(number).await)
    }
    async fn commits(&self, number: i64) -> anyhow::Result<Vec<CommitInfo>> {
        each!(self, f => f.commits(number).await)
    }
    async fn comment(&self, number: i64, marker: &str, text: &str) -> anyhow::Result<()> {
        each!(self, f => f.comment(number, marker, text).await)
    }
    async fn pull(&self, number: i64) -> anyhow::Result<PullState> {
        each!(self, f => f.pull(number).await)
    }
    async fn merge(
        &self,
        number: i64,
        sha: &str,
        base_sha: &str,
        method: MergeMethod,
        title: &str,
    ) -> anyhow::Result<MergeResult> {
        each!(self, f => f.merge(number, sha, base_sha, method, title).await)
    }
    async fn delete_branch(&self, branch: &str) -> anyhow::Result<()> {
        each!(self, f => f.delete_branch(branch).await)
    }
    async fn file(&self, branch: &str, path: &str) -> anyhow::Result<Option<String>> {
        each!(self, f => f.file(branch, path).await)
    }
    async fn mark(&self, report: &Report) -> anyhow::Result<()> {
        each!(self, f => f.mark(report).await)
    }
    async fn tell(&self, number: i64, report: &Report) -> anyhow::Result<()> {
        each!(self, f => f.tell(number, report).await)
    }
}

/// The local forge of one project: pull requests kept in the store, merged with real git.
pub(crate) struct LocalRepo<'a> {
    engine: &'a Engine,
    project: &'a Project,
    path: PathBuf,
}

impl LocalRepo<'_> {
    /// `BASE...HEAD` of a pull request: its base as its newest validation saw it (so that a
    /// merged pull request still shows what it brought), else the base branch now.
    async fn range(&self, number: i64) -> anyhow::Result<String> {
        let store = &self.inner().store;
        let record = store.pull_request(self.project.id, number).await?;
        let validated = store
            .pull_request_validations(self.project.id, number, 1)
            .await?
            .into_iter()
            .next()
            .and_then(|v| v.base_sha);
        let base = validated.unwrap_or_else(|| format!("refs/heads/{}", record.base));
        Ok(format!("{base}...{}", record.head_sha))
    }

    fn source(&self) -> String {
        self.path.display().to_string()
    }

    fn inner(&self) -> &Inner {
        &self.engine.inner
    }
}

/// A local pull request's page on the dashboard.
pub(crate) fn local_url(project: &Project, number: i64) -> String {
    format!("/projects/{}/pulls/{number}", project.id)
}

impl Forge for LocalRepo<'_> {
    fn url(&self, number: i64) -> String {
        local_url(self.project, number)
    }

    async fn open_pull(
        &self,
        head: &str,
        base: &str,
        title: &str,
        _body: &str,
    ) -> anyhow::Result<Opened> {
        let pr = self
            .engine
            .open_local_pull(self.project, title, head, base)
            .await?;
        Ok(Opened {
            number: pr.number,
            url: self.url(pr.number),
        })
    }

    async fn changed_files(&self, number: i64) -> anyhow::Result<Vec<String>> {
        let record = self
            .inner()
            .store
            .pull_request(self.project.id, number)
            .await?;
        let range = format!("refs/heads/{}...{}", record.base, record.head_sha);
        let (out, _) = self
            .inner()
            .git
            .run_capped(
                Some(&self.path),
                &["diff", "--name-only", &range],
                MAX_LISTING,
            )
            .await?;
        Ok(out.lines().map(str::to_owned).collect())
    }

    async fn diff(&self, number: i64) -> anyhow::Result<Vec<FileChange>> {
        /// The most of one file's patch read for the page.
        const MAX_PATCH: usize = 1 << 20;
        let range = self.range(number).await?;
        let git = &self.inner().git;
        let (listed, _) = git
            .run_capped(
                Some(&self.path),
                &["diff", "--name-status", "--no-renames", &range],
                MAX_LISTING,
            )
            .await?;
        let mut files = Vec::new();
        for line in listed.lines().take(slipway_forge::MAX_SHOWN) {
            let Some((status, path)) = line.split_once('\t') else {
                continue;
            };
            // Literal: a file named `*` is that file, not every file; a patch is bounded.
            let (patch, _) = git
                .run_capped(
                    Some(&self.path),
                    &["--literal-pathspecs", "diff", &range, "--", path],
                    MAX_PATCH,
                )
                .await?;
            files.push(FileChange {
                path: path.to_owned(),
                status: match status {
                    "A" => "added",
                    "D" => "removed",
                    _ => "modified",
                }
                .to_owned(),
                patch: local::hunks(&patch),
            });
        }
        Ok(files)
    }

    async fn commits(&self, number: i64) -> anyhow::Result<Vec<CommitInfo>> {
        let range = self.range(number).await?.replacen("...", "..", 1);
        let max = format!("--max-count={}", slipway_forge::MAX_SHOWN);
        let (out, _) = self
            .inner()
            .git
            .run_capped(
                Some(&self.path),
                &["log", "--reverse", &max, "--format=%H%x1f%an%x1f%s", &range],
                MAX_LISTING,
            )
            .await?;
        Ok(out
            .lines()
            .filter_map(|line| {
                let mut parts = line.splitn(3, '\x1f');
                Some(CommitInfo {
                    sha: parts.next()?.to_owned(),
                    author: parts.next()?.to_owned(),
                    title: parts.next().unwrap_or("").to_owned(),
                })
            })
            .collect())
    }

    async fn comment(&self, number: i64, _marker: &str, text: &str) -> anyhow::Result<()> {
        // The local forge keeps one note per pull request: the latest replaces it.
        self.inner()
            .store
            .note_pull_request(self.project.id, number, text)
            .await?;
        Ok(())
    }

    async fn pull(&self, number: i64) -> anyhow::Result<PullState> {
        let store = &self.inner().store;
        let record = store.pull_request(self.project.id, number).await?;
        let head = self
            .inner()
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
            open: record.state == slipway_store::PullState::Open,
            merged: record.state == slipway_store::PullState::Merged,
            draft: false,
            title: record.title,
            // A local pull request keeps no description.
            body: String::new(),
            head_sha: head,
            head_ref: record.head,
            head_clone_url: self.source(),
            head_in_base: true,
            base_ref: record.base,
            base_clone_url: self.source(),
            mergeable: None,
            approvals: None,
        })
    }

    async fn merge(
        &self,
        number: i64,
        sha: &str,
        base_sha: &str,
        method: MergeMethod,
        title: &str,
    ) -> anyhow::Result<MergeResult> {
        let store = &self.inner().store;
        let record = store.pull_request(self.project.id, number).await?;
        let git = &self.inner().git;
        if git.branch_head(&self.source(), &record.head).await? != sha {
            return Ok(MergeResult::HeadMoved);
        }
        let scratch = self.inner().config.data_dir.join("merges").join(format!(
            "{}-{number}-{}",
            self.project.id,
            &sha[..12.min(sha.len())]
        ));
        crate::remove_tree(&scratch, "a merge's scratch clone").await;
        let (source, base) = (self.source(), &record.base);
        let outcome =
            local::merge(&source, base, Some(base_sha), sha, method, title, &scratch).await;
        crate::remove_tree(&scratch, "a merge's scratch clone").await;
        Ok(match outcome? {
            MergeOutcome::Merged { sha: merged } => {
                store
                    .mark_merged(self.project.id, number, sha, &merged)
                    .await?;
                MergeResult::Merged { sha: merged }
            }
            MergeOutcome::Conflict { paths } => MergeResult::NotMergeable {
                reason: format!(
                    "{} conflicts with {} in {}",
                    record.head,
                    record.base,
                    paths.join(", ")
                ),
            },
            // Checked, or the push found it moved: the new pair is validated instead.
            MergeOutcome::BaseMoved => MergeResult::BaseMoved {
                to: git.branch_head(&source, base).await.unwrap_or_default(),
            },
        })
    }

    async fn delete_branch(&self, branch: &str) -> anyhow::Result<()> {
        Ok(local::delete_branch(&self.path, branch).await?)
    }

    async fn file(&self, branch: &str, path: &str) -> anyhow::Result<Option<String>> {
        let object = format!("refs/heads/{branch}:{path}");
        let git = &self.inner().git;
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
        self.inner()
            .store
            .note_pull_request(self.project.id, number, &note)
            .await?;
        Ok(())
    }
}
