//! Dashboard sessions: opened with a token, named by a random id in a cookie, each with its
//! own CSRF token. Only hashes of the id and the token are stored.

use crate::{now_millis, Store, StoreError};
use std::time::Duration;

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the token it was opened with.
    pub token_hash: [u8; 32],
    /// Every form and state-changing request of this session must carry it.
    pub csrf: String,
}

impl Store {
    /// Opens a session for a token; returns the cookie value and the session.
    pub async fn create_session(
        &self,
        token_hash: &[u8; 32],
        lifetime: Duration,
    ) -> Result<(String, Session), StoreError> {
        let id = crate::tokens::random_text(32);
        let csrf = crate::tokens::random_text(32);
        let now = now_millis();
        sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(now)
            .execute(&self.writer)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (id_hash, token_hash, csrf, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(crate::hash_token(&id).to_vec())
        .bind(token_hash.to_vec())
        .bind(&csrf)
        .bind(now + lifetime.as_millis() as i64)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok((
            id,
            Session {
                token_hash: *token_hash,
                csrf,
            },
        ))
    }

    /// The unexpired session a cookie names.
    pub async fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let row: Option<(Vec<u8>, String)> = sqlx::query_as(
            "SELECT token_hash, csrf FROM sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(crate::hash_token(id).to_vec())
        .bind(now_millis())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|(hash, csrf)| {
            Some(Session {
                token_hash: hash.try_into().ok()?,
                csrf,
            })
        }))
    }

    pub async fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(crate::hash_token(id).to_vec())
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
