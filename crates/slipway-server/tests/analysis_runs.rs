//! The analysis step through the real server: command agents (real scripts) on the local
//! forge, real git, real validations, through the HTTP API.

use serde_json::{json, Value};
use slipway_testkit::{fixture_repo, git, TestApp};
use std::path::{Path, PathBuf};

/// The test the agent is tempted to delete: it fails until `value.txt` says `fixed`.
const TEST_FILE: &str = r#"def test_value():
    assert open("value.txt").read().strip() == "fixed"


def test_nothing_else_broke():
    assert 1 + 1 == 2


if __name__ == "__main__":
    for name, case in list(globals().items()):
        if name.startswith("test_"):
            case()
"#;

/// A bare repository whose `main` runs `tests/test_value.py` and analyses every change.
fn repository(app: &TestApp) -> PathBuf {
    let work = app.data_dir.path().join("seed");
    let pipeline = "[test]\ncommands = [\"python3 tests/test_value.py\"]\n[analysis]\n";
    fixture_repo(
        &work,
        &[
            (".slipway.toml", pipeline),
            ("value.txt", "base\n"),
            ("tests/test_value.py", TEST_FILE),
        ],
    );
    let origin = app.data_dir.path().join("origin.git");
    git(
        &work,
        &["clone", "-q", "--bare", ".", origin.to_str().unwrap()],
    );
    origin
}

async fn project(app: &TestApp, origin: &Path, agent: &str, settings: Value) -> i64 {
    let reply = app
        .api
        .create_project(&json!({"name": "app", "repo": origin.display().to_string()}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let id = reply.body["id"].as_i64().unwrap();
    let mut settings = settings;
    settings["agent"] = json!({"kind": "command", "command": agent, "plan_mode": false});
    let reply = app.api.put_settings(id, &settings).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    id
}

async fn start(app: &TestApp, project: i64, goal: &str) -> i64 {
    let reply = app.api.start_run(project, &json!({"goal": goal})).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body["id"].as_i64().unwrap()
}

/// First makes the suite green by deleting the failing test; once told it failed
/// validation, puts the test back and fixes the value. Keeps each prompt it was given.
fn cheating_agent() -> String {
    let kept = TEST_FILE.replace(
        "def test_value():\n    assert open(\"value.txt\").read().strip() == \"fixed\"\n\n\n",
        "",
    );
    assert_ne!(kept, TEST_FILE);
    format!(
        r#"prompt=$(cat)
case "$prompt" in
  *"failed validation"*)
    cp "$SLIPWAY_PROMPT_FILE" fix-prompt-seen.md
    cat > tests/test_value.py <<'EOF'
{TEST_FILE}EOF
    echo fixed > value.txt; echo "fixed the value" ;;
  *)
    cat > tests/test_value.py <<'EOF'
{kept}EOF
    echo "removed a flaky test" ;;
esac"#
    )
}

#[tokio::test]
async fn an_agent_that_deletes_a_failing_test_is_refused_told_why_and_its_fix_merges() {
    let app = TestApp::spawn().await;
    let origin = repository(&app);
    let settings = json!({"auto_merge": true, "max_fix_attempts": 2});
    let project = project(&app, &origin, &cheating_agent(), settings).await;
    let id = start(&app, project, "Make the value right").await;

    let run = app.api.run_reaching(id, &["succeeded", "failed"]).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["fix_attempts"], 1, "{run}");
    let number = run["pr_number"].as_i64().unwrap();

    // The first head: its tests passed (the failing one was gone), the analysis refused it.
    let validations = app.api.validations(project).await;
    let ours: Vec<&Value> = validations
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["pr"] == number)
        .collect();
    let statuses: Vec<&str> = ours.iter().map(|v| v["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["passed", "failed"], "{validations:?}");
    let refused = app.api.validation(ours[1]["id"].as_i64().unwrap()).await;
    let steps = refused.body["steps"].as_array().unwrap();
    let step = |name: &str| steps.iter().find(|s| s["name"] == name).unwrap();
    assert_eq!(step("test")["status"], "passed", "{}", refused.text);
    assert_eq!(step("analysis")["status"], "failed", "{}", refused.text);
    let findings = refused.body["analysis"]["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["rule"] == "test-tampering"
            && f["file"] == "tests/test_value.py"
            && f["message"]
                .as_str()
                .unwrap()
                .contains("`test_value` was deleted")),
        "{findings:?}"
    );

    // The agent was told why: the prompt of its fix names the finding and the refusal.
    let prompt = git(&origin, &["show", "main:fix-prompt-seen.md"]);
    assert!(
        prompt.contains("Your pull request failed validation (fix 1 of 2)"),
        "{prompt}"
    );
    assert!(prompt.contains("analysis"), "{prompt}");
    assert!(
        prompt.contains("test `test_value` was deleted"),
        "the finding is named: {prompt}"
    );
    assert!(
        prompt.contains("weakening, skipping or deleting tests is refused"),
        "the refusal is said: {prompt}"
    );

    // Its second attempt fixed the code, kept the test, and merged.
    let pulls = app.api.pulls(project).await;
    let pull = pulls
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["number"] == number)
        .unwrap();
    assert_eq!(pull["state"], "merged", "{pull}");
    assert_eq!(git(&origin, &["show", "main:value.txt"]), "fixed");
    assert_eq!(
        git(&origin, &["show", "main:tests/test_value.py"]),
        TEST_FILE.trim_end()
    );
}

/// A GitHub token an agent pastes into a YAML file.
fn pasted_token() -> String {
    format!(
        "ghp_{}",
        "Zq8Xw2Lm4Np6Rt1Vb3Hk".repeat(2).get(..36).unwrap()
    )
}

#[tokio::test]
async fn a_token_pasted_into_yaml_fails_the_analysis_and_is_masked_everywhere() {
    let app = TestApp::spawn().await;
    let origin = repository(&app);
    let token = pasted_token();
    // The agent fixes the value but pastes a token, and a project secret, into a YAML file.
    let agent = format!(
        "cp \"$SLIPWAY_PROMPT_FILE\" prompt-seen.md; echo fixed > value.txt\n\
         printf 'deploy:\\n  token: {token}\\n  db: \"%s\"\\n' \"$DB_PASSWORD\" > config.yml\n\
         echo \"configured the deploy\""
    );
    let project = project(&app, &origin, &agent, json!({"max_fix_attempts": 1})).await;
    let secret = "pw-Hv7Kq2Ns9"; // short, unlike any known format
    assert_eq!(
        app.api
            .put_secret(project, "DB_PASSWORD", secret)
            .await
            .status,
        201
    );
    let id = start(&app, project, "Make the value right").await;
    let run = app.api.run_reaching(id, &["succeeded", "failed"]).await;
    assert_eq!(run["status"], "failed", "{run}");
    let number = run["pr_number"].as_i64().unwrap();

    let validations = app.api.validations(project).await;
    let first = validations
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["pr"] == number)
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let shown = app.api.validation(first).await;
    let findings = shown.body["analysis"]["findings"].as_array().unwrap();
    let credentials: Vec<&Value> = findings
        .iter()
        .filter(|f| f["rule"] == "credentials" && f["file"] == "config.yml")
        .collect();
    assert_eq!(
        credentials.len(),
        2,
        "the token and the secret: {findings:?}"
    );
    assert!(
        credentials
            .iter()
            .any(|f| f["message"].as_str().unwrap().contains("project's secrets")),
        "{findings:?}"
    );
    let logs = app.api.validation_logs(first, "").await;
    assert!(logs.text.contains("[credentials]"), "{}", logs.text);
    assert!(logs.text.contains("[masked]"), "{}", logs.text);

    // The fix prompt the agent was given (kept on its branch) names the finding, masked.
    let branch = run["branch"].as_str().unwrap();
    let prompt = git(&origin, &["show", &format!("{branch}:prompt-seen.md")]);
    assert!(prompt.contains("failed validation"), "{prompt}");
    assert!(prompt.contains("[credentials]"), "{prompt}");

    // Nowhere unmasked: the validation, its log, the run (its evidence), the fix prompt, the
    // pull request's note.
    let pulls = app.api.pulls(project).await;
    for (what, text) in [
        ("validation", shown.text.as_str()),
        ("log", logs.text.as_str()),
        ("run", &app.api.run(id).await.text),
        ("pull requests", pulls.text.as_str()),
        ("fix prompt", prompt.as_str()),
    ] {
        assert!(
            !text.contains(&token),
            "the token shows in the {what}: {text}"
        );
        assert!(
            !text.contains(secret),
            "the secret shows in the {what}: {text}"
        );
    }
}
