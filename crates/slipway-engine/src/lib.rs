//! Slipway's engine: turns validation requests into queued jobs and runs them, at most
//! `max_concurrent` at a time, each in the sandbox. Talks to the other parts only through
//! the store, the sandbox and git.

pub mod evidence;
pub use slipway_forge::git;
mod forges;
mod github;
mod health;
pub mod hooks;
mod jobs;
mod logs;
mod merging;
mod notify;
mod pipeline;
mod pulls;
mod runs;
mod submit;
mod webhooks;

pub use notify::{new_notification_secret, Sent};
pub use runs::{RunAnswer, RunError};
pub use slipway_agent::codegen::{CodegenConfig, RateLimit};
pub use slipway_judge::{ModelConfig, Models};
pub use submit::{Options, SubmitError, Target};

use jobs::run_job;
use slipway_core::limits::SandboxLimits;
use slipway_core::validation::ValidationStatus;
use slipway_core::{Project, ProjectId, ValidationId};
use slipway_sandbox::snapshot::Snapshots;
use slipway_sandbox::{Isolation, Sandbox};
use slipway_store::{Job, Store, VALIDATION_JOB};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

pub(crate) const LEASE: Duration = Duration::from_secs(30);
pub(crate) const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
pub(crate) const CANCEL_CHECK_EVERY: Duration = Duration::from_millis(500);
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Notifications sent at once (each a short HTTP request).
const NOTIFY_SLOTS: usize = 4;
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
    /// Whether commands may run without a sandbox when `isolation` is none
    /// (`SLIPWAY_ALLOW_UNSANDBOXED=1`); otherwise such validations and agent turns end in
    /// `error`, saying what to install.
    pub allow_unsandboxed: bool,
    /// The administrator's ceilings (`SLIPWAY_SANDBOX_MAX_*`): a pipeline's `[sandbox]` may
    /// lower its quotas and log limits, never raise them past these.
    pub sandbox_ceilings: SandboxLimits,
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
    /// The model APIs for `[judge]` (`GEMINI_*`, `SLIPWAY_LLM_*`); none by default.
    pub models: slipway_judge::Models,
    /// `SLIPWAY_NOTIFY_ALLOW_HOSTS`: hosts and ranges notifications may reach despite the
    /// address rules (and over http).
    pub notify_allow_hosts: slipway_core::notify::AllowList,
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
            allow_unsandboxed: unsandboxed_allowed(),
            sandbox_ceilings: SandboxLimits::default(),
            github_token: None,
            github: None,
            github_poll_every: Duration::from_secs(60),
            public_url: None,
            codegen: None,
            agent_poll_every: Duration::from_secs(5),
            max_concurrent_agents: 16,
            models: slipway_judge::Models::default(),
            notify_allow_hosts: Default::default(),
        }
    }
}

/// `SLIPWAY_ALLOW_UNSANDBOXED=1`: the operator accepts running PR code without bubblewrap.
pub fn unsandboxed_allowed() -> bool {
    std::env::var("SLIPWAY_ALLOW_UNSANDBOXED").is_ok_and(|v| v == "1" || v == "true")
}

/// Why commands cannot run here, when there is no sandbox and running without one was not
/// allowed.
pub(crate) fn no_sandbox(config: &EngineConfig) -> Option<String> {
    (config.isolation == Isolation::None && !config.allow_unsandboxed).then(|| {
        let missing = Isolation::probe()
            .err()
            .unwrap_or_else(|| "no sandbox was configured".to_owned());
        format!(
            "refusing to run the code without a sandbox: {missing}. Install it (as root: \
             apt-get install bubblewrap passt), or set SLIPWAY_ALLOW_UNSANDBOXED=1 to run it \
             unisolated on a machine you are prepared to lose"
        )
    })
}

/// Removes a tree that sandboxed code may have written, never following its links, at any
/// depth; a failure is logged (and never fatal: what is left is per attempt or retried at the
/// next start).
pub(crate) async fn remove_tree(path: &std::path::Path, what: &str) {
    match slipway_sandbox::remove_tree_async(path.to_path_buf()).await {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "{what} could not be removed")
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
    /// Jobs this process is running (any attempt): never leased again until they end.
    leased: Mutex<HashSet<i64>>,
    pub(crate) running_runs: Mutex<HashMap<i64, CancellationToken>>,
    branches: Mutex<HashMap<slipway_core::ProjectId, (std::time::Instant, Vec<String>)>>,
    merge_turns: MergeTurns,
    wake: Notify,
    pub(crate) agent_wake: Notify,
    /// A verdict job was queued (a report or merge to retry).
    pub(crate) verdict_wake: Notify,
    webhook_wake: Notify,
    /// A notification was queued.
    pub(crate) notify_wake: Notify,
    pub(crate) notifier: notify::send::Sender,
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
            leased: Mutex::new(HashSet::new()),
            running_runs: Mutex::new(HashMap::new()),
            branches: Mutex::new(HashMap::new()),
            merge_turns: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            agent_wake: Notify::new(),
            verdict_wake: Notify::new(),
            webhook_wake: Notify::new(),
            notify_wake: Notify::new(),
            notifier: notify::send::Sender::new(config.notify_allow_hosts.clone()),
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
    /// hands its leases back, removes its stale cells and workspaces, and ends validations
    /// whose job gave up. This process must be the database's only one. Nothing is killed by
    /// a process number (after a restart it may be anyone's): the cells died with the last
    /// process, and stale cgroups are killed as cgroups.
    pub async fn reconcile(&self) -> anyhow::Result<()> {
        let store = &self.inner.store;
        let released = store.expire_all_leases().await?;
        if released > 0 {
            tracing::warn!(
                released,
                "validations interrupted by the last shutdown will run again"
            );
        }
        slipway_sandbox::snapshot::unmount_all_below(&self.inner.workspaces);
        let _ = tokio::task::spawn_blocking(slipway_sandbox::remove_stale_cells).await;
        remove_tree(&self.inner.workspaces, "old workspaces").await;
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
                remove_tree(&entry.path(), "old artifacts").await;
            }
        }
    }

    /// The model `[judge]` and the failure analysis use by default (`provider:model`), if any.
    pub fn model(&self) -> Option<String> {
        let chosen = self.inner.config.models.pick(None, None).ok()?;
        Some(format!("{}:{}", chosen.provider.as_str(), chosen.model))
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

    /// Whether the sandbox user can read what a command agent's command names (its
    /// script); why not, and what to do, when it cannot. Slipway's configuration error.
    pub fn check_agent_command(&self, command: &str) -> Result<(), String> {
        match self.inner.sandbox.unreadable_in(command) {
            Some(why) => Err(why),
            None => Ok(()),
        }
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
        let verdicts = self.spawn_job_workers(
            merging::VERDICT_JOB,
            1,
            |inner| &inner.verdict_wake,
            shutdown.clone(),
            |engine, job, _| async move { merging::run_verdict_job(&engine, job).await },
        );
        let notifications = self.spawn_job_workers(
            notify::job::NOTIFY_JOB,
            NOTIFY_SLOTS,
            |inner| &inner.notify_wake,
            shutdown.clone(),
            |engine, job, _| async move { notify::job::run_notification_job(&engine, job).await },
        );
        let validations = self.spawn_validation_workers(shutdown);
        tokio::spawn(async move {
            let _ = notifications.await;
            let _ = deliveries.await;
            let _ = poller.await;
            let _ = agents.await;
            let _ = verdicts.await;
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
                let running: Vec<i64> = inner
                    .leased
                    .lock()
                    .expect("leased lock")
                    .iter()
                    .copied()
                    .collect();
                match inner
                    .store
                    .lease_excluding(&inner.owner, &[kind], LEASE, &running)
                    .await
                {
                    Ok(Some(job)) => {
                        let engine = Engine {
                            inner: inner.clone(),
                        };
                        let shutdown = shutdown.clone();
                        let held = Held::new(&inner, job.id);
                        tokio::spawn(async move {
                            handler(engine, job, shutdown).await;
                            drop(held);
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
            .lease(
                &self.inner.owner,
                &[
                    VALIDATION_JOB,
                    runs::AGENT_JOB,
                    merging::VERDICT_JOB,
                    notify::job::NOTIFY_JOB,
                ],
                LEASE,
            )
            .await?
        {
            if job.kind == runs::AGENT_JOB {
                runs::run_agent_job(self, job, &never).await;
            } else if job.kind == notify::job::NOTIFY_JOB {
                notify::job::run_notification_job(self, job).await;
            } else if job.kind == merging::VERDICT_JOB {
                merging::run_verdict_job(self, job).await;
            } else {
                run_job(self, job, &never).await;
            }
            ran += 1;
        }
        Ok(ran)
    }
}
