//! The new-project dialog's repository search and the project page's webhook, in real
//! headless Chromium against the fake GitHub.

use slipway_browser::Browser;
use slipway_forge::github::GitHub;
use slipway_testkit::fake_github::FakeGitHub;
use slipway_testkit::{fixture_repo, TestApp, ADMIN_TOKEN};
use std::path::PathBuf;
use std::sync::Arc;

fn screenshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/screenshots")
        .join(format!("{name}.png"))
}

#[tokio::test]
async fn the_dialog_offers_the_repositories_that_match_what_is_typed_and_the_project_shows_its_webhook(
) {
    let github = Arc::new(FakeGitHub::start("ghp_token").await);
    let client = Arc::new(GitHub::new(&github.url, "ghp_token"));
    let app = TestApp::spawn_with(move |config| {
        config.github = Some(client);
        config.github_poll_every = std::time::Duration::from_secs(3600);
        config.public_url = Some("http://127.0.0.1:9".into());
    })
    .await;
    let repo = app.data_dir.path().join("origin");
    fixture_repo(&repo, &[("a.txt", "a")]);
    for n in 0..120 {
        github.add_repo(&format!("acme/service-{n:03}"), &repo);
    }
    github.add_repo("acme/shop", &repo);

    let browser = Browser::launch().await.unwrap();
    let page = browser.open(&format!("{}/", app.base_url)).await.unwrap();
    page.type_into("#token", ADMIN_TOKEN).await.unwrap();
    page.click_and_wait("button[type=submit]").await.unwrap();
    page.click("[data-open=new-project]").await.unwrap();
    page.wait_for("document.getElementById('new-project').open")
        .await
        .unwrap();
    page.type_into("#np-name", "shop").await.unwrap();
    page.type_into("#np-repo", "sho").await.unwrap();
    page.wait_for(
        "[...document.querySelectorAll('#github-repos option')].map(o => o.value).join() === 'acme/shop'",
    )
    .await
    .unwrap();
    let hint: String = page
        .eval("document.getElementById('np-repo-hint').textContent")
        .await
        .unwrap();
    assert!(
        hint.contains("1 of the 121 GitHub repositories match"),
        "{hint}"
    );
    page.screenshot(&screenshot_path("new-project-repository-search"))
        .await
        .unwrap();
    // Picking the offered option fills the field, as a browser's datalist does.
    let picked: String = page
        .eval("document.getElementById('np-repo').value = document.querySelector('#github-repos option').value")
        .await
        .unwrap();
    assert_eq!(picked, "acme/shop");
    page.type_into("#np-agent-command", "claude -p")
        .await
        .unwrap();
    page.click_and_wait("#new-project button[type=submit]")
        .await
        .unwrap();
    let url = page.url().await.unwrap();
    assert!(url.ends_with("/projects/1"), "{url}");
    assert_eq!(github.hooks("acme/shop").len(), 1, "the webhook was set up");
    let section: String = page
        .eval("document.getElementById('webhook').textContent")
        .await
        .unwrap();
    assert!(
        section.contains("http://127.0.0.1:9/webhooks/github"),
        "{section}"
    );
    page.screenshot(&screenshot_path("project-webhook"))
        .await
        .unwrap();
}
