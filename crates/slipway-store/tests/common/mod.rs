//! The conformance suite's databases: every store test runs once on SQLite and once on
//! PostgreSQL. `SLIPWAY_TEST_POSTGRES_URL` names a server the tests may create databases on
//! (`scripts/test.sh` starts a throwaway one); each test gets a database of its own. Without
//! it the PostgreSQL half says why and passes, except under CI (`CI=true`), where it fails.

#![allow(dead_code)]

use std::path::PathBuf;

/// Runs each named test (an `async fn(Db)`) on both backends, as `sqlite::NAME` and
/// `postgres::NAME`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::common::Db::sqlite()).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                if let Some(db) = super::common::Db::postgres().await {
                    super::$name(db).await;
                }
            })*
        }
    };
}

/// One test's database, and a directory for its files.
pub struct Db {
    pub url: String,
    pub dir: tempfile::TempDir,
    pub postgres: bool,
}

impl Db {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("slipway.db").display());
        Self {
            url,
            dir,
            postgres: false,
        }
    }

    /// A new, empty database on the test server; `None` (with the reason printed) when no
    /// server is configured outside CI.
    pub async fn postgres() -> Option<Self> {
        let Ok(server) = std::env::var("SLIPWAY_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "SLIPWAY_TEST_POSTGRES_URL is not set: under CI the PostgreSQL half of the \
                 store's suite must run (scripts/test.sh starts a throwaway server)"
            );
            eprintln!(
                "skipped on PostgreSQL: SLIPWAY_TEST_POSTGRES_URL is not set (scripts/test.sh \
                 starts a throwaway server and sets it)"
            );
            return None;
        };
        Some(Self::postgres_on(&server).await)
    }

    async fn postgres_on(server: &str) -> Self {
        use sqlx::Connection;
        let name = format!("slipway_test_{}", random_suffix());
        let mut admin = sqlx::PgConnection::connect(server).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        let base = server.rsplit_once('/').map_or(server, |(base, _)| base);
        Self {
            url: format!("{base}/{name}"),
            dir: tempfile::tempdir().unwrap(),
            postgres: true,
        }
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("key")
    }

    /// A connection pool of its own on the same database, for raw SQL.
    pub async fn raw(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        sqlx::AnyPool::connect(&self.url).await.unwrap()
    }

    /// Every file the database keeps its data in, after making it write everything out.
    pub async fn files(&self) -> Vec<PathBuf> {
        if !self.postgres {
            return files_below(self.dir.path());
        }
        let data = std::env::var("SLIPWAY_TEST_POSTGRES_DATA")
            .expect("SLIPWAY_TEST_POSTGRES_DATA names the test server's data directory");
        let raw = self.raw().await;
        sqlx::query("CHECKPOINT").execute(&raw).await.unwrap();
        let oid: String = sqlx::query_scalar(
            "SELECT oid::text FROM pg_database WHERE datname = current_database()",
        )
        .fetch_one(&raw)
        .await
        .unwrap();
        let data = PathBuf::from(data);
        let mut files = files_below(&data.join("base").join(oid));
        files.extend(files_below(&data.join("pg_wal")));
        files
    }
}

fn files_below(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_below(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
