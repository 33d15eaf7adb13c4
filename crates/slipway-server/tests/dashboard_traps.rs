//! The traps a person met past the quick start, each met again in real Chromium as a person
//! meets it: nothing typed is lost, refusals say why on the page, a role sees only what it
//! may use.

use serde_json::json;
use slipway_browser::{Browser, Page};
use slipway_testkit::{fixture_repo, git, TestApp, ADMIN_TOKEN};

async fn signed_in(app: &TestApp, browser: &Browser, token: &str) -> Page {
    let page = browser
        .open(&format!("{}/login", app.base_url))
        .await
        .unwrap();
    page.type_into("#token", token).await.unwrap();
    page.click_and_wait("button[type=submit]").await.unwrap();
    assert_eq!(page.url().await.unwrap(), format!("{}/", app.base_url));
    page
}

async fn text(page: &Page, selector: &str) -> String {
    page.eval(&format!(
        "(document.querySelector({selector:?}) || {{textContent: ''}}).textContent"
    ))
    .await
    .unwrap()
}

async fn value(page: &Page, id: &str) -> String {
    page.eval(&format!("document.getElementById({id:?}).value"))
        .await
        .unwrap()
}

async fn local_project(app: &TestApp) {
    let repo = app.data_dir.path().join("repo");
    fixture_repo(
        &repo,
        &[(".slipway.toml", "[test]\ncommands = [\"true\"]\n")],
    );
    let reply = app
        .api
        .create_project(&json!({"name": "shop", "repo": repo.display().to_string()}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
}

#[tokio::test]
async fn typing_in_three_tabs_then_saving_secrets_loses_nothing_and_confirms() {
    let app = TestApp::spawn().await;
    local_project(&app).await;
    let browser = Browser::launch().await.unwrap();
    let page = signed_in(&app, &browser, ADMIN_TOKEN).await;
    page.goto(&format!("{}/projects/1", app.base_url))
        .await
        .unwrap();
    page.click("[data-open=settings-dialog]").await.unwrap();
    page.type_into("#repository_rules", "Keep functions short.")
        .await
        .unwrap();
    page.click("#tab-setup").await.unwrap();
    page.type_into("#setup_commands", "make deps")
        .await
        .unwrap();
    page.click("#tab-planning").await.unwrap();
    page.type_into("#planning_statement", "Plan first.")
        .await
        .unwrap();
    page.click("#tab-variables").await.unwrap();
    page.type_into("#variable-name", "FEATURE").await.unwrap();
    page.type_into("#variable-value", "on").await.unwrap();
    page.click("#tab-secrets").await.unwrap();
    page.type_into("#secret-name", "API_KEY").await.unwrap();
    page.type_into("#secret-value", "sk-typed-in-the-dialog")
        .await
        .unwrap();
    page.click_and_wait("#settings-save").await.unwrap();

    // The page confirms what was saved.
    let notice = text(&page, "#notice").await;
    assert!(notice.contains("Settings saved."), "{notice}");
    assert!(notice.contains("Secrets saved: API_KEY."), "{notice}");
    assert!(notice.contains("Variables saved: FEATURE."), "{notice}");
    let settings = app.api.settings(1).await.body;
    assert_eq!(settings["repository_rules"], "Keep functions short.");
    assert_eq!(settings["setup_commands"]["commands"], json!(["make deps"]));
    assert_eq!(settings["planning_statement"], "Plan first.");
    assert_eq!(app.api.secrets(1).await.body[0]["name"], "API_KEY");
    assert_eq!(app.api.variables(1).await.body[0]["value"], "on");

    // Reopened: every tab holds what was typed; the variable is shown, the secret is not.
    page.click("[data-open=settings-dialog]").await.unwrap();
    assert_eq!(
        value(&page, "repository_rules").await,
        "Keep functions short."
    );
    assert_eq!(value(&page, "setup_commands").await, "make deps");
    assert_eq!(value(&page, "planning_statement").await, "Plan first.");
    page.click("#tab-variables").await.unwrap();
    assert!(text(&page, "#variables").await.contains("on"));
    let html: String = page
        .eval("document.documentElement.outerHTML")
        .await
        .unwrap();
    assert!(html.contains("API_KEY") && !html.contains("sk-typed-in-the-dialog"));

    // A refused save (a secret too short to mask) keeps everything typed and saves nothing.
    page.click("#tab-rules").await.unwrap();
    page.type_into("#repository_rules", " And tested.")
        .await
        .unwrap();
    page.click("#tab-secrets").await.unwrap();
    page.type_into("#secret-name", "MODE").await.unwrap();
    page.type_into("#secret-value", "on").await.unwrap();
    page.click_and_wait("#settings-save").await.unwrap();
    page.wait_for("document.getElementById('settings-dialog').open")
        .await
        .unwrap();
    let error = text(&page, "#settings-error").await;
    assert!(
        error.contains("Nothing was saved") && error.contains("as a variable"),
        "{error}"
    );
    assert_eq!(
        value(&page, "repository_rules").await,
        "Keep functions short. And tested."
    );
    assert_eq!(value(&page, "secret-name").await, "MODE");
    assert_eq!(
        app.api.settings(1).await.body["repository_rules"],
        "Keep functions short."
    );
    assert_eq!(app.api.secrets(1).await.body.as_array().unwrap().len(), 1);
    browser.close().await;
}

#[tokio::test]
async fn a_bad_path_keeps_the_new_project_dialog_open_with_its_fields() {
    let app = TestApp::spawn().await;
    let browser = Browser::launch().await.unwrap();
    let page = signed_in(&app, &browser, ADMIN_TOKEN).await;
    page.click("[data-open=new-project]").await.unwrap();
    page.type_into("#np-name", "shop").await.unwrap();
    page.type_into("#np-repo", "/no/such/repo.git")
        .await
        .unwrap();
    page.type_into("#np-agent-command", "claude -p")
        .await
        .unwrap();
    page.click_and_wait("#new-project button[type=submit]")
        .await
        .unwrap();
    page.wait_for("document.getElementById('new-project').open")
        .await
        .unwrap();
    let error = text(&page, "#np-repo-error").await;
    assert!(
        error.contains("not an existing local git repository"),
        "{error}"
    );
    assert_eq!(value(&page, "np-name").await, "shop");
    assert_eq!(value(&page, "np-repo").await, "/no/such/repo.git");
    assert_eq!(value(&page, "np-agent-command").await, "claude -p");
    let url = page.url().await.unwrap();
    assert!(!url.contains("error"), "no error in the address: {url}");
    assert_eq!(app.api.list_projects().await.body, json!([]));
    browser.close().await;
}

#[tokio::test]
async fn merge_refused_says_why_and_what_would_allow_it() {
    let app = TestApp::spawn().await;
    let (work, origin) = slipway_testkit::forge_fixture(
        app.data_dir.path(),
        "test -f b.txt && false",
        &[("b.txt", "b\n")],
    );
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
    assert_eq!(app.api.finished_validation(id).await["status"], "failed");

    let browser = Browser::launch().await.unwrap();
    let page = signed_in(&app, &browser, ADMIN_TOKEN).await;
    page.goto(&format!("{}/projects/1/pulls/1", app.base_url))
        .await
        .unwrap();
    page.click_and_wait("#merge-pull").await.unwrap();
    let note = text(&page, "#pull-note").await;
    assert!(
        note.contains(&format!(
            "Not merged: its newest validation (#{id}) is failed"
        )),
        "{note}"
    );
    assert!(note.contains("Push a fix to its branch"), "{note}");
    assert_eq!(app.api.pulls(1).await.body[0]["state"], "open");
    browser.close().await;
}

#[tokio::test]
async fn a_viewer_sees_no_button_it_cannot_use() {
    let app = TestApp::spawn().await;
    local_project(&app).await;
    let created = app.api.create_token("watcher", "viewer").await;
    let token = created.body["token"].as_str().unwrap().to_owned();
    let browser = Browser::launch().await.unwrap();
    let page = browser
        .open(&format!("{}/login", app.base_url))
        .await
        .unwrap();
    // The sign-in hint names the role that can do what the dashboard offers.
    assert!(text(&page, "#token-hint").await.contains("--role admin"));
    let page = signed_in(&app, &browser, &token).await;
    let create: bool = page
        .eval("!!document.querySelector('[data-open=new-project]')")
        .await
        .unwrap();
    assert!(!create, "a viewer is offered no New project button");
    assert!(text(&page, "#viewer-note").await.contains("admin role"));
    page.goto(&format!("{}/projects/1", app.base_url))
        .await
        .unwrap();
    let offered: bool = page
        .eval("!!document.querySelector('[data-open=run-dialog], [data-open=validate-dialog], #settings-save')")
        .await
        .unwrap();
    assert!(!offered, "no run, validate or save for a viewer");
    assert!(text(&page, "#viewer-note").await.contains("operator role"));
    assert!(text(&page, "#settings-read-only")
        .await
        .contains("admin role"));
    browser.close().await;
}
