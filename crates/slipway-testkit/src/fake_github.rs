//! A stateful fake of GitHub's REST API on 127.0.0.1: repositories backed by real bare git
//! repositories (head commits are read from them, merges are real git merges), pull
//! requests, commit statuses, comments, reviews, rate limits and ETags. Tests assert on its
//! state, not on expectations.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};
use slipway_core::pipeline::MergeMethod;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

mod setup;
pub use setup::FakeHook;
mod faults;
pub use faults::Failing;

#[derive(Debug, Clone)]
pub struct FakePull {
    pub number: i64,
    pub head_ref: String,
    pub base_ref: String,
    pub state: String,
    pub draft: bool,
    pub merged: bool,
    pub merge_sha: Option<String>,
    /// The head commit when it was merged or its branch deleted.
    pub last_head_sha: String,
    /// `owner/name` of the fork the head lives in; its commit is `refs/pull/N/head` here.
    pub fork: Option<String>,
    /// The description; `None` is GitHub's `null`.
    pub body: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeStatus {
    pub sha: String,
    pub state: String,
    pub context: String,
    pub description: String,
    pub target_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeComment {
    pub id: i64,
    pub issue: i64,
    /// `None` for a deleted account (GitHub sends `"user": null`).
    pub user: Option<String>,
    pub body: String,
    pub edits: u32,
}

/// A pull request review as GitHub lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeReview {
    pub number: i64,
    pub user: String,
    /// APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED.
    pub state: String,
    /// OWNER, MEMBER, COLLABORATOR, CONTRIBUTOR, NONE, …
    pub association: String,
    /// The head the review was given on (GitHub's `commit_id`).
    pub commit_id: String,
}

/// The login the API's own comments are written by: the token's user, or an App's bot.
pub const TOKEN_USER: &str = "slipway-bot";
pub const APP_SLUG: &str = "slipway-app";

#[derive(Default)]
struct Repo {
    full_name: String,
    dir: PathBuf,
    /// `file://` of `dir`, or this fake's smart-HTTP URL when it serves git.
    clone_url: String,
    /// A commit status context a merge requires to be `success` on the head (branch
    /// protection's required status check).
    required_status: Option<String>,
    pulls: Vec<FakePull>,
    statuses: Vec<FakeStatus>,
    comments: Vec<FakeComment>,
    reviews: Vec<FakeReview>,
    permissions: HashMap<String, String>,
    merge_calls: Vec<(i64, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeCheckRun {
    pub sha: String,
    pub name: String,
    pub conclusion: String,
    pub title: String,
    pub summary: String,
    pub details_url: Option<String>,
    /// `output.annotations` of the creation and of later updates, in order.
    pub annotations: Vec<Value>,
}

/// Where GitHub's secondary rate limits trip: merges and content creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// `PUT …/pulls/{n}/merge`.
    Merge,
    /// `POST …/issues/{n}/comments`.
    Comment,
}

/// GitHub's message for a secondary rate limit (sent without `Retry-After`).
pub const SECONDARY_RATE_LIMIT: &str = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.";

/// GitHub's transient answer to a merge racing a change of the base branch (405).
pub const BASE_MODIFIED: &str = "Base branch was modified. Review and try the merge again.";

/// GitHub's limit on a check run's `output.summary` and `output.text`, in bytes.
pub const MAX_CHECK_RUN_OUTPUT_BYTES: usize = 65_535;
/// GitHub's limit on a comment's body, in characters.
pub const MAX_COMMENT_CHARS: usize = 65_536;

#[derive(Default)]
struct World {
    token: String,
    /// As a GitHub App: the app id and the key its JWTs must verify with.
    app: Option<(String, jsonwebtoken::DecodingKey)>,
    installation_tokens: Vec<String>,
    check_runs: Vec<FakeCheckRun>,
    repos: HashMap<String, Repo>,
    next_comment: i64,
    rate_limited: u32,
    /// Requests still to be answered 429 (the primary rate limit spent).
    primary_limited: u32,
    /// Reads of a pull request still to show `mergeable: null` (GitHub still computing).
    mergeable_unknown: u32,
    not_modified: u32,
    /// Merge calls still to be answered 409 whatever their SHA (a push racing the merge).
    merge_conflicts: u32,
    /// Where repositories are served over smart HTTP (with the API's credentials), if they are.
    git_base: Option<String>,
    /// Git requests refused for want of credentials.
    git_refusals: usize,
    /// The API's own URL, for `Link` headers.
    api_url: String,
    refuse_checks: bool,
    merge_refusal: Option<(u16, String)>,
    /// Calls still to be answered as a secondary rate limit does: 403 (with GitHub's
    /// message) or 429, without `Retry-After` or `X-RateLimit-Remaining: 0`.
    secondary_limits: Vec<(Limited, u16)>,
    /// Merge calls still to be answered 405 "Base branch was modified".
    base_modified: u32,
    /// Merge calls made while reads of a pull request still showed `mergeable: null`.
    merges_while_mergeability_unknown: u32,
    /// Reads of single pull requests.
    pull_reads: u32,
    /// Webhooks (see `setup.rs`).
    setup: setup::Setup,
    /// Calls still to be answered with a server error (see [`Failing`]).
    server_errors: Vec<(Failing, u16)>,
}

type Shared = Arc<Mutex<World>>;

impl World {
    /// Whether `token` authenticates: the token, or as an App one of its installation tokens.
    fn accepts(&self, token: &str) -> bool {
        if self.app.is_some() {
            self.installation_tokens.iter().any(|t| t == token)
        } else {
            !token.is_empty() && token == self.token
        }
    }
}

/// The fake; stops when dropped.
pub struct FakeGitHub {
    pub url: String,
    world: Shared,
    shutdown: tokio_util::sync::CancellationToken,
    /// Every answer given, for checks against the published description.
    exchanges: crate::exchanges::Exchanges,
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn git(dir: &std::path::Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl Repo {
    fn head_sha(&self, pull: &FakePull) -> String {
        let reference = match &pull.fork {
            Some(_) => format!("refs/pull/{}/head", pull.number),
            None => format!("refs/heads/{}", pull.head_ref),
        };
        git(&self.dir, &["rev-parse", &reference]).unwrap_or_else(|| pull.last_head_sha.clone())
    }

    fn branch_sha(&self, branch: &str) -> Option<String> {
        git(&self.dir, &["rev-parse", &format!("refs/heads/{branch}")])
    }

    fn mergeable(&self, pull: &FakePull) -> bool {
        std::process::Command::new("git")
            .args([
                "merge-tree",
                "--write-tree",
                &pull.base_ref,
                &self.head_sha(pull),
            ])
            .current_dir(&self.dir)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    fn pull_json(&self, pull: &FakePull) -> Value {
        json!({
            "number": pull.number,
            "title": format!("Pull request {}", pull.number),
            "body": pull.body,
            "state": pull.state,
            "draft": pull.draft,
            "merged": pull.merged,
            "mergeable": if pull.state == "open" { Some(self.mergeable(pull)) } else { None },
            // A fork's commits are fetched from here too (GitHub keeps them as refs/pull/N/head).
            "head": {"ref": pull.head_ref, "sha": self.head_sha(pull),
                     "repo": {"clone_url": self.clone_url,
                              "full_name": pull.fork.as_deref().unwrap_or(&self.full_name)}},
            "base": {"ref": pull.base_ref, "sha": self.branch_sha(&pull.base_ref),
                     "repo": {"clone_url": self.clone_url, "full_name": self.full_name}},
        })
    }
}

impl FakeGitHub {
    /// Every answer this fake gave so far.
    pub fn exchanges(&self) -> Vec<crate::exchanges::Exchange> {
        self.exchanges.lock().unwrap().clone()
    }

    /// Starts the fake; it accepts only `token`.
    pub async fn start(token: &str) -> Self {
        Self::serve(World {
            token: token.to_owned(),
            next_comment: 1000,
            ..World::default()
        })
        .await
    }

    /// Starts the fake as GitHub does for an App: it accepts the app's JWTs (RS256, verified
    /// with `public_key_pem`) for installation look-ups and tokens, and those tokens for the API.
    pub async fn start_app(app_id: &str, public_key_pem: &[u8]) -> Self {
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(public_key_pem).expect("a public key");
        Self::serve(World {
            app: Some((app_id.to_owned(), key)),
            next_comment: 1000,
            ..World::default()
        })
        .await
    }

    /// How many installation tokens were issued.
    pub fn installation_tokens_issued(&self) -> usize {
        self.world.lock().unwrap().installation_tokens.len()
    }

    pub fn check_runs(&self) -> Vec<FakeCheckRun> {
        self.world.lock().unwrap().check_runs.clone()
    }

    async fn serve(world: World) -> Self {
        let world: Shared = Arc::new(Mutex::new(world));
        let exchanges = crate::exchanges::Exchanges::default();
        let router = Router::new()
            .route("/user/repos", get(list_repos))
            .route("/user", get(authenticated_user))
            .route("/app", get(authenticated_app))
            .route("/repos/{owner}/{name}", get(show_repo))
            .route(
                "/repos/{owner}/{name}/pulls",
                get(list_pulls).post(create_pull),
            )
            .route(
                "/repos/{owner}/{name}/pulls/{number}/files",
                get(pull_files),
            )
            .route(
                "/repos/{owner}/{name}/pulls/{number}/commits",
                get(pull_commits),
            )
            .route("/repos/{owner}/{name}/pulls/{number}", get(show_pull))
            .route("/repos/{owner}/{name}/branches/{*branch}", get(show_branch))
            .route("/repos/{owner}/{name}/contents/{*path}", get(file_contents))
            .route(
                "/repos/{owner}/{name}/pulls/{number}/merge",
                put(merge_pull),
            )
            .route(
                "/repos/{owner}/{name}/pulls/{number}/reviews",
                get(list_reviews),
            )
            .route("/repos/{owner}/{name}/statuses/{sha}", post(create_status))
            .route(
                "/repos/{owner}/{name}/issues/{number}/comments",
                get(list_comments).post(create_comment),
            )
            .route(
                "/repos/{owner}/{name}/issues/comments/{id}",
                patch(update_comment),
            )
            .route(
                "/repos/{owner}/{name}/git/refs/heads/{*branch}",
                axum::routing::delete(delete_branch),
            )
            .route(
                "/repos/{owner}/{name}/collaborators/{user}/permission",
                get(permission),
            )
            .route("/repos/{owner}/{name}/installation", get(installation))
            .route("/app/installations/{id}/access_tokens", post(access_token))
            .route("/repos/{owner}/{name}/check-runs", post(create_check_run))
            .route(
                "/repos/{owner}/{name}/check-runs/{id}",
                patch(update_check_run),
            )
            .route("/git/{owner}/{name}/{*rest}", axum::routing::any(git_http))
            .merge(setup::routes())
            .with_state(world.clone())
            .route_layer(axum::middleware::from_fn_with_state(
                exchanges.clone(),
                crate::exchanges::record,
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        world.lock().unwrap().api_url = url.clone();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .unwrap();
        });
        Self {
            url,
            world,
            shutdown,
            exchanges,
        }
    }

    /// Adds `owner/name`, backed by the bare repository at `dir`.
    pub fn add_repo(&self, full_name: &str, dir: &std::path::Path) {
        let mut world = self.world.lock().unwrap();
        let clone_url = match &world.git_base {
            Some(base) => format!("{base}/{full_name}.git"),
            None => format!("file://{}", dir.display()),
        };
        world.repos.insert(
            full_name.to_owned(),
            Repo {
                full_name: full_name.to_owned(),
                dir: dir.to_owned(),
                clone_url,
                ..Repo::default()
            },
        );
    }

    /// From now on, repositories added are cloned over smart HTTP from this fake, which asks
    /// for the API's credentials as a private repository does (basic auth, the token as
    /// password).
    pub fn serve_git_over_http(&self) {
        self.world.lock().unwrap().git_base = Some(format!("{}/git", self.url));
    }

    /// Protects the repository's branches as GitHub's required status checks do: a merge is
    /// refused unless the head's latest `context` status is `success`.
    pub fn require_status(&self, full_name: &str, context: &str) {
        let mut world = self.world.lock().unwrap();
        let repo = world.repos.get_mut(full_name).expect("repo added");
        repo.required_status = Some(context.to_owned());
    }

    /// The URL `owner/name` is cloned from.
    pub fn clone_url(&self, full_name: &str) -> String {
        self.world.lock().unwrap().repos[full_name]
            .clone_url
            .clone()
    }

    /// Git requests answered 401 for want of valid credentials.
    pub fn git_refusals(&self) -> usize {
        self.world.lock().unwrap().git_refusals
    }

    /// Opens a pull request from `head` into `base`; returns its number.
    pub fn open_pull(&self, full_name: &str, head: &str, base: &str, draft: bool) -> i64 {
        let mut world = self.world.lock().unwrap();
        let repo = world.repos.get_mut(full_name).expect("repo added");
        let number = repo.pulls.len() as i64 + 1;
        repo.pulls.push(FakePull {
            number,
            head_ref: head.into(),
            base_ref: base.into(),
            state: "open".into(),
            draft,
            merged: false,
            merge_sha: None,
            last_head_sha: String::new(),
            fork: None,
            body: None,
        });
        number
    }

    /// Sets a pull request's description, as its author's edit would.
    pub fn set_pull_body(&self, full_name: &str, number: i64, body: &str) {
        let mut world = self.world.lock().unwrap();
        let repo = world.repos.get_mut(full_name).expect("repo added");
        let pull = repo.pulls.iter_mut().find(|p| p.number == number);
        pull.expect("the pull request").body = Some(body.to_owned());
    }

    /// A pull request from `fork`'s branch `head` (pointing at `sha`), kept as GitHub keeps
    /// it: `refs/pull/N/head` in the base repository.
    pub fn open_fork_pull(
        &self,
        full_name: &str,
        fork: &str,
        head: &str,
        sha: &str,
        base: &str,
    ) -> i64 {
        let number = self.open_pull(full_name, head, base, false);
        let mut world = self.world.lock().unwrap();
        let repo = world.repos.get_mut(full_name).unwrap();
        git(
            &repo.dir,
            &["update-ref", &format!("refs/pull/{number}/head"), sha],
        )
        .expect("a commit of the repository");
        repo.pulls[(number - 1) as usize].fork = Some(fork.to_owned());
        number
    }

    /// Check runs are refused, as for an App without the `checks: write` permission.
    pub fn refuse_check_runs(&self) {
        self.world.lock().unwrap().refuse_checks = true;
    }

    /// The next merge call is refused with `status` (403 or 422) and `message`.
    pub fn refuse_next_merge(&self, status: u16, message: &str) {
        self.world.lock().unwrap().merge_refusal = Some((status, message.to_owned()));
    }

    /// The pull request now targets `base` (GitHub's "Edit" of the base branch).
    pub fn set_base(&self, full_name: &str, number: i64, base: &str) {
        self.with_pull(full_name, number, |p| p.base_ref = base.into());
    }

    pub fn set_draft(&self, full_name: &str, number: i64, draft: bool) {
        self.with_pull(full_name, number, |p| p.draft = draft);
    }

    /// Gives `user` a permission on the repository (`admin`, `write`, `read`, …).
    pub fn grant(&self, full_name: &str, user: &str, permission: &str) {
        let mut world = self.world.lock().unwrap();
        let repo = world.repos.get_mut(full_name).unwrap();
        repo.permissions.insert(user.into(), permission.into());
    }

    /// An approving review by a collaborator with write access (granted here unless the
    /// test gave the reviewer a permission already).
    pub fn approve(&self, full_name: &str, number: i64, reviewer: &str) {
        {
            let mut world = self.world.lock().unwrap();
            let repo = world.repos.get_mut(full_name).unwrap();
            repo.permissions
                .entry(reviewer.into())
                .or_insert_with(|| "write".into());
        }
        self.review(full_name, number, reviewer, "APPROVED", "COLLABORATOR");
    }

    /// A review as GitHub lists it, with the `author_association` given; what the reviewer
    /// may do is their permission ([`FakeGitHub::grant`]), as on GitHub: a read-only
    /// collaborator is still COLLABORATOR.
    pub fn review(
        &self,
        full_name: &str,
        number: i64,
        reviewer: &str,
        state: &str,
        association: &str,
    ) {
        let mut world = self.world.lock().unwrap();
        let repo = world.repos.get_mut(full_name).unwrap();
        let commit_id = repo
            .pulls
            .iter()
            .find(|p| p.number == number)
            .map(|pull| repo.head_sha(pull))
            .unwrap_or_default();
        repo.reviews.push(FakeReview {
            number,
            user: reviewer.into(),
            state: state.into(),
            association: association.into(),
            commit_id,
        });
    }

    /// A comment by someone else (`None`: a deleted account).
    pub fn add_comment(&self, full_name: &str, number: i64, user: Option<&str>, body: &str) {
        let mut world = self.world.lock().unwrap();
        world.next_comment += 1;
        let id = world.next_comment;
        world
            .repos
            .get_mut(full_name)
            .unwrap()
            .comments
            .push(FakeComment {
                id,
                issue: number,
                user: user.map(str::to_owned),
                body: body.into(),
                edits: 0,
            });
    }

    /// The next merge call is answered 409, as when a push lands between check and merge.
    pub fn race_next_merge(&self) {
        self.world.lock().unwrap().merge_conflicts += 1;
    }

    /// The next `n` requests get GitHub's secondary-rate-limit answer (403, Retry-After: 1).
    pub fn rate_limit_next(&self, n: u32) {
        self.world.lock().unwrap().rate_limited = n;
    }

    /// The next `n` requests find the primary rate limit spent (429, `X-RateLimit-*`).
    pub fn exhaust_rate_limit_next(&self, n: u32) {
        self.world.lock().unwrap().primary_limited = n;
    }

    /// The next `n` reads of a pull request show `mergeable: null`, as while GitHub computes it.
    /// A merge call made before they are all read is counted
    /// ([`merges_while_mergeability_unknown`](Self::merges_while_mergeability_unknown)).
    pub fn mergeable_unknown_next(&self, n: u32) {
        self.world.lock().unwrap().mergeable_unknown = n;
    }

    /// Merge calls made while the pull request's `mergeable` was still being computed.
    pub fn merges_while_mergeability_unknown(&self) -> u32 {
        self.world.lock().unwrap().merges_while_mergeability_unknown
    }

    /// How many times a single pull request was read (`GET …/pulls/{n}`).
    pub fn pull_reads(&self) -> u32 {
        self.world.lock().unwrap().pull_reads
    }

    /// The next call of kind `on` meets a secondary rate limit, answered `status` (403 with
    /// GitHub's message, or 429) without `Retry-After` or `X-RateLimit-Remaining: 0`; one
    /// call per status given, in order.
    pub fn secondary_rate_limit_next(&self, on: Limited, statuses: &[u16]) {
        let mut world = self.world.lock().unwrap();
        world
            .secondary_limits
            .extend(statuses.iter().map(|status| (on, *status)));
    }

    /// The next `n` merge calls are answered 405 "Base branch was modified. Review and try
    /// the merge again.", as right after another merge into the same base.
    pub fn base_modified_next_merges(&self, n: u32) {
        self.world.lock().unwrap().base_modified = n;
    }

    pub fn not_modified_answers(&self) -> u32 {
        self.world.lock().unwrap().not_modified
    }

    pub fn pull(&self, full_name: &str, number: i64) -> FakePull {
        let world = self.world.lock().unwrap();
        world.repos[full_name].pulls[(number - 1) as usize].clone()
    }

    pub fn statuses(&self, full_name: &str) -> Vec<FakeStatus> {
        self.world.lock().unwrap().repos[full_name].statuses.clone()
    }

    pub fn comments(&self, full_name: &str) -> Vec<FakeComment> {
        self.world.lock().unwrap().repos[full_name].comments.clone()
    }

    /// `(number, sha)` of every merge call, whatever its answer.
    pub fn merge_calls(&self, full_name: &str) -> Vec<(i64, String)> {
        self.world.lock().unwrap().repos[full_name]
            .merge_calls
            .clone()
    }

    fn with_pull(&self, full_name: &str, number: i64, change: impl FnOnce(&mut FakePull)) {
        let mut world = self.world.lock().unwrap();
        change(&mut world.repos.get_mut(full_name).unwrap().pulls[(number - 1) as usize]);
    }
}

/// One page of `items` as GitHub serves lists: `per_page` (default 30, at most 100) and
/// `page`, with a `Link` header naming the next and last pages.
fn paged(
    world: &World,
    path: &str,
    query: &HashMap<String, String>,
    items: Vec<Value>,
) -> Response {
    let (chunk, link) = page(world, path, query, items);
    let mut response = Json(chunk).into_response();
    if let Some(link) = link {
        response.headers_mut().insert("link", link.parse().unwrap());
    }
    response
}

/// The page `query` asks for, and the `Link` header when more follow.
fn page(
    world: &World,
    path: &str,
    query: &HashMap<String, String>,
    items: Vec<Value>,
) -> (Value, Option<String>) {
    let per_page = query
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = query
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let chunk: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let mut link = None;
    if page < last {
        let mut others: Vec<String> = query
            .iter()
            .filter(|(k, _)| *k != "page")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        others.sort();
        let base = format!("{}{path}?{}", world.api_url, others.join("&"));
        link = Some(format!(
            "<{base}&page={}>; rel=\"next\", <{base}&page={last}>; rel=\"last\"",
            page + 1
        ));
    }
    (Value::Array(chunk), link)
}

/// Who the API's own writes are by.
fn api_user(world: &World) -> String {
    if world.app.is_some() {
        format!("{APP_SLUG}[bot]")
    } else {
        TOKEN_USER.to_owned()
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"message": message}))).into_response()
}

/// The answer to a call of kind `on` when a secondary rate limit is to trip on it.
fn secondary_limit(world: &mut World, on: Limited) -> Option<Response> {
    let at = world.secondary_limits.iter().position(|(l, _)| *l == on)?;
    let (_, status) = world.secondary_limits.remove(at);
    let status = StatusCode::from_u16(status).expect("a status");
    Some(
        (
            status,
            Json(json!({
                "message": SECONDARY_RATE_LIMIT,
                "documentation_url": "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits",
            })),
        )
            .into_response(),
    )
}

/// GitHub's 422 for a comment body over its limit.
fn comment_too_long(body: &str, documentation_url: &str) -> Option<Response> {
    (body.chars().count() > MAX_COMMENT_CHARS).then(|| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "message": "Validation Failed",
                "errors": [{
                    "resource": "IssueComment",
                    "code": "custom",
                    "field": "body",
                    "message": format!("body is too long (maximum is {MAX_COMMENT_CHARS} characters)"),
                }],
                "documentation_url": documentation_url,
            })),
        )
            .into_response()
    })
}

/// Authentication and rate limiting, as GitHub does them: the answer to send instead, if any.
fn refusal(world: &mut World, headers: &HeaderMap) -> Option<Response> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("token "))
        .unwrap_or("");
    if !world.accepts(token) {
        return Some(error(StatusCode::UNAUTHORIZED, "Bad credentials"));
    }
    if world.rate_limited > 0 {
        world.rate_limited -= 1;
        let mut response = error(
            StatusCode::FORBIDDEN,
            "You have exceeded a secondary rate limit.",
        );
        response
            .headers_mut()
            .insert("retry-after", "1".parse().unwrap());
        return Some(response);
    }
    if world.primary_limited > 0 {
        // The primary limit spent: 429 with the limit's headers, reset in a second.
        world.primary_limited -= 1;
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, "API rate limit exceeded");
        let reset = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 1;
        let headers = response.headers_mut();
        headers.insert("x-ratelimit-limit", "5000".parse().unwrap());
        headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
        headers.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
        return Some(response);
    }
    None
}

macro_rules! repo {
    ($world:expr, $owner:expr, $name:expr) => {
        match $world.repos.get_mut(&format!("{}/{}", $owner, $name)) {
            Some(repo) => repo,
            None => return error(StatusCode::NOT_FOUND, "Not Found"),
        }
    };
}

async fn list_pulls(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut world = world.lock().unwrap();
    if let Some(r) = refusal(&mut world, &headers) {
        return r;
    }
    let repo = repo!(world, owner, name);
    let wanted = query.get("state").map(String::as_str).unwrap_or("open");
    // The list's items lack what GitHub computes per pull request (mergeable, merged).
    let pulls: Vec<Value> = repo
        .pulls
        .iter()
        .filter(|p| wanted == "all" || p.state == wanted)
        .map(|p| {
            let mut item = repo.pull_json(p);
            let fields = item.as_object_mut().expect("an object");
            fields.remove("mergeable");
            fields.remove("merged");
            item
        })
        .collect();
    let path = format!("/repos/{owner}/{name}/pulls");
    let (pulls, link) = page(&world, &path, &query, pulls);
    let body = pulls.to_string();
    let etag = format!("\"{:x}\"", {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        body.hash(&mut h);
        h.finish()
    });
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        world.not_modified += 1;
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut response =
        (StatusCode::OK, [("content-type", "application/json")], body).into_response();
    response.headers_mut().insert("etag", etag.parse().unwrap());
    if let Some(link) = link {
        response.headers_mut().insert("link", link.parse().unwrap());
    }
    response
}

/// The repositories the token can see: every repository of the fake.
async fn list_repos(
    State(world): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut world = world.lock().unwrap();
    if let Some(r) = refusal(&mut world, &headers) {
        return r;
    }
    let mut names: Vec<&String> = world.repos.keys().collect();
    names.sort();
    let repos: Vec<Value> = names.into_iter().map(|n| json!({"full_name": n})).collect();
    paged(&world, "/user/repos", &query, repos)
}

async fn show_repo(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    let mut world = world.lock().unwrap();
    if let Some(r) = refusal(&mut world, &headers) {
        return r;
    }
    let repo = repo!(world, owner, name);
    Json(
        json!({"full_name": format!("{owner}/{name}"), "default_branch": "main",
                "clone_url": repo.clone_url}),
    )
    .into_response()
}

async fn create_pull(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut world = world.lock().unwrap();
    if let Some(r) = refusal(&mut world, &headers) {
        return r;
    }
    let repo = repo!(world, owner, name);
    let (Some(head), Some(base)) = (body["head"].as_str(), body["base"].as_str()) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation Failed: head and base",
        );
    };
    if git(
        &repo.dir,
        &["rev-parse", "--verify", &format!("refs/heads/{head}")],
    )
    .is_none()
    {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation Failed: head does not exist",
        );
    }
    let number = repo.pulls.len() as i64 + 1;
    repo.pulls.push(FakePull {
        number,
        head_ref: head.into(),
        base_ref: base.into(),
        state: "open".into(),
        draft: false,
        merged: false,
        merge_sha: None,
        last_head_sha: String::new(),
        fork: None,
        body: body["body"].as_str().map(str::to_owned),
    });
    let pull = repo.pulls.last().unwrap();
    (StatusCode::CREATED, Json(repo.pull_json(pull))).into_response()
}

async fn pull_files(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name, number)): Path<(String, String, i64)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut world = world.lock().unwrap();
    if let Some(r) = refusal(&mut world, &headers) {
        return r;
    }
    let repo = repo!(world, owner, name);
    let Some(pull) = repo.pulls.iter().find(|p| p.number == number) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let range = format!("{}...{}", pull.base_ref, repo.head_sha(pull));
    let names = git(
        &repo.dir,
        &["diff", "--name-status", "--no-renames", &range],
    )
    .unwrap_or_default();
    // GitHub's shape: the status in words, counts, and the patch's hunks (none for binaries).
    let files: Vec<Value> = names
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(status, f)| {
            let diff = git(&repo.dir, &["diff", &range, "--", f]).unwrap_or_default();
            let added = diff
                .lines()
                .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
                .count();
            let removed = diff
                .lines()
                .filter(|l| l.starts_with('-') && !l.starts_with("---"))
                .count();
            let mut file = json!({
                "sha": "",
                "filename": f,
                "status": match status { "A" => "added", "D" => "removed", _ => "modified" },
                "additions": added,
                "deletions": removed,
                "changes": added + removed,
            });
            if let Some(at) = diff.find("\n@@") {
                file["patch"] = json!(diff[at + 1..].trim_end_matches('\n'));
            }
            file
        })
        .collect();
    let path = format!("/repos/{owner}/{name}/pulls/{number}/files");
    paged(&world, &path, &query, files)
}

/// `GET /repos/{owner}/{repo}/pulls/{number}/commits`: oldest first, in GitHub's shape.
async fn pull_commits(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name, number)): Path<(String, String, i64)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut world = world.lock().unwrap();
    if let Some(r) = refusal(&mut world, &headers) {
        return r;
    }
    let repo = repo!(world, owner, name);
    let Some(pull) = repo.pulls.iter().find(|p| p.number == number) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let range = format!("{}..{}", pull.base_ref, repo.head_sha(pull));
    let log = git(
        &repo.dir,
        &[
            "log",
            "--reverse",
            "--format=%H%x1f%P%x1f%an%x1f%ae%x1f%aI%x1f%B%x1e",
            &range,
        ],
    )
    .unwrap_or_default();
    let commits: Vec<Value> = log
        .split('\x1e')
        .filter(|c| !c.trim().is_empty())
        .filter_map(|c| {
            let f: Vec<&str> = c.trim_start().splitn(6, '\x1f').collect();
            let [sha, parents, author, email, date, message] = f[..] else {
                return None;
            };
            let who = json!({"name": author, "email": email, "date": date});
            Some(json!({
                "sha": sha,
                "commit": {"author": who, "committer": who, "message": message.trim_end()},
                "author": null,
                "committer": null,
                "parents": parents.split(' ').filter(|p| !p.is_empty()).map(|p| json!({"sha": p})).collect::<Vec<_>>(),
            }))
        })
        .collect();
    let path = format!("/repos/{owner}/{name}/pulls/{number}/commits");
    paged(&world, &path, &query, commits)
}

/// `GET /repos/{owner}/{repo}/contents/{path}?ref=`: a file as base64 in lines of 60, as
/// GitHub sends it. Without `ref`, the repository's HEAD.
async fn file_contents(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name, path)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    use base64::Engine;
    let mut world = world.lock().unwrap();
    if let Some(r) = refusal(&mut world, &headers) {
        return r;
    }
    let repo = repo!(world, owner, name);
    let object = format!("{}:{path}", query.get("ref").map_or("HEAD", String::as_str));
    let (Some(sha), Some(text)) = (
        git(&repo.dir, &["rev-parse", &object]),
        git(&repo.dir, &["cat-file", "blob", &object]),
    ) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{text}\n"));
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(60)
        .map(|chunk| std::str::from_utf8(chunk).unwrap())
        .collect();
    Json(json!({
        "type": "file",
        "encoding": "base64",
        "name": path.rsplit('/').next(),
        "path": path,
        "sha": sha,
        "size": text.len() + 1,
        "content": lines.join("\n") + "\n",
    }))
    .into_response()
}

async fn show_pull(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name, number)): Path<(String, String, i64)>,
) -> Response {
    let mut world = world.lock().unwrap();
    if let Some(r) = refusal(&mut world, &headers) {
        return r;
    }
    world.pull_reads += 1;
    let unknown = world.mergeable_unknown > 0;
    if unknown {
        world.mergeable_unknown -= 1;
    }
    let repo = repo!(world, owner, name);
    match repo.pulls.iter().find(|p| p.number == number) {
        Some(pull) => {
            let mut body = repo.pull_json(pull);
            if unknown {
                body["mergeable"] = Value::Null;
            }
            Json(body).into_response()
        }
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn show_branch(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name, branch)): Path<(String, String, String)>,
) -> Response {
    let mut world = world.lock().unwrap();
    if let Some(r) = refusal(&mut world, &headers) {
        return r;
    }
    let repo = repo!(world, owner, name);
    match repo.branch_sha(&branch) {
        Some(sha) => Json(json!({"name": branch, "commit": {"sha": sha}})).into_response(),
        None => error(StatusCode::NOT_FOUND, "Branch not found"),
    }
}

async fn merge_pull(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name, number)): Path<(String, String, i64)>,
    Json(body): Json<Value>,
) -> Response {
    let (dir, base, head_ref, sha, method, title) = {
        let mut world = world.lock().unwrap();
        if let Some(r) = refusal(&mut world, &headers) {
            return r;
        }
        if let Some(limited) = secondary_limit(&mut world, Limited::Merge) {
            return limited;
        }
        if let Some(status) = faults::take(&mut world, Failing::Merge) {
            let sha = body["sha"].as_str().unwrap_or("").to_owned();
            repo!(world, owner, name).merge_calls.push((number, sha));
            return faults::answer(status);
        }
        if let Some((status, message)) = world.merge_refusal.take() {
            let status = StatusCode::from_u16(status).expect("a status");
            return error(status, &message);
        }
        if world.mergeable_unknown > 0 {
            world.merges_while_mergeability_unknown += 1;
        }
        let raced = world.merge_conflicts > 0;
        if raced {
            world.merge_conflicts -= 1;
        }
        let base_modified = world.base_modified > 0;
        if base_modified {
            world.base_modified -= 1;
        }
        let repo = repo!(world, owner, name);
        let sha = body["sha"].as_str().unwrap_or("").to_owned();
        repo.merge_calls.push((number, sha.clone()));
        if base_modified {
            return error(StatusCode::METHOD_NOT_ALLOWED, BASE_MODIFIED);
        }
        let Some(pull) = repo.pulls.iter().find(|p| p.number == number).cloned() else {
            return error(StatusCode::NOT_FOUND, "Not Found");
        };
        if pull.state != "open" || pull.draft {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "Pull Request is not mergeable",
            );
        }
        let head = repo.head_sha(&pull);
        if raced || (!sha.is_empty() && sha != head) {
            return error(
                StatusCode::CONFLICT,
                "Head branch was modified. Review and try the merge again.",
            );
        }
        if !repo.mergeable(&pull) {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "Pull Request is not mergeable",
            );
        }
        if let Some(context) = &repo.required_status {
            let latest = repo
                .statuses
                .iter()
                .rev()
                .find(|s| s.sha == head && &s.context == context);
            if latest.is_none_or(|s| s.state != "success") {
                return error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &format!("Required status check \"{context}\" is expected."),
                );
            }
        }
        let method = match body["merge_method"].as_str() {
            Some("squash") => MergeMethod::Squash,
            Some("rebase") => MergeMethod::Rebase,
            _ => MergeMethod::Merge,
        };
        let title = body["commit_title"].as_str().unwrap_or("Merge").to_owned();
        (
            repo.dir.clone(),
            pull.base_ref,
            pull.head_ref,
            head,
            method,
            title,
        )
    };
    let scratch = tempfile::tempdir().unwrap();
    let outcome = slipway_forge::local::merge(
        &dir.display().to_string(),
        &base,
        None,
        &sha,
        method,
        &title,
        &scratch.path().join("m"),
    )
    .await;
    let mut world = world.lock().unwrap();
    let repo = repo!(world, owner, name);
    match outcome {
        Ok(slipway_forge::local::MergeOutcome::Merged { sha: merged }) => {
            let pull = repo.pulls.iter_mut().find(|p| p.number == number).unwrap();
            pull.state = "closed".into();
            pull.merged = true;
            pull.merge_sha = Some(merged.clone());
            pull.last_head_sha = sha;
            let _ = head_ref;
            if let Some(status) = faults::take(&mut world, Failing::MergeAnswerLost) {
                return faults::answer(status);
            }
            Json(json!({"sha": merged, "merged": true, "message": "Pull Request successfully merged"})).into_response()
        }
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Pull Request is not mergeable",
        ),
    }
}

async fn list_reviews(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name, number)): Path<(String, String, i64)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut world = world.lock().unwrap();
    if let Some(r) = refusal(&mut world, &headers) {
        return r;
    }
    let repo = repo!(world, owner, name);
    let reviews: Vec<Value> = repo
        .reviews
        .iter()
        .filter(|r| r.number == number)
        .enumerate()
        .map(|(i, r)| {
            json!({"id": i + 1, "user": {"login": r.user}, "state": r.state,
                   "author_association": r.association, "body": "",
                   "commit_id": r.commit_id})
        })
        .collect();
    let path = format!("/repos/{owner}/{name}/pulls/{number}/reviews");
    paged(&world, &path, &query, reviews)
}

async fn create_status(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name, sha)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut world = world.lock().unwrap();
    if let Some(r) = refusal(&mut world, &headers) {
        return r;
    }
    if let Some(status) = faults::take(&mut world, Failing::Status) {
        return faults::answer(status);
    }
    let repo = repo!(world, owner, name);
    let state = body["state"].as_str().unwrap_or("").to_owned();
    if !["pending", "success", "failure", "error"].contains(&state.as_str()) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
    }
    repo.statuses.push(FakeStatus {
        sha,
        state,
        context: body["context"].as_str().unwrap_or("default").to_owned(),
        description: body["description"].as_str().unwrap_or("").to_owned(),
        target_url: body["target_url"].as_str().map(str::to_owned),
    });
    (
        StatusCode::CREATED,
        Json(json!({"id": repo.statuses.len()})),
    )
        .into_response()
}

async fn list_comments(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name, number)): Path<(String, String, i64)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut world = world.lock().unwrap();
    if let Some(r) = refusal(&mut world, &headers) {
        return r;
    }
    let repo = repo!(world, owner, name);
    let comments: Vec<Value> = repo
        .comments
        .iter()
        .filter(|c| c.issue == number)
        .map(|c| {
            let user = c.user.as_ref().map(|login| json!({"login": login}));
            json!({"id": c.id, "body": c.body, "user": user})
        })
        .collect();
    let path = format!("/repos/{owner}/{name}/issues/{number}/comments");
    paged(&world, &path, &query, comments)
}

async fn create_comment(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name, number)): Path<(String, String, i64)>,
    Json(body): Json<Value>,
) -> Response {
    let mut world = world.lock().unwrap();
    if let Some(r) = refusal(&mut world, &headers) {
        return r;
    }
    if let Some(limited) = secondary_limit(&mut world, Limited::Comment) {
        return limited;
    }
    if let Some(status) = faults::take(&mut world, Failing::Comment) {
        return faults::answer(status);
    }
    let text = body["body"].as_str().unwrap_or("");
    let docs = "https://docs.github.com/rest/issues/comments#create-an-issue-comment";
    if let Some(too_long) = comment_too_long(text, docs) {
        return too_long;
    }
    world.next_comment += 1;
    let id = world.next_comment;
    let user = api_user(&world);
    let repo = repo!(world, owner, name);
    repo.comments.push(FakeComment {
        id,
        issue: number,
        user: Some(user),
        body: body["body"].as_str().unwrap_or("").to_owned(),
        edits: 0,
    });
    (StatusCode::CREATED, Json(json!({"id": id}))).into_response()
}

async fn update_comment(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name, id)): Path<(String, String, i64)>,
    Json(body): Json<Value>,
) -> Response {
    let mut world = world.lock().unwrap();
    if let Some(r) = refusal(&mut world, &headers) {
        return r;
    }
    let text = body["body"].as_str().unwrap_or("");
    let docs = "https://docs.github.com/rest/issues/comments#update-an-issue-comment";
    if let Some(too_long) = comment_too_long(text, docs) {
        return too_long;
    }
    let repo = repo!(world, owner, name);
    match repo.comments.iter_mut().find(|c| c.id == id) {
        Some(comment) => {
            comment.body = body["body"].as_str().unwrap_or("").to_owned();
            comment.edits += 1;
            Json(json!({"id": id})).into_response()
        }
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn delete_branch(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name, branch)): Path<(String, String, String)>,
) -> Response {
    let mut world = world.lock().unwrap();
    if let Some(r) = refusal(&mut world, &headers) {
        return r;
    }
    let repo = repo!(world, owner, name);
    match git(&repo.dir, &["branch", "-D", &branch]) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => error(StatusCode::UNPROCESSABLE_ENTITY, "Reference does not exist"),
    }
}

/// Whether the request carries a valid JWT of the app (RS256, right issuer, not expired).
fn app_jwt_is_valid(world: &World, headers: &HeaderMap) -> bool {
    let Some((app_id, key)) = &world.app else {
        return false;
    };
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(jwt) = auth.strip_prefix("Bearer ") else {
        return false;
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[app_id.as_str()]);
    validation.set_required_spec_claims(&["exp", "iat", "iss"]);
    jsonwebtoken::decode::<Value>(jwt, key, &validation).is_ok()
}

/// `GET /user`: the token's user.
async fn authenticated_user(State(world): State<Shared>, headers: HeaderMap) -> Response {
    let mut world = world.lock().unwrap();
    if world.app.is_some() {
        // An installation token has no user: GitHub answers 403.
        return error(
            StatusCode::FORBIDDEN,
            "Resource not accessible by integration",
        );
    }
    if let Some(r) = refusal(&mut world, &headers) {
        return r;
    }
    Json(json!({"login": TOKEN_USER, "id": 1, "type": "User"})).into_response()
}

/// `GET /app`: the App the JWT is of.
async fn authenticated_app(State(world): State<Shared>, headers: HeaderMap) -> Response {
    let world = world.lock().unwrap();
    if !app_jwt_is_valid(&world, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "A JSON web token could not be decoded",
        );
    }
    Json(json!({"id": 1, "slug": APP_SLUG, "name": "Slipway"})).into_response()
}

async fn installation(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    let world = world.lock().unwrap();
    if !app_jwt_is_valid(&world, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "A JSON web token could not be decoded",
        );
    }
    if !world.repos.contains_key(&format!("{owner}/{name}")) {
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    Json(json!({"id": 42})).into_response()
}

async fn access_token(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let mut world = world.lock().unwrap();
    if !app_jwt_is_valid(&world, &headers) || id != 42 {
        return error(
            StatusCode::UNAUTHORIZED,
            "A JSON web token could not be decoded",
        );
    }
    let token = format!("ghs_installation_{}", world.installation_tokens.len() + 1);
    world.installation_tokens.push(token.clone());
    let expires = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let expires = expires
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    (
        StatusCode::CREATED,
        Json(json!({"token": token, "expires_at": expires})),
    )
        .into_response()
}

async fn create_check_run(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut world = world.lock().unwrap();
    if let Some(r) = refusal(&mut world, &headers) {
        return r;
    }
    if world.app.is_none() {
        return error(
            StatusCode::FORBIDDEN,
            "Check runs can only be created by GitHub Apps",
        );
    }
    if world.refuse_checks {
        return error(
            StatusCode::FORBIDDEN,
            "Resource not accessible by integration",
        );
    }
    let _ = repo!(world, owner, name);
    // GitHub counts the output's summary and text in bytes.
    for field in ["summary", "text"] {
        let size = body["output"][field].as_str().map_or(0, str::len);
        if size > MAX_CHECK_RUN_OUTPUT_BYTES {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({
                    "message": format!(
                        "Invalid request.\n\n{field} exceeds a maximum bytesize of {MAX_CHECK_RUN_OUTPUT_BYTES}"
                    ),
                    "documentation_url": "https://docs.github.com/rest/checks/runs#create-a-check-run",
                })),
            )
                .into_response();
        }
    }
    if let Some(refused) = too_many_annotations(&body) {
        return refused;
    }
    world.check_runs.push(FakeCheckRun {
        annotations: annotations_of(&body),
        sha: body["head_sha"].as_str().unwrap_or("").to_owned(),
        name: body["name"].as_str().unwrap_or("").to_owned(),
        conclusion: body["conclusion"].as_str().unwrap_or("").to_owned(),
        title: body["output"]["title"].as_str().unwrap_or("").to_owned(),
        summary: body["output"]["summary"].as_str().unwrap_or("").to_owned(),
        details_url: body["details_url"].as_str().map(str::to_owned),
    });
    (
        StatusCode::CREATED,
        Json(json!({"id": world.check_runs.len()})),
    )
        .into_response()
}

/// GitHub takes at most 50 annotations a request ("Only 50 annotations are allowed per
/// request"); more are added by updating the check run.
const MAX_ANNOTATIONS: usize = 50;

fn annotations_of(body: &Value) -> Vec<Value> {
    body["output"]["annotations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn too_many_annotations(body: &Value) -> Option<Response> {
    (annotations_of(body).len() > MAX_ANNOTATIONS).then(|| {
        error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Only 50 annotations are allowed per request",
        )
    })
}

/// `PATCH …/check-runs/{id}`: its output's annotations are added to the run's.
async fn update_check_run(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name, id)): Path<(String, String, usize)>,
    Json(body): Json<Value>,
) -> Response {
    let mut world = world.lock().unwrap();
    if let Some(r) = refusal(&mut world, &headers) {
        return r;
    }
    let _ = repo!(world, owner, name);
    if let Some(refused) = too_many_annotations(&body) {
        return refused;
    }
    let Some(run) = id.checked_sub(1).and_then(|i| world.check_runs.get_mut(i)) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    run.annotations.extend(annotations_of(&body));
    (StatusCode::OK, Json(json!({"id": id}))).into_response()
}

async fn permission(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name, user)): Path<(String, String, String)>,
) -> Response {
    let mut world = world.lock().unwrap();
    if let Some(r) = refusal(&mut world, &headers) {
        return r;
    }
    let repo = repo!(world, owner, name);
    match repo.permissions.get(&user) {
        Some(permission) => {
            Json(json!({"permission": permission, "user": {"login": user}})).into_response()
        }
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// Git's smart HTTP protocol through `git http-backend` (CGI), for the credentials GitHub
/// takes: basic auth whose password is the token (or an installation token).
async fn git_http(
    State(world): State<Shared>,
    Path((owner, name, rest)): Path<(String, String, String)>,
    method: axum::http::Method,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    use base64::Engine;
    use tokio::io::AsyncWriteExt;
    let full_name = format!("{owner}/{}", name.trim_end_matches(".git"));
    let password = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| v.split_once(':').map(|(_, password)| password.to_owned()))
        .unwrap_or_default();
    let dir = {
        let mut w = world.lock().unwrap();
        if !w.accepts(&password) {
            w.git_refusals += 1;
            return (
                StatusCode::UNAUTHORIZED,
                [("www-authenticate", "Basic realm=\"GitHub\"")],
            )
                .into_response();
        }
        match w.repos.get(&full_name) {
            Some(repo) => repo.dir.clone(),
            None => return error(StatusCode::NOT_FOUND, "Repository not found."),
        }
    };
    let root = dir.parent().expect("a repository inside a folder");
    let repo_dir = dir
        .file_name()
        .expect("a named repository")
        .to_string_lossy();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut child = tokio::process::Command::new("git")
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REMOTE_USER", "x-access-token")
        .env("PATH_INFO", format!("/{repo_dir}/{rest}"))
        .env("REQUEST_METHOD", method.as_str())
        .env("QUERY_STRING", query.unwrap_or_default())
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("git http-backend runs");
    let mut stdin = child.stdin.take().expect("piped");
    let feed = async move {
        let _ = stdin.write_all(&body).await;
    };
    let (_, output) = tokio::join!(feed, child.wait_with_output());
    let output = output.expect("git http-backend ends");
    // CGI: header lines, a blank line, the body.
    let split = output
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| (at, at + 4))
        .or_else(|| {
            output
                .stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|at| (at, at + 2))
        });
    let Some((end, start)) = split else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "git http-backend failed");
    };
    let mut response = Response::builder().status(StatusCode::OK);
    for line in String::from_utf8_lossy(&output.stdout[..end]).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split(' ').next().and_then(|c| c.parse().ok());
            response = response.status(code.unwrap_or(500));
        } else {
            response = response.header(name, value);
        }
    }
    response
        .body(axum::body::Body::from(output.stdout[start..].to_vec()))
        .expect("a response")
}
