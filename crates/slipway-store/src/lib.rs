//! Slipway's durable store: SQLite or PostgreSQL through sqlx, with migrations applied on open.
//! Secrets are sealed by the [`vault`] before they reach the database.

mod cache;
mod deliveries;
mod events;
mod locks;
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
mod text;
mod tokens;
mod transient;
pub mod validations;
mod variables;
pub mod vault;
mod workers;
pub use locks::Turn;
pub use workers::WorkerRecord;

pub use deliveries::{Delivery, DeliveryState, Recorded};
pub use events::{Event, EventKind, LiveEvent};
pub use logs::LogLine;
pub use model_usage::ModelUsage;
pub use notifications::{NewTarget, Target, TargetPatch};
pub use overview::{Latest, ProjectSummary, Recent};
pub use pulls::{PullRequest, PullState};
pub use queue::{Job, JobFailure, JobState, NewJob};
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
use sqlx::any::AnyPoolOptions;
use sqlx::AnyConnection;
use sqlx::{AnyPool, Executor, Transaction};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use vault::Vault;

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations-postgres");

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
    #[error("unsupported database URL '{}': use sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE", redact_url(.0))]
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

/// Which database the store runs on. The SQL is one text for both (`$1` placeholders,
/// Unix-millisecond integers, 0/1 flags); the few statements that differ branch on this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One file; may be shared by processes on one machine.
    Sqlite,
    /// PostgreSQL 15 or later, shared by any number of processes and machines.
    Postgres,
}

impl Backend {
    /// The backend a database URL names, or why it names none.
    pub fn of_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }

    fn migrator(self) -> &'static sqlx::migrate::Migrator {
        match self {
            Self::Sqlite => &SQLITE_MIGRATOR,
            Self::Postgres => &POSTGRES_MIGRATOR,
        }
    }
}

/// The store. Cheap to clone: it holds connection pools and shared read caches.
/// Reads use `pool`; writes go through `writer`. On SQLite the writer is a single
/// connection, so that a process's writers wait their turn in a fair async queue instead of
/// in SQLite's sleeping busy handler; on PostgreSQL it is the pool itself.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    writer: AnyPool,
    backend: Backend,
    /// Group-committed webhook intake (see `deliveries.rs`).
    intake: tokio::sync::mpsc::Sender<deliveries::Incoming>,
    vault: Vault,
    projects: Arc<Cached<Arc<[Project]>>>,
    tokens: Arc<Cached<Arc<tokens::LiveTokens>>>,
    events: Arc<events::EventBus>,
    locks: Arc<locks::LocalTurns>,
}

impl Store {
    /// Opens (creating if missing) the database, applies migrations and checks the master key.
    pub async fn open(database_url: &str, key: &MasterKey) -> Result<Self, StoreError> {
        let backend = Backend::of_url(database_url)?;
        let writer = connect(database_url, backend, 1).await?;
        migrate_on(&writer, backend).await?;
        let writer = match backend {
            Backend::Sqlite => writer,
            Backend::Postgres => {
                writer.close().await;
                connect(database_url, backend, 16).await?
            }
        };
        let pool = match backend {
            Backend::Sqlite => connect(database_url, backend, 8).await?,
            Backend::Postgres => writer.clone(),
        };
        let events = Arc::new(events::EventBus::new());
        let store = Self {
            intake: deliveries::spawn_intake(writer.clone(), backend),
            pool,
            writer,
            backend,
            vault: Vault::new(key),
            projects: Arc::new(Cached::new()),
            tokens: Arc::new(Cached::new()),
            events,
            locks: Arc::new(locks::LocalTurns::default()),
        };
        store.check_master_key().await?;
        events::spawn_tail(&store, database_url).await?;
        Ok(store)
    }

    /// Applies pending migrations only (`slipway migrate`); needs no key.
    pub async fn migrate(database_url: &str) -> Result<(), StoreError> {
        let backend = Backend::of_url(database_url)?;
        let pool = connect(database_url, backend, 1).await?;
        migrate_on(&pool, backend).await?;
        pool.close().await;
        Ok(())
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.writer).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.events.stop();
        self.pool.close().await;
        self.writer.close().await;
    }

    /// A write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`),
    /// so that a transaction that reads before it writes cannot fail when another process
    /// committed in between.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.writer.begin().await?,
        })
    }

    /// A project or token changed: other processes drop their cached copies when their
    /// event tail next reads (at once on PostgreSQL, within its poll on SQLite).
    pub(crate) async fn caches_changed(&self) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('cache_generation', $1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(crate::tokens::random_text(12).into_bytes())
        .execute(&self.writer)
        .await?;
        events::announce(self).await
    }

    /// Within a write transaction, makes every process's transactions that take the turn
    /// `name` run one after another (a count checked, then written). SQLite's write
    /// transactions already do; PostgreSQL takes an advisory lock until the commit.
    pub(crate) async fn take_turn(
        &self,
        conn: &mut AnyConnection,
        name: &str,
    ) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(locks::advisory_key(name))
                .execute(conn)
                .await?;
        }
        Ok(())
    }

    /// Within a write transaction, makes concurrent writers of one project's counted rows
    /// (its runs' budgets, its pull requests' numbers) take turns. SQLite's write
    /// transactions already do; PostgreSQL locks the project's row until the commit.
    pub(crate) async fn lock_project(
        &self,
        conn: &mut AnyConnection,
        project: slipway_core::ProjectId,
    ) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT id FROM projects WHERE id = $1 FOR UPDATE")
                .bind(project.0)
                .execute(conn)
                .await?;
        }
        Ok(())
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
                // Two processes opening a new database at once: the first one's value stays.
                sqlx::query(
                    "INSERT INTO meta (key, value) VALUES ('key_check', $1) ON CONFLICT DO NOTHING",
                )
                .bind(blob)
                .execute(&self.writer)
                .await?;
                Box::pin(self.check_master_key()).await
            }
        }
    }
}

/// Applies pending migrations. PostgreSQL's migrator locks; SQLite's does not, so two
/// processes opening a new file at once may both try the same migration: the loser finds it
/// applied when it tries again.
async fn migrate_on(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    match backend.migrator().run(pool).await {
        Err(_) if backend == Backend::Sqlite => {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(backend.migrator().run(pool).await?)
        }
        applied => Ok(applied?),
    }
}

/// The URL as it may be shown: a password in it replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

async fn connect(
    database_url: &str,
    backend: Backend,
    connections: u32,
) -> Result<AnyPool, StoreError> {
    sqlx::any::install_default_drivers();
    let mut url = database_url.to_owned();
    if backend == Backend::Sqlite && !url.contains('?') {
        url.push_str("?mode=rwc");
    }
    let options = AnyPoolOptions::new()
        .max_connections(connections)
        .min_connections(1);
    let options = match backend {
        Backend::Sqlite => options.after_connect(|conn, _| {
            Box::pin(async move {
                sqlite_pragmas(conn).await?;
                Ok(())
            })
        }),
        Backend::Postgres => options.acquire_timeout(Duration::from_secs(30)),
    };
    Ok(options.connect(&url).await?)
}

/// Write-ahead logging (readers never wait on the writer), foreign keys, and a wait of
/// ten seconds for another process's write lock.
async fn sqlite_pragmas(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    conn.execute(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
    )
    .await?;
    Ok(())
}

fn now_millis() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn a_password_in_a_database_url_is_never_shown() {
        assert_eq!(
            redact_url("postgres://slipway:s3cret@db.internal:5432/slipway"),
            "postgres://slipway:***@db.internal:5432/slipway"
        );
        assert_eq!(
            redact_url("postgres://slipway@db/x"),
            "postgres://slipway@db/x"
        );
        assert_eq!(
            redact_url("sqlite:///var/lib/slipway.db"),
            "sqlite:///var/lib/slipway.db"
        );
    }
}
