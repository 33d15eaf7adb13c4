//! `/mcp` as a coding agent uses it: the official Python MCP client over streamable HTTP
//! (`tests/mcp/http_client.py`) is refused without a token (401) and with a viewer's token
//! for `validate` (403), reads as a viewer, and validates a project's branch as an operator.

use reqwest::StatusCode;
use serde_json::{json, Value};
use slipway_core::validation::ValidationStatus;
use slipway_store::ValidationFilter;
use slipway_testkit::{fixture_repo, mcp_client, TestApp};
use std::path::Path;

async fn token(app: &TestApp, role: &str) -> String {
    let created = app.api.create_token(role, role).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    created.body["token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_client_is_authenticated_role_checked_and_validates_a_branch() {
    let app = TestApp::spawn().await;
    let repo = tempfile::tempdir().unwrap();
    fixture_repo(
        repo.path(),
        &[(
            ".slipway.toml",
            "[test]\ncommands = [\"echo assertion failed: 1 != 2; exit 3\"]\n",
        )],
    );
    let created = app
        .api
        .create_project(&json!({"name": "app", "repo": repo.path().display().to_string()}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let operator = token(&app, "operator").await;
    let viewer = token(&app, "viewer").await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/http_client.py");
    let url = format!("{}/mcp", app.base_url);
    let seen = tokio::task::spawn_blocking(move || {
        mcp_client::run(&script, &[&url, &operator, &viewer, "app", "main"])
    })
    .await
    .unwrap();

    assert_eq!(seen["without_token"], json!([401]), "{seen}");
    assert!(
        seen["viewer_validate"]
            .as_array()
            .unwrap()
            .contains(&json!(403)),
        "{seen}"
    );
    assert_eq!(
        seen["viewer"]["tools"],
        json!(["get_logs", "get_run", "get_validation", "list_projects"]),
        "{seen}"
    );
    assert_eq!(seen["viewer"]["projects"], json!(["app"]), "{seen}");
    assert_eq!(seen["viewer"]["missing_run"]["kind"], "not_found", "{seen}");

    let operator = &seen["operator"];
    assert_eq!(
        operator["tools"],
        json!([
            "get_logs",
            "get_run",
            "get_validation",
            "list_projects",
            "reply_to_run",
            "start_run",
            "validate"
        ]),
        "{seen}"
    );
    let report = &operator["report"];
    assert_eq!(report["status"], "failed", "{seen}");
    assert_eq!(report["outcome"], "failed", "{seen}");
    assert_eq!(report["failing_step"]["name"], "test", "{seen}");
    assert_eq!(report["failing_step"]["exit_code"], 3, "{seen}");
    assert!(
        report["failing_step"]["log_tail"]
            .as_str()
            .unwrap()
            .contains("assertion failed: 1 != 2"),
        "{seen}"
    );
    // A server's paths are not a client's business.
    assert_eq!(report["artifacts"], Value::Null, "{seen}");
    assert!(
        operator["progress"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.as_str().unwrap().starts_with("test failed")),
        "{seen}"
    );
    assert_strictly_increasing(&operator["progress_values"]);
    for (case, kind) in [
        ("neither_branch_nor_sha", "bad_argument"),
        ("unknown_project", "not_found"),
        ("reply_without_text", "bad_argument"),
    ] {
        assert_eq!(operator[case]["kind"], kind, "{case}: {seen}");
    }
    // Who asked is recorded: the token, through MCP.
    let id = report["id"].as_i64().unwrap();
    let record = app
        .store
        .validation(slipway_core::ValidationId(id))
        .await
        .unwrap();
    assert_eq!(record.started_by.as_deref(), Some("token operator (MCP)"));
}

/// Says "1. write fixed to value.txt" when asked to plan, then does it.
const PLANNING_AGENT: &str = r#"prompt=$(cat)
if [ "$SLIPWAY_PLAN_MODE" = 1 ]; then
  echo "1. write fixed to value.txt"
else
  echo fixed > value.txt
fi"#;

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_runs_an_agent_through_its_plan_and_cancels_a_validation_over_http() {
    let app = TestApp::spawn().await;
    let work = app.data_dir.path().join("seed");
    fixture_repo(
        &work,
        &[
            (
                ".slipway.toml",
                "[test]\ncommands = [\"grep -qx fixed value.txt\"]\n",
            ),
            ("value.txt", "base\n"),
        ],
    );
    let origin = app.data_dir.path().join("origin.git");
    slipway_testkit::git(
        &work,
        &["clone", "-q", "--bare", ".", origin.to_str().unwrap()],
    );
    let created = app
        .api
        .create_project(&json!({"name": "runs", "repo": origin.display().to_string()}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let runs = created.body["id"].as_i64().unwrap();
    let agent = json!({"agent": {"kind": "command", "command": PLANNING_AGENT, "plan_mode": true}});
    let saved = app.api.put_settings(runs, &agent).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.text);

    let marker = format!("sleep {}", 60_000 + std::process::id() % 9_000);
    let slow = tempfile::tempdir().unwrap();
    fixture_repo(
        slow.path(),
        &[(
            ".slipway.toml",
            &format!("[test]\ncommands = [\"{marker}\"]\n"),
        )],
    );
    let created = app
        .api
        .create_project(&json!({"name": "slow", "repo": slow.path().display().to_string()}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let operator = token(&app, "operator").await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/http_runs_client.py");
    let url = format!("{}/mcp", app.base_url);
    let client_marker = marker.clone();
    let seen = tokio::task::spawn_blocking(move || {
        mcp_client::run(&script, &[&url, &operator, "runs", "slow", &client_marker])
    })
    .await
    .unwrap();

    let planned = &seen["planned"];
    assert_eq!(planned["status"], "awaiting_input", "{seen}");
    assert!(
        planned.to_string().contains("1. write fixed to value.txt"),
        "the plan is shown: {seen}"
    );
    assert_eq!(seen["continue_a_plan"]["kind"], "conflict", "{seen}");
    assert_eq!(seen["ended"]["status"], "succeeded", "{seen}");

    assert!(
        seen["running_before_cancel"].as_u64().unwrap() > 0,
        "{seen}"
    );
    assert_eq!(seen["left_after_cancel"], json!([]), "{seen}");
    // The cancelled request cancelled its validation.
    let slow_id = slipway_core::ProjectId(created.body["id"].as_i64().unwrap());
    let mut status = ValidationStatus::Running;
    for _ in 0..600 {
        let newest = app
            .store
            .list_validations(slow_id, &ValidationFilter::default(), 1)
            .await
            .unwrap();
        status = newest[0].status;
        if status.is_final() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, ValidationStatus::Cancelled, "{seen}");
}

/// The MCP spec wants a request's `progress` to increase with every notification.
fn assert_strictly_increasing(values: &serde_json::Value) {
    let values: Vec<f64> = values
        .as_array()
        .expect("progress values")
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(!values.is_empty(), "no progress was notified");
    assert!(
        values.windows(2).all(|w| w[0] < w[1]),
        "progress must increase with every notification: {values:?}"
    );
}

/// A raw `/mcp` request: `(status, mcp-session-id, body)`.
async fn mcp_request(
    app: &TestApp,
    method: reqwest::Method,
    token: &str,
    session: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Option<String>, String) {
    let mut request = reqwest::Client::new()
        .request(method.clone(), format!("{}/mcp", app.base_url))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18");
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let session = response
        .headers()
        .get("mcp-session-id")
        .map(|id| id.to_str().unwrap().to_owned());
    // A GET's event stream never ends: its status and headers are enough.
    let text = if status.is_success() && method == reqwest::Method::GET {
        String::new()
    } else {
        response.text().await.unwrap()
    };
    (status, session, text)
}

/// Opens a session of `token`: `Ok(id)`, or the refusal's status and body.
async fn open_session(app: &TestApp, token: &str) -> Result<String, (StatusCode, String)> {
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}});
    let (status, session, text) =
        mcp_request(app, reqwest::Method::POST, token, None, Some(initialize)).await;
    if status != StatusCode::OK {
        return Err((status, text));
    }
    let session = session.expect("an initialize answer names its session");
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _, text) = mcp_request(
        app,
        reqwest::Method::POST,
        token,
        Some(&session),
        Some(initialized),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    Ok(session)
}

fn list_tools() -> Value {
    json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_answers_only_the_token_that_opened_it_and_sessions_are_capped() {
    use reqwest::Method;
    let app = TestApp::spawn().await;
    let operator = token(&app, "operator").await;
    let viewer = token(&app, "viewer").await;
    let theirs = open_session(&app, &operator).await.unwrap();

    // Another token cannot cancel in, listen to, call in or close the operator's session.
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 77, "reason": "not yours"}});
    for (method, body) in [
        (Method::POST, Some(cancel)),
        (Method::POST, Some(list_tools())),
        (Method::GET, None),
        (Method::DELETE, None),
    ] {
        let (status, _, text) =
            mcp_request(&app, method.clone(), &viewer, Some(&theirs), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}: {text}");
        assert!(text.contains("mcp-session-id"), "{method}: {text}");
    }
    // ... nor can a stronger token use a viewer's.
    let mine = open_session(&app, &viewer).await.unwrap();
    let (status, _, text) = mcp_request(
        &app,
        Method::POST,
        &operator,
        Some(&mine),
        Some(list_tools()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    // The owner's session still works.
    let (status, _, text) = mcp_request(
        &app,
        Method::POST,
        &operator,
        Some(&theirs),
        Some(list_tools()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("get_validation"), "{text}");

    // A token holds at most PER_TOKEN sessions; closing one frees its place.
    let most = slipway_mcp::sessions::PER_TOKEN;
    let mut opened = vec![mine];
    while opened.len() < most {
        opened.push(open_session(&app, &viewer).await.unwrap());
    }
    let (status, text) = open_session(&app, &viewer).await.unwrap_err();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{text}");
    assert!(text.contains("too_many_sessions"), "{text}");
    assert!(
        text.contains(&format!("{most} open MCP sessions")),
        "{text}"
    );
    // Other tokens are not held back by it.
    open_session(&app, &operator).await.unwrap();
    let (status, _, text) =
        mcp_request(&app, Method::DELETE, &viewer, Some(&opened[0]), None).await;
    assert!(status.is_success(), "{status}: {text}");
    open_session(&app, &viewer).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_written_in_a_command_is_masked_in_the_api_the_dashboard_and_mcp() {
    const SECRET: &str = "sekrit-4711-value";
    let app = TestApp::spawn().await;
    let repo = tempfile::tempdir().unwrap();
    fixture_repo(
        repo.path(),
        &[(
            ".slipway.toml",
            &format!("[test]\ncommands = [\"test {SECRET} = nope\"]\n"),
        )],
    );
    // A commit title holding it too: lists show titles.
    slipway_testkit::commit_files(
        repo.path(),
        &[("note.txt", "x\n")],
        &format!("use {SECRET} here"),
    );
    let created = app
        .api
        .create_project(&json!({"name": "masked", "repo": repo.path().display().to_string()}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let project = created.body["id"].as_i64().unwrap();
    let saved = app.api.put_secret(project, "DEPLOY_KEY", SECRET).await;
    assert!(saved.status.is_success(), "{}", saved.text);
    let done = app.api.validated(project, &json!({"branch": "main"})).await;
    assert_eq!(done["status"], "failed", "{done}");
    let id = done["id"].as_i64().unwrap();

    let viewer = app.api_as("viewer").await;
    let shown = viewer
        .send(
            reqwest::Method::GET,
            &format!("/api/v1/validations/{id}"),
            slipway_testkit::Body::None,
        )
        .await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text);
    let command = shown.body["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "test")
        .map(|s| s["command"].as_str().unwrap().to_owned())
        .unwrap();
    assert!(command.starts_with("test "), "{command}");
    let listed = viewer
        .send(
            reqwest::Method::GET,
            &format!("/api/v1/projects/{project}/validations"),
            slipway_testkit::Body::None,
        )
        .await;

    let http = reqwest::Client::new();
    let login = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/login", app.base_url))
        .form(&[("token", slipway_testkit::ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let page = http
        .get(format!("{}/validations/{id}", app.base_url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("test "), "{page}");
    let project_page = http
        .get(format!("{}/projects/{project}", app.base_url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        project_page.contains(" here"),
        "the title is listed: {project_page}"
    );

    let viewer_token = token(&app, "viewer").await;
    let session = open_session(&app, &viewer_token).await.unwrap();
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "get_validation", "arguments": {"id": id}}});
    let (status, _, mcp) = mcp_request(
        &app,
        reqwest::Method::POST,
        &viewer_token,
        Some(&session),
        Some(call),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{mcp}");
    assert!(mcp.contains("failing_step"), "{mcp}");
    for (what, text) in [
        ("GET /api/v1/validations/{id}", shown.text.as_str()),
        ("the list", listed.text.as_str()),
        ("the dashboard", page.as_str()),
        ("the project page", project_page.as_str()),
        ("get_validation", mcp.as_str()),
    ] {
        assert!(!text.contains(SECRET), "{what} shows the secret: {text}");
    }
}
