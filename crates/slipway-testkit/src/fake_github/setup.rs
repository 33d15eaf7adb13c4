//! The fake GitHub's set-up endpoints: repository webhooks (list, create, get, update,
//! delete, deliveries, with GitHub's answers: 422 for a second hook to the same URL, 404 for
//! a token without `admin:repo_hook`), the deliveries a hook makes (signed with its secret,
//! answered by whatever listens at its URL), and an App's installations and their
//! repositories (paged).

use super::{app_jwt_is_valid, error, page, refusal, FakeGitHub, Shared, World};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;

/// A repository webhook as the fake keeps it.
#[derive(Debug, Clone)]
pub struct FakeHook {
    pub id: i64,
    pub repo: String,
    pub url: String,
    pub secret: Option<String>,
    pub content_type: String,
    pub events: Vec<String>,
    pub active: bool,
    /// The last delivery's answer: code, status (`unused` before any), message.
    last_response: (Option<i64>, String, Option<String>),
    deliveries: Vec<Value>,
}

#[derive(Default)]
pub(super) struct Setup {
    hooks: Vec<FakeHook>,
    next_id: i64,
    /// Hooks are refused as to a token without `admin:repo_hook`.
    denied: bool,
}

const CREATED_AT: &str = "2026-12-01T00:00:00Z";

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/repos/{owner}/{name}/hooks",
            get(list_hooks).post(create_hook),
        )
        .route(
            "/repos/{owner}/{name}/hooks/{hook_id}",
            get(show_hook).patch(update_hook).delete(delete_hook),
        )
        .route(
            "/repos/{owner}/{name}/hooks/{hook_id}/deliveries",
            get(hook_deliveries),
        )
        .route("/app/installations", get(installations))
        .route("/installation/repositories", get(installation_repositories))
}

impl FakeHook {
    fn json(&self, api: &str) -> Value {
        let url = format!("{api}/repos/{}/hooks/{}", self.repo, self.id);
        let mut config = json!({"url": self.url, "content_type": self.content_type,
                                "insecure_ssl": "0"});
        if self.secret.is_some() {
            config["secret"] = json!("********");
        }
        json!({
            "type": "Repository", "id": self.id, "name": "web", "active": self.active,
            "events": self.events, "config": config,
            "created_at": CREATED_AT, "updated_at": CREATED_AT,
            "url": url, "test_url": format!("{url}/test"), "ping_url": format!("{url}/pings"),
            "deliveries_url": format!("{url}/deliveries"),
            "last_response": {"code": self.last_response.0, "status": self.last_response.1,
                              "message": self.last_response.2},
        })
    }
}

impl FakeGitHub {
    /// The repository's webhooks.
    pub fn hooks(&self, full_name: &str) -> Vec<FakeHook> {
        let world = self.world.lock().unwrap();
        world
            .setup
            .hooks
            .iter()
            .filter(|h| h.repo == full_name)
            .cloned()
            .collect()
    }

    /// Hooks are refused from now on, as to a token without the `admin:repo_hook` scope.
    pub fn deny_hooks(&self) {
        self.world.lock().unwrap().setup.denied = true;
    }

    /// Someone deletes hook `id` on GitHub.
    pub fn remove_hook(&self, id: i64) {
        self.world
            .lock()
            .unwrap()
            .setup
            .hooks
            .retain(|h| h.id != id);
    }

    /// GitHub delivers `event` to every active hook of the repository that wants it,
    /// signed with the hook's secret; returns the status codes of the answers.
    pub async fn deliver(&self, full_name: &str, event: &str, payload: &Value) -> Vec<u16> {
        let hooks: Vec<FakeHook> = self
            .hooks(full_name)
            .into_iter()
            .filter(|h| h.active && h.events.iter().any(|e| e == event || e == "*"))
            .collect();
        let mut codes = Vec::new();
        for hook in hooks {
            codes.push(deliver_to(&self.world, &hook, event, payload).await);
        }
        codes
    }
}

/// One delivery to `hook`, recorded as GitHub records it.
async fn deliver_to(world: &Shared, hook: &FakeHook, event: &str, payload: &Value) -> u16 {
    let body = serde_json::to_vec(payload).unwrap();
    let guid = format!("fake-{}-{}", hook.id, hook.deliveries.len() + 1);
    let mut request = reqwest::Client::new()
        .post(&hook.url)
        .timeout(std::time::Duration::from_secs(5))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", &guid)
        .header("x-github-hook-id", hook.id.to_string());
    if let Some(secret) = &hook.secret {
        request = request.header(
            "x-hub-signature-256",
            slipway_forge::webhook::sign(secret.as_bytes(), &body),
        );
    }
    let (code, status) = match request.body(body).send().await {
        Ok(response) => (
            Some(response.status().as_u16()),
            if response.status().is_success() {
                "OK".to_owned()
            } else {
                format!("Invalid HTTP Response: {}", response.status().as_u16())
            },
        ),
        Err(_) => (None, "failed to connect to host".to_owned()),
    };
    let mut w = world.lock().unwrap();
    if let Some(kept) = w.setup.hooks.iter_mut().find(|h| h.id == hook.id) {
        kept.last_response = (
            code.map(i64::from),
            if code.is_some_and(|c| (200..300).contains(&c)) {
                "active".into()
            } else {
                "failed".into()
            },
            Some(status.clone()),
        );
        let id = 9_000 + kept.deliveries.len() as i64;
        kept.deliveries.insert(
            0,
            json!({"id": id, "guid": guid, "delivered_at": "2026-12-06T00:00:00Z",
                   "redelivery": false, "duration": 0.01, "status": status,
                   "status_code": code.unwrap_or(0), "event": event,
                   "action": payload.get("action").cloned().unwrap_or(Value::Null),
                   "installation_id": null, "repository_id": 1}),
        );
    }
    code.unwrap_or(0)
}

/// The checks every hook call gets: credentials, the scope, the repository.
fn admitted(w: &mut World, headers: &HeaderMap, repo: &str) -> Option<Response> {
    if let Some(r) = refusal(w, headers) {
        return Some(r);
    }
    if w.setup.denied || !w.repos.contains_key(repo) {
        return Some(error(StatusCode::NOT_FOUND, "Not Found"));
    }
    None
}

async fn list_hooks(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let repo = format!("{owner}/{name}");
    let mut w = world.lock().unwrap();
    if let Some(r) = admitted(&mut w, &headers, &repo) {
        return r;
    }
    let items: Vec<Value> = w
        .setup
        .hooks
        .iter()
        .filter(|h| h.repo == repo)
        .map(|h| h.json(&w.api_url))
        .collect();
    let (chunk, link) = page(&w, &format!("/repos/{repo}/hooks"), &query, items);
    let mut response = Json(chunk).into_response();
    if let Some(link) = link {
        response.headers_mut().insert("link", link.parse().unwrap());
    }
    response
}

fn validation_failed(message: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({"message": "Validation Failed",
                    "errors": [{"resource": "Hook", "code": "custom", "message": message}],
                    "documentation_url": "https://docs.github.com/rest/repos/webhooks#create-a-repository-webhook"})),
    )
        .into_response()
}

fn events_of(body: &Value) -> Option<Vec<String>> {
    body.get("events").map(|e| {
        e.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str().map(str::to_owned))
            .collect()
    })
}

async fn create_hook(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let repo = format!("{owner}/{name}");
    let hook = {
        let mut w = world.lock().unwrap();
        if let Some(r) = admitted(&mut w, &headers, &repo) {
            return r;
        }
        let Some(url) = body["config"]["url"].as_str() else {
            return validation_failed("Config must contain URL for webhooks");
        };
        let events = events_of(&body).unwrap_or_else(|| vec!["push".into()]);
        if w.setup.hooks.iter().any(|h| h.repo == repo && h.url == url) {
            return validation_failed("Hook already exists on this repository");
        }
        w.setup.next_id += 1;
        let hook = FakeHook {
            id: w.setup.next_id,
            repo: repo.clone(),
            url: url.to_owned(),
            secret: body["config"]["secret"].as_str().map(str::to_owned),
            content_type: body["config"]["content_type"]
                .as_str()
                .unwrap_or("form")
                .to_owned(),
            events,
            active: body["active"].as_bool().unwrap_or(true),
            last_response: (None, "unused".into(), None),
            deliveries: Vec::new(),
        };
        w.setup.hooks.push(hook.clone());
        hook
    };
    // GitHub pings a new hook, after answering.
    let (pinged, ping) = (world.clone(), hook.clone());
    tokio::spawn(async move {
        let payload = json!({"zen": "Keep it logically awesome.", "hook_id": ping.id,
                             "repository": {"full_name": ping.repo}});
        deliver_to(&pinged, &ping, "ping", &payload).await;
    });
    let api = world.lock().unwrap().api_url.clone();
    (StatusCode::CREATED, Json(hook.json(&api))).into_response()
}

async fn show_hook(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name, id)): Path<(String, String, i64)>,
) -> Response {
    let repo = format!("{owner}/{name}");
    let mut w = world.lock().unwrap();
    if let Some(r) = admitted(&mut w, &headers, &repo) {
        return r;
    }
    match w.setup.hooks.iter().find(|h| h.id == id && h.repo == repo) {
        Some(hook) => Json(hook.json(&w.api_url)).into_response(),
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn update_hook(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name, id)): Path<(String, String, i64)>,
    Json(body): Json<Value>,
) -> Response {
    let repo = format!("{owner}/{name}");
    let mut w = world.lock().unwrap();
    if let Some(r) = admitted(&mut w, &headers, &repo) {
        return r;
    }
    let api = w.api_url.clone();
    let Some(hook) = w
        .setup
        .hooks
        .iter_mut()
        .find(|h| h.id == id && h.repo == repo)
    else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    if let Some(config) = body.get("config") {
        let Some(url) = config["url"].as_str() else {
            return validation_failed("Config must contain URL for webhooks");
        };
        hook.url = url.to_owned();
        hook.secret = config["secret"].as_str().map(str::to_owned);
        if let Some(kind) = config["content_type"].as_str() {
            hook.content_type = kind.to_owned();
        }
    }
    if let Some(events) = events_of(&body) {
        hook.events = events;
    }
    if let Some(active) = body["active"].as_bool() {
        hook.active = active;
    }
    Json(hook.json(&api)).into_response()
}

async fn delete_hook(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name, id)): Path<(String, String, i64)>,
) -> Response {
    let repo = format!("{owner}/{name}");
    let mut w = world.lock().unwrap();
    if let Some(r) = admitted(&mut w, &headers, &repo) {
        return r;
    }
    let before = w.setup.hooks.len();
    w.setup.hooks.retain(|h| !(h.id == id && h.repo == repo));
    if w.setup.hooks.len() == before {
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn hook_deliveries(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, name, id)): Path<(String, String, i64)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let repo = format!("{owner}/{name}");
    let mut w = world.lock().unwrap();
    if let Some(r) = admitted(&mut w, &headers, &repo) {
        return r;
    }
    let Some(hook) = w.setup.hooks.iter().find(|h| h.id == id && h.repo == repo) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let per_page = query
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let items: Vec<Value> = hook.deliveries.iter().take(per_page).cloned().collect();
    Json(Value::Array(items)).into_response()
}

/// `GET /app/installations` (the App's JWT): the one installation, on every repository.
async fn installations(State(world): State<Shared>, headers: HeaderMap) -> Response {
    let w = world.lock().unwrap();
    if !app_jwt_is_valid(&w, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "A JSON web token could not be decoded",
        );
    }
    Json(json!([{
        "id": 42, "account": {"login": "acme", "id": 7, "type": "Organization"},
        "repository_selection": "selected", "app_id": 1, "app_slug": super::APP_SLUG,
        "target_id": 7, "target_type": "Organization",
        "access_tokens_url": format!("{}/app/installations/42/access_tokens", w.api_url),
        "repositories_url": format!("{}/installation/repositories", w.api_url),
        "html_url": "https://github.com/organizations/acme/settings/installations/42",
        "events": ["pull_request"], "permissions": {}, "created_at": CREATED_AT,
        "updated_at": CREATED_AT, "single_file_name": null,
    }]))
    .into_response()
}

/// `GET /installation/repositories` (an installation token), paged.
async fn installation_repositories(
    State(world): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut w = world.lock().unwrap();
    if let Some(r) = refusal(&mut w, &headers) {
        return r;
    }
    let mut names: Vec<&String> = w.repos.keys().collect();
    names.sort();
    let total = names.len();
    let items: Vec<Value> = names
        .into_iter()
        .map(|n| json!({"full_name": n, "name": n.split('/').nth(1), "private": true}))
        .collect();
    let (chunk, link) = page(&w, "/installation/repositories", &query, items);
    let mut response = Json(json!({
        "total_count": total, "repositories": chunk, "repository_selection": "selected",
    }))
    .into_response();
    if let Some(link) = link {
        response.headers_mut().insert("link", link.parse().unwrap());
    }
    response
}
