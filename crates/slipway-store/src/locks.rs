//! Turns and claims shared by every process on the database: leases on named rows (with
//! an owner and an expiry, so a dead holder's lease runs out), the poller's once-per-interval
//! claim built on them, and merge turns: a PostgreSQL advisory lock held on a connection of
//! its own (it dies with its session), or on SQLite a renewed lease row. Within a process,
//! waiters of one turn queue on a fair mutex first.

use crate::{now_millis, Backend, Store, StoreError};
use sha2::{Digest, Sha256};
use slipway_core::ProjectId;
use sqlx::pool::PoolConnection;
use sqlx::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OwnedMutexGuard;

/// A SQLite merge turn's lease: renewed every third of it while held.
const TURN_LEASE: Duration = Duration::from_secs(60);
/// How often a SQLite waiter tries again for a turn another process holds.
const TURN_RETRY: Duration = Duration::from_millis(50);

/// This process's queue per turn name.
#[derive(Default)]
pub(crate) struct LocalTurns {
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl LocalTurns {
    fn of(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.turns.lock().expect("turns lock");
        turns.entry(name.to_owned()).or_default().clone()
    }
}

/// A held turn; dropping it gives the turn to the next process or task.
pub struct Turn {
    _local: OwnedMutexGuard<()>,
    held: Option<Held>,
}

enum Held {
    Advisory {
        conn: PoolConnection<Any>,
        key: i64,
    },
    Lease {
        store: Store,
        name: String,
        owner: String,
        renew: tokio::task::JoinHandle<()>,
    },
}

impl Held {
    async fn release(self) {
        match self {
            Held::Advisory { mut conn, key } => {
                let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(key)
                    .execute(&mut *conn)
                    .await;
                if unlocked.is_err() {
                    // Closing the session releases its locks too.
                    let _ = conn.close().await;
                }
            }
            Held::Lease {
                store,
                name,
                owner,
                renew,
            } => {
                renew.abort();
                if let Err(error) = store.release_lease(&name, &owner).await {
                    tracing::warn!(%error, name, "a turn's lease was not released; it expires");
                }
            }
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            tokio::spawn(held.release());
        }
    }
}

/// A stable 64-bit key for a name (PostgreSQL advisory locks are numbered).
pub(crate) fn advisory_key(name: &str) -> i64 {
    let digest = Sha256::digest(name.as_bytes());
    i64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

impl Store {
    /// Waits for the turn to merge into `base` of `project`: one merge into a base at a
    /// time across every process, so that the next one sees the base this one made.
    pub async fn merge_turn(&self, project: ProjectId, base: &str) -> Result<Turn, StoreError> {
        self.turn(&format!("merge:{}:{base}", project.0)).await
    }

    /// Waits for the named turn (see [`Store::merge_turn`]).
    pub async fn turn(&self, name: &str) -> Result<Turn, StoreError> {
        let local = self.locks.of(name).lock_owned().await;
        let held = match self.backend {
            Backend::Postgres => {
                let key = advisory_key(name);
                let mut conn = self.writer.acquire().await?;
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(key)
                    .execute(&mut *conn)
                    .await?;
                Held::Advisory { conn, key }
            }
            Backend::Sqlite => {
                let owner = crate::tokens::random_text(12);
                while !self.hold_lease(name, &owner, TURN_LEASE).await? {
                    tokio::time::sleep(TURN_RETRY).await;
                }
                let renew = {
                    let (store, name, owner) = (self.clone(), name.to_owned(), owner.clone());
                    tokio::spawn(async move {
                        loop {
                            tokio::time::sleep(TURN_LEASE / 3).await;
                            if !matches!(
                                store.hold_lease(&name, &owner, TURN_LEASE).await,
                                Ok(true)
                            ) {
                                tracing::error!(name, "a held turn's lease could not be renewed");
                            }
                        }
                    })
                };
                Held::Lease {
                    store: self.clone(),
                    name: name.to_owned(),
                    owner,
                    renew,
                }
            }
        };
        Ok(Turn {
            _local: local,
            held: Some(held),
        })
    }

    /// Takes or renews the lease `name` for `owner` until `ttl` from now; `false` while
    /// another owner's lease has not expired.
    pub async fn hold_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = now_millis();
        let held: Option<String> = sqlx::query_scalar(
            "INSERT INTO leases (name, owner, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,
                                              expires_at = excluded.expires_at
             WHERE leases.owner = excluded.owner OR leases.expires_at <= $4
             RETURNING owner",
        )
        .bind(name)
        .bind(owner)
        .bind(now + ttl.as_millis() as i64)
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        Ok(held.is_some())
    }

    /// Gives up `owner`'s lease `name` (nothing when it is no longer theirs).
    pub async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND owner = $2")
            .bind(name)
            .bind(owner)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Claims the current `every` of the periodic task `name` for this caller: `true` for
    /// the first caller of any process in each interval (so a poller shared by several
    /// servers runs once per interval), `false` for the others.
    pub async fn claim_interval(&self, name: &str, every: Duration) -> Result<bool, StoreError> {
        // A little short of the interval, so that the claimer's next tick finds it free.
        let hold = every.saturating_sub(every / 10);
        let claimer = crate::tokens::random_text(12);
        self.hold_lease(&format!("interval:{name}"), &claimer, hold)
            .await
    }
}
