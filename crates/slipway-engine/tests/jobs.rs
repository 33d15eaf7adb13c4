//! How jobs run: one attempt at a time, bad stored data is an `error` (never a panic), start-up kills nothing by
//! number, no sandbox means no run. Real processes, a real store, the real workers.

mod common;

use common::{harness, harness_with, until, Harness};
use slipway_core::validation::ValidationStatus;
use slipway_engine::Target;
use tokio_util::sync::CancellationToken;

async fn sql(h: &Harness, statement: &str) {
    let url = format!("sqlite://{}", h.store_dir().join("slipway.db").display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query(statement).execute(&mut conn).await.unwrap();
}

#[tokio::test]
async fn this_process_never_runs_a_second_attempt_of_a_validation_it_still_runs() {
    let pipeline = "[test]\ncommands = [\"echo started; sleep 4; echo done\"]\n";
    let h = harness(&[(".slipway.toml", pipeline)]).await;
    let shutdown = CancellationToken::new();
    let workers = h.engine.spawn_workers(shutdown.clone());
    let queued = h
        .engine
        .submit(&h.project, Target::Branch("main".into()))
        .await
        .unwrap();
    until("the command started", || async {
        h.log(queued.id).await.contains("started")
    })
    .await;
    // As if its heartbeats had stopped: the lease is free for the taking while it runs.
    h.store.expire_leases_of(h.engine.owner()).await.unwrap();
    until("the validation ended", || async {
        h.store
            .validation(queued.id)
            .await
            .unwrap()
            .status
            .is_final()
    })
    .await;
    shutdown.cancel();
    workers.await.unwrap();
    let record = h.store.validation(queued.id).await.unwrap();
    let log = h.log(queued.id).await;
    assert_eq!(
        record.attempt, 1,
        "a second attempt ran beside the first: {log}"
    );
    assert_eq!(record.status, ValidationStatus::Passed, "{log}");
}

#[tokio::test]
async fn a_validation_whose_stored_steps_are_gone_ends_as_error_never_a_panic() {
    let pipeline = "[test]\ncommands = [\"true\"]\n";
    let h = harness(&[(".slipway.toml", pipeline)]).await;
    let queued = h
        .engine
        .submit(&h.project, Target::Branch("main".into()))
        .await
        .unwrap();
    // A store the pipeline cannot follow: its planned steps are gone.
    sql(&h, "DELETE FROM validation_steps").await;
    h.run_until_final(&[queued.id]).await;
    let record = h.store.validation(queued.id).await.unwrap();
    assert_eq!(record.status, ValidationStatus::Error, "Slipway's fault");
    let error = record.error.unwrap_or_default();
    assert!(
        error.contains("its stored plan has no checkout step"),
        "{error}"
    );
    assert!(error.contains("retry it"), "{error}");
    assert!(!error.contains("panic"), "{error}");
}

#[tokio::test]
async fn a_stored_config_file_that_breaks_the_rules_is_an_error_of_slipways() {
    let h = harness(&[("README.md", "no pipeline here\n")]).await;
    // As `validate --config` stores it, but with a viewport no browser can take: only
    // stored data changed behind Slipway's back could hold it.
    let config: slipway_core::pipeline::PipelineConfig =
        serde_json::from_value(serde_json::json!({
            "service": {"start": "true"},
            "ui": {"viewports": ["1x1"], "checks": [{"name": "home"}]},
        }))
        .unwrap();
    let queued = h
        .engine
        .submit_with(
            &h.project,
            Target::Branch("main".into()),
            slipway_engine::Options {
                config_file: Some(config),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    h.run_until_final(&[queued.id]).await;
    let record = h.store.validation(queued.id).await.unwrap();
    assert_eq!(record.status, ValidationStatus::Error);
    let error = record.error.unwrap_or_default();
    assert!(error.contains("the stored pipeline"), "{error}");
    assert!(error.contains("ui.viewports"), "{error}");
}

#[tokio::test]
async fn without_a_sandbox_a_validation_is_an_error_saying_what_to_install() {
    let pipeline = "[test]\ncommands = [\"echo ran-unsandboxed\"]\n";
    let h = harness_with(&[(".slipway.toml", pipeline)], |config| {
        config.isolation = slipway_sandbox::Isolation::None;
        config.allow_unsandboxed = false;
    })
    .await;
    let record = h.validate_main().await;
    let log = h.log(record.id).await;
    assert_eq!(record.status, ValidationStatus::Error, "{log}");
    let error = record.error.unwrap_or_default();
    assert!(
        error.contains("apt-get install bubblewrap passt"),
        "{error}"
    );
    assert!(error.contains("SLIPWAY_ALLOW_UNSANDBOXED=1"), "{error}");
    assert!(!log.contains("ran-unsandboxed"), "{log}");
}

#[tokio::test]
async fn allowed_explicitly_a_validation_runs_without_a_sandbox() {
    let pipeline = "[test]\ncommands = [\"echo ran-unsandboxed\"]\n";
    let h = harness_with(&[(".slipway.toml", pipeline)], |config| {
        config.isolation = slipway_sandbox::Isolation::None;
        config.allow_unsandboxed = true;
    })
    .await;
    let record = h.validate_main().await;
    let log = h.log(record.id).await;
    assert_eq!(record.status, ValidationStatus::Passed, "{log}");
    assert!(log.contains("ran-unsandboxed"), "{log}");
}

/// Starts the workers, waits until the validation's command has started, then shuts them
/// down and waits for them to end.
async fn shut_down_while_running(h: &Harness) -> slipway_core::ValidationId {
    let shutdown = CancellationToken::new();
    let workers = h.engine.spawn_workers(shutdown.clone());
    let queued = h
        .engine
        .submit(&h.project, Target::Branch("main".into()))
        .await
        .unwrap();
    until("the command started", || async {
        h.log(queued.id).await.contains("started")
    })
    .await;
    shutdown.cancel();
    workers.await.unwrap();
    queued.id
}

#[tokio::test]
async fn at_shutdown_a_running_validation_finishes_within_the_grace_period() {
    let pipeline = "[test]\ncommands = [\"echo started; sleep 2; echo done\"]\n";
    let h = harness_with(&[(".slipway.toml", pipeline)], |config| {
        config.shutdown_grace = std::time::Duration::from_secs(600);
    })
    .await;
    let id = shut_down_while_running(&h).await;
    let record = h.store.validation(id).await.unwrap();
    let log = h.log(id).await;
    assert_eq!(record.status, ValidationStatus::Passed, "{log}");
    assert_eq!(record.attempt, 1, "{log}");
    assert!(log.contains("[test] done"), "{log}");
}

#[tokio::test]
async fn past_the_grace_period_a_validation_is_handed_back_and_another_worker_takes_it_at_once() {
    // A lease that never runs out during the test: only a hand-back lets another worker in.
    let long_lease = |config: &mut slipway_engine::EngineConfig| {
        config.shutdown_grace = std::time::Duration::ZERO;
        config.job_lease = std::time::Duration::from_secs(3_600);
    };
    let pipeline = "[test]\ncommands = [\"echo started; sleep 3; echo done\"]\n";
    let h = harness_with(&[(".slipway.toml", pipeline)], long_lease).await;
    let id = shut_down_while_running(&h).await;
    let record = h.store.validation(id).await.unwrap();
    assert_eq!(
        record.status,
        ValidationStatus::Queued,
        "{:?}",
        record.error
    );
    // Another worker process: an engine of its own over the same database.
    let other_dir = tempfile::tempdir().unwrap();
    let mut config = slipway_engine::EngineConfig::new(other_dir.path().to_owned());
    long_lease(&mut config);
    let other = slipway_engine::Engine::new(h.store.clone(), config);
    let shutdown = CancellationToken::new();
    let workers = other.spawn_workers(shutdown.clone());
    until("the other worker finished the validation", || async {
        h.store.validation(id).await.unwrap().status.is_final()
    })
    .await;
    shutdown.cancel();
    workers.await.unwrap();
    let record = h.store.validation(id).await.unwrap();
    let log = h.log(id).await;
    assert_eq!(record.status, ValidationStatus::Passed, "{log}");
    assert_eq!(record.attempt, 2, "{log}");
}
