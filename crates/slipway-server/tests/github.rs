//! Pull requests on GitHub, end to end against the stateful fake GitHub: webhook → validation
//! → commit status → comment → merge with the validated SHA, asserting on the fake's state.

use serde_json::json;
use slipway_forge::github::{GitHub, Waits};
use slipway_testkit::fake_github::{FakeGitHub, Limited};
use slipway_testkit::{commit_files, git, webhook_fixture, TestApp};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "ghp_fake_token_for_tests";
const REPO: &str = "acme/app";

struct World {
    app: TestApp,
    github: FakeGitHub,
    project: i64,
    origin: PathBuf,
    work: PathBuf,
}

/// A bare repository behind the fake GitHub: `main` runs `test`, `feature` adds `files`.
async fn world(
    test: &str,
    files: &[(&str, &str)],
    settings: serde_json::Value,
    poll: Duration,
) -> World {
    let github = FakeGitHub::start(TOKEN).await;
    let client = Arc::new(GitHub::new(&github.url, TOKEN).with_waits(short_waits()));
    world_on(github, client, test, files, settings, poll).await
}

/// GitHub's bounds with pauses of a few milliseconds: no test waits a minute.
fn short_waits() -> Waits {
    Waits::short(Duration::from_millis(20))
}

/// The same world on a given fake and client (e.g. a GitHub App).
/// Slipway as GitHub App `12345` (installation tokens) on a repository that auto-merges;
/// `prepare` sets up the fake GitHub first.
async fn auto_merging_app(prepare: impl FnOnce(&FakeGitHub)) -> World {
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = slipway_testkit::rsa_key_pair(keys.path());
    let github = FakeGitHub::start_app("12345", &public).await;
    prepare(&github);
    let client = Arc::new(
        GitHub::app(&github.url, "12345", &private)
            .unwrap()
            .with_waits(short_waits()),
    );
    world_on(
        github,
        client,
        "true",
        &[("b.txt", "b\n")],
        json!({"auto_merge": true}),
        NO_POLL,
    )
    .await
}

async fn world_on(
    github: FakeGitHub,
    client: Arc<GitHub>,
    test: &str,
    files: &[(&str, &str)],
    settings: serde_json::Value,
    poll: Duration,
) -> World {
    let app = TestApp::spawn_with(|config| {
        config.github = Some(client);
        config.github_poll_every = poll;
        config.public_url = Some("https://slipway.example".into());
    })
    .await;
    let (work, origin) = slipway_testkit::forge_fixture(app.data_dir.path(), test, files);
    github.add_repo(REPO, &origin);
    // main is protected: no merge without Slipway's success status on the head.
    github.require_status(REPO, "slipway/validation");
    let project = app.project("app").await;
    app.api.put_settings(project, &settings).await;
    World {
        app,
        github,
        project,
        origin,
        work,
    }
}

impl World {
    fn head(&self) -> String {
        git(&self.origin, &["rev-parse", "feature"])
    }

    /// An `opened` delivery of a fork's pull request from branch `head` at `sha`.
    async fn deliver_pull_request_of(&self, number: i64, head: &str, sha: &str, delivery: &str) {
        let mut payload = webhook_fixture("pull_request/opened.payload.json");
        payload["repository"]["full_name"] = json!(REPO);
        payload["number"] = json!(number);
        payload["pull_request"]["draft"] = json!(false);
        payload["pull_request"]["head"]["sha"] = json!(sha);
        payload["pull_request"]["head"]["ref"] = json!(head);
        payload["pull_request"]["head"]["repo"]["full_name"] = json!("mallory/app");
        payload["pull_request"]["head"]["repo"]["clone_url"] = json!(self.github.clone_url(REPO));
        payload["pull_request"]["base"]["ref"] = json!("main");
        payload["pull_request"]["base"]["repo"]["clone_url"] = json!(self.github.clone_url(REPO));
        let body = serde_json::to_vec(&payload).unwrap();
        let reply = self
            .app
            .api
            .send_webhook("pull_request", delivery, &body, None)
            .await;
        assert_eq!(reply.status, 202, "{}", reply.text);
    }

    async fn deliver_pull_request(&self, action: &str, number: i64, delivery: &str) {
        let mut payload = webhook_fixture(&format!("pull_request/{action}.payload.json"));
        payload["repository"]["full_name"] = json!(REPO);
        payload["number"] = json!(number);
        payload["pull_request"]["draft"] = json!(false);
        payload["pull_request"]["head"]["sha"] = json!(self.head());
        payload["pull_request"]["head"]["ref"] = json!("feature");
        payload["pull_request"]["head"]["repo"]["clone_url"] = json!(self.github.clone_url(REPO));
        payload["pull_request"]["base"]["ref"] = json!("main");
        payload["pull_request"]["base"]["repo"]["clone_url"] = json!(self.github.clone_url(REPO));
        let body = serde_json::to_vec(&payload).unwrap();
        let reply = self
            .app
            .api
            .send_webhook("pull_request", delivery, &body, None)
            .await;
        assert_eq!(reply.status, 202, "{}", reply.text);
    }

    /// Waits until `done` holds of the fake's state.
    async fn until(&self, what: &str, done: impl Fn(&FakeGitHub) -> bool) {
        for _ in 0..600 {
            if done(&self.github) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "never: {what}; statuses {:?}; comments {:?}",
            self.github.statuses(REPO),
            self.github.comments(REPO)
        );
    }
}

const NO_POLL: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn an_opened_pull_request_is_validated_reported_and_merged_with_its_sha() {
    let w = world(
        "test -f b.txt",
        &[("b.txt", "b\n")],
        json!({"auto_merge": true, "merge_method": "squash", "delete_branch_after_merge": true}),
        NO_POLL,
    )
    .await;
    let number = w.github.open_pull(REPO, "feature", "main", false);
    let head = w.head();
    w.deliver_pull_request("opened", number, "d-open").await;
    w.until("merged", |g| g.pull(REPO, number).merged).await;
    w.until("the report comment", |g| !g.comments(REPO).is_empty())
        .await;

    let statuses = w.github.statuses(REPO);
    let states: Vec<&str> = statuses.iter().map(|s| s.state.as_str()).collect();
    assert_eq!(states, ["pending", "success"]);
    assert!(statuses
        .iter()
        .all(|s| s.sha == head && s.context == "slipway/validation"));
    assert!(statuses[1]
        .target_url
        .as_deref()
        .unwrap()
        .starts_with("https://slipway.example/api/v1/validations/"));
    assert_eq!(w.github.merge_calls(REPO), [(number, head.clone())]);
    let merged = w.github.pull(REPO, number);
    assert_eq!(
        git(&w.origin, &["rev-parse", "main"]),
        merged.merge_sha.unwrap()
    );
    assert_eq!(git(&w.origin, &["show", "main:b.txt"]), "b");
    assert_eq!(
        git(&w.origin, &["branch", "--list", "feature"]),
        "",
        "branch deleted"
    );
    let url = format!("https://github.com/{REPO}/pull/{number}");
    assert_eq!(
        w.app.pr_notifications(w.project, 2).await,
        [
            ("opened".to_owned(), url.clone()),
            ("merged".to_owned(), url)
        ]
    );
    let comments = w.github.comments(REPO);
    assert_eq!(comments.len(), 1);
    assert!(
        comments[0].body.contains("| test | passed |") && comments[0].body.contains("Merged as"),
        "{}",
        comments[0].body
    );
}

#[tokio::test]
async fn a_push_during_validation_merges_only_the_new_head() {
    let w = world(
        "if [ -f second.txt ]; then true; else sleep 30; fi",
        &[("b.txt", "b\n")],
        json!({"auto_merge": true}),
        NO_POLL,
    )
    .await;
    let number = w.github.open_pull(REPO, "feature", "main", false);
    let first = w.head();
    w.deliver_pull_request("opened", number, "d-1").await;
    w.until("pending on the first head", |g| {
        g.statuses(REPO).iter().any(|s| s.sha == first)
    })
    .await;

    git(&w.work, &["checkout", "-q", "feature"]);
    commit_files(&w.work, &[("second.txt", "2\n")], "second push");
    git(&w.work, &["push", "-q", "origin", "feature"]);
    let second = w.head();
    w.deliver_pull_request("synchronize", number, "d-2").await;
    w.until("merged", |g| g.pull(REPO, number).merged).await;

    assert_eq!(
        w.github.merge_calls(REPO),
        [(number, second.clone())],
        "only the new head"
    );
    assert!(w
        .github
        .statuses(REPO)
        .iter()
        .any(|s| s.sha == second && s.state == "success"));
    assert!(!w
        .github
        .statuses(REPO)
        .iter()
        .any(|s| s.sha == first && s.state == "success"));
    let validations = w.app.api.validations(w.project).await.body;
    let old = validations
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["sha"] == first.as_str())
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    // Cancelling a running validation ends when its processes are gone, which may be
    // after the new head merged.
    let old = w.app.api.finished_validation(old).await;
    assert_eq!(old["status"], "cancelled");
}

#[tokio::test]
async fn a_conflicting_pull_request_is_not_merged_and_the_comment_says_why() {
    let w = world(
        "true",
        &[("a.txt", "feature version\n")],
        json!({"auto_merge": true}),
        NO_POLL,
    )
    .await;
    commit_files(&w.work, &[("a.txt", "main version\n")], "main moves on");
    git(&w.work, &["push", "-q", "origin", "main"]);
    let number = w.github.open_pull(REPO, "feature", "main", false);
    w.deliver_pull_request("opened", number, "d-open").await;
    w.until("a comment", |g| !g.comments(REPO).is_empty()).await;
    let comment = &w.github.comments(REPO)[0].body;
    assert!(
        comment.contains("conflicts with main") && comment.contains("a.txt"),
        "{comment}"
    );
    assert!(w.github.statuses(REPO).iter().any(|s| s.state == "failure"));
    assert!(w.github.merge_calls(REPO).is_empty());
    assert!(!w.github.pull(REPO, number).merged);
}

#[tokio::test]
async fn a_failure_is_reported_and_a_retry_updates_the_same_comment() {
    let w = world(
        "test -f fixed.txt",
        &[("b.txt", "b\n")],
        json!({"auto_merge": false}),
        NO_POLL,
    )
    .await;
    let number = w.github.open_pull(REPO, "feature", "main", false);
    w.deliver_pull_request("opened", number, "d-open").await;
    w.until("failure status", |g| {
        g.statuses(REPO).iter().any(|s| s.state == "failure")
    })
    .await;
    let failure = w
        .github
        .statuses(REPO)
        .into_iter()
        .find(|s| s.state == "failure")
        .unwrap();
    assert!(
        failure.description.contains("test failed"),
        "{}",
        failure.description
    );

    git(&w.work, &["checkout", "-q", "feature"]);
    commit_files(&w.work, &[("fixed.txt", "fix\n")], "fix");
    git(&w.work, &["push", "-q", "origin", "feature"]);
    w.deliver_pull_request("synchronize", number, "d-sync")
        .await;
    w.until("success status", |g| {
        g.statuses(REPO).iter().any(|s| s.state == "success")
    })
    .await;
    w.until("comment edited", |g| {
        g.comments(REPO).first().is_some_and(|c| c.edits >= 1)
    })
    .await;
    let comments = w.github.comments(REPO);
    assert_eq!(comments.len(), 1, "one comment, updated in place");
    assert!(
        comments[0].body.contains("auto-merge is off"),
        "{}",
        comments[0].body
    );
    assert!(w.github.merge_calls(REPO).is_empty());
}

#[tokio::test]
async fn the_base_branch_slipway_toml_turns_auto_merge_on_and_picks_squash() {
    let w = world(
        "true",
        &[("b.txt", "b\n")],
        json!({"auto_merge": false}),
        NO_POLL,
    )
    .await;
    let policy = "[test]\ncommands = [\"true\"]\n[merge]\nauto = true\nmethod = \"squash\"\n";
    commit_files(&w.work, &[(".slipway.toml", policy)], "merge policy");
    git(&w.work, &["push", "-q", "origin", "main"]);
    let number = w.github.open_pull(REPO, "feature", "main", false);
    w.deliver_pull_request("opened", number, "d-open").await;
    w.until("merged", |g| g.pull(REPO, number).merged).await;
    let parents = git(&w.origin, &["log", "-1", "--format=%P", "main"]);
    assert_eq!(parents.split_whitespace().count(), 1, "squashed: {parents}");
    assert_eq!(git(&w.origin, &["show", "main:b.txt"]), "b");
}

#[tokio::test]
async fn required_approvals_hold_the_merge_until_given() {
    let w = world(
        "true",
        &[("b.txt", "b\n")],
        json!({"auto_merge": true, "required_approvals": 1}),
        NO_POLL,
    )
    .await;
    let number = w.github.open_pull(REPO, "feature", "main", false);
    w.deliver_pull_request("opened", number, "d-open").await;
    w.until("a comment", |g| !g.comments(REPO).is_empty()).await;
    assert!(w.github.comments(REPO)[0]
        .body
        .contains("0 of the 1 required approvals"));
    assert!(!w.github.pull(REPO, number).merged);

    w.github.approve(REPO, number, "reviewer");
    let validation = w.app.api.validations(w.project).await.body[0]["id"]
        .as_i64()
        .unwrap();
    w.app.api.retry_validation(validation).await;
    w.until("merged", |g| g.pull(REPO, number).merged).await;
}

#[tokio::test]
async fn without_webhooks_the_poller_finds_the_pull_request_and_uses_etags() {
    let w = world(
        "true",
        &[("b.txt", "b\n")],
        json!({"auto_merge": true}),
        Duration::from_millis(300),
    )
    .await;
    w.github.rate_limit_next(1); // the first poll meets a secondary rate limit and waits it out
    let number = w.github.open_pull(REPO, "feature", "main", false);
    w.until("merged", |g| g.pull(REPO, number).merged).await;
    let head = git(&w.origin, &["rev-parse", "feature"]);
    assert_eq!(w.github.merge_calls(REPO), [(number, head)]);
    let second = w.github.open_pull(REPO, "feature", "main", true); // a draft: polled, not validated
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(
        w.github.not_modified_answers() > 0,
        "unchanged lists are fetched conditionally"
    );
    assert!(w
        .app
        .api
        .validations(w.project)
        .await
        .body
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["pr"] != second));
}

#[tokio::test]
async fn as_a_github_app_it_uses_one_cached_installation_token_and_reports_a_check_run() {
    // The repository is private: git must present the installation token too.
    let w = auto_merging_app(|github| github.serve_git_over_http()).await;
    let number = w.github.open_pull(REPO, "feature", "main", false);
    let head = w.head();
    w.deliver_pull_request("opened", number, "d-app").await;
    w.until("merged", |g| g.pull(REPO, number).merged).await;
    w.until("the report comment", |g| !g.comments(REPO).is_empty())
        .await;

    assert_eq!(
        w.github.installation_tokens_issued(),
        1,
        "one token, cached across every call and the checkout"
    );
    assert_eq!(w.github.git_refusals(), 0);
    // Without the token, the repository cannot be read.
    let anonymous = tokio::process::Command::new("git")
        .args(["ls-remote", &w.github.clone_url(REPO)])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .await
        .unwrap();
    assert!(!anonymous.status.success());
    assert!(w.github.git_refusals() > 0);
    let runs = w.github.check_runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].sha.as_str(), runs[0].conclusion.as_str()),
        (head.as_str(), "success")
    );
    assert_eq!(w.github.statuses(REPO).last().unwrap().state, "success");

    assert!(GitHub::app(&w.github.url, "12345", b"not a key").is_err());
}

fn retry_comment(number: i64, user: &str, association: &str) -> Vec<u8> {
    let mut payload = webhook_fixture("issue_comment/created.payload.json");
    payload["repository"]["full_name"] = json!(REPO);
    payload["issue"]["number"] = json!(number);
    payload["issue"]["pull_request"] =
        json!({"url": "https://api.github.com/repos/acme/app/pulls/1"});
    payload["comment"]["body"] = json!("/slipway retry");
    payload["comment"]["user"]["login"] = json!(user);
    payload["comment"]["author_association"] = json!(association);
    serde_json::to_vec(&payload).unwrap()
}

#[tokio::test]
async fn slipway_retry_asks_github_whether_the_author_may_write() {
    let w = world(
        "true",
        &[("b.txt", "b\n")],
        json!({"auto_merge": false}),
        NO_POLL,
    )
    .await;
    let number = w.github.open_pull(REPO, "feature", "main", false);
    w.deliver_pull_request("opened", number, "d-open").await;
    w.until("first verdict", |g| {
        g.statuses(REPO).iter().any(|s| s.state == "success")
    })
    .await;
    w.github.grant(REPO, "reader", "read");
    w.github.grant(REPO, "writer", "write");

    // A collaborator by association, but with read permission only.
    let reply = w
        .app
        .api
        .send_webhook(
            "issue_comment",
            "d-reader",
            &retry_comment(number, "reader", "COLLABORATOR"),
            None,
        )
        .await;
    assert_eq!(reply.status, 202);
    // A contributor by association, but with write permission.
    w.app
        .api
        .send_webhook(
            "issue_comment",
            "d-writer",
            &retry_comment(number, "writer", "CONTRIBUTOR"),
            None,
        )
        .await;
    for _ in 0..200 {
        let mut done = true;
        for d in ["d-reader", "d-writer"] {
            done &= w
                .app
                .store
                .delivery(d)
                .await
                .is_ok_and(|x| x.state != slipway_store::DeliveryState::Pending);
        }
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let reader = w.app.store.delivery("d-reader").await.unwrap();
    assert_eq!(reader.state.as_str(), "ignored", "{:?}", reader.note);
    assert!(reader.note.unwrap().contains("no write access"));
    assert_eq!(
        w.app
            .store
            .delivery("d-writer")
            .await
            .unwrap()
            .state
            .as_str(),
        "processed"
    );
    // The retried validation is reported pending too, like any queued head.
    w.until("a second pending status", |g| {
        g.statuses(REPO)
            .iter()
            .filter(|s| s.state == "pending")
            .count()
            == 2
    })
    .await;
    assert_eq!(
        w.app
            .api
            .validations(w.project)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn a_head_that_moved_is_never_merged_and_the_new_head_is_validated() {
    // The push lands during validation and its webhook is lost: the pre-merge check notices.
    let w = world(
        "sleep 0.5",
        &[("b.txt", "b\n")],
        json!({"auto_merge": true}),
        NO_POLL,
    )
    .await;
    let number = w.github.open_pull(REPO, "feature", "main", false);
    let first = w.head();
    w.deliver_pull_request("opened", number, "d-open").await;
    w.until("pending", |g| !g.statuses(REPO).is_empty()).await;
    git(&w.work, &["checkout", "-q", "feature"]);
    commit_files(&w.work, &[("c.txt", "c\n")], "unannounced push");
    git(&w.work, &["push", "-q", "origin", "feature"]);
    let second = w.head();
    w.until("merged", |g| g.pull(REPO, number).merged).await;
    assert_eq!(w.github.merge_calls(REPO), [(number, second.clone())]);
    assert!(w
        .github
        .statuses(REPO)
        .iter()
        .any(|s| s.sha == first && s.state == "success"));

    // A push racing the merge call itself: GitHub answers 409 and the head is validated again.
    let w = world(
        "true",
        &[("b.txt", "b\n")],
        json!({"auto_merge": true}),
        NO_POLL,
    )
    .await;
    let number = w.github.open_pull(REPO, "feature", "main", false);
    w.github.race_next_merge();
    w.deliver_pull_request("opened", number, "d-open").await;
    w.until("merged", |g| g.pull(REPO, number).merged).await;
    let calls = w.github.merge_calls(REPO);
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(
        w.app
            .api
            .validations(w.project)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn a_base_that_moved_since_the_verdict_is_never_merged_until_validated_again() {
    let w = world(
        "sleep 0.5",
        &[("b.txt", "b\n")],
        json!({"auto_merge": true}),
        NO_POLL,
    )
    .await;
    let number = w.github.open_pull(REPO, "feature", "main", false);
    w.deliver_pull_request("opened", number, "d-open").await;
    w.until("pending", |g| !g.statuses(REPO).is_empty()).await;
    // Once the checkout has merged onto it, main moves (another merge, a direct push).
    for _ in 0..200 {
        let list = w.app.api.validations(w.project).await.body;
        if !list[0]["base_sha"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    git(&w.work, &["checkout", "-q", "main"]);
    let moved = commit_files(&w.work, &[("c.txt", "c\n")], "main moves on");
    git(&w.work, &["push", "-q", "origin", "main"]);
    w.until("merged", |g| g.pull(REPO, number).merged).await;
    // One merge call only: the stale pair was refused before GitHub was asked.
    assert_eq!(w.github.merge_calls(REPO).len(), 1);
    let list = w.app.api.validations(w.project).await.body;
    let bases: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["base_sha"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(bases.len(), 2, "{list}");
    assert_eq!(
        bases[0], moved,
        "the newest validation is on the moved base"
    );
    assert_ne!(bases[1], moved);
}

#[tokio::test]
async fn only_the_latest_approval_of_someone_who_can_write_counts() {
    let w = world(
        "true",
        &[("b.txt", "b\n")],
        json!({"auto_merge": true, "required_approvals": 1}),
        NO_POLL,
    )
    .await;
    let number = w.github.open_pull(REPO, "feature", "main", false);
    // An outsider's approval, and a collaborator who approved then asked for changes.
    w.github.grant(REPO, "maintainer", "write");
    w.github
        .review(REPO, number, "passer-by", "APPROVED", "NONE");
    w.github
        .review(REPO, number, "contributor", "APPROVED", "CONTRIBUTOR");
    w.github
        .review(REPO, number, "maintainer", "APPROVED", "MEMBER");
    w.github
        .review(REPO, number, "maintainer", "CHANGES_REQUESTED", "MEMBER");
    w.github
        .review(REPO, number, "maintainer", "COMMENTED", "MEMBER");
    w.deliver_pull_request("opened", number, "d-open").await;
    w.until("a comment", |g| !g.comments(REPO).is_empty()).await;
    let comment = &w.github.comments(REPO)[0].body;
    assert!(
        comment.contains("0 of the 1 required approvals"),
        "{comment}"
    );
    assert!(!w.github.pull(REPO, number).merged);

    w.github
        .review(REPO, number, "maintainer", "APPROVED", "MEMBER");
    let validation = w.app.api.validations(w.project).await.body[0]["id"]
        .as_i64()
        .unwrap();
    w.app.api.retry_validation(validation).await;
    w.until("merged", |g| g.pull(REPO, number).merged).await;
}

#[tokio::test]
async fn a_read_only_collaborators_approval_does_not_satisfy_required_approvals() {
    let w = world(
        "true",
        &[("b.txt", "b\n")],
        json!({"auto_merge": true, "required_approvals": 1}),
        NO_POLL,
    )
    .await;
    let number = w.github.open_pull(REPO, "feature", "main", false);
    // COLLABORATOR and MEMBER, as GitHub lists them, yet only allowed to read.
    w.github.grant(REPO, "reader", "read");
    w.github
        .review(REPO, number, "reader", "APPROVED", "COLLABORATOR");
    w.github.grant(REPO, "org-reader", "read");
    w.github
        .review(REPO, number, "org-reader", "APPROVED", "MEMBER");
    w.deliver_pull_request("opened", number, "d-open").await;
    w.until("a comment", |g| !g.comments(REPO).is_empty()).await;
    let comment = &w.github.comments(REPO)[0].body;
    assert!(
        comment.contains("0 of the 1 required approvals"),
        "{comment}"
    );
    assert!(!w.github.pull(REPO, number).merged);
    let asked = |g: &FakeGitHub| {
        g.exchanges()
            .iter()
            .filter(|e| e.route.ends_with("/collaborators/{user}/permission"))
            .count()
    };
    assert_eq!(asked(&w.github), 2, "each approver's permission is asked");

    // A collaborator who may write approves: now it merges.
    w.github.approve(REPO, number, "writer");
    let validation = w.app.api.validations(w.project).await.body[0]["id"]
        .as_i64()
        .unwrap();
    w.app.api.retry_validation(validation).await;
    w.until("merged", |g| g.pull(REPO, number).merged).await;
    assert_eq!(asked(&w.github), 3, "the readers' answers were reused");
}

#[tokio::test]
async fn a_changed_base_branch_is_validated_again_and_the_old_status_replaced() {
    let w = world("true", &[("b.txt", "b\n")], json!({}), NO_POLL).await;
    // `release` has a b.txt of its own: the pull request passes on main, conflicts on release.
    git(&w.work, &["checkout", "-q", "-b", "release", "main"]);
    commit_files(&w.work, &[("b.txt", "release\n")], "release's b");
    git(&w.work, &["push", "-q", "origin", "release"]);
    git(&w.work, &["checkout", "-q", "main"]);
    let number = w.github.open_pull(REPO, "feature", "main", false);
    w.deliver_pull_request("opened", number, "d-open").await;
    let head = w.head();
    let on_head = |g: &FakeGitHub| -> Vec<String> {
        g.statuses(REPO)
            .into_iter()
            .filter(|s| s.sha == head)
            .map(|s| s.state)
            .collect()
    };
    w.until("success on main", |g| {
        on_head(g).last().map(String::as_str) == Some("success")
    })
    .await;
    let before = on_head(&w.github).len();

    // The base is edited to `release`: GitHub's `edited` delivery names the old base in
    // `changes.base` and the new one in `pull_request.base`.
    w.github.set_base(REPO, number, "release");
    let old_base = git(&w.origin, &["rev-parse", "main"]);
    let mut payload = webhook_fixture("pull_request/opened.payload.json");
    payload["action"] = json!("edited");
    payload["changes"] = json!({"base": {"ref": {"from": "main"}, "sha": {"from": old_base}}});
    payload["repository"]["full_name"] = json!(REPO);
    payload["number"] = json!(number);
    payload["pull_request"]["draft"] = json!(false);
    payload["pull_request"]["head"]["sha"] = json!(head);
    payload["pull_request"]["head"]["ref"] = json!("feature");
    payload["pull_request"]["head"]["repo"]["clone_url"] = json!(w.github.clone_url(REPO));
    payload["pull_request"]["base"]["ref"] = json!("release");
    payload["pull_request"]["base"]["sha"] = json!(git(&w.origin, &["rev-parse", "release"]));
    payload["pull_request"]["base"]["repo"]["clone_url"] = json!(w.github.clone_url(REPO));
    let body = serde_json::to_vec(&payload).unwrap();
    let reply = w
        .app
        .api
        .send_webhook("pull_request", "d-edited", &body, None)
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);

    w.until("a verdict on release", |g| {
        on_head(g).len() >= before + 2 && on_head(g).last().map(String::as_str) == Some("failure")
    })
    .await;
    assert_eq!(
        on_head(&w.github)[before],
        "pending",
        "the old success was replaced at once"
    );
    let list = w.app.api.validations(w.project).await.body;
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert_eq!(list[0]["base_ref"], "release", "{list}");
    // A title edit is not a reason to validate again.
    payload["changes"] = json!({"title": {"from": "Old title"}});
    let body = serde_json::to_vec(&payload).unwrap();
    w.app
        .api
        .send_webhook("pull_request", "d-title", &body, None)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let list = w.app.api.validations(w.project).await.body;
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert!(!w.github.pull(REPO, number).merged);
}

#[tokio::test]
async fn the_checks_re_run_button_validates_the_head_again() {
    let w = world("true", &[("b.txt", "b\n")], json!({}), NO_POLL).await;
    let number = w.github.open_pull(REPO, "feature", "main", false);
    w.deliver_pull_request("opened", number, "d-open").await;
    let head = w.head();
    let verdicts = |g: &FakeGitHub| {
        g.statuses(REPO)
            .iter()
            .filter(|s| s.sha == head && s.state == "success")
            .count()
    };
    w.until("a verdict", |g| verdicts(g) == 1).await;
    let validations = |body: serde_json::Value| body.as_array().unwrap().len();
    assert_eq!(validations(w.app.api.validations(w.project).await.body), 1);

    // "Re-run all checks": check_suite.rerequested naming the pull request.
    let api_repo = format!("https://api.github.com/repos/{REPO}");
    let mut suite = webhook_fixture("check_suite/rerequested.payload.json");
    suite["repository"]["full_name"] = json!(REPO);
    suite["check_suite"]["head_sha"] = json!(head);
    suite["check_suite"]["after"] = json!(head);
    suite["check_suite"]["head_branch"] = json!("feature");
    let pull = &mut suite["check_suite"]["pull_requests"][0];
    pull["number"] = json!(number);
    pull["url"] = json!(format!("{api_repo}/pulls/{number}"));
    pull["head"]["ref"] = json!("feature");
    pull["head"]["sha"] = json!(head);
    pull["head"]["repo"]["url"] = json!(api_repo);
    pull["base"]["ref"] = json!("main");
    pull["base"]["sha"] = json!(git(&w.origin, &["rev-parse", "main"]));
    pull["base"]["repo"]["url"] = json!(api_repo);
    let body = serde_json::to_vec(&suite).unwrap();
    let reply = w
        .app
        .api
        .send_webhook("check_suite", "d-suite", &body, None)
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    w.until("validated again", |g| verdicts(g) == 2).await;
    assert_eq!(validations(w.app.api.validations(w.project).await.body), 2);

    // "Re-run" of the one check run: check_run.rerequested, whose pull_requests GitHub leaves
    // empty for a fork's head (as in its sample): the open pull request at that head is found.
    let mut run = webhook_fixture("check_run/rerequested.payload.json");
    run["repository"]["full_name"] = json!(REPO);
    run["check_run"]["head_sha"] = json!(head);
    run["check_run"]["check_suite"]["head_sha"] = json!(head);
    run["check_run"]["name"] = json!("slipway/validation");
    assert_eq!(run["check_run"]["pull_requests"], json!([]));
    let body = serde_json::to_vec(&run).unwrap();
    let reply = w
        .app
        .api
        .send_webhook("check_run", "d-run", &body, None)
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    w.until("validated a third time", |g| verdicts(g) == 3)
        .await;
    assert_eq!(validations(w.app.api.validations(w.project).await.body), 3);
}

#[tokio::test]
async fn merging_a_fork_pull_request_leaves_the_bases_branch_of_the_same_name() {
    let w = world(
        "true",
        &[("b.txt", "b\n")],
        json!({"auto_merge": true, "delete_branch_after_merge": true}),
        NO_POLL,
    )
    .await;
    // The base has its own `release-x`; the fork's pull request comes from its `release-x`.
    git(&w.work, &["branch", "release-x", "main"]);
    git(&w.work, &["push", "-q", "origin", "release-x"]);
    let own_release = git(&w.origin, &["rev-parse", "release-x"]);
    let fork_head = w.head();
    let number = w
        .github
        .open_fork_pull(REPO, "mallory/app", "release-x", &fork_head, "main");
    w.deliver_pull_request_of(number, "release-x", &fork_head, "d-fork")
        .await;
    w.until("merged", |g| g.pull(REPO, number).merged).await;
    assert_eq!(git(&w.origin, &["rev-parse", "release-x"]), own_release);
    w.until("the report", |g| {
        g.comments(REPO)
            .iter()
            .any(|c| c.body.contains("in a fork"))
    })
    .await;
}

#[tokio::test]
async fn an_app_without_checks_permission_still_merges_and_says_what_to_fix() {
    let w = auto_merging_app(|github| github.refuse_check_runs()).await;
    let number = w.github.open_pull(REPO, "feature", "main", false);
    w.deliver_pull_request("opened", number, "d-app").await;
    w.until("merged", |g| g.pull(REPO, number).merged).await;
    w.until("the report", |g| !g.comments(REPO).is_empty())
        .await;
    let comment = &w.github.comments(REPO)[0].body;
    assert!(
        comment.contains("Refused") && comment.contains("Resource not accessible by integration"),
        "{comment}"
    );
    assert!(comment.contains("checks"), "{comment}");
}

#[tokio::test]
async fn a_refused_merge_is_reported_on_the_pull_request_and_the_merge_step() {
    let w = world(
        "true",
        &[("b.txt", "b\n")],
        json!({"auto_merge": true}),
        NO_POLL,
    )
    .await;
    w.github
        .refuse_next_merge(403, "Resource not accessible by personal access token");
    let number = w.github.open_pull(REPO, "feature", "main", false);
    w.deliver_pull_request("opened", number, "d-open").await;
    w.until("a comment", |g| !g.comments(REPO).is_empty()).await;
    let comment = &w.github.comments(REPO)[0].body;
    assert!(
        comment.contains("The merge was refused") && comment.contains("personal access token"),
        "{comment}"
    );
    assert!(!w.github.pull(REPO, number).merged);
    // The comment is posted before the merge step is recorded: wait for the record.
    let mut validation = serde_json::Value::Null;
    for _ in 0..200 {
        validation = w.app.api.validations(w.project).await.body[0].clone();
        if validation["steps"][8]["status"] == "error" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let merge = &validation["steps"][8];
    assert_eq!(merge["status"], "error", "{validation}");
    assert!(merge["detail"].as_str().unwrap().contains("refused"));
}

#[tokio::test]
async fn with_150_comments_and_a_decoy_the_report_stays_one_comment_of_slipways_own() {
    let w = world(
        "test -f fixed.txt",
        &[("b.txt", "b\n")],
        json!({"auto_merge": false}),
        NO_POLL,
    )
    .await;
    let number = w.github.open_pull(REPO, "feature", "main", false);
    // Someone else's comment that starts with Slipway's marker, before a long discussion.
    w.github.add_comment(
        REPO,
        number,
        Some("mallory"),
        "<!-- slipway:validation-report -->\nall green, merge it",
    );
    for i in 0..150 {
        let user = if i % 10 == 0 { None } else { Some("dev") };
        w.github
            .add_comment(REPO, number, user, &format!("comment {i}"));
    }
    w.deliver_pull_request("opened", number, "d-open").await;
    let ours = |g: &FakeGitHub| {
        g.comments(REPO)
            .into_iter()
            .filter(|c| c.user.as_deref() == Some(slipway_testkit::fake_github::TOKEN_USER))
            .collect::<Vec<_>>()
    };
    w.until("the report", |g| !ours(g).is_empty()).await;
    let validation = w.app.api.validations(w.project).await.body[0]["id"]
        .as_i64()
        .unwrap();
    w.app.api.finished_validation(validation).await;
    w.app.api.retry_validation(validation).await;
    w.until("the report edited", |g| ours(g).iter().any(|c| c.edits > 0))
        .await;
    assert_eq!(
        ours(&w.github).len(),
        1,
        "one report, found beyond the first page"
    );
    let decoy = &w.github.comments(REPO)[0];
    assert_eq!(decoy.user.as_deref(), Some("mallory"));
    assert_eq!(decoy.edits, 0, "someone else's comment is never edited");
}

/// A passing pull request into `main` on a world that auto-merges; `prepare` sets up the
/// fake's faults first. Returns the world and the pull request's number once it merged.
async fn merged_despite(prepare: impl FnOnce(&FakeGitHub)) -> (World, i64) {
    let w = world(
        "true",
        &[("b.txt", "b\n")],
        json!({"auto_merge": true}),
        NO_POLL,
    )
    .await;
    let number = w.github.open_pull(REPO, "feature", "main", false);
    prepare(&w.github);
    w.deliver_pull_request("opened", number, "d-open").await;
    w.until("merged", |g| g.pull(REPO, number).merged).await;
    w.until("the report", |g| {
        g.comments(REPO)
            .iter()
            .any(|c| c.body.contains("Merged as"))
    })
    .await;
    (w, number)
}

/// The report says merged, with no refusal and no word of permissions; one validation,
/// whose merge step (recorded just after the report is posted) says merged.
async fn merged_cleanly(w: &World, number: i64) {
    let comment = &w.github.comments(REPO)[0].body;
    assert!(
        !comment.contains("Refused") && !comment.contains("Give Slipway"),
        "{comment}"
    );
    let mut merge = json!(null);
    for _ in 0..600 {
        let validations = w.app.api.validations(w.project).await.body;
        assert_eq!(validations.as_array().unwrap().len(), 1, "{validations}");
        merge = validations[0]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "merge")
            .unwrap()
            .clone();
        let decided = !merge["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("decided after the verdict"));
        if decided && merge["status"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(merge["status"], "passed", "{merge}");
    assert!(w.github.pull(REPO, number).merge_sha.is_some());
}

#[tokio::test]
async fn a_secondary_rate_limit_403_without_headers_is_waited_out_and_never_a_refusal() {
    let (w, number) = merged_despite(|github| {
        github.secondary_rate_limit_next(Limited::Merge, &[403]);
        github.secondary_rate_limit_next(Limited::Comment, &[403]);
    })
    .await;
    // The limited call did not reach the merge: merged once, with the validated head.
    assert_eq!(
        w.github.merge_calls(REPO),
        [(number, w.github.pull(REPO, number).last_head_sha)]
    );
    assert_eq!(w.github.comments(REPO).len(), 1);
    merged_cleanly(&w, number).await;
}

#[tokio::test]
async fn a_429_without_rate_limit_headers_is_waited_out_and_the_merge_made_once() {
    let (w, number) = merged_despite(|github| {
        github.secondary_rate_limit_next(Limited::Merge, &[429]);
        github.secondary_rate_limit_next(Limited::Comment, &[429]);
    })
    .await;
    assert_eq!(w.github.merge_calls(REPO).len(), 1);
    merged_cleanly(&w, number).await;
}

#[tokio::test]
async fn a_secondary_rate_limit_that_outlasts_the_bound_is_an_error_not_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let (work, origin) = slipway_testkit::forge_fixture(dir.path(), "true", &[("b.txt", "b\n")]);
    git(&work, &["push", "-q", "origin", "feature"]);
    let github = FakeGitHub::start(TOKEN).await;
    github.add_repo(REPO, &origin);
    let number = github.open_pull(REPO, "feature", "main", false);
    let client = GitHub::new(&github.url, TOKEN).with_waits(short_waits());
    let head = git(&origin, &["rev-parse", "feature"]);
    github.secondary_rate_limit_next(Limited::Merge, &[403, 429, 403]);
    let answer = client
        .merge(
            REPO,
            number,
            &head,
            slipway_core::pipeline::MergeMethod::Merge,
            "t",
        )
        .await;
    assert!(
        matches!(
            answer,
            Err(slipway_forge::github::GitHubError::SecondaryRateLimited { attempts: 3, .. })
        ),
        "{answer:?}"
    );
    assert!(github.merge_calls(REPO).is_empty());
    // A 403 that is a refusal stays one.
    github.refuse_next_merge(403, "Resource not accessible by personal access token");
    let answer = client
        .merge(
            REPO,
            number,
            &head,
            slipway_core::pipeline::MergeMethod::Merge,
            "t",
        )
        .await;
    assert!(
        matches!(
            answer,
            Ok(slipway_forge::github::Merge::Refused { status: 403, .. })
        ),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_pull_request_whose_mergeability_is_still_computed_is_read_again_before_merging() {
    let (w, number) = merged_despite(|github| github.mergeable_unknown_next(3)).await;
    assert_eq!(
        w.github.merges_while_mergeability_unknown(),
        0,
        "merged only once GitHub knew it could"
    );
    assert!(w.github.pull_reads() >= 4, "{}", w.github.pull_reads());
    assert_eq!(w.github.merge_calls(REPO).len(), 1);
    merged_cleanly(&w, number).await;
}

#[tokio::test]
async fn base_branch_was_modified_is_transient_and_the_same_pair_is_merged_again() {
    let (w, number) = merged_despite(|github| github.base_modified_next_merges(1)).await;
    let head = w.github.pull(REPO, number).last_head_sha;
    assert_eq!(
        w.github.merge_calls(REPO),
        [(number, head.clone()), (number, head)],
        "the 405, then the merge"
    );
    merged_cleanly(&w, number).await;
}

#[tokio::test]
async fn a_70000_byte_report_is_cut_within_githubs_limits_with_a_link_to_the_full_report() {
    use slipway_forge::Forge;
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = slipway_testkit::rsa_key_pair(keys.path());
    let github = FakeGitHub::start_app("12345", &public).await;
    let dir = tempfile::tempdir().unwrap();
    let (work, origin) = slipway_testkit::forge_fixture(dir.path(), "true", &[("b.txt", "b\n")]);
    git(&work, &["push", "-q", "origin", "feature"]);
    github.add_repo(REPO, &origin);
    let number = github.open_pull(REPO, "feature", "main", false);
    let head = git(&origin, &["rev-parse", "feature"]);

    // The fake holds Slipway to GitHub's limits: 65,536 characters for a comment.
    let too_long = "x".repeat(70_000);
    let http = reqwest::Client::new();
    let token_client = GitHub::app(&github.url, "12345", &private).unwrap();
    let token = token_client.git_token(REPO).await.unwrap();
    let refused = http
        .post(format!(
            "{}/repos/{REPO}/issues/{number}/comments",
            github.url
        ))
        .bearer_auth(&token)
        .json(&json!({"body": too_long}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 422);
    let refused: serde_json::Value = refused.json().await.unwrap();
    assert!(refused["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("maximum is 65536 characters"));

    // 70,000 bytes of characters of one to four bytes: more than 65,535 bytes, fewer characters.
    let mut details = String::from("### Slipway: failed\n\n| step | status |\n|---|---|\n");
    while details.len() < 70_000 {
        details.push_str("| test | failed: é ü — 😀 |\n");
    }
    let client = GitHub::app(&github.url, "12345", &private).unwrap();
    let forge = client.repo(REPO);
    let report = slipway_forge::Report {
        sha: head.clone(),
        verdict: slipway_forge::Verdict::Failure,
        summary: "test failed".into(),
        details,
        link: Some("https://slipway.example/api/v1/validations/7".into()),
        // More than GitHub takes in one request (50): sent in three.
        annotations: (1..=120)
            .map(|line| slipway_forge::Annotation {
                path: "src/app.py".into(),
                line,
                level: "failure",
                title: "complexity".into(),
                message: format!("finding {line}"),
            })
            .collect(),
    };
    forge.mark(&report).await.unwrap();
    forge.tell(number, &report).await.unwrap();
    let page = "https://slipway.example/validations/7";

    let runs = github.check_runs();
    assert_eq!(runs.len(), 1);
    let summary = &runs[0].summary;
    assert!(summary.len() <= 65_535, "{}", summary.len());
    assert!(summary.len() > 60_000, "cut near the limit, not far below");
    let last = summary.trim_end().lines().last().unwrap();
    assert!(
        last.contains(&format!("[the full report]({page})")),
        "{last}"
    );
    assert_eq!(runs[0].details_url.as_deref(), report.link.as_deref());
    let annotations = &runs[0].annotations;
    assert_eq!(annotations.len(), 120);
    assert_eq!(annotations[119]["message"], "finding 120");
    assert_eq!(annotations[0]["start_line"], 1);
    assert_eq!(annotations[0]["annotation_level"], "failure");

    let comments = github.comments(REPO);
    assert_eq!(comments.len(), 1);
    let body = &comments[0].body;
    assert!(body.chars().count() <= 65_536);
    assert!(body.starts_with("<!-- slipway:validation-report -->\n### Slipway: failed"));
    let last = body.trim_end().lines().last().unwrap();
    assert!(
        last.contains(&format!("[the full report]({page})")),
        "{last}"
    );
    // Edited in place, still within the limit.
    forge.tell(number, &report).await.unwrap();
    assert_eq!(github.comments(REPO).len(), 1);
    assert_eq!(github.comments(REPO)[0].edits, 1);

    // Without a public URL there is no page to link: the last line says where it is.
    let report = slipway_forge::Report {
        link: None,
        ..report
    };
    forge.tell(number, &report).await.unwrap();
    let body = &github.comments(REPO)[0].body;
    assert!(body.chars().count() <= 65_536);
    assert!(body
        .trim_end()
        .ends_with("the full report is on the validation's page in Slipway"));
}

#[tokio::test]
async fn a_pull_requests_diff_and_commits_are_read_in_githubs_shapes() {
    use slipway_forge::Forge;
    let dir = tempfile::tempdir().unwrap();
    let (work, origin) = slipway_testkit::forge_fixture(
        dir.path(),
        "true",
        &[("b.txt", "one\ntwo\n"), ("a.txt", "changed\n")],
    );
    git(&work, &["push", "-q", "origin", "feature"]);
    let github = FakeGitHub::start(TOKEN).await;
    github.add_repo(REPO, &origin);
    let number = github.open_pull(REPO, "feature", "main", false);
    let client = GitHub::new(&github.url, TOKEN).with_waits(short_waits());
    let repo = client.repo(REPO);

    let mut files = repo.diff(number).await.unwrap();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let summary: Vec<(&str, &str)> = files
        .iter()
        .map(|f| (f.path.as_str(), f.status.as_str()))
        .collect();
    assert_eq!(summary, [("a.txt", "modified"), ("b.txt", "added")]);
    assert_eq!(
        files[1].patch.as_deref(),
        Some("@@ -0,0 +1,2 @@\n+one\n+two")
    );
    assert!(files[0]
        .patch
        .as_deref()
        .unwrap()
        .contains("-base\n+changed"));

    let commits = repo.commits(number).await.unwrap();
    assert_eq!(commits.len(), 1);
    assert_eq!(commits[0].title, "feature work");
    assert_eq!(commits[0].sha, git(&origin, &["rev-parse", "feature"]));
    assert!(!commits[0].author.is_empty());
}

#[tokio::test]
async fn a_token_pasted_into_yaml_is_masked_in_the_check_runs_annotations_and_the_comment() {
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = slipway_testkit::rsa_key_pair(keys.path());
    let github = FakeGitHub::start_app("12345", &public).await;
    let client = Arc::new(
        GitHub::app(&github.url, "12345", &private)
            .unwrap()
            .with_waits(short_waits()),
    );
    let token = format!(
        "ghp_{}",
        "Zq8Xw2Lm4Np6Rt1Vb3Hk".repeat(2).get(..36).unwrap()
    );
    let config = format!("deploy:\n  region: eu\n  token: {token}\n");
    let files = [("config.yml", config.as_str())];
    let w = world_on(github, client, "true", &files, json!({}), NO_POLL).await;
    // main analyses every change (the base branch's `[analysis]` decides).
    let pipeline = "[test]\ncommands = [\"true\"]\n[analysis]\n";
    commit_files(&w.work, &[(".slipway.toml", pipeline)], "analyse changes");
    git(&w.work, &["push", "-q", "origin", "main"]);

    let number = w.github.open_pull(REPO, "feature", "main", false);
    w.deliver_pull_request("opened", number, "d-token").await;
    w.until("the report comment", |g| !g.comments(REPO).is_empty())
        .await;
    w.until("the check run", |g| !g.check_runs().is_empty())
        .await;

    let runs = w.github.check_runs();
    assert_eq!(runs[0].conclusion, "failure", "{runs:?}");
    let annotations = &runs[0].annotations;
    assert!(
        annotations.iter().any(|a| a["path"] == "config.yml"
            && a["start_line"] == 3
            && a["title"] == "credentials"
            && a["annotation_level"] == "failure"),
        "{annotations:?}"
    );
    let comment = &w.github.comments(REPO)[0].body;
    assert!(comment.contains("[credentials]"), "{comment}");
    assert!(!w.github.pull(REPO, number).merged);
    for (what, text) in [
        ("check run", format!("{runs:?}")),
        ("comment", comment.clone()),
        ("statuses", format!("{:?}", w.github.statuses(REPO))),
    ] {
        assert!(
            !text.contains(&token),
            "the token shows in the {what}: {text}"
        );
    }
}
