//! GitHub on a bad day, end to end against the fake GitHub with faults switched on by each
//! test: server errors at verdict time are retried (by the client for idempotent calls, by a
//! `verdict` job for the merge and the report) and shown on the merge step; a merge whose
//! answer was lost is not made twice; mergeability still being computed is waited for; an
//! approval that comes after a passed verdict merges without a new validation (by its
//! webhook, or found by the poller); a read-only reviewer's approval does not count.

use serde_json::json;
use slipway_forge::github::{GitHub, Waits};
use slipway_testkit::fake_github::{Failing, FakeGitHub};
use slipway_testkit::{git, webhook_fixture, TestApp};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "ghp_fake_token_for_tests";
const REPO: &str = "acme/app";
const NO_POLL: Duration = Duration::from_secs(3600);

struct World {
    app: TestApp,
    github: FakeGitHub,
    project: i64,
    origin: PathBuf,
}

/// A repository whose `feature` passes, behind the fake GitHub, with `settings`.
async fn world(settings: serde_json::Value, poll: Duration) -> World {
    let github = FakeGitHub::start(TOKEN).await;
    let waits = Waits::short(Duration::from_millis(20));
    let client = Arc::new(GitHub::new(&github.url, TOKEN).with_waits(waits));
    let app = TestApp::spawn_with(|config| {
        config.github = Some(client);
        config.github_poll_every = poll;
        config.public_url = Some("https://slipway.example".into());
    })
    .await;
    let (_, origin) =
        slipway_testkit::forge_fixture(app.data_dir.path(), "true", &[("b.txt", "b\n")]);
    github.add_repo(REPO, &origin);
    github.require_status(REPO, "slipway/validation");
    let project = app.project("app").await;
    app.api.put_settings(project, &settings).await;
    World {
        app,
        github,
        project,
        origin,
    }
}

impl World {
    fn head(&self) -> String {
        git(&self.origin, &["rev-parse", "feature"])
    }

    async fn deliver(&self, event: &str, payload: serde_json::Value, delivery: &str) {
        let body = serde_json::to_vec(&payload).unwrap();
        let reply = self
            .app
            .api
            .send_webhook(event, delivery, &body, None)
            .await;
        assert_eq!(reply.status, 202, "{}", reply.text);
    }

    async fn opened(&self, number: i64) {
        let mut payload = webhook_fixture("pull_request/opened.payload.json");
        payload["repository"]["full_name"] = json!(REPO);
        payload["number"] = json!(number);
        payload["pull_request"]["draft"] = json!(false);
        payload["pull_request"]["head"]["sha"] = json!(self.head());
        payload["pull_request"]["head"]["ref"] = json!("feature");
        payload["pull_request"]["head"]["repo"]["clone_url"] = json!(self.github.clone_url(REPO));
        payload["pull_request"]["base"]["ref"] = json!("main");
        payload["pull_request"]["base"]["repo"]["clone_url"] = json!(self.github.clone_url(REPO));
        self.deliver("pull_request", payload, &format!("open-{number}"))
            .await;
    }

    /// A `pull_request_review` delivery of `action` with `state` (as GitHub writes it in
    /// deliveries: lower case) by `reviewer` on pull request `number` at the current head.
    async fn reviewed(&self, number: i64, action: &str, state: &str, reviewer: &str, id: &str) {
        let mut payload = webhook_fixture("pull_request_review/submitted.payload.json");
        payload["action"] = json!(action);
        payload["repository"]["full_name"] = json!(REPO);
        payload["review"]["state"] = json!(state);
        payload["review"]["user"]["login"] = json!(reviewer);
        payload["pull_request"]["number"] = json!(number);
        payload["pull_request"]["head"]["sha"] = json!(self.head());
        self.deliver("pull_request_review", payload, id).await;
    }

    async fn until(&self, what: &str, done: impl Fn(&FakeGitHub) -> bool) {
        for _ in 0..600 {
            if done(&self.github) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "never: {what}; comments {:?}; validations {}",
            self.github.comments(REPO),
            self.app.api.validations(self.project).await.body
        );
    }

    async fn validations(&self) -> Vec<serde_json::Value> {
        self.app
            .api
            .validations(self.project)
            .await
            .body
            .as_array()
            .unwrap()
            .clone()
    }

    /// The merge step of the only validation, once the controller made it `status`.
    async fn merge_step(&self, status: &str) -> serde_json::Value {
        for _ in 0..600 {
            let validations = self.validations().await;
            assert!(validations.len() <= 1, "one validation: {validations:?}");
            if validations.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let step = validations[0]["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == "merge")
                .unwrap()
                .clone();
            let placeholder = step["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("decided after the verdict"));
            if step["status"] == status && !placeholder {
                return step;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let last = self.validations().await;
        let merges = self.github.merge_calls(REPO);
        panic!("the merge step never became {status}: {last:?}; merge calls: {merges:?}");
    }

    /// The statuses the merge step went through, from the stored events.
    async fn merge_step_history(&self) -> Vec<String> {
        let events = self
            .app
            .store
            .events_after(slipway_core::ProjectId(self.project), 0, 10_000)
            .await
            .unwrap();
        events
            .iter()
            .filter(|e| {
                e.kind == slipway_store::EventKind::ValidationUpdate && e.payload["step"] == "merge"
            })
            .map(|e| e.payload["step_status"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    fn the_comment(&self) -> String {
        let comments = self.github.comments(REPO);
        assert_eq!(comments.len(), 1, "one report: {comments:?}");
        comments[0].body.clone()
    }
}

#[tokio::test]
async fn server_errors_at_verdict_time_are_retried_shown_and_the_pair_merged_once() {
    let w = world(json!({"auto_merge": true}), NO_POLL).await;
    let number = w.github.open_pull(REPO, "feature", "main", false);
    // The status twice (the client tries again itself); the merge and the report twice
    // each (made again by the verdict job).
    w.github.server_error_next(Failing::Status, &[502, 500]);
    w.github.server_error_next(Failing::Merge, &[502, 503]);
    w.github.server_error_next(Failing::Comment, &[500, 504]);
    w.opened(number).await;
    let step = w.merge_step("passed").await;
    assert!(
        step["detail"].as_str().unwrap().starts_with("Merged as"),
        "{step}"
    );
    let pull = w.github.pull(REPO, number);
    assert!(pull.merged);
    let head = pull.last_head_sha.clone();
    assert_eq!(
        w.github.merge_calls(REPO),
        [
            (number, head.clone()),
            (number, head.clone()),
            (number, head)
        ],
        "two failed calls, then the one merge, always of the validated head"
    );
    let comment = w.the_comment();
    assert!(comment.contains("Merged as"), "{comment}");
    assert!(!comment.contains("Refused"), "{comment}");
    // Marked again at each attempt of the controller: the same verdict each time.
    let statuses = w.github.statuses(REPO);
    assert!(
        statuses
            .iter()
            .all(|s| s.sha == w.head() && (s.state == "pending" || s.state == "success")),
        "{statuses:?}"
    );
    assert_eq!(statuses.last().unwrap().state, "success");
    let history = w.merge_step_history().await;
    assert!(
        history.iter().any(|s| s == "running"),
        "the merge step showed the retry: {history:?}"
    );
    assert_eq!(history.last().map(String::as_str), Some("passed"));
}

#[tokio::test]
async fn a_merge_whose_answer_was_lost_is_not_made_twice() {
    let w = world(json!({"auto_merge": true}), NO_POLL).await;
    let number = w.github.open_pull(REPO, "feature", "main", false);
    w.github.server_error_next(Failing::MergeAnswerLost, &[502]);
    w.opened(number).await;
    w.until("the report", |g| {
        g.comments(REPO)
            .iter()
            .any(|c| c.body.contains("merged already"))
    })
    .await;
    assert!(w.github.pull(REPO, number).merged);
    assert_eq!(w.github.merge_calls(REPO).len(), 1, "merged once");
    let parents = git(&w.origin, &["log", "--merges", "--format=%H", "main"]);
    assert_eq!(parents.lines().count(), 1, "one merge commit: {parents}");
}

#[tokio::test]
async fn mergeability_still_computed_past_the_clients_reads_is_waited_for_by_the_job() {
    let w = world(json!({"auto_merge": true}), NO_POLL).await;
    let number = w.github.open_pull(REPO, "feature", "main", false);
    // More null reads than one controller run makes (Waits: 5 a time).
    w.github.mergeable_unknown_next(7);
    w.opened(number).await;
    w.merge_step("passed").await;
    assert_eq!(w.github.merges_while_mergeability_unknown(), 0);
    assert_eq!(w.github.merge_calls(REPO).len(), 1);
    assert!(w.merge_step_history().await.iter().any(|s| s == "running"));
}

#[tokio::test]
async fn a_late_approval_merges_without_a_new_validation_and_a_read_only_one_does_not() {
    let w = world(
        json!({"auto_merge": true, "required_approvals": 1}),
        NO_POLL,
    )
    .await;
    let number = w.github.open_pull(REPO, "feature", "main", false);
    // A collaborator who may only read approves: no approval that counts.
    w.github.grant(REPO, "reader", "read");
    w.github
        .review(REPO, number, "reader", "APPROVED", "COLLABORATOR");
    w.opened(number).await;
    let step = w.merge_step("skipped").await;
    assert!(
        step["detail"]
            .as_str()
            .unwrap()
            .contains("0 of the 1 required approvals"),
        "{step}"
    );
    w.reviewed(number, "submitted", "approved", "reader", "r-1")
        .await;
    // A change request and a dismissal do nothing either.
    w.reviewed(number, "submitted", "changes_requested", "dev", "r-2")
        .await;
    w.reviewed(number, "dismissed", "dismissed", "dev", "r-3")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!w.github.pull(REPO, number).merged);
    assert!(w.github.merge_calls(REPO).is_empty());

    // A writer's approval after the verdict: merged, on the same validation.
    w.github.approve(REPO, number, "dev");
    w.reviewed(number, "submitted", "approved", "dev", "r-4")
        .await;
    w.until("merged", |g| g.pull(REPO, number).merged).await;
    let step = w.merge_step("passed").await;
    assert!(
        step["detail"].as_str().unwrap().starts_with("Merged as"),
        "{step}"
    );
    assert_eq!(w.validations().await.len(), 1, "no new validation");
    w.until("the report says merged", |g| {
        g.comments(REPO)
            .iter()
            .any(|c| c.body.contains("Merged as"))
    })
    .await;
    assert_eq!(w.github.comments(REPO).len(), 1, "the one report, edited");
}

#[tokio::test]
async fn the_poller_merges_a_passed_pull_request_whose_approval_came_without_a_webhook() {
    let w = world(
        json!({"auto_merge": true, "required_approvals": 1}),
        Duration::from_millis(300),
    )
    .await;
    let number = w.github.open_pull(REPO, "feature", "main", false);
    let step = w.merge_step("skipped").await;
    assert!(
        step["detail"]
            .as_str()
            .unwrap()
            .contains("0 of the 1 required approvals"),
        "{step}"
    );
    w.github.approve(REPO, number, "dev");
    w.until("merged", |g| g.pull(REPO, number).merged).await;
    assert_eq!(w.validations().await.len(), 1, "no new validation");
    assert_eq!(w.github.merge_calls(REPO).len(), 1);
}
