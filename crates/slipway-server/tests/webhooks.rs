//! GitHub webhook intake over real HTTP, with GitHub's own payloads, signed as GitHub signs.

use reqwest::StatusCode;
use serde_json::{json, Value};
use slipway_testkit::{commit_files, fixture_repo, webhook_fixture, TestApp};
use std::time::Duration;

struct Setup {
    app: TestApp,
    project: i64,
    repo: std::path::PathBuf,
    sha: String,
}

async fn setup(test_command: &str) -> Setup {
    let app = TestApp::spawn().await;
    let repo = app.data_dir.path().join("origin");
    let sha = fixture_repo(
        &repo,
        &[(
            ".slipway.toml",
            &format!("[test]\ncommands = [{test_command:?}]\n"),
        )],
    );
    let created = app
        .api
        .create_project(&json!({"name": "app", "repo": "acme/app"}))
        .await;
    let project = created.body["id"].as_i64().unwrap();
    Setup {
        app,
        project,
        repo,
        sha,
    }
}

/// GitHub's `pull_request` fixture for `action`, re-pointed at acme/app and a local clone URL.
fn pull_request(
    action: &str,
    number: i64,
    sha: &str,
    repo: &std::path::Path,
    draft: bool,
) -> Vec<u8> {
    let mut payload = webhook_fixture(&format!("pull_request/{action}.payload.json"));
    payload["repository"]["full_name"] = json!("acme/app");
    payload["number"] = json!(number);
    payload["pull_request"]["draft"] = json!(draft);
    payload["pull_request"]["head"]["sha"] = json!(sha);
    payload["pull_request"]["head"]["ref"] = json!("feature");
    payload["pull_request"]["head"]["repo"]["clone_url"] =
        json!(format!("file://{}", repo.display()));
    payload["pull_request"]["base"]["ref"] = json!("main");
    payload["pull_request"]["base"]["repo"]["clone_url"] =
        json!(format!("file://{}", repo.display()));
    serde_json::to_vec(&payload).unwrap()
}

fn comment(number: i64, body: &str, association: &str) -> Vec<u8> {
    let mut payload = webhook_fixture("issue_comment/created.payload.json");
    payload["repository"]["full_name"] = json!("acme/app");
    payload["issue"]["number"] = json!(number);
    payload["issue"]["pull_request"] =
        json!({"url": "https://api.github.com/repos/acme/app/pulls/7"});
    payload["comment"]["body"] = json!(body);
    payload["comment"]["author_association"] = json!(association);
    serde_json::to_vec(&payload).unwrap()
}

/// Waits until the delivery has been acted on; returns its state and note.
async fn processed(app: &TestApp, delivery: &str) -> (String, String) {
    for _ in 0..400 {
        if let Ok(d) = app.store.delivery(delivery).await {
            if d.state != slipway_store::DeliveryState::Pending {
                return (d.state.as_str().to_owned(), d.note.unwrap_or_default());
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("delivery {delivery} was never processed");
}

async fn validations(app: &TestApp, project: i64) -> Vec<Value> {
    app.api
        .validations(project)
        .await
        .body
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_forged_or_missing_signature_is_refused_and_nothing_is_stored() {
    let s = setup("true").await;
    let body = pull_request("opened", 7, &s.sha, &s.repo, false);
    let forged = slipway_forge::webhook::sign(b"not the secret", &body);
    let reply = s
        .app
        .api
        .send_webhook("pull_request", "d-forged", &body, Some(&forged))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.message().contains("does not match"), "{}", reply.text);
    let missing = s
        .app
        .api
        .send_webhook("pull_request", "d-missing", &body, Some(""))
        .await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    // A valid signature of another body does not carry over.
    let other = slipway_forge::webhook::sign(slipway_testkit::WEBHOOK_SECRET.as_bytes(), b"{}");
    let swapped = s
        .app
        .api
        .send_webhook("pull_request", "d-swapped", &body, Some(&other))
        .await;
    assert_eq!(swapped.status, StatusCode::UNAUTHORIZED);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.app.store.count_deliveries().await.unwrap(), 0);
    assert!(validations(&s.app, s.project).await.is_empty());
}

#[tokio::test]
async fn a_ping_is_answered_200_and_recorded() {
    let s = setup("true").await;
    let body = serde_json::to_vec(&webhook_fixture("ping/payload.json")).unwrap();
    let reply = s.app.api.send_webhook("ping", "d-ping", &body, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["status"], "pong");
    assert_eq!(
        s.app.store.delivery("d-ping").await.unwrap().state.as_str(),
        "processed"
    );
}

#[tokio::test]
async fn an_opened_pull_request_validates_its_head_commit() {
    let s = setup("git log -1 --format=%s").await;
    let body = pull_request("opened", 7, &s.sha, &s.repo, false);
    let reply = s
        .app
        .api
        .send_webhook("pull_request", "d-open", &body, None)
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert_eq!(reply.body["status"], "queued");
    let (state, note) = processed(&s.app, "d-open").await;
    assert_eq!(state, "processed", "{note}");
    let list = validations(&s.app, s.project).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["sha"], s.sha.as_str());
    assert_eq!(list[0]["pr"], 7);
    assert_eq!(list[0]["branch"], "feature");
    let done = s
        .app
        .api
        .finished_validation(list[0]["id"].as_i64().unwrap())
        .await;
    assert_eq!(done["status"], "passed", "{done}");
}

#[tokio::test]
async fn the_same_delivery_three_times_makes_one_validation() {
    let s = setup("true").await;
    let body = pull_request("opened", 7, &s.sha, &s.repo, false);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let reply = s
            .app
            .api
            .send_webhook("pull_request", "d-same", &body, None)
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
        statuses.push(reply.body["status"].as_str().unwrap().to_owned());
    }
    assert_eq!(statuses, ["queued", "duplicate", "duplicate"]);
    processed(&s.app, "d-same").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(validations(&s.app, s.project).await.len(), 1);
    assert_eq!(s.app.store.count_deliveries().await.unwrap(), 1);
}

#[tokio::test]
async fn a_draft_is_not_validated_until_it_is_ready_for_review() {
    let s = setup("true").await;
    let draft = pull_request("opened", 7, &s.sha, &s.repo, true);
    s.app
        .api
        .send_webhook("pull_request", "d-draft", &draft, None)
        .await;
    let (_, note) = processed(&s.app, "d-draft").await;
    assert!(note.contains("draft"), "{note}");
    assert!(validations(&s.app, s.project).await.is_empty());

    let ready = pull_request("ready_for_review", 7, &s.sha, &s.repo, false);
    s.app
        .api
        .send_webhook("pull_request", "d-ready", &ready, None)
        .await;
    processed(&s.app, "d-ready").await;
    assert_eq!(validations(&s.app, s.project).await.len(), 1);
}

#[tokio::test]
async fn a_push_during_a_validation_cancels_it_and_validates_the_new_head() {
    let s = setup("if [ -f second ]; then true; else sleep 30; fi").await;
    let first = pull_request("opened", 7, &s.sha, &s.repo, false);
    s.app
        .api
        .send_webhook("pull_request", "d-1", &first, None)
        .await;
    processed(&s.app, "d-1").await;
    let old = validations(&s.app, s.project).await[0]["id"]
        .as_i64()
        .unwrap();

    let new_sha = commit_files(&s.repo, &[("second", "pushed")], "second push");
    let sync = pull_request("synchronize", 7, &new_sha, &s.repo, false);
    s.app
        .api
        .send_webhook("pull_request", "d-2", &sync, None)
        .await;
    processed(&s.app, "d-2").await;

    assert_eq!(
        s.app.api.finished_validation(old).await["status"],
        "cancelled"
    );
    let list = validations(&s.app, s.project).await;
    let newest = list.iter().find(|v| v["sha"] == new_sha.as_str()).unwrap();
    let done = s
        .app
        .api
        .finished_validation(newest["id"].as_i64().unwrap())
        .await;
    assert_eq!(done["status"], "passed");
}

#[tokio::test]
async fn closing_a_pull_request_cancels_its_validation() {
    let s = setup("sleep 30").await;
    s.app
        .api
        .send_webhook(
            "pull_request",
            "d-open",
            &pull_request("opened", 7, &s.sha, &s.repo, false),
            None,
        )
        .await;
    processed(&s.app, "d-open").await;
    let id = validations(&s.app, s.project).await[0]["id"]
        .as_i64()
        .unwrap();
    s.app
        .api
        .send_webhook(
            "pull_request",
            "d-close",
            &pull_request("closed", 7, &s.sha, &s.repo, false),
            None,
        )
        .await;
    let (_, note) = processed(&s.app, "d-close").await;
    assert!(note.contains("1 validation(s) cancelled"), "{note}");
    assert_eq!(
        s.app.api.finished_validation(id).await["status"],
        "cancelled"
    );
}

#[tokio::test]
async fn slipway_retry_from_a_writer_validates_again_and_from_others_does_nothing() {
    let s = setup("true").await;
    s.app
        .api
        .send_webhook(
            "pull_request",
            "d-open",
            &pull_request("opened", 7, &s.sha, &s.repo, false),
            None,
        )
        .await;
    processed(&s.app, "d-open").await;
    let first = validations(&s.app, s.project).await[0]["id"]
        .as_i64()
        .unwrap();
    s.app.api.finished_validation(first).await;

    s.app
        .api
        .send_webhook(
            "issue_comment",
            "d-c1",
            &comment(7, "/slipway retry", "NONE"),
            None,
        )
        .await;
    let (state, note) = processed(&s.app, "d-c1").await;
    assert_eq!(state, "ignored");
    assert!(note.contains("no write access"), "{note}");
    s.app
        .api
        .send_webhook(
            "issue_comment",
            "d-c2",
            &comment(7, "looks good", "OWNER"),
            None,
        )
        .await;
    processed(&s.app, "d-c2").await;
    assert_eq!(validations(&s.app, s.project).await.len(), 1);

    s.app
        .api
        .send_webhook(
            "issue_comment",
            "d-c3",
            &comment(7, "/slipway retry", "MEMBER"),
            None,
        )
        .await;
    let (state, note) = processed(&s.app, "d-c3").await;
    assert_eq!(state, "processed", "{note}");
    let list = validations(&s.app, s.project).await;
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["sha"], s.sha.as_str());
    assert_eq!(list[0]["pr"], 7);
}

#[tokio::test]
async fn other_events_and_unknown_repositories_are_recorded_and_ignored() {
    let s = setup("true").await;
    let check_run = serde_json::to_vec(&webhook_fixture("check_run/created.payload.json")).unwrap();
    let reply = s
        .app
        .api
        .send_webhook("check_run", "d-check", &check_run, None)
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(processed(&s.app, "d-check").await.0, "ignored");

    let elsewhere =
        serde_json::to_vec(&webhook_fixture("pull_request/opened.payload.json")).unwrap();
    s.app
        .api
        .send_webhook("pull_request", "d-elsewhere", &elsewhere, None)
        .await;
    let (state, note) = processed(&s.app, "d-elsewhere").await;
    assert_eq!(state, "ignored");
    assert!(note.contains("Codertocat/Hello-World"), "{note}");
    let stored = s.app.store.delivery("d-elsewhere").await.unwrap();
    assert_eq!(
        stored.payload, elsewhere,
        "the raw body is kept byte for byte"
    );
    assert!(validations(&s.app, s.project).await.is_empty());
}

#[tokio::test]
async fn a_signed_but_malformed_payload_is_stored_and_marked_failed() {
    let s = setup("true").await;
    let reply = s
        .app
        .api
        .send_webhook("pull_request", "d-bad", br#"{"action": 3}"#, None)
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let (state, note) = processed(&s.app, "d-bad").await;
    assert_eq!(state, "failed");
    assert!(note.contains("not as GitHub documents it"), "{note}");
}

#[tokio::test]
async fn bodies_over_githubs_cap_and_missing_headers_are_refused() {
    let s = setup("true").await;
    let huge = vec![b' '; slipway_forge::webhook::MAX_PAYLOAD_BYTES + 1];
    let reply = s
        .app
        .api
        .send_webhook("pull_request", "d-huge", &huge, None)
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    let body = pull_request("opened", 7, &s.sha, &s.repo, false);
    let no_delivery = s
        .app
        .api
        .send_webhook("pull_request", "", &body, None)
        .await;
    assert_eq!(no_delivery.status, StatusCode::BAD_REQUEST);
    assert_eq!(s.app.store.count_deliveries().await.unwrap(), 0);
}

#[tokio::test]
async fn a_projects_own_webhook_secret_admits_deliveries_for_its_repository_only() {
    let s = setup("true").await;
    let own = "project-specific-webhook-secret";
    assert_eq!(
        s.app
            .api
            .put_secret(s.project, "GITHUB_WEBHOOK_SECRET", own)
            .await
            .status,
        StatusCode::CREATED
    );

    let body = pull_request("opened", 7, &s.sha, &s.repo, false);
    let signature = slipway_forge::webhook::sign(own.as_bytes(), &body);
    let reply = s
        .app
        .api
        .send_webhook("pull_request", "d-own", &body, Some(&signature))
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    processed(&s.app, "d-own").await;
    assert_eq!(validations(&s.app, s.project).await.len(), 1);

    // The same secret does not vouch for a delivery about another repository.
    let mut other: Value = serde_json::from_slice(&body).unwrap();
    other["repository"]["full_name"] = json!("acme/elsewhere");
    let other = serde_json::to_vec(&other).unwrap();
    let signature = slipway_forge::webhook::sign(own.as_bytes(), &other);
    let reply = s
        .app
        .api
        .send_webhook("pull_request", "d-other", &other, Some(&signature))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(s.app.store.delivery("d-other").await.is_err());
}

#[tokio::test]
async fn a_form_encoded_delivery_github_s_default_starts_a_validation() {
    let s = setup("true").await;
    let body = pull_request("opened", 8, &s.sha, &s.repo, false);
    let reply = s
        .app
        .api
        .send_form_webhook("pull_request", "d-form", &body)
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    let (state, note) = processed(&s.app, "d-form").await;
    assert_eq!(state, "processed", "{note}");
    let list = validations(&s.app, s.project).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["pr"], 8);
}

#[tokio::test]
async fn a_comment_by_a_deleted_account_is_processed_not_failed() {
    let s = setup("true").await;
    let mut payload: Value = serde_json::from_slice(&comment(7, "/slipway retry", "NONE")).unwrap();
    payload["comment"]["user"] = Value::Null;
    let body = serde_json::to_vec(&payload).unwrap();
    let reply = s
        .app
        .api
        .send_webhook("issue_comment", "d-ghost", &body, None)
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    let (state, note) = processed(&s.app, "d-ghost").await;
    assert_ne!(state, "failed", "{note}");
}
