//! Webhook deliveries: stored durably (with the job that will process them) before the
//! sender gets its answer; a redelivery changes nothing.

use crate::queue::{insert_job, NewJob};
use crate::{now_millis, Store, StoreError};

/// The queue's job kind for deliveries.
pub const WEBHOOK_JOB: &str = "webhook";

/// What became of a delivery handed to [`Store::record_delivery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    /// Seen before (GitHub redelivers); nothing was changed.
    Duplicate,
}

/// A stored delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub delivery_id: String,
    pub event: String,
    pub repository: Option<String>,
    pub payload: Vec<u8>,
    pub state: String,
    pub note: Option<String>,
}

impl Store {
    /// Stores a verified delivery and queues its processing, in one transaction.
    /// `process` is false for deliveries that need no processing (ping).
    pub async fn record_delivery(
        &self,
        delivery_id: &str,
        event: &str,
        repository: Option<&str>,
        payload: &[u8],
        process: bool,
    ) -> Result<Recorded, StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO webhook_deliveries (delivery_id, event, repository, payload, received_at, state)
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (delivery_id) DO NOTHING",
        )
        .bind(delivery_id)
        .bind(event)
        .bind(repository)
        .bind(payload)
        .bind(now_millis())
        .bind(if process { "pending" } else { "processed" })
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(Recorded::Duplicate);
        }
        if process {
            let job = NewJob {
                kind: WEBHOOK_JOB.into(),
                payload: serde_json::json!({ "delivery_id": delivery_id }).to_string(),
                dedupe_key: Some(format!("webhook:{delivery_id}")),
                max_attempts: 5,
            };
            insert_job(&mut tx, &job).await?;
        }
        tx.commit().await?;
        Ok(Recorded::New)
    }

    pub async fn delivery(&self, delivery_id: &str) -> Result<Delivery, StoreError> {
        let row: (
            String,
            String,
            Option<String>,
            Vec<u8>,
            String,
            Option<String>,
        ) = sqlx::query_as(
            "SELECT delivery_id, event, repository, payload, state, note
             FROM webhook_deliveries WHERE delivery_id = ?",
        )
        .bind(delivery_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(Delivery {
            delivery_id: row.0,
            event: row.1,
            repository: row.2,
            payload: row.3,
            state: row.4,
            note: row.5,
        })
    }

    /// Records what processing made of a delivery.
    pub async fn finish_delivery(
        &self,
        delivery_id: &str,
        state: &str,
        note: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE webhook_deliveries SET state = ?, note = ? WHERE delivery_id = ?")
            .bind(state)
            .bind(note)
            .bind(delivery_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn count_deliveries(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
