//! `slipway worker`: runs queued validations, agent turns and verdict retries from the shared
//! database, with no HTTP listener; any number of them beside one or more `serve`. On SIGTERM
//! or Ctrl-C it takes no new job, lets running ones finish within the grace period
//! (`SLIPWAY_SHUTDOWN_GRACE_SECS`), hands the rest back to the queue and exits 0.

use crate::config::{Config, StoreFlags};
use crate::{engine_setup, open_store, refused, stop_on_signal, Failure};
use anyhow::Context;
use slipway_engine::{Engine, Roles};
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub(crate) struct WorkerArgs {
    #[command(flatten)]
    store: StoreFlags,
    /// Validations run at once in this process (1 to 64) [env:
    /// SLIPWAY_MAX_CONCURRENT_VALIDATIONS] [default: 2]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    concurrency: Option<u32>,
    /// Log format, text or json [env: SLIPWAY_LOG_FORMAT]
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
}

pub(crate) async fn run(args: WorkerArgs) -> Result<(), Failure> {
    let mut config = Config::resolve(args.store, None, args.log_format).map_err(refused)?;
    if let Some(n) = args.concurrency {
        config.max_concurrent_validations = n as usize;
    }
    crate::init_tracing(config.log_format);
    let store = open_store(&config).await?;
    let engine = Engine::new(store.clone(), engine_setup::engine_config(&config)?);
    // Other processes share the database: their leases are theirs until they expire.
    engine
        .reconcile()
        .await
        .context("start-up reconciliation failed")?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let roles = Roles {
        jobs: true,
        intake: false,
    };
    let workers = engine.spawn(roles, shutdown);
    println!(
        "Slipway worker running up to {} validations at once",
        config.max_concurrent_validations
    );
    tracing::info!(
        data_dir = %config.data_dir.display(),
        concurrency = config.max_concurrent_validations,
        "worker started"
    );
    let _ = workers.await;
    store.close().await;
    tracing::info!("worker stopped");
    Ok(())
}
