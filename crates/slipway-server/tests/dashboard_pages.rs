//! The dashboard over plain HTTP: sessions, CSRF, roles, and what each page offers.

use reqwest::redirect::Policy;
use serde_json::json;
use slipway_forge::github::GitHub;
use slipway_testkit::fake_github::FakeGitHub;
use slipway_testkit::{fixture_repo, git, TestApp, ADMIN_TOKEN};
use std::sync::Arc;

/// A browser-like client of the dashboard: it keeps the session cookie and the CSRF token.
struct Visitor {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

impl Visitor {
    async fn sign_in(app: &TestApp, token: &str) -> Result<Self, u16> {
        let http = reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap();
        let response = http
            .post(format!("{}/login", app.base_url))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        if response.status() != 303 {
            return Err(response.status().as_u16());
        }
        let set = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        let cookie = set.split(';').next().unwrap().to_owned();
        Ok(Self {
            http,
            base: app.base_url.clone(),
            cookie,
        })
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    async fn csrf(&self, path: &str) -> String {
        let (_, html) = self.get(path).await;
        let start = html
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF token")
            + 19;
        html[start..start + html[start..].find('"').unwrap()].to_owned()
    }

    /// Posts a form; the status and the redirect target (or body).
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let request = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }

    /// Sends with the session cookie; the status and the redirect target (or the body).
    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, String) {
        let response = request.header("cookie", &self.cookie).send().await.unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let body = response.text().await.unwrap();
        (status, location.unwrap_or(body))
    }
}

fn local_repo(app: &TestApp) -> String {
    let dir = app.data_dir.path().join("repo");
    fixture_repo(
        &dir,
        &[
            (
                ".slipway.toml",
                "[test]\ncommands = [\"grep -qx fixed value.txt\"]\n",
            ),
            ("value.txt", "base\n"),
        ],
    );
    let bare = app.data_dir.path().join("repo.git");
    git(
        &dir,
        &["clone", "-q", "--bare", ".", bare.to_str().unwrap()],
    );
    bare.display().to_string()
}

#[tokio::test]
async fn forms_without_the_sessions_csrf_token_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let visitor = Visitor::sign_in(&app, ADMIN_TOKEN).await.unwrap();
    let repo = local_repo(&app);
    let form = [
        ("csrf", "forged"),
        ("name", "shop"),
        ("repo", repo.as_str()),
        ("default_branch", "main"),
    ];
    let (status, body) = visitor.post("/projects", &form).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("stale or came from another site"), "{body}");
    // Without a session at all: to the sign-in page.
    let anonymous = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let response = anonymous
        .post(format!("{}/projects", app.base_url))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/login");
    assert_eq!(
        app.api.list_projects().await.body,
        json!([]),
        "nothing was created"
    );
    // With the token, it works.
    let csrf = visitor.csrf("/").await;
    let form = [
        ("csrf", csrf.as_str()),
        ("name", "shop"),
        ("repo", repo.as_str()),
        ("default_branch", "main"),
    ];
    assert_eq!(
        visitor.post("/projects", &form).await,
        (303, "/projects/1".to_owned())
    );
}

#[tokio::test]
async fn wrong_tokens_do_not_sign_in_and_sign_out_or_revocation_ends_the_session() {
    let app = TestApp::spawn().await;
    assert_eq!(Visitor::sign_in(&app, "slw_wrong").await.err(), Some(401));
    let admin = Visitor::sign_in(&app, ADMIN_TOKEN).await.unwrap();
    assert_eq!(admin.get("/").await.0, 200);
    let csrf = admin.csrf("/").await;
    assert_eq!(
        admin.post("/logout", &[("csrf", &csrf)]).await,
        (303, "/login".to_owned())
    );
    assert_eq!(
        admin.get("/").await,
        (303, "/login".to_owned()),
        "the old cookie is dead"
    );

    let created = app.api.create_token("ops", "operator").await;
    let token = created.body["token"].as_str().unwrap().to_owned();
    let operator = Visitor::sign_in(&app, &token).await.unwrap();
    assert_eq!(operator.get("/").await.0, 200);
    app.api
        .revoke_token(created.body["id"].as_i64().unwrap())
        .await;
    assert_eq!(
        operator.get("/").await,
        (303, "/login".to_owned()),
        "revoking the token ends its sessions"
    );
}

#[tokio::test]
async fn a_viewer_sees_the_pages_but_cannot_change_settings_or_start_runs() {
    let app = TestApp::spawn().await;
    let repo = local_repo(&app);
    app.api
        .create_project(&json!({"name": "shop", "repo": repo}))
        .await;
    let created = app.api.create_token("watcher", "viewer").await;
    let viewer = Visitor::sign_in(&app, created.body["token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(viewer.get("/projects/1").await.0, 200);
    let csrf = viewer.csrf("/projects/1").await;
    let settings = [
        ("csrf", csrf.as_str()),
        ("repository_rules", "x"),
        ("setup_branch", "main"),
        ("setup_commands", ""),
        ("planning_statement", ""),
    ];
    let (status, body) = viewer.post("/projects/1/settings", &settings).await;
    assert_eq!(status, 403, "{body}");
    // Refused on the dashboard's own page, naming the role, with what was typed kept.
    assert!(body.contains("needs a token with the admin role"), "{body}");
    assert!(body.contains("data-open-on-load") && body.contains(">x</textarea>"));
    let (status, body) = viewer
        .post(
            "/projects/1/runs",
            &[("csrf", csrf.as_str()), ("goal", "Fix the login page")],
        )
        .await;
    assert_eq!(status, 403);
    assert!(
        body.contains("needs a token with the operator role"),
        "{body}"
    );
    assert!(body.contains(">Fix the login page</textarea>"), "{body}");
    assert_eq!(app.api.settings(1).await.body["repository_rules"], "");
}

#[tokio::test]
async fn the_new_project_dialog_offers_the_github_repositories_the_token_can_see() {
    let github = FakeGitHub::start("ghp_token").await;
    let client = Arc::new(GitHub::new(&github.url, "ghp_token"));
    let app = TestApp::spawn_with(move |config| config.github = Some(client)).await;
    let repo = app.data_dir.path().join("x");
    fixture_repo(&repo, &[("a", "a")]);
    github.add_repo("acme/shop", &repo);
    github.add_repo("acme/api", &repo);
    let visitor = Visitor::sign_in(&app, ADMIN_TOKEN).await.unwrap();
    let (_, html) = visitor.get("/").await;
    assert!(
        html.contains("<option value=\"acme/api\">")
            && html.contains("<option value=\"acme/shop\">"),
        "{html}"
    );
    assert!(
        html.contains("Pick one of the 2 GitHub repositories"),
        "{html}"
    );
}

#[tokio::test]
async fn the_run_view_offers_what_each_answer_allows_and_confirming_a_plan_carries_it_out() {
    let app = TestApp::spawn().await;
    let repo = local_repo(&app);
    app.api
        .create_project(&json!({"name": "shop", "repo": repo}))
        .await;
    let agent = "if [ \"$SLIPWAY_PLAN_MODE\" = 1 ]; then echo '1. write fixed'; else echo fixed > value.txt; fi";
    app.api
        .put_settings(1, &json!({"agent": {"kind": "command", "command": agent, "plan_mode": true}, "planning_statement": "Be brief."}))
        .await;
    let visitor = Visitor::sign_in(&app, ADMIN_TOKEN).await.unwrap();
    let (_, project_page) = visitor.get("/projects/1").await;
    assert!(project_page.contains("<blockquote class=\"planning\">Be brief.</blockquote>"));
    let csrf = visitor.csrf("/projects/1").await;
    assert_eq!(
        visitor
            .post(
                "/projects/1/runs",
                &[("csrf", csrf.as_str()), ("goal", "Fix the value")]
            )
            .await,
        (303, "/runs/1".to_owned())
    );
    app.api.run_reaching(1, &["awaiting_input"]).await;
    let (_, html) = visitor.get("/runs/1").await;
    assert!(
        html.contains("1. write fixed")
            && html.contains("Confirm plan")
            && html.contains("Modify plan"),
        "{html}"
    );
    assert!(!html.contains("continue-text"), "no Continue for a plan");
    assert_eq!(
        visitor
            .post("/runs/1/confirm", &[("csrf", csrf.as_str())])
            .await,
        (303, "/runs/1".to_owned())
    );
    app.api.run_reaching(1, &["succeeded"]).await;
    let (_, html) = visitor.get("/runs/1").await;
    assert!(
        html.contains("id=\"pr-link\"") && html.contains("/projects/1/pulls/1"),
        "{html}"
    );
    // The conversation stays after the confirmation: the plan, the person's confirm, the PR.
    let conversation = &html[html.find("id=\"conversation\"").expect("a conversation")..];
    let (plan, confirm, pr) = (
        conversation.find("1. write fixed").expect("the plan"),
        conversation
            .find("You · confirm")
            .expect("the confirmation"),
        conversation
            .find("Agent · pull request")
            .expect("the pull request"),
    );
    assert!(plan < confirm && confirm < pr, "in order: {conversation}");
    assert!(
        html.contains("status-passed"),
        "its validation is listed: {html}"
    );
    assert!(
        !html.contains("Cancel run"),
        "a finished run offers no cancel"
    );
    // Answering a finished run is refused with the reason on the page.
    let (status, location) = visitor
        .post(
            "/runs/1/continue",
            &[("csrf", csrf.as_str()), ("text", "more")],
        )
        .await;
    assert_eq!(status, 303);
    assert!(location.starts_with("/runs/1?error="), "{location}");
}

#[tokio::test]
async fn save_and_run_setup_runs_exactly_the_typed_commands_and_they_serve_a_repository_without_a_pipeline(
) {
    let app = TestApp::spawn().await;
    let repo = app.data_dir.path().join("plain");
    // The repository's own pipeline would fail: the trial must not run it.
    fixture_repo(
        &repo,
        &[(
            ".slipway.toml",
            "[setup]\ncommands = [\"exit 9\"]\n[test]\ncommands = [\"exit 9\"]\n",
        )],
    );
    app.api
        .create_project(&json!({"name": "shop", "repo": repo.display().to_string()}))
        .await;
    let visitor = Visitor::sign_in(&app, ADMIN_TOKEN).await.unwrap();
    let csrf = visitor.csrf("/projects/1").await;
    let form = [
        ("csrf", csrf.as_str()),
        ("repository_rules", ""),
        ("setup_branch", "main"),
        (
            "setup_commands",
            "echo typed one > one.txt\r\ntest -f one.txt && echo typed two",
        ),
        ("planning_statement", ""),
        ("then", "run"),
    ];
    let (status, location) = visitor.post("/projects/1/settings", &form).await;
    assert_eq!(status, 303, "{location}");
    let id: i64 = location
        .trim_start_matches("/validations/")
        .parse()
        .unwrap();
    let trial = app.api.finished_validation(id).await;
    assert_eq!(trial["status"], "passed", "{trial}");
    assert_eq!(trial["pipeline_source"], "setup_trial");
    assert_eq!(trial["steps"][1]["status"], "passed");
    assert_eq!(trial["steps"][4]["status"], "skipped");
    let log = app.api.validation_logs(id, "").await.text;
    assert!(log.contains("typed two"), "{log}");
    assert!(
        log.contains("not used: the repository's .slipway.toml"),
        "{log}"
    );

    // Without a .slipway.toml, a validation takes the settings' setup commands.
    git(&repo, &["rm", "-q", ".slipway.toml"]);
    git(&repo, &["commit", "-qm", "no pipeline file"]);
    let mut settings = app.api.settings(1).await.body;
    settings["pipeline"] = json!({"test": {"commands": ["grep -q typed one.txt"]}});
    settings.as_object_mut().unwrap().remove("id");
    let saved = app.api.put_settings(1, &settings).await;
    assert_eq!(saved.status, 200, "{}", saved.text);
    let done = app.api.validated(1, &json!({"branch": "main"})).await;
    assert_eq!(done["status"], "passed", "{done}");
    assert_eq!(done["pipeline_source"], "project_settings");

    // The trial is marked as one, and the pass rate counts only the real validation.
    let (_, html) = visitor.get("/projects/1").await;
    assert_eq!(html.matches("class=\"mark trial\"").count(), 1, "{html}");
    assert!(
        html.contains("Pass rate 100% over the last 1 finished validations"),
        "{html}"
    );
}

#[tokio::test]
async fn the_agent_is_chosen_in_the_settings_dialog_and_a_finished_validation_offers_no_cancel() {
    let app = TestApp::spawn().await;
    let repo = local_repo(&app);
    app.api
        .create_project(&json!({"name": "shop", "repo": repo}))
        .await;
    app.api
        .put_settings(
            1,
            &json!({"repository_rules": "Keep it small.", "auto_merge": true}),
        )
        .await;
    let visitor = Visitor::sign_in(&app, ADMIN_TOKEN).await.unwrap();
    let (_, html) = visitor.get("/projects/1").await;
    assert!(
        html.contains("id=\"agent_kind\""),
        "the dialog offers the agent"
    );
    let csrf = visitor.csrf("/projects/1").await;
    let mut form = vec![
        ("csrf", csrf.as_str()),
        ("repository_rules", "Keep it small."),
        ("setup_branch", "main"),
        ("setup_commands", ""),
        ("planning_statement", ""),
        ("auto_merge", "on"),
        ("agent_kind", "command"),
        ("agent_command", "sh /var/tmp/agent.sh"),
        ("agent_plan_mode", "on"),
    ];
    let (status, location) = visitor.post("/projects/1/settings", &form).await;
    assert_eq!((status, location.as_str()), (303, "/projects/1?saved=1"));
    let (_, saved) = visitor.get(&location).await;
    assert!(saved.contains("Settings saved."), "a save is confirmed");
    let settings = app.api.settings(1).await.body;
    assert_eq!(
        settings["agent"],
        json!({"kind": "command", "command": "sh /var/tmp/agent.sh", "plan_mode": true})
    );
    assert_eq!(settings["repository_rules"], "Keep it small.");
    assert_eq!(settings["auto_merge"], true);
    // A command agent without its command is refused: the dialog comes back open, with
    // what was typed and why, and nothing is saved.
    form[1] = ("repository_rules", "Typed but not saved.");
    form[7] = ("agent_command", "  ");
    let (status, page) = visitor.post("/projects/1/settings", &form).await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"settings-error\""), "{page}");
    assert!(
        page.contains("give the command that runs the agent"),
        "{page}"
    );
    assert!(
        page.contains("Typed but not saved."),
        "the typed text is kept"
    );
    assert!(page.contains("data-open-on-load"), "the dialog opens again");
    assert_eq!(
        app.api.settings(1).await.body["repository_rules"],
        "Keep it small."
    );
    assert_eq!(
        app.api.settings(1).await.body["agent"]["command"],
        "sh /var/tmp/agent.sh"
    );

    let started = app
        .api
        .start_validation(1, &json!({"branch": "main"}))
        .await;
    let id = started.body["id"].as_i64().unwrap();
    app.api.finished_validation(id).await;
    let (_, page) = visitor.get(&format!("/validations/{id}")).await;
    assert!(
        !page.contains("id=\"cancel-validation\""),
        "finished: no Cancel"
    );
}

#[tokio::test]
async fn a_local_pull_request_has_a_page_and_a_person_merges_it_there() {
    let app = TestApp::spawn().await;
    let (work, origin) =
        slipway_testkit::forge_fixture(app.data_dir.path(), "true", &[("b.txt", "b\n")]);
    git(&work, &["push", "-q", "origin", "feature"]);
    app.api
        .create_project(&json!({"name": "shop", "repo": origin.display().to_string()}))
        .await;
    app.api.put_settings(1, &json!({"auto_merge": false})).await;
    let opened = app
        .api
        .open_pull(1, &json!({"head": "feature", "title": "Add b"}))
        .await;
    assert_eq!(opened.status, 201, "{}", opened.text);
    let id = app.api.validations(1).await.body[0]["id"].as_i64().unwrap();
    app.api.finished_validation(id).await;
    let visitor = Visitor::sign_in(&app, ADMIN_TOKEN).await.unwrap();
    // Wait for the merge controller's note (auto-merge is off: a person merges it).
    let mut html = String::new();
    for _ in 0..100 {
        html = visitor.get("/projects/1/pulls/1").await.1;
        if html.contains("id=\"pull-note\"") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        html.contains("Add b") && html.contains("id=\"merge-pull\""),
        "{html}"
    );
    assert!(html.contains("a person merges it"), "{html}");
    let (_, project_page) = visitor.get("/projects/1").await;
    assert!(
        project_page.contains("<time datetime=") && project_page.contains("just now"),
        "lists say when: {project_page}"
    );
    let (_, home) = visitor.get("/").await;
    assert!(
        home.contains("href=\"/projects/1/pulls/1\""),
        "the card shows the open PR: {home}"
    );
    assert!(
        home.contains("href=\"/projects/1#run-dialog\""),
        "the card starts runs"
    );
    let csrf = visitor.csrf("/projects/1/pulls/1").await;
    let (status, location) = visitor
        .post("/projects/1/pulls/1/merge", &[("csrf", csrf.as_str())])
        .await;
    assert_eq!((status, location.as_str()), (303, "/projects/1/pulls/1"));
    let pulls = app.api.pulls(1).await.body;
    assert_eq!(pulls[0]["state"], "merged", "{pulls}");
    let (_, html) = visitor.get("/projects/1/pulls/1").await;
    assert!(
        !html.contains("id=\"merge-pull\""),
        "merged: no Merge button"
    );
    assert_eq!(git(&origin, &["show", "main:b.txt"]), "b");
    let again = app
        .api
        .send(
            reqwest::Method::POST,
            "/api/v1/projects/1/pulls/1/close",
            slipway_testkit::Body::None,
        )
        .await;
    assert_eq!(
        again.status, 409,
        "merged: cannot be closed: {}",
        again.text
    );
    let (_, home) = visitor.get("/").await;
    assert!(
        !home.contains("href=\"/projects/1/pulls/1\""),
        "merged: no longer open"
    );
}

#[tokio::test]
async fn the_analysis_findings_are_in_the_api_and_on_the_validation_page_by_file() {
    let app = TestApp::spawn().await;
    let dir = app.data_dir.path().join("analysed");
    fixture_repo(
        &dir,
        &[(
            ".slipway.toml",
            "[test]\ncommands = [\"true\"]\n[analysis]\nmax_function_complexity = 2\n",
        )],
    );
    let complex = "def grade(n):\n    if n > 90:\n        return 'a'\n    elif n > 80:\n        return 'b'\n    print(n)\n    return 'c'\n";
    slipway_testkit::commit_files(&dir, &[("grade.py", complex)], "grade");
    app.api
        .create_project(&json!({"name": "shop", "repo": dir.display().to_string()}))
        .await;
    let started = app
        .api
        .start_validation(1, &json!({"branch": "main"}))
        .await;
    let id = started.body["id"].as_i64().unwrap();
    let done = app.api.finished_validation(id).await;
    assert_eq!(done["status"], "failed", "{done}");
    let shown = app.api.validation(id).await.body;
    let findings = shown["analysis"]["findings"].as_array().unwrap();
    let rules: Vec<(&str, &str)> = findings
        .iter()
        .map(|f| (f["rule"].as_str().unwrap(), f["severity"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rules,
        [("complexity", "error"), ("debug-leftovers", "warning")],
        "{shown}"
    );
    assert_eq!(findings[0]["file"], "grade.py");
    assert_eq!(findings[1]["line"], 6);

    let visitor = Visitor::sign_in(&app, ADMIN_TOKEN).await.unwrap();
    let (_, page) = visitor.get(&format!("/validations/{id}")).await;
    let section = &page[page.find("id=\"analysis-findings\"").expect("the findings")..];
    assert!(section.contains("<code>grade.py</code> (2)"), "{section}");
    assert!(section.contains("<code>print(n)</code>"), "{section}");
    assert!(
        section.contains("has cyclomatic complexity 3 (limit 2)"),
        "{section}"
    );
}

#[tokio::test]
async fn the_settings_dialog_saves_the_monthly_model_budget_and_shows_the_months_use() {
    let app = TestApp::spawn().await;
    let repo = local_repo(&app);
    app.api
        .create_project(&json!({"name": "shop", "repo": repo}))
        .await;
    app.store
        .record_model_usage(slipway_core::ProjectId(1), 1_200, 300)
        .await
        .unwrap();
    let visitor = Visitor::sign_in(&app, ADMIN_TOKEN).await.unwrap();
    let csrf = visitor.csrf("/projects/1").await;
    let form = |budget: &'static str| {
        [
            ("csrf", csrf.as_str()),
            ("repository_rules", ""),
            ("setup_branch", "main"),
            ("setup_commands", ""),
            ("planning_statement", ""),
            ("model_tokens_per_month", budget),
        ]
    };
    let (status, body) = visitor.post("/projects/1/settings", &form("lots")).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("&#39;lots&#39; is not a number of tokens"),
        "{body}"
    );
    assert!(
        body.contains("name=\"model_tokens_per_month\" inputmode=\"numeric\" value=\"lots\""),
        "what was typed is kept: {body}"
    );
    assert_eq!(app.api.settings(1).await.body["model_tokens_per_month"], 0);

    let (status, location) = visitor.post("/projects/1/settings", &form("1,500")).await;
    assert_eq!(status, 303, "{location}");
    assert_eq!(
        app.api.settings(1).await.body["model_tokens_per_month"],
        1500
    );
    let (_, html) = visitor.get("/projects/1").await;
    let usage = &html[html.find("id=\"model-usage\"").expect("shown")..];
    assert!(
        usage.contains("This month: 1500 tokens used (1200 in, 300 out) of 1500: spent"),
        "{usage}"
    );
}
