//! Notifications over real HTTP: targets through the API, deliveries from real validations to
//! receivers on localhost (a Slack-shaped one, a Standard Webhooks endpoint), the signature
//! checked by an independent implementation (the `standardwebhooks` npm package, which
//! scripts/test.sh installs), retries, `Retry-After`, masking and the URL rules.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use slipway_core::notify::AllowList;
use slipway_testkit::receivers::{Fault, Received, Receiver, Shape};
use slipway_testkit::{fixture_repo, Body, TestApp};
use std::path::PathBuf;
use std::time::Duration;

const PUBLIC_URL: &str = "https://slipway.example";
const DEPLOY_TOKEN: &str = "s3cr3t-deploy-token-4711";

/// A server whose notifications may reach 127.0.0.1 over http (as the tests' receivers are).
async fn app() -> TestApp {
    TestApp::spawn_with(|config| {
        config.notify_allow_hosts = AllowList::parse("127.0.0.1").unwrap();
        config.public_url = Some(PUBLIC_URL.into());
    })
    .await
}

/// A project on a local repository whose `test` step runs `test`.
async fn project(app: &TestApp, test: &str) -> i64 {
    let repo = app.data_dir.path().join("repo");
    fixture_repo(
        &repo,
        &[(".slipway.toml", &format!("[test]\ncommands = [{test:?}]\n"))],
    );
    let created = app
        .api
        .create_project(&json!({"name": "shop", "repo": repo.display().to_string()}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    created.body["id"].as_i64().unwrap()
}

async fn add_target(app: &TestApp, project: i64, kind: &str, url: &str, events: &[&str]) -> Value {
    let path = format!("/api/v1/projects/{project}/notifications");
    let body = json!({"kind": kind, "url": url, "events": events});
    let created = app.api.send(Method::POST, &path, Body::Json(&body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    created.body
}

async fn targets(app: &TestApp, project: i64) -> Value {
    let path = format!("/api/v1/projects/{project}/notifications");
    app.api.send(Method::GET, &path, Body::None).await.body
}

/// Where the `standardwebhooks` npm package (pinned 1.1.1) is installed.
fn verifier_dir() -> PathBuf {
    std::env::var_os("SLIPWAY_STANDARDWEBHOOKS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/standardwebhooks")
        })
}

/// Verifies a delivery with the `standardwebhooks` package: the parsed body, or its error.
fn verify_independently(secret: &str, delivery: &Received) -> Result<Value, String> {
    let modules = verifier_dir().join("node_modules");
    assert!(
        modules.join("standardwebhooks").exists(),
        "the standardwebhooks npm package is missing at {}: run scripts/test.sh, or \
         npm install --prefix {} standardwebhooks@1.1.1",
        modules.display(),
        verifier_dir().display()
    );
    let dir = tempfile::tempdir().unwrap();
    let headers = json!({
        "webhook-id": delivery.headers.get("webhook-id"),
        "webhook-timestamp": delivery.headers.get("webhook-timestamp"),
        "webhook-signature": delivery.headers.get("webhook-signature"),
    });
    std::fs::write(dir.path().join("body"), &delivery.body).unwrap();
    std::fs::write(dir.path().join("headers.json"), headers.to_string()).unwrap();
    let script = "const { Webhook } = require('standardwebhooks'); const fs = require('fs');\
        const [secret, dir] = process.argv.slice(1);\
        const body = fs.readFileSync(dir + '/body', 'utf8');\
        const headers = JSON.parse(fs.readFileSync(dir + '/headers.json', 'utf8'));\
        try { console.log(JSON.stringify(new Webhook(secret).verify(body, headers))); }\
        catch (e) { console.error(String(e)); process.exit(3); }";
    let out = std::process::Command::new("node")
        .args(["-e", script, secret, dir.path().to_str().unwrap()])
        .env("NODE_PATH", &modules)
        .output()
        .expect("node runs");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("the verifier prints JSON"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn a_failed_validation_is_signed_per_standard_webhooks_and_its_secret_masked() {
    let app = app().await;
    let project = project(&app, "echo deploying with token=$DEPLOY_TOKEN; exit 1").await;
    let secret_put = app
        .api
        .put_secret(project, "DEPLOY_TOKEN", DEPLOY_TOKEN)
        .await;
    assert!(secret_put.status.is_success(), "{}", secret_put.text);
    let receiver = Receiver::start(Shape::Webhook).await;
    let target = add_target(
        &app,
        project,
        "webhook",
        &receiver.url(),
        &["validation.finished"],
    )
    .await;
    let secret = target["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{target}");

    let done = app.api.validated(project, &json!({"branch": "main"})).await;
    assert_eq!(done["status"], "failed", "{done}");
    let delivered = receiver.delivered(1, Duration::from_secs(30)).await;
    assert_eq!(delivered.len(), 1, "{:?}", receiver.received());
    let delivery = &delivered[0];

    let verified = verify_independently(&secret, delivery).expect("the signature verifies");
    assert_eq!(verified["type"], "validation.finished");
    let data = &verified["data"];
    assert_eq!(data["validation"]["id"], done["id"]);
    assert_eq!(data["validation"]["status"], "failed");
    assert_eq!(data["validation"]["failing_step"], "test");
    assert_eq!(data["project"]["name"], "shop");
    let tail = data["validation"]["log_tail"].to_string();
    assert!(tail.contains("token=***"), "{tail}");
    let raw = String::from_utf8_lossy(&delivery.body);
    assert!(!raw.contains(DEPLOY_TOKEN), "the secret leaked: {raw}");

    // The same verifier refuses a changed body and a wrong secret: the check can fail.
    let mut forged = delivery.clone();
    forged.body = raw.replace("failed", "passed").into_bytes();
    assert!(verify_independently(&secret, &forged).is_err());
    let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    assert!(verify_independently(other, delivery).is_err());

    let shown = targets(&app, project).await;
    assert_eq!(shown[0]["health"], "healthy", "{shown}");
    assert!(
        shown[0].get("secret").is_none(),
        "the secret is answered once only: {shown}"
    );
}

#[tokio::test]
async fn slack_is_sent_block_kit_and_its_retry_after_is_honoured() {
    let app = app().await;
    let project = project(&app, "true").await;
    let slack = Receiver::start(Shape::Slack).await;
    slack.fail_next(&[Fault::Status(429, Some(1))]);
    add_target(
        &app,
        project,
        "slack",
        &slack.url(),
        &["validation.finished"],
    )
    .await;

    let done = app.api.validated(project, &json!({"branch": "main"})).await;
    assert_eq!(done["status"], "passed", "{done}");
    let delivered = slack.delivered(1, Duration::from_secs(30)).await;
    let received = slack.received();
    assert_eq!(delivered.len(), 1, "{received:?}");
    assert_eq!(
        received.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 200],
        "one rate-limited attempt, then the delivery"
    );
    let message = delivered[0].json();
    assert!(
        message["text"].as_str().unwrap().contains("passed"),
        "{message}"
    );
    let blocks = message["blocks"].as_array().unwrap();
    let link = format!("<{PUBLIC_URL}/validations/{}|Open in Slipway>", done["id"]);
    assert!(message.to_string().contains(&link), "{message}");
    assert!(blocks.iter().any(|b| b["type"] == "actions"), "{message}");
    let shown = targets(&app, project).await;
    assert_eq!(
        shown[0]["health"], "healthy",
        "a 429 is no failure: {shown}"
    );
}

#[tokio::test]
async fn a_receiver_down_for_a_while_gets_the_notification_once_when_it_is_up() {
    let app = app().await;
    let project = project(&app, "true").await;
    let address = Receiver::free_address();
    let url = format!("http://{address}/hooks/slipway");
    add_target(&app, project, "webhook", &url, &["validation.finished"]).await;

    app.api.validated(project, &json!({"branch": "main"})).await;
    // Down: the first attempt fails, and the target says so.
    let mut failing = Value::Null;
    for _ in 0..300 {
        failing = targets(&app, project).await[0].clone();
        if failing["health"] == "failing" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(failing["health"], "failing", "{failing}");
    assert!(
        failing["last_error"].as_str().unwrap().contains("error"),
        "{failing}"
    );

    let receiver = Receiver::start_at(Shape::Webhook, address).await;
    let delivered = receiver.delivered(1, Duration::from_secs(60)).await;
    assert_eq!(delivered.len(), 1);
    // Nothing more comes: the delivered notification's job is done.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.received().len(), 1, "{:?}", receiver.received());
    let healthy = targets(&app, project).await[0].clone();
    assert_eq!(healthy["health"], "healthy", "{healthy}");
    assert!(healthy.get("last_error").is_none(), "{healthy}");
}

#[tokio::test]
async fn refused_urls_get_a_clear_422_and_nothing_is_stored() {
    // No allow list here: the machine itself and private ranges are out of reach.
    let app = TestApp::spawn().await;
    let project = app.project("guarded").await;
    let path = format!("/api/v1/projects/{project}/notifications");
    for (url, says) in [
        ("http://hooks.example.com/x", "only https"),
        ("https://127.0.0.1/x", "loopback"),
        ("https://localhost:9/x", "loopback"),
        ("https://10.1.2.3/x", "private"),
        ("https://192.168.1.10/x", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[::1]/x", "loopback"),
        ("https://0.0.0.0/x", "unspecified"),
        ("https://[::127.0.0.1]/x", "reserved"),
        ("https://[64:ff9b::127.0.0.1]/x", "loopback"),
        ("https://[2002:7f00:1::]/x", "loopback"),
        ("https://[2001:db8::1]/x", "documentation"),
        ("https://198.18.0.1/x", "benchmarking"),
        ("not a url", "https://host/path"),
    ] {
        let body = json!({"kind": "webhook", "url": url, "events": ["validation.finished"]});
        let refused = app.api.send(Method::POST, &path, Body::Json(&body)).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url}: {}",
            refused.text
        );
        assert_eq!(refused.code(), "invalid_url", "{url}");
        assert!(
            refused.message().contains(says),
            "{url}: {}",
            refused.message()
        );
    }
    let bad_event =
        json!({"kind": "slack", "url": "https://hooks.slack.com/x", "events": ["deploy.done"]});
    let refused = app
        .api
        .send(Method::POST, &path, Body::Json(&bad_event))
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.message().contains("validation.finished"),
        "{}",
        refused.message()
    );
    let bad_kind =
        json!({"kind": "email", "url": "https://hooks.slack.com/x", "events": ["fix.gave_up"]});
    let refused = app
        .api
        .send(Method::POST, &path, Body::Json(&bad_kind))
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.message().contains("slack or webhook"),
        "{}",
        refused.message()
    );
    assert_eq!(targets(&app, project).await, json!([]));
}

#[tokio::test]
async fn a_stored_url_reaching_a_forbidden_address_is_refused_at_send_time() {
    // As if a name resolved publicly when it was saved and to the machine itself now.
    let app = TestApp::spawn().await;
    let project = app.project("rebound").await;
    let receiver = Receiver::start(Shape::Webhook).await;
    let url = format!("https://localhost:{}/hooks", receiver.addr.port());
    let target = app
        .store
        .create_notification_target(
            slipway_core::ProjectId(project),
            &slipway_store::NewTarget {
                kind: slipway_core::notify::TargetKind::Webhook,
                url,
                events: vec![slipway_core::notify::NotifyEvent::ValidationFinished],
                secret: Some(slipway_engine::new_notification_secret()),
            },
        )
        .await
        .unwrap();
    let path = format!(
        "/api/v1/projects/{project}/notifications/{}/test",
        target.id
    );
    let tested = app.api.send(Method::POST, &path, Body::None).await;
    assert_eq!(tested.status, StatusCode::OK, "{}", tested.text);
    assert_eq!(tested.body["delivered"], false, "{}", tested.text);
    assert!(
        tested.body["error"].as_str().unwrap().contains("loopback"),
        "{}",
        tested.text
    );
    assert_eq!(tested.body["target"]["health"], "failing");
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn targets_are_changed_tested_and_deleted_by_the_roles_allowed() {
    let app = app().await;
    let project = app.project("crud").await;
    let receiver = Receiver::start(Shape::Webhook).await;
    let viewer = app.api_as("viewer").await;
    let path = format!("/api/v1/projects/{project}/notifications");
    let body = json!({"kind": "webhook", "url": receiver.url(), "events": ["fix.gave_up"]});
    let refused = viewer.send(Method::POST, &path, Body::Json(&body)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let target = add_target(&app, project, "webhook", &receiver.url(), &["fix.gave_up"]).await;
    let secret = target["secret"].as_str().unwrap().to_owned();
    assert_eq!(target["health"], "new");
    assert!(
        !target["url"].as_str().unwrap().contains("hooks/slipway"),
        "{target}"
    );
    let listed = viewer.send(Method::GET, &path, Body::None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(!listed.text.contains(&secret));

    let one = format!("{path}/{}", target["id"]);
    let tested = viewer
        .send(Method::POST, &format!("{one}/test"), Body::None)
        .await;
    assert_eq!(
        tested.status,
        StatusCode::FORBIDDEN,
        "a test needs the operator role"
    );
    let tested = app
        .api
        .send(Method::POST, &format!("{one}/test"), Body::None)
        .await;
    assert_eq!(tested.body["delivered"], true, "{}", tested.text);
    let delivery = &receiver.received()[0];
    let verified = verify_independently(&secret, delivery).expect("the test is signed");
    assert_eq!(verified["type"], "notification.test");

    receiver.fail_next(&[Fault::Status(500, None)]);
    let tested = app
        .api
        .send(Method::POST, &format!("{one}/test"), Body::None)
        .await;
    assert_eq!(tested.body["delivered"], false);
    assert_eq!(tested.body["target"]["health"], "failing");
    assert!(tested.body["target"]["last_error"]
        .as_str()
        .unwrap()
        .contains("500"));

    let patch = json!({"events": ["pull_request.merged", "run.needs_input"], "enabled": false});
    let changed = app.api.send(Method::PATCH, &one, Body::Json(&patch)).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert_eq!(
        changed.body["events"],
        json!(["pull_request.merged", "run.needs_input"])
    );
    assert_eq!(changed.body["health"], "disabled");
    let on = app
        .api
        .send(Method::PATCH, &one, Body::Json(&json!({"enabled": true})))
        .await;
    // Switched on again, its failures are forgotten: it delivered a test before.
    assert_eq!(on.body["health"], "healthy", "{}", on.text);
    assert!(on.body.get("failing_since").is_none(), "{}", on.text);
    let unknown = app
        .api
        .send(Method::PATCH, &one, Body::Json(&json!({"colour": "red"})))
        .await;
    assert!(unknown.status.is_client_error());

    assert_eq!(
        app.api.send(Method::DELETE, &one, Body::None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.api.send(Method::DELETE, &one, Body::None).await.status,
        StatusCode::NOT_FOUND
    );
    let elsewhere = app.project("other").await;
    let foreign = format!(
        "/api/v1/projects/{elsewhere}/notifications/{}",
        target["id"]
    );
    assert_eq!(
        app.api
            .send(Method::DELETE, &foreign, Body::None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_merged_pull_request_is_told_with_its_link() {
    let app = app().await;
    let (_work, origin) =
        slipway_testkit::forge_fixture(app.data_dir.path(), "true", &[("b.txt", "b\n")]);
    let created = app
        .api
        .create_project(&json!({"name": "local", "repo": origin.display().to_string()}))
        .await;
    let project = created.body["id"].as_i64().unwrap();
    app.api
        .put_settings(project, &json!({"auto_merge": true}))
        .await;
    let receiver = Receiver::start(Shape::Webhook).await;
    add_target(
        &app,
        project,
        "webhook",
        &receiver.url(),
        &["pull_request.merged"],
    )
    .await;
    let opened = app
        .api
        .open_pull(project, &json!({"head": "feature", "title": "Add b"}))
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.text);
    let delivered = receiver.delivered(1, Duration::from_secs(60)).await;
    assert_eq!(delivered.len(), 1, "{:?}", receiver.received());
    let body = delivered[0].json();
    assert_eq!(body["type"], "pull_request.merged", "{body}");
    assert_eq!(body["data"]["pull_request"]["number"], 1);
    assert_eq!(body["data"]["pull_request"]["title"], "Add b");
    let page = format!("{PUBLIC_URL}/projects/{project}/pulls/1");
    assert_eq!(body["data"]["url"], page.as_str(), "{body}");
    assert_eq!(body["data"]["pull_request"]["url"], page.as_str(), "{body}");
}

/// The dashboard's session: signs in with a token, keeps the cookie and the CSRF token.
struct Visitor {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

impl Visitor {
    async fn sign_in(app: &TestApp, token: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
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

    async fn page(&self, path: &str) -> String {
        let request = self.http.get(format!("{}{path}", self.base));
        request
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn csrf(&self, path: &str) -> String {
        let html = self.page(path).await;
        let start = html.find("name=\"csrf\" value=\"").unwrap() + 19;
        html[start..start + html[start..].find('"').unwrap()].to_owned()
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let request = self.http.post(format!("{}{path}", self.base)).form(form);
        let response = request.header("cookie", &self.cookie).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

#[tokio::test]
async fn the_dashboard_adds_tests_and_deletes_a_target_and_shows_its_health() {
    let app = app().await;
    let project = app.project("dash").await;
    let receiver = Receiver::start(Shape::Webhook).await;
    let admin = Visitor::sign_in(&app, slipway_testkit::ADMIN_TOKEN).await;
    let page = format!("/projects/{project}");
    let csrf = admin.csrf(&page).await;
    assert!(admin.page(&page).await.contains("id=\"no-notifications\""));

    let url = receiver.url();
    let form = [
        ("csrf", csrf.as_str()),
        ("kind", "webhook"),
        ("url", url.as_str()),
        ("event:validation.finished", "on"),
        ("event:fix.gave_up", "on"),
    ];
    let (status, html) = admin.post(&format!("{page}/notifications"), &form).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("data-tab-on-load=\"tab-notifications\""),
        "the tab opens again"
    );
    let at = html.find("whsec_").expect("the secret is shown once");
    let secret: String = html[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '<')
        .collect();
    assert!(
        !admin.page(&page).await.contains(&secret),
        "shown only once"
    );
    let target = targets(&app, project).await[0].clone();
    assert_eq!(
        target["events"],
        json!(["validation.finished", "fix.gave_up"])
    );

    let one = format!("{page}/notifications/{}", target["id"]);
    let (_, html) = admin
        .post(&one, &[("csrf", &csrf), ("action", "test")])
        .await;
    assert!(html.contains("Test notification delivered."), "{html}");
    assert!(html.contains("data-health=\"healthy\""), "{html}");
    verify_independently(&secret, &receiver.received()[0]).expect("signed with the secret shown");

    receiver.fail_next(&[Fault::Status(503, None)]);
    let (_, html) = admin
        .post(&one, &[("csrf", &csrf), ("action", "test")])
        .await;
    assert!(html.contains("data-health=\"failing\""), "{html}");
    assert!(
        html.contains("Last error: the receiver answered 503"),
        "{html}"
    );

    let refused = [
        ("csrf", csrf.as_str()),
        ("kind", "slack"),
        ("url", "http://example.com/x"),
        ("event:run.needs_input", "on"),
    ];
    let (_, html) = admin.post(&format!("{page}/notifications"), &refused).await;
    assert!(html.contains("only https"), "{html}");
    let no_csrf = [("csrf", "forged"), ("action", "delete")];
    assert_eq!(admin.post(&one, &no_csrf).await.0, 403);

    let (_, html) = admin
        .post(&one, &[("csrf", &csrf), ("action", "delete")])
        .await;
    assert!(html.contains("Notification target deleted."), "{html}");
    assert_eq!(targets(&app, project).await, json!([]));
}

/// A project on a bare repository (`.slipway.toml` = `pipeline`) whose agent is `agent`.
async fn agent_project(app: &TestApp, pipeline: &str, agent: &str, plan_mode: bool) -> i64 {
    let work = app.data_dir.path().join("seed");
    fixture_repo(
        &work,
        &[(".slipway.toml", pipeline), ("value.txt", "base\n")],
    );
    let origin = app.data_dir.path().join("origin.git");
    slipway_testkit::git(
        &work,
        &["clone", "-q", "--bare", ".", origin.to_str().unwrap()],
    );
    let reply = app
        .api
        .create_project(&json!({"name": "app", "repo": origin.display().to_string()}))
        .await;
    let id = reply.body["id"].as_i64().unwrap();
    let settings = json!({"agent": {"kind": "command", "command": agent, "plan_mode": plan_mode}});
    assert_eq!(app.api.put_settings(id, &settings).await.status, 200);
    id
}

#[tokio::test]
async fn a_plan_to_confirm_and_a_fix_loop_that_gives_up_are_told() {
    let app = app().await;
    let receiver = Receiver::start(Shape::Webhook).await;
    let planner = "prompt=$(cat); echo '1. write fixed to value.txt'";
    let pipeline = "[test]\ncommands = [\"grep -qx fixed value.txt\"]\n[fix]\nmax_attempts = 1\n";
    let project = agent_project(&app, pipeline, planner, true).await;
    add_target(
        &app,
        project,
        "webhook",
        &receiver.url(),
        &["run.needs_input", "fix.gave_up"],
    )
    .await;
    let started = app
        .api
        .start_run(project, &json!({"goal": "Fix the value"}))
        .await;
    let run = started.body["id"].as_i64().unwrap();
    app.api
        .run_reaching(run, &["awaiting_input", "failed"])
        .await;
    let delivered = receiver.delivered(1, Duration::from_secs(30)).await;
    let asked = delivered[0].json();
    assert_eq!(asked["type"], "run.needs_input", "{asked}");
    assert_eq!(asked["data"]["run"]["waiting_for"], "plan");
    assert_eq!(asked["data"]["run"]["text"], "1. write fixed to value.txt");
    assert_eq!(asked["data"]["url"], format!("{PUBLIC_URL}/runs/{run}"));

    assert_eq!(app.api.run_action(run, "cancel", None).await.status, 200);
    // An agent that never fixes it: the loop gives up (no change, or the budget spent).
    let breaker = "echo broken > value.txt; echo changed";
    let settings = json!({"agent": {"kind": "command", "command": breaker, "plan_mode": false}});
    assert_eq!(app.api.put_settings(project, &settings).await.status, 200);
    let second = app.api.start_run(project, &json!({"goal": "Fix it"})).await;
    let second = second.body["id"].as_i64().unwrap();
    let ended = app.api.run_reaching(second, &["succeeded", "failed"]).await;
    assert_eq!(ended["status"], "failed", "{ended}");
    let delivered = receiver.delivered(2, Duration::from_secs(30)).await;
    let gave_up = delivered[1].json();
    assert_eq!(gave_up["type"], "fix.gave_up", "{gave_up}");
    let why = gave_up["data"]["run"]["text"].as_str().unwrap_or("");
    assert!(
        why.contains("gave up") || why.contains("fix budget is spent"),
        "{gave_up}"
    );
    assert_eq!(
        gave_up["data"]["pull_request"]["number"],
        ended["pr_number"]
    );
}

#[tokio::test]
async fn an_unreachable_target_never_shows_its_url_in_an_error() {
    let app = app().await;
    let project = app.project("refused").await;
    // Nothing listens there: the connection is refused.
    let address = Receiver::free_address();
    let credential = "XyZsecretPart4711";
    let url = format!("http://{address}/services/T0AAAA/B0BBBB/{credential}");
    let target = add_target(&app, project, "slack", &url, &["fix.gave_up"]).await;
    let one = format!("/api/v1/projects/{project}/notifications/{}", target["id"]);
    let tested = app
        .api
        .send(Method::POST, &format!("{one}/test"), Body::None)
        .await;
    assert_eq!(tested.body["delivered"], false, "{}", tested.text);
    let error = tested.body["error"].as_str().unwrap();
    assert!(error.contains("onnect"), "says why: {error}");
    let viewer = app.api_as("viewer").await;
    let listed = viewer
        .send(
            Method::GET,
            &format!("/api/v1/projects/{project}/notifications"),
            Body::None,
        )
        .await;
    assert_eq!(listed.body[0]["health"], "failing", "{}", listed.text);
    let admin = Visitor::sign_in(&app, slipway_testkit::ADMIN_TOKEN).await;
    let page = admin.page(&format!("/projects/{project}")).await;
    assert!(page.contains("Last error:"), "{page}");
    for (what, text) in [
        ("the test's answer", tested.text.as_str()),
        ("the list", listed.text.as_str()),
        ("the dashboard", page.as_str()),
    ] {
        assert!(!text.contains(credential), "{what}: {text}");
        assert!(!text.contains("B0BBBB"), "{what}: {text}");
    }
}

#[tokio::test]
async fn a_url_over_2048_characters_is_refused_by_the_api_and_the_dashboard() {
    let app = app().await;
    let project = app.project("long").await;
    let path = format!("/api/v1/projects/{project}/notifications");
    for length in [2_049, 200_000] {
        let url = format!("https://hooks.example.com/{}", "a".repeat(length));
        let body = json!({"kind": "slack", "url": url, "events": ["fix.gave_up"]});
        let refused = app.api.send(Method::POST, &path, Body::Json(&body)).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{length}");
        assert_eq!(refused.code(), "invalid_url");
        assert!(refused.message().contains("2048"), "{}", refused.message());
        assert!(refused.text.len() < 1_000, "the URL is not echoed back");
    }
    let receiver = Receiver::start(Shape::Webhook).await;
    let target = add_target(&app, project, "webhook", &receiver.url(), &["fix.gave_up"]).await;
    let long = format!("https://hooks.example.com/{}", "a".repeat(3_000));
    let patched = app
        .api
        .send(
            Method::PATCH,
            &format!("{path}/{}", target["id"]),
            Body::Json(&json!({"url": long})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::UNPROCESSABLE_ENTITY);

    let admin = Visitor::sign_in(&app, slipway_testkit::ADMIN_TOKEN).await;
    let page = format!("/projects/{project}");
    let csrf = admin.csrf(&page).await;
    let form = [
        ("csrf", csrf.as_str()),
        ("kind", "slack"),
        ("url", long.as_str()),
        ("event:fix.gave_up", "on"),
    ];
    let (_, html) = admin.post(&format!("{page}/notifications"), &form).await;
    assert!(html.contains("over the 2048 allowed"), "{html}");
    assert_eq!(targets(&app, project).await.as_array().unwrap().len(), 1);
}
