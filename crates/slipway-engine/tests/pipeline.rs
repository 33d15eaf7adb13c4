//! The validation pipeline end to end: real git repositories, real processes, a real store.

use slipway_core::secret::SecretValue;
use slipway_core::validation::{StepName, StepStatus, ValidationStatus};
use slipway_core::ValidationId;
use slipway_engine::Target;
use slipway_store::{Store, ValidationRecord};
use slipway_testkit::{commit_files, processes_with, PYTHON_APP, PYTHON_APP_TEST};

use std::time::Duration;

mod common;
use common::{harness, harness_with, step};

fn pipeline(build: &str, start: &str, ready: u32, test: &str) -> String {
    format!(
        "[build]\ncommands = [{build:?}]\n[service]\nstart = {start:?}\nhealth_path = \"/health\"\nready_timeout_secs = {ready}\n[test]\ncommands = [{test:?}]\ntimeout_secs = 3\n"
    )
}

fn good_pipeline() -> String {
    pipeline(
        "python3 -m py_compile app.py",
        "python3 app.py",
        20,
        PYTHON_APP_TEST,
    )
}

#[tokio::test]
async fn a_good_app_passes_every_step_it_configures() {
    let h = harness(&[("app.py", PYTHON_APP), (".slipway.toml", &good_pipeline())]).await;
    let record = h.validate_main().await;
    let log = h.log(record.id).await;
    assert_eq!(record.status, ValidationStatus::Passed, "{log}");
    for name in [
        StepName::Checkout,
        StepName::Build,
        StepName::Deploy,
        StepName::Test,
    ] {
        assert_eq!(
            step(&record, name).status,
            StepStatus::Passed,
            "{name}: {log}"
        );
    }
    assert_eq!(step(&record, StepName::Setup).status, StepStatus::Skipped);
    assert!(step(&record, StepName::Setup)
        .detail
        .as_deref()
        .unwrap()
        .contains("[setup]"));
    for later in [
        StepName::Ui,
        StepName::Analysis,
        StepName::Judge,
        StepName::Merge,
    ] {
        assert_eq!(step(&record, later).status, StepStatus::Skipped);
    }
    assert!(log.contains("[test] test passed"), "{log}");
    assert!(log.contains("[deploy] listening on"), "{log}");
    assert!(step(&record, StepName::Deploy)
        .detail
        .as_deref()
        .unwrap()
        .contains("healthy"));
    assert_eq!(record.sha.len(), 40);
    assert_eq!(processes_with("app.py"), 0, "the service was stopped");
}

#[tokio::test]
async fn a_failing_build_fails_at_build_and_runs_nothing_after() {
    let h = harness(&[
        ("app.py", PYTHON_APP),
        (
            ".slipway.toml",
            &pipeline("echo compiling; exit 7", "python3 app.py", 20, "true"),
        ),
    ])
    .await;
    let record = h.validate_main().await;
    assert_eq!(record.status, ValidationStatus::Failed);
    let build = step(&record, StepName::Build);
    assert_eq!(build.status, StepStatus::Failed);
    assert_eq!(build.exit_code, Some(7));
    assert_eq!(build.command.as_deref(), Some("echo compiling; exit 7"));
    assert_eq!(step(&record, StepName::Deploy).status, StepStatus::Skipped);
    assert!(step(&record, StepName::Test)
        .detail
        .as_deref()
        .unwrap()
        .contains("build"));
    assert!(h.log(record.id).await.contains("[build] compiling"));
}

#[tokio::test]
async fn a_service_that_never_becomes_healthy_fails_at_deploy() {
    let h = harness(&[(
        ".slipway.toml",
        &pipeline("true", "sleep 7001.5", 2, "true"),
    )])
    .await;
    let record = h.validate_main().await;
    assert_eq!(record.status, ValidationStatus::Failed);
    let deploy = step(&record, StepName::Deploy);
    assert_eq!(deploy.status, StepStatus::Failed);
    assert!(
        deploy
            .detail
            .as_deref()
            .unwrap()
            .contains("not healthy within 2 s"),
        "{deploy:?}"
    );
    assert_eq!(processes_with("7001.5"), 0);
}

#[tokio::test]
async fn a_service_that_crashes_fails_at_deploy_with_its_exit_code() {
    let h = harness(&[(
        ".slipway.toml",
        &pipeline("true", "echo boom >&2; exit 4", 20, "true"),
    )])
    .await;
    let record = h.validate_main().await;
    let deploy = step(&record, StepName::Deploy);
    assert_eq!(deploy.status, StepStatus::Failed);
    assert_eq!(deploy.exit_code, Some(4));
    assert!(h.log(record.id).await.contains("[deploy] boom"));
}

#[tokio::test]
async fn failing_tests_fail_at_test() {
    let h = harness(&[
        ("app.py", PYTHON_APP),
        (
            ".slipway.toml",
            &pipeline("true", "python3 app.py", 20, "echo 1 test failed; exit 1"),
        ),
    ])
    .await;
    let record = h.validate_main().await;
    assert_eq!(record.status, ValidationStatus::Failed);
    assert_eq!(step(&record, StepName::Deploy).status, StepStatus::Passed);
    let test = step(&record, StepName::Test);
    assert_eq!((test.status, test.exit_code), (StepStatus::Failed, Some(1)));
}

#[tokio::test]
async fn a_hanging_test_times_out_and_leaves_no_process() {
    let h = harness(&[(
        ".slipway.toml",
        "[test]\ncommands = [\"sleep 7002.5\"]\ntimeout_secs = 1\n",
    )])
    .await;
    let record = h.validate_main().await;
    let test = step(&record, StepName::Test);
    assert_eq!(test.status, StepStatus::Failed);
    assert!(
        test.detail
            .as_deref()
            .unwrap()
            .contains("timed out after 1 s"),
        "{test:?}"
    );
    assert!(test.duration_ms.unwrap() < 3_500, "{test:?}");
    assert_eq!(processes_with("7002.5"), 0);
}

#[tokio::test]
async fn the_whole_validation_has_a_time_limit() {
    let h = harness_with(
        &[(".slipway.toml", "[build]\ncommands = [\"sleep 7005.5\"]\n")],
        |c| c.validation_timeout = Duration::from_secs(1),
    )
    .await;
    let record = h.validate_main().await;
    let build = step(&record, StepName::Build);
    assert_eq!(build.status, StepStatus::Failed);
    assert!(
        build.detail.as_deref().unwrap().contains("time limit"),
        "{build:?}"
    );
}

#[tokio::test]
async fn a_background_process_forked_by_a_step_does_not_survive_it() {
    let h = harness(&[(
        ".slipway.toml",
        "[build]\ncommands = [\"sleep 7003.5 & echo forked\"]\n[test]\ncommands = [\"true\"]\n",
    )])
    .await;
    let record = h.validate_main().await;
    assert_eq!(record.status, ValidationStatus::Passed);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(processes_with("7003.5"), 0);
}

#[tokio::test]
async fn a_malformed_pipeline_file_fails_checkout_with_its_line() {
    let h = harness(&[(".slipway.toml", "[build]\ncommand = [\"make\"]\n")]).await;
    let record = h.validate_main().await;
    assert_eq!(record.status, ValidationStatus::Failed);
    let checkout = step(&record, StepName::Checkout);
    assert_eq!(checkout.status, StepStatus::Failed);
    let detail = checkout.detail.as_deref().unwrap();
    assert!(
        detail.contains(".slipway.toml:2") && detail.contains("unknown field `command`"),
        "{detail}"
    );
}

#[tokio::test]
async fn without_a_pipeline_file_the_project_defaults_apply() {
    let h = harness(&[("README.md", "no pipeline here")]).await;
    let mut settings = h.store.settings(h.project.id).await.unwrap();
    settings.pipeline.test = Some(slipway_core::pipeline::TestSection {
        commands: vec!["echo from the dashboard defaults".into()],
        ..Default::default()
    });
    h.store.put_settings(h.project.id, &settings).await.unwrap();
    let record = h.validate_main().await;
    assert_eq!(record.status, ValidationStatus::Passed);
    assert!(h
        .log(record.id)
        .await
        .contains("[test] from the dashboard defaults"));
}

#[tokio::test]
async fn secrets_reach_commands_but_never_the_log() {
    let h = harness(&[(
        ".slipway.toml",
        "[test]\ncommands = [\"test \\\"$API_KEY\\\" = s3cr3t-v4lue && echo key=$API_KEY && printf %s \\\"$API_KEY\\\" | base64\"]\n",
    )])
    .await;
    h.store
        .put_secret(
            h.project.id,
            "API_KEY",
            &SecretValue::new("s3cr3t-v4lue".into()).unwrap(),
        )
        .await
        .unwrap();
    let record = h.validate_main().await;
    let log = h.log(record.id).await;
    assert_eq!(record.status, ValidationStatus::Passed, "{log}");
    assert!(log.contains("key=***"), "{log}");
    assert!(
        !log.contains("s3cr3t-v4lue") && !log.contains("czNjcjN0LXY0bHVl"),
        "{log}"
    );
}

#[tokio::test]
async fn variables_reach_commands_shown_and_old_short_secrets_mask_only_whole_words() {
    let h = harness(&[(
        ".slipway.toml",
        "[test]\ncommands = [\"echo feature=$FEATURE mode=$MODE; echo validation merged onto main\"]\n",
    )])
    .await;
    h.store
        .put_variables(h.project.id, &[("FEATURE", "beta")])
        .await
        .unwrap();
    // A secret stored before the 4-character rule keeps working.
    h.store
        .put_secret(
            h.project.id,
            "MODE",
            &SecretValue::new("on".into()).unwrap(),
        )
        .await
        .unwrap();
    let record = h.validate_main().await;
    let log = h.log(record.id).await;
    assert_eq!(record.status, ValidationStatus::Passed, "{log}");
    // The variable is shown as it is; the short secret is masked only as a whole word.
    assert!(log.contains("[test] feature=beta mode=***"), "{log}");
    assert!(log.contains("[test] validation merged onto main"), "{log}");
}

#[tokio::test]
async fn the_exact_commit_is_checked_out() {
    let h = harness(&[
        (".slipway.toml", "[test]\ncommands = [\"cat version\"]\n"),
        ("version", "one"),
    ])
    .await;
    let first = h
        .engine
        .submit(&h.project, Target::Branch("main".into()))
        .await
        .unwrap();
    commit_files(&h.repo, &[("version", "two")], "second");
    h.run_until_final(&[first.id]).await;
    let log = h.log(first.id).await;
    assert!(
        log.contains("[test] one") && !log.contains("[test] two"),
        "{log}"
    );

    let by_sha = h
        .engine
        .submit(&h.project, Target::Sha("HEAD~1".into()))
        .await
        .unwrap();
    assert_eq!(by_sha.sha, first.sha);
    let bad = h
        .engine
        .submit(&h.project, Target::Branch("nope".into()))
        .await;
    assert!(bad
        .unwrap_err()
        .to_string()
        .contains("'nope' does not exist"));
}

#[tokio::test]
async fn a_newer_commit_on_the_branch_cancels_the_older_validation() {
    let h = harness(&[(".slipway.toml", "[test]\ncommands = [\"true\"]\n")]).await;
    let old = h
        .engine
        .submit(&h.project, Target::Branch("main".into()))
        .await
        .unwrap();
    commit_files(&h.repo, &[("new.txt", "x")], "newer");
    let new = h
        .engine
        .submit(&h.project, Target::Branch("main".into()))
        .await
        .unwrap();
    assert_ne!(old.sha, new.sha);
    h.run_until_final(&[old.id, new.id]).await;
    assert_eq!(
        h.store.validation(old.id).await.unwrap().status,
        ValidationStatus::Cancelled
    );
    assert_eq!(
        h.store.validation(new.id).await.unwrap().status,
        ValidationStatus::Passed
    );
}

#[tokio::test]
async fn cancelling_a_running_validation_kills_its_processes_quickly() {
    let h = harness(&[(
        ".slipway.toml",
        "[test]\ncommands = [\"sleep 7004.5\"]\ntimeout_secs = 60\n",
    )])
    .await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let workers = h.engine.spawn_workers(shutdown.clone());
    let record = h
        .engine
        .submit(&h.project, Target::Branch("main".into()))
        .await
        .unwrap();
    wait_for(&h.store, record.id, |r| {
        step(r, StepName::Test).status == StepStatus::Running
    })
    .await;
    wait_until(|| processes_with("7004.5") > 0).await;
    let started = std::time::Instant::now();
    h.engine.cancel(record.id).await.unwrap();
    let done = wait_for(&h.store, record.id, |r| r.status.is_final()).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(done.status, ValidationStatus::Cancelled);
    assert_eq!(step(&done, StepName::Test).status, StepStatus::Cancelled);
    assert_eq!(processes_with("7004.5"), 0);
    shutdown.cancel();
    workers.await.unwrap();
}

#[tokio::test]
async fn no_more_than_the_configured_number_run_together() {
    let h = harness_with(
        &[(".slipway.toml", "[test]\ncommands = [\"sleep 0.3\"]\n")],
        |c| c.max_concurrent = 2,
    )
    .await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let workers = h.engine.spawn_workers(shutdown.clone());
    let sha = slipway_testkit::git(&h.repo, &["rev-parse", "HEAD"]);
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(
            h.engine
                .submit(&h.project, Target::Sha(sha.clone()))
                .await
                .unwrap()
                .id,
        );
    }
    let mut spans = Vec::new();
    for id in &ids {
        let done = wait_for(&h.store, *id, |r| r.status.is_final()).await;
        assert_eq!(done.status, ValidationStatus::Passed);
        let test = step(&done, StepName::Test);
        spans.push((test.started_at.unwrap(), test.finished_at.unwrap()));
    }
    // The most test steps running at one moment, from their recorded start and end.
    let most = spans
        .iter()
        .map(|(start, _)| {
            spans
                .iter()
                .filter(|(s, f)| s <= start && start < f)
                .count()
        })
        .max()
        .unwrap();
    assert_eq!(most, 2, "{spans:?}");
    shutdown.cancel();
    workers.await.unwrap();
}

#[tokio::test]
async fn setup_runs_once_then_its_snapshot_is_restored() {
    let h = harness(&[
        (".gitignore", "deps/\n"),
        ("lock.txt", "v1"),
        (
            ".slipway.toml",
            "[setup]\ncommands = [\"mkdir -p deps && echo installed > deps/pkg && echo setup ran\"]\ncache_key = [\"lock.txt\"]\n[test]\ncommands = [\"cat deps/pkg\"]\n",
        ),
    ])
    .await;
    let first = h.validate_main().await;
    assert_eq!(first.status, ValidationStatus::Passed);
    let log = h.log(first.id).await;
    assert!(log.contains("[setup] setup ran"), "{log} {first:?}");

    commit_files(
        &h.repo,
        &[("src.txt", "change that keeps the lockfile")],
        "code",
    );
    let second = h.validate_main().await;
    let log = h.log(second.id).await;
    assert_eq!(second.status, ValidationStatus::Passed, "{log}");
    assert!(!log.contains("setup ran"), "{log}");
    assert!(step(&second, StepName::Setup)
        .detail
        .as_deref()
        .unwrap()
        .contains("restored from snapshot"));
    assert!(log.contains("[test] installed"), "{log}");

    commit_files(&h.repo, &[("lock.txt", "v2")], "bump");
    let third = h.validate_main().await;
    assert!(h.log(third.id).await.contains("[setup] setup ran"));
}

async fn wait_for(
    store: &Store,
    id: ValidationId,
    done: impl Fn(&ValidationRecord) -> bool,
) -> ValidationRecord {
    for _ in 0..300 {
        let record = store.validation(id).await.unwrap();
        if done(&record) {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("validation {id} never reached the expected state");
}

async fn wait_until(condition: impl Fn() -> bool) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition never held");
}

#[tokio::test]
async fn the_webhook_secret_never_reaches_pull_request_code() {
    let h = harness(&[(".slipway.toml", "[test]\ncommands = [\"env | sort\"]\n")]).await;
    for (name, value) in [
        ("API_KEY", "api-value-1234"),
        ("GITHUB_WEBHOOK_SECRET", "hook-secret-5678"),
    ] {
        h.store
            .put_secret(h.project.id, name, &SecretValue::new(value.into()).unwrap())
            .await
            .unwrap();
    }
    let record = h.validate_main().await;
    let log = h.log(record.id).await;
    assert_eq!(record.status, ValidationStatus::Passed, "{log}");
    assert!(log.contains("[test] API_KEY=***"), "{log}");
    assert!(!log.contains("GITHUB_WEBHOOK_SECRET"), "{log}");
}

#[tokio::test]
async fn a_pull_request_from_a_fork_gets_no_secrets() {
    let h = harness(&[(
        ".slipway.toml",
        "[test]\ncommands = [\"echo key=${API_KEY:-none}\"]\n",
    )])
    .await;
    h.store
        .put_secret(
            h.project.id,
            "API_KEY",
            &SecretValue::new("fork-must-not-see".into()).unwrap(),
        )
        .await
        .unwrap();
    let fork = h._dir.path().join("fork");
    slipway_testkit::git(
        h._dir.path(),
        &[
            "clone",
            "-q",
            h.repo.to_str().unwrap(),
            fork.to_str().unwrap(),
        ],
    );
    let sha = slipway_testkit::git(&fork, &["rev-parse", "HEAD"]);
    let target = Target::PullRequest {
        number: 9,
        sha: sha.clone(),
        head_ref: "main".into(),
        source: format!("file://{}", fork.display()),
        base_ref: "main".into(),
        base_source: String::new(),
    };
    let from_fork = h.engine.submit(&h.project, target).await.unwrap();
    let same_repo = Target::PullRequest {
        number: 10,
        sha,
        head_ref: "main".into(),
        source: format!("file://{}/", h.repo.display()),
        base_ref: "main".into(),
        base_source: String::new(),
    };
    let from_origin = h.engine.submit(&h.project, same_repo).await.unwrap();
    h.run_until_final(&[from_fork.id, from_origin.id]).await;
    let fork_log = h.log(from_fork.id).await;
    assert!(fork_log.contains("[test] key=none"), "{fork_log}");
    assert!(fork_log.contains("secrets are withheld"), "{fork_log}");
    assert!(fork_log.contains("variables too"), "{fork_log}");
    assert!(h.log(from_origin.id).await.contains("[test] key=***"));
}

/// Attacks through the pipeline itself: git configuration planted by setup, the source
/// repository's objects, a pipeline file that is a link.
#[tokio::test]
async fn a_git_hook_planted_by_setup_never_runs_outside_the_sandbox() {
    let marker = tempfile::tempdir().unwrap();
    let pwned = marker.path().join("pwned");
    let setup = format!(
        "[setup]\ncommands = [\"git config core.fsmonitor 'touch {p}'; git config core.hooksPath .h; mkdir -p .h; printf '#!/bin/sh\\ntouch {p}\\n' > .h/post-checkout; chmod +x .h/post-checkout; echo dep > dep.txt\"]\ncache_key = [\"app.py\"]\n[test]\ncommands = [\"test -f dep.txt\"]\n",
        p = pwned.display()
    );
    let h = harness(&[("app.py", PYTHON_APP), (".slipway.toml", &setup)]).await;
    let first = h.validate_main().await;
    let log = h.log(first.id).await;
    assert_eq!(first.status, ValidationStatus::Passed, "{log}");
    assert!(log.contains("snapshot") && log.contains("saved"), "{log}");
    let second = h.validate_main().await;
    let log = h.log(second.id).await;
    assert_eq!(second.status, ValidationStatus::Passed, "{log}");
    assert!(log.contains("restored from snapshot"), "{log}");
    assert!(!pwned.exists(), "a hook ran outside the sandbox");
}

#[tokio::test]
async fn code_that_corrupts_every_object_it_reaches_leaves_the_source_repository_intact() {
    let attack = "[test]\ncommands = [\"find / -path /proc -prune -o -path '*/objects/*' -type f -print 2>/dev/null > /tmp/objects; n=0; while read f; do chmod u+w \\\"$f\\\" 2>/dev/null; echo garbage >> \\\"$f\\\" 2>/dev/null && n=$((n+1)); done < /tmp/objects; echo corrupted $n objects\"]\n";
    let h = harness(&[("app.py", PYTHON_APP), (".slipway.toml", attack)]).await;
    let record = h.validate_main().await;
    let log = h.log(record.id).await;
    assert_eq!(record.status, ValidationStatus::Passed, "{log}");
    // It did corrupt what it could reach: the workspace's own clone.
    assert!(
        log.contains("corrupted") && !log.contains("corrupted 0 objects"),
        "{log}"
    );
    let fsck = std::process::Command::new("git")
        .args(["fsck", "--full", "--strict"])
        .current_dir(&h.repo)
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stderr)
    );
    // The workspace's own objects were fair game; the next validation is unaffected.
    assert_eq!(h.validate_main().await.status, ValidationStatus::Passed);
}

#[tokio::test]
async fn a_pipeline_file_that_is_a_link_to_the_master_key_is_refused() {
    let h = harness(&[("app.py", PYTHON_APP)]).await;
    let key = h.store_dir().join("master.key");
    let link = h.repo.join(".slipway.toml");
    std::os::unix::fs::symlink(&key, &link).unwrap();
    commit_files(&h.repo, &[], "link the pipeline to the key");
    let record = h.validate_main().await;
    let checkout = step(&record, StepName::Checkout);
    assert_eq!(checkout.status, StepStatus::Failed);
    let detail = checkout.detail.clone().unwrap_or_default();
    assert!(detail.contains("must be a regular file"), "{detail}");
    let log = h.log(record.id).await;
    let key_text = std::fs::read_to_string(&key).unwrap();
    assert!(!log.contains(key_text.trim()), "the key reached the log");
}

#[tokio::test]
async fn a_sandbox_that_cannot_start_a_command_is_an_error_not_the_codes_failure() {
    let tools = tempfile::tempdir().unwrap();
    let broken = tools.path().join("bwrap");
    std::fs::write(
        &broken,
        "#!/bin/sh\necho \"bwrap: Can't mkdir .slipway: Read-only file system\" >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let h = harness_with(
        &[("app.py", PYTHON_APP), (".slipway.toml", &good_pipeline())],
        |config| {
            config.isolation = slipway_sandbox::Isolation::Bubblewrap {
                bwrap: broken.clone(),
                pasta: None,
            }
        },
    )
    .await;
    let record = h.validate_main().await;
    let log = h.log(record.id).await;
    assert_eq!(record.status, ValidationStatus::Error, "{log}");
    let build = step(&record, StepName::Build);
    assert_eq!(build.status, StepStatus::Error, "{log}");
    let detail = build.detail.clone().unwrap_or_default();
    assert!(detail.contains("the sandbox could not start"), "{detail}");
    assert!(
        log.contains("Read-only file system"),
        "bubblewrap's words are kept: {log}"
    );
}
