//! Setting GitHub up for a project, against the fake GitHub over real HTTP: the repository's
//! webhook (created with the project, repaired, removed with it; its per-project secret
//! verifies deliveries), the repositories the credentials reach (page by page), and an
//! operator's replay of a stored delivery.

use reqwest::redirect::Policy;
use reqwest::Method;
use serde_json::{json, Value};
use slipway_forge::github::{GitHub, WantedHook};
use slipway_testkit::fake_github::FakeGitHub;
use slipway_testkit::{fixture_repo, webhook_fixture, Body, TestApp, ADMIN_TOKEN};
use std::sync::Arc;
use std::time::Duration;

const REPO: &str = "acme/app";
const TOKEN: &str = "ghp_token";
/// Nothing listens there: GitHub's ping of a new hook fails to connect, as it would.
const PUBLIC_URL: &str = "http://127.0.0.1:9";
const HOOK_URL: &str = "http://127.0.0.1:9/webhooks/github";

struct World {
    app: TestApp,
    github: Arc<FakeGitHub>,
}

async fn world() -> World {
    let github = Arc::new(FakeGitHub::start(TOKEN).await);
    let client = Arc::new(GitHub::new(&github.url, TOKEN));
    let app = TestApp::spawn_with(move |config| {
        config.github = Some(client);
        config.github_poll_every = Duration::from_secs(3600);
        config.public_url = Some(PUBLIC_URL.into());
    })
    .await;
    let repo = app.data_dir.path().join("origin");
    fixture_repo(&repo, &[("a.txt", "a")]);
    github.add_repo(REPO, &repo);
    World { app, github }
}

impl World {
    async fn project(&self) -> i64 {
        let reply = self
            .app
            .api
            .create_project(&json!({"name": "app", "repo": REPO}))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        reply.body["id"].as_i64().unwrap()
    }

    async fn webhook(&self, project: i64) -> Value {
        let reply = self
            .app
            .api
            .send(
                Method::GET,
                &format!("/api/v1/projects/{project}/webhook"),
                Body::None,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.body
    }
}

#[tokio::test]
async fn a_github_project_gets_its_webhook_and_loses_it_with_the_project() {
    let w = world().await;
    let project = w.project().await;
    let hooks = w.github.hooks(REPO);
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let hook = &hooks[0];
    assert_eq!(hook.url, HOOK_URL);
    assert_eq!(hook.content_type, "json");
    assert!(hook.active);
    for event in [
        "pull_request",
        "pull_request_review",
        "issue_comment",
        "check_run",
        "check_suite",
    ] {
        assert!(hook.events.iter().any(|e| e == event), "{event}: {hook:?}");
    }
    let secret = hook.secret.clone().expect("a secret");
    assert_eq!(secret.len(), 64);
    // Kept as the project's secret, sealed and masked like every other.
    let secrets = w.app.api.secrets(project).await;
    assert!(
        secrets.text.contains("GITHUB_WEBHOOK_SECRET") && !secrets.text.contains(&secret),
        "{}",
        secrets.text
    );
    let state = w.webhook(project).await;
    assert_eq!(state["state"], "installed", "{state}");
    assert_eq!(state["url"], HOOK_URL);
    assert_eq!(state["events_missing"], json!([]));

    assert_eq!(w.app.api.delete_project(project).await.status, 204);
    assert!(w.github.hooks(REPO).is_empty(), "removed with the project");
}

#[tokio::test]
async fn an_existing_hook_of_slipways_is_updated_not_doubled() {
    let w = world().await;
    let client = GitHub::new(&w.github.url, TOKEN);
    let old = WantedHook {
        url: HOOK_URL,
        secret: "an old secret",
        events: &["push"],
    };
    client.create_hook(REPO, old).await.unwrap();
    // A second hook to the same URL is refused by GitHub.
    assert!(client.create_hook(REPO, old).await.is_err());
    let other = WantedHook {
        url: "https://ci.example/hook",
        ..old
    };
    client.create_hook(REPO, other).await.unwrap();
    let project = w.project().await;
    let hooks = w.github.hooks(REPO);
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    let ours = hooks.iter().find(|h| h.url == HOOK_URL).unwrap();
    assert!(ours.events.iter().any(|e| e == "pull_request_review"));
    assert_ne!(ours.secret.as_deref(), Some("an old secret"));
    let untouched = hooks.iter().find(|h| h.url != HOOK_URL).unwrap();
    assert_eq!(untouched.events, ["push"]);
    assert_eq!(w.webhook(project).await["state"], "installed");
}

#[tokio::test]
async fn a_hook_deleted_on_github_is_repaired_by_an_operator() {
    let w = world().await;
    let project = w.project().await;
    let id = w.github.hooks(REPO)[0].id;
    w.github.remove_hook(id);
    let state = w.webhook(project).await;
    assert_eq!(state["state"], "missing", "{state}");
    let repair = format!("/api/v1/projects/{project}/webhook/repair");
    let viewer = w.app.api_as("viewer").await;
    assert_eq!(
        viewer.send(Method::POST, &repair, Body::None).await.status,
        403
    );
    let operator = w.app.api_as("operator").await;
    let reply = operator.send(Method::POST, &repair, Body::None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["state"], "installed", "{}", reply.text);
    let hooks = w.github.hooks(REPO);
    assert_eq!(hooks.len(), 1);
    assert_ne!(hooks[0].id, id, "created again");
}

#[tokio::test]
async fn deliveries_signed_with_the_projects_secret_are_accepted() {
    let w = world().await;
    w.project().await;
    let secret = w.github.hooks(REPO)[0].secret.clone().unwrap();
    let mut payload = webhook_fixture("pull_request/closed.payload.json");
    payload["repository"]["full_name"] = json!(REPO);
    let body = serde_json::to_vec(&payload).unwrap();
    let signed = slipway_forge::webhook::sign(secret.as_bytes(), &body);
    let reply = w
        .app
        .api
        .send_webhook("pull_request", "d-own-secret", &body, Some(&signed))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let forged = slipway_forge::webhook::sign(b"another secret", &body);
    let reply = w
        .app
        .api
        .send_webhook("pull_request", "d-forged", &body, Some(&forged))
        .await;
    assert_eq!(reply.status, 401, "{}", reply.text);
}

#[tokio::test]
async fn a_token_that_may_not_manage_hooks_still_creates_the_project_and_is_told_why() {
    let w = world().await;
    w.github.deny_hooks();
    let project = w.project().await;
    let state = w.webhook(project).await;
    assert_eq!(state["state"], "not_permitted", "{state}");
    let message = state["message"].as_str().unwrap();
    assert!(
        message.contains("admin:repo_hook") && message.contains(HOOK_URL),
        "{message}"
    );
    let visitor = Visitor::sign_in(&w.app).await;
    let (_, html) = visitor.get(&format!("/projects/{project}")).await;
    assert!(
        html.contains("Webhook: not permitted") && html.contains("admin:repo_hook"),
        "{html}"
    );
    assert!(html.contains("Repair the webhook"), "{html}");
}

#[tokio::test]
async fn the_project_page_shows_the_hooks_last_delivery_and_repairs_it() {
    let w = world().await;
    let project = w.project().await;
    let mut payload = webhook_fixture("pull_request/closed.payload.json");
    payload["repository"]["full_name"] = json!(REPO);
    // Nothing listens at the public URL: GitHub records a failed delivery.
    assert_eq!(w.github.deliver(REPO, "pull_request", &payload).await, [0]);
    let visitor = Visitor::sign_in(&w.app).await;
    let page = format!("/projects/{project}");
    let (_, html) = visitor.get(&page).await;
    assert!(html.contains("Webhook: needs attention"), "{html}");
    assert!(
        html.contains("Last delivery: pull_request at ")
            && html.contains("no answer (failed to connect to host)"),
        "{html}"
    );
    w.github.remove_hook(w.github.hooks(REPO)[0].id);
    let csrf = visitor.csrf(&page).await;
    let (status, location) = visitor
        .post(&format!("{page}/webhook"), &[("csrf", &csrf)])
        .await;
    assert_eq!((status, location.as_str()), (303, page.as_str()));
    assert_eq!(w.github.hooks(REPO).len(), 1, "created again");
}

#[tokio::test]
async fn as_a_github_app_no_webhook_is_set_up_and_the_page_says_so() {
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = slipway_testkit::rsa_key_pair(keys.path());
    let github = FakeGitHub::start_app("12345", &public).await;
    let client = Arc::new(GitHub::app(&github.url, "12345", &private).unwrap());
    let app = TestApp::spawn_with(move |config| {
        config.github = Some(client);
        config.github_poll_every = Duration::from_secs(3600);
        config.public_url = Some(PUBLIC_URL.into());
    })
    .await;
    let repo = app.data_dir.path().join("origin");
    fixture_repo(&repo, &[("a.txt", "a")]);
    github.add_repo(REPO, &repo);
    let w = World {
        app,
        github: Arc::new(github),
    };
    let project = w.project().await;
    assert_eq!(w.webhook(project).await["state"], "app");
    assert!(w.github.hooks(REPO).is_empty());
    let visitor = Visitor::sign_in(&w.app).await;
    let (_, html) = visitor.get(&format!("/projects/{project}")).await;
    assert!(html.contains("nothing to set up here"), "{html}");
}

#[tokio::test]
async fn every_repository_is_listed_page_by_page_for_a_token_and_an_app() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("origin");
    fixture_repo(&repo, &[("a.txt", "a")]);
    let names: Vec<String> = (0..230).map(|n| format!("acme/repo-{n:03}")).collect();

    let github = FakeGitHub::start(TOKEN).await;
    for name in &names {
        github.add_repo(name, &repo);
    }
    let listed = GitHub::new(&github.url, TOKEN)
        .repositories()
        .await
        .unwrap();
    assert_eq!(listed, names, "three pages of 100");

    let keys = tempfile::tempdir().unwrap();
    let (private, public) = slipway_testkit::rsa_key_pair(keys.path());
    let app = FakeGitHub::start_app("12345", &public).await;
    for name in &names {
        app.add_repo(name, &repo);
    }
    let client = GitHub::app(&app.url, "12345", &private).unwrap();
    assert_eq!(client.repositories().await.unwrap(), names);
}

#[tokio::test]
async fn the_new_project_dialog_searches_the_repositories_as_the_user_types() {
    let w = world().await;
    let repo = w.app.data_dir.path().join("origin");
    for n in 0..150 {
        w.github.add_repo(&format!("acme/service-{n:03}"), &repo);
    }
    w.github.add_repo("other/shop", &repo);
    let visitor = Visitor::sign_in(&w.app).await;
    let (status, text) = visitor.get("/github/repositories?q=SHOP").await;
    assert_eq!(status, 200, "{text}");
    let found: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(found["repositories"], json!(["other/shop"]));
    assert_eq!(found["total"], 152);
    let (_, text) = visitor.get("/github/repositories?q=service").await;
    let found: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(found["matching"], 150);
    assert_eq!(found["repositories"].as_array().unwrap().len(), 100);
    // The list is for admins, who create projects.
    let viewer = w.app.api.create_token("v", "viewer").await;
    let viewer = Visitor::sign_in_with(&w.app, viewer.body["token"].as_str().unwrap()).await;
    assert_eq!(viewer.get("/github/repositories?q=").await.0, 403);
}

#[tokio::test]
async fn an_operator_replays_a_delivery_that_came_before_its_project() {
    let w = world().await;
    w.github.deny_hooks(); // the hook does not matter here
    let mut payload = webhook_fixture("pull_request/opened.payload.json");
    payload["repository"]["full_name"] = json!(REPO);
    payload["pull_request"]["draft"] = json!(false);
    let body = serde_json::to_vec(&payload).unwrap();
    let reply = w
        .app
        .api
        .send_webhook("pull_request", "d-early", &body, None)
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let delivery = |api: slipway_testkit::Api| async move {
        api.send(Method::GET, "/api/v1/deliveries/d-early", Body::None)
            .await
    };
    let mut state = Value::Null;
    for _ in 0..200 {
        state = delivery(w.app.api.clone()).await.body;
        if state["state"] != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state["state"], "ignored", "{state}");
    let project = w.project().await;
    // GitHub's "Redeliver" is a duplicate of a stored delivery: dropped.
    let reply = w
        .app
        .api
        .send_webhook("pull_request", "d-early", &body, None)
        .await;
    assert_eq!(reply.body["status"], "duplicate", "{}", reply.text);
    let replay = "/api/v1/deliveries/d-early/replay";
    let viewer = w.app.api_as("viewer").await;
    assert_eq!(
        viewer.send(Method::POST, replay, Body::None).await.status,
        403
    );
    let operator = w.app.api_as("operator").await;
    let missing = operator
        .send(
            Method::POST,
            "/api/v1/deliveries/d-never/replay",
            Body::None,
        )
        .await;
    assert_eq!(missing.status, 404, "{}", missing.text);
    let reply = operator.send(Method::POST, replay, Body::None).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    for _ in 0..200 {
        state = delivery(w.app.api.clone()).await.body;
        if state["state"] != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state["state"], "processed", "{state}");
    let validations = w.app.api.validations(project).await.body;
    assert_eq!(
        validations[0]["pr"], payload["number"],
        "the replayed delivery was acted on: {validations}"
    );
}

/// A browser-like client of the dashboard (session cookie, no redirects followed).
struct Visitor {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

impl Visitor {
    async fn sign_in(app: &TestApp) -> Self {
        Self::sign_in_with(app, ADMIN_TOKEN).await
    }

    async fn sign_in_with(app: &TestApp, token: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap();
        let response = http
            .post(format!("{}/login", app.base_url))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        let cookie = response.headers()["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_owned();
        Self {
            http,
            base: app.base_url.clone(),
            cookie,
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        self.send(self.http.post(format!("{}{path}", self.base)).form(form))
            .await
    }

    async fn csrf(&self, path: &str) -> String {
        let (_, html) = self.get(path).await;
        let start = html.find("name=\"csrf\" value=\"").expect("a form") + 19;
        html[start..start + html[start..].find('"').unwrap()].to_owned()
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, String) {
        let response = request.header("cookie", &self.cookie).send().await.unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        (status, location.unwrap_or(response.text().await.unwrap()))
    }
}
