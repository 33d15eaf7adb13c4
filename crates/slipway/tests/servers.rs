//! Several `slipway serve` processes on one database, as behind a load balancer (the test
//! posts to each server directly), against the fake GitHub: the same delivery posted to two
//! servers at once is acted on once; two servers merge two ready pull requests into one base
//! one after the other, the second validated again on the base the first made, and nothing
//! merged that was not validated at exactly that base and head. Every test runs on a SQLite
//! file and on PostgreSQL (see `cluster`).

#[macro_use]
mod cluster;

use cluster::{until, Cluster, Db, Proc};
use reqwest::Method;
use serde_json::{json, Value};
use slipway_testkit::fake_github::FakeGitHub;
use slipway_testkit::{commit_files, git, webhook_fixture, Api, Body, WEBHOOK_SECRET};
use std::collections::BTreeSet;
use std::path::PathBuf;

const GITHUB_TOKEN: &str = "ghp_fake_token_for_servers";
const REPO: &str = "acme/app";
const CONTEXT: &str = "slipway/validation";

on_both_backends!(
    the_same_delivery_posted_to_two_servers_at_once_is_acted_on_once,
    two_servers_merge_two_ready_pull_requests_in_turn_each_validated_on_the_others_merge,
);

/// A fake GitHub holding `acme/app`, and a cluster of processes that use it and accept its
/// deliveries.
struct World {
    github: FakeGitHub,
    cluster: Cluster,
    /// A developer's clone that pushes to the repository.
    work: PathBuf,
    /// The bare repository behind the fake.
    origin: PathBuf,
}

impl World {
    /// `main` runs `test`; `feature` adds `b.txt`.
    async fn new(db: Db, test: &str) -> Self {
        let github = FakeGitHub::start(GITHUB_TOKEN).await;
        let cluster = Cluster::new(
            db,
            &[
                ("GITHUB_API_URL", &github.url),
                ("GITHUB_TOKEN", GITHUB_TOKEN),
                ("GITHUB_WEBHOOK_SECRET", WEBHOOK_SECRET),
            ],
        );
        let (work, origin) =
            slipway_testkit::forge_fixture(&cluster.path("forge"), test, &[("b.txt", "b\n")]);
        github.add_repo(REPO, &origin);
        // main is protected: no merge without Slipway's success status on the head.
        github.require_status(REPO, CONTEXT);
        Self {
            github,
            cluster,
            work,
            origin,
        }
    }

    /// A branch `name` off `main` adding `file`, pushed; its head.
    fn push_branch(&self, name: &str, file: &str) -> String {
        git(&self.work, &["checkout", "-q", "-b", name, "main"]);
        let head = commit_files(&self.work, &[(file, "new\n")], name);
        git(&self.work, &["push", "-q", "origin", name]);
        git(&self.work, &["checkout", "-q", "main"]);
        head
    }

    fn rev(&self, what: &str) -> String {
        git(&self.origin, &["rev-parse", what])
    }

    /// The `opened` delivery of pull request `number` from `branch` into `main`, as GitHub
    /// sends it (its documented sample, pointed at this repository).
    fn opened(&self, number: i64, branch: &str) -> Vec<u8> {
        let mut payload = webhook_fixture("pull_request/opened.payload.json");
        let clone_url = self.github.clone_url(REPO);
        payload["repository"]["full_name"] = json!(REPO);
        payload["number"] = json!(number);
        let pull = &mut payload["pull_request"];
        pull["number"] = json!(number);
        pull["draft"] = json!(false);
        pull["head"]["sha"] = json!(self.rev(branch));
        pull["head"]["ref"] = json!(branch);
        pull["head"]["repo"]["clone_url"] = json!(clone_url);
        pull["base"]["ref"] = json!("main");
        pull["base"]["sha"] = json!(self.rev("main"));
        pull["base"]["repo"]["clone_url"] = json!(clone_url);
        serde_json::to_vec(&payload).unwrap()
    }

    /// The statuses of `sha` on GitHub, oldest first.
    fn statuses(&self, sha: &str) -> Vec<String> {
        let statuses = self.github.statuses(REPO).into_iter();
        let of_sha = statuses.filter(|s| s.sha == sha && s.context == CONTEXT);
        of_sha.map(|s| s.state).collect()
    }
}

async fn project(api: &Api) -> i64 {
    let created = api
        .create_project(&json!({"name": "app", "repo": REPO}))
        .await;
    created.body["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{}", created.text))
}

async fn validations(api: &Api, project: i64) -> Vec<Value> {
    let list = api.validations(project).await;
    list.body
        .as_array()
        .unwrap_or_else(|| panic!("{}", list.text))
        .clone()
}

async fn the_same_delivery_posted_to_two_servers_at_once_is_acted_on_once(db: Db) {
    let w = World::new(db, "echo validated").await;
    let (one, api_one) = w.cluster.server(1, 0);
    let (two, api_two) = w.cluster.server(2, 0);
    let _worker = w.cluster.worker(0);
    let project = project(&api_one).await;
    // Five pull requests, each announced by one delivery that both servers receive at once.
    let mut pulls = Vec::new();
    for n in 0..5 {
        let branch = format!("pr-{n}");
        let head = w.push_branch(&branch, &format!("{branch}.txt"));
        let number = w.github.open_pull(REPO, &branch, "main", false);
        let body = w.opened(number, &branch);
        let delivery = format!("72d3162e-cc78-11e3-81ab-4c9367dc095{n}");
        let (a, b) = tokio::join!(
            api_one.send_webhook("pull_request", &delivery, &body, None),
            api_two.send_webhook("pull_request", &delivery, &body, None),
        );
        assert_eq!(
            [a.status.as_u16(), b.status.as_u16()],
            [202, 202],
            "{}\n{}",
            a.text,
            b.text
        );
        let answers: BTreeSet<&str> = [&a, &b]
            .iter()
            .filter_map(|r| r.body["status"].as_str())
            .collect();
        assert_eq!(
            answers,
            BTreeSet::from(["duplicate", "queued"]),
            "{}\n{}",
            a.text,
            b.text
        );
        pulls.push((number, head, delivery));
    }
    until(
        "every pull request's head has its verdict on GitHub",
        || {
            let done = pulls
                .iter()
                .all(|(_, head, _)| w.statuses(head).last().map(String::as_str) == Some("success"));
            async move { done }
        },
    )
    .await;
    // Each delivery was acted on, once, by one of the servers.
    for (_, _, delivery) in &pulls {
        for api in [&api_one, &api_two] {
            let path = format!("/api/v1/deliveries/{delivery}");
            let stored = api.send(Method::GET, &path, Body::None).await;
            assert_eq!(stored.body["state"], "processed", "{}", stored.text);
        }
        let acted = |server: &Proc| {
            let entries = server.logged("delivery processed");
            entries
                .iter()
                .filter(|e| e["fields"]["delivery"] == delivery.as_str())
                .count()
        };
        assert_eq!(acted(&one) + acted(&two), 1, "delivery {delivery}");
    }
    // One validation per pull request, of its head, run once; one verdict each on GitHub.
    let all = validations(&api_two, project).await;
    assert_eq!(all.len(), pulls.len(), "{all:?}");
    for (number, head, _) in &pulls {
        let of_pull: Vec<&Value> = all.iter().filter(|v| v["pr"] == *number).collect();
        assert_eq!(of_pull.len(), 1, "PR #{number}: {all:?}");
        assert_eq!(of_pull[0]["sha"], head.as_str());
        assert_eq!(of_pull[0]["status"], "passed", "{}", of_pull[0]);
        assert_eq!(of_pull[0]["attempt"], 1, "{}", of_pull[0]);
        assert_eq!(w.statuses(head), ["pending", "success"], "PR #{number}");
    }
    assert!(w.github.merge_calls(REPO).is_empty(), "auto-merge is off");
}

/// On the first base each pull request's test takes a while (so that both are validated on
/// it at the same time); on a base that holds both changes it passes at once.
const SLOW_UNTIL_BOTH: &str =
    "if [ -f b.txt ] && [ -f c.txt ]; then echo on-both; else sleep 3; fi";

async fn two_servers_merge_two_ready_pull_requests_in_turn_each_validated_on_the_others_merge(
    db: Db,
) {
    let w = World::new(db, SLOW_UNTIL_BOTH).await;
    w.push_branch("feature-c", "c.txt");
    let original = w.rev("main");
    // Each server runs one validation at a time: the two run side by side, one on each.
    let (_one, api_one) = w.cluster.server(1, 1);
    let (_two, api_two) = w.cluster.server(2, 1);
    let project = project(&api_one).await;
    let settings = json!({"auto_merge": true, "required_approvals": 1});
    let put = api_one.put_settings(project, &settings).await;
    assert_eq!(put.status, 200, "{}", put.text);
    // Both ready: approved by someone who may write, and auto-merged once validated.
    let first = w.github.open_pull(REPO, "feature", "main", false);
    let second = w.github.open_pull(REPO, "feature-c", "main", false);
    w.github.approve(REPO, first, "maintainer");
    w.github.approve(REPO, second, "maintainer");
    let (opened_b, opened_c) = (w.opened(first, "feature"), w.opened(second, "feature-c"));
    let (a, b) = tokio::join!(
        api_one.send_webhook("pull_request", "d-open-b", &opened_b, None),
        api_two.send_webhook("pull_request", "d-open-c", &opened_c, None),
    );
    assert_eq!(
        [a.status.as_u16(), b.status.as_u16()],
        [202, 202],
        "{}\n{}",
        a.text,
        b.text
    );
    until("both pull requests merged", || {
        let done = w.github.pull(REPO, first).merged && w.github.pull(REPO, second).merged;
        async move { done }
    })
    .await;

    // GitHub was asked to merge twice, one after the other: the second merge's base is the
    // first merge's commit.
    let calls = w.github.merge_calls(REPO);
    assert_eq!(calls.len(), 2, "{calls:?}");
    let merge_of = |number: i64| w.github.pull(REPO, number).merge_sha.unwrap();
    let (earlier, later) = (&calls[0], &calls[1]);
    let (m1, m2) = (merge_of(earlier.0), merge_of(later.0));
    assert_eq!(
        w.rev(&format!("{m1}^1")),
        original,
        "first merged onto main as it was"
    );
    assert_eq!(w.rev(&format!("{m1}^2")), earlier.1);
    assert_eq!(
        w.rev(&format!("{m2}^1")),
        m1,
        "second merged onto the first merge"
    );
    assert_eq!(w.rev(&format!("{m2}^2")), later.1);
    assert_eq!(w.rev("main"), m2);
    assert_eq!(git(&w.origin, &["show", "main:b.txt"]), "b");
    assert_eq!(git(&w.origin, &["show", "main:c.txt"]), "new");

    // Each merge was validated at exactly its base and head.
    let all = validations(&api_two, project).await;
    let passed_at = |number: i64, head: &str, base: &str| {
        all.iter().any(|v| {
            v["pr"] == number
                && v["sha"] == head
                && v["base_sha"] == base
                && v["status"] == "passed"
        })
    };
    assert!(passed_at(earlier.0, &earlier.1, &original), "{all:?}");
    assert!(passed_at(later.0, &later.1, &m1), "{all:?}");
    // The later one had passed on the first base too, beside the other: that verdict was
    // not merged (no merge call of that pair), it was validated again on the first merge.
    assert!(passed_at(later.0, &later.1, &original), "{all:?}");
}
