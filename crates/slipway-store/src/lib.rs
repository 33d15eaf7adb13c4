//! Slipway's durable store: SQLite through sqlx, with migrations applied on open.
//! Secrets are sealed by the [`vault`] before they reach the database.

mod cache;
mod deliveries;
mod events;
mod logs;
mod model_usage;
mod notifications;
mod overview;
mod projects;
mod pulls;
pub mod queue;
mod runs;
mod secrets;
mod sessions;
mod settings;
mod tokens;
pub mod validations;
mod variables;
pub mod vault;

pub use deliveries::{Delivery, Recorded};
pub use events::{Event, LiveEvent};
pub use logs::LogLine;
pub use model_usage::ModelUsage;
pub use notifications::{NewTarget, Target, TargetPatch};
pub use overview::{Latest, ProjectSummary, Recent};
pub use pulls::PullRequest;
pub use queue::{Job, JobFailure, NewJob};
pub use runs::{FixAttempt, NewRun, RunChange, RunMessage, RunRecord, RunRefused};
pub use secrets::{ImportOutcome, SecretMeta, SecretWrite};
pub use sessions::Session;
pub use tokens::{hash_token, NewToken, TokenRecord};
pub use validations::{
    Base, NewValidation, StepRecord, StepUpdate, ValidationFilter, ValidationRecord, VALIDATION_JOB,
};
pub use variables::Variable;
pub use vault::{KeyError, MasterKey};

use cache::Cached;
use slipway_core::Project;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use vault::Vault;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

const KEY_CHECK_PLAINTEXT: &[u8] = b"slipway master key check v1";
const KEY_CHECK_AAD: &[u8] = b"slipway:key-check";

/// What a caller of the store may branch on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("the master key does not match the key the stored secrets were encrypted with; start with the original SLIPWAY_MASTER_KEY (or key file) — nothing was changed")]
    WrongMasterKey,
    #[error("unsupported database URL '{0}': use sqlite://PATH (PostgreSQL is not supported yet)")]
    UnsupportedUrl(String),
    #[error(transparent)]
    Undecryptable(#[from] vault::Undecryptable),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored settings are unreadable: {0}")]
    Corrupt(String),
    #[error("the database could not be written: {0}")]
    Write(String),
}

/// The store. Cheap to clone: it holds connection pools and shared read caches.
/// Reads use `pool`; every write goes through `writer`, a single connection, so that writers
/// wait their turn in a fair async queue instead of in SQLite's sleeping busy handler.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    writer: SqlitePool,
    /// Group-committed webhook intake (see `deliveries.rs`).
    intake: tokio::sync::mpsc::Sender<deliveries::Incoming>,
    vault: Vault,
    projects: Arc<Cached<Arc<[Project]>>>,
    tokens: Arc<Cached<Arc<tokens::LiveTokens>>>,
    events: Arc<events::EventBus>,
}

impl Store {
    /// Opens (creating if missing) the database, applies migrations and checks the master key.
    pub async fn open(database_url: &str, key: &MasterKey) -> Result<Self, StoreError> {
        let writer = connect(database_url, 1).await?;
        MIGRATOR.run(&writer).await?;
        let store = Self {
            pool: connect(database_url, 8).await?,
            intake: deliveries::spawn_intake(writer.clone()),
            writer,
            vault: Vault::new(key),
            projects: Arc::new(Cached::new()),
            tokens: Arc::new(Cached::new()),
            events: Arc::new(events::EventBus::new()),
        };
        store.check_master_key().await?;
        Ok(store)
    }

    /// Applies pending migrations only (`slipway migrate`); needs no key.
    pub async fn migrate(database_url: &str) -> Result<(), StoreError> {
        let pool = connect(database_url, 1).await?;
        MIGRATOR.run(&pool).await?;
        pool.close().await;
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.writer).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    /// A known value sealed at first open proves, on every later open, that the key is the same.
    async fn check_master_key(&self) -> Result<(), StoreError> {
        let stored: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'key_check'")
                .fetch_optional(&self.pool)
                .await?;
        match stored {
            Some(blob) if blob.len() > 24 => {
                let (nonce, ciphertext) = blob.split_at(24);
                match self.vault.open(nonce, ciphertext, KEY_CHECK_AAD) {
                    Ok(plain) if plain == KEY_CHECK_PLAINTEXT => Ok(()),
                    _ => Err(StoreError::WrongMasterKey),
                }
            }
            Some(_) => Err(StoreError::Corrupt(
                "the key check value is truncated".into(),
            )),
            None => {
                let (mut blob, ciphertext) = self.vault.seal(KEY_CHECK_PLAINTEXT, KEY_CHECK_AAD);
                blob.extend_from_slice(&ciphertext);
                sqlx::query("INSERT INTO meta (key, value) VALUES ('key_check', ?)")
                    .bind(blob)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }
        }
    }
}

async fn connect(database_url: &str, connections: u32) -> Result<SqlitePool, StoreError> {
    if !database_url.starts_with("sqlite:") {
        return Err(StoreError::UnsupportedUrl(database_url.to_owned()));
    }
    let options = SqliteConnectOptions::from_str(database_url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    Ok(SqlitePoolOptions::new()
        .max_connections(connections)
        .min_connections(1)
        .connect_with(options)
        .await?)
}

fn now_millis() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
