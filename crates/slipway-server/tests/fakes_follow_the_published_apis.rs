//! The fakes the other tests trust are held to the services' published descriptions: every
//! answer the fake GitHub and the fake Codegen give while Slipway's real clients use them is
//! checked against GitHub's OpenAPI description (the `@octokit/openapi` npm package, fetched
//! with npm on first use) and Codegen's (`tests-data/reference/codegen-openapi3.json`).

use serde_json::json;
use slipway_agent::codegen::{Codegen, CreateRun};
use slipway_engine::{CodegenConfig, RateLimit};
use slipway_forge::github::GitHub;
use slipway_testkit::exchanges::Exchange;
use slipway_testkit::fake_codegen::{FakeCodegen, Fault, Script};
use slipway_testkit::fake_github::{Failing, FakeGitHub};
use slipway_testkit::openapi::Spec;
use slipway_testkit::{commit_files, forge_fixture, git};
use std::path::{Path, PathBuf};
use std::process::Command;

const OCTOKIT: &str = "@octokit/openapi@23.0.2";
const REPO: &str = "acme/app";

/// GitHub's description, from the npm package (fetched once into the target directory).
fn github_spec() -> Spec {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("octokit-openapi-23.0.2");
    let file = dir.join("package/generated/api.github.com.json");
    if !file.exists() {
        // Several test processes may fetch at once: each unpacks into its own directory and
        // the first to finish renames it into place.
        std::fs::create_dir_all(&target).unwrap();
        let fetch = tempfile::tempdir_in(&target).unwrap();
        let packed = Command::new("npm")
            .args(["pack", "--silent", OCTOKIT, "--pack-destination"])
            .arg(fetch.path())
            .output()
            .expect("npm runs (install Node and npm)");
        assert!(
            packed.status.success(),
            "npm pack {OCTOKIT} failed (the npm registry must be reachable): {}",
            String::from_utf8_lossy(&packed.stderr)
        );
        let tarball = String::from_utf8_lossy(&packed.stdout).trim().to_owned();
        let unpacked = Command::new("tar")
            .args(["xzf", &tarball])
            .current_dir(fetch.path())
            .status()
            .unwrap();
        assert!(unpacked.success(), "tar xzf {tarball}");
        let fetched = fetch.keep();
        if std::fs::rename(&fetched, &dir).is_err() {
            // Another process got there first; its copy is whole.
            let _ = std::fs::remove_dir_all(&fetched);
        }
        assert!(file.exists(), "{} after fetching {OCTOKIT}", file.display());
    }
    Spec::load(&file)
}

fn codegen_spec() -> Spec {
    Spec::load(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests-data/reference/codegen-openapi3.json"),
    )
}

/// The fake GitHub's route as GitHub's description spells it; `None` for git over HTTP.
fn github_template(route: &str) -> Option<String> {
    if route.starts_with("/git/") {
        return None;
    }
    let spelled = route
        .replace("{name}", "{repo}")
        .replace("/pulls/{number}", "/pulls/{pull_number}")
        .replace("/issues/{number}", "/issues/{issue_number}")
        .replace("/issues/comments/{id}", "/issues/comments/{comment_id}")
        .replace("/contents/{*path}", "/contents/{path}")
        .replace("/git/refs/heads/{*branch}", "/git/refs/{ref}")
        .replace("/branches/{*branch}", "/branches/{branch}")
        .replace("/collaborators/{user}/", "/collaborators/{username}/")
        .replace("/installations/{id}/", "/installations/{installation_id}/");
    Some(spelled)
}

fn codegen_template(route: &str) -> String {
    route
        .replace("{org}", "{org_id}")
        .replace("/agent/run/{id}", "/agent/run/{agent_run_id}")
}

/// Every problem of every answer; the routes seen. Statuses `skip_status` names are not
/// checked where the description does not list them for the route.
fn check(
    spec: &Spec,
    exchanges: &[Exchange],
    template: impl Fn(&str) -> Option<String>,
    skip_status: impl Fn(u16) -> bool,
) -> (Vec<String>, std::collections::BTreeSet<String>) {
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for exchange in exchanges {
        let Some(path) = template(&exchange.route) else {
            continue;
        };
        seen.insert(format!("{} {path} {}", exchange.method, exchange.status));
        let documented = spec.documents(&exchange.method, &path, exchange.status);
        if skip_status(exchange.status) && !documented {
            continue;
        }
        problems.extend(spec.check_answer(
            &exchange.method,
            &path,
            exchange.status,
            &exchange.body,
        ));
    }
    (problems, seen)
}

async fn use_github_with_a_token(github: &FakeGitHub, origin: &Path, work: &Path) {
    let client = GitHub::new(&github.url, "ghp_token");
    assert_eq!(client.repositories().await.unwrap(), [REPO]);
    client.clone_url(REPO).await.unwrap();
    let pull = client
        .create_pull(REPO, "feature", "main", "Add b", "body")
        .await
        .unwrap();
    let number = pull.number;
    github.mergeable_unknown_next(1);
    assert_eq!(client.pull(REPO, number).await.unwrap().mergeable, None);
    assert!(client.pull(REPO, number).await.unwrap().mergeable.is_some());
    github.exhaust_rate_limit_next(1); // waited out (a second), then answered
    client.pull(REPO, number).await.unwrap();
    client.open_pulls(REPO).await.unwrap();
    client.pull_files(REPO, number).await.unwrap();
    client.file(REPO, "main", ".slipway.toml").await.unwrap();
    client.file(REPO, "main", "missing.txt").await.unwrap();
    let head = git(origin, &["rev-parse", "feature"]);
    client
        .set_status(
            REPO,
            &head,
            slipway_forge::github::StatusState::Success,
            "ok",
            None,
        )
        .await
        .unwrap();
    // Server errors: a status is tried again by the client; a creation is not (it may
    // have been made), nor a merge (the merge controller reads the pull request again).
    github.server_error_next(Failing::Status, &[502]);
    client
        .set_status(
            REPO,
            &head,
            slipway_forge::github::StatusState::Success,
            "ok",
            None,
        )
        .await
        .unwrap();
    github.server_error_next(Failing::Comment, &[500]);
    let lost = client
        .upsert_comment(REPO, number, "<!-- m -->", "lost")
        .await;
    assert!(
        matches!(
            lost,
            Err(slipway_forge::github::GitHubError::Status { status: 500, .. })
        ),
        "{lost:?}"
    );
    github.add_comment(REPO, number, None, "by a deleted account");
    client
        .upsert_comment(REPO, number, "<!-- m -->", "one")
        .await
        .unwrap();
    client
        .upsert_comment(REPO, number, "<!-- m -->", "two")
        .await
        .unwrap();
    github.grant(REPO, "dev", "write");
    client.can_write(REPO, "dev").await.unwrap();
    client.can_write(REPO, "stranger").await.unwrap();
    github.review(REPO, number, "dev", "APPROVED", "COLLABORATOR");
    let head = client.pull(REPO, number).await.unwrap().head_sha;
    assert_eq!(client.approvals(REPO, number, &head).await.unwrap(), 1);
    // An approval is of the commit it was given on: for another head it does not count.
    let other = git(origin, &["rev-parse", "main"]);
    assert_eq!(client.approvals(REPO, number, &other).await.unwrap(), 0);
    let base = client.branch_head(REPO, "main").await.unwrap();
    let method = slipway_core::pipeline::MergeMethod::Merge;
    // A server error, refused, raced, then merged.
    github.server_error_next(Failing::Merge, &[503]);
    assert!(client
        .merge(REPO, number, &head, method, "t")
        .await
        .is_err());
    github.refuse_next_merge(403, "Resource not accessible by personal access token");
    assert!(matches!(
        client.merge(REPO, number, &head, method, "t").await,
        Ok(slipway_forge::github::Merge::Refused { status: 403, .. })
    ));
    github.race_next_merge();
    client
        .merge(REPO, number, &head, method, "t")
        .await
        .unwrap();
    client
        .merge(REPO, number, &head, method, "t")
        .await
        .unwrap();
    client
        .merge(REPO, number, &head, method, "t")
        .await
        .unwrap(); // 405: already merged
    client.delete_branch(REPO, "feature").await.unwrap();
    assert!(client.delete_branch(REPO, "feature").await.is_err()); // 422: gone
    assert_ne!(base, client.branch_head(REPO, "main").await.unwrap());
    // Unmergeable: a conflicting pull request.
    git(work, &["checkout", "-q", "-b", "conflict", &base]);
    commit_files(work, &[("a.txt", "conflict\n")], "conflict");
    git(work, &["push", "-q", "origin", "conflict"]);
    let conflict = client
        .create_pull(REPO, "conflict", "main", "Conflict", "")
        .await
        .unwrap();
    git(work, &["checkout", "-q", "main"]);
    git(work, &["pull", "-q", "origin", "main"]);
    commit_files(work, &[("a.txt", "main moved\n")], "main moves");
    git(work, &["push", "-q", "origin", "main"]);
    let head = git(origin, &["rev-parse", "conflict"]);
    client
        .merge(REPO, conflict.number, &head, method, "t")
        .await
        .unwrap();
}

async fn use_github_as_an_app(github: &FakeGitHub, key: &[u8], origin: &Path) {
    let client = GitHub::app(&github.url, "12345", key).unwrap();
    let number = client
        .create_pull(REPO, "feature", "main", "Add b", "")
        .await
        .unwrap()
        .number;
    let head = git(origin, &["rev-parse", "feature"]);
    client
        .complete_check_run(REPO, &head, "success", "passed", "summary", None, &[])
        .await
        .unwrap();
    github.refuse_check_runs();
    assert!(client
        .complete_check_run(REPO, &head, "success", "passed", "summary", None, &[])
        .await
        .is_err());
    client
        .upsert_comment(REPO, number, "<!-- m -->", "app")
        .await
        .unwrap();
}

#[tokio::test]
async fn every_answer_of_the_fake_github_follows_githubs_description() {
    let spec = github_spec();
    let dir = tempfile::tempdir().unwrap();
    let (work, origin) = forge_fixture(dir.path(), "true", &[("b.txt", "b\n")]);
    git(&work, &["push", "-q", "origin", "feature"]);

    let github = FakeGitHub::start("ghp_token").await;
    github.add_repo(REPO, &origin);
    use_github_with_a_token(&github, &origin, &work).await;
    // 429 (the rate limit) may come from any route, and so may a 5xx of a gateway's (not
    // checked where the description does not list it).
    let (problems, seen) = check(&spec, &github.exchanges(), github_template, |s| {
        s == 429 || s >= 500
    });
    assert!(problems.is_empty(), "{problems:#?}");
    for expected in [
        "PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge 200",
        "PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge 403",
        "PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge 405",
        "PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge 409",
        "DELETE /repos/{owner}/{repo}/git/refs/{ref} 422",
        "GET /repos/{owner}/{repo}/issues/{issue_number}/comments 200",
        "GET /user 200",
        "GET /repos/{owner}/{repo}/pulls/{pull_number} 429",
        "PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge 503",
        "POST /repos/{owner}/{repo}/statuses/{sha} 502",
        "POST /repos/{owner}/{repo}/issues/{issue_number}/comments 500",
    ] {
        assert!(
            seen.contains(expected),
            "{expected} not exercised: {seen:#?}"
        );
    }

    let keys = tempfile::tempdir().unwrap();
    let (private, public) = slipway_testkit::rsa_key_pair(keys.path());
    let app = FakeGitHub::start_app("12345", &public).await;
    let app_dir = tempfile::tempdir().unwrap();
    let (_, app_origin) = forge_fixture(app_dir.path(), "true", &[("b.txt", "b\n")]);
    app.add_repo(REPO, &app_origin);
    use_github_as_an_app(&app, &private, &app_origin).await;
    // GitHub answers 401 and 403 (a missing permission) on any route, documented or not.
    let (problems, seen) = check(&spec, &app.exchanges(), github_template, |s| {
        s == 401 || s == 403
    });
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(
        seen.contains("POST /app/installations/{installation_id}/access_tokens 201"),
        "{seen:#?}"
    );
    assert!(
        seen.contains("POST /repos/{owner}/{repo}/check-runs 403"),
        "{seen:#?}"
    );
}

#[tokio::test]
async fn every_answer_of_the_fake_codegen_follows_codegens_description() {
    let spec = codegen_spec();
    let fake = FakeCodegen::start("cg-token", 7).await;
    fake.script([
        Script::Answer("hello".into()),
        Script::Answer("again".into()),
    ]);
    let client = Codegen::new(CodegenConfig {
        base_url: fake.url.clone(),
        token: "cg-token".into(),
        org_id: 7,
        read_limit: RateLimit::CODEGEN_READS,
    });
    let create = CreateRun {
        prompt: "Say hello",
        metadata: json!({"slipway_run_id": 1, "slipway_project_id": 1}),
        repo_id: None,
        model: None,
    };
    let run = client.create_run(&create).await.unwrap();
    client.run(run.id).await.unwrap();
    client.list_runs(0, 100, Some("API")).await.unwrap();
    client.find_by_slipway_run(1).await.unwrap();
    client.resume(run.id, "again").await.unwrap();
    client.ban(run.id).await.unwrap();
    client.unban(run.id).await.unwrap();
    assert!(client.resume(999_999, "x").await.is_err()); // 404
    fake.fault([Fault::Status(429, Some(0))]);
    client.run(run.id).await.unwrap(); // a 429 first, then the run
                                       // Injected 5xx are a gateway's, not the API's: not checked against the description.
    let (problems, seen) = check(
        &spec,
        &fake.exchanges(),
        |route| Some(codegen_template(route)),
        |status| status >= 500,
    );
    assert!(problems.is_empty(), "{problems:#?}");
    for expected in [
        "POST /v1/organizations/{org_id}/agent/run 200",
        "GET /v1/organizations/{org_id}/agent/runs 200",
        "POST /v1/organizations/{org_id}/agent/run/resume 404",
        "GET /v1/organizations/{org_id}/agent/run/{agent_run_id} 429",
        "POST /v1/organizations/{org_id}/agent/run/unban 200",
    ] {
        assert!(
            seen.contains(expected),
            "{expected} not exercised: {seen:#?}"
        );
    }
}

/// The set-up endpoints: repository webhooks (list, create, refused twice, get, update,
/// deliveries, delete, refused without the scope), the token's repositories page by page,
/// and an App's installations and their repositories.
#[tokio::test]
async fn the_fake_githubs_set_up_endpoints_follow_githubs_description() {
    use slipway_forge::github::WantedHook;
    let spec = github_spec();
    let dir = tempfile::tempdir().unwrap();
    let (_, origin) = forge_fixture(dir.path(), "true", &[]);
    let github = FakeGitHub::start("ghp_token").await;
    for n in 0..120 {
        github.add_repo(&format!("acme/r{n:03}"), &origin);
    }
    github.add_repo(REPO, &origin);
    let client = GitHub::new(&github.url, "ghp_token");
    assert_eq!(client.repositories().await.unwrap().len(), 121);
    let hook = WantedHook {
        url: "http://127.0.0.1:9/webhooks/github",
        secret: "s3cret",
        events: &["pull_request", "pull_request_review"],
    };
    let created = client.create_hook(REPO, hook).await.unwrap();
    assert!(client.create_hook(REPO, hook).await.is_err()); // 422: already there
    assert_eq!(client.hooks(REPO).await.unwrap().len(), 1);
    client.hook(REPO, created.id).await.unwrap();
    client.update_hook(REPO, created.id, hook).await.unwrap();
    let payload = json!({"action": "opened", "repository": {"full_name": REPO}});
    github.deliver(REPO, "pull_request", &payload).await;
    let last = client.last_hook_delivery(REPO, created.id).await.unwrap();
    assert_eq!(last.map(|d| d.event), Some("pull_request".into()));
    client.delete_hook(REPO, created.id).await.unwrap();
    client.delete_hook(REPO, created.id).await.unwrap(); // 404: gone already
    github.deny_hooks();
    assert!(client.hooks(REPO).await.is_err());
    let (problems, seen) = check(&spec, &github.exchanges(), github_template, |s| s == 429);
    assert!(problems.is_empty(), "{problems:#?}");
    for expected in [
        "GET /user/repos 200",
        "POST /repos/{owner}/{repo}/hooks 201",
        "POST /repos/{owner}/{repo}/hooks 422",
        "GET /repos/{owner}/{repo}/hooks 200",
        "GET /repos/{owner}/{repo}/hooks 404",
        "GET /repos/{owner}/{repo}/hooks/{hook_id} 200",
        "PATCH /repos/{owner}/{repo}/hooks/{hook_id} 200",
        "GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries 200",
        "DELETE /repos/{owner}/{repo}/hooks/{hook_id} 204",
        "DELETE /repos/{owner}/{repo}/hooks/{hook_id} 404",
    ] {
        assert!(
            seen.contains(expected),
            "{expected} not exercised: {seen:#?}"
        );
    }

    let keys = tempfile::tempdir().unwrap();
    let (private, public) = slipway_testkit::rsa_key_pair(keys.path());
    let app = FakeGitHub::start_app("12345", &public).await;
    for n in 0..120 {
        app.add_repo(&format!("acme/r{n:03}"), &origin);
    }
    let client = GitHub::app(&app.url, "12345", &private).unwrap();
    assert_eq!(client.repositories().await.unwrap().len(), 120);
    let (problems, seen) = check(&spec, &app.exchanges(), github_template, |s| s == 401);
    assert!(problems.is_empty(), "{problems:#?}");
    for expected in [
        "GET /app/installations 200",
        "GET /installation/repositories 200",
    ] {
        assert!(
            seen.contains(expected),
            "{expected} not exercised: {seen:#?}"
        );
    }
}
