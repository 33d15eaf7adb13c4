//! The process groups of running commands, remembered so that a restart after a crash can
//! kill what was left behind.

use crate::{Store, StoreError};
use slipway_core::ValidationId;

impl Store {
    /// Remembers a process group started for a validation (killed at start-up if a crash
    /// left it behind).
    pub async fn record_process_group(
        &self,
        id: ValidationId,
        pgid: i32,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT OR IGNORE INTO sandbox_processes (validation_id, pgid) VALUES (?, ?)")
            .bind(id.0)
            .bind(pgid)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn forget_process_group(
        &self,
        id: ValidationId,
        pgid: i32,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sandbox_processes WHERE validation_id = ? AND pgid = ?")
            .bind(id.0)
            .bind(pgid)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Every recorded process group, removing the records.
    pub async fn take_process_groups(&self) -> Result<Vec<i32>, StoreError> {
        let pgids: Vec<i64> = sqlx::query_scalar("DELETE FROM sandbox_processes RETURNING pgid")
            .fetch_all(&self.writer)
            .await?;
        Ok(pgids.into_iter().map(|p| p as i32).collect())
    }
}
