//! The few git operations the engine needs, through the real `git` command.

mod objects;

pub use objects::{Blob, ChangedFile};

use base64::Engine as _;
use std::path::Path;
use tokio::process::Command;

/// How git reaches repositories: with a GitHub token for `https://github.com/` when one is
/// configured. The token travels in git's `GIT_CONFIG_*` environment (as an
/// `http.extraheader`), never on a command line that other users could read.
#[derive(Clone, Default)]
pub struct Git {
    env: Vec<(String, String)>,
}

impl std::fmt::Debug for Git {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.env.is_empty() {
            "Git"
        } else {
            "Git(with GitHub token)"
        })
    }
}

impl Git {
    /// Git with the GitHub token, when there is one, for `https://github.com/`.
    pub fn new(github_token: Option<&str>) -> Self {
        match github_token {
            Some(token) => Self::with_credentials("https://github.com/", token),
            None => Self::default(),
        }
    }

    /// Git that authenticates to URLs starting with `url_prefix` with `token`
    /// (GitHub's `x-access-token` basic scheme).
    pub fn with_credentials(url_prefix: &str, token: &str) -> Self {
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
        Self {
            env: vec![
                ("GIT_CONFIG_COUNT".into(), "1".into()),
                (
                    "GIT_CONFIG_KEY_0".into(),
                    format!("http.{url_prefix}.extraheader"),
                ),
                (
                    "GIT_CONFIG_VALUE_0".into(),
                    format!("AUTHORIZATION: basic {basic}"),
                ),
            ],
        }
    }

    /// Git that presents `token` to the host of `url` (`scheme://host/`); `None` when `url`
    /// is not HTTP(S) and needs no token.
    pub fn with_token_for(url: &str, token: &str) -> Option<Self> {
        let (scheme, rest) = url.split_once("://")?;
        if !matches!(scheme, "http" | "https") {
            return None;
        }
        let host = rest.split('/').next().filter(|host| !host.is_empty())?;
        Some(Self::with_credentials(
            &format!("{scheme}://{host}/"),
            token,
        ))
    }

    /// Runs `git ARGS` in `cwd` (hooks off, no prompts), returning its trimmed stdout.
    pub async fn run(&self, cwd: Option<&Path>, args: &[&str]) -> Result<String, GitError> {
        git(cwd, args, &self.env).await
    }

    /// Runs `git ARGS` in `cwd`, keeping at most `max` bytes of what it prints (as text, cut
    /// at a character boundary); `true` with it when there was more.
    pub async fn run_capped(
        &self,
        cwd: Option<&Path>,
        args: &[&str],
        max: usize,
    ) -> Result<(String, bool), GitError> {
        let out = capped(cwd, args, &self.env, None, max).await?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.cut {
            // A character the cut split shows as U+FFFD: dropped.
            while text.ends_with('\u{FFFD}') {
                text.pop();
            }
        }
        Ok((text, out.cut))
    }

    /// The commit a branch of `source` points at.
    pub async fn branch_head(&self, source: &str, branch: &str) -> Result<String, GitError> {
        let out = self
            .run(
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
            .ok_or_else(|| {
                GitError::Failed(format!("branch '{branch}' does not exist in {source}"))
            })
    }

    /// The branch names of `source`, sorted.
    pub async fn branches(&self, source: &str) -> Result<Vec<String>, GitError> {
        let out = self.run(None, &["ls-remote", "--heads", source]).await?;
        let mut names: Vec<String> = out
            .lines()
            .filter_map(|line| line.split_whitespace().nth(1)?.strip_prefix("refs/heads/"))
            .map(str::to_owned)
            .collect();
        names.sort();
        Ok(names)
    }

    /// The commit `HEAD` of `source` points at.
    pub async fn remote_head(&self, source: &str) -> Result<String, GitError> {
        let out = self.run(None, &["ls-remote", source, "HEAD"]).await?;
        out.split_whitespace()
            .next()
            .filter(|sha| is_full_sha(sha))
            .map(str::to_owned)
            .ok_or_else(|| GitError::Failed(format!("{source} has no HEAD commit")))
    }

    /// Clones `source` into `dest` without checking out files, making sure it holds `sha`.
    pub async fn clone_commit(
        &self,
        source: &str,
        sha: &str,
        dest: &Path,
    ) -> Result<Vec<String>, GitError> {
        let dest_text = dest.display().to_string();
        self.run(
            None,
            // --no-local: never hard-link the source's objects into a workspace that
            // untrusted code will own.
            &[
                "clone",
                "--quiet",
                "--no-local",
                "--no-checkout",
                source,
                &dest_text,
            ],
        )
        .await?;
        // Not reachable from a branch: fetch the commit itself.
        self.ensure_commit(dest, "origin", sha).await?;
        Ok(vec![format!("fetched {sha} from {source}")])
    }

    /// Fetches `sha` from `source` into the repository at `dest` unless it has it.
    async fn ensure_commit(&self, dest: &Path, source: &str, sha: &str) -> Result<(), GitError> {
        let object = format!("{sha}^{{commit}}");
        if self
            .run(Some(dest), &["cat-file", "-e", &object])
            .await
            .is_err()
        {
            self.run(Some(dest), &["fetch", "--quiet", source, sha])
                .await?;
        }
        Ok(())
    }

    /// The first line of commit `sha`'s message and its author's name, in a clone made by
    /// [`Git::clone_commit`] (before any of its code ran).
    pub async fn commit_summary(
        &self,
        dest: &Path,
        sha: &str,
    ) -> Result<(String, String), GitError> {
        // Cut by git itself: a commit's message is the code's, of any length.
        let text = self
            .run(
                Some(dest),
                &[
                    "log",
                    "-1",
                    "--format=%<(100,trunc)%an%x00%<(300,trunc)%s",
                    sha,
                ],
            )
            .await?;
        let text = text.trim_end();
        let (author, title) = text.split_once('\0').unwrap_or(("", text));
        Ok((title.trim_end().to_owned(), author.trim_end().to_owned()))
    }

    /// Checks out exactly `sha` (detached) in a clone made by [`Git::clone_commit`].
    pub async fn switch_to(&self, dest: &Path, sha: &str) -> Result<Vec<String>, GitError> {
        self.run(Some(dest), &["checkout", "--quiet", "--detach", sha])
            .await?;
        let head = self.run(Some(dest), &["rev-parse", "HEAD"]).await?;
        if head != sha {
            return Err(GitError::Failed(format!(
                "checked out {head}, expected {sha}"
            )));
        }
        let subject = self
            .run(Some(dest), &["log", "-1", "--format=%h %<(300,trunc)%s"])
            .await?;
        Ok(vec![format!("checked out {sha}"), subject])
    }

    /// Clones `source` into `dest` and checks out exactly `sha` (detached).
    /// Returns lines worth logging.
    pub async fn checkout(
        &self,
        source: &str,
        sha: &str,
        dest: &Path,
    ) -> Result<Vec<String>, GitError> {
        let mut lines = self.clone_commit(source, sha, dest).await?;
        lines.extend(self.switch_to(dest, sha).await?);
        Ok(lines)
    }
}

/// How merging a head onto its base went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergedCheckout {
    /// This merge commit holds the result.
    Merged { sha: String },
    /// These paths conflict.
    Conflict { paths: Vec<String> },
}

impl Git {
    /// In a clone holding `head` (see [`Git::clone_commit`]), fetches `base` from
    /// `base_source` when it is missing and makes the commit that merging `head` onto it
    /// would: Slipway's, local, never pushed. No file is checked out (`git merge-tree`).
    pub async fn merge_onto(
        &self,
        dest: &Path,
        base_source: &str,
        base: &str,
        head: &str,
    ) -> Result<MergedCheckout, GitError> {
        self.ensure_commit(dest, base_source, base).await?;
        let merged = output(
            Some(dest),
            &[
                "merge-tree",
                "--write-tree",
                "--name-only",
                "--no-messages",
                base,
                head,
            ],
            &self.env,
        )
        .await?;
        let mut lines = merged.stdout.lines();
        let tree = lines.next().unwrap_or_default().to_owned();
        match merged.code {
            Some(0) => {}
            // 1: conflicts; the lines after the tree name the conflicting paths.
            Some(1) => {
                let mut paths: Vec<String> = lines.map(str::to_owned).collect();
                paths.dedup();
                return Ok(MergedCheckout::Conflict { paths });
            }
            _ => {
                return Err(GitError::Failed(format!(
                    "git merge-tree failed: {}",
                    merged.stderr.trim()
                )))
            }
        }
        let message = format!("Merge {head} onto {base} (Slipway's validation; never pushed)");
        let sha = self
            .run(
                Some(dest),
                &[
                    "-c",
                    "user.name=Slipway",
                    "-c",
                    "user.email=slipway@localhost",
                    "commit-tree",
                    &tree,
                    "-p",
                    base,
                    "-p",
                    head,
                    "-m",
                    &message,
                ],
            )
            .await?;
        Ok(MergedCheckout::Merged { sha })
    }
}

impl Git {
    /// Each tracked file of a checkout with its blob id (`git ls-files -s`). Only for a
    /// checkout no code has run in yet: git reads the checkout's own `.git`.
    pub async fn tracked_versions(
        &self,
        dest: &Path,
    ) -> Result<std::collections::HashMap<std::path::PathBuf, String>, GitError> {
        let out = self.run(Some(dest), &["ls-files", "--stage", "-z"]).await?;
        Ok(out
            .split('\0')
            .filter_map(|record| {
                let (meta, path) = record.split_once('\t')?;
                let blob = meta.split_whitespace().nth(1)?;
                Some((path.into(), blob.to_owned()))
            })
            .collect())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git could not be run: {0}; install git")]
    Missing(std::io::Error),
    #[error("{0}")]
    Failed(String),
}

pub(crate) async fn git(
    cwd: Option<&Path>,
    args: &[&str],
    env: &[(String, String)],
) -> Result<String, GitError> {
    let out = output(cwd, args, env).await?;
    if out.code == Some(0) {
        Ok(out.stdout.trim().to_owned())
    } else {
        Err(GitError::Failed(format!(
            "git {} failed: {}",
            args.join(" "),
            out.stderr.trim()
        )))
    }
}

/// What a git command printed, and how it exited.
struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn output(
    cwd: Option<&Path>,
    args: &[&str],
    env: &[(String, String)],
) -> Result<Output, GitError> {
    let mut command = command(cwd, args, env);
    command.stdin(std::process::Stdio::null());
    let output = command.output().await.map_err(GitError::Missing)?;
    Ok(Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// What a git command printed, at most the bytes asked for.
pub struct Capped {
    pub stdout: Vec<u8>,
    /// More was printed: git was stopped there and `stdout` holds the first bytes.
    pub cut: bool,
}

/// The bytes of git's error output kept for its message.
const MAX_STDERR: usize = 64 << 10;

/// Runs `git ARGS` (with `input` on its standard input), keeping at most `max` bytes of what
/// it prints: a repository a pull request shaped can make git print gigabytes, and this is
/// Slipway's own memory. Past `max`, git is killed and the output marked cut.
pub(crate) async fn capped(
    cwd: Option<&Path>,
    args: &[&str],
    env: &[(String, String)],
    input: Option<&str>,
    max: usize,
) -> Result<Capped, GitError> {
    use std::process::Stdio;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut command = command(cwd, args, env);
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    command
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(GitError::Missing)?;
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
        let input = input.to_owned();
        // Written beside the read: a large answer must not block the question.
        tokio::spawn(async move {
            let _ = stdin.write_all(input.as_bytes()).await;
        });
    }
    let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(GitError::Failed("git's output could not be read".into()));
    };
    let read_out = async {
        let mut bytes = Vec::new();
        stdout
            .take(max as u64 + 1)
            .read_to_end(&mut bytes)
            .await
            .map(|_| bytes)
    };
    // Drained to the end (keeping its head) so git never blocks writing it.
    let read_err = async {
        let mut kept = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            match stderr.read(&mut chunk).await {
                Ok(0) | Err(_) => break kept,
                Ok(n) => {
                    let room = MAX_STDERR.saturating_sub(kept.len());
                    kept.extend_from_slice(&chunk[..n.min(room)]);
                }
            }
        }
    };
    let out = async {
        let out = read_out.await;
        if out.as_ref().is_ok_and(|bytes| bytes.len() > max) {
            // Stopped here; the error output ends with it.
            let _ = child.start_kill();
        }
        out
    };
    let (stdout, stderr) = tokio::join!(out, read_err);
    let mut stdout = stdout.map_err(GitError::Missing)?;
    let status = child.wait().await.map_err(GitError::Missing)?;
    if stdout.len() > max {
        stdout.truncate(max);
        return Ok(Capped { stdout, cut: true });
    }
    if status.success() {
        Ok(Capped { stdout, cut: false })
    } else {
        Err(GitError::Failed(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&stderr).trim()
        )))
    }
}

/// `git ARGS` in `cwd`: hooks off, no prompts, killed when dropped.
fn command(cwd: Option<&Path>, args: &[&str], env: &[(String, String)]) -> Command {
    let mut command = Command::new("git");
    command.envs(env.iter().map(|(k, v)| (k, v)));
    command
        .args([
            "-c",
            "advice.detachedHead=false",
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.fsmonitor=false",
        ])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .kill_on_drop(true);
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    command
}

/// Whether `text` is a full hexadecimal commit id.
pub fn is_full_sha(text: &str) -> bool {
    text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit())
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
        &[],
    )
    .await
    .map_err(|_| GitError::Failed(format!("'{rev}' is not a commit in {}", repo.display())))
}

/// The branch a local repository's HEAD is on, if it is on one.
pub async fn current_branch(repo: &Path) -> Option<String> {
    git(
        Some(repo),
        &["symbolic-ref", "--quiet", "--short", "HEAD"],
        &[],
    )
    .await
    .ok()
    .filter(|name| !name.is_empty())
}

/// Whether a local repository's work tree has uncommitted changes.
pub async fn is_dirty(repo: &Path) -> bool {
    git(Some(repo), &["status", "--porcelain"], &[])
        .await
        .map(|out| !out.is_empty())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[tokio::test]
    async fn the_token_reaches_the_server_as_a_header_and_nowhere_else() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = vec![0u8; 8192];
            let n = stream.read(&mut request).unwrap();
            let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
            String::from_utf8_lossy(&request[..n]).into_owned()
        });
        let git = Git::with_credentials(&format!("http://127.0.0.1:{port}/"), "tok-123");
        assert_eq!(format!("{git:?}"), "Git(with GitHub token)");
        let error = git
            .branch_head(&format!("http://127.0.0.1:{port}/acme/app.git"), "main")
            .await
            .unwrap_err();
        assert!(!error.to_string().contains("tok-123"));
        let request = server.join().unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode("x-access-token:tok-123");
        assert!(
            request
                .to_ascii_lowercase()
                .contains(&format!("authorization: basic {expected}").to_ascii_lowercase()),
            "{request}"
        );
    }

    #[tokio::test]
    async fn what_git_prints_past_the_cap_is_never_held_and_git_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path();
        let git = Git::new(None);
        git.run(Some(repo), &["init", "-q"]).await.unwrap();
        // 3 MiB of text, multi-byte characters across the cut.
        std::fs::write(repo.join("big.txt"), "é".repeat(3 << 19)).unwrap();
        let id = git
            .run(Some(repo), &["hash-object", "-w", "big.txt"])
            .await
            .unwrap();
        let (text, cut) = git
            .run_capped(Some(repo), &["cat-file", "blob", &id], (1 << 20) + 1)
            .await
            .unwrap();
        assert!(cut);
        assert_eq!(text.len(), 1 << 20, "cut at a character boundary");
        assert!(text.chars().all(|c| c == 'é'));
        let (whole, cut) = git
            .run_capped(Some(repo), &["cat-file", "blob", &id], 4 << 20)
            .await
            .unwrap();
        assert!(!cut);
        assert_eq!(whole.len(), 3 << 20);
        let error = git
            .run_capped(Some(repo), &["cat-file", "blob", "no-such-object"], 1 << 20)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("no-such-object"), "{error}");
    }

    #[test]
    fn without_a_token_git_sends_no_credentials() {
        assert!(Git::new(None).env.is_empty());
        assert_eq!(format!("{:?}", Git::new(None)), "Git");
    }
}
