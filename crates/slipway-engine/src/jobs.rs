//! Running one leased validation job: its body in a task of its own (a panic ends the
//! validation as `error`, never leaves it running), and a watcher that heartbeats the lease
//! and fences the attempt out the moment the lease is lost or cannot be kept.

use crate::pipeline::{self, Ended};
use crate::{merging, runs, Engine};
use slipway_core::validation::ValidationStatus;
use slipway_core::ValidationId;
use slipway_store::{Job, JobFailure, Store};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often a watcher looks for a cancel and heartbeats, and how long a lease lasts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) check_every: Duration,
    pub(crate) heartbeat_every: Duration,
    pub(crate) lease: Duration,
}

pub(crate) const TIMING: Timing = Timing {
    check_every: crate::CANCEL_CHECK_EVERY,
    heartbeat_every: crate::HEARTBEAT_EVERY,
    lease: crate::LEASE,
};

/// Heartbeats `job`'s lease and cancels `cancel` when `cancelled` says the work was cancelled
/// elsewhere. When the lease is lost, the heartbeat fails, or it cannot be made before the
/// lease would run out, the attempt is fenced (`fenced` set, `cancel` cancelled): another
/// attempt may take the job, so this one must stop and report nothing.
pub(crate) async fn watch<F, Fut>(
    store: Store,
    job: Job,
    cancel: CancellationToken,
    fenced: Arc<AtomicBool>,
    timing: Timing,
    cancelled: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut last_beat = Instant::now();
    loop {
        tokio::time::sleep(timing.check_every).await;
        if cancelled().await {
            cancel.cancel();
        }
        if last_beat.elapsed() < timing.heartbeat_every {
            continue;
        }
        // What is left of the lease, less a margin to stop in: the heartbeat must land by then.
        let left = timing
            .lease
            .saturating_sub(last_beat.elapsed())
            .saturating_sub(timing.check_every);
        let why = match tokio::time::timeout(left, store.heartbeat(&job, timing.lease)).await {
            Ok(Ok(true)) => {
                last_beat = Instant::now();
                continue;
            }
            Ok(Ok(false)) => "lost the lease (another attempt holds the job)".to_owned(),
            Ok(Err(error)) => format!("could not extend the lease ({error})"),
            Err(_) => "could not extend the lease before it ran out".to_owned(),
        };
        tracing::warn!(
            job = job.id,
            attempt = job.attempt,
            "{why}; stopping this attempt"
        );
        fenced.store(true, Ordering::SeqCst);
        cancel.cancel();
        return;
    }
}

/// What a panic said, for the job's error.
pub(crate) fn panic_message(error: tokio::task::JoinError) -> String {
    if !error.is_panic() {
        return "its task was cancelled".to_owned();
    }
    let payload = error.into_panic();
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    format!("Slipway failed while running it (a bug; the panic said: {text}); retry it, and report it if it happens again")
}

/// How a validation job's body ended, for the queue.
enum Outcome {
    Complete,
    /// Interrupted by a shutdown: queued again.
    Requeue,
    /// Another attempt holds the job (or may): nothing is reported.
    Fenced,
    Fatal(String),
}

/// Runs one leased job: the validation it names, with a watcher that heartbeats the lease
/// and notices cancellation requested elsewhere.
pub(crate) async fn run_job(engine: &Engine, job: Job, shutdown: &CancellationToken) {
    let inner = &*engine.inner;
    let Some(id) = job.validation() else {
        let _ = inner
            .store
            .fail(&job, &JobFailure::Fatal("malformed payload".into()))
            .await;
        return;
    };
    let cancel = shutdown.child_token();
    let fenced = Arc::new(AtomicBool::new(false));
    inner
        .running
        .lock()
        .expect("running lock")
        .insert(id, cancel.clone());
    let store = inner.store.clone();
    let watcher = tokio::spawn(watch(
        store.clone(),
        job.clone(),
        cancel.clone(),
        fenced.clone(),
        TIMING,
        move || {
            let store = store.clone();
            async move { store.cancel_requested(id).await.unwrap_or(false) }
        },
    ));
    let span = tracing::info_span!("validation", validation = %id, attempt = job.attempt);
    let body = tokio::spawn(tracing::Instrument::instrument(
        body(
            engine.clone(),
            id,
            job.attempt,
            cancel,
            shutdown.clone(),
            fenced,
        ),
        span,
    ));
    let ended = body.await;
    watcher.abort();
    inner.running.lock().expect("running lock").remove(&id);
    let store = &inner.store;
    let outcome = match ended {
        Ok(outcome) => outcome,
        Err(error) => {
            let message = panic_message(error);
            tracing::error!(validation = %id, %message, "the validation's task failed");
            let _ = store
                .finish_validation(id, ValidationStatus::Error, Some(&message))
                .await;
            Outcome::Fatal(message)
        }
    };
    let recorded = match outcome {
        Outcome::Complete => store.complete(&job).await,
        Outcome::Fenced => Ok(false),
        Outcome::Requeue => {
            let _ = store
                .requeue_validation(id, "interrupted by a shutdown; it will run again")
                .await;
            let failure = JobFailure::Retryable("interrupted by a shutdown".into());
            store.fail(&job, &failure).await
        }
        Outcome::Fatal(message) => store.fail(&job, &JobFailure::Fatal(message)).await,
    };
    if let Err(error) = recorded {
        tracing::error!(validation = %id, %error, "could not record the job's end");
    }
}

/// The pipeline, then what its verdict leads to (merging, the fix loop).
async fn body(
    engine: Engine,
    id: ValidationId,
    attempt: u32,
    cancel: CancellationToken,
    shutdown: CancellationToken,
    fenced: Arc<AtomicBool>,
) -> Outcome {
    let interrupted = || shutdown.is_cancelled() || fenced.load(Ordering::SeqCst);
    let result = pipeline::execute(&engine.inner, id, attempt, &cancel, &interrupted).await;
    match result {
        Ok(Ended::Verdict(status)) => {
            tracing::info!(validation = %id, %status, "validation finished");
            crate::notify::validation_finished(&engine, id).await;
            let policy = match merging::after_verdict(&engine, id).await {
                Ok(policy) => policy,
                Err(error) => {
                    tracing::error!(validation = %id, %error, "the merge controller failed");
                    None
                }
            };
            if let Err(error) = runs::after_validation(&engine, id, policy).await {
                tracing::error!(validation = %id, %error, "the fix loop failed");
            }
            Outcome::Complete
        }
        Ok(Ended::Interrupted) if fenced.load(Ordering::SeqCst) => Outcome::Fenced,
        Ok(Ended::Interrupted) => Outcome::Requeue,
        Err(error) => {
            tracing::error!(validation = %id, error = %error, "validation could not run");
            let _ = engine
                .inner
                .store
                .finish_validation(
                    id,
                    ValidationStatus::Error,
                    Some(&format!("infrastructure error: {error}")),
                )
                .await;
            Outcome::Fatal(error.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_store::{MasterKey, NewJob};

    async fn leased_job() -> (tempfile::TempDir, Store, Job) {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::load_or_create(&dir.path().join("master.key")).unwrap();
        let url = format!("sqlite://{}", dir.path().join("slipway.db").display());
        let store = Store::open(&url, &key).await.unwrap();
        let new = NewJob {
            kind: "test".into(),
            payload: "{}".into(),
            dedupe_key: None,
            max_attempts: 3,
        };
        store.enqueue(&new).await.unwrap();
        let job = store
            .lease("me", &["test"], Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        (dir, store, job)
    }

    const FAST: Timing = Timing {
        check_every: Duration::from_millis(20),
        heartbeat_every: Duration::from_millis(40),
        lease: Duration::from_secs(30),
    };

    /// Runs a watcher until it cancels the attempt (a guard ends the wait if it never does).
    async fn watched(store: Store, job: Job) -> (bool, bool) {
        let (cancel, fenced) = (CancellationToken::new(), Arc::new(AtomicBool::new(false)));
        let watcher = tokio::spawn(watch(
            store,
            job,
            cancel.clone(),
            fenced.clone(),
            FAST,
            || async { false },
        ));
        let stopped = tokio::time::timeout(Duration::from_secs(20), cancel.cancelled())
            .await
            .is_ok();
        watcher.abort();
        (stopped, fenced.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn a_heartbeat_that_fails_fences_the_attempt() {
        let (_dir, store, job) = leased_job().await;
        store.close().await; // every heartbeat now fails
        let (stopped, fenced) = watched(store, job).await;
        assert!(stopped, "the attempt went on without a lease");
        assert!(fenced);
    }

    #[tokio::test]
    async fn a_lease_taken_by_another_attempt_fences_this_one() {
        let (_dir, store, job) = leased_job().await;
        store.expire_all_leases().await.unwrap();
        let newer = store
            .lease("other", &["test"], Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(newer.attempt, job.attempt + 1);
        let (stopped, fenced) = watched(store, job).await;
        assert!(stopped && fenced);
    }

    #[tokio::test]
    async fn a_panic_is_told_with_its_message() {
        let error = tokio::spawn(async { panic!("index out of bounds") })
            .await
            .unwrap_err();
        let message = panic_message(error);
        assert!(message.contains("index out of bounds"), "{message}");
        assert!(message.contains("retry it"), "{message}");
    }
}
