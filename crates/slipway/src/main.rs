//! The `slipway` binary: parses the command line and wires the parts together.

mod config;
mod engine_setup;
mod mcp;
mod validate;
mod worker;

use anyhow::Context;
use clap::{Parser, Subcommand};
use config::{Config, LogFormat, StoreFlags};
pub(crate) use engine_setup::model_config;
use slipway_core::Role;
use slipway_engine::{Engine, Roles};
use slipway_server::{App, ServerConfig};
use slipway_store::{MasterKey, Store, StoreError};
use std::path::Path;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "slipway",
    version,
    about = "Goal in plain words to a validated, merged pull request"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: API, dashboard, webhooks and (unless --workers 0) jobs; migrations
    /// applied at start.
    Serve {
        /// Address to listen on [env: SLIPWAY_BIND] [default: 127.0.0.1:8080]
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
        /// Validations run at once in this process (0 to 64); 0 runs no jobs at all, for
        /// `slipway worker` processes to run them [env: SLIPWAY_MAX_CONCURRENT_VALIDATIONS]
        /// [default: 2]
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=64))]
        workers: Option<u32>,
        #[command(flatten)]
        store: StoreFlags,
        /// Log format, text or json [env: SLIPWAY_LOG_FORMAT]
        #[arg(long, value_name = "FORMAT")]
        log_format: Option<String>,
    },
    /// Run queued validations and agent turns from the database, without HTTP.
    Worker(worker::WorkerArgs),
    /// Validate one commit of a repository, without a server.
    Validate(validate::ValidateArgs),
    /// Serve the MCP tools on stdin and stdout: coding agents validate local repositories.
    Mcp(mcp::McpArgs),
    /// Apply pending database migrations and exit.
    Migrate {
        #[command(flatten)]
        store: StoreFlags,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it once.
    Create {
        /// What the token may do.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// A name to recognise it by.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Make a new data directory (and database) if there is none: without it, the
        /// default ./.slipway must exist already, so that a token is never created in a
        /// database no server uses.
        #[arg(long)]
        new_data_dir: bool,
        #[command(flatten)]
        store: StoreFlags,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    text.parse()
}

/// Why the process stops: refused at start because of bad input or state (exit 2),
/// or a failure while running (exit 1).
pub(crate) enum Failure {
    Refused(anyhow::Error),
    Failed(anyhow::Error),
    /// Exit with this code; everything worth saying was said.
    Exit(u8),
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure::Failed(error)
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::WrongMasterKey | StoreError::UnsupportedUrl(_) => {
                Failure::Refused(error.into())
            }
            other => Failure::Failed(other.into()),
        }
    }
}

pub(crate) fn refused(error: anyhow::Error) -> Failure {
    Failure::Refused(error)
}

fn main() -> ExitCode {
    standard_streams_open();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
        Err(Failure::Exit(code)) => ExitCode::from(code),
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Serve {
            bind,
            workers,
            store,
            log_format,
        } => {
            let config = Config::resolve(store, bind, log_format).map_err(refused)?;
            init_tracing(config.log_format);
            serve(config, workers.map(|n| n as usize)).await
        }
        Command::Worker(args) => worker::run(args).await,
        Command::Validate(args) => validate::run(args).await,
        Command::Mcp(args) => {
            // The SDK's per-message lines are noise on an agent's stderr.
            init_tracing_with(LogFormat::Text, "info,sqlx=warn,rmcp=warn");
            mcp::run(args).await
        }
        Command::Migrate { store } => {
            let config = Config::resolve(store, None, None).map_err(refused)?;
            ensure_data_dir(&config.data_dir)?;
            Store::migrate(&config.database_url).await?;
            println!(
                "migrations applied to {}",
                slipway_store::redact_url(&config.database_url)
            );
            Ok(())
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    role,
                    name,
                    new_data_dir,
                    store,
                },
        } => {
            let config = Config::resolve(store, None, None).map_err(refused)?;
            if config.data_dir_is_default && !config.data_dir.exists() && !new_data_dir {
                return Err(refused(anyhow::anyhow!(
                    "there is no Slipway data directory at {} (the default, ./.slipway in the \
                     current directory), so no server uses it. Run this where `slipway serve` \
                     runs, or name the server's data directory with --data-dir (or \
                     SLIPWAY_DATA_DIR); to start a new one here, add --new-data-dir",
                    config.data_dir.display()
                )));
            }
            eprintln!(
                "using the database {} (data directory {})",
                slipway_store::redact_url(&config.database_url),
                config.data_dir.display()
            );
            let store = open_store(&config).await?;
            let new = store.create_token(&name, role).await?;
            store.close().await;
            println!("{}", new.token);
            eprintln!(
                "created {} token '{}' (id {}); it is shown only this once",
                new.record.role, new.record.name, new.record.id
            );
            Ok(())
        }
    }
}

/// `serve`: the API, the dashboard, webhooks; and jobs, `workers` at once (the configured
/// concurrency when `None`; none at all with 0).
async fn serve(mut config: Config, workers: Option<usize>) -> Result<(), Failure> {
    let admin_token = config::admin_token_from_env().map_err(refused)?;
    let relay = slipway_server::relay::RelayConfig::from_env(|name| std::env::var(name).ok())
        .map_err(|e| refused(anyhow::anyhow!(e)))?;
    let store = open_store(&config).await?;
    if admin_token.is_none() && store.count_admin_tokens().await? == 0 {
        let new = store.create_token("initial admin", Role::Admin).await?;
        println!("No admin token existed, so one was created; it is shown only this once.");
        println!("admin token: {}", new.token);
    }
    let runs_jobs = workers != Some(0);
    if let Some(n) = workers.filter(|n| *n > 0) {
        config.max_concurrent_validations = n;
    }
    let engine = Engine::new(store.clone(), engine_setup::engine_config(&config)?);
    if runs_jobs {
        // What this process's last run left behind (its leases, cells, workspaces); a server
        // without workers holds none, and must not touch a worker's on the same data directory.
        engine
            .reconcile()
            .await
            .context("start-up reconciliation failed")?;
    }
    let app = App::build(ServerConfig {
        bind: config.bind,
        store: store.clone(),
        engine: engine.clone(),
        admin_token,
        webhook_secret: std::env::var("GITHUB_WEBHOOK_SECRET")
            .ok()
            .filter(|s| !s.is_empty()),
        metrics_token: std::env::var("SLIPWAY_METRICS_TOKEN")
            .ok()
            .filter(|s| !s.is_empty()),
        relay,
    })
    .await
    .map_err(refused)?;
    // Signals are handled before anyone is told the server is up.
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let addr = app.local_addr();
    println!("Slipway listening on http://{addr}");
    tracing::info!(%addr, data_dir = %config.data_dir.display(), runs_jobs, "server started");

    let roles = Roles {
        jobs: runs_jobs,
        intake: true,
    };
    let workers = engine.spawn(roles, shutdown.clone());
    app.run(shutdown).await.context("the server failed")?;
    let _ = workers.await;
    store.close().await;
    tracing::info!("shutdown complete");
    Ok(())
}

/// Descriptors 0–2 are open (on /dev/null when whoever started Slipway closed them), so that
/// none of Slipway's own files gets their numbers: a child's standard streams are put there,
/// which would overwrite such a file in the child (the sandbox's namespaces, say).
fn standard_streams_open() {
    // Whatever else Slipway inherited is no child's business (nor, through them, the
    // sandbox's): close-on-exec from the start.
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: marks descriptors close-on-exec; no memory is involved.
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC);
    }
    for fd in 0..=2 {
        // SAFETY: fcntl only asks whether the descriptor is open.
        let open = unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1;
        if !open {
            // The lowest free number: this one. Kept open for the process's life.
            if let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                std::mem::forget(null);
            }
        }
    }
}

/// Handles SIGINT and SIGTERM from now on; the future cancels `shutdown` on either.
pub(crate) fn stop_on_signal(shutdown: CancellationToken) -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM can be handled");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT can be handled");
    async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received; finishing the work in flight"),
            _ = int.recv() => tracing::info!("SIGINT received; finishing the work in flight"),
        }
        shutdown.cancel();
    }
}

/// Creates the data directory, readable by its owner only.
pub(crate) fn ensure_data_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    }
    Ok(())
}

fn master_key(data_dir: &Path) -> Result<MasterKey, Failure> {
    let key = match std::env::var("SLIPWAY_MASTER_KEY") {
        Ok(text) => MasterKey::from_base64(&text).map_err(|e| {
            anyhow::anyhow!("invalid value for environment variable SLIPWAY_MASTER_KEY: {e}")
        }),
        Err(_) => {
            MasterKey::load_or_create(&data_dir.join("master.key")).map_err(anyhow::Error::from)
        }
    };
    key.map_err(refused)
}

pub(crate) async fn open_store(config: &Config) -> Result<Store, Failure> {
    ensure_data_dir(&config.data_dir)?;
    let key = master_key(&config.data_dir)?;
    Ok(Store::open(&config.database_url, &key).await?)
}

pub(crate) fn init_tracing(format: LogFormat) {
    init_tracing_with(format, "info,sqlx=warn")
}

/// rmcp logs each MCP session's id at INFO; an id lets whoever reads it into the session
/// (with its token), so that module says only warnings unless `SLIPWAY_LOG` names rmcp.
const MCP_SESSIONS: &str = "rmcp::transport::streamable_http_server::session";

/// `spec` (`SLIPWAY_LOG`) when it parses, else `default`; MCP session ids left out.
fn log_filter(spec: Option<&str>, default: &str) -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::Targets;
    let filter: Targets = spec
        .and_then(|spec| spec.parse().ok())
        .unwrap_or_else(|| default.parse().expect("the default filter parses"));
    if spec.is_some_and(|spec| spec.contains("rmcp")) {
        return filter;
    }
    filter.with_target(MCP_SESSIONS, tracing::Level::WARN)
}

/// Tracing on stderr, filtered by `SLIPWAY_LOG`, else by `default`.
fn init_tracing_with(format: LogFormat, default: &str) {
    use tracing_subscriber::prelude::*;
    let filter = log_filter(std::env::var("SLIPWAY_LOG").ok().as_deref(), default);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn mcp_session_ids_are_not_logged_unless_asked_for() {
        let local = format!("{MCP_SESSIONS}::local");
        for spec in [None, Some("info"), Some("debug")] {
            let filter = log_filter(spec, "info,sqlx=warn");
            assert!(!filter.would_enable(&local, &Level::INFO), "{spec:?}");
            assert!(filter.would_enable(&local, &Level::WARN), "{spec:?}");
            assert!(
                filter.would_enable("slipway_server", &Level::INFO),
                "{spec:?}"
            );
        }
        let asked = log_filter(Some("info,rmcp=debug"), "info");
        assert!(asked.would_enable(&local, &Level::INFO));
    }
}
