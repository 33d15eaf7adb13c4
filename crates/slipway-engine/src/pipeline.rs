//! One attempt of one validation: checkout → setup (or its snapshot) → build → deploy → test,
//! each step's status and output recorded as it happens.

mod analysis;
pub(crate) use analysis::{annotations, findings_markdown};
mod checkout;
mod commands;
mod error;
mod failure_note;
mod judge;
mod ui;

pub(crate) use error::{PipelineError, PipelineResult};
pub(crate) use failure_note::{failure_note, for_report};

use crate::logs::{LogLimits, LogSink};
use crate::Inner;
use slipway_core::limits::SandboxLimits;
use slipway_core::pipeline::{NetworkAccess, PipelineConfig, SandboxSection};
use slipway_core::pipeline_source::{self, ChosenPipeline, PipelineSource};
use slipway_core::validation::{self, StepName, StepPlan, StepStatus, ValidationStatus};
use slipway_core::{Masker, Project, RepoLocation, ValidationId};
use slipway_sandbox::{snapshot, Cell, CellSpec, Network, Process, Quotas};
use slipway_store::{StepUpdate, ValidationRecord};
use std::path::PathBuf;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// How an attempt ended.
pub(crate) enum Ended {
    /// A verdict was recorded.
    Verdict(ValidationStatus),
    /// Stopped without a verdict (shutdown, or another attempt holds the job).
    Interrupted,
}

/// How a step ended.
enum StepEnd {
    Passed(Option<String>),
    Failed {
        exit_code: Option<i32>,
        detail: String,
        /// Whether running it again could pass (not a timeout or a quota).
        retryable: bool,
    },
    Cancelled,
    Error(String),
    /// Not run, and the pipeline goes on (an advisory judge over the model budget).
    Skipped(String),
}

struct Attempt<'a> {
    inner: &'a Inner,
    /// Git with the credentials the head's repository needs.
    git: slipway_forge::git::Git,
    record: ValidationRecord,
    /// The job's attempt: part of the workspace's and the cell's names.
    attempt: u32,
    workspace: PathBuf,
    logs: LogSink,
    cancel: &'a CancellationToken,
    deadline: Instant,
    env: Vec<(String, String)>,
    statuses: Vec<(StepName, StepStatus)>,
    service: Option<Process>,
    /// A snapshot mounted into the workspace, released when the attempt ends.
    restored: Option<snapshot::Restored>,
    /// Where the commands run; made after the checkout.
    cell: Option<Cell>,
    /// The checkout's files before any of the pull request's code ran.
    manifest: Option<std::sync::Arc<snapshot::Manifest>>,
    /// The project's repository on disk, hidden from the commands.
    hidden: Vec<PathBuf>,
    project: Project,
    /// What the first step that ended in `error` said: the validation's error.
    first_error: Option<String>,
    /// Where the deploy step's service listens, in the cell.
    service_port: Option<u16>,
    /// Chromium, launched in the cell before the deploy step when a ui step follows, so that
    /// it starts while the service and the tests run: its process and DevTools port.
    early_browser: Option<(Process, u16)>,
    /// The diff and the head's message for the judge, read before any code ran.
    judge_source: Option<judge::JudgeSource>,
    /// The analysis of the change, made before any of its code ran.
    analysis: Option<Result<slipway_analysis::Report, String>>,
}

/// Whether a head fetched from `source` comes from the project's own repository rather than
/// a fork. On GitHub the clone URL's host varies (github.com, an Enterprise host), so the
/// `owner/name` at the end of its path decides; elsewhere the locations are compared whole
/// (`file://` and trailing `.git`/`/` spelled either way).
fn from_project_repository(source: &str, repo: &RepoLocation) -> bool {
    let normal = |s: &str| {
        let s = s.strip_prefix("file://").unwrap_or(s).trim_end_matches('/');
        s.strip_suffix(".git").unwrap_or(s).to_ascii_lowercase()
    };
    match repo {
        RepoLocation::GitHub { owner, name } => {
            normal(source).ends_with(&format!("/{owner}/{name}").to_ascii_lowercase())
        }
        _ => normal(source) == normal(&repo.source()),
    }
}

/// The project's secrets as environment variables for sandboxed commands: all but the
/// webhook secret, which verifies deliveries and is never PR code's business.
pub(crate) fn secrets_env(
    secrets: &[(String, slipway_core::secret::SecretValue)],
) -> Vec<(String, String)> {
    secrets
        .iter()
        .filter(|(name, _)| name != slipway_core::secret::WEBHOOK_SECRET_NAME)
        .map(|(name, value)| (name.clone(), value.expose().to_owned()))
        .collect()
}

pub(crate) async fn execute(
    inner: &Inner,
    id: ValidationId,
    attempt: u32,
    cancel: &CancellationToken,
    interrupted: &(dyn Fn() -> bool + Sync),
) -> PipelineResult<Ended> {
    let store = &inner.store;
    let record = store.validation(id).await?;
    if store.cancel_requested(id).await? {
        store
            .finish_validation(
                id,
                ValidationStatus::Cancelled,
                Some("cancelled before it started"),
            )
            .await?;
        return Ok(Ended::Verdict(ValidationStatus::Cancelled));
    }
    if let Some(why) = crate::no_sandbox(&inner.config) {
        store
            .finish_validation(id, ValidationStatus::Error, Some(&why))
            .await?;
        return Ok(Ended::Verdict(ValidationStatus::Error));
    }
    store.start_validation(id, attempt).await?;
    let secrets = store.secret_values(record.project_id).await?;
    // The model APIs' keys are masked too: no step prints them, but nothing may.
    let model_keys = inner.config.models.keys();
    let masker = Masker::new(
        (secrets.iter().map(|(_, v)| v.expose())).chain(model_keys.iter().map(String::as_str)),
    );
    // Until the pipeline's `[sandbox]` is read: the defaults under the ceilings.
    let limits = LogLimits::of(&inner.config.sandbox_ceilings.within(None).0);
    let (logs, writer) = LogSink::start(store.clone(), id, masker, limits);
    if attempt > 1 {
        logs.line(
            StepName::Checkout,
            &format!("attempt {attempt}: the previous attempt was interrupted"),
        );
    }

    // A head fetched from elsewhere than the project's repository (a fork) is someone else's
    // code: it gets no secrets, as on GitHub Actions.
    let project = store.project(record.project_id).await?;
    let from_fork = !from_project_repository(&record.source, &project.location);
    if from_fork {
        logs.line(
            StepName::Checkout,
            "the head comes from a fork: the project's secrets are withheld from its commands, and its variables too",
        );
    }
    let mut env = if from_fork {
        Vec::new()
    } else {
        // Variables as secrets are given (not to a fork), secrets last.
        let mut env = store.variable_env(record.project_id).await?;
        env.extend(secrets_env(&secrets));
        env
    };
    env.push(("SLIPWAY_VALIDATION_ID".into(), id.to_string()));
    env.push(("SLIPWAY_PROJECT_ID".into(), record.project_id.to_string()));
    env.push(("SLIPWAY_SHA".into(), record.sha.clone()));
    if let Some(branch) = &record.branch {
        env.push(("SLIPWAY_BRANCH".into(), branch.clone()));
    }

    // Per attempt: an older attempt still cleaning up never shares (or loses) its files.
    let workspace = inner.workspaces.join(format!("{id}-{attempt}"));
    remove_attempt_dirs(&workspace).await;
    tokio::fs::create_dir_all(&inner.workspaces).await?;

    let git = crate::github::git_for(inner, &project, &record.source).await;
    let mut run = Attempt {
        inner,
        git,
        statuses: record.steps.iter().map(|s| (s.name, s.status)).collect(),
        record,
        attempt,
        workspace: workspace.clone(),
        logs: logs.clone(),
        cancel,
        deadline: Instant::now() + inner.config.validation_timeout,
        env,
        service: None,
        restored: None,
        cell: None,
        manifest: None,
        hidden: repository_on_disk(&project.location),
        project,
        first_error: None,
        service_port: None,
        early_browser: None,
        judge_source: None,
        analysis: None,
    };
    let result = run.steps().await;
    let first_error = run.first_error.take();
    let unused_browser = run.early_browser.take().map(|(browser, _)| browser);
    for process in run.service.take().into_iter().chain(unused_browser) {
        stop(process).await;
    }
    if let Some(cell) = run.cell.take() {
        cell.close().await;
    }
    if let Some(restored) = run.restored.take() {
        inner.snapshots.release(restored);
    }
    drop(run);
    writer.finish(logs).await;
    remove_attempt_dirs(&workspace).await;

    if interrupted() {
        return Ok(Ended::Interrupted);
    }
    let (status, error) = match result {
        Ok((statuses, source)) => {
            let status = validation::verdict(&statuses, |step| match source {
                Some(source) => source.counts_as_check(step),
                None => step.is_check(),
            });
            let error = (status == ValidationStatus::Error).then(|| {
                first_error.unwrap_or_else(|| pipeline_source::NOTHING_CHECKED.to_owned())
            });
            (status, error)
        }
        Err(error) => (ValidationStatus::Error, Some(error.to_string())),
    };
    store
        .finish_validation(id, status, error.as_deref())
        .await?;
    Ok(Ended::Verdict(status))
}

/// Kills a process of the validation (its whole group).
async fn stop(mut process: Process) {
    process.kill().await;
}

impl Attempt<'_> {
    fn id(&self) -> ValidationId {
        self.record.id
    }

    /// Runs every step; returns the final statuses and where the pipeline came from.
    async fn steps(
        &mut self,
    ) -> PipelineResult<(Vec<(StepName, StepStatus)>, Option<PipelineSource>)> {
        let Some(ChosenPipeline { config, source, .. }) = self.checkout().await? else {
            return Ok((self.statuses.clone(), None));
        };
        let config = self.with_base_analysis(config).await;
        let plan = validation::plan(&config, self.record.pr.is_some());
        self.inner.store.set_plan(self.id(), source, &plan).await?;
        for (name, step) in plan.iter().skip(1) {
            let status = match step {
                StepPlan::Run => StepStatus::Queued,
                StepPlan::Skip(_) => StepStatus::Skipped,
            };
            self.set_status(*name, status);
        }
        if let Some(section) = &config.analysis {
            self.prepare_analysis(section).await;
        }
        if !self.prepare_judge(&config).await? {
            return Ok((self.statuses.clone(), Some(source)));
        }
        self.enter_cell(&config).await?;
        for (name, step) in plan.into_iter().skip(1) {
            if step != StepPlan::Run {
                continue;
            }
            let end = match name {
                StepName::Setup => self.setup(&config).await?,
                StepName::Build => {
                    let section = config.build.as_ref().expect("planned");
                    self.begin(name).await?;
                    self.commands(name, &section.commands, section.timeout_secs, 0)
                        .await?
                }
                StepName::Deploy => {
                    let service = config.service.as_ref().expect("planned");
                    if config.ui.is_some() {
                        self.launch_browser_early().await;
                    }
                    self.begin(name).await?;
                    self.deploy(
                        &service.start,
                        &service.health_path,
                        service.ready_timeout_secs,
                    )
                    .await?
                }
                StepName::Test => {
                    let section = config.test.as_ref().expect("planned");
                    self.begin(name).await?;
                    let (commands, timeout) = (&section.commands, section.timeout_secs);
                    self.commands(name, commands, timeout, section.retries)
                        .await?
                }
                StepName::Ui => {
                    let section = config.ui.as_ref().expect("planned");
                    self.begin(name).await?;
                    self.ui(section).await?
                }
                StepName::Judge => {
                    let section = config.judge.as_ref().expect("planned");
                    self.begin(name).await?;
                    self.judge(section).await?
                }
                StepName::Analysis => {
                    self.begin(name).await?;
                    self.analysis().await
                }
                other => StepEnd::Error(format!("step {other} has no runner")),
            };
            if !self.end(name, end).await? {
                break;
            }
        }
        // The analysis was made before any code ran: it is reported even when an earlier
        // step failed (its findings go to the agent with that failure).
        if self.status_of(StepName::Analysis) == Some(StepStatus::Queued) {
            self.begin(StepName::Analysis).await?;
            let end = self.analysis().await;
            self.end(StepName::Analysis, end).await?;
        }
        self.analyse_failure(&config).await;
        Ok((self.statuses.clone(), Some(source)))
    }

    /// Records the checkout's files, hands the workspace to the sandbox's user and makes the
    /// cell every later command runs in. A failure here is the machine's, not the code's.
    async fn enter_cell(&mut self, config: &PipelineConfig) -> PipelineResult<()> {
        let workspace = self.workspace.clone();
        let sandbox = self.inner.sandbox.clone();
        // Before any of the pull request's code runs: the checkout is still git's own.
        let versions = self.git.tracked_versions(&workspace).await?;
        let manifest = tokio::task::spawn_blocking(move || {
            slipway_sandbox::give_to_sandbox(&sandbox, &workspace)?;
            PipelineResult::Ok(snapshot::Manifest::scan(&workspace, versions)?)
        })
        .await??;
        self.manifest = Some(std::sync::Arc::new(manifest));
        let (network, quotas, limits, notes) =
            cell_limits(config.sandbox.as_ref(), &self.inner.config.sandbox_ceilings);
        self.logs.set_limits(LogLimits::of(&limits));
        for note in notes {
            tracing::info!(validation = %self.id(), "{note}");
            self.logs.line(StepName::Checkout, &note);
        }
        let scratch = beside(&self.workspace, SCRATCH);
        let name = format!("validation-{}-{}", self.id(), self.attempt);
        let cell = self
            .inner
            .sandbox
            .cell(&CellSpec {
                visible: &[],
                workspace: &self.workspace,
                scratch: &scratch,
                network,
                quotas,
                hidden: &self.hidden,
                name: &name,
            })
            .await?;
        for note in &cell.notes {
            self.logs
                .line(StepName::Checkout, &format!("sandbox: {note}"));
        }
        self.cell = Some(cell);
        Ok(())
    }

    /// Where step `name` is stored. A stored plan without it (rows gone from the database,
    /// or written by a bug) is Slipway's fault, never the code's: the validation ends as
    /// `error` saying so.
    fn index(&self, name: StepName) -> PipelineResult<u32> {
        let stored = self.record.steps.iter().find(|step| step.name == name);
        stored.map(|step| step.index).ok_or_else(|| {
            PipelineError::Stored(format!(
                "Slipway cannot run validation {}: its stored plan has no {name} step (the \
                 database lost or was never given the planned steps; Slipway's fault, not \
                 the code's); retry it to plan it afresh",
                self.id()
            ))
        })
    }

    fn status_of(&self, name: StepName) -> Option<StepStatus> {
        self.statuses
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
    }

    fn set_status(&mut self, name: StepName, status: StepStatus) {
        if let Some(entry) = self.statuses.iter_mut().find(|(n, _)| *n == name) {
            entry.1 = status;
        }
    }

    async fn begin(&mut self, name: StepName) -> PipelineResult<()> {
        self.set_status(name, StepStatus::Running);
        let update = StepUpdate {
            status: Some(StepStatus::Running),
            started: true,
            ..Default::default()
        };
        self.inner
            .store
            .update_step(self.id(), self.index(name)?, &update)
            .await?;
        Ok(())
    }

    /// Records how a step ended; `false` when the pipeline must stop here. Steps not run
    /// after a failure are skipped (saying why), after a cancellation cancelled.
    async fn end(&mut self, name: StepName, end: StepEnd) -> PipelineResult<bool> {
        let (status, exit_code, detail) = match end {
            StepEnd::Passed(detail) => (StepStatus::Passed, None, detail),
            StepEnd::Failed {
                exit_code, detail, ..
            } => (StepStatus::Failed, exit_code, Some(detail)),
            StepEnd::Cancelled => (StepStatus::Cancelled, None, Some("cancelled".to_owned())),
            StepEnd::Error(detail) => (StepStatus::Error, None, Some(detail)),
            StepEnd::Skipped(detail) => (StepStatus::Skipped, None, Some(detail)),
        };
        if let Some(detail) = &detail {
            if status != StepStatus::Passed {
                self.logs.line(name, &format!("{name}: {detail}"));
            }
        }
        self.logs.end_step(name);
        if let Some(detail) = &detail {
            if status == StepStatus::Error && self.first_error.is_none() {
                self.first_error = Some(self.logs.mask(&format!("{name}: {detail}")));
            }
        }
        self.set_status(name, status);
        let update = StepUpdate {
            status: Some(status),
            exit_code,
            detail: detail.map(|d| self.logs.mask(&d)),
            finished: true,
            ..Default::default()
        };
        self.inner
            .store
            .update_step(self.id(), self.index(name)?, &update)
            .await?;
        if matches!(status, StepStatus::Passed | StepStatus::Skipped) {
            return Ok(true);
        }
        let (rest, reason) = match status {
            StepStatus::Cancelled => (StepStatus::Cancelled, "cancelled".to_owned()),
            _ => (
                StepStatus::Skipped,
                format!("not run: the {name} step did not pass"),
            ),
        };
        // The analysis, made before any code ran, is still reported after a failure.
        let waiting: Vec<StepName> = self
            .statuses
            .iter()
            .filter(|(n, s)| {
                *s == StepStatus::Queued
                    && (*n != StepName::Analysis || rest == StepStatus::Cancelled)
            })
            .map(|(n, _)| *n)
            .collect();
        for later in waiting {
            self.set_status(later, rest);
            let update = StepUpdate {
                status: Some(rest),
                detail: Some(reason.clone()),
                ..Default::default()
            };
            self.inner
                .store
                .update_step(self.id(), self.index(later)?, &update)
                .await?;
        }
        Ok(false)
    }

    async fn setup(&mut self, config: &PipelineConfig) -> PipelineResult<StepEnd> {
        let setup = config.setup.as_ref().expect("planned");
        self.begin(StepName::Setup).await?;
        let scopes = self.snapshot_scopes();
        let (ws, files, commands) = (
            self.workspace.clone(),
            setup.cache_key.clone(),
            setup.commands.clone(),
        );
        // Read before any of the pull request's code ran, but what it tracks is its own:
        // read off the runtime's threads, below the workspace only.
        let keys =
            tokio::task::spawn_blocking(move || snapshot::keys(&ws, &scopes, &files, &commands))
                .await?;
        for key in &keys {
            if let Some(detail) = self.restore_snapshot(key).await? {
                return Ok(StepEnd::Passed(Some(detail)));
            }
        }
        let end = self
            .commands(StepName::Setup, &setup.commands, setup.timeout_secs, 0)
            .await?;
        if let (StepEnd::Passed(_), Some(before)) = (&end, self.manifest.take()) {
            let snapshots = self.inner.snapshots.clone();
            let key = keys[0].clone();
            let (k, ws) = (key.clone(), self.workspace.clone());
            let owner = self.inner.sandbox.outside_owner();
            let quotas = self.cell.as_ref().map(Cell::quotas).unwrap_or_default();
            let saved = tokio::task::spawn_blocking(move || {
                snapshots.save(&k, &ws, &before, owner, &quotas)
            });
            match saved.await? {
                Ok(()) => self
                    .logs
                    .line(StepName::Setup, &format!("snapshot {} saved", &key[..12])),
                Err(error) => {
                    tracing::warn!(%error, "snapshot not saved");
                    self.logs
                        .line(StepName::Setup, "snapshot not saved (see the server log)");
                }
            }
        }
        Ok(end)
    }

    /// Where this validation's snapshots come from, its own scope first (see
    /// [`snapshot::Scope`]): a pull request's, then its base branch's; a branch's own only.
    fn snapshot_scopes(&self) -> Vec<snapshot::Scope> {
        let project = format!("{}:{}", self.project.id, self.project.location.source());
        let record = &self.record;
        let base = record
            .base_ref
            .as_deref()
            .map(|base| snapshot::Scope::branch(&project, base));
        let own = match (record.pr, record.branch.as_deref()) {
            (Some(number), _) => snapshot::Scope::pull_request(&project, number as u64),
            (None, Some(branch)) => snapshot::Scope::branch(&project, branch),
            (None, None) => snapshot::Scope::branch(&project, &format!("commit {}", record.sha)),
        };
        let mut scopes = vec![own];
        scopes.extend(base.filter(|base| *base != scopes[0]));
        scopes
    }

    /// Restores the snapshot `key` when there is one; what to report when it was.
    async fn restore_snapshot(&mut self, key: &str) -> PipelineResult<Option<String>> {
        let snapshots = self.inner.snapshots.clone();
        let (k, ws) = (key.to_owned(), self.workspace.clone());
        let owner = self.inner.sandbox.outside_owner();
        let checkout = self.manifest.clone().expect("scanned before setup");
        let restored = tokio::task::spawn_blocking(move || {
            snapshots.restore(&k, &ws, &beside(&ws, LAYERS), owner, &checkout)
        })
        .await?;
        match restored {
            Ok(Some(restored)) => {
                let detail = format!(
                    "restored from snapshot {} ({})",
                    &key[..12],
                    restored.mechanism
                );
                self.restored = Some(restored);
                self.logs.line(StepName::Setup, &detail);
                Ok(Some(detail))
            }
            Ok(None) => Ok(None),
            Err(error) => {
                self.logs.line(
                    StepName::Setup,
                    &format!("snapshot {} unusable ({error}); running setup", &key[..12]),
                );
                Ok(None)
            }
        }
    }
}

/// Beside a workspace: the writable overlay layers of its restored snapshot, and its cell's
/// `/tmp`.
const LAYERS: &str = "layers";
const SCRATCH: &str = "scratch";

pub(crate) fn beside(workspace: &std::path::Path, suffix: &str) -> PathBuf {
    let mut name = workspace.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// The project's repository when it is on this machine (the local forge): sandboxed code
/// must not see it.
pub(crate) fn repository_on_disk(repo: &RepoLocation) -> Vec<PathBuf> {
    repo.local_path().map(PathBuf::from).into_iter().collect()
}

/// Removes an attempt's workspace and what lies beside it; a failure is only logged (the
/// directories are per attempt, so what is left never meets another attempt).
async fn remove_attempt_dirs(workspace: &std::path::Path) {
    let paths = [
        workspace.to_path_buf(),
        beside(workspace, LAYERS),
        beside(workspace, SCRATCH),
    ];
    for path in paths {
        crate::remove_tree(&path, "a work directory").await;
    }
}

/// The cell's network, quotas and log limits: `[sandbox]` of the pipeline over the defaults,
/// never above the administrator's ceilings (with a note for each value clamped).
fn cell_limits(
    section: Option<&SandboxSection>,
    ceilings: &SandboxLimits,
) -> (Network, Quotas, SandboxLimits, Vec<String>) {
    let network = match section.and_then(|s| s.network).unwrap_or_default() {
        NetworkAccess::Outbound => Network::Outbound,
        NetworkAccess::None => Network::None,
    };
    let (limits, notes) = ceilings.within(section);
    let quotas = Quotas {
        memory_mb: limits.memory_mb,
        max_processes: limits.max_processes,
        disk_mb: limits.disk_mb,
        cpu_secs: limits.cpu_secs,
        max_files: limits.max_files,
    };
    (network, quotas, limits, notes)
}

#[cfg(test)]
mod tests {
    use slipway_core::RepoLocation;

    fn from_project_repository(source: &str, repo: &str) -> bool {
        super::from_project_repository(source, &RepoLocation::from_stored(repo))
    }

    #[test]
    fn a_github_head_is_the_projects_own_whatever_the_host_and_a_fork_is_not() {
        let own = [
            "https://github.com/acme/app.git",
            "https://GitHub.com/Acme/App",
            "https://ghe.example.com/acme/app.git",
        ];
        for source in own {
            assert!(from_project_repository(source, "acme/app"), "{source}");
        }
        let forks = [
            "https://github.com/mallory/app.git",
            "https://github.com/xacme/app.git",
            "https://github.com/acme/app-fork.git",
        ];
        for source in forks {
            assert!(!from_project_repository(source, "acme/app"), "{source}");
        }
    }

    #[test]
    fn a_local_head_is_compared_by_its_whole_location() {
        assert!(from_project_repository(
            "file:///srv/app.git/",
            "/srv/app.git"
        ));
        assert!(!from_project_repository("/srv/fork", "/srv/app.git"));
    }
}
