//! The client: authentication (a token, or a GitHub App's JWT exchanged for cached
//! installation tokens), requests, pages, ETags, and rate limits waited out within bounds.

use super::retry::{idempotent, jittered, rate_limit, Limit};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// How the client authenticates.
pub(super) enum Credentials {
    Token(String),
    App(App),
}

/// A GitHub App: its id, its key, and installation tokens by repository.
pub(super) struct App {
    pub(super) id: String,
    pub(super) key: jsonwebtoken::EncodingKey,
    pub(super) tokens: tokio::sync::Mutex<HashMap<String, (String, SystemTime)>>,
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
    pub(super) http: reqwest::Client,
    pub(super) api: String,
    pub(super) credentials: Credentials,
    /// ETag, body and next page of GET responses, for conditional requests.
    pub(super) etags: Mutex<HashMap<String, Cached>>,
    /// The login Slipway's own comments are written by, once known.
    pub(super) own_login: Mutex<Option<String>>,
    /// Whether a user may write to a repository, keyed by (repository, login), as GitHub
    /// answered at the instant kept: answers are reused for [`PERMISSION_TTL`].
    pub(super) permissions: Mutex<HashMap<(String, String), (bool, Instant)>>,
    pub(super) waits: Waits,
}

/// How long an answer about a user's permission is reused (reviews are counted at each
/// verdict; a minute keeps a busy repository from asking for every reviewer every time).
pub(super) const PERMISSION_TTL: Duration = Duration::from_secs(60);

/// A GET answer kept for conditional requests: its ETag, body and next page.
type Cached = (String, Value, Option<String>);

/// One answer: its status, its JSON and, for a list, the next page's URL.
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) value: Value,
    pub(super) next: Option<String>,
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
pub(super) const MAX_PAGES: usize = 30;

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GitHub({})", self.api)
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
    pub(super) fn app_jwt(app: &App) -> Result<String, GitHubError> {
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
    pub(super) async fn bearer(&self, path: &str) -> Result<String, GitHubError> {
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

    /// The token git presents for `repo` (basic auth, `x-access-token` as user): the token,
    /// or as an App the repository's installation token.
    pub async fn git_token(&self, repo: &str) -> Result<String, GitHubError> {
        self.bearer(&format!("/repos/{repo}")).await
    }

    /// A request with the app's JWT, expecting `expect`.
    pub(super) async fn raw(
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
    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), GitHubError> {
        let reply = self.request(method, path, body).await?;
        Ok((reply.status, reply.value))
    }

    pub(super) async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, GitHubError> {
        let bearer = self.bearer(path).await?;
        self.send(method, &format!("{}{path}", self.api), &bearer, body)
            .await
    }

    pub(super) async fn send(
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
    pub(super) async fn list(&self, path: &str) -> Result<Vec<Value>, GitHubError> {
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
    pub(super) async fn own_login(&self) -> Result<String, GitHubError> {
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

    pub(super) async fn expect(
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
}

#[cfg(test)]
mod tests {
    use super::next_link;

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
