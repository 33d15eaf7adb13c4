//! Slipway's engine: turns validation requests into queued jobs and runs them, at most
//! `max_concurrent` at a time, each in the sandbox. Talks to the other parts only through
//! the store, the sandbox and git.

pub use slipway_forge::git;
mod forges;
mod github;
mod health;
mod logs;
mod merging;
mod pipeline;
mod pulls;
mod runs;
mod submit;
mod webhooks;

pub use runs::{RunAnswer, RunError};
pub use slipway_agent::codegen::{CodegenConfig, RateLimit};
pub use submit::{Options, SubmitError, Target};

use pipeline::Ended;
use slipway_core::validation::ValidationStatus;
use slipway_core::{Project, ProjectId, ValidationId};
use slipway_sandbox::snapshot::Snapshots;
use slipway_sandbox::{Isolation, Sandbox};
use slipway_store::{Job, JobFailure, Store, VALIDATION_JOB};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

pub(crate) const LEASE: Duration = Duration::from_secs(30);
pub(crate) const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
pub(crate) const CANCEL_CHECK_EVERY: Duration = Duration::from_millis(500);
const IDLE_POLL: Duration = Duration::from_secs(1);
/// How long a project's branch list is reused.
const BRANCHES_FRESH: Duration = Duration::from_secs(15);

/// How the engine runs. (No `Debug`: it holds a token.)
#[derive(Clone)]
pub struct EngineConfig {
    /// Workspaces and snapshots live below it; sandboxed commands never see it.
    pub data_dir: PathBuf,
    /// `SLIPWAY_MAX_CONCURRENT_VALIDATIONS`.
    pub max_concurrent: usize,
    /// The whole-validation time limit.
    pub validation_timeout: Duration,
    /// Where setup snapshots are kept (default: `snapshots` in the data directory).
    pub snapshot_dir: PathBuf,
    /// How long validations' artifacts (screenshots, browser evidence) are kept (default 14
    /// days; `SLIPWAY_ARTIFACT_RETENTION_DAYS`).
    pub artifact_retention: Duration,
    pub snapshot_cap_bytes: u64,
    pub isolation: Isolation,
    /// `GITHUB_TOKEN`, for checking out GitHub repositories.
    pub github_token: Option<String>,
    /// The GitHub API client (statuses, comments, merges, polling), when a token is set.
    pub github: Option<Arc<slipway_forge::github::GitHub>>,
    /// How often open GitHub pull requests are polled (for missed webhooks).
    pub github_poll_every: Duration,
    /// `SLIPWAY_PUBLIC_URL`, for links in statuses and comments.
    pub public_url: Option<String>,
    /// The Codegen API, when `CODEGEN_API_TOKEN` and `CODEGEN_ORG_ID` are set.
    pub codegen: Option<CodegenConfig>,
    /// The first wait between polls of a Codegen run (it grows to 30 s).
    pub agent_poll_every: Duration,
    /// Agent turns that may run at once (local commands and Codegen runs being polled).
    pub max_concurrent_agents: usize,
}

impl EngineConfig {
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            snapshot_dir: data_dir.join("snapshots"),
            artifact_retention: Duration::from_secs(14 * 24 * 3_600),
            data_dir,
            max_concurrent: 2,
            validation_timeout: Duration::from_secs(3_600),
            snapshot_cap_bytes: 10 * 1024 * 1024 * 1024,
            isolation: Isolation::detect(),
            github_token: None,
            github: None,
            github_poll_every: Duration::from_secs(60),
            public_url: None,
            codegen: None,
            agent_poll_every: Duration::from_secs(5),
            max_concurrent_agents: 16,
        }
    }
}

/// Whose turn it is to merge into one base branch of one project.
type MergeTurns = Mutex<HashMap<(ProjectId, String), Arc<tokio::sync::Mutex<()>>>>;

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) sandbox: Sandbox,
    pub(crate) snapshots: Snapshots,
    pub(crate) workspaces: PathBuf,
    /// Where agent turns get their working directories.
    pub(crate) agents: PathBuf,
    /// The directory holding both, when it is not the data directory (see
    /// `Sandbox::work_root`): removed, if nothing is left in it, when the engine goes.
    work_root: Option<PathBuf>,
    pub(crate) config: EngineConfig,
    /// The Codegen API client, built once when Codegen is configured.
    pub(crate) codegen: Option<slipway_agent::codegen::Codegen>,
    pub(crate) git: git::Git,
    running: Mutex<HashMap<ValidationId, CancellationToken>>,
    pub(crate) running_runs: Mutex<HashMap<i64, CancellationToken>>,
    branches: Mutex<HashMap<slipway_core::ProjectId, (std::time::Instant, Vec<String>)>>,
    merge_turns: MergeTurns,
    wake: Notify,
    pub(crate) agent_wake: Notify,
    webhook_wake: Notify,
    owner: String,
}

impl Inner {
    /// The lock that merges into `base` of `project` take turns on.
    pub(crate) fn merge_turn(&self, project: ProjectId, base: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.merge_turns.lock().expect("merge turns lock");
        turns.entry((project, base.to_owned())).or_default().clone()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(root) = &self.work_root {
            // Only what is empty: another engine on the same data directory may still run.
            for dir in [&self.workspaces, &self.agents, root] {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

/// The engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    pub fn new(store: Store, config: EngineConfig) -> Self {
        let mut sandbox = Sandbox::new(config.isolation.clone(), vec![config.data_dir.clone()]);
        let work_root = sandbox.work_root(&config.data_dir).unwrap_or_else(|error| {
            tracing::error!(%error, "no work directory outside the data directory; using it");
            config.data_dir.clone()
        });
        sandbox.hidden.push(work_root.clone());
        if !config.snapshot_dir.starts_with(&config.data_dir) {
            // A cache of its own (slipway validate's): as hidden as the data directory.
            let _ = std::fs::create_dir_all(&config.snapshot_dir);
            sandbox.hidden.push(config.snapshot_dir.clone());
        }
        let inner = Inner {
            sandbox,
            snapshots: Snapshots::new(config.snapshot_dir.clone(), config.snapshot_cap_bytes),
            workspaces: work_root.join("workspaces"),
            agents: work_root.join("agents"),
            work_root: (work_root != config.data_dir).then(|| work_root.clone()),
            codegen: config
                .codegen
                .clone()
                .map(slipway_agent::codegen::Codegen::new),
            git: git::Git::new(config.github_token.as_deref()),
            running: Mutex::new(HashMap::new()),
            running_runs: Mutex::new(HashMap::new()),
            branches: Mutex::new(HashMap::new()),
            merge_turns: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            agent_wake: Notify::new(),
            webhook_wake: Notify::new(),
            owner: format!("slipway-{}", std::process::id()),
            store,
            config,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    pub fn isolation(&self) -> &Isolation {
        &self.inner.config.isolation
    }

    /// Start-up reconciliation after whatever stopped the last process (even SIGKILL):
    /// kills process groups it left, hands its leases back, clears its workspaces, and
    /// ends validations whose job gave up. This process must be the database's only one.
    pub async fn reconcile(&self) -> anyhow::Result<()> {
        let store = &self.inner.store;
        for pgid in store.take_process_groups().await? {
            slipway_sandbox::kill_group(pgid, slipway_sandbox::SIGKILL);
            tracing::warn!(pgid, "killed a process group left by an earlier run");
        }
        let released = store.expire_all_leases().await?;
        if released > 0 {
            tracing::warn!(
                released,
                "validations interrupted by the last shutdown will run again"
            );
        }
        slipway_sandbox::snapshot::unmount_all_below(&self.inner.workspaces);
        let _ = tokio::task::spawn_blocking(slipway_sandbox::remove_stale_cells).await;
        let _ = tokio::fs::remove_dir_all(&self.inner.workspaces).await;
        for id in store.orphaned_validations().await? {
            store
                .finish_validation(
                    id,
                    ValidationStatus::Error,
                    Some("its job was lost; retry it"),
                )
                .await?;
        }
        self.prune_artifacts().await;
        Ok(())
    }

    /// Removes the artifacts of validations older than the retention (at start).
    pub async fn prune_artifacts(&self) {
        let root = self.inner.config.data_dir.join("artifacts");
        let Ok(mut entries) = tokio::fs::read_dir(&root).await else {
            return;
        };
        let retention = self.inner.config.artifact_retention;
        while let Ok(Some(entry)) = entries.next_entry().await {
            let old = entry
                .metadata()
                .await
                .and_then(|m| m.modified())
                .map(|modified| modified.elapsed().unwrap_or_default() > retention)
                .unwrap_or(false);
            if old {
                let _ = tokio::fs::remove_dir_all(entry.path()).await;
            }
        }
    }

    /// Where a validation's artifacts (browser checks' evidence and screenshots) are kept.
    pub fn artifacts_dir(&self, id: ValidationId) -> PathBuf {
        self.inner
            .config
            .data_dir
            .join("artifacts")
            .join(id.to_string())
    }

    /// `SLIPWAY_PUBLIC_URL`, when set.
    pub fn public_url(&self) -> Option<&str> {
        self.inner.config.public_url.as_deref()
    }

    /// Whether the Codegen agent can be used (its credentials are configured).
    pub fn has_codegen(&self) -> bool {
        self.inner.codegen.is_some()
    }

    /// The GitHub repositories the configured token can see (for picking a project's
    /// repository); empty without a token or when GitHub cannot be reached.
    pub async fn github_repositories(&self) -> Vec<String> {
        match &self.inner.config.github {
            Some(github) => github.repositories().await.unwrap_or_else(|error| {
                tracing::warn!(%error, "GitHub repositories could not be listed");
                Vec::new()
            }),
            None => Vec::new(),
        }
    }

    /// The project's branches (for pickers); empty when the repository cannot be read.
    /// Kept for `BRANCHES_FRESH`, so that rendering a page does not wait on git each time.
    pub async fn branches(&self, project: &Project) -> Vec<String> {
        if let Some((at, names)) = self
            .inner
            .branches
            .lock()
            .expect("branches lock")
            .get(&project.id)
        {
            if at.elapsed() < BRANCHES_FRESH {
                return names.clone();
            }
        }
        let source = project.location.source();
        let git = github::git_for(&self.inner, project, &source).await;
        let names = git.branches(&source).await.unwrap_or_default();
        self.inner
            .branches
            .lock()
            .expect("branches lock")
            .insert(project.id, (std::time::Instant::now(), names.clone()));
        names
    }

    /// Records a `pr_notification` event (DESIGN.md §5) for live subscribers.
    pub(crate) async fn notify_pull_request(&self, project: &Project, pr_url: &str, action: &str) {
        let payload = serde_json::json!({
            "type": "pr_notification",
            "project_id": project.id,
            "pr_url": pr_url,
            "action": action,
        });
        if let Err(error) = self
            .inner
            .store
            .emit_event(project.id, "pr_notification", &payload)
            .await
        {
            tracing::error!(%error, "pr_notification not recorded");
        }
    }

    /// A delivery was stored: process it soon.
    pub fn delivery_recorded(&self) {
        self.inner.webhook_wake.notify_one();
    }

    /// Runs queued validations and webhook deliveries until `shutdown`; then interrupted
    /// validations go back to the queue.
    pub fn spawn_workers(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let deliveries = tokio::spawn(webhooks::work(self.clone(), shutdown.clone()));
        let poller = self.spawn_poller(shutdown.clone());
        let agents = self.spawn_agent_workers(shutdown.clone());
        let validations = self.spawn_validation_workers(shutdown);
        tokio::spawn(async move {
            let _ = deliveries.await;
            let _ = poller.await;
            let _ = agents.await;
            let _ = validations.await;
        })
    }

    fn spawn_validation_workers(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let slots = self.inner.config.max_concurrent.max(1);
        self.spawn_job_workers(
            VALIDATION_JOB,
            slots,
            |inner| &inner.wake,
            shutdown,
            |engine, job, shutdown| async move { run_job(&engine, job, &shutdown).await },
        )
    }

    fn spawn_agent_workers(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let slots = self.inner.config.max_concurrent_agents.max(1);
        self.spawn_job_workers(runs::AGENT_JOB, slots, |inner| &inner.agent_wake, shutdown, |engine, job, shutdown| async move {
            runs::run_agent_job(&engine, job, &shutdown).await
        })
    }

    /// Leases jobs of `kind` and runs up to `slots` of them at once with `handler`; at
    /// shutdown, waits for the running ones to end.
    fn spawn_job_workers<F, Fut>(
        &self,
        kind: &'static str,
        slots: usize,
        wake: fn(&Inner) -> &Notify,
        shutdown: CancellationToken,
        handler: F,
    ) -> tokio::task::JoinHandle<()>
    where
        F: Fn(Engine, Job, CancellationToken) -> Fut + Copy + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let inner = self.inner.clone();
        let permits = Arc::new(Semaphore::new(slots));
        tokio::spawn(async move {
            loop {
                let permit = tokio::select! {
                    permit = permits.clone().acquire_owned() => permit.expect("never closed"),
                    _ = shutdown.cancelled() => break,
                };
                match inner.store.lease(&inner.owner, &[kind], LEASE).await {
                    Ok(Some(job)) => {
                        let engine = Engine {
                            inner: inner.clone(),
                        };
                        let shutdown = shutdown.clone();
                        tokio::spawn(async move {
                            handler(engine, job, shutdown).await;
                            drop(permit);
                        });
                    }
                    Ok(None) => {
                        drop(permit);
                        tokio::select! {
                            _ = wake(&inner).notified() => {}
                            _ = tokio::time::sleep(IDLE_POLL) => {}
                            _ = shutdown.cancelled() => break,
                        }
                    }
                    Err(error) => {
                        drop(permit);
                        tracing::error!(%error, kind, "could not lease a job");
                        tokio::time::sleep(IDLE_POLL).await;
                    }
                }
            }
            let _ = permits.acquire_many(slots as u32).await;
        })
    }

    /// Runs every job that is due now (deliveries, validations), one after another, then
    /// returns (for tests and the CLI).
    pub async fn run_pending_jobs(&self) -> anyhow::Result<usize> {
        let never = CancellationToken::new();
        let mut ran = webhooks::process_pending(self).await?;
        while let Some(job) = self
            .inner
            .store
            .lease(&self.inner.owner, &[VALIDATION_JOB, runs::AGENT_JOB], LEASE)
            .await?
        {
            if job.kind == runs::AGENT_JOB {
                runs::run_agent_job(self, job, &never).await;
            } else {
                run_job(self, job, &never).await;
            }
            ran += 1;
        }
        Ok(ran)
    }
}

/// Runs one leased job: the validation it names, with a watcher that heartbeats the lease
/// and notices cancellation requested elsewhere.
async fn run_job(engine: &Engine, job: Job, shutdown: &CancellationToken) {
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
    let watcher = tokio::spawn(watch(
        inner.store.clone(),
        job.clone(),
        id,
        cancel.clone(),
        fenced.clone(),
    ));
    let span = tracing::info_span!("validation", validation = %id, attempt = job.attempt);
    let interrupted = || shutdown.is_cancelled() || fenced.load(Ordering::SeqCst);
    let result = tracing::Instrument::instrument(
        pipeline::execute(inner, id, job.attempt, &cancel, &interrupted),
        span,
    )
    .await;
    watcher.abort();
    inner.running.lock().expect("running lock").remove(&id);
    let store = &inner.store;
    let outcome = match result {
        Ok(Ended::Verdict(status)) => {
            tracing::info!(validation = %id, %status, "validation finished");
            let policy = match merging::after_verdict(engine, id).await {
                Ok(policy) => policy,
                Err(error) => {
                    tracing::error!(validation = %id, %error, "the merge controller failed");
                    None
                }
            };
            if let Err(error) = runs::after_validation(engine, id, policy).await {
                tracing::error!(validation = %id, %error, "the fix loop failed");
            }
            store.complete(&job).await
        }
        Ok(Ended::Interrupted) if fenced.load(Ordering::SeqCst) => Ok(false),
        Ok(Ended::Interrupted) => {
            let _ = store
                .requeue_validation(id, "interrupted by a shutdown; it will run again")
                .await;
            store
                .fail(
                    &job,
                    &JobFailure::Retryable("interrupted by a shutdown".into()),
                )
                .await
        }
        Err(error) => {
            tracing::error!(validation = %id, error = %error, "validation could not run");
            let _ = store
                .finish_validation(
                    id,
                    ValidationStatus::Error,
                    Some(&format!("infrastructure error: {error}")),
                )
                .await;
            store
                .fail(&job, &JobFailure::Fatal(error.to_string()))
                .await
        }
    };
    if let Err(error) = outcome {
        tracing::error!(validation = %id, %error, "could not record the job's end");
    }
}

async fn watch(
    store: Store,
    job: Job,
    id: ValidationId,
    cancel: CancellationToken,
    fenced: Arc<AtomicBool>,
) {
    let mut since_heartbeat = Duration::ZERO;
    loop {
        tokio::time::sleep(CANCEL_CHECK_EVERY).await;
        since_heartbeat += CANCEL_CHECK_EVERY;
        if store.cancel_requested(id).await.unwrap_or(false) {
            cancel.cancel();
        }
        if since_heartbeat >= HEARTBEAT_EVERY {
            since_heartbeat = Duration::ZERO;
            if let Ok(false) = store.heartbeat(&job, LEASE).await {
                tracing::warn!(validation = %id, "lost the lease; stopping this attempt");
                fenced.store(true, Ordering::SeqCst);
                cancel.cancel();
            }
        }
    }
}
