//! Tokens the models used per project and calendar month (UTC), for the monthly budget.

use crate::{Store, StoreError};
use serde::Serialize;
use slipway_core::ProjectId;
use time::OffsetDateTime;

/// A project's use this month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ModelUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl ModelUsage {
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// `YYYY-MM` of now, in UTC.
fn this_month() -> String {
    let now = OffsetDateTime::now_utc();
    format!("{:04}-{:02}", now.year(), u8::from(now.month()))
}

impl Store {
    /// Adds one call's tokens to the project's month.
    pub async fn record_model_usage(
        &self,
        project: ProjectId,
        input_tokens: u64,
        output_tokens: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO model_usage (project_id, month, input_tokens, output_tokens) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, month) DO UPDATE SET \
             input_tokens = model_usage.input_tokens + excluded.input_tokens, \
             output_tokens = model_usage.output_tokens + excluded.output_tokens",
        )
        .bind(project.0)
        .bind(this_month())
        .bind(input_tokens as i64)
        .bind(output_tokens as i64)
        .execute(&self.writer)
        .await
        .map_err(crate::variables::missing_project)?;
        Ok(())
    }

    /// What the project's models used this month.
    pub async fn model_usage(&self, project: ProjectId) -> Result<ModelUsage, StoreError> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT input_tokens, output_tokens FROM model_usage \
             WHERE project_id = $1 AND month = $2",
        )
        .bind(project.0)
        .bind(this_month())
        .fetch_optional(&self.pool)
        .await?;
        let (input, output) = row.unwrap_or_default();
        Ok(ModelUsage {
            input_tokens: input.max(0) as u64,
            output_tokens: output.max(0) as u64,
        })
    }
}
