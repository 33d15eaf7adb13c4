//! Pull requests and merges: reading and opening pull requests, their files, diff and
//! commits, a file of a branch, reviews and permissions, merging an exact head, branches.

use super::client::PERMISSION_TTL;
use super::{GitHub, GitHubError};
use serde::Deserialize;
use serde_json::{json, Value};
use slipway_core::pipeline::MergeMethod;
use std::collections::HashMap;
use std::time::Instant;

/// A pull request as Slipway needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pull {
    pub number: i64,
    pub title: String,
    /// The description (`body`; GitHub sends `null` for none): empty then.
    pub body: String,
    pub state: String,
    pub draft: bool,
    pub merged: bool,
    /// `None` while GitHub is still computing it.
    pub mergeable: Option<bool>,
    pub head_sha: String,
    pub head_ref: String,
    pub head_clone_url: String,
    pub base_ref: String,
    pub base_clone_url: String,
    /// Whether the head branch is in the base repository (not a fork).
    pub head_in_base: bool,
}

/// How a merge call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    Merged {
        sha: String,
    },
    /// 409: the head is no longer the commit named in the call.
    HeadMoved,
    /// 405: GitHub says it cannot be merged (conflicts, branch protection).
    NotMergeable {
        message: String,
    },
    /// 403, 404, 422: GitHub refuses this caller the merge (a permission, a rule).
    Refused {
        status: u16,
        message: String,
    },
}

/// `author_association` values of people who may write to the repository (their permission
/// says whether they do).
const WRITERS: [&str; 3] = ["OWNER", "MEMBER", "COLLABORATOR"];

#[derive(Deserialize)]
struct PullBody {
    number: i64,
    #[serde(default)]
    title: String,
    #[serde(default)]
    body: Option<String>,
    state: String,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    merged: bool,
    mergeable: Option<bool>,
    head: RefBody,
    base: RefBody,
}

#[derive(Deserialize)]
struct RefBody {
    #[serde(rename = "ref")]
    reference: String,
    #[serde(default)]
    sha: String,
    repo: Option<RepoBody>,
}

#[derive(Deserialize)]
struct RepoBody {
    clone_url: String,
    #[serde(default)]
    full_name: String,
}

impl From<PullBody> for Pull {
    fn from(p: PullBody) -> Self {
        Pull {
            number: p.number,
            title: p.title,
            body: p.body.unwrap_or_default(),
            state: p.state,
            draft: p.draft,
            merged: p.merged,
            mergeable: p.mergeable,
            head_sha: p.head.sha,
            head_ref: p.head.reference,
            head_clone_url: p
                .head
                .repo
                .as_ref()
                .map(|r| r.clone_url.clone())
                .unwrap_or_default(),
            base_ref: p.base.reference,
            head_in_base: match (&p.head.repo, &p.base.repo) {
                (Some(head), Some(base)) => head.full_name.eq_ignore_ascii_case(&base.full_name),
                // A deleted fork: certainly not the base repository.
                _ => false,
            },
            base_clone_url: p.base.repo.map(|r| r.clone_url).unwrap_or_default(),
        }
    }
}

impl GitHub {
    pub async fn pull(&self, repo: &str, number: i64) -> Result<Pull, GitHubError> {
        let value = self
            .expect(
                reqwest::Method::GET,
                &format!("/repos/{repo}/pulls/{number}"),
                None,
                &[200],
            )
            .await?;
        Ok(serde_json::from_value::<PullBody>(value)
            .map_err(|e| GitHubError::Status {
                status: 200,
                what: format!("GET /repos/{repo}/pulls/{number}"),
                message: e.to_string(),
            })?
            .into())
    }

    /// A pull request whose mergeability is known when it is open: GitHub computes it in
    /// the background and answers `null` meanwhile ("resubmit the request"), so it is read
    /// again after a doubling pause, at most `Waits::mergeable_reads` times in all. Past
    /// that it is returned with `mergeable: None`, and GitHub's answer to the merge call
    /// (which names the exact head) decides.
    pub async fn pull_with_mergeability(
        &self,
        repo: &str,
        number: i64,
    ) -> Result<Pull, GitHubError> {
        let mut pause = self.waits.backoff;
        let mut reads = 1;
        loop {
            let pull = self.pull(repo, number).await?;
            if pull.mergeable.is_some()
                || pull.state != "open"
                || pull.merged
                || reads >= self.waits.mergeable_reads
            {
                return Ok(pull);
            }
            tracing::debug!(
                repo,
                number,
                ?pause,
                "mergeable is still null: reading again"
            );
            tokio::time::sleep(pause).await;
            pause *= 2;
            reads += 1;
        }
    }

    /// The URL git clones `repo` from.
    pub async fn clone_url(&self, repo: &str) -> Result<String, GitHubError> {
        let value = self
            .expect(
                reqwest::Method::GET,
                &format!("/repos/{repo}"),
                None,
                &[200],
            )
            .await?;
        value["clone_url"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| GitHubError::Status {
                status: 200,
                what: format!("GET /repos/{repo}"),
                message: "the answer has no clone_url".into(),
            })
    }

    /// Opens a pull request from `head` into `base`.
    pub async fn create_pull(
        &self,
        repo: &str,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> Result<Pull, GitHubError> {
        let path = format!("/repos/{repo}/pulls");
        let request = json!({"head": head, "base": base, "title": title, "body": body});
        let value = self
            .expect(reqwest::Method::POST, &path, Some(&request), &[201])
            .await?;
        serde_json::from_value::<PullBody>(value)
            .map(Pull::from)
            .map_err(|e| GitHubError::Status {
                status: 201,
                what: format!("POST {path}"),
                message: e.to_string(),
            })
    }

    /// The text of `path` at `git_ref` (contents API); `None` when it is not there.
    pub async fn file(
        &self,
        repo: &str,
        git_ref: &str,
        path: &str,
    ) -> Result<Option<String>, GitHubError> {
        let what = format!("/repos/{repo}/contents/{path}?ref={}", query_text(git_ref));
        let (status, value) = self.call(reqwest::Method::GET, &what, None).await?;
        let problem = |message: String| GitHubError::Status {
            status,
            what: format!("GET {what}"),
            message,
        };
        match status {
            404 => Ok(None),
            200 if value["encoding"] == "base64" => {
                use base64::Engine;
                let packed: String = value["content"]
                    .as_str()
                    .unwrap_or("")
                    .split_whitespace()
                    .collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(packed)
                    .map_err(|e| problem(format!("undecodable content: {e}")))?;
                String::from_utf8(bytes)
                    .map(Some)
                    .map_err(|_| problem("the file is not UTF-8 text".into()))
            }
            200 => Err(problem("not a file with base64 content".into())),
            _ => Err(problem(value["message"].as_str().unwrap_or("").to_owned())),
        }
    }

    /// The paths a pull request changes (GitHub lists at most 3,000).
    pub async fn pull_files(&self, repo: &str, number: i64) -> Result<Vec<String>, GitHubError> {
        let path = format!("/repos/{repo}/pulls/{number}/files?per_page=100");
        Ok(self
            .list(&path)
            .await?
            .iter()
            .filter_map(|file| file["filename"].as_str().map(str::to_owned))
            .collect())
    }

    /// `GET /pulls/{n}/files`: each file's name, status and patch.
    pub async fn pull_file_changes(
        &self,
        repo: &str,
        number: i64,
    ) -> Result<Vec<crate::FileChange>, GitHubError> {
        let path = format!("/repos/{repo}/pulls/{number}/files?per_page=100");
        Ok(self
            .list(&path)
            .await?
            .iter()
            .take(crate::MAX_SHOWN)
            .filter_map(|file| {
                Some(crate::FileChange {
                    path: file["filename"].as_str()?.to_owned(),
                    status: file["status"].as_str().unwrap_or("modified").to_owned(),
                    patch: file["patch"].as_str().map(str::to_owned),
                })
            })
            .collect())
    }

    /// `GET /pulls/{n}/commits`: oldest first.
    pub async fn pull_commits(
        &self,
        repo: &str,
        number: i64,
    ) -> Result<Vec<crate::CommitInfo>, GitHubError> {
        let path = format!("/repos/{repo}/pulls/{number}/commits?per_page=100");
        Ok(self
            .list(&path)
            .await?
            .iter()
            .take(crate::MAX_SHOWN)
            .filter_map(|commit| {
                Some(crate::CommitInfo {
                    sha: commit["sha"].as_str()?.to_owned(),
                    title: commit["commit"]["message"]
                        .as_str()
                        .unwrap_or("")
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_owned(),
                    author: commit["commit"]["author"]["name"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                })
            })
            .collect())
    }

    pub async fn open_pulls(&self, repo: &str) -> Result<Vec<Pull>, GitHubError> {
        let path = format!("/repos/{repo}/pulls?state=open&per_page=100");
        let value = Value::Array(self.list(&path).await?);
        let pulls: Vec<PullBody> =
            serde_json::from_value(value).map_err(|e| GitHubError::Status {
                status: 200,
                what: format!("GET {path}"),
                message: e.to_string(),
            })?;
        Ok(pulls.into_iter().map(Pull::from).collect())
    }

    /// Whether `user` may write to `repo` (admin, maintain or write permission), as GitHub
    /// answers `GET /repos/{repo}/collaborators/{user}/permission`; an answer is reused for a
    /// minute. `author_association` is no substitute: a read-only collaborator or a member
    /// without a write team is still COLLABORATOR or MEMBER.
    pub async fn can_write(&self, repo: &str, user: &str) -> Result<bool, GitHubError> {
        let key = (repo.to_ascii_lowercase(), user.to_ascii_lowercase());
        if let Some((answer, at)) = self.permissions.lock().unwrap().get(&key) {
            if at.elapsed() < PERMISSION_TTL {
                return Ok(*answer);
            }
        }
        let path = format!("/repos/{repo}/collaborators/{user}/permission");
        let (status, value) = self.call(reqwest::Method::GET, &path, None).await?;
        let answer = match status {
            200 => matches!(
                value["permission"].as_str(),
                Some("admin" | "maintain" | "write")
            ),
            404 => false,
            _ => {
                return Err(GitHubError::Status {
                    status,
                    what: format!("GET {path}"),
                    message: value["message"].as_str().unwrap_or("").to_owned(),
                })
            }
        };
        let mut cache = self.permissions.lock().unwrap();
        cache.retain(|_, (_, at)| at.elapsed() < PERMISSION_TTL);
        cache.insert(key, (answer, Instant::now()));
        Ok(answer)
    }

    /// Reviewers whose latest review approves (a later change request or a dismissal takes an
    /// approval back; comments do not count) and who can write to the repository: an
    /// association of OWNER, MEMBER or COLLABORATOR, confirmed by their permission
    /// ([`GitHub::can_write`]: admin, maintain or write), since a read-only collaborator
    /// or member has the same association. An approval counts for the commit it was given
    /// on (`commit_id`) only, as bors's approvals do: a push after it needs a new one.
    pub async fn approvals(
        &self,
        repo: &str,
        number: i64,
        head: &str,
    ) -> Result<usize, GitHubError> {
        let path = format!("/repos/{repo}/pulls/{number}/reviews?per_page=100");
        let mut latest: HashMap<String, (String, String)> = HashMap::new();
        for review in self.list(&path).await? {
            let (Some(user), Some(state)) =
                (review["user"]["login"].as_str(), review["state"].as_str())
            else {
                continue;
            };
            if state == "APPROVED" && review["commit_id"].as_str() != Some(head) {
                continue; // an approval of an earlier head
            }
            if matches!(state, "APPROVED" | "CHANGES_REQUESTED" | "DISMISSED") {
                let association = review["author_association"].as_str().unwrap_or("NONE");
                latest.insert(user.to_owned(), (state.to_owned(), association.to_owned()));
            }
        }
        let mut approvers: Vec<&String> = latest
            .iter()
            .filter(|(_, (state, association))| {
                state == "APPROVED" && WRITERS.contains(&association.as_str())
            })
            .map(|(user, _)| user)
            .collect();
        approvers.sort();
        let mut count = 0;
        for user in approvers {
            if self.can_write(repo, user).await? {
                count += 1;
            }
        }
        Ok(count)
    }

    /// The commit a branch points at now.
    pub async fn branch_head(&self, repo: &str, branch: &str) -> Result<String, GitHubError> {
        let path = format!("/repos/{repo}/branches/{}", ref_path(branch));
        let value = self
            .expect(reqwest::Method::GET, &path, None, &[200])
            .await?;
        value["commit"]["sha"]
            .as_str()
            .filter(|sha| crate::git::is_full_sha(sha))
            .map(str::to_owned)
            .ok_or_else(|| GitHubError::Status {
                status: 200,
                what: format!("GET {path}"),
                message: "the answer has no commit.sha".into(),
            })
    }

    /// Merges only if the head is still `sha` (GitHub answers 409 otherwise).
    pub async fn merge(
        &self,
        repo: &str,
        number: i64,
        sha: &str,
        method: MergeMethod,
        title: &str,
    ) -> Result<Merge, GitHubError> {
        let method = match method {
            MergeMethod::Merge => "merge",
            MergeMethod::Squash => "squash",
            MergeMethod::Rebase => "rebase",
        };
        let body = json!({"sha": sha, "merge_method": method, "commit_title": title});
        let path = format!("/repos/{repo}/pulls/{number}/merge");
        let (status, value) = self.call(reqwest::Method::PUT, &path, Some(&body)).await?;
        let message = value["message"].as_str().unwrap_or("").to_owned();
        match status {
            200 => Ok(Merge::Merged {
                sha: value["sha"].as_str().unwrap_or("").to_owned(),
            }),
            409 => Ok(Merge::HeadMoved),
            405 => Ok(Merge::NotMergeable { message }),
            403 | 404 | 422 => Ok(Merge::Refused { status, message }),
            _ => Err(GitHubError::Status {
                status,
                what: format!("PUT {path}"),
                message,
            }),
        }
    }

    /// Deletes a branch; GitHub's refusal (422: protected, the default branch, gone) is an
    /// error with its message.
    pub async fn delete_branch(&self, repo: &str, branch: &str) -> Result<(), GitHubError> {
        self.expect(
            reqwest::Method::DELETE,
            &format!("/repos/{repo}/git/refs/heads/{}", ref_path(branch)),
            None,
            &[204],
        )
        .await
        .map(|_| ())
    }
}

/// Whether a 405 to a merge is GitHub's transient "Base branch was modified. Review and try
/// the merge again."
pub(super) fn base_was_modified(message: &str) -> bool {
    message
        .to_ascii_lowercase()
        .contains("base branch was modified")
}

/// A branch name as a URL path: each segment percent-encoded, the slashes kept.
fn ref_path(branch: &str) -> String {
    branch
        .split('/')
        .map(|segment| {
            segment
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `text` percent-encoded for a query string (branch names may hold `&`, `#` or `+`).
fn query_text(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                encoded.push(byte as char)
            }
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::ref_path;

    #[test]
    fn branch_names_are_percent_encoded_but_keep_their_slashes() {
        assert_eq!(ref_path("feature/a#b c%"), "feature/a%23b%20c%25");
        assert_eq!(ref_path("release-1.2_x"), "release-1.2_x");
    }
}
