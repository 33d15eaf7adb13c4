//! The `slipway` binary: parses the command line and wires the parts together.

mod config;
mod validate;

use anyhow::Context;
use clap::{Parser, Subcommand};
use config::{Config, LogFormat, StoreFlags};
use slipway_core::Role;
use slipway_engine::{Engine, EngineConfig};
use slipway_sandbox::Isolation;
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
    /// Run the server: API, migrations applied at start.
    Serve {
        /// Address to listen on [env: SLIPWAY_BIND] [default: 127.0.0.1:8080]
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
        #[command(flatten)]
        store: StoreFlags,
        /// Log format, text or json [env: SLIPWAY_LOG_FORMAT]
        #[arg(long, value_name = "FORMAT")]
        log_format: Option<String>,
    },
    /// Validate one commit of a repository, without a server.
    Validate(validate::ValidateArgs),
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
            store,
            log_format,
        } => {
            let config = Config::resolve(store, bind, log_format).map_err(refused)?;
            init_tracing(config.log_format);
            serve(config).await
        }
        Command::Validate(args) => validate::run(args).await,
        Command::Migrate { store } => {
            let config = Config::resolve(store, None, None).map_err(refused)?;
            ensure_data_dir(&config.data_dir)?;
            Store::migrate(&config.database_url).await?;
            println!("migrations applied to {}", config.database_url);
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
                config.database_url,
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

async fn serve(config: Config) -> Result<(), Failure> {
    let admin_token = config::admin_token_from_env().map_err(refused)?;
    let store = open_store(&config).await?;
    if admin_token.is_none() && store.count_admin_tokens().await? == 0 {
        let new = store.create_token("initial admin", Role::Admin).await?;
        println!("No admin token existed, so one was created; it is shown only this once.");
        println!("admin token: {}", new.token);
    }
    let mut engine_config = EngineConfig::new(config.data_dir.clone());
    engine_config.max_concurrent = config.max_concurrent_validations;
    engine_config.sandbox_ceilings = config::sandbox_ceilings().map_err(refused)?;
    if let Some(days) = std::env::var("SLIPWAY_ARTIFACT_RETENTION_DAYS")
        .ok()
        .filter(|d| !d.is_empty())
    {
        let days: u64 = days.parse().ok().filter(|d| (1..=3_650).contains(d)).ok_or_else(|| {
            refused(anyhow::anyhow!(
                "invalid value '{days}' for SLIPWAY_ARTIFACT_RETENTION_DAYS: expected a whole number of days from 1 to 3650"
            ))
        })?;
        engine_config.artifact_retention = std::time::Duration::from_secs(days * 24 * 3_600);
    }
    engine_config.github_token = std::env::var("GITHUB_TOKEN").ok().filter(|t| !t.is_empty());
    engine_config.public_url = std::env::var("SLIPWAY_PUBLIC_URL")
        .ok()
        .filter(|u| !u.is_empty());
    engine_config.notify_allow_hosts = slipway_core::notify::AllowList::parse(
        &std::env::var("SLIPWAY_NOTIFY_ALLOW_HOSTS").unwrap_or_default(),
    )
    .map_err(|e| refused(anyhow::anyhow!(e)))?;
    engine_config.github = github_client().map_err(refused)?.map(std::sync::Arc::new);
    engine_config.codegen = codegen_config().map_err(refused)?;
    engine_config.models = model_config().map_err(refused)?;
    engine_config.isolation = match Isolation::probe() {
        Ok(isolation) => isolation,
        Err(missing) if slipway_engine::unsandboxed_allowed() => {
            tracing::warn!(
                "{missing}; SLIPWAY_ALLOW_UNSANDBOXED=1 is set, so pull-request code runs \
                 UNISOLATED and can read and change what this user can"
            );
            Isolation::None
        }
        Err(missing) => {
            return Err(refused(anyhow::anyhow!(
                "refusing to run pull-request code without a sandbox: {missing}. \
                 Install it (as root: apt-get install bubblewrap passt, or run \
                 ./scripts/serve.sh, which does), or set SLIPWAY_ALLOW_UNSANDBOXED=1 to run \
                 it unisolated on a machine you are prepared to lose"
            )))
        }
    };
    if let Isolation::Bubblewrap { pasta: None, .. } = &engine_config.isolation {
        tracing::warn!(
            "pasta is not installed: validations get no outbound network (installs fail); \
             apt-get install passt"
        );
    }
    let engine = Engine::new(store.clone(), engine_config);
    engine
        .reconcile()
        .await
        .context("start-up reconciliation failed")?;
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
    })
    .await
    .map_err(refused)?;
    // Signals are handled before anyone is told the server is up.
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let addr = app.local_addr();
    println!("Slipway listening on http://{addr}");
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "server started");

    let workers = engine.spawn_workers(shutdown.clone());
    app.run(shutdown).await.context("the server failed")?;
    let _ = workers.await;
    store.close().await;
    tracing::info!("shutdown complete");
    Ok(())
}

/// The GitHub API client: as a GitHub App when `GITHUB_APP_ID` and
/// `GITHUB_APP_PRIVATE_KEY_PATH` are set, else with `GITHUB_TOKEN`, else none.
fn github_client() -> anyhow::Result<Option<slipway_forge::github::GitHub>> {
    use slipway_forge::github::GitHub;
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let api = var("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into());
    match (var("GITHUB_APP_ID"), var("GITHUB_APP_PRIVATE_KEY_PATH")) {
        (Some(id), Some(path)) => {
            let pem = std::fs::read(&path).with_context(|| {
                format!("cannot read GITHUB_APP_PRIVATE_KEY_PATH={path}: give the app's private key (.pem)")
            })?;
            let client = GitHub::app(&api, &id, &pem).with_context(|| {
                format!("invalid value for GITHUB_APP_PRIVATE_KEY_PATH={path}: expected an RSA private key in PEM")
            })?;
            Ok(Some(client))
        }
        (Some(_), None) | (None, Some(_)) => anyhow::bail!(
            "set both GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY_PATH to act as a GitHub App, or neither"
        ),
        (None, None) => Ok(var("GITHUB_TOKEN").map(|token| GitHub::new(&api, &token))),
    }
}

/// The Codegen API: `CODEGEN_API_TOKEN` and `CODEGEN_ORG_ID` together, or neither.
fn codegen_config() -> anyhow::Result<Option<slipway_engine::CodegenConfig>> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let base_url = var("CODEGEN_API_URL").unwrap_or_else(|| "https://api.codegen.com".into());
    match (var("CODEGEN_API_TOKEN"), var("CODEGEN_ORG_ID")) {
        (Some(token), Some(org)) => {
            let org_id = org.parse().map_err(|_| {
                anyhow::anyhow!(
                    "invalid value for CODEGEN_ORG_ID={org}: expected the organization's number"
                )
            })?;
            Ok(Some(slipway_engine::CodegenConfig {
                base_url,
                token,
                org_id,
                read_limit: slipway_engine::RateLimit::CODEGEN_READS,
            }))
        }
        (Some(_), None) | (None, Some(_)) => {
            anyhow::bail!("set both CODEGEN_API_TOKEN and CODEGEN_ORG_ID to use the Codegen agent, or neither")
        }
        (None, None) => Ok(None),
    }
}

/// The model APIs of `[judge]`: `GEMINI_*` and `SLIPWAY_LLM_*` (see DESIGN.md §3).
pub(crate) fn model_config() -> anyhow::Result<slipway_engine::Models> {
    slipway_engine::Models::from_env(|name| std::env::var(name).ok()).map_err(anyhow::Error::msg)
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
fn stop_on_signal(shutdown: CancellationToken) -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM can be handled");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT can be handled");
    async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received; finishing requests in flight"),
            _ = int.recv() => tracing::info!("SIGINT received; finishing requests in flight"),
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

async fn open_store(config: &Config) -> Result<Store, Failure> {
    ensure_data_dir(&config.data_dir)?;
    let key = master_key(&config.data_dir)?;
    Ok(Store::open(&config.database_url, &key).await?)
}

pub(crate) fn init_tracing(format: LogFormat) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let filter: Targets = std::env::var("SLIPWAY_LOG")
        .ok()
        .and_then(|spec| spec.parse().ok())
        .unwrap_or_else(|| "info,sqlx=warn".parse().expect("the default filter parses"));
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
