//! The workers of one job kind: lease while slots are free, run each job in a task of its
//! own, and at shutdown stop leasing and wait for the running ones (which [`Stopping`]
//! interrupts once the grace period is over; they hand their jobs back).

use super::{run_one, JobKind};
use crate::{Engine, Inner};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

const IDLE_POLL: Duration = Duration::from_secs(1);

/// A process's shutdown as its workers see it: `leasing` ends taking jobs; `jobs` stops the
/// running ones, `grace` later.
#[derive(Clone)]
pub(crate) struct Stopping {
    pub(crate) leasing: CancellationToken,
    pub(crate) jobs: CancellationToken,
}

impl Stopping {
    /// Follows `shutdown`: leasing stops with it, running jobs `grace` after it.
    pub(crate) fn after(shutdown: CancellationToken, grace: Duration) -> Self {
        let jobs = CancellationToken::new();
        let stop_jobs = jobs.clone();
        let leasing = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = stop_jobs.cancelled() => return,
            }
            if !grace.is_zero() {
                tracing::info!(
                    grace_secs = grace.as_secs_f64(),
                    "no new jobs are taken; running ones may finish within the grace period"
                );
                tokio::select! {
                    _ = tokio::time::sleep(grace) => {}
                    _ = stop_jobs.cancelled() => return,
                }
            }
            stop_jobs.cancel();
        });
        Self { leasing, jobs }
    }
}

/// A job this process runs, in `Inner::leased` until dropped (even by a panic).
struct Held {
    inner: Arc<Inner>,
    job: i64,
}

impl Held {
    fn new(inner: &Arc<Inner>, job: i64) -> Self {
        inner.leased.lock().expect("leased lock").insert(job);
        Self {
            inner: inner.clone(),
            job,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut leased) = self.inner.leased.lock() {
            leased.remove(&self.job);
        }
    }
}

/// Leases jobs of kind `K` and runs up to `slots` of them at once; ends when `stopping`
/// stops leasing and the running ones have ended.
pub(crate) fn spawn_kind<K: JobKind>(
    engine: &Engine,
    slots: usize,
    stopping: Stopping,
) -> tokio::task::JoinHandle<()> {
    let inner = engine.inner.clone();
    let permits = Arc::new(Semaphore::new(slots));
    let mut wakeups = inner.store.job_wakeups();
    tokio::spawn(async move {
        let lease = inner.timing().lease;
        loop {
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => permit.expect("never closed"),
                _ = stopping.leasing.cancelled() => break,
            };
            // Never a second attempt of a job this process still runs.
            let running: Vec<i64> = inner
                .leased
                .lock()
                .expect("leased lock")
                .iter()
                .copied()
                .collect();
            let leased = inner
                .store
                .lease_excluding(&inner.owner, &[K::KIND], lease, &running)
                .await;
            match leased {
                Ok(Some(job)) => {
                    let engine = Engine {
                        inner: inner.clone(),
                    };
                    let held = Held::new(&inner, job.id);
                    let jobs = stopping.jobs.clone();
                    tokio::spawn(async move {
                        run_one::<K>(engine, job, jobs).await;
                        drop(held);
                        drop(permit);
                    });
                }
                Ok(None) => {
                    drop(permit);
                    tokio::select! {
                        _ = K::wake(&inner).notified() => {}
                        _ = queued_elsewhere(&mut wakeups, K::KIND) => {}
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                        _ = stopping.leasing.cancelled() => break,
                    }
                }
                Err(error) => {
                    drop(permit);
                    tracing::error!(%error, kind = K::KIND, "could not lease a job");
                    tokio::select! {
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                        _ = stopping.leasing.cancelled() => break,
                    }
                }
            }
        }
        let _ = permits.acquire_many(slots as u32).await;
    })
}

/// Returns when a job of `kind` is queued by any process (PostgreSQL's notifications; on
/// SQLite none arrive and the idle poll finds other processes' jobs).
async fn queued_elsewhere(wakeups: &mut tokio::sync::broadcast::Receiver<Arc<str>>, kind: &str) {
    loop {
        match wakeups.recv().await {
            Ok(queued) if &*queued == kind => return,
            Ok(_) => {}
            // Missed some: one of them may have been ours.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                std::future::pending::<()>().await
            }
        }
    }
}
