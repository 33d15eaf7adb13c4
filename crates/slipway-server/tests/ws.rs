//! `GET /ws` without a browser: authentication, ordering, replay with `after`, many
//! subscribers, ping/pong, and project isolation.

use serde_json::{json, Value};
use slipway_core::ProjectId;
use slipway_testkit::events::EventStream;
use slipway_testkit::{fixture_repo, TestApp, ADMIN_TOKEN};
use std::time::Duration;

async fn local_project(app: &TestApp, name: &str, test: &str) -> i64 {
    let dir = app.data_dir.path().join(name);
    fixture_repo(
        &dir,
        &[(".slipway.toml", &format!("[test]\ncommands = [{test:?}]\n"))],
    );
    let reply = app
        .api
        .create_project(&json!({"name": name, "repo": dir.display().to_string()}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body["id"].as_i64().unwrap()
}

fn ids(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e["event_id"].as_i64().unwrap())
        .collect()
}

fn finished(event: &Value) -> bool {
    event["type"] == "validation_update"
        && event["step_index"].is_null()
        && matches!(event["overall_status"].as_str(), Some("passed" | "failed"))
}

#[tokio::test]
async fn a_validation_streams_in_order_and_a_reconnect_with_after_gets_exactly_what_it_missed() {
    let app = TestApp::spawn().await;
    let project = local_project(&app, "app", "echo one; echo two; echo three").await;
    let mut events = app.events().await;
    events.subscribe(project, None).await;
    let reply = app
        .api
        .start_validation(project, &json!({"branch": "main"}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let seen = events.until(finished).await;
    assert_eq!(seen.last().unwrap()["overall_status"], "passed", "{seen:?}");
    let order = ids(&seen);
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    // The steps turn running and then passed, in order; the test's lines arrive numbered.
    let test_states: Vec<&str> = seen
        .iter()
        .filter(|e| e["type"] == "validation_update" && e["step"] == "test")
        .map(|e| e["step_status"].as_str().unwrap())
        .collect();
    assert_eq!(test_states, ["running", "passed"]);
    let lines: Vec<&str> = seen
        .iter()
        .filter(|e| e["type"] == "log" && e["step"] == "test")
        .map(|e| e["line"].as_str().unwrap())
        .collect();
    assert!(
        lines.ends_with(&["one", "two", "three"])
            || lines.windows(3).any(|w| w == ["one", "two", "three"]),
        "{lines:?}"
    );
    let seqs: Vec<i64> = seen
        .iter()
        .filter(|e| e["type"] == "log")
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    events.close().await;

    // A client that dropped after the third message reconnects and gets the rest, in order.
    let mut again = app.events().await;
    again.subscribe(project, Some(order[2])).await;
    let replayed = again.until(finished).await;
    assert_eq!(ids(&replayed), order[3..].to_vec());
    assert_eq!(replayed, seen[3..].to_vec());
}

#[tokio::test]
async fn a_thousand_events_reach_every_one_of_fifty_subscribers_in_order() {
    let app = TestApp::spawn().await;
    let project = local_project(&app, "app", "true").await;
    let mut clients = Vec::new();
    for _ in 0..50 {
        let mut client = app.events().await;
        client.subscribe(project, None).await;
        client
            .send(json!({"type": "ping", "timestamp": "t0"}))
            .await;
        assert_eq!(client.next().await["type"], "pong");
        clients.push(client);
    }
    let store = app.store.clone();
    let emitter = tokio::spawn(async move {
        for n in 0..1000 {
            store
                .emit_event(ProjectId(project), slipway_store::EventKind::PrNotification, &json!({"type": "pr_notification", "project_id": project, "pr_url": format!("u{n}"), "action": "opened"}))
                .await
                .unwrap();
        }
    });
    for client in &mut clients {
        let mut urls = Vec::new();
        let mut last = 0;
        while urls.len() < 1000 {
            let event = client.next().await;
            let id = event["event_id"].as_i64().unwrap();
            assert!(id > last, "out of order: {id} after {last}");
            last = id;
            urls.push(event["pr_url"].as_str().unwrap().to_owned());
        }
        assert_eq!(urls, (0..1000).map(|n| format!("u{n}")).collect::<Vec<_>>());
    }
    emitter.await.unwrap();
}

#[tokio::test]
async fn subscribers_get_only_their_projects_events() {
    let app = TestApp::spawn().await;
    let mine = local_project(&app, "mine", "true").await;
    let theirs = local_project(&app, "theirs", "true").await;
    let mut events = app.events().await;
    events.subscribe(mine, None).await;
    events.send(json!({"type": "ping"})).await;
    assert_eq!(events.next().await["type"], "pong", "subscribed");
    app.store
        .emit_event(
            ProjectId(theirs),
            slipway_store::EventKind::PrNotification,
            &json!({"pr_url": "theirs"}),
        )
        .await
        .unwrap();
    app.store
        .emit_event(
            ProjectId(mine),
            slipway_store::EventKind::PrNotification,
            &json!({"pr_url": "mine"}),
        )
        .await
        .unwrap();
    let event = events.next().await;
    assert_eq!(event["pr_url"], "mine");
    assert_eq!(event["type"], "pr_notification");
    assert!(events
        .next_within(Duration::from_millis(300))
        .await
        .is_none());
}

#[tokio::test]
async fn ping_gets_pong_and_bad_messages_get_an_error_not_a_dropped_connection() {
    let app = TestApp::spawn().await;
    let mut events = app.events().await;
    events
        .send(json!({"type": "ping", "timestamp": "2026-11-22T00:00:00Z"}))
        .await;
    let pong = events.next().await;
    assert_eq!(pong["type"], "pong");
    assert_eq!(pong["timestamp"], "2026-11-22T00:00:00Z");
    assert!(pong["event_id"].is_i64());
    events
        .send(json!({"type": "subscribe", "project": 1}))
        .await;
    let error = events.next().await;
    assert_eq!(error["type"], "error");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("subscribe_project"),
        "{error}"
    );
    events.subscribe(999, None).await;
    assert!(events.next().await["message"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
    events.send(json!({"type": "ping"})).await;
    assert_eq!(events.next().await["type"], "pong", "still connected");
}

#[tokio::test]
async fn the_stream_needs_a_valid_token_or_a_same_origin_session() {
    let app = TestApp::spawn().await;
    assert_eq!(
        EventStream::connect(&app.base_url, None, &[]).await.err(),
        Some(401)
    );
    assert_eq!(
        EventStream::connect(&app.base_url, Some("slw_forged"), &[])
            .await
            .err(),
        Some(401)
    );
    assert!(EventStream::connect(&app.base_url, Some(ADMIN_TOKEN), &[])
        .await
        .is_ok());
    let cookie = format!("slipway_session={}", "not-a-session");
    assert_eq!(
        EventStream::connect(&app.base_url, None, &[("cookie", &cookie)])
            .await
            .err(),
        Some(401)
    );
}

#[tokio::test]
async fn revoking_a_token_closes_the_streams_opened_with_it_within_a_second() {
    let app = TestApp::spawn().await;
    let created = app.api.create_token("watcher", "viewer").await;
    let (token, id) = (
        created.body["token"].as_str().unwrap().to_owned(),
        created.body["id"].as_i64().unwrap(),
    );
    let mut revoked = EventStream::connect(&app.base_url, Some(&token), &[])
        .await
        .unwrap();
    let mut other = EventStream::connect(&app.base_url, Some(ADMIN_TOKEN), &[])
        .await
        .unwrap();
    revoked.send(json!({"type": "ping"})).await;
    assert_eq!(revoked.next().await["type"], "pong");
    assert_eq!(app.api.revoke_token(id).await.status, 204);
    assert_eq!(
        revoked.closed_within(Duration::from_secs(1)).await,
        Some(4401),
        "closed with the revocation code"
    );
    assert_eq!(other.closed_within(Duration::from_millis(300)).await, None);
    other.send(json!({"type": "ping"})).await;
    assert_eq!(
        other.next().await["type"],
        "pong",
        "other streams stay open"
    );
}
