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

const DEPLOY_TOKEN: &str = "s3cr3t-deploy-token-4711";

/// A server whose notifications may reach 127.0.0.1 over http (as the tests' receivers are).
async fn app() -> TestApp {
    TestApp::spawn_with(|config| {
        config.notify_allow_hosts = AllowList::parse("127.0.0.1").unwrap();
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
    let link = format!("/validations/{}", done["id"]);
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
    assert!(
        body["data"]["url"].as_str().unwrap().ends_with("/pulls/1"),
        "{body}"
    );
}
