//! A change read from git's objects (for the analysis step): which files differ between two
//! commits, and their blobs, bounded. Only for a clone of Slipway's own that no code has run
//! in (its configuration and objects are git's).

use super::{Git, GitError};
use std::collections::HashMap;
use std::path::Path;

/// A file that differs: its blob at each side (`None`: absent there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedFile {
    pub path: String,
    pub base: Option<String>,
    pub head: Option<String>,
}

/// A blob as read: its bytes, or only its size when it is over the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blob {
    Content(Vec<u8>),
    TooLarge(u64),
    /// Within the limit, but the blobs before it used the whole budget.
    OverBudget(u64),
}

/// Regular files and executables; links, submodules and the like are not code to read.
fn is_file_mode(mode: &str) -> bool {
    matches!(mode, "100644" | "100755")
}

impl Git {
    /// The best common ancestor of two commits, if they have one.
    pub async fn merge_base(&self, dest: &Path, a: &str, b: &str) -> Option<String> {
        self.run(Some(dest), &["merge-base", a, b]).await.ok()
    }

    /// The first parent of `commit`, if it has one.
    pub async fn first_parent(&self, dest: &Path, commit: &str) -> Option<String> {
        let parent = format!("{commit}^");
        self.run(Some(dest), &["rev-parse", "--verify", "--quiet", &parent])
            .await
            .ok()
            .filter(|sha| super::is_full_sha(sha))
    }

    /// The regular files that differ from `base` (none: every file of `head` is added) to
    /// `head`, renames as a deletion and an addition.
    pub async fn changed_files(
        &self,
        dest: &Path,
        base: Option<&str>,
        head: &str,
    ) -> Result<Vec<ChangedFile>, GitError> {
        let mut args = vec!["diff-tree", "-r", "-z", "--no-renames", "--no-abbrev"];
        match base {
            Some(base) => args.extend([base, head]),
            None => args.extend(["--root", head]),
        }
        let out = raw(self, dest, &args, None).await?;
        let text = String::from_utf8_lossy(&out);
        let mut fields = text.split('\0');
        let mut files = Vec::new();
        // `:old_mode new_mode old_blob new_blob status` then the path; with one commit,
        // its id comes first.
        while let Some(meta) = fields.next() {
            let Some(meta) = meta.strip_prefix(':') else {
                continue;
            };
            let Some(path) = fields.next() else { break };
            let parts: Vec<&str> = meta.split_whitespace().collect();
            let [old_mode, new_mode, old_blob, new_blob, _status] = parts[..] else {
                continue;
            };
            let side = |mode: &str, blob: &str| {
                (is_file_mode(mode) && blob.bytes().any(|b| b != b'0')).then(|| blob.to_owned())
            };
            let (base, head) = (side(old_mode, old_blob), side(new_mode, new_blob));
            if base.is_some() || head.is_some() {
                files.push(ChangedFile {
                    path: path.to_owned(),
                    base,
                    head,
                });
            }
        }
        Ok(files)
    }

    /// The blobs `ids` (each once), each read whole when at most `max_bytes` and while they all stay
    /// within `budget` bytes (only its size otherwise).
    pub async fn blobs(
        &self,
        dest: &Path,
        ids: &[String],
        max_bytes: u64,
        budget: u64,
    ) -> Result<HashMap<String, Blob>, GitError> {
        let mut spent = 0u64;
        let mut found = HashMap::new();
        if ids.is_empty() {
            return Ok(found);
        }
        let listing = ids.join("\n") + "\n";
        let sizes = raw(self, dest, &["cat-file", "--batch-check"], Some(&listing)).await?;
        let mut small = Vec::new();
        for line in String::from_utf8_lossy(&sizes).lines() {
            let mut parts = line.split(' ');
            let (Some(id), Some("blob"), Some(size)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let size: u64 = size.parse().unwrap_or(u64::MAX);
            if size > max_bytes {
                found.insert(id.to_owned(), Blob::TooLarge(size));
            } else if spent + size > budget {
                found.insert(id.to_owned(), Blob::OverBudget(size));
            } else {
                spent += size;
                small.push(id.to_owned());
            }
        }
        if small.is_empty() {
            return Ok(found);
        }
        let listing = small.join("\n") + "\n";
        let out = raw(self, dest, &["cat-file", "--batch"], Some(&listing)).await?;
        // `<id> blob <size>\n<bytes>\n`, one after another.
        let mut at = 0;
        while at < out.len() {
            let Some(end) = out[at..].iter().position(|&b| b == b'\n') else {
                break;
            };
            let header = String::from_utf8_lossy(&out[at..at + end]).into_owned();
            at += end + 1;
            let mut parts = header.split(' ');
            let (Some(id), Some(_), Some(size)) = (parts.next(), parts.next(), parts.next()) else {
                break;
            };
            let size: usize = size
                .parse()
                .map_err(|_| GitError::Failed(format!("git cat-file said '{header}'")))?;
            let Some(bytes) = out.get(at..at + size) else {
                break;
            };
            found.insert(id.to_owned(), Blob::Content(bytes.to_vec()));
            at += size + 1;
        }
        Ok(found)
    }
}

/// The most a git command of the analysis may print: past it, git is stopped and the read
/// refused (the blobs themselves are budgeted below this).
const MAX_RAW_OUTPUT: usize = 128 << 20;

/// Runs git with `input` on its standard input; its standard output as bytes.
async fn raw(
    git: &Git,
    dest: &Path,
    args: &[&str],
    input: Option<&str>,
) -> Result<Vec<u8>, GitError> {
    let out = super::capped(Some(dest), args, &git.env, input, MAX_RAW_OUTPUT).await?;
    if out.cut {
        return Err(GitError::Failed(format!(
            "git {} printed more than {} MiB",
            args.join(" "),
            MAX_RAW_OUTPUT >> 20
        )));
    }
    Ok(out.stdout)
}
