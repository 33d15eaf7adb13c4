//! Pull requests of the local forge.

use crate::{from_millis, now_millis, Store, StoreError};
use serde::Serialize;
use slipway_core::ProjectId;
use time::OffsetDateTime;

/// Where a local pull request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PullState {
    Open,
    Merged,
    /// Closed without merging.
    Closed,
}

impl PullState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Merged => "merged",
            Self::Closed => "closed",
        }
    }

    fn parse(stored: &str) -> Result<Self, StoreError> {
        Ok(match stored {
            "open" => Self::Open,
            "merged" => Self::Merged,
            "closed" => Self::Closed,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "a stored pull request's state is '{other}'"
                )))
            }
        })
    }
}

impl std::fmt::Display for PullState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullRequest {
    pub project_id: ProjectId,
    pub number: i64,
    pub title: String,
    pub head: String,
    pub base: String,
    pub head_sha: String,
    pub state: PullState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_sha: Option<String>,
    /// Why it is not merged (conflicting paths, a failed validation), when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct Row {
    project_id: i64,
    number: i64,
    title: String,
    head: String,
    base: String,
    head_sha: String,
    state: String,
    merge_sha: Option<String>,
    note: Option<String>,
    created_at: i64,
    updated_at: i64,
}

const COLUMNS: &str =
    "project_id, number, title, head, base, head_sha, state, merge_sha, note, created_at, updated_at";

fn from_row(r: Row) -> Result<PullRequest, StoreError> {
    Ok(PullRequest {
        project_id: ProjectId(r.project_id),
        number: r.number,
        title: r.title,
        head: r.head,
        base: r.base,
        head_sha: r.head_sha,
        state: PullState::parse(&r.state)?,
        merge_sha: r.merge_sha,
        note: r.note,
        created_at: from_millis(r.created_at),
        updated_at: from_millis(r.updated_at),
    })
}

impl Store {
    /// Opens a pull request with the next number of the project.
    pub async fn open_pull_request(
        &self,
        project: ProjectId,
        title: &str,
        head: &str,
        base: &str,
        head_sha: &str,
    ) -> Result<PullRequest, StoreError> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        self.lock_project(&mut tx, project).await?;
        let row: Row = sqlx::query_as(&format!(
            "INSERT INTO pull_requests (project_id, number, title, head, base, head_sha, state, created_at, updated_at)
             SELECT $1, COALESCE(MAX(number), 0) + 1, $2, $3, $4, $5, 'open', $6, $7
             FROM pull_requests WHERE project_id = $8
             RETURNING {COLUMNS}"
        ))
        .bind(project.0)
        .bind(title)
        .bind(head)
        .bind(base)
        .bind(head_sha)
        .bind(now)
        .bind(now)
        .bind(project.0)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        from_row(row)
    }

    pub async fn pull_request(
        &self,
        project: ProjectId,
        number: i64,
    ) -> Result<PullRequest, StoreError> {
        let row: Option<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM pull_requests WHERE project_id = $1 AND number = $2"
        ))
        .bind(project.0)
        .bind(number)
        .fetch_optional(&self.pool)
        .await?;
        row.map(from_row).ok_or(StoreError::NotFound)?
    }

    /// The project's pull requests, newest first.
    pub async fn list_pull_requests(
        &self,
        project: ProjectId,
    ) -> Result<Vec<PullRequest>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM pull_requests WHERE project_id = $1 ORDER BY number DESC"
        ))
        .bind(project.0)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(from_row).collect()
    }

    /// Every open pull request (for the poller).
    pub async fn open_pull_requests(&self) -> Result<Vec<PullRequest>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM pull_requests WHERE state = 'open' ORDER BY project_id, number"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(from_row).collect()
    }

    /// Records a new head commit of an open pull request; `false` if it was not open or
    /// already had that head (so of two callers noticing one push, one validates it).
    pub async fn set_pull_request_head(
        &self,
        project: ProjectId,
        number: i64,
        sha: &str,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE pull_requests SET head_sha = $1, note = NULL, updated_at = $2
             WHERE project_id = $3 AND number = $4 AND state = 'open' AND head_sha != $5",
        )
        .bind(sha)
        .bind(now_millis())
        .bind(project.0)
        .bind(number)
        .bind(sha)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// Marks an open pull request merged, only if its head is still `head_sha`.
    pub async fn mark_merged(
        &self,
        project: ProjectId,
        number: i64,
        head_sha: &str,
        merge_sha: &str,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE pull_requests SET state = 'merged', merge_sha = $1, note = NULL, updated_at = $2
             WHERE project_id = $3 AND number = $4 AND state = 'open' AND head_sha = $5",
        )
        .bind(merge_sha)
        .bind(now_millis())
        .bind(project.0)
        .bind(number)
        .bind(head_sha)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// Closes an open pull request without merging it; `false` when it was not open.
    pub async fn close_pull_request(
        &self,
        project: ProjectId,
        number: i64,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE pull_requests SET state = 'closed', note = 'closed by a person', updated_at = $1
             WHERE project_id = $2 AND number = $3 AND state = 'open'",
        )
        .bind(now_millis())
        .bind(project.0)
        .bind(number)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// Says why an open pull request is not merged.
    pub async fn note_pull_request(
        &self,
        project: ProjectId,
        number: i64,
        note: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE pull_requests SET note = $1, updated_at = $2 WHERE project_id = $3 AND number = $4",
        )
        .bind(note)
        .bind(now_millis())
        .bind(project.0)
        .bind(number)
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}
