//! GitHub webhook deliveries: the `X-Hub-Signature-256` check and the events Slipway acts on.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// GitHub's own cap on a delivery's payload.
pub const MAX_PAYLOAD_BYTES: usize = 25 * 1024 * 1024;

/// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`.
/// The comparison is constant-time.
pub fn signature_is_valid(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Some(hex) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Some(expected) = decode_hex(hex) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The `X-Hub-Signature-256` value GitHub would send for `body` (for tests and tools).
/// The JSON of a delivery: the body itself, or for GitHub's default content type
/// (`application/x-www-form-urlencoded`) its `payload` field. The signature is always checked
/// over the raw body, not this.
pub fn json_payload<'a>(
    content_type: Option<&str>,
    raw: &'a [u8],
) -> Result<std::borrow::Cow<'a, [u8]>, String> {
    let form = content_type.is_some_and(|t| {
        t.split(';').next().is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    if !form {
        return Ok(std::borrow::Cow::Borrowed(raw));
    }
    form_urlencoded::parse(raw)
        .find(|(name, _)| name == "payload")
        .map(|(_, json)| std::borrow::Cow::Owned(json.into_owned().into_bytes()))
        .ok_or_else(|| "a form-encoded delivery without a 'payload' field".to_owned())
}

pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// A delivery's event, as far as Slipway cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Ping,
    PullRequest(PullRequest),
    /// A comment on an issue or a pull request.
    Comment(Comment),
    /// `check_run` or `check_suite` `rerequested`: someone pressed "Re-run" on Slipway's
    /// check. (Their other actions are `Other`.)
    Rerequested(Rerequested),
    /// `pull_request_review`: a review submitted, edited or dismissed.
    Review(Review),
    /// Recorded and ignored.
    Other {
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub action: String,
    /// `owner/name` of the base repository.
    pub repository: String,
    pub number: i64,
    pub draft: bool,
    pub head_sha: String,
    pub head_ref: String,
    /// Where the head commit can be fetched from (a fork's URL for a PR from a fork).
    pub head_clone_url: String,
    /// The branch it would merge into, and where that branch is fetched from.
    pub base_ref: String,
    pub base_clone_url: String,
    /// An `edited` delivery whose `changes` name `base`: the pull request now targets
    /// `base_ref`, and what was validated on the old base says nothing of it.
    pub base_changed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub action: String,
    pub repository: String,
    pub number: i64,
    /// Whether the comment is on a pull request rather than an issue.
    pub on_pull_request: bool,
    pub body: String,
    pub author: String,
    /// GitHub's `author_association`: OWNER, MEMBER, COLLABORATOR, CONTRIBUTOR, NONE, …
    pub author_association: String,
}

impl Comment {
    /// The commenter's association implies write access to the repository.
    pub fn author_may_write(&self) -> bool {
        matches!(
            self.author_association.as_str(),
            "OWNER" | "MEMBER" | "COLLABORATOR"
        )
    }

    /// Whether the comment asks Slipway to validate again.
    pub fn asks_for_retry(&self) -> bool {
        self.body
            .lines()
            .any(|line| line.trim() == "/slipway retry")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rerequested {
    /// `check_run` or `check_suite`.
    pub event: String,
    /// `owner/name` of the repository.
    pub repository: String,
    /// The commit the check is on.
    pub head_sha: String,
    /// The pull requests of this repository GitHub names for the check (empty for a fork's).
    pub pull_requests: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// `submitted`, `edited` or `dismissed`.
    pub action: String,
    pub repository: String,
    pub number: i64,
    /// The review's state, lower-case: `approved`, `changes_requested`, `commented`,
    /// `dismissed`.
    pub state: String,
    /// Null for a deleted account.
    pub reviewer: String,
    /// The pull request's head when the review was delivered.
    pub head_sha: String,
}

impl Review {
    /// A newly submitted approval (which may complete the approvals a merge waits for).
    pub fn approves(&self) -> bool {
        self.action == "submitted" && self.state == "approved"
    }
}

/// A payload that does not have the shape GitHub documents for its event.
#[derive(Debug, thiserror::Error)]
#[error("the {event} payload is not as GitHub documents it: {source}")]
pub struct PayloadError {
    event: String,
    source: serde_json::Error,
}

#[derive(Deserialize)]
struct RepositoryPayload {
    full_name: String,
}

#[derive(Deserialize)]
struct PullRequestPayload {
    action: String,
    number: i64,
    repository: RepositoryPayload,
    pull_request: PullRequestBody,
    /// `edited` only: the fields that changed (`title`, `body`, `base`), each with `from`.
    #[serde(default)]
    changes: Option<ChangesBody>,
}

#[derive(Deserialize)]
struct ChangesBody {
    /// `{"ref": {"from": …}, "sha": {"from": …}}` when the base branch was changed.
    #[serde(default)]
    base: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct PullRequestBody {
    #[serde(default)]
    draft: bool,
    head: HeadBody,
    base: BaseBody,
}

#[derive(Deserialize)]
struct BaseBody {
    #[serde(rename = "ref")]
    reference: String,
    repo: Option<CloneBody>,
}

#[derive(Deserialize)]
struct HeadBody {
    sha: String,
    #[serde(rename = "ref")]
    reference: String,
    repo: Option<CloneBody>,
}

#[derive(Deserialize)]
struct CloneBody {
    clone_url: String,
}

#[derive(Deserialize)]
struct CommentPayload {
    action: String,
    repository: RepositoryPayload,
    issue: IssueBody,
    comment: CommentBody,
}

#[derive(Deserialize)]
struct IssueBody {
    number: i64,
    pull_request: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct CommentBody {
    #[serde(default)]
    body: Option<String>,
    /// Null for a deleted ("ghost") account.
    user: Option<UserBody>,
    author_association: String,
}

#[derive(Deserialize)]
struct UserBody {
    login: String,
}

#[derive(Deserialize)]
struct ReviewPayload {
    action: String,
    repository: RepositoryPayload,
    review: ReviewBody,
    pull_request: ReviewPullBody,
}

#[derive(Deserialize)]
struct ReviewBody {
    state: String,
    user: Option<UserBody>,
}

#[derive(Deserialize)]
struct ReviewPullBody {
    number: i64,
    head: ReviewHeadBody,
}

#[derive(Deserialize)]
struct ReviewHeadBody {
    sha: String,
}

#[derive(Deserialize)]
struct CheckRunPayload {
    action: String,
    repository: RepositoryPayload,
    check_run: CheckBody,
}

#[derive(Deserialize)]
struct CheckSuitePayload {
    action: String,
    repository: RepositoryPayload,
    check_suite: CheckBody,
}

#[derive(Deserialize)]
struct CheckBody {
    head_sha: String,
    #[serde(default)]
    pull_requests: Vec<CheckPullBody>,
}

#[derive(Deserialize)]
struct CheckPullBody {
    number: i64,
    base: Option<CheckBaseBody>,
}

#[derive(Deserialize)]
struct CheckBaseBody {
    repo: Option<CheckRepoBody>,
}

#[derive(Deserialize)]
struct CheckRepoBody {
    /// `https://api.github.com/repos/{owner}/{name}`
    url: String,
}

/// `action` of a check run or suite, as `Rerequested` when it is one, else `Other`.
fn rerequested(event: &str, action: String, repository: String, check: CheckBody) -> Event {
    if action != "rerequested" {
        return Event::Other {
            name: event.to_owned(),
        };
    }
    let ours = format!("/repos/{repository}").to_ascii_lowercase();
    let pull_requests = check
        .pull_requests
        .into_iter()
        // A pull request into another repository (a fork's base) is not this one's number.
        .filter(|p| match p.base.as_ref().and_then(|b| b.repo.as_ref()) {
            Some(repo) => repo.url.to_ascii_lowercase().ends_with(&ours),
            None => true,
        })
        .map(|p| p.number)
        .collect();
    Event::Rerequested(Rerequested {
        event: event.to_owned(),
        repository,
        head_sha: check.head_sha,
        pull_requests,
    })
}

/// The repository a payload is about (`owner/name`), for routing, if it names one.
pub fn repository_of(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Any {
        repository: Option<RepositoryPayload>,
    }
    serde_json::from_slice::<Any>(body)
        .ok()?
        .repository
        .map(|r| r.full_name)
}

/// Reads a delivery of `event` (the `X-GitHub-Event` header).
pub fn parse(event: &str, body: &[u8]) -> Result<Event, PayloadError> {
    let error = |source| PayloadError {
        event: event.to_owned(),
        source,
    };
    Ok(match event {
        "ping" => Event::Ping,
        "pull_request" => {
            let p: PullRequestPayload = serde_json::from_slice(body).map_err(error)?;
            let head_clone_url = p
                .pull_request
                .head
                .repo
                .map(|r| r.clone_url)
                .unwrap_or_default();
            Event::PullRequest(PullRequest {
                action: p.action,
                repository: p.repository.full_name,
                number: p.number,
                draft: p.pull_request.draft,
                head_sha: p.pull_request.head.sha,
                head_ref: p.pull_request.head.reference,
                head_clone_url,
                base_ref: p.pull_request.base.reference,
                base_clone_url: p
                    .pull_request
                    .base
                    .repo
                    .map(|r| r.clone_url)
                    .unwrap_or_default(),
                base_changed: p.changes.is_some_and(|c| c.base.is_some()),
            })
        }
        "issue_comment" => {
            let p: CommentPayload = serde_json::from_slice(body).map_err(error)?;
            Event::Comment(Comment {
                action: p.action,
                repository: p.repository.full_name,
                number: p.issue.number,
                on_pull_request: p.issue.pull_request.is_some(),
                body: p.comment.body.unwrap_or_default(),
                author: p
                    .comment
                    .user
                    .map(|u| u.login)
                    .unwrap_or_else(|| "ghost".into()),
                author_association: p.comment.author_association,
            })
        }
        "pull_request_review" => {
            let p: ReviewPayload = serde_json::from_slice(body).map_err(error)?;
            Event::Review(Review {
                action: p.action,
                repository: p.repository.full_name,
                number: p.pull_request.number,
                state: p.review.state.to_ascii_lowercase(),
                reviewer: p
                    .review
                    .user
                    .map(|u| u.login)
                    .unwrap_or_else(|| "ghost".into()),
                head_sha: p.pull_request.head.sha,
            })
        }
        "check_run" => {
            let p: CheckRunPayload = serde_json::from_slice(body).map_err(error)?;
            rerequested(event, p.action, p.repository.full_name, p.check_run)
        }
        "check_suite" => {
            let p: CheckSuitePayload = serde_json::from_slice(body).map_err(error)?;
            rerequested(event, p.action, p.repository.full_name, p.check_suite)
        }
        other => Event::Other {
            name: other.to_owned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(path: &str) -> Vec<u8> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests-data/fixtures/github-webhooks");
        std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn githubs_published_test_vector_verifies() {
        let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(signature_is_valid(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            signature
        ));
        assert_eq!(
            sign(b"It's a Secret to Everybody", b"Hello, World!"),
            signature
        );
    }

    #[test]
    fn wrong_secrets_bodies_and_malformed_signatures_are_refused() {
        let good = sign(b"secret", b"body");
        assert!(signature_is_valid(b"secret", b"body", &good));
        assert!(!signature_is_valid(b"other", b"body", &good));
        assert!(!signature_is_valid(b"secret", b"body ", &good));
        for bad in [
            "",
            "sha256=",
            "sha1=abc",
            &good[..good.len() - 1],
            &good.replace("sha256=", "sha256=zz")[..71],
        ] {
            assert!(!signature_is_valid(b"secret", b"body", bad), "{bad}");
        }
    }

    #[test]
    fn every_pull_request_fixture_parses() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests-data/fixtures/github-webhooks/pull_request");
        let mut count = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let body = std::fs::read(&path).unwrap();
            match parse("pull_request", &body) {
                Ok(Event::PullRequest(pr)) => {
                    assert_eq!(pr.head_sha.len(), 40, "{path:?}");
                    assert!(pr.repository.contains('/'));
                    count += 1;
                }
                other => panic!("{path:?}: {other:?}"),
            }
        }
        assert!(count >= 20, "{count}");
    }

    #[test]
    fn an_opened_pull_request_reads_as_github_wrote_it() {
        let Event::PullRequest(pr) =
            parse("pull_request", &fixture("pull_request/opened.payload.json")).unwrap()
        else {
            panic!("not a pull request");
        };
        assert_eq!(pr.action, "opened");
        assert_eq!(pr.number, 2);
        assert_eq!(pr.repository, "Codertocat/Hello-World");
        assert_eq!(pr.head_sha, "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
        assert_eq!(pr.head_ref, "changes");
        assert_eq!(
            pr.head_clone_url,
            "https://github.com/Codertocat/Hello-World.git"
        );
        assert!(!pr.draft);
        assert_eq!(pr.base_ref, "master");
        assert_eq!(
            pr.base_clone_url,
            "https://github.com/Codertocat/Hello-World.git"
        );
    }

    #[test]
    fn an_edit_that_changes_the_base_says_so_and_a_title_edit_does_not() {
        let mut payload: serde_json::Value =
            serde_json::from_slice(&fixture("pull_request/opened.payload.json")).unwrap();
        payload["action"] = "edited".into();
        payload["pull_request"]["base"]["ref"] = "release".into();
        payload["changes"] = serde_json::json!({"base": {
            "ref": {"from": "master"},
            "sha": {"from": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"}
        }});
        let Event::PullRequest(pr) =
            parse("pull_request", &serde_json::to_vec(&payload).unwrap()).unwrap()
        else {
            panic!("not a pull request");
        };
        assert!(pr.base_changed);
        assert_eq!(pr.base_ref, "release");
        payload["changes"] = serde_json::json!({"title": {"from": "Old title"}});
        let Event::PullRequest(pr) =
            parse("pull_request", &serde_json::to_vec(&payload).unwrap()).unwrap()
        else {
            panic!("not a pull request");
        };
        assert!(!pr.base_changed);
    }

    #[test]
    fn re_run_requests_read_as_github_wrote_them_and_other_check_actions_do_not_count() {
        let Event::Rerequested(suite) = parse(
            "check_suite",
            &fixture("check_suite/rerequested.payload.json"),
        )
        .unwrap() else {
            panic!("not a re-run");
        };
        assert_eq!(suite.event, "check_suite");
        assert_eq!(suite.repository, "Codertocat/Hello-World");
        assert_eq!(suite.head_sha, "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
        assert_eq!(suite.pull_requests, vec![2]);
        let Event::Rerequested(run) =
            parse("check_run", &fixture("check_run/rerequested.payload.json")).unwrap()
        else {
            panic!("not a re-run");
        };
        assert_eq!(run.head_sha, "d6fde92930d4715a2b49857d24b940956b26d2d3");
        assert!(run.pull_requests.is_empty());
        // A pull request into another repository is not named.
        let mut payload: serde_json::Value =
            serde_json::from_slice(&fixture("check_suite/rerequested.payload.json")).unwrap();
        payload["check_suite"]["pull_requests"][0]["base"]["repo"]["url"] =
            "https://api.github.com/repos/someone/Hello-World".into();
        let Event::Rerequested(suite) =
            parse("check_suite", &serde_json::to_vec(&payload).unwrap()).unwrap()
        else {
            panic!("not a re-run");
        };
        assert!(suite.pull_requests.is_empty());
        assert_eq!(
            parse(
                "check_suite",
                &fixture("check_suite/completed.payload.json")
            )
            .unwrap(),
            Event::Other {
                name: "check_suite".into()
            }
        );
    }

    #[test]
    fn a_form_encoded_delivery_carries_its_json_in_payload() {
        let json = br#"{"zen":"Keep it logically awesome. & = +"}"#;
        let form: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", std::str::from_utf8(json).unwrap())
            .finish();
        let body = json_payload(
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            form.as_bytes(),
        )
        .unwrap();
        assert_eq!(&*body, json);
        assert_eq!(
            &*json_payload(Some("application/json"), json).unwrap(),
            json
        );
        assert_eq!(&*json_payload(None, json).unwrap(), json);
        let err = json_payload(Some("application/x-www-form-urlencoded"), b"other=1");
        assert!(err.unwrap_err().contains("payload"));
    }

    #[test]
    fn a_comment_by_a_deleted_account_parses() {
        let mut payload: serde_json::Value =
            serde_json::from_slice(&fixture("issue_comment/created.payload.json")).unwrap();
        payload["comment"]["user"] = serde_json::Value::Null;
        let Event::Comment(comment) =
            parse("issue_comment", &serde_json::to_vec(&payload).unwrap()).unwrap()
        else {
            panic!("not a comment");
        };
        assert_eq!(comment.author, "ghost");
    }

    #[test]
    fn comments_know_whether_they_are_on_a_pull_request_and_who_wrote_them() {
        let Event::Comment(comment) = parse(
            "issue_comment",
            &fixture("issue_comment/created.payload.json"),
        )
        .unwrap() else {
            panic!("not a comment");
        };
        assert!(!comment.on_pull_request);
        assert_eq!(comment.author_association, "OWNER");
        assert!(comment.author_may_write());
        assert!(!comment.asks_for_retry());
        let retry = Comment {
            body: "thanks!\n/slipway retry\n".into(),
            ..comment.clone()
        };
        assert!(retry.asks_for_retry());
        let outsider = Comment {
            author_association: "NONE".into(),
            ..comment
        };
        assert!(!outsider.author_may_write());
    }

    #[test]
    fn reviews_read_as_github_wrote_them_and_only_a_submitted_approval_approves() {
        let review = |path: &str| match parse("pull_request_review", &fixture(path)).unwrap() {
            Event::Review(review) => review,
            other => panic!("{path}: {other:?}"),
        };
        let submitted = review("pull_request_review/submitted.payload.json");
        assert_eq!(
            submitted,
            Review {
                action: "submitted".into(),
                repository: "Codertocat/Hello-World".into(),
                number: 2,
                state: "commented".into(),
                reviewer: "Codertocat".into(),
                head_sha: "ec26c3e57ca3a959ca5aad62de7213c562f8c821".into(),
            }
        );
        assert!(!submitted.approves(), "a comment is no approval");
        let org = review("pull_request_review/submitted.with-organization.payload.json");
        assert_eq!(org.number, 2);
        let dismissed = review("pull_request_review/dismissed.payload.json");
        assert_eq!(
            (dismissed.action.as_str(), dismissed.state.as_str()),
            ("dismissed", "dismissed")
        );
        assert!(!dismissed.approves());
        // GitHub writes the state in lower case in deliveries (upper case in the REST API).
        let mut payload: serde_json::Value =
            serde_json::from_slice(&fixture("pull_request_review/submitted.payload.json")).unwrap();
        payload["review"]["state"] = "APPROVED".into();
        payload["review"]["user"] = serde_json::Value::Null;
        let body = serde_json::to_vec(&payload).unwrap();
        let Event::Review(approved) = parse("pull_request_review", &body).unwrap() else {
            panic!("a review");
        };
        assert!(approved.approves());
        assert_eq!(approved.reviewer, "ghost");
        assert!(parse("pull_request_review", b"{\"action\": \"submitted\"}").is_err());
    }

    #[test]
    fn pings_and_other_events_parse_and_malformed_payloads_do_not() {
        assert_eq!(
            parse("ping", &fixture("ping/payload.json")).unwrap(),
            Event::Ping
        );
        assert_eq!(
            parse("check_run", &fixture("check_run/created.payload.json")).unwrap(),
            Event::Other {
                name: "check_run".into()
            }
        );
        assert!(parse("pull_request", b"{\"action\": 1}").is_err());
        assert_eq!(
            repository_of(&fixture("push/payload.json")).as_deref(),
            Some("Codertocat/Hello-World")
        );
    }
}
