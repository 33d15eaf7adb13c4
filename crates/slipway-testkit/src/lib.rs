//! Test helpers: [`TestApp`] runs the real server on port 0 with a real SQLite file in a
//! temporary directory (or a PostgreSQL database: see [`database`]), and [`Api`] talks real HTTP to it with one method per endpoint;
//! [`fake_github::FakeGitHub`] and [`fake_codegen::FakeCodegen`] are stateful fakes of
//! GitHub and the Codegen API on localhost.

pub mod database;
pub mod events;
pub mod exchanges;
pub mod fake_codegen;
pub mod fake_gemini;
pub mod fake_github;
pub mod fake_model;
pub mod fake_openai;
pub mod mcp_client;
pub mod openapi;
pub mod receivers;
pub mod relay;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use slipway_engine::{Engine, EngineConfig};
use slipway_server::{App, ServerConfig};
use slipway_store::{MasterKey, Store};
use std::path::Path;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// The token every `TestApp` accepts as admin (`SLIPWAY_ADMIN_TOKEN`).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// The webhook secret of every `TestApp` (`GITHUB_WEBHOOK_SECRET`).
pub const WEBHOOK_SECRET: &str = "test-webhook-secret";

/// A running server and its data directory; shut down when dropped.
pub struct TestApp {
    pub base_url: String,
    pub store: Store,
    pub engine: Engine,
    pub data_dir: TempDir,
    /// An API client with the admin token.
    pub api: Api,
    shutdown: CancellationToken,
}

impl TestApp {
    /// Records a validation as finished with `status` without running it (its job is
    /// cancelled first): lists, pages and charts to look at.
    pub async fn recorded_finished(
        &self,
        new: &slipway_store::NewValidation,
        status: slipway_core::validation::ValidationStatus,
    ) -> slipway_core::ValidationId {
        let created = self.store.create_validation(new).await.unwrap();
        let id = created.validation.id;
        self.engine.cancel(id).await.unwrap();
        // A worker may have leased it already (PostgreSQL wakes workers at once): let that
        // attempt end before the wanted status is written over what it leaves.
        for _ in 0..600 {
            let record = self.store.validation(id).await.unwrap();
            if record.status.is_final() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.store
            .finish_validation(id, status, None)
            .await
            .unwrap();
        id
    }

    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// A TestApp whose engine configuration `tweak` adjusts (e.g. a fake GitHub client).
    pub async fn spawn_with(tweak: impl FnOnce(&mut EngineConfig)) -> Self {
        Self::spawn_pulling(tweak, None).await
    }

    /// A TestApp whose workers wait for [`TestApp::release_workers`]: what is queued stays
    /// queued until the test says (the API and the stores as usual meanwhile).
    pub async fn spawn_held() -> Self {
        Self::build(|_| {}, None, false, WEBHOOK_SECRET).await
    }

    /// Starts the workers of a [`TestApp::spawn_held`] app (once).
    pub fn release_workers(&self) {
        self.engine.spawn_workers(self.shutdown.clone());
    }

    /// A TestApp that also pulls deliveries from a webhook relay, when `relay` is given.
    pub async fn spawn_pulling(
        tweak: impl FnOnce(&mut EngineConfig),
        relay: Option<slipway_server::relay::RelayConfig>,
    ) -> Self {
        Self::build(tweak, relay, true, WEBHOOK_SECRET).await
    }

    /// As [`Self::spawn_pulling`], checking webhook signatures with `webhook_secret`.
    pub async fn spawn_pulling_with_secret(
        tweak: impl FnOnce(&mut EngineConfig),
        relay: Option<slipway_server::relay::RelayConfig>,
        webhook_secret: &str,
    ) -> Self {
        Self::build(tweak, relay, true, webhook_secret).await
    }

    async fn build(
        tweak: impl FnOnce(&mut EngineConfig),
        relay: Option<slipway_server::relay::RelayConfig>,
        workers: bool,
        webhook_secret: &str,
    ) -> Self {
        let data_dir = tempfile::tempdir().expect("a temporary directory");
        let key = MasterKey::load_or_create(&data_dir.path().join("master.key")).unwrap();
        let url = database::url(data_dir.path()).await;
        let store = Store::open(&url, &key).await.expect("the store opens");
        let mut config = EngineConfig::new(data_dir.path().to_owned());
        tweak(&mut config);
        let engine = Engine::new(store.clone(), config);
        engine.reconcile().await.expect("reconciliation");
        let app = App::build(ServerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            store: store.clone(),
            engine: engine.clone(),
            admin_token: Some(ADMIN_TOKEN.to_owned()),
            webhook_secret: Some(webhook_secret.to_owned()),
            metrics_token: None,
            relay,
        })
        .await
        .expect("the app binds");
        let base_url = format!("http://{}", app.local_addr());
        let shutdown = CancellationToken::new();
        if workers {
            engine.spawn_workers(shutdown.clone());
        }
        tokio::spawn(app.run(shutdown.clone()));
        Self {
            api: Api::new(&base_url, Some(ADMIN_TOKEN)),
            base_url,
            store,
            engine,
            data_dir,
            shutdown,
        }
    }

    /// A WebSocket client of `GET /ws` authenticated with the admin token.
    pub async fn events(&self) -> events::EventStream {
        events::EventStream::connect(&self.base_url, Some(ADMIN_TOKEN), &[])
            .await
            .expect("the event stream opens")
    }

    /// A client that sends `token` (or none).
    pub fn api_with(&self, token: Option<&str>) -> Api {
        Api::new(&self.base_url, token)
    }

    /// A client holding a new token of this role.
    pub async fn api_as(&self, role: &str) -> Api {
        let created = self.api.create_token("test", role).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        self.api_with(created.body["token"].as_str())
    }

    /// A project on a GitHub-style repo name, created by the admin.
    pub async fn project(&self, name: &str) -> i64 {
        let reply = self
            .api
            .create_project(&json!({"name": name, "repo": "acme/app"}))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.body["id"].as_i64().unwrap()
    }
}

impl TestApp {
    /// The `action`s of the project's `pr_notification` events with their URLs, once there
    /// are at least `count` of them (or after 5 s).
    pub async fn pr_notifications(&self, project: i64, count: usize) -> Vec<(String, String)> {
        let mut found = Vec::new();
        for _ in 0..100 {
            let events = self
                .store
                .events_after(slipway_core::ProjectId(project), 0, 1_000)
                .await
                .expect("events are readable");
            found = events
                .iter()
                .filter(|e| e.kind == slipway_store::EventKind::PrNotification)
                .map(|e| {
                    let field = |k: &str| e.payload[k].as_str().unwrap_or("").to_owned();
                    (field("action"), field("pr_url"))
                })
                .collect();
            if found.len() >= count {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        found
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// An HTTP response: status, headers, text and the JSON body (`Null` when not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Reply {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

/// A client for the API, one method per endpoint.
#[derive(Clone)]
pub struct Api {
    base_url: String,
    token: Option<String>,
    client: reqwest::Client,
}

/// A request body.
pub enum Body<'a> {
    None,
    Json(&'a Value),
    Text(&'a str),
    Raw(&'static str, Vec<u8>),
}

impl Api {
    pub fn new(base_url: &str, token: Option<&str>) -> Self {
        Self {
            base_url: base_url.to_owned(),
            token: token.map(str::to_owned),
            client: reqwest::Client::new(),
        }
    }

    /// Any request; the endpoint methods below are shorthands.
    pub async fn send(&self, method: Method, path: &str, body: Body<'_>) -> Reply {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base_url));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(value),
            Body::Text(text) => request
                .header("content-type", "text/plain")
                .body(text.to_owned()),
            Body::Raw(content_type, bytes) => {
                request.header("content-type", content_type).body(bytes)
            }
        };
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a readable body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            body,
        }
    }

    pub async fn health(&self) -> Reply {
        self.send(Method::GET, "/health", Body::None).await
    }
    pub async fn ready(&self) -> Reply {
        self.send(Method::GET, "/ready", Body::None).await
    }
    pub async fn metrics(&self) -> Reply {
        self.send(Method::GET, "/metrics", Body::None).await
    }
    pub async fn openapi(&self) -> Reply {
        self.send(Method::GET, "/api/v1/openapi.json", Body::None)
            .await
    }
    pub async fn list_projects(&self) -> Reply {
        self.send(Method::GET, "/api/v1/projects", Body::None).await
    }
    pub async fn create_project(&self, draft: &Value) -> Reply {
        self.send(Method::POST, "/api/v1/projects", Body::Json(draft))
            .await
    }
    pub async fn project(&self, id: i64) -> Reply {
        self.send(Method::GET, &format!("/api/v1/projects/{id}"), Body::None)
            .await
    }
    pub async fn update_project(&self, id: i64, patch: &Value) -> Reply {
        self.send(
            Method::PATCH,
            &format!("/api/v1/projects/{id}"),
            Body::Json(patch),
        )
        .await
    }
    pub async fn delete_project(&self, id: i64) -> Reply {
        self.send(
            Method::DELETE,
            &format!("/api/v1/projects/{id}"),
            Body::None,
        )
        .await
    }
    pub async fn settings(&self, id: i64) -> Reply {
        self.send(
            Method::GET,
            &format!("/api/v1/projects/{id}/settings"),
            Body::None,
        )
        .await
    }
    pub async fn put_settings(&self, id: i64, settings: &Value) -> Reply {
        self.send(
            Method::PUT,
            &format!("/api/v1/projects/{id}/settings"),
            Body::Json(settings),
        )
        .await
    }
    pub async fn secrets(&self, id: i64) -> Reply {
        self.send(
            Method::GET,
            &format!("/api/v1/projects/{id}/secrets"),
            Body::None,
        )
        .await
    }
    pub async fn put_secret(&self, id: i64, name: &str, value: &str) -> Reply {
        self.send(
            Method::PUT,
            &format!("/api/v1/projects/{id}/secrets/{name}"),
            Body::Json(&json!({ "value": value })),
        )
        .await
    }
    pub async fn delete_secret(&self, id: i64, name: &str) -> Reply {
        self.send(
            Method::DELETE,
            &format!("/api/v1/projects/{id}/secrets/{name}"),
            Body::None,
        )
        .await
    }
    pub async fn import_secrets(&self, id: i64, dotenv: &str) -> Reply {
        self.send(
            Method::POST,
            &format!("/api/v1/projects/{id}/secrets/import"),
            Body::Text(dotenv),
        )
        .await
    }
    pub async fn variables(&self, id: i64) -> Reply {
        let path = format!("/api/v1/projects/{id}/variables");
        self.send(Method::GET, &path, Body::None).await
    }
    pub async fn put_variable(&self, id: i64, name: &str, value: &str) -> Reply {
        let path = format!("/api/v1/projects/{id}/variables/{name}");
        let body = json!({ "value": value });
        self.send(Method::PUT, &path, Body::Json(&body)).await
    }
    pub async fn delete_variable(&self, id: i64, name: &str) -> Reply {
        let path = format!("/api/v1/projects/{id}/variables/{name}");
        self.send(Method::DELETE, &path, Body::None).await
    }
    pub async fn import_variables(&self, id: i64, dotenv: &str) -> Reply {
        let path = format!("/api/v1/projects/{id}/variables/import");
        self.send(Method::POST, &path, Body::Text(dotenv)).await
    }
    pub async fn start_validation(&self, project: i64, request: &Value) -> Reply {
        self.send(
            Method::POST,
            &format!("/api/v1/projects/{project}/validations"),
            Body::Json(request),
        )
        .await
    }
    pub async fn open_pull(&self, project: i64, request: &Value) -> Reply {
        self.send(
            Method::POST,
            &format!("/api/v1/projects/{project}/pulls"),
            Body::Json(request),
        )
        .await
    }
    pub async fn pulls(&self, project: i64) -> Reply {
        self.send(
            Method::GET,
            &format!("/api/v1/projects/{project}/pulls"),
            Body::None,
        )
        .await
    }
    pub async fn validations(&self, project: i64) -> Reply {
        self.send(
            Method::GET,
            &format!("/api/v1/projects/{project}/validations"),
            Body::None,
        )
        .await
    }
    pub async fn validation(&self, id: i64) -> Reply {
        self.send(
            Method::GET,
            &format!("/api/v1/validations/{id}"),
            Body::None,
        )
        .await
    }
    /// `query` is the part after `?` (may be empty).
    pub async fn validation_logs(&self, id: i64, query: &str) -> Reply {
        self.send(
            Method::GET,
            &format!("/api/v1/validations/{id}/logs?{query}"),
            Body::None,
        )
        .await
    }
    pub async fn retry_validation(&self, id: i64) -> Reply {
        self.send(
            Method::POST,
            &format!("/api/v1/validations/{id}/retry"),
            Body::None,
        )
        .await
    }
    pub async fn cancel_validation(&self, id: i64) -> Reply {
        self.send(
            Method::POST,
            &format!("/api/v1/validations/{id}/cancel"),
            Body::None,
        )
        .await
    }
    /// Posts a delivery as GitHub does; `signature` `None` signs it with [`WEBHOOK_SECRET`].
    pub async fn send_webhook(
        &self,
        event: &str,
        delivery: &str,
        body: &[u8],
        signature: Option<&str>,
    ) -> Reply {
        self.send_webhook_as("application/json", event, delivery, body, signature)
            .await
    }

    /// A delivery as GitHub sends it with its default content type: a form whose `payload`
    /// field is the JSON, signed over the form.
    pub async fn send_form_webhook(&self, event: &str, delivery: &str, json: &[u8]) -> Reply {
        let form = format!(
            "payload={}",
            percent_encode(std::str::from_utf8(json).expect("UTF-8 JSON"))
        );
        let content_type = "application/x-www-form-urlencoded";
        self.send_webhook_as(content_type, event, delivery, form.as_bytes(), None)
            .await
    }

    async fn send_webhook_as(
        &self,
        content_type: &str,
        event: &str,
        delivery: &str,
        body: &[u8],
        signature: Option<&str>,
    ) -> Reply {
        let signature = signature
            .map(str::to_owned)
            .unwrap_or_else(|| slipway_forge::webhook::sign(WEBHOOK_SECRET.as_bytes(), body));
        let response = self
            .client
            .post(format!("{}/webhooks/github", self.base_url))
            .header("content-type", content_type)
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", signature)
            .body(body.to_vec())
            .send()
            .await
            .expect("the server answers");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a readable body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            body,
        }
    }

    /// Polls until the validation is finished (or 30 s pass).
    /// Starts a validation (`{"branch": …}`, `{"sha": …}` or `{"pr": …}`) and waits for its end.
    pub async fn validated(&self, project: i64, request: &Value) -> Value {
        let started = self.start_validation(project, request).await;
        assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
        self.finished_validation(started.body["id"].as_i64().unwrap())
            .await
    }

    pub async fn finished_validation(&self, id: i64) -> Value {
        for _ in 0..600 {
            let reply = self.validation(id).await;
            let status = reply.body["status"].as_str().unwrap_or("");
            if !matches!(status, "queued" | "running") {
                return reply.body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("validation {id} did not finish");
    }
    pub async fn start_run(&self, project: i64, request: &Value) -> Reply {
        self.send(
            Method::POST,
            &format!("/api/v1/projects/{project}/runs"),
            Body::Json(request),
        )
        .await
    }
    pub async fn runs(&self, project: i64) -> Reply {
        self.send(
            Method::GET,
            &format!("/api/v1/projects/{project}/runs"),
            Body::None,
        )
        .await
    }
    pub async fn run(&self, id: i64) -> Reply {
        self.send(Method::GET, &format!("/api/v1/runs/{id}"), Body::None)
            .await
    }
    /// `continue`, `confirm`, `modify` or `cancel`, with a `{"text"}` body when given.
    pub async fn run_action(&self, id: i64, action: &str, text: Option<&str>) -> Reply {
        let body = text.map(|t| json!({"text": t}));
        let body = match &body {
            Some(body) => Body::Json(body),
            None => Body::None,
        };
        self.send(Method::POST, &format!("/api/v1/runs/{id}/{action}"), body)
            .await
    }

    /// Polls until the run's status is one of `statuses` (or 60 s pass).
    pub async fn run_reaching(&self, id: i64, statuses: &[&str]) -> Value {
        let mut last = Value::Null;
        for _ in 0..1200 {
            let reply = self.run(id).await;
            if statuses.contains(&reply.body["status"].as_str().unwrap_or("")) {
                return reply.body;
            }
            last = reply.body;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("run {id} never reached {statuses:?}; last: {last}");
    }

    pub async fn tokens(&self) -> Reply {
        self.send(Method::GET, "/api/v1/tokens", Body::None).await
    }
    pub async fn create_token(&self, name: &str, role: &str) -> Reply {
        self.send(
            Method::POST,
            "/api/v1/tokens",
            Body::Json(&json!({"name": name, "role": role})),
        )
        .await
    }
    pub async fn revoke_token(&self, id: i64) -> Reply {
        self.send(Method::DELETE, &format!("/api/v1/tokens/{id}"), Body::None)
            .await
    }
}

/// Makes a real git repository with one commit at `dir`.
pub fn git_repository(dir: &Path) {
    fixture_repo(dir, &[("README.md", "hello\n")]);
}

/// Runs git in `dir` as a test author; panics when it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Makes a git repository on branch `main` at `dir` with these files in one commit;
/// returns the commit id.
pub fn fixture_repo(dir: &Path, files: &[(&str, &str)]) -> String {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    commit_files(dir, files, "fixture")
}

/// Writes files and commits them; returns the new commit id.
pub fn commit_files(dir: &Path, files: &[(&str, &str)], message: &str) -> String {
    for (path, content) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

/// A forge's repository for pull-request tests, under `dir`: a bare `origin.git` whose `main`
/// has a `.slipway.toml` running `test` and an `a.txt`, and whose `feature` branch adds
/// `files`; plus `work`, a developer's clone that pushes to it. Returns `(work, origin)`.
pub fn forge_fixture(
    dir: &Path,
    test: &str,
    files: &[(&str, &str)],
) -> (std::path::PathBuf, std::path::PathBuf) {
    let work = dir.join("work");
    fixture_repo(
        &work,
        &[
            (".slipway.toml", &format!("[test]\ncommands = [{test:?}]\n")),
            ("a.txt", "base\n"),
        ],
    );
    git(&work, &["checkout", "-q", "-b", "feature"]);
    commit_files(&work, files, "feature work");
    git(&work, &["checkout", "-q", "main"]);
    let origin = dir.join("origin.git");
    let origin_text = origin.to_str().expect("a UTF-8 path");
    git(&work, &["clone", "-q", "--bare", ".", origin_text]);
    git(&work, &["remote", "add", "origin", origin_text]);
    (work, origin)
}

/// A tiny web app on Python's standard library: `/health` answers 200, `/` says hello.
pub const PYTHON_APP: &str = r#"import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok" if self.path == "/health" else b"hello from the app"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        print("request", self.path, flush=True)
print("listening on", os.environ["PORT"], flush=True)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

/// A test command that asks the running app for its home page.
pub const PYTHON_APP_TEST: &str = "python3 -c \"import os, urllib.request; body = urllib.request.urlopen(os.environ['SLIPWAY_SERVICE_URL'] + '/').read(); assert b'hello' in body, body; print('test passed')\"";

/// How many processes have `marker` in their command line (to prove none were left behind).
pub fn processes_with(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .expect("/proc is readable")
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(marker))
                .unwrap_or(false)
        })
        .count()
}

/// A GitHub webhook fixture from `tests-data/fixtures/github-webhooks` (e.g. `pull_request/opened.payload.json`).
pub fn webhook_fixture(path: &str) -> Value {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests-data/fixtures/github-webhooks")
        .join(path);
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e} (tests-data/ of this repository)", file.display()));
    serde_json::from_str(&text).expect("fixtures are JSON")
}

/// An RSA key pair (private, public) in PEM, made with openssl (for GitHub App tests).
pub fn rsa_key_pair(dir: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
    let (private, public) = (dir.join("app.pem"), dir.join("app.pub.pem"));
    let run = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    };
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        private.to_str().unwrap(),
    ]);
    run(&[
        "rsa",
        "-in",
        private.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    (
        std::fs::read(private).unwrap(),
        std::fs::read(public).unwrap(),
    )
}

/// `application/x-www-form-urlencoded` encoding of a value, as browsers and GitHub do it.
fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
