//! GitHub over its REST API, authenticated by a token or as a GitHub App (a JWT signed with
//! the app's private key, exchanged per repository for installation tokens that are cached
//! until shortly before they expire). The base URL comes from `GITHUB_API_URL`, so GitHub
//! Enterprise and the test fake work the same way. Rate limits are honoured (`Retry-After`,
//! `X-RateLimit-Remaining`/`Reset`, and secondary limits that carry neither: a 429, or a 403
//! that says so, waited out with a growing pause), polling uses ETags, a pull request whose
//! mergeability GitHub is still computing is read again, and a merge GitHub answers "Base
//! branch was modified" is tried again — all within bounds ([`Waits`]).

use serde::Deserialize;
use serde_json::{json, Value};
use slipway_core::pipeline::MergeMethod;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod setup;
pub use setup::{Hook, HookConfig, HookDelivery, HookResponse, WantedHook};

/// The longest a rate limit is waited out before the call fails.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error("GitHub could not be reached: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("GitHub answered {status} to {what}: {message}")]
    Status {
        status: u16,
        what: String,
        message: String,
    },
    #[error("GitHub's rate limit for this token is spent until {reset_in:?} from now")]
    RateLimited { reset_in: Duration },
    /// A secondary rate limit (too many requests, or content created too fast) that still
    /// held after the bounded waits: not a refusal, the call may be made again later.
    #[error(
        "GitHub's secondary rate limit still held after {attempts} attempts ({waited:?} of waiting) on {what}; try again later"
    )]
    SecondaryRateLimited {
        what: String,
        attempts: u32,
        waited: Duration,
    },
    #[error("the GitHub App's private key is unusable: {0}")]
    Key(String),
}

/// A pull request as Slipway needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pull {
    pub number: i64,
    pub title: String,
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

/// A commit status state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusState {
    Pending,
    Success,
    Failure,
    Error,
}

impl StatusState {
    fn as_str(self) -> &'static str {
        match self {
            StatusState::Pending => "pending",
            StatusState::Success => "success",
            StatusState::Failure => "failure",
            StatusState::Error => "error",
        }
    }
}

/// How the client authenticates.
enum Credentials {
    Token(String),
    App(App),
}

/// A GitHub App: its id, its key, and installation tokens by repository.
struct App {
    id: String,
    key: jsonwebtoken::EncodingKey,
    tokens: tokio::sync::Mutex<HashMap<String, (String, SystemTime)>>,
}

/// How long the client waits before trying again, and how many times. GitHub asks for "at
/// least one minute" after a secondary rate limit; tests make every wait short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waits {
    /// The first wait after a secondary rate limit without `Retry-After`; it doubles after
    /// each further one.
    pub secondary_rate_limit: Duration,
    /// Attempts of one call while a secondary rate limit holds (the first included).
    pub secondary_attempts: u32,
    /// The first pause before reading a pull request again whose `mergeable` is still null,
    /// and before a merge again after "Base branch was modified"; it doubles each time.
    pub backoff: Duration,
    /// Reads of a pull request while its `mergeable` is null (the first included).
    pub mergeable_reads: u32,
    /// Merge calls while GitHub answers 405 "Base branch was modified" (the first included).
    pub merge_attempts: u32,
    /// Attempts of an idempotent call (reads, edits, deletions, commit statuses) that GitHub
    /// answers 5xx or that times out (the first included); `backoff` with jitter between.
    pub server_error_attempts: u32,
}

impl Default for Waits {
    fn default() -> Self {
        Self {
            secondary_rate_limit: Duration::from_secs(60),
            secondary_attempts: 3,
            backoff: Duration::from_millis(500),
            mergeable_reads: 5,
            merge_attempts: 3,
            server_error_attempts: 3,
        }
    }
}

impl Waits {
    /// The same bounds with every pause `pause` (tests: a few milliseconds).
    pub fn short(pause: Duration) -> Self {
        Self {
            secondary_rate_limit: pause,
            backoff: pause,
            ..Self::default()
        }
    }
}

/// Installation tokens are renewed this long before they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

/// The client. Cheap to share behind an `Arc`.
pub struct GitHub {
    http: reqwest::Client,
    api: String,
    credentials: Credentials,
    /// ETag, body and next page of GET responses, for conditional requests.
    etags: Mutex<HashMap<String, Cached>>,
    /// The login Slipway's own comments are written by, once known.
    own_login: Mutex<Option<String>>,
    /// Whether a user may write to a repository, keyed by (repository, login), as GitHub
    /// answered at the instant kept: answers are reused for [`PERMISSION_TTL`].
    permissions: Mutex<HashMap<(String, String), (bool, Instant)>>,
    waits: Waits,
}

/// How long an answer about a user's permission is reused (reviews are counted at each
/// verdict; a minute keeps a busy repository from asking for every reviewer every time).
const PERMISSION_TTL: Duration = Duration::from_secs(60);

/// A GET answer kept for conditional requests: its ETag, body and next page.
type Cached = (String, Value, Option<String>);

/// One answer: its status, its JSON and, for a list, the next page's URL.
struct Reply {
    status: u16,
    value: Value,
    next: Option<String>,
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            })
    })
}

/// Pages of a list read at most: beyond them a list is taken as it is (3,000 items).
const MAX_PAGES: usize = 30;

/// `author_association` values of people who may write to the repository (their permission
/// says whether they do).
const WRITERS: [&str; 3] = ["OWNER", "MEMBER", "COLLABORATOR"];

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GitHub({})", self.api)
    }
}

#[derive(Deserialize)]
struct PullBody {
    number: i64,
    #[serde(default)]
    title: String,
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
    /// A client with a personal or installation token. `api` is `GITHUB_API_URL`.
    pub fn new(api: &str, token: &str) -> Self {
        Self::with(api, Credentials::Token(token.to_owned()))
    }

    /// A client acting as the GitHub App `app_id`, with its RSA private key (PEM).
    pub fn app(api: &str, app_id: &str, private_key_pem: &[u8]) -> Result<Self, GitHubError> {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem)
            .map_err(|e| GitHubError::Key(e.to_string()))?;
        Ok(Self::with(
            api,
            Credentials::App(App {
                id: app_id.to_owned(),
                key,
                tokens: tokio::sync::Mutex::new(HashMap::new()),
            }),
        ))
    }

    fn with(api: &str, credentials: Credentials) -> Self {
        Self {
            http: reqwest::Client::builder()
                .user_agent("slipway")
                .timeout(Duration::from_secs(30))
                .build()
                .expect("the HTTP client builds"),
            api: api.trim_end_matches('/').to_owned(),
            credentials,
            etags: Mutex::new(HashMap::new()),
            own_login: Mutex::new(None),
            permissions: Mutex::new(HashMap::new()),
            waits: Waits::default(),
        }
    }

    /// The same client with other waits and bounds (tests make them short).
    pub fn with_waits(mut self, waits: Waits) -> Self {
        self.waits = waits;
        self
    }

    /// Whether this client is a GitHub App (which may create check runs).
    pub fn is_app(&self) -> bool {
        matches!(self.credentials, Credentials::App(_))
    }

    /// The app's JWT: valid ten minutes, issued a minute in the past for clock drift.
    fn app_jwt(app: &App) -> Result<String, GitHubError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims = json!({"iat": now.saturating_sub(60), "exp": now + 540, "iss": app.id});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &app.key,
        )
        .map_err(|e| GitHubError::Key(e.to_string()))
    }

    /// The bearer token for a request on `path`: the token, or the repository's installation
    /// token (fetched with the app's JWT and cached until shortly before it expires).
    async fn bearer(&self, path: &str) -> Result<String, GitHubError> {
        let app = match &self.credentials {
            Credentials::Token(token) => return Ok(token.clone()),
            Credentials::App(app) => app,
        };
        let repo = path
            .strip_prefix("/repos/")
            .and_then(|rest| {
                let mut parts = rest.splitn(3, '/');
                Some(format!(
                    "{}/{}",
                    parts.next()?,
                    parts.next()?.split('?').next()?
                ))
            })
            .ok_or_else(|| GitHubError::Key(format!("{path} names no repository")))?;
        let mut tokens = app.tokens.lock().await;
        if let Some((token, expires)) = tokens.get(&repo) {
            if *expires > SystemTime::now() + TOKEN_MARGIN {
                return Ok(token.clone());
            }
        }
        let jwt = Self::app_jwt(app)?;
        let installation = self
            .raw(
                reqwest::Method::GET,
                &format!("/repos/{repo}/installation"),
                &jwt,
                200,
            )
            .await?;
        let id = installation["id"]
            .as_i64()
            .ok_or_else(|| GitHubError::Status {
                status: 200,
                what: format!("GET /repos/{repo}/installation"),
                message: "the app is not installed on this repository".into(),
            })?;
        let granted = self
            .raw(
                reqwest::Method::POST,
                &format!("/app/installations/{id}/access_tokens"),
                &jwt,
                201,
            )
            .await?;
        let token = granted["token"].as_str().unwrap_or_default().to_owned();
        let expires = granted["expires_at"]
            .as_str()
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(|t| UNIX_EPOCH + Duration::from_secs(t.unix_timestamp().max(0) as u64))
            .unwrap_or_else(|| SystemTime::now() + Duration::from_secs(3_000));
        tokens.insert(repo, (token.clone(), expires));
        Ok(token)
    }

    /// A request with the app's JWT, expecting `expect`.
    async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        jwt: &str,
        expect: u16,
    ) -> Result<Value, GitHubError> {
        let response = self
            .http
            .request(method.clone(), format!("{}{path}", self.api))
            .bearer_auth(jwt)
            .header("accept", "application/vnd.github+json")
            .send()
            .await?;
        let status = response.status().as_u16();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if status == expect {
            Ok(value)
        } else {
            Err(GitHubError::Status {
                status,
                what: format!("{method} {path}"),
                message: value["message"].as_str().unwrap_or("").to_owned(),
            })
        }
    }

    /// One request, waiting out a rate limit (bounded) and retrying once after it.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), GitHubError> {
        let reply = self.request(method, path, body).await?;
        Ok((reply.status, reply.value))
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, GitHubError> {
        let bearer = self.bearer(path).await?;
        self.send(method, &format!("{}{path}", self.api), &bearer, body)
            .await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        bearer: &str,
        body: Option<&Value>,
    ) -> Result<Reply, GitHubError> {
        let path = url.strip_prefix(&self.api).unwrap_or(url);
        let url = url.to_owned();
        // Primary limits (their reset is known) and secondary ones (waited out with a
        // doubling pause) are counted apart, each within its bound.
        let (mut primary, mut secondary, mut waited) = (0u32, 0u32, Duration::ZERO);
        // A 5xx or a timeout of an idempotent call is tried again; any other call may have
        // taken effect, and its caller decides (the merge controller reads the pull again).
        let retried = idempotent(&method, path);
        let mut failed = 0u32;
        loop {
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(bearer)
                .header("accept", "application/vnd.github+json")
                .header("x-github-api-version", "2022-11-28");
            let conditional = method == reqwest::Method::GET;
            if conditional {
                if let Some((etag, ..)) = self.etags.lock().expect("etag lock").get(&url) {
                    request = request.header("if-none-match", etag);
                }
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(response) if response.status().is_server_error() && retried => {
                    Err(GitHubError::Status {
                        status: response.status().as_u16(),
                        what: format!("{method} {path}"),
                        message: response
                            .json::<Value>()
                            .await
                            .ok()
                            .and_then(|v| v["message"].as_str().map(str::to_owned))
                            .unwrap_or_default(),
                    })
                }
                Ok(response) => Ok(response),
                Err(error) => Err(GitHubError::Transport(error)),
            };
            let response = match response {
                Ok(response) => response,
                Err(error) if retried && failed + 1 < self.waits.server_error_attempts => {
                    failed += 1;
                    let wait = jittered(self.waits.backoff, failed);
                    tracing::warn!(%error, ?wait, path, "GitHub failed an idempotent call: trying again");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(error) => return Err(error),
            };
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let text = response.text().await?;
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            match rate_limit(status, &headers, value["message"].as_str().unwrap_or("")) {
                Some(Limit::Primary(wait)) => {
                    primary += 1;
                    if wait > MAX_RATE_LIMIT_WAIT || primary >= 3 {
                        return Err(GitHubError::RateLimited { reset_in: wait });
                    }
                    tracing::warn!(?wait, path, "GitHub rate limit: waiting");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Some(Limit::Secondary) => {
                    secondary += 1;
                    if secondary >= self.waits.secondary_attempts.max(1) {
                        return Err(GitHubError::SecondaryRateLimited {
                            what: format!("{method} {path}"),
                            attempts: secondary,
                            waited,
                        });
                    }
                    let wait = self.waits.secondary_rate_limit * 2u32.pow(secondary - 1);
                    tracing::warn!(?wait, path, status, "GitHub secondary rate limit: waiting");
                    tokio::time::sleep(wait).await;
                    waited += wait;
                    continue;
                }
                None => {}
            }
            if status == 304 {
                if let Some((_, value, next)) = self.etags.lock().expect("etag lock").get(&url) {
                    let (value, next) = (value.clone(), next.clone());
                    return Ok(Reply {
                        status: 200,
                        value,
                        next,
                    });
                }
            }
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let (etag, next) = (header("etag"), header("link").and_then(|l| next_link(&l)));
            if conditional && status == 200 {
                if let Some(etag) = etag {
                    self.etags
                        .lock()
                        .expect("etag lock")
                        .insert(url.clone(), (etag, value.clone(), next.clone()));
                }
            }
            return Ok(Reply {
                status,
                value,
                next,
            });
        }
    }

    /// Every item of a list, following `Link: rel="next"` (at most `MAX_PAGES` pages). A
    /// next page elsewhere than this API is not followed: the token goes nowhere else.
    async fn list(&self, path: &str) -> Result<Vec<Value>, GitHubError> {
        // The next pages' URLs may name the repository by id: the first page's credentials
        // serve them all.
        let bearer = self.bearer(path).await?;
        let mut items = Vec::new();
        let mut url = format!("{}{path}", self.api);
        for _ in 0..MAX_PAGES {
            let reply = self.send(reqwest::Method::GET, &url, &bearer, None).await?;
            if reply.status != 200 {
                return Err(GitHubError::Status {
                    status: reply.status,
                    what: format!("GET {url}"),
                    message: reply.value["message"].as_str().unwrap_or("").to_owned(),
                });
            }
            items.extend(reply.value.as_array().cloned().unwrap_or_default());
            match reply.next {
                Some(next) if next.starts_with(&format!("{}/", self.api)) => url = next,
                _ => break,
            }
        }
        Ok(items)
    }

    /// The login Slipway's own comments carry: the token's user, or the App's bot.
    async fn own_login(&self) -> Result<String, GitHubError> {
        if let Some(login) = self.own_login.lock().expect("login lock").clone() {
            return Ok(login);
        }
        let login = match &self.credentials {
            Credentials::App(app) => {
                let jwt = Self::app_jwt(app)?;
                let value = self.raw(reqwest::Method::GET, "/app", &jwt, 200).await?;
                format!("{}[bot]", value["slug"].as_str().unwrap_or_default())
            }
            _ => {
                let value = self
                    .expect(reqwest::Method::GET, "/user", None, &[200])
                    .await?;
                value["login"].as_str().unwrap_or_default().to_owned()
            }
        };
        *self.own_login.lock().expect("login lock") = Some(login.clone());
        Ok(login)
    }

    async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        ok: &[u16],
    ) -> Result<Value, GitHubError> {
        let what = format!("{method} {path}");
        let (status, value) = self.call(method, path, body).await?;
        if ok.contains(&status) {
            Ok(value)
        } else {
            Err(GitHubError::Status {
                status,
                what,
                message: value["message"].as_str().unwrap_or("").to_owned(),
            })
        }
    }

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

    /// The token git presents for `repo` (basic auth, `x-access-token` as user): the token,
    /// or as an App the repository's installation token.
    pub async fn git_token(&self, repo: &str) -> Result<String, GitHubError> {
        self.bearer(&format!("/repos/{repo}")).await
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

    pub async fn set_status(
        &self,
        repo: &str,
        sha: &str,
        state: StatusState,
        description: &str,
        target_url: Option<&str>,
    ) -> Result<(), GitHubError> {
        let mut body = json!({
            "state": state.as_str(),
            "context": "slipway/validation",
            "description": description.chars().take(140).collect::<String>(),
        });
        if let Some(url) = target_url {
            body["target_url"] = json!(url);
        }
        self.expect(
            reqwest::Method::POST,
            &format!("/repos/{repo}/statuses/{sha}"),
            Some(&body),
            &[201],
        )
        .await
        .map(|_| ())
    }

    /// Creates or updates, in place, the one comment that carries `marker`.
    pub async fn upsert_comment(
        &self,
        repo: &str,
        number: i64,
        marker: &str,
        body: &str,
    ) -> Result<(), GitHubError> {
        self.upsert_comment_linked(repo, number, marker, body, None)
            .await
    }

    /// [`upsert_comment`](Self::upsert_comment), cut within GitHub's limit when too long,
    /// ending with a line that links `page` (the full report).
    pub async fn upsert_comment_linked(
        &self,
        repo: &str,
        number: i64,
        marker: &str,
        body: &str,
        page: Option<&str>,
    ) -> Result<(), GitHubError> {
        let text = capped(&format!("{marker}\n{body}"), MAX_COMMENT, page);
        let path = format!("/repos/{repo}/issues/{number}/comments?per_page=100");
        let own = self.own_login().await?;
        // Slipway's own comment: the marker alone could be anyone's decoy.
        let existing = self
            .list(&path)
            .await?
            .iter()
            .find(|c| {
                c["user"]["login"].as_str() == Some(own.as_str())
                    && c["body"].as_str().is_some_and(|b| b.starts_with(marker))
            })
            .and_then(|c| c["id"].as_i64());
        match existing {
            Some(id) => self
                .expect(
                    reqwest::Method::PATCH,
                    &format!("/repos/{repo}/issues/comments/{id}"),
                    Some(&json!({"body": text})),
                    &[200],
                )
                .await
                .map(|_| ()),
            None => self
                .expect(
                    reqwest::Method::POST,
                    &format!("/repos/{repo}/issues/{number}/comments"),
                    Some(&json!({"body": text})),
                    &[201],
                )
                .await
                .map(|_| ()),
        }
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
    /// or member has the same association.
    pub async fn approvals(&self, repo: &str, number: i64) -> Result<usize, GitHubError> {
        let path = format!("/repos/{repo}/pulls/{number}/reviews?per_page=100");
        let mut latest: HashMap<String, (String, String)> = HashMap::new();
        for review in self.list(&path).await? {
            let (Some(user), Some(state)) =
                (review["user"]["login"].as_str(), review["state"].as_str())
            else {
                continue;
            };
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

    /// A completed check run with the step summary and `annotations` (GitHub Apps only):
    /// the first 50 with it, the rest added 50 a request, as GitHub allows.
    #[allow(clippy::too_many_arguments)]
    pub async fn complete_check_run(
        &self,
        repo: &str,
        sha: &str,
        conclusion: &str,
        title: &str,
        summary: &str,
        details_url: Option<&str>,
        annotations: &[crate::Annotation],
    ) -> Result<(), GitHubError> {
        let page = details_url.map(report_page);
        let summary = capped(summary, MAX_CHECK_SUMMARY, page.as_deref());
        let mut batches = annotations.chunks(MAX_ANNOTATIONS).map(|batch| {
            batch
                .iter()
                .map(|a| {
                    json!({"path": a.path, "start_line": a.line, "end_line": a.line,
                           "annotation_level": a.level, "title": a.title, "message": a.message})
                })
                .collect::<Vec<Value>>()
        });
        let mut body = json!({
            "name": "slipway/validation",
            "head_sha": sha,
            "status": "completed",
            "conclusion": conclusion,
            "output": {"title": title, "summary": summary},
        });
        if let Some(first) = batches.next() {
            body["output"]["annotations"] = json!(first);
        }
        if let Some(url) = details_url {
            body["details_url"] = json!(url);
        }
        let created = self
            .expect(
                reqwest::Method::POST,
                &format!("/repos/{repo}/check-runs"),
                Some(&body),
                &[201],
            )
            .await?;
        let id = created["id"].as_u64().unwrap_or_default();
        for batch in batches {
            let more =
                json!({"output": {"title": title, "summary": summary, "annotations": batch}});
            self.expect(
                reqwest::Method::PATCH,
                &format!("/repos/{repo}/check-runs/{id}"),
                Some(&more),
                &[200],
            )
            .await?;
        }
        Ok(())
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

/// GitHub's limit on a check run's `output.summary` (and `text`), in bytes ("exceeds a
/// maximum bytesize of 65535").
const MAX_CHECK_SUMMARY: usize = 65_535;
/// Annotations GitHub takes in one request.
const MAX_ANNOTATIONS: usize = 50;

/// GitHub's limit on a comment's body: 65,536 characters. Kept in bytes, which is never
/// more characters (nor UTF-16 units) than that, however GitHub counts.
const MAX_COMMENT: usize = 65_536;

/// `text`, within `max` bytes: when it is longer, cut at a UTF-8 boundary and ended with a
/// line that links the full report (`page`) or says where it is.
fn capped(text: &str, max: usize, page: Option<&str>) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let tail = match page {
        Some(page) => format!("\n\n… cut at GitHub's size limit: [the full report]({page})\n"),
        None => "\n\n… cut at GitHub's size limit: the full report is on the validation's page in Slipway\n".to_owned(),
    };
    let mut keep = max.saturating_sub(tail.len());
    while !text.is_char_boundary(keep) {
        keep -= 1;
    }
    let mut cut = String::with_capacity(keep + tail.len());
    cut.push_str(&text[..keep]);
    cut.push_str(&tail);
    cut
}

/// The dashboard's page of a validation, from its API link (`…/api/v1/validations/N`).
fn report_page(link: &str) -> String {
    link.replacen("/api/v1/validations/", "/validations/", 1)
}

/// Whether a call may be made again without changing its effect: reads, edits and deletions,
/// and commit statuses (the latest of a context wins). Creations and the merge are not.
fn idempotent(method: &reqwest::Method, path: &str) -> bool {
    use reqwest::Method;
    match *method {
        Method::GET | Method::HEAD | Method::PATCH | Method::DELETE => true,
        Method::POST => path.contains("/statuses/"),
        _ => false,
    }
}

/// `base` doubled per earlier failure, with jitter (so that many callers do not retry at once).
fn jittered(base: Duration, failures: u32) -> Duration {
    let mut bytes = [0u8; 2];
    getrandom::getrandom(&mut bytes).expect("the OS random source is available");
    let random = f64::from(u16::from_le_bytes(bytes)) / 65_536.0;
    slipway_core::backoff::backoff(base, failures, random)
}

/// Whether an error of a forge call is worth trying again later (GitHub could not be reached,
/// failed with a 5xx, or a rate limit still held) rather than a refusal to say.
pub fn is_transient(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| match cause.downcast_ref::<GitHubError>() {
            Some(GitHubError::Transport(_))
            | Some(GitHubError::RateLimited { .. })
            | Some(GitHubError::SecondaryRateLimited { .. }) => true,
            Some(GitHubError::Status { status, .. }) => *status >= 500,
            _ => false,
        })
}

/// Whether a 405 to a merge is GitHub's transient "Base branch was modified. Review and try
/// the merge again."
fn base_was_modified(message: &str) -> bool {
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

/// A rate limit an answer says was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    /// Wait this long (`Retry-After`, or until `X-RateLimit-Reset`), then try again.
    Primary(Duration),
    /// A secondary rate limit without `Retry-After`: GitHub asks for at least a minute.
    Secondary,
}

/// Whether a 403 or 429 is a rate limit, and which: `Retry-After` or a spent
/// `X-RateLimit-Remaining` say so, and so does a 429 without either, or a 403 whose message
/// names a secondary rate limit. Any other 403 is a refusal (a permission, a rule).
fn rate_limit(status: u16, headers: &reqwest::header::HeaderMap, message: &str) -> Option<Limit> {
    if status != 403 && status != 429 {
        return None;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(secs) = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Limit::Primary(Duration::from_secs(secs)));
    }
    if header("x-ratelimit-remaining") == Some("0") {
        if let Some(reset) = header("x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok()) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            return Some(Limit::Primary(Duration::from_secs(
                reset.saturating_sub(now).max(1),
            )));
        }
        return Some(Limit::Secondary);
    }
    let message = message.to_ascii_lowercase();
    if status == 429
        || message.contains("secondary rate limit")
        || message.contains("abuse detection")
    {
        return Some(Limit::Secondary);
    }
    None
}

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
        let approvals = self.client.approvals(&self.repo, number).await?;
        Ok(crate::PullState {
            open: pull.state == "open" && !pull.merged,
            merged: pull.merged,
            draft: pull.draft,
            title: pull.title,
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
mod limits {
    use super::{capped, idempotent, is_transient, next_link, ref_path, GitHubError};
    use std::time::Duration;

    #[test]
    fn a_long_text_is_cut_in_bytes_at_a_char_boundary_with_a_link() {
        // Two-byte characters, then a four-byte one straddling the cut.
        let long = "é".repeat(40_000) + "😀" + &"x".repeat(10);
        let page = "https://slipway.example/validations/7";
        let cut = capped(&long, 65_535, Some(page));
        assert!(cut.len() <= 65_535, "{}", cut.len());
        assert!(cut.len() > 65_400);
        assert!(cut.ends_with(&format!("[the full report]({page})\n")));
        let cut = capped(&long, 65_536, None);
        assert!(cut.len() <= 65_536);
        assert!(cut.trim_end().ends_with("validation's page in Slipway"));
        assert_eq!(capped("short", 65_535, Some(page)), "short");
        let exact = "a".repeat(65_535);
        assert_eq!(capped(&exact, 65_535, None), exact);
    }

    #[test]
    fn secondary_rate_limits_are_told_from_refusals() {
        use super::{rate_limit, Limit};
        use reqwest::header::HeaderMap;
        let none = HeaderMap::new();
        let secondary = "You have exceeded a secondary rate limit. Please wait a few minutes.";
        assert_eq!(rate_limit(403, &none, secondary), Some(Limit::Secondary));
        assert_eq!(rate_limit(429, &none, ""), Some(Limit::Secondary));
        assert_eq!(
            rate_limit(403, &none, "Resource not accessible by integration"),
            None
        );
        assert_eq!(rate_limit(405, &none, secondary), None);
        let mut retry = HeaderMap::new();
        retry.insert("retry-after", "2".parse().unwrap());
        assert_eq!(
            rate_limit(403, &retry, ""),
            Some(Limit::Primary(std::time::Duration::from_secs(2)))
        );
    }

    #[test]
    fn server_errors_timeouts_and_outlasting_limits_are_transient_refusals_are_not() {
        let status = |status| {
            anyhow::Error::from(GitHubError::Status {
                status,
                what: "PUT /repos/a/b/pulls/1/merge".into(),
                message: String::new(),
            })
        };
        assert!(is_transient(&status(502)));
        assert!(is_transient(&status(500)));
        assert!(!is_transient(&status(403)));
        assert!(!is_transient(&status(422)));
        let limited = anyhow::Error::from(GitHubError::SecondaryRateLimited {
            what: "POST".into(),
            attempts: 3,
            waited: Duration::ZERO,
        });
        assert!(is_transient(
            &limited.context("the report could not be posted")
        ));
        assert!(!is_transient(&anyhow::anyhow!("a local git failure")));
        assert!(idempotent(&reqwest::Method::GET, "/repos/a/b/pulls/1"));
        assert!(idempotent(
            &reqwest::Method::POST,
            "/repos/a/b/statuses/abc"
        ));
        assert!(!idempotent(
            &reqwest::Method::POST,
            "/repos/a/b/issues/1/comments"
        ));
        assert!(!idempotent(
            &reqwest::Method::PUT,
            "/repos/a/b/pulls/1/merge"
        ));
    }

    #[test]
    fn branch_names_are_percent_encoded_but_keep_their_slashes() {
        assert_eq!(ref_path("feature/a#b c%"), "feature/a%23b%20c%25");
        assert_eq!(ref_path("release-1.2_x"), "release-1.2_x");
    }

    #[test]
    fn the_next_page_is_read_from_the_link_header() {
        let link = r#"<https://api.github.com/repositories/1/issues/2/comments?page=2>; rel="next", <https://api.github.com/repositories/1/issues/2/comments?page=5>; rel="last""#;
        assert_eq!(
            next_link(link).as_deref(),
            Some("https://api.github.com/repositories/1/issues/2/comments?page=2")
        );
        assert_eq!(next_link(r#"<https://x/?page=1>; rel="prev""#), None);
    }
}
