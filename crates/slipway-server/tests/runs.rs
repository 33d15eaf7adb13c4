//! Agent runs with command agents on the local forge: real scripts, real git, real
//! validations, through the HTTP API.

use serde_json::{json, Value};
use slipway_testkit::{commit_files, fixture_repo, git, processes_with, TestApp};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A bare repository whose test passes only when `value.txt` says `fixed`.
fn repository(app: &TestApp, test: &str) -> PathBuf {
    repository_with(app, &format!("[test]\ncommands = [{test:?}]\n"))
}

/// A bare repository whose `main` has this `.slipway.toml` and `value.txt`.
fn repository_with(app: &TestApp, pipeline: &str) -> PathBuf {
    let work = app.data_dir.path().join("seed");
    fixture_repo(
        &work,
        &[(".slipway.toml", pipeline), ("value.txt", "base\n")],
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
    settings["agent"] = json!({"kind": "command", "command": agent,
        "plan_mode": settings.get("plan_mode").cloned().unwrap_or(json!(false))});
    settings.as_object_mut().unwrap().remove("plan_mode");
    let reply = app.api.put_settings(id, &settings).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    id
}

async fn start(app: &TestApp, project: i64, goal: &str) -> i64 {
    let reply = app.api.start_run(project, &json!({"goal": goal})).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body["id"].as_i64().unwrap()
}

/// Writes `broken` first; once the prompt carries a failed validation, writes `fixed`.
/// Keeps a copy of the prompt it was given.
const FIXING_AGENT: &str = r#"prompt=$(cat)
cp "$SLIPWAY_PROMPT_FILE" prompt-seen.md
case "$prompt" in
  *"failed validation"*) echo fixed > value.txt; echo "fixed the value" ;;
  *) echo broken > value.txt; echo "changed the value" ;;
esac"#;

#[tokio::test]
async fn a_goal_becomes_a_pull_request_that_fails_is_fixed_by_the_agent_and_merged() {
    let app = TestApp::spawn().await;
    let origin = repository(&app, "grep -qx fixed value.txt");
    let settings = json!({"auto_merge": true, "max_fix_attempts": 2,
        "planning_statement": "Work in small steps.", "repository_rules": "Never touch .slipway.toml."});
    let project = project(&app, &origin, FIXING_AGENT, settings).await;
    let id = start(&app, project, "Make the value right").await;

    let run = app.api.run_reaching(id, &["succeeded", "failed"]).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        run["started_by"], "the admin token",
        "who started it is kept"
    );
    assert_eq!(run["fix_attempts"], 1);
    assert_eq!(run["response"]["kind"], "pull_request");
    let number = run["pr_number"].as_i64().unwrap();
    let attempt = &run["attempts"][0];
    assert_eq!(attempt["step"], "test");
    let evidence = attempt["evidence"].as_str().unwrap();
    assert!(evidence.contains("grep -qx fixed value.txt"), "{evidence}");
    assert!(evidence.contains("Exit code: 1"), "{evidence}");
    assert!(evidence.contains("- value.txt"), "{evidence}");
    assert!(
        attempt["outcome"].as_str().unwrap().contains("passed"),
        "{attempt}"
    );

    // The forge's final state: merged, and main holds the fix and the prompt the agent saw.
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
    let prompt = git(&origin, &["show", "main:prompt-seen.md"]);
    assert!(
        prompt.starts_with("## Planning statement\n\nWork in small steps."),
        "{prompt}"
    );
    assert!(prompt.contains("Never touch .slipway.toml."), "{prompt}");
    assert!(
        prompt.contains("Your pull request failed validation (fix 1 of 2)"),
        "{prompt}"
    );
    // Two validations of the PR: the agent's first head failed, its fix passed.
    let validations = app.api.validations(project).await;
    let statuses: Vec<&str> = validations
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["pr"] == number)
        .map(|v| v["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["passed", "failed"]);
}

#[tokio::test]
async fn a_reply_is_continued_and_then_the_agent_opens_its_pull_request() {
    let app = TestApp::spawn().await;
    let origin = repository(&app, "grep -qx fixed value.txt");
    let agent = r#"prompt=$(cat)
case "$prompt" in
  *"The person replies"*) echo fixed > value.txt ;;
  *) echo "Which value should it be?" ;;
esac"#;
    let project = project(&app, &origin, agent, json!({})).await;
    let id = start(&app, project, "Set the value").await;
    let run = app
        .api
        .run_reaching(id, &["awaiting_input", "failed"])
        .await;
    assert_eq!(
        run["response"],
        json!({"kind": "reply", "text": "Which value should it be?"})
    );
    assert_eq!(run["actions"], json!(["continue", "cancel"]));
    let wrong = app.api.run_action(id, "confirm", None).await;
    assert_eq!(wrong.status, 409, "{}", wrong.text);
    let reply = app
        .api
        .run_action(id, "continue", Some("fixed, please"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let run = app.api.run_reaching(id, &["succeeded", "failed"]).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(run["note"].as_str().unwrap().contains("passed"), "{run}");
    // Auto-merge is off: the PR stays open for a person.
    let pulls = app.api.pulls(project).await;
    assert_eq!(pulls.body[0]["state"], "open");
}

const PLANNING_AGENT: &str = r#"prompt=$(cat)
if [ "$SLIPWAY_PLAN_MODE" = 1 ]; then
  case "$prompt" in
    *"wants the plan changed"*) echo "1. write fixed to value.txt (revised)" ;;
    *) echo "1. write fixed to value.txt" ;;
  esac
else
  echo fixed > value.txt
fi"#;

#[tokio::test]
async fn a_plan_is_modified_then_confirmed_then_carried_out() {
    let app = TestApp::spawn().await;
    let origin = repository(&app, "grep -qx fixed value.txt");
    let project = project(&app, &origin, PLANNING_AGENT, json!({"plan_mode": true})).await;
    let id = start(&app, project, "Fix the value").await;
    let run = app
        .api
        .run_reaching(id, &["awaiting_input", "failed"])
        .await;
    assert_eq!(
        run["response"],
        json!({"kind": "plan", "text": "1. write fixed to value.txt"})
    );
    assert_eq!(run["actions"], json!(["confirm", "modify", "cancel"]));
    assert_eq!(
        app.api.run_action(id, "continue", Some("x")).await.status,
        409
    );
    assert_eq!(
        app.api
            .run_action(id, "modify", Some("say it is revised"))
            .await
            .status,
        200
    );
    let run = app
        .api
        .run_reaching(id, &["awaiting_input", "failed"])
        .await;
    assert_eq!(
        run["response"]["text"],
        "1. write fixed to value.txt (revised)"
    );
    assert_eq!(app.api.run_action(id, "confirm", None).await.status, 200);
    let run = app.api.run_reaching(id, &["succeeded", "failed"]).await;
    assert_eq!(run["status"], "succeeded", "{run}");
}

#[tokio::test]
async fn auto_confirm_plan_goes_from_plan_to_pull_request_without_asking() {
    let app = TestApp::spawn().await;
    let origin = repository(&app, "grep -qx fixed value.txt");
    let project = project(
        &app,
        &origin,
        PLANNING_AGENT,
        json!({"plan_mode": true, "auto_confirm_plan": true}),
    )
    .await;
    let id = start(&app, project, "Fix the value").await;
    let run = app
        .api
        .run_reaching(id, &["succeeded", "failed", "awaiting_input"])
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
}

#[tokio::test]
async fn the_fix_budget_ends_the_loop_and_says_so_on_the_run_and_the_pull_request() {
    let app = TestApp::spawn().await;
    // The budget comes from main's .slipway.toml (it wins over the settings' 3); the agent's
    // attempt to raise it in its own pull request does not count.
    let origin = repository_with(
        &app,
        "[test]\ncommands = [\"grep -qx fixed value.txt\"]\n[fix]\nmax_attempts = 1\n",
    );
    let agent = "n=$(cat value.txt | wc -c); echo \"broken $n\" > value.txt; \
                 sed -i 's/max_attempts = 1/max_attempts = 3/' .slipway.toml";
    let project = project(
        &app,
        &origin,
        agent,
        json!({"auto_merge": true, "max_fix_attempts": 3}),
    )
    .await;
    let id = start(&app, project, "Fix the value").await;
    let run = app.api.run_reaching(id, &["succeeded", "failed"]).await;
    assert_eq!(run["status"], "failed");
    assert!(
        run["note"]
            .as_str()
            .unwrap()
            .contains("fix budget is spent: 1 of 1"),
        "{run}"
    );
    assert_eq!(run["attempts"].as_array().unwrap().len(), 1);
    // The pull request is told just after the run is failed.
    let mut pulls = app.api.pulls(project).await;
    for _ in 0..600 {
        let note = pulls.body[0]["note"].as_str().unwrap_or("");
        if note.contains("fix budget is spent") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        pulls = app.api.pulls(project).await;
    }
    assert_eq!(pulls.body[0]["state"], "open", "never merged");
    assert!(
        pulls.body[0]["note"]
            .as_str()
            .unwrap()
            .contains("fix budget is spent"),
        "{}",
        pulls.text
    );
    assert_eq!(git(&origin, &["show", "main:value.txt"]), "base");
}

#[tokio::test]
async fn a_person_pushing_to_the_branch_ends_the_fix_loop() {
    let app = TestApp::spawn().await;
    // The test takes a while, so that the person's push lands during the agent's validation.
    let origin = repository(&app, "sleep 5; grep -qx fixed value.txt");
    let project = project(&app, &origin, FIXING_AGENT, json!({"max_fix_attempts": 3})).await;
    let id = start(&app, project, "Fix the value").await;
    let run = app.api.run_reaching(id, &["validating", "failed"]).await;
    let branch = run["branch"].as_str().unwrap().to_owned();
    let person = app.data_dir.path().join("person");
    git(
        app.data_dir.path(),
        &[
            "clone",
            "-q",
            "-b",
            &branch,
            origin.to_str().unwrap(),
            "person",
        ],
    );
    commit_files(&person, &[("value.txt", "fixed\n")], "a person's fix");
    git(&person, &["push", "-q", "origin", &branch]);
    let run = app.api.run_reaching(id, &["failed", "succeeded"]).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["note"].as_str().unwrap().contains("a person pushed"),
        "{run}"
    );
    assert_eq!(run["fix_attempts"], 0, "{run}");
}

#[tokio::test]
async fn a_hanging_agent_is_killed_by_cancel_and_nothing_revives_the_run() {
    let app = TestApp::spawn().await;
    let origin = repository(&app, "true");
    // Its own marker: another test process (another checkout's suite) may run the same test.
    let marker = format!("slipway-hanging-agent-{}", std::process::id());
    let project = project(&app, &origin, &format!("sleep 600 # {marker}"), json!({})).await;
    let id = start(&app, project, "Wait forever").await;
    app.api.run_reaching(id, &["working"]).await;
    for _ in 0..400 {
        if processes_with(&marker) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(processes_with(&marker) > 0);
    let reply = app.api.run_action(id, "cancel", None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["status"], "cancelled");
    assert!(reply.body["actions"].as_array().unwrap().is_empty());
    for _ in 0..400 {
        if processes_with(&marker) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(processes_with(&marker), 0, "the agent's processes died");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let run = app.api.run(id).await;
    assert_eq!(run.body["status"], "cancelled");
    assert_eq!(app.api.run_action(id, "cancel", None).await.status, 409);
    assert_eq!(
        app.api
            .run_action(id, "continue", Some("more"))
            .await
            .status,
        409
    );
}

#[tokio::test]
async fn an_agent_that_times_out_or_fails_fails_the_run_with_the_reason() {
    let app = TestApp::spawn().await;
    let origin = repository(&app, "true");
    let marker = format!("slipway-slow-agent-{}", std::process::id());
    let project = project(
        &app,
        &origin,
        &format!("sleep 30 # {marker}"),
        json!({"agent_timeout_secs": 1}),
    )
    .await;
    let id = start(&app, project, "Be slow").await;
    let run = app.api.run_reaching(id, &["failed"]).await;
    assert!(
        run["note"]
            .as_str()
            .unwrap()
            .contains("did not finish within 1 s"),
        "{run}"
    );
    assert_eq!(processes_with(&marker), 0);

    let settings =
        json!({"agent": {"kind": "command", "command": "echo 'no API key' >&2; exit 3"}});
    assert_eq!(app.api.put_settings(project, &settings).await.status, 200);
    let id = start(&app, project, "Fail").await;
    let run = app.api.run_reaching(id, &["failed"]).await;
    let note = run["note"].as_str().unwrap();
    assert!(
        note.contains("exited with code 3") && note.contains("no API key"),
        "{run}"
    );
}

#[tokio::test]
async fn secrets_reach_the_agent_but_never_its_stored_answer() {
    let app = TestApp::spawn().await;
    let origin = repository(&app, "true");
    let project = project(&app, &origin, "echo \"my key is $API_KEY\"", json!({})).await;
    assert_eq!(
        app.api
            .put_secret(project, "API_KEY", "sk-very-secret-1234")
            .await
            .status,
        201
    );
    let id = start(&app, project, "Say the key").await;
    let run = app
        .api
        .run_reaching(id, &["awaiting_input", "failed"])
        .await;
    let text = run["response"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("my key is ") && !text.contains("sk-very-secret-1234"),
        "{text}"
    );
    let events = app
        .store
        .events_after(slipway_core::ProjectId(project), 0, 1000)
        .await
        .unwrap();
    assert!(!events.is_empty());
    assert!(events
        .iter()
        .all(|e| !e.payload.to_string().contains("sk-very-secret")));
}

#[tokio::test]
async fn budgets_refuse_runs_with_429_and_say_when() {
    let app = TestApp::spawn().await;
    let origin = repository(&app, "true");
    let project = project(
        &app,
        &origin,
        "sleep 600 # slipway-budget-agent",
        json!({"max_concurrent_runs": 1, "max_runs_per_hour": 2}),
    )
    .await;
    let first = start(&app, project, "One").await;
    let reply = app.api.start_run(project, &json!({"goal": "Two"})).await;
    assert_eq!(reply.status, 429, "{}", reply.text);
    assert_eq!(reply.code(), "too_many_runs");
    assert!(
        reply.message().contains("max_concurrent_runs"),
        "{}",
        reply.text
    );
    assert!(reply.headers.get("retry-after").is_some());
    app.api.run_action(first, "cancel", None).await;
    let second = start(&app, project, "Two").await;
    app.api.run_action(second, "cancel", None).await;
    let reply = app.api.start_run(project, &json!({"goal": "Three"})).await;
    assert_eq!(reply.status, 429, "{}", reply.text);
    assert!(
        reply.message().contains("max_runs_per_hour"),
        "{}",
        reply.text
    );
    let wait: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3_500..=3_600).contains(&wait), "{wait}");
    let runs = app.api.runs(project).await;
    assert_eq!(
        runs.body.as_array().unwrap().len(),
        2,
        "the refused runs were not stored"
    );
}

#[tokio::test]
async fn bad_run_requests_are_refused_clearly() {
    let app = TestApp::spawn().await;
    let origin = repository(&app, "true");
    let reply = app
        .api
        .create_project(&json!({"name": "codegen-app", "repo": origin.display().to_string()}))
        .await;
    let codegen_project = reply.body["id"].as_i64().unwrap();
    let reply = app
        .api
        .start_run(codegen_project, &json!({"goal": "x"}))
        .await;
    assert_eq!(reply.status, 422);
    assert!(
        reply.message().contains("CODEGEN_API_TOKEN"),
        "{}",
        reply.text
    );
    let project = project(&app, &origin, "true", json!({})).await;
    assert_eq!(
        app.api
            .start_run(project, &json!({"goal": "  "}))
            .await
            .status,
        422
    );
    assert_eq!(
        app.api
            .start_run(project, &json!({"goal": "x", "colour": 1}))
            .await
            .status,
        422
    );
    assert_eq!(
        app.api.start_run(999, &json!({"goal": "x"})).await.status,
        404
    );
    assert_eq!(app.api.run(999).await.status, 404);
    assert_eq!(app.api.run_action(999, "cancel", None).await.status, 404);
}

/// A `.git` file the agent plants in its tree, pointing at a repository it cannot read, is
/// never resolved by Slipway's git: the pushed branch holds the files as plain files, and no
/// object of that repository.
#[tokio::test]
async fn a_git_file_planted_by_the_agent_never_reaches_the_pushed_branch() {
    let app = TestApp::spawn().await;
    let origin = repository(&app, "true");
    // Another repository on the host, out of the agent's reach.
    let private = app.data_dir.path().join("private");
    let other = private.join("other");
    fixture_repo(&other, &[("secret.txt", "not the agent's\n")]);
    let other_head = git(&other, &["rev-parse", "HEAD"]);
    let agent = format!(
        "mkdir -p vendor && printf 'gitdir: {}/.git\\n' > vendor/.git && \
         echo plain > vendor/kept.txt && echo changed > value.txt && echo done",
        other.display()
    );
    let project = project(&app, &origin, &agent, json!({})).await;
    let id = start(&app, project, "Vendor something").await;
    let run = app
        .api
        .run_reaching(id, &["succeeded", "failed", "awaiting_input"])
        .await;
    assert_eq!(run["response"]["kind"], "pull_request", "{run}");
    let branches = git(
        &origin,
        &["for-each-ref", "--format=%(refname)", "refs/heads"],
    );
    let branch = branches
        .lines()
        .find(|b| *b != "refs/heads/main")
        .unwrap_or_else(|| panic!("the agent's branch: {branches}"));
    let tree = git(&origin, &["ls-tree", "-r", branch]);
    assert!(!tree.contains("160000"), "no gitlink: {tree}");
    assert!(!tree.contains(&other_head), "{tree}");
    assert!(tree.contains("vendor/kept.txt"), "{tree}");
    assert!(!tree.contains("vendor/.git"), "{tree}");
    let reached = std::process::Command::new("git")
        .args(["cat-file", "-e", &other_head])
        .current_dir(&origin)
        .status()
        .unwrap();
    assert!(
        !reached.success(),
        "the other repository's objects are not in origin"
    );
}

#[tokio::test]
async fn a_secret_in_a_changed_file_name_is_masked_in_the_fix_evidence() {
    let app = TestApp::spawn().await;
    let origin = repository(&app, "grep -qx fixed value.txt");
    // The agent names a file after the secret it was given, and never fixes the value.
    let agent = r#"cat > /dev/null; echo data > "file-$API_KEY.txt"; echo broken > value.txt"#;
    let project = project(&app, &origin, agent, json!({"max_fix_attempts": 1})).await;
    assert_eq!(
        app.api
            .put_secret(project, "API_KEY", "Sup3rS3cretValue-XyZ")
            .await
            .status,
        201
    );
    let id = start(&app, project, "Make the value right").await;
    let run = app.api.run_reaching(id, &["succeeded", "failed"]).await;
    let evidence = run["attempts"][0]["evidence"].as_str().unwrap_or_default();
    assert!(evidence.contains("- file-"), "the file is listed: {run}");
    assert!(
        !run.to_string().contains("Sup3rS3cretValue"),
        "the secret shows in the run: {evidence}"
    );
}

#[tokio::test]
async fn an_agent_script_the_sandbox_user_cannot_read_is_slipways_configuration_error() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let app = TestApp::spawn().await;
    // Only as root do sandboxed commands run as another (unprivileged) user.
    if std::fs::metadata(app.data_dir.path()).unwrap().uid() != 0 {
        eprintln!("not root: the sandbox user is this user, who can read the script");
        return;
    }
    let origin = repository(&app, "true");
    let private = app.data_dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let script = private.join("agent.sh");
    std::fs::write(&script, "echo fixed > value.txt\n").unwrap();
    let reply = app
        .api
        .create_project(&json!({"name": "app", "repo": origin.display().to_string()}))
        .await;
    let id = reply.body["id"].as_i64().unwrap();
    let command = format!("sh {}", script.display());

    // Configured: refused, saying what to do.
    let agent = json!({"agent": {"kind": "command", "command": command}});
    let refused = app.api.put_settings(id, &agent).await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    let message = refused.message();
    assert!(message.contains("cannot enter"), "{message}");
    assert!(
        message.contains("chmod a+rx") && message.contains("/opt/agents"),
        "{message}"
    );

    // Configured before this check (or the directory changed since): the run is refused
    // before it starts, as Slipway's configuration, not the agent's failure.
    let mut settings = slipway_core::Settings::default();
    settings.agent = slipway_core::settings::AgentConfig::Command {
        command,
        plan_mode: false,
        slipway_mcp: false,
    };
    app.store
        .put_settings(slipway_core::ProjectId(id), &settings)
        .await
        .unwrap();
    let reply = app.api.start_run(id, &json!({"goal": "fix it"})).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(
        reply
            .message()
            .contains("Slipway's configuration, not the agent"),
        "{}",
        reply.text
    );
    assert_eq!(app.api.runs(id).await.body, json!([]));

    // Readable by everyone: accepted.
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(app.data_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let accepted = app.api.put_settings(id, &agent).await;
    assert_eq!(accepted.status, 200, "{}", accepted.text);
}
