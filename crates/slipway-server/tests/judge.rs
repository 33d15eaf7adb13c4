//! The judge through the whole server: a local pull request opened for an agent run is judged
//! against the run's acceptance criteria by the fake OpenAI-compatible model over real HTTP,
//! and the answer, tokens and cost are shown by the API, the artifacts and the dashboard.

use reqwest::StatusCode;
use serde_json::json;
use slipway_core::judge::Provider;
use slipway_engine::{ModelConfig, Models};
use slipway_testkit::fake_model::Script;
use slipway_testkit::fake_openai::FakeOpenAi;
use slipway_testkit::{TestApp, ADMIN_TOKEN};
use std::time::Duration;

const PIPELINE: &str = "[test]\ncommands = [\"test -f health.txt && echo health ok\"]\n[judge]\nmode = \"blocking\"\nmin_score = 60\n";

#[tokio::test]
async fn a_pull_request_is_judged_against_its_runs_criteria_and_the_page_shows_it() {
    let fake = FakeOpenAi::start(Some("llm-key-42")).await;
    let url = fake.url.clone();
    let app = TestApp::spawn_with(move |config| {
        config.models = Models {
            gemini: None,
            openai: Some(ModelConfig {
                provider: Provider::Openai,
                url,
                api_key: Some("llm-key-42".into()),
                model: "local-judge".into(),
                timeout: Duration::from_secs(10),
                price: None,
                retry_base: Duration::from_millis(10),
            }),
        };
    })
    .await;
    let (_work, origin) = slipway_testkit::forge_fixture(
        app.data_dir.path(),
        "true",
        &[
            ("health.txt", "GET /health answers 200\n"),
            (".slipway.toml", PIPELINE),
        ],
    );
    let created = app
        .api
        .create_project(&json!({"name": "local", "repo": origin.display().to_string()}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let project = created.body["id"].as_i64().unwrap();

    // The agent run that will own pull request 1.
    let run = app
        .store
        .create_run(&slipway_store::NewRun {
            project: slipway_core::ProjectId(project),
            agent: slipway_core::run::AgentKind::Command,
            started_by: None,
            goal: "Add a health check".into(),
            requirements: None,
            acceptance_criteria: Some("- GET /health answers 200\n- the README mentions it".into()),
            prompt: "p".into(),
            max_concurrent: 10,
            max_per_hour: 100,
        })
        .await
        .unwrap();
    let change = slipway_store::RunChange {
        pr_number: Some(1),
        ..Default::default()
    };
    app.store.update_run(run.id, None, &change).await.unwrap();

    fake.script([Script::Answer(json!({
        "verdict": "fail", "score": 55,
        "criteria": [
            {"criterion": "GET /health answers 200", "met": true, "evidence": "+GET /health answers 200"},
            {"criterion": "the README mentions it", "met": false, "evidence": "the diff does not touch README"}
        ],
        "concerns": ["no documentation"]
    }))]);
    let opened = app
        .api
        .open_pull(
            project,
            &json!({"head": "feature", "title": "Add a health check"}),
        )
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.text);
    let mut done = json!(null);
    for _ in 0..600 {
        let list = app.api.validations(project).await.body;
        if let Some(v) = list.as_array().and_then(|l| l.first()) {
            if !matches!(v["status"].as_str(), Some("queued" | "running")) {
                done = app.api.validation(v["id"].as_i64().unwrap()).await.body;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(done["status"], "failed", "{done:#}");
    let judge = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "judge")
        .unwrap();
    assert_eq!(judge["status"], "failed", "{judge}");
    let detail = judge["detail"].as_str().unwrap();
    assert!(detail.contains("unmet: the README mentions it"), "{detail}");
    assert!(
        detail.contains("openai:local-judge") && detail.contains("output tokens"),
        "{detail}"
    );

    // The model was given the run's criteria, outside the data, and the diff inside it.
    let sent = &fake.requests()[0];
    let user = sent["messages"][1]["content"].as_str().unwrap();
    let data = user.find("<<<DATA ").unwrap();
    assert!(user[..data].contains("2. the README mentions it"), "{user}");
    assert!(user[data..].contains("+GET /health answers 200"), "{user}");
    assert!(
        user[data..].contains("## Title\nAdd a health check"),
        "{user}"
    );

    let id = done["id"].as_i64().unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http
        .post(format!("{}/login", app.base_url))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let project_page = http
        .get(format!("{}/projects/{project}", app.base_url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let status = &project_page[project_page.find("id=\"model-status\"").expect("shown")..];
    assert!(
        status.contains("<code>openai:local-judge</code>"),
        "{status}"
    );
    // The month's tokens are recorded and shown beside the budget.
    let used = app
        .store
        .model_usage(slipway_core::ProjectId(project))
        .await
        .unwrap();
    assert!(used.input_tokens > 0 && used.output_tokens > 0, "{used:?}");
    let usage = &project_page[project_page.find("id=\"model-usage\"").expect("shown")..];
    assert!(
        usage.contains(&format!("This month: {} tokens used", used.total())),
        "{usage}"
    );
    let page = http
        .get(format!("{}/validations/{id}", app.base_url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let judged = &page[page.find("id=\"judge\"").expect("the judgement is shown")..];
    for shown in [
        "AI judgement",
        "the model's opinion",
        "score 55/100",
        "the README mentions it",
        "not met",
        "no documentation",
        "output tokens",
    ] {
        assert!(judged.contains(shown), "{shown} not in:\n{judged}");
    }
    assert!(!page.contains("llm-key-42"));
}

/// On GitHub: a failing pull request's report (the comment) carries the model's note on the
/// failure, quoted and labelled as its opinion.
#[tokio::test]
async fn the_pull_requests_report_carries_the_models_note_on_a_failure() {
    const TOKEN: &str = "ghp_fake_token_for_tests";
    const REPO: &str = "acme/app";
    let model = FakeOpenAi::start(None).await;
    let github = slipway_testkit::fake_github::FakeGitHub::start(TOKEN).await;
    let client = std::sync::Arc::new(
        slipway_forge::github::GitHub::new(&github.url, TOKEN).with_waits(
            slipway_forge::github::Waits::short(Duration::from_millis(20)),
        ),
    );
    let url = model.url.clone();
    let app = TestApp::spawn_with(move |config| {
        config.github = Some(client);
        config.github_poll_every = Duration::from_secs(3600);
        config.models = Models {
            gemini: None,
            openai: Some(ModelConfig {
                provider: Provider::Openai,
                url,
                api_key: None,
                model: "local-analyst".into(),
                timeout: Duration::from_secs(10),
                price: None,
                retry_base: Duration::from_millis(10),
            }),
        };
    })
    .await;
    let (_work, origin) = slipway_testkit::forge_fixture(
        app.data_dir.path(),
        "test -f c.txt || (echo 'c.txt is missing'; exit 1)",
        &[("b.txt", "b\n")],
    );
    github.add_repo(REPO, &origin);
    app.project("app").await;
    model.script([Script::Answer(json!({
        "probable_cause": "the test wants c.txt, the pull request adds b.txt",
        "files": ["b.txt"],
        "suggested_fix": "add c.txt"
    }))]);
    let number = github.open_pull(REPO, "feature", "main", false);
    let mut payload = slipway_testkit::webhook_fixture("pull_request/opened.payload.json");
    payload["repository"]["full_name"] = json!(REPO);
    payload["number"] = json!(number);
    payload["pull_request"]["draft"] = json!(false);
    payload["pull_request"]["head"]["sha"] =
        json!(slipway_testkit::git(&origin, &["rev-parse", "feature"]));
    payload["pull_request"]["head"]["ref"] = json!("feature");
    payload["pull_request"]["head"]["repo"]["clone_url"] = json!(github.clone_url(REPO));
    payload["pull_request"]["base"]["ref"] = json!("main");
    payload["pull_request"]["base"]["repo"]["clone_url"] = json!(github.clone_url(REPO));
    let body = serde_json::to_vec(&payload).unwrap();
    let reply = app
        .api
        .send_webhook("pull_request", "d-1", &body, None)
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let mut comment = None;
    for _ in 0..600 {
        if let Some(first) = github.comments(REPO).first() {
            comment = Some(first.body.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let comment = comment.expect("a report comment");
    assert!(
        comment.contains("A model's opinion of the failure"),
        "{comment}"
    );
    assert!(
        comment.contains("> probable cause: the test wants c.txt, the pull request adds b.txt"),
        "{comment}"
    );
    let sent = &model.requests()[0];
    let user = sent["messages"][1]["content"].as_str().unwrap();
    assert!(
        user.contains("c.txt is missing") && user.contains("+b"),
        "{user}"
    );
}
