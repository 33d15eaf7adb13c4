//! The local forge through the API: pull requests on a bare repository, validated and merged
//! with real git only when every condition holds.

use reqwest::StatusCode;
use serde_json::{json, Value};
use slipway_testkit::{commit_files, git, TestApp};
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Forge {
    app: TestApp,
    project: i64,
    /// The bare repository the project points at.
    origin: PathBuf,
    /// A developer's clone that pushes to it.
    work: PathBuf,
}

/// A bare repository whose `main` has `.slipway.toml` (running `test`) and `a.txt`, and whose
/// `feature` branch adds `files` on top.
async fn forge(test: &str, files: &[(&str, &str)], settings: Value) -> Forge {
    let app = TestApp::spawn().await;
    let (work, origin) = slipway_testkit::forge_fixture(app.data_dir.path(), test, files);
    let created = app
        .api
        .create_project(&json!({"name": "local", "repo": origin.display().to_string()}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let project = created.body["id"].as_i64().unwrap();
    let saved = app.api.put_settings(project, &settings).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.text);
    Forge {
        app,
        project,
        origin,
        work,
    }
}

impl Forge {
    async fn open(&self) -> Value {
        let reply = self
            .app
            .api
            .open_pull(self.project, &json!({"head": "feature", "title": "Add b"}))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.body
    }

    /// Waits until pull request 1 is merged or carries a note.
    async fn settled(&self) -> Value {
        for _ in 0..600 {
            let pr = self.app.api.pulls(self.project).await.body[0].clone();
            if pr["state"] != "open" || !pr["note"].is_null() {
                return pr;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("pull request never settled");
    }

    fn origin_git(&self, args: &[&str]) -> String {
        git(&self.origin, args)
    }
}

fn exists_in(origin: &Path, rev_path: &str) -> bool {
    std::process::Command::new("git")
        .args(["cat-file", "-e", rev_path])
        .current_dir(origin)
        .status()
        .unwrap()
        .success()
}

#[tokio::test]
async fn a_passing_pull_request_is_merged_at_its_validated_head() {
    let f = forge(
        "test -f b.txt",
        &[("b.txt", "feature\n")],
        json!({"auto_merge": true, "merge_method": "squash", "delete_branch_after_merge": true}),
    )
    .await;
    let opened = f.open().await;
    assert_eq!(opened["number"], 1);
    assert_eq!(opened["state"], "open");
    let pr = f.settled().await;
    assert_eq!(pr["state"], "merged", "{pr}");
    let main = f.origin_git(&["rev-parse", "main"]);
    assert_eq!(pr["merge_sha"], main.as_str());
    assert!(exists_in(&f.origin, "main:b.txt"));
    assert_eq!(
        f.origin_git(&["log", "-1", "--format=%s", "main"]),
        "Add b (#1)"
    );
    // The branch goes right after the merge is recorded: waited for, not raced.
    for _ in 0..200 {
        if f.origin_git(&["branch", "--list", "feature"]).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        f.origin_git(&["branch", "--list", "feature"]),
        "",
        "branch deleted"
    );

    let actions: Vec<String> = f
        .app
        .pr_notifications(f.project, 2)
        .await
        .into_iter()
        .map(|(action, _)| action)
        .collect();
    assert_eq!(actions, ["opened", "merged"]);

    let validations = f.app.api.validations(f.project).await.body;
    assert_eq!(validations[0]["pr"], 1);
    assert_eq!(validations[0]["sha"], opened["head_sha"]);
    assert_eq!(validations[0]["status"], "passed");
}

#[tokio::test]
async fn without_auto_merge_a_passing_pull_request_waits() {
    let f = forge("true", &[("b.txt", "x\n")], json!({"auto_merge": false})).await;
    f.open().await;
    let pr = f.settled().await;
    assert_eq!(pr["state"], "open");
    assert!(
        pr["note"].as_str().unwrap().contains("auto-merge is off"),
        "{pr}"
    );
    assert!(!exists_in(&f.origin, "main:b.txt"));
}

#[tokio::test]
async fn a_pull_request_cannot_turn_on_its_own_auto_merge() {
    let own = "[test]\ncommands = [\"true\"]\n[merge]\nauto = true\n";
    let f = forge(
        "true",
        &[(".slipway.toml", own)],
        json!({"auto_merge": false}),
    )
    .await;
    f.open().await;
    let pr = f.settled().await;
    assert_eq!(pr["state"], "open", "{pr}");
    assert!(
        pr["note"].as_str().unwrap().contains("auto-merge is off"),
        "{pr}"
    );
}

#[tokio::test]
async fn a_pull_request_that_rewrites_its_own_checks_is_never_merged_automatically() {
    // main's check: a.txt says "base". The pull request breaks that and, in the same change,
    // replaces the check with one that cannot fail.
    let f = forge(
        "grep -qx base a.txt",
        &[
            ("a.txt", "broken\n"),
            (".slipway.toml", "[test]\ncommands = [\"true\"]\n"),
        ],
        json!({"auto_merge": true}),
    )
    .await;
    f.open().await;
    let pr = f.settled().await;
    assert_eq!(pr["state"], "open", "{pr}");
    assert!(
        pr["note"]
            .as_str()
            .unwrap()
            .contains("changes its own checks (.slipway.toml)"),
        "{pr}"
    );
    assert_eq!(
        f.origin_git(&["show", "main:a.txt"]),
        "base",
        "main keeps the checked content"
    );
}

#[tokio::test]
async fn a_pull_request_that_renames_its_checks_away_is_never_merged_automatically() {
    // The pull request moves .slipway.toml aside (a rename, not a change of its text), so the
    // settings' lenient pipeline judges it: read from git at checkout, it still counts as a
    // change of its own checks.
    let f = forge(
        "grep -qx base a.txt",
        &[("a.txt", "broken\n")],
        json!({"auto_merge": true, "pipeline": {"test": {"commands": ["true"]}}}),
    )
    .await;
    git(&f.work, &["checkout", "-q", "feature"]);
    git(&f.work, &["mv", ".slipway.toml", "old-pipeline.toml"]);
    git(
        &f.work,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "commit",
            "-qm",
            "move the checks aside",
        ],
    );
    git(&f.work, &["push", "-q", "origin", "feature"]);
    f.open().await;
    let pr = f.settled().await;
    assert_eq!(pr["state"], "open", "{pr}");
    assert!(
        pr["note"]
            .as_str()
            .unwrap()
            .contains("changes its own checks (.slipway.toml)"),
        "{pr}"
    );
    assert_eq!(f.origin_git(&["show", "main:a.txt"]), "base");
}

#[tokio::test]
async fn the_base_branch_slipway_toml_wins_over_the_settings() {
    let f = forge("true", &[("b.txt", "x\n")], json!({"auto_merge": false})).await;
    let policy = "[test]\ncommands = [\"true\"]\n[merge]\nauto = true\nmethod = \"squash\"\n";
    commit_files(&f.work, &[(".slipway.toml", policy)], "merge policy");
    git(&f.work, &["push", "-q", "origin", "main"]);
    f.open().await;
    let pr = f.settled().await;
    assert_eq!(pr["state"], "merged", "{pr}");
    let parents = git(&f.origin, &["log", "-1", "--format=%P", "main"]);
    assert_eq!(parents.split_whitespace().count(), 1, "squashed: {parents}");
    assert!(exists_in(&f.origin, "main:b.txt"));
}

#[tokio::test]
async fn a_failing_pull_request_is_never_merged() {
    let f = forge(
        "test -f missing.txt",
        &[("b.txt", "x\n")],
        json!({"auto_merge": true}),
    )
    .await;
    f.open().await;
    let pr = f.settled().await;
    assert_eq!(pr["state"], "open");
    assert!(pr["note"].as_str().unwrap().contains("failed"), "{pr}");
    assert!(!exists_in(&f.origin, "main:b.txt"));
}

#[tokio::test]
async fn a_conflict_is_not_merged_and_names_the_conflicting_paths() {
    let f = forge(
        "true",
        &[("a.txt", "feature version\n")],
        json!({"auto_merge": true}),
    )
    .await;
    // main changes the same line after the branch was made.
    commit_files(&f.work, &[("a.txt", "main version\n")], "main moves on");
    git(&f.work, &["push", "-q", "origin", "main"]);
    let before = f.origin_git(&["rev-parse", "main"]);
    f.open().await;
    let pr = f.settled().await;
    assert_eq!(pr["state"], "open");
    // Merged onto the moved base at checkout, it conflicts: the validation fails there,
    // naming the file, and nothing is merged.
    let note = pr["note"].as_str().unwrap();
    assert!(
        note.contains("checkout failed")
            && note.contains("conflicts with main")
            && note.contains("a.txt"),
        "{note}"
    );
    assert!(note.contains("Not merged"), "{note}");
    assert_eq!(f.origin_git(&["rev-parse", "main"]), before);
}

#[tokio::test]
async fn a_push_during_validation_is_validated_and_only_the_new_head_is_merged() {
    let f = forge(
        "if [ -f second.txt ]; then true; else sleep 30; fi",
        &[("b.txt", "first push\n")],
        json!({"auto_merge": true, "merge_method": "merge"}),
    )
    .await;
    let opened = f.open().await;
    let first_sha = opened["head_sha"].as_str().unwrap().to_owned();
    // Wait for the first validation to be running, then push to the branch.
    for _ in 0..200 {
        if f.app.api.validations(f.project).await.body[0]["status"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    git(&f.work, &["checkout", "-q", "feature"]);
    let second_sha = commit_files(&f.work, &[("second.txt", "second push\n")], "second push");
    git(&f.work, &["push", "-q", "origin", "feature"]);

    let pr = f.settled().await;
    assert_eq!(pr["state"], "merged", "{pr}");
    assert_eq!(pr["head_sha"], second_sha.as_str());
    assert!(exists_in(&f.origin, "main:second.txt"));
    let validations = f.app.api.validations(f.project).await.body;
    let id_of = |sha: &str| {
        validations
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["sha"] == sha)
            .map(|v| v["id"].as_i64().unwrap())
            .unwrap()
    };
    // Cancelling a running validation ends when its processes are gone, which may be
    // after the new head merged.
    let first = f.app.api.finished_validation(id_of(&first_sha)).await;
    assert_eq!(first["status"], "cancelled");
    let second = f.app.api.finished_validation(id_of(&second_sha)).await;
    assert_eq!(second["status"], "passed");
}

#[tokio::test]
async fn bad_pull_requests_are_refused_with_the_reason() {
    let f = forge("true", &[("b.txt", "x\n")], json!({})).await;
    let api = &f.app.api;
    let cases = [
        (json!({"head": "nope", "title": "t"}), "does not exist"),
        (json!({"head": "main", "title": "t"}), "same branch"),
        (json!({"head": "feature", "title": " "}), "title"),
        (
            json!({"head": "feature", "title": "t", "draft": true}),
            "unknown field",
        ),
    ];
    for (body, needle) in cases {
        let reply = api.open_pull(f.project, &body).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(reply.message().contains(needle), "{body}: {}", reply.text);
    }
    let github = f.app.project("on-github").await;
    let reply = api
        .open_pull(github, &json!({"head": "feature", "title": "t"}))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.message().contains("opened on GitHub"));
    let viewer = f.app.api_as("viewer").await;
    assert_eq!(
        viewer
            .open_pull(f.project, &json!({"head": "feature", "title": "t"}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(api.pulls(f.project).await.body, json!([]));
}

#[tokio::test]
async fn a_validation_can_be_started_for_a_pull_request_by_number() {
    let f = forge("true", &[("b.txt", "x\n")], json!({"auto_merge": false})).await;
    let opened = f.open().await;
    f.settled().await;
    let started = f
        .app
        .api
        .start_validation(f.project, &json!({"pr": 1}))
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
    assert_eq!(started.body["pr"], 1);
    assert_eq!(started.body["sha"], opened["head_sha"]);
    assert_eq!(started.body["branch"], "feature");
}

impl Forge {
    /// Waits until pull request `number` is merged.
    async fn merged(&self, number: usize) -> Value {
        for _ in 0..600 {
            let pulls = self.app.api.pulls(self.project).await.body;
            let pr = pulls
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["number"] == number)
                .cloned();
            if let Some(pr) = pr.filter(|pr| pr["state"] == "merged") {
                return pr;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "pull request {number} never merged: {}",
            self.app.api.pulls(self.project).await.body
        );
    }

    /// Every validation of pull request `number`, oldest first, once finished.
    async fn finished_validations(&self, number: i64) -> Vec<Value> {
        let list = self.app.api.validations(self.project).await.body;
        let mut finished = Vec::new();
        for v in list.as_array().unwrap().iter().rev() {
            if v["pr"] == number {
                let id = v["id"].as_i64().unwrap();
                finished.push(self.app.api.finished_validation(id).await);
            }
        }
        finished
    }

    /// Pushes `files` to `main` as one commit.
    fn move_main(&self, files: &[(&str, &str)]) -> String {
        git(&self.work, &["checkout", "-q", "main"]);
        let sha = commit_files(&self.work, files, "main moves on");
        git(&self.work, &["push", "-q", "origin", "main"]);
        sha
    }
}

#[tokio::test]
async fn a_pull_request_that_passes_alone_but_fails_on_the_moved_base_is_not_merged() {
    // The test compares b.txt (the pull request's) with a.txt (the base's).
    let f = forge(
        "test \"$(cat a.txt)\" = \"$(cat b.txt)\"",
        &[("b.txt", "base\n")],
        json!({"auto_merge": true}),
    )
    .await;
    let moved = f.move_main(&[("a.txt", "renamed\n")]);
    f.open().await;
    let pr = f.settled().await;
    assert_eq!(pr["state"], "open", "{pr}");
    assert!(!exists_in(&f.origin, "main:b.txt"));
    let validations = f.finished_validations(1).await;
    let last = validations.last().unwrap();
    assert_eq!(last["status"], "failed", "{last}");
    assert_eq!(last["base_ref"], "main");
    assert_eq!(last["base_sha"], moved.as_str());
    assert_eq!(last["steps"][4]["name"], "test");
    assert_eq!(last["steps"][4]["status"], "failed");
    let log = f
        .app
        .api
        .validation_logs(last["id"].as_i64().unwrap(), "step=checkout")
        .await
        .text;
    assert!(
        log.contains(&format!("merged onto main at {moved}")),
        "{log}"
    );
    let events = f
        .app
        .store
        .events_after(slipway_core::ProjectId(f.project), 0, 1000)
        .await
        .unwrap();
    assert!(
        events.iter().any(
            |e| e.payload["base_sha"] == moved.as_str() && e.payload["head_sha"] == last["sha"]
        ),
        "the live events carry both commits"
    );

    // Alone, the head passes: exactly what a head-only gate would have merged.
    let alone = f
        .app
        .api
        .validated(f.project, &json!({"branch": "feature"}))
        .await;
    assert_eq!(alone["status"], "passed", "{alone}");
    assert!(alone["base_sha"].is_null());
}

#[tokio::test]
async fn a_base_that_moves_between_verdict_and_merge_is_validated_again_first() {
    let f = forge(
        "sleep 1; test -f b.txt",
        &[("b.txt", "x\n")],
        json!({"auto_merge": true, "merge_method": "merge"}),
    )
    .await;
    let old_base = f.origin_git(&["rev-parse", "main"]);
    f.open().await;
    // Once the checkout has merged onto the old base, main moves.
    for _ in 0..400 {
        let list = f.app.api.validations(f.project).await.body;
        if list[0]["steps"][4]["status"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let new_base = f.move_main(&[("c.txt", "c\n")]);
    let pr = f.merged(1).await;
    let validations = f.finished_validations(1).await;
    assert_eq!(validations.len(), 2, "{validations:?}");
    assert_eq!(validations[0]["base_sha"], old_base.as_str());
    assert_eq!(validations[0]["status"], "passed");
    assert_eq!(validations[1]["base_sha"], new_base.as_str());
    assert_eq!(validations[1]["status"], "passed");
    let merge = pr["merge_sha"].as_str().unwrap();
    let parents = f.origin_git(&["log", "-1", "--format=%P", merge]);
    assert!(parents.starts_with(&new_base), "merged onto {parents}");
    assert!(exists_in(&f.origin, "main:c.txt") && exists_in(&f.origin, "main:b.txt"));
}

#[tokio::test]
async fn two_ready_pull_requests_merge_one_after_the_other_the_second_on_top_of_the_first() {
    let f = forge(
        "test -f a.txt",
        &[("b.txt", "b\n")],
        json!({"auto_merge": true, "merge_method": "merge"}),
    )
    .await;
    git(&f.work, &["checkout", "-q", "-b", "second", "main"]);
    commit_files(&f.work, &[("c.txt", "c\n")], "second work");
    git(&f.work, &["push", "-q", "origin", "feature", "second"]);
    f.open().await;
    let opened = f
        .app
        .api
        .open_pull(f.project, &json!({"head": "second", "title": "Add c"}))
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.text);
    let (one, two) = (f.merged(1).await, f.merged(2).await);
    let (one_sha, two_sha) = (
        one["merge_sha"].as_str().unwrap(),
        two["merge_sha"].as_str().unwrap(),
    );
    // Whichever merged second was validated merged onto the first one's merge.
    let is_ancestor = |a: &str, b: &str| {
        std::process::Command::new("git")
            .args(["merge-base", "--is-ancestor", a, b])
            .current_dir(&f.origin)
            .status()
            .unwrap()
            .success()
    };
    let (first, second, second_number) = if is_ancestor(one_sha, two_sha) {
        (one_sha, two_sha, 2)
    } else {
        assert!(
            is_ancestor(two_sha, one_sha),
            "the merges are not in a line"
        );
        (two_sha, one_sha, 1)
    };
    let parents = f.origin_git(&["log", "-1", "--format=%P", second]);
    assert!(parents.starts_with(first), "{second} has parents {parents}");
    let validations = f.finished_validations(second_number).await;
    assert!(
        validations
            .iter()
            .any(|v| v["status"] == "passed" && v["base_sha"] == first),
        "{validations:?}"
    );
    assert!(exists_in(&f.origin, "main:b.txt") && exists_in(&f.origin, "main:c.txt"));
}
