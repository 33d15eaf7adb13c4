//! What Slipway needs of a forge, whichever it is: open a pull request, read one, its changed
//! files and a file of its base, mark its head with the verdict, merge it at an exact pair of
//! commits, delete its branch, and tell it what became of it.

use slipway_core::pipeline::MergeMethod;
use std::future::Future;

/// A pull request as the forge sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullState {
    /// Open and not merged.
    pub open: bool,
    pub merged: bool,
    pub draft: bool,
    pub title: String,
    /// What its author wrote of it (empty when nothing): the author's words, data only.
    pub body: String,
    pub head_sha: String,
    pub head_ref: String,
    /// Where the head commit can be fetched from.
    pub head_clone_url: String,
    pub base_ref: String,
    /// Where the base branch can be fetched from.
    pub base_clone_url: String,
    /// Whether the head branch lives in the base repository; a fork's is never deleted.
    pub head_in_base: bool,
    /// `Some(false)` when the forge already knows it will not merge cleanly; `None` when it
    /// does not say (see [`Forge::computes_mergeability`]).
    pub mergeable: Option<bool>,
    /// Approving reviews; `None` where the forge has no reviews.
    pub approvals: Option<usize>,
}

/// How a merge call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeResult {
    /// Merged; the base branch now points at `sha`.
    Merged { sha: String },
    /// The head is no longer the commit named in the call: nothing was merged.
    HeadMoved,
    /// The base branch is no longer the commit validated with the head: nothing was merged.
    BaseMoved { to: String },
    /// The forge refuses this caller the merge (a permission, a rule), and says why.
    Refused { reason: String },
    /// The forge will not merge it, and says why (conflicting paths, protection rules).
    NotMergeable { reason: String },
}

/// The verdict as a forge shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    Failure,
    Error,
}

/// What a forge is told about a validated head.
#[derive(Debug, Clone)]
pub struct Report {
    pub sha: String,
    pub verdict: Verdict,
    /// One line (a commit status description).
    pub summary: String,
    /// The step table in Markdown (and, when told, what became of the pull request).
    pub details: String,
    pub link: Option<String>,
    /// Findings at a file's line (a check run's annotations on GitHub).
    pub annotations: Vec<Annotation>,
}

/// A finding at a file's line, as a forge shows it beside the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    pub path: String,
    pub line: u32,
    /// `failure`, `warning` or `notice`.
    pub level: &'static str,
    pub title: String,
    pub message: String,
}

/// A pull request a forge opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub number: i64,
    pub url: String,
}

/// A file a pull request changes, with its patch as GitHub shows it (the hunks, from the
/// first `@@`); `None` for a binary file or one too large to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: String,
    /// `added`, `removed`, `modified` or `renamed`.
    pub status: String,
    pub patch: Option<String>,
}

/// A commit of a pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub sha: String,
    /// The message's first line.
    pub title: String,
    pub author: String,
}

/// At most this many files and commits are read for a pull request's page.
pub const MAX_SHOWN: usize = 100;

/// A forge: GitHub over its REST API, or the local forge on disk.
pub trait Forge: Sync {
    /// Where people see the pull request.
    fn url(&self, number: i64) -> String;

    /// Whether the forge computes mergeability lazily, so that `mergeable: None` means
    /// "not yet known, ask again" (GitHub) rather than "not reported" (the local forge).
    fn computes_mergeability(&self) -> bool {
        false
    }

    /// Opens a pull request from `head` into `base`.
    fn open_pull(
        &self,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> impl Future<Output = anyhow::Result<Opened>> + Send;

    /// The paths the pull request changes.
    fn changed_files(
        &self,
        number: i64,
    ) -> impl Future<Output = anyhow::Result<Vec<String>>> + Send;

    /// The files the pull request changes, with their patches (at most [`MAX_SHOWN`]).
    fn diff(&self, number: i64) -> impl Future<Output = anyhow::Result<Vec<FileChange>>> + Send;

    /// The pull request's commits, oldest first (at most [`MAX_SHOWN`]).
    fn commits(&self, number: i64) -> impl Future<Output = anyhow::Result<Vec<CommitInfo>>> + Send;

    /// Comments on the pull request; a later comment with the same `marker` replaces it.
    fn comment(
        &self,
        number: i64,
        marker: &str,
        text: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    fn pull(&self, number: i64) -> impl Future<Output = anyhow::Result<PullState>> + Send;

    /// Merges only if the head is still `sha` and its base branch still `base_sha`: the
    /// pair that was validated.
    fn merge(
        &self,
        number: i64,
        sha: &str,
        base_sha: &str,
        method: MergeMethod,
        title: &str,
    ) -> impl Future<Output = anyhow::Result<MergeResult>> + Send;

    fn delete_branch(&self, branch: &str) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// The text of the file at `path` on `branch`; `None` when the branch has no such file.
    fn file(
        &self,
        branch: &str,
        path: &str,
    ) -> impl Future<Output = anyhow::Result<Option<String>>> + Send;

    /// Marks the head with the verdict (a commit status, a check run). Done before any
    /// merge, so a branch protection that requires Slipway's check sees it.
    fn mark(&self, report: &Report) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Tells the pull request how its validation went and what became of it (a comment
    /// edited in place, or the local forge's note); `report.details` ends with the outcome.
    fn tell(&self, number: i64, report: &Report)
        -> impl Future<Output = anyhow::Result<()>> + Send;
}
