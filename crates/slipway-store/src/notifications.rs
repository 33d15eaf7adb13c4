//! Notification targets: where a project's events go, their sealed URL and signing secret,
//! and how their deliveries fare (the health the dashboard shows; disabled after the
//! documented days of failure). Portable SQL: `$n` placeholders, Unix-ms integers.

use crate::{from_millis, now_millis, Store, StoreError};
use slipway_core::notify::{self, NotifyEvent, TargetHealth, TargetKind};
use slipway_core::ProjectId;
use time::OffsetDateTime;

/// A target to create.
#[derive(Debug, Clone)]
pub struct NewTarget {
    pub kind: TargetKind,
    pub url: String,
    pub events: Vec<NotifyEvent>,
    /// The Standard Webhooks signing secret (`whsec_…`), for `webhook` targets.
    pub secret: Option<String>,
}

/// What a change of a target sets; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct TargetPatch {
    pub url: Option<String>,
    pub events: Option<Vec<NotifyEvent>>,
    /// Switching a target on again clears its failure record.
    pub enabled: Option<bool>,
}

/// A stored target. `url` is the real one (for sending); show `url_shown`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub id: i64,
    pub project_id: ProjectId,
    pub kind: TargetKind,
    pub url: String,
    pub url_shown: String,
    pub events: Vec<NotifyEvent>,
    pub enabled: bool,
    pub health: TargetHealth,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub last_attempt_at: Option<OffsetDateTime>,
    pub last_success_at: Option<OffsetDateTime>,
    pub failing_since: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    pub disabled_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    project_id: i64,
    kind: String,
    url_sealed: Vec<u8>,
    url_shown: String,
    events: String,
    enabled: i64,
    created_at: i64,
    updated_at: i64,
    last_attempt_at: Option<i64>,
    last_success_at: Option<i64>,
    failing_since: Option<i64>,
    last_error: Option<String>,
    disabled_at: Option<i64>,
}

const COLUMNS: &str = "id, project_id, kind, url_sealed, url_shown, events, enabled, created_at,
    updated_at, last_attempt_at, last_success_at, failing_since, last_error, disabled_at";

fn aad(target: i64, what: &str) -> Vec<u8> {
    format!("slipway:notification:v1:{target}:{what}").into_bytes()
}

fn events_json(events: &[NotifyEvent]) -> String {
    serde_json::to_string(events).expect("events serialize")
}

impl Store {
    fn seal_blob(&self, plain: &str, aad: &[u8]) -> Vec<u8> {
        let (mut blob, ciphertext) = self.vault.seal(plain.as_bytes(), aad);
        blob.extend_from_slice(&ciphertext);
        blob
    }

    fn open_blob(&self, blob: &[u8], aad: &[u8], what: &str) -> Result<String, StoreError> {
        if blob.len() <= 24 {
            return Err(StoreError::Corrupt(format!("{what} is truncated")));
        }
        let (nonce, ciphertext) = blob.split_at(24);
        let plain = self.vault.open(nonce, ciphertext, aad)?;
        String::from_utf8(plain).map_err(|_| StoreError::Corrupt(format!("{what} is not UTF-8")))
    }

    fn target_of(&self, row: Row) -> Result<Target, StoreError> {
        let url = self.open_blob(&row.url_sealed, &aad(row.id, "url"), "a target's URL")?;
        let kind = TargetKind::parse(&row.kind)
            .ok_or_else(|| StoreError::Corrupt(format!("target kind '{}'", row.kind)))?;
        let events: Vec<NotifyEvent> = serde_json::from_str(&row.events)
            .map_err(|e| StoreError::Corrupt(format!("a target's events: {e}")))?;
        let enabled = row.enabled != 0;
        Ok(Target {
            id: row.id,
            project_id: ProjectId(row.project_id),
            kind,
            url,
            url_shown: row.url_shown,
            events,
            enabled,
            health: TargetHealth::of(enabled, row.failing_since, row.last_success_at),
            created_at: from_millis(row.created_at),
            updated_at: from_millis(row.updated_at),
            last_attempt_at: row.last_attempt_at.map(from_millis),
            last_success_at: row.last_success_at.map(from_millis),
            failing_since: row.failing_since.map(from_millis),
            last_error: row.last_error,
            disabled_at: row.disabled_at.map(from_millis),
        })
    }

    /// Creates a target; its URL and secret are sealed with the target's id bound in.
    pub async fn create_notification_target(
        &self,
        project: ProjectId,
        new: &NewTarget,
    ) -> Result<Target, StoreError> {
        let now = now_millis();
        let mut tx = self.writer.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO notification_targets
                 (project_id, kind, url_sealed, url_shown, events, enabled, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 1, $6, $6) RETURNING id",
        )
        .bind(project.0)
        .bind(new.kind.as_str())
        .bind(Vec::<u8>::new())
        .bind(notify::shown_url(&new.url))
        .bind(events_json(&new.events))
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(crate::variables::missing_project)?;
        let secret = new
            .secret
            .as_deref()
            .map(|s| self.seal_blob(s, &aad(id, "secret")));
        sqlx::query(
            "UPDATE notification_targets SET url_sealed = $1, secret_sealed = $2 WHERE id = $3",
        )
        .bind(self.seal_blob(&new.url, &aad(id, "url")))
        .bind(secret)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.notification_target(project, id).await
    }

    /// A project's targets, oldest first.
    pub async fn notification_targets(
        &self,
        project: ProjectId,
    ) -> Result<Vec<Target>, StoreError> {
        self.project(project).await?;
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM notification_targets WHERE project_id = $1 ORDER BY id"
        ))
        .bind(project.0)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|row| self.target_of(row)).collect()
    }

    /// One target of a project (`NotFound` when it is another project's).
    pub async fn notification_target(
        &self,
        project: ProjectId,
        id: i64,
    ) -> Result<Target, StoreError> {
        let row: Row = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM notification_targets WHERE id = $1 AND project_id = $2"
        ))
        .bind(id)
        .bind(project.0)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        self.target_of(row)
    }

    /// The enabled targets of a project that subscribe to `event`.
    pub async fn notification_targets_for(
        &self,
        project: ProjectId,
        event: NotifyEvent,
    ) -> Result<Vec<Target>, StoreError> {
        let targets = self.notification_targets(project).await?;
        Ok(targets
            .into_iter()
            .filter(|t| t.enabled && t.events.contains(&event))
            .collect())
    }

    /// A `webhook` target's signing secret.
    pub async fn notification_secret(&self, id: i64) -> Result<Option<String>, StoreError> {
        let sealed: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT secret_sealed FROM notification_targets WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        match sealed.ok_or(StoreError::NotFound)? {
            Some(blob) => Ok(Some(self.open_blob(
                &blob,
                &aad(id, "secret"),
                "a target's secret",
            )?)),
            None => Ok(None),
        }
    }

    /// Changes a target; switching it on again forgets its failures.
    pub async fn update_notification_target(
        &self,
        project: ProjectId,
        id: i64,
        patch: &TargetPatch,
    ) -> Result<Target, StoreError> {
        let now = now_millis();
        let sealed = patch
            .url
            .as_deref()
            .map(|u| self.seal_blob(u, &aad(id, "url")));
        let updated = sqlx::query(
            "UPDATE notification_targets SET
                 url_sealed = COALESCE($1, url_sealed), url_shown = COALESCE($2, url_shown),
                 events = COALESCE($3, events),
                 enabled = COALESCE($4, enabled),
                 failing_since = CASE WHEN $4 = 1 AND enabled = 0 THEN NULL ELSE failing_since END,
                 disabled_at = CASE WHEN $4 = 1 THEN NULL
                                    WHEN $4 = 0 AND enabled = 1 THEN $5
                                    ELSE disabled_at END,
                 updated_at = $5
             WHERE id = $6 AND project_id = $7",
        )
        .bind(sealed)
        .bind(patch.url.as_deref().map(notify::shown_url))
        .bind(patch.events.as_deref().map(events_json))
        .bind(patch.enabled.map(i64::from))
        .bind(now)
        .bind(id)
        .bind(project.0)
        .execute(&self.writer)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        self.notification_target(project, id).await
    }

    pub async fn delete_notification_target(
        &self,
        project: ProjectId,
        id: i64,
    ) -> Result<(), StoreError> {
        let deleted =
            sqlx::query("DELETE FROM notification_targets WHERE id = $1 AND project_id = $2")
                .bind(id)
                .bind(project.0)
                .execute(&self.writer)
                .await?
                .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// A delivery arrived: the target is healthy again.
    pub async fn record_notification_success(&self, id: i64) -> Result<(), StoreError> {
        let now = now_millis();
        sqlx::query(
            "UPDATE notification_targets SET last_attempt_at = $1, last_success_at = $1,
                 failing_since = NULL, last_error = NULL
             WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// A delivery failed with `error` at `now` (Unix ms): the target is failing since its
    /// first failure after a success, and is disabled once that is the documented days ago.
    /// Returns whether this failure disabled it.
    pub async fn record_notification_failure(
        &self,
        id: i64,
        error: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let failing_since: Option<i64> = sqlx::query_scalar(
            "UPDATE notification_targets SET last_attempt_at = $1, last_error = $2,
                 failing_since = COALESCE(failing_since, $1)
             WHERE id = $3 RETURNING failing_since",
        )
        .bind(now)
        .bind(error)
        .bind(id)
        .fetch_optional(&self.writer)
        .await?;
        let Some(since) = failing_since else {
            return Ok(false); // deleted meanwhile
        };
        if !notify::disable_after_failure(since, now) {
            return Ok(false);
        }
        let disabled = sqlx::query(
            "UPDATE notification_targets SET enabled = 0, disabled_at = $1
             WHERE id = $2 AND enabled = 1",
        )
        .bind(now)
        .bind(id)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(disabled == 1)
    }
}
