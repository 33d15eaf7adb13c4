//! Agent runs on the Codegen API: the real client against the fake Codegen server, whose
//! pull requests land on the fake GitHub, where Slipway validates, reports and merges them.

use serde_json::{json, Value};
use slipway_agent::codegen::{Codegen, CreateRun};
use slipway_engine::{CodegenConfig, RateLimit};
use slipway_forge::github::GitHub;
use slipway_testkit::fake_codegen::{FakeCodegen, Fault, Repository, Script};
use slipway_testkit::fake_github::FakeGitHub;
use slipway_testkit::{git, TestApp};
use std::sync::Arc;
use std::time::Duration;

const REPO: &str = "acme/app";
const GITHUB_TOKEN: &str = "ghp_test_token";
const CODEGEN_TOKEN: &str = "codegen-test-token";
const ORG: i64 = 42;

struct World {
    app: TestApp,
    github: Arc<FakeGitHub>,
    codegen: FakeCodegen,
    project: i64,
    origin: std::path::PathBuf,
}

/// A GitHub repository whose test passes only when `value.txt` says `fixed`, a Codegen
/// organization whose agent pushes to it, and a project on it with `settings`.
async fn world(settings: Value) -> World {
    let github = Arc::new(FakeGitHub::start(GITHUB_TOKEN).await);
    let codegen = FakeCodegen::start(CODEGEN_TOKEN, ORG).await;
    let client = Arc::new(GitHub::new(&github.url, GITHUB_TOKEN));
    let codegen_url = codegen.url.clone();
    let app = TestApp::spawn_with(move |config| {
        config.github = Some(client);
        config.github_poll_every = Duration::from_secs(3600);
        config.agent_poll_every = Duration::from_millis(20);
        config.codegen = Some(CodegenConfig {
            base_url: codegen_url,
            token: CODEGEN_TOKEN.into(),
            org_id: ORG,
            read_limit: RateLimit::CODEGEN_READS,
        });
    })
    .await;
    let (work, origin) =
        slipway_testkit::forge_fixture(app.data_dir.path(), "grep -qx fixed value.txt", &[]);
    // A private repository: Slipway's git (checkout, a command agent's clone and push) must
    // present the GitHub token.
    github.serve_git_over_http();
    github.add_repo(REPO, &origin);
    let gh = github.clone();
    codegen.set_repository(Repository {
        work,
        full_name: REPO.into(),
        open_pull: Box::new(move |branch| gh.open_pull(REPO, branch, "main", false)),
    });
    let reply = app
        .api
        .create_project(&json!({"name": "app", "repo": REPO}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let project = reply.body["id"].as_i64().unwrap();
    let reply = app.api.put_settings(project, &settings).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    World {
        app,
        github,
        codegen,
        project,
        origin,
    }
}

fn pull_request(value: &str) -> Script {
    Script::PullRequest(vec![("value.txt".into(), format!("{value}\n"))])
}

impl World {
    async fn start(&self, goal: &str) -> i64 {
        let reply = self
            .app
            .api
            .start_run(self.project, &json!({"goal": goal}))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        reply.body["id"].as_i64().unwrap()
    }
}

#[tokio::test]
async fn a_pull_request_that_fails_is_fixed_through_resume_and_merged_on_github() {
    let w = world(json!({"auto_merge": true, "max_fix_attempts": 2})).await;
    w.codegen
        .script([pull_request("broken"), pull_request("fixed")]);
    let id = w.start("Make the value right").await;
    let run = w.app.api.run_reaching(id, &["succeeded", "failed"]).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["fix_attempts"], 1);
    let external = run["external_id"].as_i64().unwrap();
    assert_eq!(
        run["external_url"],
        format!("https://codegen.example/agent/trace/{external}")
    );
    // Codegen's metadata carries Slipway's ids; the resume carried the evidence.
    let metadata = w.codegen.metadata(external);
    assert_eq!(metadata["slipway_run_id"], id);
    assert_eq!(metadata["slipway_project_id"], w.project);
    let prompts = w.codegen.prompts(external);
    assert_eq!(prompts.len(), 2, "{prompts:?}");
    assert!(
        prompts[0].contains("## Goal\n\nMake the value right"),
        "{}",
        prompts[0]
    );
    assert!(
        prompts[1].contains("failed validation (fix 1 of 2)"),
        "{}",
        prompts[1]
    );
    assert!(
        prompts[1].contains("grep -qx fixed value.txt"),
        "{}",
        prompts[1]
    );
    // GitHub's final state: merged with the validated head, which holds the fix.
    let number = run["pr_number"].as_i64().unwrap();
    assert_eq!(
        run["pr_url"],
        format!("https://github.com/{REPO}/pull/{number}")
    );
    let pull = w.github.pull(REPO, number);
    assert!(pull.merged, "{pull:?}");
    assert_eq!(git(&w.origin, &["show", "main:value.txt"]), "fixed");
    let statuses = w.github.statuses(REPO);
    assert!(
        statuses.iter().any(|s| s.state == "failure"),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().any(|s| s.state == "success"),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_reply_is_continued_through_resume() {
    let w = world(json!({})).await;
    w.codegen
        .script([Script::Answer("Which value?".into()), pull_request("fixed")]);
    let id = w.start("Set the value").await;
    let run = w
        .app
        .api
        .run_reaching(id, &["awaiting_input", "failed"])
        .await;
    assert_eq!(
        run["response"],
        json!({"kind": "reply", "text": "Which value?"})
    );
    // The status Codegen reported last is kept as it said it.
    assert_eq!(run["external_status"], "COMPLETE");
    assert_eq!(
        w.app
            .api
            .run_action(id, "continue", Some("fixed"))
            .await
            .status,
        200
    );
    let run = w.app.api.run_reaching(id, &["succeeded", "failed"]).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let prompts = w.codegen.prompts(run["external_id"].as_i64().unwrap());
    assert_eq!(prompts[1], "fixed");
}

#[tokio::test]
async fn a_plan_is_confirmed_then_the_pull_request_is_validated() {
    let w = world(json!({"agent": {"kind": "codegen", "plan_mode": true}})).await;
    w.codegen.script([
        Script::Answer("1. write fixed".into()),
        pull_request("fixed"),
    ]);
    let id = w.start("Fix the value").await;
    let run = w
        .app
        .api
        .run_reaching(id, &["awaiting_input", "failed"])
        .await;
    assert_eq!(
        run["response"],
        json!({"kind": "plan", "text": "1. write fixed"})
    );
    assert_eq!(w.app.api.run_action(id, "confirm", None).await.status, 200);
    let run = w.app.api.run_reaching(id, &["succeeded", "failed"]).await;
    assert_eq!(run["status"], "succeeded", "{run}");
}

#[tokio::test]
async fn rate_limits_server_errors_and_slow_answers_are_retried() {
    let w = world(json!({})).await;
    w.codegen.script([Script::Answer("done".into())]);
    w.codegen.fault([
        Fault::Status(429, Some(1)),
        Fault::Status(500, None),
        Fault::Slow(Duration::from_millis(300)),
        Fault::Status(503, None),
    ]);
    let id = w.start("Say done").await;
    let run = w
        .app
        .api
        .run_reaching(id, &["awaiting_input", "failed"])
        .await;
    assert_eq!(run["response"]["text"], "done", "{run}");
    assert_eq!(
        w.codegen.runs_created(),
        1,
        "retries never created a second run"
    );
}

#[tokio::test]
async fn refusals_fail_the_run_with_codegens_reason() {
    let w = world(json!({})).await;
    w.codegen.fault([Fault::Status(402, None)]);
    let id = w.start("Anything").await;
    let run = w.app.api.run_reaching(id, &["failed"]).await;
    let note = run["note"].as_str().unwrap();
    assert!(
        note.contains("402") && note.contains("no agent runs left"),
        "{note}"
    );
    w.codegen.script([Script::Fail]);
    let id = w.start("Fail").await;
    let run = w.app.api.run_reaching(id, &["failed"]).await;
    assert!(run["note"].as_str().unwrap().contains("FAILED"), "{run}");
}

#[tokio::test]
async fn cancel_without_a_pull_request_stops_polling_and_bans_nothing() {
    let w = world(json!({})).await;
    w.codegen.script([Script::Hang]);
    let id = w.start("Hang").await;
    let run = w.app.api.run_reaching(id, &["working"]).await;
    let mut external = run["external_id"].as_i64();
    for _ in 0..100 {
        if external.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        external = w.app.api.run(id).await.body["external_id"].as_i64();
    }
    let external = external.expect("the Codegen run was recorded");
    let reply = w.app.api.run_action(id, "cancel", None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    // `ban` flags a pull request against future checks: without one there is nothing to ban.
    assert!(!w.codegen.banned(external));
    let requests = w.codegen.requests();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.app.api.run(id).await.body["status"], "cancelled");
    assert_eq!(w.codegen.requests(), requests, "no more polling");
}

#[tokio::test]
async fn cancel_with_a_pull_request_bans_it_and_a_retried_validation_unbans_it() {
    let w = world(json!({"auto_merge": false, "max_fix_attempts": 2})).await;
    w.codegen.script([pull_request("broken"), Script::Hang]);
    let id = w.start("Make the value right").await;
    let run = w.app.api.run_reaching(id, &["fixing"]).await;
    let external = run["external_id"].as_i64().unwrap();
    let reply = w.app.api.run_action(id, "cancel", None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        w.codegen.banned(external),
        "the pull request's agents are stopped"
    );
    let validation = w.app.api.validations(w.project).await.body[0]["id"]
        .as_i64()
        .unwrap();
    w.app.api.retry_validation(validation).await;
    assert!(
        !w.codegen.banned(external),
        "validated again: checks may reach it again"
    );
}

#[tokio::test]
async fn a_create_or_resume_whose_answer_is_lost_happens_once() {
    let w = world(json!({})).await;
    w.codegen.script([
        Script::Answer("first".into()),
        Script::Answer("second".into()),
    ]);
    // Codegen creates the run, but the answer is lost (a gateway timeout).
    w.codegen.fault([Fault::LoseAnswer(504)]);
    let id = w.start("Say something").await;
    let run = w
        .app
        .api
        .run_reaching(id, &["awaiting_input", "failed"])
        .await;
    assert_eq!(run["response"]["text"], "first", "{run}");
    assert_eq!(w.codegen.runs_created(), 1, "one Codegen run, not two");
    let external = run["external_id"].as_i64().unwrap();

    w.codegen.fault([Fault::LoseAnswer(502)]);
    let reply = w.app.api.run_action(id, "continue", Some("go on")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let run = w
        .app
        .api
        .run_reaching(id, &["awaiting_input", "failed"])
        .await;
    assert_eq!(run["response"]["text"], "second", "{run}");
    assert_eq!(
        w.codegen.prompts(external).len(),
        2,
        "the resume was sent once"
    );
}

#[tokio::test]
async fn starts_beyond_ten_a_minute_wait_in_the_queue() {
    let w = world(json!({"max_concurrent_runs": 20})).await;
    w.codegen.script((0..11).map(|_| Script::Hang));
    let ids: Vec<i64> = {
        let mut ids = Vec::new();
        for n in 0..11 {
            ids.push(w.start(&format!("Run {n}")).await);
        }
        ids
    };
    for _ in 0..200 {
        if w.codegen.runs_created() == 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.codegen.runs_created(), 10);
    let mut queued = Vec::new();
    for id in &ids {
        let run = w.app.api.run(*id).await.body;
        if run["status"] == "queued" {
            queued.push(run);
        }
    }
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert!(
        queued[0]["note"]
            .as_str()
            .unwrap()
            .contains("10 new runs a minute"),
        "{}",
        queued[0]
    );
    for id in ids {
        w.app.api.run_action(id, "cancel", None).await;
    }
}

#[tokio::test]
async fn a_command_agent_on_a_github_project_opens_its_pull_request_through_the_api() {
    let agent = r#"if grep -q "failed validation"; then echo fixed > value.txt; else echo broken > value.txt; fi"#;
    let w =
        world(json!({"auto_merge": true, "agent": {"kind": "command", "command": agent}})).await;
    let id = w.start("Make the value right").await;
    let run = w.app.api.run_reaching(id, &["succeeded", "failed"]).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["fix_attempts"], 1);
    let number = run["pr_number"].as_i64().unwrap();
    assert_eq!(
        run["pr_url"],
        format!("https://github.com/{REPO}/pull/{number}")
    );
    assert_eq!(run["branch"], format!("slipway/run-{id}"));
    let evidence = run["attempts"][0]["evidence"].as_str().unwrap();
    assert!(
        evidence.contains("- value.txt"),
        "GitHub's list of changed files: {evidence}"
    );
    assert!(w.github.pull(REPO, number).merged);
    assert_eq!(git(&w.origin, &["show", "main:value.txt"]), "fixed");
    assert_eq!(w.github.git_refusals(), 0);
}

/// Twenty reads of one run through a client that allows `limit`, against a fake that
/// enforces 5 per 500 ms; returns how many reads the fake refused with 429.
async fn reads_refused_with(limit: RateLimit) -> usize {
    let codegen = FakeCodegen::start(CODEGEN_TOKEN, ORG).await;
    codegen.set_read_limit(5, Duration::from_millis(500));
    let client = Codegen::new(CodegenConfig {
        base_url: codegen.url.clone(),
        token: CODEGEN_TOKEN.into(),
        org_id: ORG,
        read_limit: limit,
    });
    let run = client
        .create_run(&CreateRun {
            prompt: "Add a greeting",
            metadata: json!({}),
            repo_id: None,
            model: None,
        })
        .await
        .unwrap();
    let mut reads = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let client = client.clone();
        reads.spawn(async move { client.run(run.id).await });
    }
    while let Some(read) = reads.join_next().await {
        assert_eq!(read.unwrap().unwrap().id, run.id);
    }
    assert_eq!(codegen.requests(), 1 + 20 + codegen.reads_refused());
    codegen.reads_refused()
}

#[tokio::test]
async fn concurrent_polls_share_the_read_limit_and_meet_no_429() {
    let within = RateLimit {
        requests: 5,
        per: Duration::from_millis(500),
    };
    assert_eq!(reads_refused_with(within).await, 0);
    // The fake does enforce its limit: a client that ignores it is refused, then retries.
    let beyond = RateLimit {
        requests: 1000,
        per: Duration::from_millis(500),
    };
    assert!(reads_refused_with(beyond).await > 0);
}

#[tokio::test]
async fn the_duplicate_run_look_up_pages_back_past_a_busy_organizations_newer_runs() {
    let codegen = FakeCodegen::start(CODEGEN_TOKEN, ORG).await;
    let client = Codegen::new(CodegenConfig {
        base_url: codegen.url.clone(),
        token: CODEGEN_TOKEN.into(),
        org_id: ORG,
        read_limit: RateLimit::CODEGEN_READS,
    });
    let ours = client
        .create_run(&CreateRun {
            prompt: "Add a greeting",
            metadata: json!({"slipway_run_id": 7, "slipway_project_id": 1}),
            repo_id: None,
            model: None,
        })
        .await
        .unwrap();
    // 250 newer API runs of others (and Slack runs, which the source filter leaves out):
    // Slipway's run is on page 3.
    codegen.add_runs_of_others(120, "API");
    codegen.add_runs_of_others(40, "SLACK");
    codegen.add_runs_of_others(130, "API");
    let found = client.find_by_slipway_run(7).await.unwrap();
    assert_eq!(found.map(|r| r.id), Some(ours.id));
    let api = Some("API".to_owned());
    assert_eq!(
        codegen.list_requests(),
        vec![
            (0, 100, api.clone()),
            (100, 100, api.clone()),
            (200, 100, api.clone())
        ]
    );
    // A run never created: every page is read once, then the look-up stops.
    assert_eq!(client.find_by_slipway_run(8).await.unwrap(), None);
    assert_eq!(codegen.list_requests().len(), 6);
}

#[tokio::test]
async fn a_resumed_run_whose_first_polls_show_the_old_answer_returns_the_new_one() {
    let w = world(json!({})).await;
    w.codegen.script([
        Script::Answer("Which value?".into()),
        Script::Answer("Set it to fixed.".into()),
    ]);
    let id = w.start("Set the value").await;
    let run = w
        .app
        .api
        .run_reaching(id, &["awaiting_input", "failed"])
        .await;
    assert_eq!(run["response"]["text"], "Which value?", "{run}");
    // Codegen still shows the finished turn before for the first polls after the resume.
    w.codegen.stale_after_resume(2);
    let reply = w.app.api.run_action(id, "continue", Some("fixed")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let run = w
        .app
        .api
        .run_reaching(id, &["awaiting_input", "failed"])
        .await;
    assert_eq!(run["response"]["text"], "Set it to fixed.", "{run}");
}

#[tokio::test]
async fn a_push_to_a_banned_pull_request_lifts_the_ban() {
    let w = world(json!({"auto_merge": false, "max_fix_attempts": 2})).await;
    w.codegen.script([pull_request("broken"), Script::Hang]);
    let id = w.start("Make the value right").await;
    let run = w.app.api.run_reaching(id, &["fixing"]).await;
    let external = run["external_id"].as_i64().unwrap();
    let number = run["pr_number"].as_i64().unwrap();
    let branch = run["branch"].as_str().unwrap().to_owned();
    assert_eq!(w.app.api.run_action(id, "cancel", None).await.status, 200);
    assert!(w.codegen.banned(external));
    // A person pushes to the pull request; GitHub tells Slipway, which validates it again.
    let head = git(&w.origin, &["rev-parse", &branch]);
    let mut payload = slipway_testkit::webhook_fixture("pull_request/synchronize.payload.json");
    payload["repository"]["full_name"] = json!(REPO);
    payload["number"] = json!(number);
    payload["pull_request"]["number"] = json!(number);
    payload["pull_request"]["draft"] = json!(false);
    payload["pull_request"]["head"]["sha"] = json!(head);
    payload["pull_request"]["head"]["ref"] = json!(branch);
    payload["pull_request"]["head"]["repo"]["clone_url"] = json!(w.github.clone_url(REPO));
    payload["pull_request"]["base"]["ref"] = json!("main");
    payload["pull_request"]["base"]["repo"]["clone_url"] = json!(w.github.clone_url(REPO));
    let body = serde_json::to_vec(&payload).unwrap();
    let reply = w
        .app
        .api
        .send_webhook("pull_request", "d-push", &body, None)
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    for _ in 0..300 {
        if !w.codegen.banned(external) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the pull request stayed banned after Slipway validated its new push");
}
