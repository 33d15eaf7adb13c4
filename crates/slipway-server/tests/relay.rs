//! The webhook relay end to end: GitHub-signed deliveries posted to the relay Worker on the
//! real Workers runtime (`wrangler dev`, workerd), pulled by the real server over HTTP,
//! stored through the webhook intake, acknowledged.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{json, Value};
use slipway_testkit::relay::{LocalRelay, RELAY_TOKEN};
use slipway_testkit::{fixture_repo, webhook_fixture, TestApp, WEBHOOK_SECRET};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A delivery of an event Slipway records and ignores (no project is on its repository).
fn issue_comment(n: usize) -> Vec<u8> {
    let mut payload = webhook_fixture("issue_comment/created.payload.json");
    payload["repository"]["full_name"] = json!("acme/elsewhere");
    payload["comment"]["body"] = json!(format!("comment {n}"));
    serde_json::to_vec(&payload).unwrap()
}

fn delivery_id(n: usize) -> String {
    format!("0000{n:04}-aaaa-bbbb-cccc-relay0000000")
}

/// Waits until Slipway has stored `count` deliveries; fails if it ever holds more.
async fn stored(app: &TestApp, count: i64) {
    for _ in 0..2_400 {
        let now = app.store.count_deliveries().await.unwrap();
        assert!(
            now <= count,
            "Slipway stored {now} deliveries, expected {count}"
        );
        if now == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "Slipway stored {} of {count} deliveries",
        app.store.count_deliveries().await.unwrap()
    );
}

async fn ready(app: &TestApp) -> Value {
    reqwest::get(format!("{}/ready", app.base_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Each of `ids` is stored once, no other, and Slipway's puller saw no duplicate.
async fn each_stored_once(app: &TestApp, ids: &[String]) {
    stored(app, ids.len() as i64).await;
    for id in ids {
        app.store
            .delivery(id)
            .await
            .expect("the delivery is stored");
    }
}

#[tokio::test]
async fn a_forged_or_unsigned_delivery_is_refused_at_the_edge_and_never_reaches_slipway() {
    let dir = tempfile::tempdir().unwrap();
    let relay = LocalRelay::start(dir.path()).await;
    let app = TestApp::spawn_pulling(|_| {}, Some(relay.config())).await;
    let body = issue_comment(1);
    let forged = slipway_forge::webhook::sign(b"not the secret", &body);
    let refused = relay
        .post_signed("issue_comment", "d-forged", &body, Some(&forged))
        .await;
    assert_eq!(refused, StatusCode::UNAUTHORIZED);
    let unsigned = relay
        .post_signed("issue_comment", "d-unsigned", &body, None)
        .await;
    assert_eq!(unsigned, StatusCode::UNAUTHORIZED);
    let of_another_body = slipway_forge::webhook::sign(WEBHOOK_SECRET.as_bytes(), b"{}");
    let swapped = relay
        .post_signed("issue_comment", "d-swapped", &body, Some(&of_another_body))
        .await;
    assert_eq!(swapped, StatusCode::UNAUTHORIZED);
    assert_eq!(
        relay.status().await["stored"],
        0,
        "nothing refused is stored"
    );

    // A genuine delivery after them goes through: what Slipway holds then is all it got.
    assert_eq!(
        relay.deliver("issue_comment", "d-genuine", &body).await,
        StatusCode::ACCEPTED
    );
    each_stored_once(&app, &["d-genuine".to_owned()]).await;
    relay.drained().await;
    assert_eq!(app.store.count_deliveries().await.unwrap(), 1);
    let shown = ready(&app).await;
    assert_eq!(shown["relay"]["state"], "connected", "{shown}");
    assert_eq!(shown["relay"]["stored"], 1, "{shown}");
    assert_eq!(shown["relay"]["refused"], 0, "{shown}");
}

#[tokio::test]
async fn a_redelivery_by_github_is_one_entry_at_the_relay_and_in_slipway() {
    let dir = tempfile::tempdir().unwrap();
    let relay = LocalRelay::start(dir.path()).await;
    let body = issue_comment(1);
    assert_eq!(
        relay.deliver("issue_comment", "d-twice", &body).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        relay.deliver("issue_comment", "d-twice", &body).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(relay.status().await["stored"], 1);
    let app = TestApp::spawn_pulling(|_| {}, Some(relay.config())).await;
    each_stored_once(&app, &["d-twice".to_owned()]).await;
    relay.drained().await;
}

#[tokio::test]
async fn a_delivery_larger_than_one_storage_value_is_kept_and_relayed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let relay = LocalRelay::start(dir.path()).await;
    let app = TestApp::spawn_pulling(|_| {}, Some(relay.config())).await;
    // Durable Object values are at most 2 MB: the relay keeps this one in parts.
    let mut payload = webhook_fixture("issue_comment/created.payload.json");
    payload["repository"]["full_name"] = json!("acme/elsewhere");
    payload["comment"]["body"] = json!("é".repeat(1_600_000));
    let body = serde_json::to_vec(&payload).unwrap();
    assert!(body.len() > 3 * 1024 * 1024);
    assert_eq!(
        relay.deliver("issue_comment", "d-large", &body).await,
        StatusCode::ACCEPTED
    );
    each_stored_once(&app, &["d-large".to_owned()]).await;
    assert_eq!(app.store.delivery("d-large").await.unwrap().payload, body);
}

#[tokio::test]
async fn the_relay_prunes_deliveries_past_its_retention_with_an_alarm() {
    let dir = tempfile::tempdir().unwrap();
    // A retention of about a second (the Worker's default is 72 hours).
    let relay = LocalRelay::start_keeping(dir.path(), Some("0.0003")).await;
    assert_eq!(
        relay
            .deliver("issue_comment", "d-old", &issue_comment(1))
            .await,
        StatusCode::ACCEPTED
    );
    // workerd's alarms run late on a loaded machine: allow two minutes.
    for _ in 0..2_400 {
        if relay.status().await["stored"] == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the delivery was never pruned: {}", relay.status().await);
}

#[tokio::test]
async fn a_burst_of_a_thousand_deliveries_arrives_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let relay = LocalRelay::start(dir.path()).await;
    let app = TestApp::spawn_pulling(|_| {}, Some(relay.config())).await;
    let ids: Vec<String> = (0..1_000).map(delivery_id).collect();
    post_all(&relay, &ids, 16).await;
    each_stored_once(&app, &ids).await;
    relay.drained().await;
    let shown = ready(&app).await;
    assert_eq!(shown["relay"]["stored"], 1_000, "{shown}");
    assert_eq!(shown["relay"]["backlog"], 0, "{shown}");
}

#[tokio::test]
async fn the_relay_killed_and_restarted_mid_burst_loses_nothing_it_answered_202() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = LocalRelay::start(dir.path()).await;
    let ids: Vec<String> = (0..600).map(delivery_id).collect();
    // Killed (workerd too) with 300 stored and nobody pulling: they survive on disk.
    post_all(&relay, &ids[..300], 8).await;
    relay.restart().await;
    assert_eq!(relay.status().await["backlog"], 300);
    // Killed again while Slipway pulls: its puller backs off and comes back.
    let app = TestApp::spawn_pulling(|_| {}, Some(relay.config())).await;
    post_all(&relay, &ids[300..450], 8).await;
    relay.restart().await;
    post_all(&relay, &ids[450..], 8).await;
    each_stored_once(&app, &ids).await;
    relay.drained().await;
    let shown = ready(&app).await;
    assert_eq!(shown["relay"]["state"], "connected", "{shown}");
    assert_eq!(shown["relay"]["stored"], 600, "{shown}");
}

#[tokio::test]
async fn a_lost_acknowledgement_is_served_again_and_acted_on_once() {
    let dir = tempfile::tempdir().unwrap();
    let relay = LocalRelay::start(dir.path()).await;
    let proxy = Proxy::start(&relay.base_url, 1).await;
    let app =
        TestApp::spawn_pulling(|_| {}, Some(relay.config_with(&proxy.url, RELAY_TOKEN))).await;
    let repo = app.data_dir.path().join("origin");
    let sha = fixture_repo(
        &repo,
        &[(".slipway.toml", "[test]\ncommands = [\"true\"]\n")],
    );
    let created = app
        .api
        .create_project(&json!({"name": "app", "repo": "acme/app"}))
        .await;
    let project = created.body["id"].as_i64().unwrap();

    let mut payload = webhook_fixture("pull_request/opened.payload.json");
    payload["repository"]["full_name"] = json!("acme/app");
    payload["number"] = json!(7);
    payload["pull_request"]["draft"] = json!(false);
    payload["pull_request"]["head"]["sha"] = json!(sha);
    payload["pull_request"]["head"]["ref"] = json!("feature");
    payload["pull_request"]["base"]["ref"] = json!("main");
    for side in ["head", "base"] {
        payload["pull_request"][side]["repo"]["clone_url"] =
            json!(format!("file://{}", repo.display()));
    }
    let body = serde_json::to_vec(&payload).unwrap();
    assert_eq!(
        relay.deliver("pull_request", "d-open", &body).await,
        StatusCode::ACCEPTED
    );
    relay.drained().await;
    assert_eq!(
        proxy.acks_lost.load(Ordering::SeqCst),
        1,
        "the first ack was lost"
    );
    assert!(proxy.served_again(), "the relay served the delivery again");
    assert_eq!(app.store.count_deliveries().await.unwrap(), 1);
    let shown = ready(&app).await;
    assert_eq!(shown["relay"]["stored"], 1, "{shown}");
    assert_eq!(shown["relay"]["duplicates"], 1, "{shown}");
    // Acted on once: one validation of the pull request's head, none cancelled by a second.
    let delivery = wait_processed(&app, "d-open").await;
    assert_eq!(
        delivery.state,
        slipway_store::DeliveryState::Processed,
        "{:?}",
        delivery.note
    );
    let validations = app.api.validations(project).await.body;
    let validations = validations.as_array().unwrap();
    assert_eq!(validations.len(), 1, "{validations:?}");
    assert_eq!(validations[0]["sha"], sha.as_str(), "{validations:?}");
}

#[tokio::test]
async fn a_wrong_token_or_url_shows_the_relay_failing_with_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let relay = LocalRelay::start(dir.path()).await;
    assert_eq!(
        relay
            .deliver("issue_comment", "d-waits", &issue_comment(1))
            .await,
        StatusCode::ACCEPTED
    );
    let wrong_token = TestApp::spawn_pulling(
        |_| {},
        Some(relay.config_with(&relay.base_url, "not-the-token")),
    )
    .await;
    let error = failing(&wrong_token).await;
    assert!(error.contains("refused SLIPWAY_RELAY_TOKEN"), "{error}");
    assert!(error.contains("RELAY_TOKEN"), "{error}");
    let elsewhere = format!("{}/nothing-here", wrong_token.base_url);
    let wrong_url =
        TestApp::spawn_pulling(|_| {}, Some(relay.config_with(&elsewhere, RELAY_TOKEN))).await;
    let error = failing(&wrong_url).await;
    assert!(error.contains("SLIPWAY_RELAY_URL"), "{error}");
    // Nothing was taken from the relay meanwhile.
    assert_eq!(relay.status().await["backlog"], 1);
    assert_eq!(wrong_token.store.count_deliveries().await.unwrap(), 0);
    // The dashboard shows it to a signed-in user; /ready shows the state without the error.
    let page = projects_page(&wrong_token).await;
    assert!(page.contains("Webhook relay failing"), "{page}");
    assert!(page.contains("refused SLIPWAY_RELAY_TOKEN"), "{page}");
    assert_eq!(ready(&wrong_token).await["relay"]["state"], "failing");
    assert!(ready(&wrong_token).await["relay"].get("error").is_none());
}

#[tokio::test]
async fn a_delivery_whose_signature_slipway_refuses_waits_at_the_relay_until_the_secrets_agree() {
    let dir = tempfile::tempdir().unwrap();
    let relay = LocalRelay::start(dir.path()).await;
    assert_eq!(
        relay
            .deliver("issue_comment", "d-held", &issue_comment(1))
            .await,
        StatusCode::ACCEPTED
    );
    let disagreeing =
        TestApp::spawn_pulling_with_secret(|_| {}, Some(relay.config()), "not-the-relays-secret")
            .await;
    let error = failing(&disagreeing).await;
    assert!(error.contains("1 deliveries wait at the relay"), "{error}");
    assert!(error.contains("GITHUB_WEBHOOK_SECRET"), "{error}");
    let shown = ready(&disagreeing).await;
    assert_eq!(shown["relay"]["held"], 1, "{shown}");
    assert_eq!(shown["relay"]["refused"], 1, "{shown}");
    assert_eq!(disagreeing.store.count_deliveries().await.unwrap(), 0);
    // Not acknowledged: it is still there for a Slipway whose secret agrees.
    assert_eq!(relay.status().await["backlog"], 1);
    drop(disagreeing);

    let agreeing = TestApp::spawn_pulling(|_| {}, Some(relay.config())).await;
    each_stored_once(&agreeing, &["d-held".to_owned()]).await;
    relay.drained().await;
}

/// The relay's error on the dashboard, once the puller shows it failing.
async fn failing(app: &TestApp) -> String {
    for _ in 0..400 {
        if ready(app).await["relay"]["state"] == "failing" {
            let page = projects_page(app).await;
            let start = page.find("id=\"relay-error\"").expect("the error is shown");
            return page[start..].split("</p>").next().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the relay never showed as failing: {}", ready(app).await);
}

/// The projects page as the admin sees it once signed in.
async fn projects_page(app: &TestApp) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = http
        .post(format!("{}/login", app.base_url))
        .form(&[("token", slipway_testkit::ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let page = http
        .get(format!("{}/", app.base_url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    page.text().await.unwrap()
}

async fn wait_processed(app: &TestApp, id: &str) -> slipway_store::Delivery {
    for _ in 0..800 {
        let delivery = app.store.delivery(id).await.unwrap();
        if delivery.state != slipway_store::DeliveryState::Pending {
            return delivery;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("delivery {id} was never processed");
}

/// Posts every delivery, `parallel` at a time, each answered 202.
async fn post_all(relay: &LocalRelay, ids: &[String], parallel: usize) {
    let ids: Vec<String> = ids.to_vec();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    let relay_url = relay.base_url.clone();
    for _ in 0..parallel {
        let (ids, next, url) = (ids.clone(), next.clone(), relay_url.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(id) = ids.get(i) else { break };
                let body = issue_comment(i);
                let signature = slipway_forge::webhook::sign(WEBHOOK_SECRET.as_bytes(), &body);
                let status = client
                    .post(format!("{url}/webhooks/github"))
                    .header("content-type", "application/json")
                    .header("x-github-event", "issue_comment")
                    .header("x-github-delivery", id)
                    .header("x-hub-signature-256", signature)
                    .body(body)
                    .send()
                    .await
                    .expect("the relay answers")
                    .status();
                assert_eq!(status, StatusCode::ACCEPTED, "{id}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// An HTTP proxy in front of the relay that loses the first `lose` acknowledgements (the
/// relay never sees them) and records which deliveries it served.
struct Proxy {
    url: String,
    acks_lost: Arc<AtomicUsize>,
    served: Arc<std::sync::Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    lose: usize,
    acks_lost: Arc<AtomicUsize>,
    served: Arc<std::sync::Mutex<Vec<String>>>,
    client: reqwest::Client,
}

impl Proxy {
    async fn start(upstream: &str, lose: usize) -> Self {
        let state = ProxyState {
            upstream: upstream.to_owned(),
            lose,
            acks_lost: Arc::new(AtomicUsize::new(0)),
            served: Arc::default(),
            client: reqwest::Client::new(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let proxy = Self {
            url,
            acks_lost: state.acks_lost.clone(),
            served: state.served.clone(),
        };
        let router = axum::Router::new().fallback(forward).with_state(state);
        tokio::spawn(async move { axum::serve(listener, router).await });
        proxy
    }

    /// Whether some delivery was served more than once.
    fn served_again(&self) -> bool {
        let served = self.served.lock().unwrap();
        served.iter().collect::<HashSet<_>>().len() < served.len()
    }
}

async fn forward(
    State(proxy): State<ProxyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Bytes) {
    // The acknowledgement rides on the next pull: lost, that pull goes on without it.
    let acks = serde_json::from_slice::<Value>(&body).unwrap_or_default();
    let acknowledges = acks["ack"].as_array().is_some_and(|ids| !ids.is_empty());
    let body = if acknowledges && proxy.acks_lost.load(Ordering::SeqCst) < proxy.lose {
        proxy.acks_lost.fetch_add(1, Ordering::SeqCst);
        Bytes::from_static(br#"{"ack": []}"#)
    } else {
        body
    };
    let target = format!("{}{}", proxy.upstream, uri);
    let mut request = proxy.client.request(method, target).body(body);
    for name in ["authorization", "content-type"] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value);
        }
    }
    let answer = request.send().await.expect("the relay answers the proxy");
    let status = answer.status();
    let bytes = answer.bytes().await.unwrap_or_default();
    if uri.path() == "/relay/deliveries" {
        if let Ok(pulled) = serde_json::from_slice::<Value>(&bytes) {
            let ids = pulled["deliveries"].as_array().cloned().unwrap_or_default();
            let mut served = proxy.served.lock().unwrap();
            served.extend(
                ids.iter()
                    .filter_map(|d| d["id"].as_str().map(str::to_owned)),
            );
        }
    }
    (StatusCode::from_u16(status.as_u16()).unwrap(), bytes)
}
