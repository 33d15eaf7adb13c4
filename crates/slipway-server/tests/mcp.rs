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
