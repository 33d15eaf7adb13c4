//! The process groups of running commands: a record only. Nothing is ever killed by these
//! numbers (after a restart or a reboot they may be anyone's); cells die with Slipway
//! (`--die-with-parent`, PID namespaces) and stale cgroups are killed by cgroup.

use crate::{Store, StoreError};
use slipway_core::ValidationId;

impl Store {
    /// Remembers a process group started for a validation (for diagnosis only).
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

    /// Every recorded process group, removing the records (at start-up: they are stale).
    pub async fn take_process_groups(&self) -> Result<Vec<i32>, StoreError> {
        let pgids: Vec<i64> = sqlx::query_scalar("DELETE FROM sandbox_processes RETURNING pgid")
            .fetch_all(&self.writer)
            .await?;
        Ok(pgids.into_iter().map(|p| p as i32).collect())
    }
}
