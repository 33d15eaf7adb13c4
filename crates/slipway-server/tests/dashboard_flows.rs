//! A person's whole path through the dashboard in real headless Chromium: choose a command
//! agent in the settings dialog (and see a refused form keep what was typed), start a run,
//! confirm its plan, follow the conversation, merge its pull request from the pull request's
//! page. Then every main screen, at 1400 and at 390 px, is opened as Slipway's own browser
//! checks open a project's pages: a console error or a failed request fails the test, and
//! each screen's picture goes to `target/screenshots/`.

use serde_json::json;
use slipway_browser::{Browser, Page, Target};
use slipway_core::ui::{UiCheck, UiStep};
use slipway_testkit::{fixture_repo, git, TestApp, ADMIN_TOKEN};
use std::path::PathBuf;
use std::time::Duration;

/// Plans in plan mode; otherwise writes the value the repository's test wants. One line, as
/// a person types it into the dialog.
const AGENT: &str = r#"if [ "$SLIPWAY_PLAN_MODE" = 1 ]; then echo "1. write fixed to value.txt"; else echo fixed > value.txt; echo "wrote the value"; fi"#;

fn screenshot(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/screenshots")
        .join(format!("{name}.png"))
}

/// A bare repository whose test passes only when `value.txt` says `fixed`.
fn origin(app: &TestApp) -> String {
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
    let bare = app.data_dir.path().join("origin.git");
    git(
        &work,
        &["clone", "-q", "--bare", ".", bare.to_str().unwrap()],
    );
    bare.display().to_string()
}

async fn sign_in(app: &TestApp, browser: &Browser) -> Page {
    let page = browser
        .open(&format!("{}/login", app.base_url))
        .await
        .unwrap();
    page.type_into("#token", ADMIN_TOKEN).await.unwrap();
    page.click_and_wait("button[type=submit]").await.unwrap();
    page
}

async fn text(page: &Page, selector: &str) -> String {
    page.eval(&format!(
        "document.querySelector({selector:?})?.textContent ?? ''"
    ))
    .await
    .unwrap()
}

#[tokio::test]
async fn a_person_chooses_the_agent_confirms_its_plan_merges_its_pull_request_and_every_screen_is_clean(
) {
    let app = TestApp::spawn().await;
    let reply = app
        .api
        .create_project(&json!({"name": "shop", "repo": origin(&app)}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let main_before_merge = git(
        std::path::Path::new(&origin_path(&app)),
        &["rev-parse", "main"],
    );
    let browser = Browser::launch().await.unwrap();
    let page = sign_in(&app, &browser).await;
    let project = format!("{}/projects/1", app.base_url);

    // The agent, chosen in the dialog; the merge is left to a person.
    page.goto(&project).await.unwrap();
    page.click("[data-open=settings-dialog]").await.unwrap();
    page.eval::<bool>("(s => (s.value = 'command', s.dispatchEvent(new Event('change')), true))(document.getElementById('agent_kind'))")
        .await
        .unwrap();
    page.type_into("#agent_command", AGENT).await.unwrap();
    page.click("input[name=agent_plan_mode]").await.unwrap();
    page.type_into("#repository_rules", "Keep it small.")
        .await
        .unwrap();
    page.click_and_wait("#settings-form button[value=save]")
        .await
        .unwrap();
    assert_eq!(text(&page, "#notice").await, "Settings saved.");
    let settings = app.api.settings(1).await.body;
    assert_eq!(
        settings["agent"],
        json!({"kind": "command", "command": AGENT, "plan_mode": true})
    );
    assert_eq!(settings["auto_merge"], false);

    // A refused form comes back open, holding what was typed and saying why.
    page.click("[data-open=settings-dialog]").await.unwrap();
    page.eval::<bool>("document.getElementById('agent_command').value = '', true")
        .await
        .unwrap();
    page.type_into("#repository_rules", " Typed, then refused.")
        .await
        .unwrap();
    page.click_and_wait("#settings-form button[value=save]")
        .await
        .unwrap();
    let open: bool = page
        .eval("document.getElementById('settings-dialog').open")
        .await
        .unwrap();
    assert!(open, "the dialog is open again");
    assert!(text(&page, "#settings-error")
        .await
        .contains("give the command that runs the agent"));
    let typed: String = page
        .eval("document.getElementById('repository_rules').value")
        .await
        .unwrap();
    assert_eq!(typed, "Keep it small. Typed, then refused.");
    assert_eq!(app.api.settings(1).await.body["agent"]["command"], AGENT);

    // A run: its plan is confirmed on its page, and the conversation stays.
    page.goto(&project).await.unwrap();
    page.click("[data-open=run-dialog]").await.unwrap();
    page.type_into("#goal", "Fix the value").await.unwrap();
    page.click_and_wait("#run-dialog button[type=submit]")
        .await
        .unwrap();
    assert!(page.url().await.unwrap().ends_with("/runs/1"));
    page.wait_for("document.getElementById('plan')")
        .await
        .expect("the plan arrives on the open page");
    page.click_and_wait("form[action$='/confirm'] button")
        .await
        .unwrap();
    page.wait_for("document.getElementById('pr-link')")
        .await
        .expect("the pull request arrives on the open page");
    page.wait_for("document.getElementById('run-status').textContent === 'succeeded'")
        .await
        .unwrap();
    let conversation = text(&page, "#conversation").await;
    assert!(
        conversation.contains("1. write fixed to value.txt"),
        "{conversation}"
    );
    assert!(conversation.contains("confirm"), "{conversation}");
    page.screenshot(&screenshot("flow-run")).await.unwrap();

    // Its pull request, merged by a person from its page.
    page.click_and_wait("#pr-link").await.unwrap();
    assert!(page.url().await.unwrap().ends_with("/projects/1/pulls/1"));
    page.click_and_wait("#merge-pull").await.unwrap();
    assert_eq!(text(&page, "#pull-state").await, "merged");
    assert_eq!(
        git(
            std::path::Path::new(&origin_path(&app)),
            &["show", "main:value.txt"]
        ),
        "fixed"
    );
    // A finished validation offers no Cancel.
    let validation = app.api.validations(1).await.body[0]["id"].as_i64().unwrap();
    page.goto(&format!("{}/validations/{validation}", app.base_url))
        .await
        .unwrap();
    let cancel: bool = page
        .eval("!!document.getElementById('cancel-validation')")
        .await
        .unwrap();
    assert!(!cancel, "a finished validation offers no Cancel");

    // Dark when the system is: the page's background follows.
    let background = "getComputedStyle(document.documentElement).backgroundColor";
    let light: String = page.eval(background).await.unwrap();
    page.prefer_color_scheme("dark").await.unwrap();
    let dark: String = page.eval(background).await.unwrap();
    assert_ne!(light, dark, "the dark scheme changes the page");
    page.screenshot(&screenshot("validation-dark"))
        .await
        .unwrap();
    page.goto(&project).await.unwrap();
    page.screenshot(&screenshot("project-dark")).await.unwrap();

    // A validation that fails (main as it was, with the old value), for its screen.
    let failed = app
        .api
        .validated(1, &json!({"sha": main_before_merge}))
        .await;
    assert_eq!(failed["status"], "failed", "{failed}");

    // A notification target, for the Notifications tab's screen.
    let slack = slipway_store::NewTarget {
        kind: slipway_core::notify::TargetKind::Slack,
        url: "https://hooks.slack.com/services/T0/B0/dashboardTourXYZW".into(),
        events: slipway_core::notify::NotifyEvent::ALL.to_vec(),
        secret: None,
    };
    let project_id = slipway_core::ProjectId(1);
    app.store
        .create_notification_target(project_id, &slack)
        .await
        .unwrap();
    tour(&app, &browser, validation, failed["id"].as_i64().unwrap()).await;
    browser.close().await;
}

fn origin_path(app: &TestApp) -> String {
    app.data_dir.path().join("origin.git").display().to_string()
}

/// Every main screen in both widths, opened as a browser check: no console error, no failed
/// request, the screen's own element present.
async fn tour(app: &TestApp, browser: &Browser, validation: i64, failed: i64) {
    let click = |selector: &str| UiStep::Click {
        click: selector.into(),
    };
    let screens: Vec<(&str, String, Vec<UiStep>, &str)> = vec![
        ("sign-in", "/login".into(), vec![], "#token"),
        ("projects", "/".into(), vec![], ".project-card"),
        (
            "new-project",
            "/".into(),
            vec![click("[data-open=new-project]")],
            "#new-project[open] #np-agent",
        ),
        ("project", "/projects/1".into(), vec![], "#validations"),
        (
            "project-filtered",
            "/projects/1?status=passed".into(),
            vec![],
            "#filters-reset",
        ),
        (
            "settings",
            "/projects/1".into(),
            vec![click("[data-open=settings-dialog]")],
            "#settings-dialog[open] #agent_kind",
        ),
        (
            "secrets",
            "/projects/1".into(),
            vec![click("[data-open=settings-dialog]"), click("#tab-secrets")],
            "#settings-form #panel-secrets:not([hidden]) ~ #agent-fields[hidden]",
        ),
        (
            "variables",
            "/projects/1".into(),
            vec![
                click("[data-open=settings-dialog]"),
                click("#tab-variables"),
            ],
            "#panel-variables:not([hidden]) #variable-name",
        ),
        (
            "notifications",
            "/projects/1".into(),
            vec![
                click("[data-open=settings-dialog]"),
                click("#tab-notifications"),
            ],
            "#panel-notifications:not([hidden]) #add-target",
        ),
        (
            "run-dialog",
            "/projects/1#run-dialog".into(),
            vec![],
            "#run-dialog[open]",
        ),
        ("run", "/runs/1".into(), vec![], "#conversation"),
        ("pull", "/projects/1/pulls/1".into(), vec![], "#pull-state"),
        (
            "validation",
            format!("/validations/{validation}"),
            vec![],
            "#steps .step",
        ),
        (
            "validation-failed",
            format!("/validations/{failed}"),
            vec![],
            "#steps .step.status-failed",
        ),
        (
            "validation-line",
            format!("/validations/{validation}#L2"),
            vec![],
            ".line:target",
        ),
    ];
    let target = Target {
        base_url: &app.base_url,
        allow_hosts: &[],
    };
    for (width, height) in [(1400, 900), (390, 844)] {
        for (name, path, steps, selector) in &screens {
            let check = UiCheck {
                name: (*name).into(),
                path: path.clone(),
                steps: steps.clone(),
                expect_text: None,
                expect_selector: Some((*selector).into()),
                expect_title: Some("Slipway".into()),
                expect_status: Some(200),
                expect_url: None,
                max_console_errors: 0,
                fail_on_http_errors: true,
                goal: None,
                max_steps: None,
            };
            let shot = screenshot(&format!("{name}-{width}"));
            let report = browser
                .check(
                    &check,
                    (width, height),
                    &target,
                    Duration::from_secs(30),
                    &shot,
                )
                .await;
            assert!(
                report.passed && report.console.is_empty() && report.requests.is_empty(),
                "{name} at {width} px: {:?}\nconsole: {:?}\nrequests: {:?}",
                report.failure,
                report.console,
                report.requests
            );
        }
    }
}
