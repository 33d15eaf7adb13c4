//! `slipway validate`: one validation of one commit, without a server, on a temporary
//! store (setup snapshots are kept in a cache); progress on stderr, an optional JSON report
//! on stdout.

use crate::{refused, Failure};
use anyhow::{anyhow, Context};
use slipway_core::validation::{StepName, StepStatus, ValidationStatus};
use slipway_core::{PipelineConfig, ProjectDraft, ValidationId};
use slipway_engine::{git, Engine, EngineConfig, Options, Target};
use slipway_sandbox::Isolation;
use slipway_store::{MasterKey, StepRecord, Store, ValidationRecord};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

#[derive(clap::Args)]
pub struct ValidateArgs {
    /// The repository: a local path, a file:// URL or any URL git can fetch
    #[arg(default_value = ".", value_name = "PATH_OR_URL")]
    target: String,
    /// Validate the head of this branch
    #[arg(long, conflicts_with = "rev")]
    branch: Option<String>,
    /// Validate this commit (a full id; for a local path any revision git understands)
    #[arg(long, value_name = "SHA")]
    rev: Option<String>,
    /// Validate it merged onto the head of this branch, as a pull request into it would be
    #[arg(long, value_name = "B")]
    base: Option<String>,
    /// Pipeline file (.slipway.toml format) used when the repository has none
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Do not keep or reuse setup snapshots
    #[arg(long)]
    no_cache: bool,
    /// Print the report as JSON on stdout
    #[arg(long)]
    json: bool,
}

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

pub async fn run(args: ValidateArgs) -> Result<(), Failure> {
    // From the start: SIGTERM, like SIGINT, cancels and cleans up (never the default death).
    let mut signals = Signals::new().context("cannot handle SIGINT and SIGTERM")?;
    let session = Session::open(args.no_cache).await?;
    let (repo, target) =
        local_target(&args.target, args.branch.as_deref(), args.rev.as_deref()).await?;
    let config_file = match &args.config {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| refused(anyhow!("cannot read {}: {e}", file.display())))?;
            let pipeline = PipelineConfig::from_toml(&file.display().to_string(), &text)
                .map_err(|e| refused(e.into()))?;
            Some(pipeline)
        }
        None => None,
    };
    let record = session
        .submit(
            repo,
            target,
            args.base.clone(),
            config_file,
            "slipway validate",
        )
        .await?;
    let shutdown = CancellationToken::new();
    let workers = session.engine.spawn_workers(shutdown.clone());

    let started = Instant::now();
    let done = follow(
        &session.store,
        &session.engine,
        record.id,
        started,
        &mut signals,
    )
    .await?;
    shutdown.cancel();
    let _ = workers.await;

    let artifacts = session
        .cache
        .as_deref()
        .and_then(|cache| keep_artifacts(&session.data, &done, cache));
    let analysis = session.engine.analysis_evidence(done.id).await;
    report(
        &session.store,
        &done,
        started.elapsed(),
        args.json,
        artifacts.as_deref(),
        analysis,
    )
    .await?;
    match done.status {
        ValidationStatus::Passed => Ok(()),
        ValidationStatus::Failed => Err(Failure::Exit(1)),
        _ => Err(Failure::Exit(2)),
    }
}

/// What validating local repositories needs, without a server: a temporary store and data
/// directory (removed when dropped), an engine on them, and the snapshot cache. `slipway
/// validate` opens one per validation, `slipway mcp` one per session.
pub(crate) struct Session {
    pub store: Store,
    pub engine: Engine,
    data: PathBuf,
    cache: Option<PathBuf>,
    // Last: removed after the store is closed.
    _work: WorkDir,
}

impl Session {
    pub async fn open(no_cache: bool) -> Result<Self, Failure> {
        let isolation = isolation()?;
        let sandbox_ceilings = crate::config::sandbox_ceilings().map_err(refused)?;
        let work = WorkDir(Some(
            tempfile::tempdir().context("cannot create a temporary directory")?,
        ));
        let data = work.path().join("data");
        crate::ensure_data_dir(&data)?;
        let key =
            MasterKey::load_or_create(&data.join("master.key")).map_err(anyhow::Error::from)?;
        let store = Store::open(
            &format!("sqlite://{}", data.join("slipway.db").display()),
            &key,
        )
        .await
        .map_err(|e| Failure::Failed(e.into()))?;
        let cache = if no_cache { None } else { Some(cache_dir()?) };
        let mut config = EngineConfig::new(data.clone());
        if let Some(cache) = &cache {
            config.snapshot_dir = cache.join("snapshots");
        }
        config.allow_unsandboxed = isolation == Isolation::None;
        config.isolation = isolation;
        config.sandbox_ceilings = sandbox_ceilings;
        config.max_concurrent = 1;
        config.github_token = github_token();
        config.models = crate::model_config().map_err(refused)?;
        let engine = Engine::new(store.clone(), config);
        Ok(Self {
            store,
            engine,
            data,
            cache,
            _work: work,
        })
    }

    /// Records and queues a validation of `target` in the repository `repo` (a path or URL).
    pub async fn submit(
        &self,
        repo: String,
        target: Target,
        base: Option<String>,
        config_file: Option<PipelineConfig>,
        started_by: &str,
    ) -> Result<ValidationRecord, Failure> {
        // One project per repository (a session may validate several).
        let known = self
            .store
            .list_projects()
            .await
            .map_err(|e| Failure::Failed(e.into()))?;
        let project = match known.iter().find(|p| p.repo == repo) {
            Some(project) => project.clone(),
            None => self
                .store
                .create_project(&ProjectDraft {
                    name: match known.len() {
                        0 => "validate".into(),
                        n => format!("validate-{}", n + 1),
                    },
                    description: String::new(),
                    repo,
                    default_branch: "main".into(),
                })
                .await
                .map_err(|e| Failure::Failed(e.into()))?,
        };
        let options = Options {
            base,
            setup_trial: false,
            config_file,
            started_by: Some(started_by.into()),
        };
        self.engine
            .submit_with(&project, target, options)
            .await
            .map_err(|e| refused(anyhow!("{e}")))
    }
}

fn github_token() -> Option<String> {
    std::env::var("GITHUB_TOKEN").ok().filter(|t| !t.is_empty())
}

/// The repository (a canonical path, or the URL as given) and what of it to validate: a
/// branch's head, a revision, else HEAD (its branch's head when it is on one).
pub(crate) async fn local_target(
    given: &str,
    branch: Option<&str>,
    rev: Option<&str>,
) -> Result<(String, Target), Failure> {
    let is_url = given.contains("://") || given.starts_with("git@");
    let repo = if is_url {
        given.to_owned()
    } else {
        let path = std::fs::canonicalize(given)
            .map_err(|e| refused(anyhow!("cannot read {given}: {e}")))?;
        if git::resolve_local(&path, "HEAD").await.is_err() {
            return Err(refused(anyhow!(
                "{} is not a git repository with a commit; give the path of one, or a URL",
                path.display()
            )));
        }
        path.display().to_string()
    };
    let target = match (branch, rev) {
        (Some(branch), _) if !is_url => {
            let local = format!("refs/heads/{branch}");
            if git::resolve_local(std::path::Path::new(&repo), &local)
                .await
                .is_err()
            {
                return Err(refused(anyhow!(
                    "there is no local branch '{branch}' in {repo}: check it out first \
                     (git switch {branch}), or validate a remote one's commit with \
                     --rev origin/{branch}"
                )));
            }
            Target::Branch(branch.to_owned())
        }
        (Some(branch), _) => Target::Branch(branch.to_owned()),
        (None, Some(rev)) => Target::Sha(rev.to_owned()),
        (None, None) if is_url => Target::Sha(
            git::Git::new(github_token().as_deref())
                .remote_head(&repo)
                .await
                .map_err(|e| refused(e.into()))?,
        ),
        (None, None) => {
            let path = std::path::Path::new(&repo);
            let head = git::resolve_local(path, "HEAD")
                .await
                .map_err(|e| refused(e.into()))?;
            if git::is_dirty(path).await {
                eprintln!(
                    "note: uncommitted changes are not validated; HEAD is {}, and that commit is what is validated",
                    describe_commit(path, &head).await
                );
            }
            // On a branch, its head: the same commit, and that branch's setup snapshots.
            match git::current_branch(path).await {
                Some(branch)
                    if git::resolve_local(path, &branch).await.ok() == Some(head.clone()) =>
                {
                    Target::Branch(branch)
                }
                _ => Target::Sha(head),
            }
        }
    };
    Ok((repo, target))
}

/// The run's temporary directory, removed as a workspace is (the pipeline's files may be in
/// it): never following links, at any depth.
struct WorkDir(Option<tempfile::TempDir>);

impl WorkDir {
    fn path(&self) -> &Path {
        self.0.as_ref().expect("until dropped").path()
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let path = dir.keep();
            if let Err(error) = slipway_sandbox::remove_tree(&path) {
                eprintln!("note: {} could not be removed: {error}", path.display());
            }
        }
    }
}

/// How long kept artifacts stay in the cache.
const ARTIFACTS_KEPT: Duration = Duration::from_secs(14 * 24 * 3_600);

/// Keeps the browser checks' screenshots and evidence, which the temporary data directory
/// would take with it, in `<cache>/artifacts/<sha>-<time>`; drops those older than two weeks.
/// `None` when the validation made none.
fn keep_artifacts(data: &Path, record: &ValidationRecord, cache: &Path) -> Option<PathBuf> {
    let kept = cache.join("artifacts");
    for old in std::fs::read_dir(&kept).into_iter().flatten().flatten() {
        let age = old.metadata().and_then(|m| m.modified()).ok()?.elapsed();
        if age.is_ok_and(|age| age > ARTIFACTS_KEPT) {
            if let Err(error) = slipway_sandbox::remove_tree(&old.path()) {
                eprintln!(
                    "note: {} could not be removed: {error}",
                    old.path().display()
                );
            }
        }
    }
    let made = data.join("artifacts").join(record.id.to_string());
    let files: Vec<_> = std::fs::read_dir(&made).ok()?.flatten().collect();
    if files.is_empty() {
        return None;
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let to = kept.join(format!(
        "{}-{stamp}",
        &record.sha[..12.min(record.sha.len())]
    ));
    std::fs::create_dir_all(&to).ok()?;
    for file in files {
        if file.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::copy(file.path(), to.join(file.file_name())).ok()?;
        }
    }
    Some(to)
}

/// Where snapshots are kept between runs: `$SLIPWAY_DATA_DIR`, else
/// `$XDG_CACHE_HOME/slipway`, else `~/.cache/slipway` (made absolute).
fn cache_dir() -> Result<PathBuf, Failure> {
    let set = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let dir = set("SLIPWAY_DATA_DIR")
        .or_else(|| set("XDG_CACHE_HOME").map(|d| d.join("slipway")))
        .or_else(|| set("HOME").map(|h| h.join(".cache").join("slipway")))
        .ok_or_else(|| {
            refused(anyhow!(
                "no cache directory: set SLIPWAY_DATA_DIR or XDG_CACHE_HOME, or pass --no-cache"
            ))
        })?;
    let dir = std::path::absolute(&dir)
        .with_context(|| format!("cannot make {} absolute", dir.display()))?;
    std::fs::create_dir_all(&dir)
        .map_err(|e| refused(anyhow!("cannot create the cache {}: {e}", dir.display())))?;
    Ok(dir)
}

/// The sandbox, or the refusal to run without one unless `SLIPWAY_ALLOW_UNSANDBOXED=1`.
fn isolation() -> Result<Isolation, Failure> {
    match Isolation::probe() {
        Ok(isolation) => Ok(isolation),
        Err(missing) if slipway_engine::unsandboxed_allowed() => {
            eprintln!(
                "warning: {missing}; SLIPWAY_ALLOW_UNSANDBOXED=1 is set, so the pipeline runs \
                 UNSANDBOXED, as your own user, with access to what you can access"
            );
            Ok(Isolation::None)
        }
        Err(missing) => Err(refused(anyhow!(
            "refusing to run the repository's code without a sandbox: {missing}. Install it \
             (as root: apt-get install bubblewrap passt), or set SLIPWAY_ALLOW_UNSANDBOXED=1 \
             to run it unsandboxed, as your own user"
        ))),
    }
}

/// SIGINT and SIGTERM, handled from when this is made.
struct Signals {
    int: Signal,
    term: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// The next SIGINT or SIGTERM, by name.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}

/// Shows progress until the validation is final; SIGINT (Ctrl-C) or SIGTERM cancels it, and
/// it ends as any cancelled validation does (processes, cgroups, mounts, work directories).
async fn follow(
    store: &Store,
    engine: &Engine,
    id: ValidationId,
    started: Instant,
    signals: &mut Signals,
) -> Result<ValidationRecord, Failure> {
    let tty = std::io::stderr().is_terminal();
    let mut shown: Vec<(StepName, StepStatus)> = Vec::new();
    let mut frame = 0;
    loop {
        let record = store
            .validation(id)
            .await
            .map_err(|e| Failure::Failed(e.into()))?;
        let mut err = std::io::stderr().lock();
        for step in &record.steps {
            let already = shown
                .iter()
                .any(|(n, s)| *n == step.name && *s == step.status);
            if step.status.is_final() && !already && step.status != StepStatus::Skipped {
                let (mark, took) = (mark(step), took(step));
                if tty {
                    let _ = write!(err, "\r\x1b[2K");
                }
                let detail = row_detail(step.detail.as_deref().map(for_cli).as_deref());
                let detail = if detail.is_empty() {
                    detail
                } else {
                    format!("  {detail}")
                };
                let _ = writeln!(
                    err,
                    "{mark} {:<9} {took:>6}  {}{detail}",
                    step.name.as_str(),
                    step.status
                );
                shown.push((step.name, step.status));
            }
        }
        if record.status.is_final() {
            if tty {
                let _ = write!(err, "\r\x1b[2K");
            }
            return Ok(record);
        }
        if tty {
            if let Some(running) = record
                .steps
                .iter()
                .find(|s| s.status == StepStatus::Running)
            {
                let _ = write!(
                    err,
                    "\r\x1b[2K{} {:<9} {:.1}s",
                    SPINNER[frame % SPINNER.len()],
                    running.name.as_str(),
                    started.elapsed().as_secs_f64()
                );
                frame += 1;
            }
        }
        drop(err);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            name = signals.next() => {
                eprintln!("\n{name}: cancelling the validation");
                engine.cancel(id).await.map_err(|e| Failure::Failed(e.into()))?;
            }
        }
    }
}

/// A commit as people name it: `1a2b3c4d5e6f "its subject"`.
async fn describe_commit(repo: &Path, sha: &str) -> String {
    let short = &sha[..sha.len().min(12)];
    let subject = tokio::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["log", "-1", "--format=%s", sha])
        .output()
        .await
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty());
    match subject {
        Some(subject) => format!("commit {short} \"{subject}\""),
        None => format!("commit {short}"),
    }
}

/// What a step's row says of its detail: its first line, cut to fit the table; the whole
/// text is said once, below the table.
fn row_detail(detail: Option<&str>) -> String {
    const WIDTH: usize = 72;
    let first = detail.unwrap_or("").lines().next().unwrap_or("").trim_end();
    let mut row: String = first.chars().take(WIDTH).collect();
    let more = first.chars().count() > WIDTH || detail.is_some_and(|d| d.lines().nth(1).is_some());
    if more {
        row.push_str(" …");
    }
    row
}

/// A message of several lines, each under `indent`.
fn indented(text: &str, indent: &str) -> String {
    text.lines()
        .map(|line| format!("{indent}{line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// An engine message as the CLI says it: advice about a project's settings does not apply here.
fn for_cli(message: &str) -> String {
    use slipway_core::pipeline_source::{NOTHING_TO_VALIDATE, NOTHING_TO_VALIDATE_HERE};
    message.replace(NOTHING_TO_VALIDATE, NOTHING_TO_VALIDATE_HERE)
}

/// A step's outcome as one character.
fn mark(step: &StepRecord) -> &'static str {
    match step.status {
        StepStatus::Passed => "✓",
        StepStatus::Failed | StepStatus::Error => "✗",
        _ => "–",
    }
}

/// How long a step took, once it ended.
fn took(step: &StepRecord) -> String {
    step.duration_ms
        .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
        .unwrap_or_default()
}

/// Every step in order, skipped ones with why.
fn summary(record: &ValidationRecord) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "steps:");
    for step in &record.steps {
        let (mark, took) = (mark(step), took(step));
        let flaky = if step.flaky { " (flaky)" } else { "" };
        // The first line: the full text is said once, below.
        let detail = row_detail(step.detail.as_deref().map(for_cli).as_deref());
        let _ = writeln!(
            err,
            "  {mark} {:<9} {:<9}{flaky} {took:>6}  {detail}",
            step.name.as_str(),
            step.status.as_str()
        );
    }
    if let Some(source) = record.pipeline_source {
        let _ = writeln!(err, "pipeline: {}", source.describe());
    }
    if let (Some(base), Some(sha)) = (&record.base_ref, &record.base_sha) {
        let _ = writeln!(err, "validated merged onto {base} at {sha}");
    }
}

/// The analysis's findings shown: the first few, and how many there were.
const FINDINGS_SHOWN: usize = 20;

fn findings(analysis: &serde_json::Value) {
    let Some(all) = analysis["findings"]
        .as_array()
        .filter(|all| !all.is_empty())
    else {
        return;
    };
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "analysis findings ({}):", all.len());
    for finding in all.iter().take(FINDINGS_SHOWN) {
        let text = |key: &str| finding[key].as_str().unwrap_or_default().to_owned();
        let place = match finding["line"].as_u64() {
            Some(line) => format!("{}:{line}", text("file")),
            None => text("file"),
        };
        let _ = writeln!(
            err,
            "  {place}: {} [{}] {}",
            text("severity"),
            text("rule"),
            text("message")
        );
    }
    if all.len() > FINDINGS_SHOWN {
        let _ = writeln!(err, "  … and {} more", all.len() - FINDINGS_SHOWN);
    }
}

async fn tail(store: &Store, id: ValidationId, step: StepName, lines: usize) -> Vec<String> {
    let all = store
        .logs(id, Some(step), 0, 1_000_000)
        .await
        .unwrap_or_default();
    let skip = all.len().saturating_sub(lines);
    all.into_iter().skip(skip).map(|l| l.line).collect()
}

async fn report(
    store: &Store,
    record: &ValidationRecord,
    elapsed: Duration,
    as_json: bool,
    artifacts: Option<&Path>,
    analysis: Option<serde_json::Value>,
) -> Result<(), Failure> {
    if as_json {
        // The same report as the MCP server's `validate` tool gives.
        let report = slipway_mcp::Report::build(store, record, artifacts, analysis.clone())
            .await
            .map_err(|e| Failure::Failed(e.into()))?;
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("JSON values serialize")
        );
    }
    // What the sandbox could not enforce here (quotas without a cgroup), said once.
    for line in tail(store, record.id, StepName::Checkout, 1_000).await {
        if let Some(note) = line.strip_prefix("sandbox: ") {
            eprintln!("note: {note}");
        }
    }
    summary(record);
    let judged = record
        .steps
        .iter()
        .any(|s| s.name == StepName::Judge && s.started_at.is_some());
    if judged && !as_json {
        eprintln!("judge (the model's opinion):");
        for line in tail(store, record.id, StepName::Judge, 60).await {
            eprintln!("  {line}");
        }
    }
    if let Some(analysis) = &analysis {
        findings(analysis);
    }
    if let Some(dir) = artifacts {
        eprintln!(
            "evidence (browser checks' screenshots, the judge's answer): {}",
            dir.display()
        );
    }
    let short = &record.sha[..record.sha.len().min(12)];
    match record.status {
        ValidationStatus::Passed => {
            eprintln!("passed: {short} in {:.1}s", elapsed.as_secs_f64());
        }
        status => {
            eprintln!("{status}: {short} after {:.1}s", elapsed.as_secs_f64());
            let failing = record
                .steps
                .iter()
                .find(|s| matches!(s.status, StepStatus::Failed | StepStatus::Error));
            // The reason, once: the validation's error, else the failing step's detail.
            let reason = record
                .error
                .as_deref()
                .or(failing.and_then(|s| s.detail.as_deref()));
            if let Some(reason) = reason {
                eprintln!("{}", indented(&for_cli(reason), "  "));
            }
            if let Some(step) = failing {
                eprintln!("  step:      {}", step.name);
                if let Some(command) = &step.command {
                    eprintln!("  command:   {command}");
                }
                if let Some(code) = step.exit_code {
                    eprintln!("  exit code: {code}");
                }
                // Lines the reason above already says are not said again.
                let said: Vec<&str> = reason.map(|r| r.lines().collect()).unwrap_or_default();
                let lines: Vec<String> = tail(store, record.id, step.name, 20)
                    .await
                    .into_iter()
                    .filter(|line| {
                        !said
                            .iter()
                            .any(|s| line.contains(s.trim()) && !s.trim().is_empty())
                    })
                    .collect();
                if !lines.is_empty() {
                    eprintln!("  last lines of its log:");
                    for line in lines {
                        eprintln!("    {line}");
                    }
                }
            }
        }
    }
    Ok(())
}
