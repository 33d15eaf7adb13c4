//! The one job runner, for every kind of durable job. A kind ([`JobKind`]) names itself in
//! the queue and carries a typed payload; the runner leases it, runs its body in a task of
//! its own (a panic ends the job, never leaves it running), heartbeats the lease and fences
//! the attempt out the moment the lease is lost, and records how the body ended
//! ([`Outcome`]) the same way for every kind.

mod validation;
mod workers;

pub(crate) use validation::ValidationJob;
pub(crate) use workers::{spawn_kind, Stopping};

use crate::{Engine, Inner};
use serde::de::DeserializeOwned;
use serde::Serialize;
use slipway_store::{Job, JobFailure, NewJob, Store, StoreError};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A kind of durable job: its name in the queue (the stored `kind`) and the payload it
/// carries (stored as JSON).
pub(crate) trait JobKind: Send + Sync + 'static {
    const KIND: &'static str;
    type Payload: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;

    /// What wakes this kind's workers when a job is queued.
    fn wake(inner: &Inner) -> &Notify;

    /// The span the body runs in.
    fn span(payload: &Self::Payload, attempt: u32) -> tracing::Span;

    /// Whether the work was cancelled elsewhere (the watcher asks every
    /// [`Timing::check_every`]).
    fn cancelled(engine: &Engine, payload: &Self::Payload) -> impl Future<Output = bool> + Send {
        let _ = (engine, payload);
        async { false }
    }

    /// The job's work, one attempt of it.
    fn run(
        engine: Engine,
        payload: Self::Payload,
        attempt: Attempt,
    ) -> impl Future<Output = Outcome> + Send;

    /// Attempt `attempt`'s body panicked (a bug): record what that means for the work; the
    /// job fails with `message`.
    fn panicked(
        engine: &Engine,
        payload: &Self::Payload,
        attempt: u32,
        message: &str,
    ) -> impl Future<Output = ()> + Send;
}

/// How an attempt's body ended, for the queue.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Complete,
    /// Complete, and `next` (of the same kind, usually of the same dedupe key) queued in
    /// the same transaction.
    Then(NewJob),
    /// Not now, and not a fault (a rate limit): again after the wait, no attempt spent.
    Postpone(Duration, String),
    /// Interrupted by this process's shutdown: back to the queue at once, for any worker,
    /// no attempt spent.
    HandBack(String),
    /// A transient fault: again after a backoff while attempts remain.
    Retry(String),
    /// Never worth another attempt.
    Fatal(String),
}

/// One attempt of a job, as its body sees it.
#[derive(Clone)]
pub(crate) struct Attempt {
    pub(crate) job: Job,
    /// Cancelled when the work must stop: cancelled elsewhere, fenced, or the process stops.
    pub(crate) cancel: CancellationToken,
    /// Cancelled when this process stops running jobs (after the shutdown's grace).
    pub(crate) stopping: CancellationToken,
    fenced: Arc<AtomicBool>,
}

impl Attempt {
    pub(crate) fn number(&self) -> u32 {
        self.job.attempt
    }

    /// Whether another attempt may hold the job: this one must stop and report nothing.
    pub(crate) fn fenced(&self) -> bool {
        self.fenced.load(Ordering::SeqCst)
    }

    /// Whether the attempt was stopped from outside its work (shutdown or fence).
    pub(crate) fn interrupted(&self) -> bool {
        self.stopping.is_cancelled() || self.fenced()
    }

    /// The last attempt the job is allowed.
    pub(crate) fn is_last(&self) -> bool {
        self.job.attempt >= self.job.max_attempts
    }
}

/// A job of kind `K` to queue.
pub(crate) fn new_job<K: JobKind>(
    payload: &K::Payload,
    dedupe_key: Option<String>,
    max_attempts: u32,
) -> Result<NewJob, StoreError> {
    let payload = serde_json::to_string(payload).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(NewJob {
        kind: K::KIND.into(),
        payload,
        dedupe_key,
        max_attempts,
    })
}

/// Queues a job of kind `K` (from [`new_job`]) and wakes its workers; the id of the job
/// with the same dedupe key that waits to start when there is one.
pub(crate) async fn enqueue<K: JobKind>(inner: &Inner, job: NewJob) -> Result<i64, StoreError> {
    debug_assert_eq!(job.kind, K::KIND);
    let id = inner.store.enqueue(&job).await?;
    K::wake(inner).notify_one();
    Ok(id)
}

/// Runs one leased job of kind `K`: its body, the watcher beside it, then its end recorded.
pub(crate) async fn run_one<K: JobKind>(engine: Engine, job: Job, stopping: CancellationToken) {
    let store = engine.inner.store.clone();
    let payload = match serde_json::from_str::<K::Payload>(&job.payload) {
        Ok(payload) => payload,
        Err(error) => {
            let why = format!("its payload is not a {} job's: {error}", K::KIND);
            tracing::error!(job = job.id, kind = K::KIND, "{why}");
            return record(&store, &job, Outcome::Fatal(why), K::wake(&engine.inner)).await;
        }
    };
    let attempt = Attempt {
        job: job.clone(),
        cancel: stopping.child_token(),
        stopping,
        fenced: Arc::new(AtomicBool::new(false)),
    };
    let cancelled = {
        let (engine, payload) = (engine.clone(), payload.clone());
        move || {
            let (engine, payload) = (engine.clone(), payload.clone());
            async move { K::cancelled(&engine, &payload).await }
        }
    };
    let watcher = tokio::spawn(watch(
        store.clone(),
        job.clone(),
        attempt.cancel.clone(),
        attempt.fenced.clone(),
        engine.inner.timing(),
        cancelled,
    ));
    let span = K::span(&payload, job.attempt);
    let body = tokio::spawn(tracing::Instrument::instrument(
        K::run(engine.clone(), payload.clone(), attempt.clone()),
        span,
    ));
    let ended = body.await;
    watcher.abort();
    if attempt.fenced() {
        // Another attempt may hold the job now: it reports, this one does not.
        tracing::warn!(
            job = job.id,
            kind = K::KIND,
            attempt = job.attempt,
            "fenced out"
        );
        return;
    }
    let outcome = match ended {
        Ok(outcome) => outcome,
        Err(error) => {
            let message = panic_message(error);
            tracing::error!(job = job.id, kind = K::KIND, %message, "the job's task failed");
            K::panicked(&engine, &payload, job.attempt, &message).await;
            Outcome::Fatal(message)
        }
    };
    record(&store, &job, outcome, K::wake(&engine.inner)).await;
}

/// Records how the attempt ended (nothing when a newer attempt holds the job); then `wake`
/// is told: a job of its key may be free to start.
async fn record(store: &Store, job: &Job, outcome: Outcome, wake: &Notify) {
    let recorded = match outcome {
        Outcome::Complete => store.complete(job).await,
        Outcome::Then(next) => store.complete_then(job, &next).await,
        Outcome::Postpone(wait, why) => store.postpone(job, wait, &why).await,
        Outcome::HandBack(why) => store.postpone(job, Duration::ZERO, &why).await,
        Outcome::Retry(why) => store.fail(job, &JobFailure::Retryable(why)).await,
        Outcome::Fatal(why) => store.fail(job, &JobFailure::Fatal(why)).await,
    };
    if let Err(error) = recorded {
        tracing::error!(job = job.id, kind = %job.kind, %error, "could not record the job's end");
    }
    // A job of the same dedupe key (the next one queued, or one that waited for this one
    // to end) may be leased now.
    wake.notify_one();
}

/// How often a watcher looks for a cancel and heartbeats, and how long a lease lasts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) check_every: Duration,
    pub(crate) heartbeat_every: Duration,
    pub(crate) lease: Duration,
}

impl Timing {
    /// A lease of `lease`, renewed three times within it.
    pub(crate) fn for_lease(lease: Duration) -> Self {
        Self {
            check_every: crate::CANCEL_CHECK_EVERY.min(lease / 6),
            heartbeat_every: lease / 3,
            lease,
        }
    }
}

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
    Fut: Future<Output = bool>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_store::MasterKey;

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
        store.expire_leases_of("me").await.unwrap();
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
    async fn a_handed_back_job_is_leased_again_at_once_without_spending_an_attempt() {
        let (_dir, store, job) = leased_job().await;
        record(
            &store,
            &job,
            Outcome::HandBack("shutting down".into()),
            &Notify::new(),
        )
        .await;
        let again = store
            .lease("other", &["test"], Duration::from_secs(30))
            .await
            .unwrap()
            .expect("the job is due at once");
        assert_eq!(again.id, job.id);
        assert_eq!(again.max_attempts, job.max_attempts + 1);
    }

    #[tokio::test]
    async fn a_fatal_end_is_final_and_a_retry_waits_for_its_backoff() {
        let (_dir, store, job) = leased_job().await;
        record(&store, &job, Outcome::Retry("flaky".into()), &Notify::new()).await;
        assert_eq!(
            store.job_state(job.id).await.unwrap().0,
            slipway_store::JobState::Queued
        );
        let none = store.lease("other", &["test"], FAST.lease).await.unwrap();
        assert!(none.is_none(), "a retried job ran before its backoff");
        let (_dir, store, job) = leased_job().await;
        record(
            &store,
            &job,
            Outcome::Fatal("broken".into()),
            &Notify::new(),
        )
        .await;
        assert_eq!(
            store.job_state(job.id).await.unwrap().0,
            slipway_store::JobState::Failed
        );
    }

    /// A kind whose body panics (a bug), telling `TOLD` what the runner said of it.
    struct Panicking;
    static TOLD: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

    impl JobKind for Panicking {
        const KIND: &'static str = "test";
        type Payload = serde_json::Value;

        fn wake(inner: &Inner) -> &Notify {
            &inner.wake
        }

        fn span(_: &serde_json::Value, _: u32) -> tracing::Span {
            tracing::Span::none()
        }

        async fn run(_: Engine, _: serde_json::Value, _: Attempt) -> Outcome {
            panic!("a bug in the body")
        }

        async fn panicked(_: &Engine, _: &serde_json::Value, _: u32, message: &str) {
            TOLD.lock().unwrap().push(message.to_owned());
        }
    }

    #[tokio::test]
    async fn a_panicking_body_fails_its_job_and_its_kind_is_told_why() {
        let (dir, store, job) = leased_job().await;
        let config = crate::EngineConfig::new(dir.path().join("data"));
        let engine = Engine::new(store.clone(), config);
        run_one::<Panicking>(engine, job.clone(), CancellationToken::new()).await;
        assert_eq!(
            store.job_state(job.id).await.unwrap().0,
            slipway_store::JobState::Failed
        );
        let told = TOLD.lock().unwrap().clone();
        assert!(
            told.iter().any(|m| m.contains("a bug in the body")
                && m.contains("Slipway failed while running it")),
            "{told:?}"
        );
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
