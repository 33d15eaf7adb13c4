//! The dashboard end to end in real headless Chromium (Debian's package) over the DevTools
//! Protocol. Screenshots of each screen go to `target/screenshots/`.

use serde_json::json;
use slipway_browser::{Browser, Page};
use slipway_testkit::{fixture_repo, TestApp, ADMIN_TOKEN};
use std::path::PathBuf;

fn screenshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/screenshots")
        .join(format!("{name}.png"))
}

async fn signed_in(app: &TestApp, browser: &Browser) -> Page {
    let page = browser.open(&format!("{}/", app.base_url)).await.unwrap();
    assert!(
        page.url().await.unwrap().ends_with("/login"),
        "signed-out users land on the sign-in page"
    );
    page.screenshot(&screenshot_path("sign-in")).await.unwrap();
    page.type_into("#token", ADMIN_TOKEN).await.unwrap();
    page.click_and_wait("button[type=submit]")
        .await
        .unwrap_or_else(|e| {
            panic!("{e:#}");
        });
    assert_eq!(page.url().await.unwrap(), format!("{}/", app.base_url));
    let cookie_visible: bool = page
        .eval("document.cookie.includes('slipway_session')")
        .await
        .unwrap();
    assert!(!cookie_visible, "the session cookie is HttpOnly");
    page
}

#[tokio::test]
async fn sign_in_create_a_project_fill_every_settings_tab_and_a_secret_is_never_shown() {
    let app = TestApp::spawn().await;
    let repo = app.data_dir.path().join("repo");
    fixture_repo(
        &repo,
        &[(".slipway.toml", "[test]\ncommands = [\"true\"]\n")],
    );
    let browser = Browser::launch().await.unwrap();
    let page = signed_in(&app, &browser).await;
    page.screenshot(&screenshot_path("projects-empty"))
        .await
        .unwrap();

    // Create a project from a local path.
    page.click("[data-open=new-project]").await.unwrap();
    page.wait_for("document.getElementById('new-project').open")
        .await
        .unwrap();
    let focused: String = page.eval("document.activeElement.id").await.unwrap();
    assert_eq!(focused, "np-name", "the dialog takes the focus");
    page.type_into("#np-name", "shop").await.unwrap();
    page.type_into("#np-repo", &repo.display().to_string())
        .await
        .unwrap();
    // Without Codegen's credentials, the agent offered is a command.
    let kind: String = page
        .eval("document.getElementById('np-agent').value")
        .await
        .unwrap();
    assert_eq!(kind, "command");
    page.type_into("#np-agent-command", "claude -p")
        .await
        .unwrap();
    page.screenshot(&screenshot_path("new-project"))
        .await
        .unwrap();
    page.click_and_wait("#new-project button[type=submit]")
        .await
        .unwrap();
    assert!(
        page.url().await.unwrap().ends_with("/projects/1"),
        "{}",
        page.url().await.unwrap()
    );
    assert_eq!(
        app.api.settings(1).await.body["agent"],
        json!({"kind": "command", "command": "claude -p", "plan_mode": false})
    );

    // Fill all four settings tabs and the switches, then save.
    page.click("[data-open=settings-dialog]").await.unwrap();
    page.wait_for("document.getElementById('settings-dialog').open")
        .await
        .unwrap();
    page.type_into("#repository_rules", "Use the standard library only.")
        .await
        .unwrap();
    page.click("#tab-setup").await.unwrap();
    page.wait_for("!document.getElementById('panel-setup').hidden")
        .await
        .unwrap();
    page.type_into("#setup_commands", "echo ready")
        .await
        .unwrap();
    page.click("#tab-planning").await.unwrap();
    page.type_into("#planning_statement", "Plan before you change anything.")
        .await
        .unwrap();
    page.click("input[name=auto_merge]").await.unwrap();
    page.click("input[name=auto_confirm_plan]").await.unwrap();
    page.screenshot(&screenshot_path("settings")).await.unwrap();
    page.click_and_wait("#settings-form button[value=save]")
        .await
        .unwrap();
    let settings = app.api.settings(1).await.body;
    assert_eq!(
        settings["repository_rules"],
        "Use the standard library only."
    );
    assert_eq!(
        settings["setup_commands"]["commands"],
        json!(["echo ready"])
    );
    assert_eq!(settings["setup_commands"]["branch"], "main");
    assert_eq!(
        settings["planning_statement"],
        "Plan before you change anything."
    );
    assert_eq!(settings["auto_merge"], true);
    assert_eq!(settings["auto_confirm_plan"], true);
    let marked: bool = page
        .eval("!!document.querySelector('h1 .mark')")
        .await
        .unwrap();
    assert!(marked, "the rules mark shows");

    // A secret: saved, listed by name, its value never in the page.
    page.click("[data-open=settings-dialog]").await.unwrap();
    page.click("#tab-secrets").await.unwrap();
    page.type_into("#secret-name", "API_KEY").await.unwrap();
    page.type_into("#secret-value", "sk-shown-nowhere-4242")
        .await
        .unwrap();
    page.click_and_wait("#settings-save").await.unwrap();
    let names = app.api.secrets(1).await.body;
    assert_eq!(names[0]["name"], "API_KEY", "{names}");
    page.click("[data-open=settings-dialog]").await.unwrap();
    page.click("#tab-secrets").await.unwrap();
    page.screenshot(&screenshot_path("secrets")).await.unwrap();
    let html: String = page
        .eval("document.documentElement.outerHTML")
        .await
        .unwrap();
    assert!(html.contains("API_KEY") && !html.contains("sk-shown-nowhere-4242"));
    let value: String = page
        .eval("document.getElementById('secret-value').value")
        .await
        .unwrap();
    assert!(value.is_empty());

    // The run dialog shows the planning statement that will be prepended.
    page.goto(&format!("{}/projects/1", app.base_url))
        .await
        .unwrap();
    page.click("[data-open=run-dialog]").await.unwrap();
    let preview: String = page
        .eval("document.querySelector('#run-dialog blockquote').textContent")
        .await
        .unwrap();
    assert_eq!(preview, "Plan before you change anything.");
    page.screenshot(&screenshot_path("run-dialog"))
        .await
        .unwrap();
    browser.close().await;
}

#[tokio::test]
async fn a_validation_turns_green_live_and_a_dropped_stream_catches_up_after_reconnecting() {
    let app = TestApp::spawn().await;
    let repo = app.data_dir.path().join("repo");
    let test = "for i in $(seq 1 30); do echo line-$i; sleep 0.1; done";
    fixture_repo(
        &repo,
        &[(".slipway.toml", &format!("[test]\ncommands = [{test:?}]\n"))],
    );
    let reply = app
        .api
        .create_project(&json!({"name": "app", "repo": repo.display().to_string()}))
        .await;
    assert_eq!(reply.status, 201);
    let browser = Browser::launch().await.unwrap();
    let page = signed_in(&app, &browser).await;
    page.goto(&format!("{}/projects/1", app.base_url))
        .await
        .unwrap();
    page.click("[data-open=validate-dialog]").await.unwrap();
    page.click_and_wait("#validate-dialog button[type=submit]")
        .await
        .unwrap();
    assert!(page.url().await.unwrap().contains("/validations/"));
    page.eval::<i64>("window.pageMarker = 7").await.unwrap();
    page.wait_for("window.slipway.live.socket && window.slipway.live.socket.readyState === 1")
        .await
        .unwrap();

    // Drop the stream once the test step has started printing; it reconnects by itself.
    page.wait_for(
        "[...document.querySelectorAll('#log .line')].some(l => l.textContent.includes('line-3'))",
    )
    .await
    .unwrap();
    page.eval::<bool>("window.slipway.live.socket.close(), true")
        .await
        .unwrap();
    page.wait_for("window.slipway.live.connections >= 2")
        .await
        .expect("it reconnected by itself");
    page.wait_for("document.querySelector('[data-step=test]').classList.contains('status-passed')")
        .await
        .unwrap();
    page.wait_for("document.getElementById('overall').textContent === 'passed'")
        .await
        .unwrap();
    page.screenshot(&screenshot_path("validation"))
        .await
        .unwrap();

    let marker: i64 = page.eval("window.pageMarker").await.unwrap();
    assert_eq!(marker, 7, "the page was never reloaded");
    page.wait_for("window.slipway.live.socket.readyState === 1 && document.getElementById('live-status').textContent === 'live'")
        .await
        .expect("the stream is live again");
    let lines: Vec<String> = page
        .eval("[...document.querySelectorAll('#log .line')].map(l => l.lastChild.textContent).filter(t => t.startsWith('line-'))")
        .await
        .unwrap();
    let expected: Vec<String> = (1..=30).map(|i| format!("line-{i}")).collect();
    assert_eq!(
        lines, expected,
        "every line once, in order, including those sent while disconnected"
    );

    // The project page shows it in the history, with the pass-rate chart.
    page.goto(&format!("{}/projects/1", app.base_url))
        .await
        .unwrap();
    let caption: String = page
        .eval("document.querySelector('.chart figcaption').textContent")
        .await
        .unwrap();
    assert!(caption.starts_with("Pass rate 100%"), "{caption}");
    page.screenshot(&screenshot_path("project")).await.unwrap();
    page.goto(&format!("{}/", app.base_url)).await.unwrap();
    page.screenshot(&screenshot_path("projects")).await.unwrap();

    // At a phone's width nothing overflows sideways.
    page.set_viewport(390, 844, true).await.unwrap();
    for path in ["/", "/projects/1", "/validations/1"] {
        page.goto(&format!("{}{path}", app.base_url)).await.unwrap();
        let overflow: bool = page
            .eval("document.documentElement.scrollWidth > document.documentElement.clientWidth + 1")
            .await
            .unwrap();
        assert!(!overflow, "{path} is wider than a phone");
        if path == "/projects/1" {
            // Every column stays (the table scrolls in itself): Status and Duration included.
            let shown: bool = page
                .eval("[...document.querySelectorAll('#validations th')].every(th => getComputedStyle(th).display !== 'none')")
                .await
                .unwrap();
            assert!(shown, "a column of the validations disappears at 390 px");
            page.screenshot(&screenshot_path("project-phone"))
                .await
                .unwrap();
        }
    }
    page.screenshot(&screenshot_path("validation-phone"))
        .await
        .unwrap();
    browser.close().await;
}
