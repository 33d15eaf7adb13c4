//! API tokens. A token is shown once at creation; only its SHA-256 is stored.

use crate::{from_millis, now_millis, Store, StoreError};
use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};
use slipway_core::{Role, TokenId};
use std::collections::HashMap;
use std::sync::Arc;
use time::OffsetDateTime;

const TOKEN_PREFIX: &str = "slw_";

/// Live tokens by the SHA-256 of their plaintext.
pub(crate) type LiveTokens = HashMap<[u8; 32], TokenRecord>;

/// A stored token, without its secret part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    pub id: TokenId,
    pub name: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A token just created: the only moment its plaintext exists.
#[derive(Debug)]
pub struct NewToken {
    pub record: TokenRecord,
    pub token: String,
}

/// The stored form of a token. Tokens carry 256 random bits, so a plain hash suffices.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    name: String,
    role: String,
    created_at: i64,
}

/// A live token's row: its hash, and the token.
#[derive(sqlx::FromRow)]
struct LiveTokenRow {
    hash: Vec<u8>,
    #[sqlx(flatten)]
    token: TokenRow,
}

impl TryFrom<TokenRow> for TokenRecord {
    type Error = StoreError;

    fn try_from(row: TokenRow) -> Result<Self, StoreError> {
        Ok(TokenRecord {
            id: TokenId(row.id),
            name: row.name,
            role: row.role.parse().map_err(StoreError::Corrupt)?,
            created_at: from_millis(row.created_at),
        })
    }
}

/// `bytes` random bytes from the OS, URL-safe base64 (no padding).
pub(crate) fn random_text(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::getrandom(&mut buffer).expect("the OS random source is available");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buffer)
}

impl Store {
    /// Creates a token with a fresh random secret.
    pub async fn create_token(&self, name: &str, role: Role) -> Result<NewToken, StoreError> {
        let token = format!("{TOKEN_PREFIX}{}", random_text(32));
        let row: TokenRow = sqlx::query_as(
            "INSERT INTO api_tokens (name, role, hash, created_at) VALUES ($1, $2, $3, $4)
             RETURNING id, name, role, created_at",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(hash_token(&token).as_slice())
        .bind(now_millis())
        .fetch_one(&self.writer)
        .await?;
        Ok(NewToken {
            record: row.try_into()?,
            token,
        })
    }

    /// The live token with this hash, if any. Live tokens are kept in memory until the
    /// next revocation; unknown hashes always ask the database (another process, such as
    /// `slipway token create`, may have just added one).
    pub async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        let cached = self.tokens.get();
        if let Some(record) = cached.as_ref().and_then(|live| live.get(hash)) {
            return Ok(Some(record.clone()));
        }
        let generation = self.tokens.generation();
        let rows: Vec<LiveTokenRow> = sqlx::query_as(
            "SELECT hash, id, name, role, created_at FROM api_tokens WHERE revoked_at IS NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut live = HashMap::with_capacity(rows.len());
        for row in rows {
            let Ok(key) = <[u8; 32]>::try_from(row.hash.as_slice()) else {
                continue;
            };
            let record = row.token.try_into()?;
            live.insert(key, record);
        }
        let found = live.get(hash).cloned();
        self.tokens.fill(generation, Arc::new(live));
        Ok(found)
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows: Vec<TokenRow> = sqlx::query_as(
            "SELECT id, name, role, created_at FROM api_tokens WHERE revoked_at IS NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(TokenRecord::try_from).collect()
    }

    pub async fn revoke_token(&self, id: TokenId) -> Result<(), StoreError> {
        let revoked = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now_millis())
        .bind(id.0)
        .execute(&self.writer)
        .await?
        .rows_affected();
        self.tokens.invalidate();
        self.caches_changed().await?;
        if revoked == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// How many live admin tokens exist (first start creates one when there are none).
    pub async fn count_admin_tokens(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM api_tokens WHERE role = 'admin' AND revoked_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?)
    }
}
