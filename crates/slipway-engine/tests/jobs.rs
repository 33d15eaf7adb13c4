//! How jobs run: one attempt at a time, a panic is an `error`, start-up kills nothing by
//! number, no sandbox means no run. Real processes, a real store, the real workers.

mod common;

use common::{harness, harness_with, Harness};
use slipway_core::validation::ValidationStatus;
use slipway_engine::Target;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Polls `done` until it holds; panics with `what` if it never does (a guard, not a measure).
async fn until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1_200 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

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
async fn a_panic_in_a_validation_ends_it_as_error_with_a_message() {
    let pipeline = "[test]\ncommands = [\"true\"]\n";
    let h = harness(&[(".slipway.toml", pipeline)]).await;
    let queued = h
        .engine
        .submit(&h.project, Target::Branch("main".into()))
        .await
        .unwrap();
    // A store the pipeline does not expect (its planned steps gone) makes it panic.
    sql(&h, "DELETE FROM validation_steps").await;
    h.engine.run_pending_jobs().await.unwrap();
    let record = h.store.validation(queued.id).await.unwrap();
    assert_eq!(record.status, ValidationStatus::Error);
    let error = record.error.unwrap_or_default();
    assert!(error.contains("Slipway failed while running it"), "{error}");
    assert!(error.contains("every step is planned"), "{error}");
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
