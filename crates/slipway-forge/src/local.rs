//! The local forge: pull requests between branches of a repository on disk, merged with real
//! git. A merge is made in a scratch clone and pushed back as a fast-forward of the base
//! branch, so a base that moved in the meantime makes the push fail instead of being
//! overwritten.

use crate::git::{git, GitError};
use slipway_core::pipeline::MergeMethod;
use std::path::Path;

/// How a merge attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The base branch now points at this commit.
    Merged { sha: String },
    /// The head does not merge cleanly into the base; these paths conflict.
    Conflict { paths: Vec<String> },
    /// The base branch changed while merging; nothing was written.
    BaseMoved,
}

const IDENTITY: [&str; 4] = [
    "-c",
    "user.name=Slipway",
    "-c",
    "user.email=slipway@localhost",
];

async fn run(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let mut all: Vec<&str> = IDENTITY.to_vec();
    all.extend_from_slice(args);
    git(Some(dir), &all, &[]).await
}

async fn conflicting_paths(dir: &Path) -> Vec<String> {
    run(dir, &["diff", "--name-only", "--diff-filter=U"])
        .await
        .map(|out| out.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Merges `head_sha` into `base` of the repository at `repo`, working in `scratch`
/// (an empty directory that the caller removes afterwards). With `base_sha`, only while
/// `base` is still that commit (the pair that was validated).
pub async fn merge(
    repo: &str,
    base: &str,
    base_sha: Option<&str>,
    head_sha: &str,
    method: MergeMethod,
    message: &str,
    scratch: &Path,
) -> Result<MergeOutcome, GitError> {
    let dir = scratch.display().to_string();
    git(
        None,
        &["clone", "--quiet", "--no-checkout", repo, &dir],
        &[],
    )
    .await?;
    run(
        scratch,
        &["checkout", "--quiet", "-B", base, &format!("origin/{base}")],
    )
    .await?;
    if let Some(expected) = base_sha {
        // Only the validated pair is merged.
        let now = run(scratch, &["rev-parse", "HEAD"]).await?;
        if !expected.eq_ignore_ascii_case(&now) {
            return Ok(MergeOutcome::BaseMoved);
        }
    }
    if run(
        scratch,
        &["cat-file", "-e", &format!("{head_sha}^{{commit}}")],
    )
    .await
    .is_err()
    {
        run(scratch, &["fetch", "--quiet", "origin", head_sha]).await?;
    }
    let merged = match method {
        MergeMethod::Merge => run(scratch, &["merge", "--no-ff", "-m", message, head_sha]).await,
        MergeMethod::Squash => match run(scratch, &["merge", "--squash", head_sha]).await {
            Ok(_) => {
                run(
                    scratch,
                    &["commit", "--quiet", "--allow-empty", "-m", message],
                )
                .await
            }
            Err(error) => Err(error),
        },
        MergeMethod::Rebase => {
            run(scratch, &["checkout", "--quiet", "--detach", head_sha]).await?;
            run(scratch, &["rebase", "--quiet", base]).await
        }
    };
    if merged.is_err() {
        let paths = conflicting_paths(scratch).await;
        if paths.is_empty() {
            return Err(merged.expect_err("checked above"));
        }
        return Ok(MergeOutcome::Conflict { paths });
    }
    match run(
        scratch,
        &[
            "push",
            "--quiet",
            // A repository with a working tree (not bare) takes the merge into its checked-out
            // branch too when that tree is clean (git's updateInstead), rather than refusing.
            "--receive-pack=git -c receive.denyCurrentBranch=updateInstead -c core.hooksPath=/dev/null receive-pack",
            "origin",
            &format!("HEAD:refs/heads/{base}"),
        ],
    )
    .await
    {
        Ok(_) => {}
        Err(GitError::Failed(message))
            if message.contains("updateInstead") || message.contains("Working directory") =>
        {
            return Err(GitError::Failed(format!(
                "the repository's checkout of {base} has uncommitted changes, so the merge cannot \
                 update it: commit or stash them there (or point the project at a bare clone: \
                 git clone --bare), then merge again"
            )))
        }
        // A base that moved is no longer an ancestor: git rejects the push.
        Err(GitError::Failed(message))
            if message.contains("non-fast-forward") || message.contains("fetch first") =>
        {
            return Ok(MergeOutcome::BaseMoved)
        }
        Err(error) => return Err(error),
    }
    let sha = run(scratch, &["rev-parse", "HEAD"]).await?;
    Ok(MergeOutcome::Merged { sha })
}

/// Deletes a branch of the repository at `repo`.
/// A file's `git diff` as GitHub gives a patch: its hunks, from the first `@@`; `None` for
/// a binary file (no hunks).
pub fn hunks(diff: &str) -> Option<String> {
    let start = if diff.starts_with("@@") {
        0
    } else {
        diff.find("\n@@")? + 1
    };
    Some(diff[start..].trim_end_matches('\n').to_owned())
}

pub async fn delete_branch(repo: &Path, branch: &str) -> Result<(), GitError> {
    git(Some(repo), &["branch", "-D", branch], &[])
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sh(dir: &Path, script: &str) -> String {
        let out = Command::new("sh")
            .args(["-c", script])
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A bare repository with `main` (a.txt) and `feature` (b.txt, or a conflicting a.txt).
    fn repo(conflict: bool) -> (tempfile::TempDir, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        let change = if conflict {
            "echo theirs > a.txt"
        } else {
            "echo new > b.txt"
        };
        sh(
            &work,
            &format!(
                "git init -q -b main && echo base > a.txt && git add . && git commit -qm base && \
             git checkout -qb feature && {change} && git add . && git commit -qm feature && \
             git checkout -q main && echo ours > a.txt && git commit -qam ours && \
             git clone -q --bare . ../origin.git"
            ),
        );
        let head = sh(&work, "git rev-parse feature");
        let origin = dir.path().join("origin.git").display().to_string();
        (dir, origin, head)
    }

    #[tokio::test]
    async fn each_method_merges_into_the_base_branch() {
        for method in [MergeMethod::Merge, MergeMethod::Squash, MergeMethod::Rebase] {
            let (dir, origin, head) = repo(false);
            let scratch = dir.path().join("scratch");
            let outcome = merge(&origin, "main", None, &head, method, "Merge #1", &scratch)
                .await
                .unwrap();
            let MergeOutcome::Merged { sha } = outcome else {
                panic!("{method:?}: {outcome:?}")
            };
            let origin_path = Path::new(&origin);
            assert_eq!(sh(origin_path, "git rev-parse main"), sha);
            assert_eq!(sh(origin_path, "git show main:b.txt"), "new");
            assert_eq!(sh(origin_path, "git show main:a.txt"), "ours");
            let parents = sh(origin_path, "git log -1 --format=%P main")
                .split(' ')
                .count();
            assert_eq!(
                parents,
                if method == MergeMethod::Merge { 2 } else { 1 },
                "{method:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_repository_with_a_working_tree_takes_the_merge_into_its_checkout() {
        // The project points at an ordinary checkout on main, not a bare clone.
        let (dir, _, head) = repo(false);
        let work = dir.path().join("work");
        let target = work.display().to_string();
        let scratch = dir.path().join("scratch");
        let outcome = merge(
            &target,
            "main",
            None,
            &head,
            MergeMethod::Merge,
            "m",
            &scratch,
        )
        .await
        .unwrap();
        let MergeOutcome::Merged { sha } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(sh(&work, "git rev-parse main"), sha);
        assert_eq!(sh(&work, "cat b.txt"), "new", "the checkout follows");
        // With uncommitted changes there, it says what to do instead.
        std::fs::write(work.join("a.txt"), "typing\n").unwrap();
        let head2 = sh(&work, "git rev-parse feature");
        let error = merge(
            &target,
            "main",
            None,
            &head2,
            MergeMethod::Squash,
            "m2",
            &dir.path().join("scratch2"),
        )
        .await;
        match error {
            Err(error) => assert!(error.to_string().contains("uncommitted changes"), "{error}"),
            Ok(outcome) => assert!(
                !matches!(outcome, MergeOutcome::Merged { .. })
                    || sh(&work, "cat a.txt") == "typing",
                "{outcome:?}"
            ),
        }
        assert_eq!(sh(&work, "cat a.txt"), "typing", "nothing typed is lost");
    }

    #[tokio::test]
    async fn a_conflict_is_reported_with_its_paths_and_changes_nothing() {
        let (dir, origin, head) = repo(true);
        let before = sh(Path::new(&origin), "git rev-parse main");
        let outcome = merge(
            &origin,
            "main",
            None,
            &head,
            MergeMethod::Merge,
            "m",
            &dir.path().join("s"),
        )
        .await
        .unwrap();
        assert_eq!(
            outcome,
            MergeOutcome::Conflict {
                paths: vec!["a.txt".into()]
            }
        );
        assert_eq!(sh(Path::new(&origin), "git rev-parse main"), before);
    }
}
