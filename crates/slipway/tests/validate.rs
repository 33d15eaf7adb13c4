//! `slipway validate` as a user runs it.

use serde_json::Value;
use slipway_testkit::{commit_files, fixture_repo, PYTHON_APP, PYTHON_APP_TEST};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_slipway");

fn validate(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("validate")
        .args(args)
        .env_remove("SLIPWAY_DATA_DIR")
        .output()
        .expect("slipway runs")
}

fn good_repo(dir: &std::path::Path) -> String {
    let pipeline = format!(
        "[build]\ncommands = [\"python3 -m py_compile app.py\"]\n[service]\nstart = \"python3 app.py\"\nhealth_path = \"/health\"\n[test]\ncommands = [{PYTHON_APP_TEST:?}]\n"
    );
    fixture_repo(dir, &[("app.py", PYTHON_APP), (".slipway.toml", &pipeline)])
}

#[test]
fn a_passing_commit_exits_0_with_a_json_report() {
    let dir = tempfile::tempdir().unwrap();
    let sha = good_repo(dir.path());
    let out = validate(&[dir.path().to_str().unwrap(), "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "passed");
    assert_eq!(report["sha"], sha);
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 9);
    let test = steps.iter().find(|s| s["name"] == "test").unwrap();
    assert_eq!(test["status"], "passed");
    assert!(test["log_tail"].as_str().unwrap().contains("test passed"));
    assert!(test["duration_ms"].as_i64().is_some());
    for name in ["checkout", "build", "deploy", "test"] {
        assert!(stderr.contains(&format!("✓ {name}")), "{stderr}");
    }
    assert!(stderr.contains("passed:"), "{stderr}");
}

#[test]
fn a_failing_commit_exits_1_and_shows_the_command_exit_code_and_log_tail() {
    let dir = tempfile::tempdir().unwrap();
    good_repo(dir.path());
    commit_files(
        dir.path(),
        &[(
            ".slipway.toml",
            "[test]\ncommands = [\"echo assertion failed: 2 != 3; exit 5\"]\n",
        )],
        "break",
    );
    let out = validate(&[dir.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("step:      test"), "{stderr}");
    assert!(stderr.contains("exit code: 5"), "{stderr}");
    assert!(stderr.contains("assertion failed: 2 != 3"), "{stderr}");
}

#[test]
fn an_older_revision_and_a_branch_can_be_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_repo(dir.path());
    commit_files(
        dir.path(),
        &[(".slipway.toml", "[test]\ncommands = [\"exit 1\"]\n")],
        "break",
    );
    let out = validate(&[dir.path().to_str().unwrap(), "--rev", "HEAD~1", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["sha"], good);
    let url = format!("file://{}", dir.path().display());
    let out = validate(&[&url, "--branch", "main"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = validate(&[dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a git repository"));

    good_repo(dir.path());
    let out = validate(&[dir.path().to_str().unwrap(), "--rev", "no-such-rev"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'no-such-rev' is not a commit"));

    let bad_config = dir.path().join("pipeline.toml");
    std::fs::write(&bad_config, "[test]\ncommandz = []\n").unwrap();
    let out = validate(&[
        "--config",
        bad_config.to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pipeline.toml:2"));
}

#[test]
fn a_pipeline_file_given_on_the_command_line_serves_a_repository_without_one() {
    let dir = tempfile::tempdir().unwrap();
    fixture_repo(dir.path(), &[("README.md", "plain repository")]);
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "[test]\ncommands = [\"grep -q plain README.md\"]\n",
    )
    .unwrap();
    let out = validate(&[
        dir.path().to_str().unwrap(),
        "--config",
        config.path().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
