//! What the pages say, read in real headless Chromium as a person reads them: times as valid
//! ISO 8601 `<time>` elements, a failed validation opening at its first error line with a way
//! between errors, a failed run titled by its goal quoting the error and run again, and
//! error pages that are pages of the dashboard. Pictures go to `target/screenshots/`.

use serde_json::{json, Value};
use slipway_browser::{Browser, Page};
use slipway_testkit::{fixture_repo, git, TestApp, ADMIN_TOKEN};
use std::path::PathBuf;

fn screenshot(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/screenshots")
        .join(format!("{name}.png"))
}

/// A test that prints 300 lines, one error, 200 lines more, and fails.
const NOISY_TEST: &str = "for i in $(seq 1 300); do echo \"compiling unit $i\"; done; echo '  error: value.txt says base, wanted fixed'; for i in $(seq 1 200); do echo \"    cleanup step $i\"; done; exit 1";

fn origin(app: &TestApp) -> String {
    let work = app.data_dir.path().join("seed");
    let pipeline = format!("[test]\ncommands = [{NOISY_TEST:?}]\n");
    fixture_repo(
        &work,
        &[
            (".slipway.toml", pipeline.as_str()),
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

/// Every `<time>` of the page: (datetime attribute, valid ISO 8601 in UTC, title).
async fn times(page: &Page) -> Vec<Value> {
    page.eval(
        "[...document.querySelectorAll('time')].map(t => [t.getAttribute('datetime'), \
         /^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ$/.test(t.getAttribute('datetime') || '') \
         && !Number.isNaN(Date.parse(t.dateTime)), t.title, t.textContent])",
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_failed_validation_opens_at_its_error_and_every_time_is_a_valid_iso_moment() {
    let app = TestApp::spawn().await;
    let reply = app
        .api
        .create_project(&json!({"name": "shop", "repo": origin(&app)}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let failed = app.api.validated(1, &json!({"branch": "main"})).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let id = failed["id"].as_i64().unwrap();
    let browser = Browser::launch().await.unwrap();
    let page = sign_in(&app, &browser).await;

    page.goto(&format!("{}/validations/{id}", app.base_url))
        .await
        .unwrap();
    let seen: Value = page
        .eval("[[...document.querySelectorAll('[data-failed-step]')].map(f => f.dataset.failedStep), [...document.querySelectorAll('.line .seq')].slice(-2).map(s => s.textContent), document.querySelectorAll('.line').length, document.querySelectorAll('.line.error').length, typeof window.slipway, document.getElementById('error-nav')?.hidden, document.querySelector('script').src]")
        .await
        .unwrap();
    page.wait_for("document.querySelector('.line.current-error')")
        .await
        .unwrap_or_else(|e| panic!("the page marks the first error line: {e}; {seen}"));
    let current = text(&page, ".line.current-error .text").await;
    assert_eq!(current, "  error: value.txt says base, wanted fixed");
    // It is in view inside the log's box, not at the log's end.
    let in_view: bool = page
        .eval(
            "(() => { const l = document.querySelector('.line.current-error').getBoundingClientRect(); \
             const box = document.getElementById('log').getBoundingClientRect(); \
             return l.top >= box.top && l.bottom <= box.bottom; })()",
        )
        .await
        .unwrap();
    assert!(in_view, "the first error line is shown");
    // The command's own error line, then Slipway's word that it failed.
    assert_eq!(text(&page, "#error-count").await, "1 of 2 error lines");
    page.click("#next-error").await.unwrap();
    assert_eq!(text(&page, "#error-count").await, "2 of 2 error lines");
    assert!(text(&page, ".line.current-error .text")
        .await
        .contains("exited with code 1"));
    page.click("#prev-error").await.unwrap();
    assert_eq!(text(&page, "#error-count").await, "1 of 2 error lines");
    // The failing command in full; steps without a section on one line; Retry, as it ended.
    assert_eq!(
        text(&page, ".failure pre.command").await,
        format!("$ {NOISY_TEST}")
    );
    let unconfigured = text(&page, "#unconfigured").await;
    assert!(
        unconfigured.contains("Not configured: setup, build, deploy, ui"),
        "{unconfigured}"
    );
    let cards: u32 = page
        .eval("document.querySelectorAll('#steps .step').length")
        .await
        .unwrap();
    assert_eq!(cards, 3, "checkout, test and merge are cards");
    assert!(page
        .eval::<bool>("!!document.getElementById('retry-validation')")
        .await
        .unwrap());
    // A wrapped line keeps its indent: the text hangs under its own leading spaces.
    let indent: String = page
        .eval("getComputedStyle([...document.querySelectorAll('.line .text')].find(t => t.textContent.startsWith('    cleanup'))).paddingLeft")
        .await
        .unwrap();
    assert_ne!(indent, "0px", "an indented line hangs");
    // Total duration, and every moment a valid ISO 8601 date with the exact one on hover.
    assert!(!text(&page, "#validation-took").await.is_empty());
    page.screenshot(&screenshot("validation-first-error"))
        .await
        .unwrap();
    for path in ["/", "/projects/1", &format!("/validations/{id}")] {
        page.goto(&format!("{}{path}", app.base_url)).await.unwrap();
        let found = times(&page).await;
        assert!(!found.is_empty(), "{path} shows when");
        for time in &found {
            assert_eq!(time[1], true, "{path}: {time}");
            assert!(!time[2].as_str().unwrap().is_empty(), "{path}: {time}");
            assert!(
                time[3].as_str().unwrap().contains("ago")
                    || time[3].as_str().unwrap() == "just now",
                "{path}: {time}"
            );
        }
    }
    // Who is signed in, and with which role, on every page.
    assert_eq!(text(&page, "#signed-in .role").await, "admin");
    browser.close().await;
}

#[tokio::test]
async fn a_failed_run_is_titled_by_its_goal_quotes_its_error_and_runs_again() {
    let app = TestApp::spawn().await;
    let reply = app
        .api
        .create_project(&json!({"name": "shop", "repo": origin(&app)}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let agent =
        "echo 'Error: ANTHROPIC_API_KEY is not set' >&2; echo 'got a prompt of 38 lines'; exit 1";
    let settings = json!({"agent": {"kind": "command", "command": agent}});
    assert_eq!(app.api.put_settings(1, &settings).await.status, 200);
    let run = app
        .api
        .start_run(
            1,
            &json!({"goal": "Make value.txt say fixed\nand nothing else"}),
        )
        .await;
    assert_eq!(run.status, 201, "{}", run.text);
    let failed = app.api.run_reaching(1, &["failed"]).await;
    assert!(
        failed["note"]
            .as_str()
            .unwrap()
            .contains("Error: ANTHROPIC_API_KEY"),
        "{failed}"
    );

    let browser = Browser::launch().await.unwrap();
    let page = sign_in(&app, &browser).await;
    page.goto(&format!("{}/runs/1", app.base_url))
        .await
        .unwrap();
    assert_eq!(text(&page, "#run-title").await, "Make value.txt say fixed");
    let title: String = page.eval("document.title").await.unwrap();
    assert!(title.starts_with("Make value.txt say fixed"), "{title}");
    let note = text(&page, "#run-note").await;
    assert!(
        note.contains("Error: ANTHROPIC_API_KEY is not set"),
        "{note}"
    );
    assert!(!note.contains("got a prompt"), "{note}");
    for time in times(&page).await {
        assert_eq!(time[1], true, "{time}");
    }
    page.screenshot(&screenshot("run-failed")).await.unwrap();
    page.click_and_wait("#rerun button").await.unwrap();
    assert!(page.url().await.unwrap().ends_with("/runs/2"));
    let again = app.api.run(2).await.body;
    assert_eq!(again["goal"], "Make value.txt say fixed\nand nothing else");
    browser.close().await;
}

#[tokio::test]
async fn unknown_and_unparsable_paths_are_pages_of_the_dashboard_and_the_api_keeps_json() {
    let app = TestApp::spawn().await;
    let browser = Browser::launch().await.unwrap();
    let page = sign_in(&app, &browser).await;
    for (path, name) in [
        ("/projects/abc", "error-project-abc"),
        ("/nowhere/at/all", "error-404"),
    ] {
        page.goto(&format!("{}{path}", app.base_url)).await.unwrap();
        assert_eq!(text(&page, "#error-title").await, "Not Found", "{path}");
        assert!(text(&page, "#error-message").await.contains(path), "{path}");
        assert_eq!(text(&page, "#signed-in .role").await, "admin", "{path}");
        page.screenshot(&screenshot(name)).await.unwrap();
        page.click_and_wait("#error-back").await.unwrap();
        assert_eq!(page.url().await.unwrap(), format!("{}/", app.base_url));
    }
    browser.close().await;

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let html = http
        .get(format!("{}/projects/abc", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(html.status(), 303, "not signed in: to the sign-in page");
    let api = http
        .get(format!("{}/api/v1/nowhere", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 404);
    assert!(api.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let icon = http
        .get(format!("{}/favicon.ico", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");
}

#[tokio::test]
async fn a_pull_requests_page_shows_its_commits_and_diff() {
    let app = TestApp::spawn().await;
    let origin = origin(&app);
    let reply = app
        .api
        .create_project(&json!({"name": "shop", "repo": origin}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    // A branch with one commit that changes value.txt, pushed to the origin.
    let work = app.data_dir.path().join("seed");
    git(&work, &["checkout", "-q", "-b", "fix-value"]);
    std::fs::write(work.join("value.txt"), "fixed\n").unwrap();
    git(&work, &["commit", "-qam", "Say fixed in value.txt"]);
    git(&work, &["push", "-q", &origin, "fix-value"]);
    let opened = app
        .api
        .open_pull(
            1,
            &json!({"head": "fix-value", "base": "main", "title": "Fix the value"}),
        )
        .await;
    assert_eq!(opened.status, 201, "{}", opened.text);
    // Its validation ends first, so that the page is not re-rendered live while read.
    let id = loop {
        if let Some(id) = app.api.validations(1).await.body[0]["id"].as_i64() {
            break id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    app.api.finished_validation(id).await;

    let browser = Browser::launch().await.unwrap();
    let page = sign_in(&app, &browser).await;
    page.goto(&format!("{}/projects/1/pulls/1", app.base_url))
        .await
        .unwrap();
    assert_eq!(
        text(&page, "#commits li").await.split_whitespace().nth(1),
        Some("Say")
    );
    assert!(text(&page, "#commits")
        .await
        .contains("Say fixed in value.txt"));
    let files: Vec<String> = page
        .eval("[...document.querySelectorAll('#diff summary .path')].map(p => p.textContent)")
        .await
        .unwrap();
    let diff: String = page
        .eval("document.getElementById('diff').outerHTML")
        .await
        .unwrap();
    assert_eq!(files, ["value.txt"], "{diff}");
    let added: Vec<String> = page
        .eval("[...document.querySelectorAll('#diff .pl.add')].map(p => p.textContent)")
        .await
        .unwrap();
    let removed: Vec<String> = page
        .eval("[...document.querySelectorAll('#diff .pl.del')].map(p => p.textContent)")
        .await
        .unwrap();
    assert_eq!(
        (added, removed),
        (vec!["+fixed".to_owned()], vec!["-base".to_owned()])
    );
    for time in times(&page).await {
        assert_eq!(time[1], true, "{time}");
    }
    page.screenshot(&screenshot("pull-diff")).await.unwrap();
    // The project page lists it.
    page.goto(&format!("{}/projects/1", app.base_url))
        .await
        .unwrap();
    let row = text(&page, "#pulls [data-pull='1']").await;
    assert!(
        row.contains("Fix the value") && row.contains("open"),
        "{row}"
    );
    page.screenshot(&screenshot("project-pulls")).await.unwrap();
    // What the pull request says is masked like every other output.
    let saved = app
        .api
        .put_secret(1, "RELEASE_NOTE", "Say fixed in value.txt")
        .await;
    assert!(saved.status.is_success(), "{}", saved.text);
    page.goto(&format!("{}/projects/1/pulls/1", app.base_url))
        .await
        .unwrap();
    let commits = text(&page, "#commits").await;
    assert!(
        !commits.contains("Say fixed in value.txt") && commits.contains("***"),
        "{commits}"
    );
    browser.close().await;
}
