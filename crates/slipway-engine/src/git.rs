//! The few git operations the engine needs, through the real `git` command.

use std::path::Path;
use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git could not be run: {0}; install git")]
    Missing(std::io::Error),
    #[error("{0}")]
    Failed(String),
}

async fn git(cwd: Option<&Path>, args: &[&str]) -> Result<String, GitError> {
    let mut command = Command::new("git");
    command
        .args([
            "-c",
            "advice.detachedHead=false",
            "-c",
            "core.hooksPath=/dev/null",
        ])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    let output = command.output().await.map_err(GitError::Missing)?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(GitError::Failed(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// Whether `text` is a full hexadecimal commit id.
pub fn is_full_sha(text: &str) -> bool {
    text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The commit a branch of `source` points at.
pub async fn branch_head(source: &str, branch: &str) -> Result<String, GitError> {
    let out = git(
        None,
        &[
            "ls-remote",
            "--heads",
            source,
            &format!("refs/heads/{branch}"),
        ],
    )
    .await?;
    out.split_whitespace()
        .next()
        .filter(|sha| is_full_sha(sha))
        .map(str::to_owned)
        .ok_or_else(|| GitError::Failed(format!("branch '{branch}' does not exist in {source}")))
}

/// The commit `HEAD` of `source` points at.
pub async fn remote_head(source: &str) -> Result<String, GitError> {
    let out = git(None, &["ls-remote", source, "HEAD"]).await?;
    out.split_whitespace()
        .next()
        .filter(|sha| is_full_sha(sha))
        .map(str::to_owned)
        .ok_or_else(|| GitError::Failed(format!("{source} has no HEAD commit")))
}

/// The full id of `rev` in a local repository.
pub async fn resolve_local(repo: &Path, rev: &str) -> Result<String, GitError> {
    git(
        Some(repo),
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .await
    .map_err(|_| GitError::Failed(format!("'{rev}' is not a commit in {}", repo.display())))
}

/// The branch checked out in a local repository, if any.
pub async fn current_branch(repo: &Path) -> Option<String> {
    git(Some(repo), &["symbolic-ref", "--quiet", "--short", "HEAD"])
        .await
        .ok()
}

/// Whether a local repository's work tree has uncommitted changes.
pub async fn is_dirty(repo: &Path) -> bool {
    git(Some(repo), &["status", "--porcelain"])
        .await
        .map(|out| !out.is_empty())
        .unwrap_or(false)
}

/// Clones `source` into `dest` and checks out exactly `sha` (detached).
/// Returns lines worth logging.
pub async fn checkout(source: &str, sha: &str, dest: &Path) -> Result<Vec<String>, GitError> {
    let dest_text = dest.display().to_string();
    git(
        None,
        &["clone", "--quiet", "--no-checkout", source, &dest_text],
    )
    .await?;
    if git(
        Some(dest),
        &["cat-file", "-e", &format!("{sha}^{{commit}}")],
    )
    .await
    .is_err()
    {
        // Not reachable from a branch: fetch the commit itself.
        git(Some(dest), &["fetch", "--quiet", "origin", sha]).await?;
    }
    git(Some(dest), &["checkout", "--quiet", "--detach", sha]).await?;
    let head = git(Some(dest), &["rev-parse", "HEAD"]).await?;
    if head != sha {
        return Err(GitError::Failed(format!(
            "checked out {head}, expected {sha}"
        )));
    }
    let subject = git(Some(dest), &["log", "-1", "--format=%h %s"]).await?;
    Ok(vec![format!("checked out {sha} from {source}"), subject])
}
