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
pub mod masking;
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

use jobs::{spawn_kind, Stopping, ValidationJob};
use slipway_core::limits::SandboxLimits;
use slipway_core::validation::ValidationStatus;
use slipway_core::{Project, ValidationId};
use slipway_sandbox::snapshot::Snapshots;
use slipway_sandbox::{Isolation, Sandbox};
use slipway_store::{EventKind, Store};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub(crate) const CANCEL_CHECK_EVERY: Duration = Duration::from_millis(500);
/// How often a process running jobs tells the registry it is alive.
pub const WORKER_HEARTBEAT: Duration = Duration::from_secs(5);
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
    /// How long a job's lease lasts without a heartbeat (`SLIPWAY_JOB_LEASE_SECS`, default
    /// 30 s): how soon another worker takes over the jobs of one that died.
    pub job_lease: Duration,
    /// How long running jobs may go on after a shutdown began before they are interrupted
    /// and handed back to the queue (`SLIPWAY_SHUTDOWN_GRACE_SECS`; zero here: at once).
    pub shutdown_grace: Duration,
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
            job_lease: Duration::from_secs(30),
            shutdown_grace: Duration::ZERO,
            notify_allow_hosts: Default::default(),
        }
    }
}

/// What a process's workers do: `jobs` runs queued validations, agent turns and verdict
/// retries (`slipway worker`, `serve` unless `--workers 0`); `intake` acts on stored webhook
/// deliveries and polls pull requests (`serve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub jobs: bool,
    pub intake: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        jobs: true,
        intake: true,
    };
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
    /// The lease and how often it is renewed.
    pub(crate) fn timing(&self) -> jobs::Timing {
        jobs::Timing::for_lease(self.config.job_lease)
    }
}

/// `host:data-directory`: one process's identity in a database shared by several.
fn process_owner(data_dir: &std::path::Path) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", data_dir.display())
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
            leased: Mutex::new(HashSet::new()),
            running_runs: Mutex::new(HashMap::new()),
            branches: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            agent_wake: Notify::new(),
            verdict_wake: Notify::new(),
            webhook_wake: Notify::new(),
            notify_wake: Notify::new(),
            notifier: notify::send::Sender::new(config.notify_allow_hosts.clone()),
            owner: process_owner(&config.data_dir),
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

    /// This process's id in the database: the owner of its job leases and its row in the
    /// worker registry. Stable across restarts (host and data directory), so that a restart
    /// finds what its last run left behind.
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// Start-up reconciliation after whatever stopped the last process (even SIGKILL):
    /// hands back the leases it held (by its owner id: other processes on the database keep
    /// theirs), removes its stale cells and workspaces, and ends validations whose job gave
    /// up. Nothing is killed by a process number (after a restart it may be anyone's): the
    /// cells died with the last process, and stale cgroups are killed as cgroups.
    pub async fn reconcile(&self) -> anyhow::Result<()> {
        let store = &self.inner.store;
        let released = store.expire_leases_of(&self.inner.owner).await?;
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
            .emit_event(project.id, EventKind::PrNotification, &payload)
            .await
        {
            tracing::error!(%error, "pr_notification not recorded");
        }
    }

    /// A delivery was stored: process it soon.
    pub fn delivery_recorded(&self) {
        self.inner.webhook_wake.notify_one();
    }

    /// Runs queued jobs and webhook deliveries until `shutdown` (see [`Engine::spawn`]).
    pub fn spawn_workers(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        self.spawn(Roles::ALL, shutdown)
    }

    /// Runs what `roles` says until `shutdown`. Then no job is leased any more; running jobs
    /// get `shutdown_grace` to end, after which they are interrupted and handed back to the
    /// queue for another worker. The handle ends when they all have.
    pub fn spawn(&self, roles: Roles, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let mut tasks = Vec::new();
        if roles.intake {
            tasks.push(tokio::spawn(webhooks::work(self.clone(), shutdown.clone())));
            tasks.push(self.spawn_poller(shutdown.clone()));
        }
        let stopping = Stopping::after(shutdown, self.inner.config.shutdown_grace);
        if roles.jobs {
            let config = &self.inner.config;
            let validations = config.max_concurrent.max(1);
            tasks.push(spawn_kind::<ValidationJob>(
                self,
                validations,
                stopping.clone(),
            ));
            let agents = config.max_concurrent_agents.max(1);
            tasks.push(spawn_kind::<runs::AgentJob>(self, agents, stopping.clone()));
            tasks.push(spawn_kind::<merging::VerdictJob>(self, 1, stopping.clone()));
            tasks.push(spawn_kind::<notify::job::NotificationJob>(
                self,
                NOTIFY_SLOTS,
                stopping.clone(),
            ));
            tasks.push(self.spawn_registry(stopping.leasing.clone()));
        }
        tokio::spawn(async move {
            for task in tasks {
                let _ = task.await;
            }
            stopping.jobs.cancel();
        })
    }

    /// Keeps this process in the database's worker registry while it runs jobs: registered
    /// now, heard from every `WORKER_HEARTBEAT`, removed at shutdown.
    fn spawn_registry(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let (store, owner) = (&inner.store, inner.owner.as_str());
            let host = owner.split(':').next().unwrap_or(owner);
            loop {
                let heard = match store.worker_heartbeat(owner).await {
                    Ok(true) => Ok(()),
                    Ok(false) => {
                        store
                            .register_worker(owner, "worker", host, std::process::id())
                            .await
                    }
                    Err(error) => Err(error),
                };
                if let Err(error) = heard {
                    tracing::warn!(%error, "the worker registry could not be updated");
                }
                tokio::select! {
                    _ = tokio::time::sleep(WORKER_HEARTBEAT) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
            if let Err(error) = store.remove_worker(owner).await {
                tracing::warn!(%error, "this worker could not be removed from the registry");
            }
        })
    }
}
