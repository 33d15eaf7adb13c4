//! `slipway mcp` as a coding agent uses it: the official Python MCP client over stdio
//! (`tests/mcp/stdio_client.py`) lists the tools, validates a passing and a failing
//! repository, gets progress per step and cancels a long validation.

use serde_json::Value;
use slipway_testkit::{fixture_repo, mcp_client};
use std::path::Path;

const BIN: &str = env!("CARGO_BIN_EXE_slipway");

fn repo(dir: &Path, pipeline: &str) {
    fixture_repo(
        dir,
        &[("README.md", "fixture\n"), (".slipway.toml", pipeline)],
    );
}

#[test]
fn a_coding_agent_validates_over_stdio_sees_progress_and_can_cancel() {
    let passing = tempfile::tempdir().unwrap();
    repo(
        passing.path(),
        "[test]\ncommands = [\"echo the suite passed\"]\n",
    );
    let failing = tempfile::tempdir().unwrap();
    repo(
        failing.path(),
        "[test]\ncommands = [\"echo assertion failed: 2 != 3; exit 5\"]\n",
    );
    // A command no other process has: how the client finds what the validation started.
    let marker = format!("sleep {}", 70_000 + std::process::id() % 9_000);
    let long = tempfile::tempdir().unwrap();
    repo(long.path(), &format!("[test]\ncommands = [\"{marker}\"]\n"));

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/stdio_client.py");
    let seen = mcp_client::run(
        &script,
        &[
            BIN,
            passing.path().to_str().unwrap(),
            failing.path().to_str().unwrap(),
            long.path().to_str().unwrap(),
            &marker,
        ],
    );

    assert!(
        seen["protocol_version"].as_str().unwrap() >= "2025-06-18",
        "{seen}"
    );
    let tools: Vec<&str> = seen["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tools, ["get_logs", "get_validation", "validate"], "{seen}");

    assert!(
        seen["passed_steps"]
            .as_array()
            .unwrap()
            .contains(&Value::from("test")),
        "{seen}"
    );
    let progress: Vec<&str> = seen["progress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(progress.contains(&"test running"), "{progress:?}");
    assert_strictly_increasing(&seen["progress_values"]);
    assert!(
        progress.iter().any(|m| m.starts_with("test passed")),
        "{progress:?}"
    );
    assert!(
        seen["test_log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("the suite passed")),
        "{seen}"
    );

    assert_eq!(seen["log_pages"][0], 1, "{seen}");
    assert!(seen["log_pages"][1].as_u64().unwrap() >= 1, "{seen}");

    let failing_step = &seen["failing_step"];
    assert_eq!(failing_step["name"], "test", "{seen}");
    assert_eq!(failing_step["exit_code"], 5, "{seen}");
    assert!(
        failing_step["log_tail"]
            .as_str()
            .unwrap()
            .contains("assertion failed: 2 != 3"),
        "{seen}"
    );
    let text = seen["failing_text"].as_str().unwrap();
    assert!(
        text.contains("failing step: test") && text.contains("exit code: 5"),
        "{text}"
    );

    assert_eq!(seen["bad_path"]["kind"], "bad_argument", "{seen}");
    assert!(
        seen["bad_path"]["message"]
            .as_str()
            .unwrap()
            .contains("/no/such/repository"),
        "{seen}"
    );
    assert_eq!(seen["bad_field"]["kind"], "bad_argument", "{seen}");
    assert!(
        seen["bad_field"]["message"]
            .as_str()
            .unwrap()
            .contains("path"),
        "{seen}"
    );
    assert_eq!(seen["bad_step"]["kind"], "bad_argument", "{seen}");

    assert!(
        seen["running_before_cancel"].as_u64().unwrap() >= 1,
        "{seen}"
    );
    assert_eq!(seen["left_after_cancel"], Value::Array(vec![]), "{seen}");
    assert_eq!(seen["cancelled_status"], "cancelled", "{seen}");
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
