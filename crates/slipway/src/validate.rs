//! `slipway validate`: one validation of one commit, without a server, on a temporary
//! store; progress on stderr, an optional JSON report on stdout.

use crate::{refused, Failure};
use anyhow::{anyhow, Context};
use serde_json::json;
use slipway_core::validation::{StepName, StepStatus, ValidationStatus};
use slipway_core::{PipelineConfig, ProjectDraft, ValidationId};
use slipway_engine::{git, Engine, EngineConfig, Target};
use slipway_store::{MasterKey, Store, ValidationRecord};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};
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
    /// Pipeline file (.slipway.toml format) used when the repository has none
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the report as JSON on stdout
    #[arg(long)]
    json: bool,
}

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

pub async fn run(args: ValidateArgs) -> Result<(), Failure> {
    let work = tempfile::tempdir().context("cannot create a temporary directory")?;
    let data = work.path().join("data");
    crate::ensure_data_dir(&data)?;
    let key = MasterKey::load_or_create(&data.join("master.key")).map_err(anyhow::Error::from)?;
    let store = Store::open(
        &format!("sqlite://{}", data.join("slipway.db").display()),
        &key,
    )
    .await
    .map_err(|e| Failure::Failed(e.into()))?;

    let github_token = std::env::var("GITHUB_TOKEN").ok().filter(|t| !t.is_empty());
    let is_url = args.target.contains("://") || args.target.starts_with("git@");
    let repo = if is_url {
        args.target.clone()
    } else {
        let path = std::fs::canonicalize(&args.target)
            .map_err(|e| refused(anyhow!("cannot read {}: {e}", args.target)))?;
        if git::resolve_local(&path, "HEAD").await.is_err() {
            return Err(refused(anyhow!(
                "{} is not a git repository with a commit; give the path of one, or a URL",
                path.display()
            )));
        }
        path.display().to_string()
    };
    let target = match (&args.branch, &args.rev) {
        (Some(branch), _) => Target::Branch(branch.clone()),
        (None, Some(rev)) => Target::Sha(rev.clone()),
        (None, None) if is_url => Target::Sha(
            git::Git::new(github_token.as_deref())
                .remote_head(&repo)
                .await
                .map_err(|e| refused(e.into()))?,
        ),
        (None, None) => {
            let path = std::path::Path::new(&repo);
            if git::is_dirty(path).await {
                eprintln!("note: uncommitted changes are not validated; HEAD is");
            }
            Target::Sha(
                git::resolve_local(path, "HEAD")
                    .await
                    .map_err(|e| refused(e.into()))?,
            )
        }
    };

    let project = store
        .create_project(&ProjectDraft {
            name: "validate".into(),
            description: String::new(),
            repo,
            default_branch: "main".into(),
        })
        .await
        .map_err(|e| Failure::Failed(e.into()))?;
    if let Some(file) = &args.config {
        let text = std::fs::read_to_string(file)
            .map_err(|e| refused(anyhow!("cannot read {}: {e}", file.display())))?;
        let pipeline = PipelineConfig::from_toml(&file.display().to_string(), &text)
            .map_err(|e| refused(e.into()))?;
        let mut settings = store
            .settings(project.id)
            .await
            .map_err(|e| Failure::Failed(e.into()))?;
        settings.pipeline = pipeline;
        store
            .put_settings(project.id, &settings)
            .await
            .map_err(|e| Failure::Failed(e.into()))?;
    }

    let mut config = EngineConfig::new(data);
    if let Err(missing) = slipway_sandbox::Isolation::probe() {
        eprintln!(
            "warning: {missing}; the pipeline runs UNSANDBOXED, as your own user, with access \
             to what you can access"
        );
    }
    config.max_concurrent = 1;
    config.github_token = github_token;
    let engine = Engine::new(store.clone(), config);
    let record = engine
        .submit(&project, target)
        .await
        .map_err(|e| refused(anyhow!("{e}")))?;
    let shutdown = CancellationToken::new();
    let workers = engine.spawn_workers(shutdown.clone());

    let started = Instant::now();
    let done = follow(&store, &engine, record.id, started).await?;
    shutdown.cancel();
    let _ = workers.await;

    report(&store, &done, started.elapsed(), args.json).await?;
    match done.status {
        ValidationStatus::Passed => Ok(()),
        ValidationStatus::Failed => Err(Failure::Exit(1)),
        _ => Err(Failure::Exit(2)),
    }
}

/// Shows progress until the validation is final; Ctrl-C cancels it.
async fn follow(
    store: &Store,
    engine: &Engine,
    id: ValidationId,
    started: Instant,
) -> Result<ValidationRecord, Failure> {
    let tty = std::io::stderr().is_terminal();
    let mut shown: Vec<(StepName, StepStatus)> = Vec::new();
    let mut frame = 0;
    let mut interrupt = Box::pin(tokio::signal::ctrl_c());
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
                let mark = match step.status {
                    StepStatus::Passed => "✓",
                    StepStatus::Failed | StepStatus::Error => "✗",
                    _ => "–",
                };
                let took = step
                    .duration_ms
                    .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
                    .unwrap_or_default();
                if tty {
                    let _ = write!(err, "\r\x1b[2K");
                }
                let detail = step
                    .detail
                    .as_deref()
                    .map(|d| format!("  {d}"))
                    .unwrap_or_default();
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
            _ = &mut interrupt => {
                eprintln!("\ninterrupted: cancelling the validation");
                engine.cancel(id).await.map_err(|e| Failure::Failed(e.into()))?;
                interrupt = Box::pin(tokio::signal::ctrl_c());
            }
        }
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
) -> Result<(), Failure> {
    if as_json {
        let mut steps = Vec::new();
        for step in &record.steps {
            steps.push(json!({
                "name": step.name,
                "status": step.status,
                "duration_ms": step.duration_ms,
                "exit_code": step.exit_code,
                "log_tail": tail(store, record.id, step.name, 20).await.join("\n"),
            }));
        }
        let report = json!({
            "id": record.id,
            "status": record.status,
            "sha": record.sha,
            "steps": steps,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("JSON values serialize")
        );
    }
    let short = &record.sha[..record.sha.len().min(12)];
    match record.status {
        ValidationStatus::Passed => {
            eprintln!("passed: {short} in {:.1}s", elapsed.as_secs_f64());
        }
        status => {
            eprintln!("{status}: {short} after {:.1}s", elapsed.as_secs_f64());
            if let Some(error) = &record.error {
                eprintln!("  {error}");
            }
            let failing = record
                .steps
                .iter()
                .find(|s| matches!(s.status, StepStatus::Failed | StepStatus::Error));
            if let Some(step) = failing {
                eprintln!("  step:      {}", step.name);
                if let Some(command) = &step.command {
                    eprintln!("  command:   {command}");
                }
                if let Some(code) = step.exit_code {
                    eprintln!("  exit code: {code}");
                }
                eprintln!("  last lines of its log:");
                for line in tail(store, record.id, step.name, 20).await {
                    eprintln!("    {line}");
                }
            }
        }
    }
    Ok(())
}
