//! `/api/v1/projects/{id}/notifications`: where a project's events are sent (Slack incoming
//! webhooks, Standard Webhooks endpoints), each target's health, and "send a test". Reading
//! needs `viewer`, writing `admin`, a test `operator`. A URL is checked (https, the addresses
//! it resolves to) before anything is stored; a webhook's secret is answered once.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use slipway_core::notify::{NotifyEvent, TargetHealth, TargetKind};
use slipway_core::{ProjectId, Role};
use slipway_engine::Sent;
use slipway_store::{NewTarget, Target, TargetPatch};

/// Targets one project may have.
const MAX_TARGETS: usize = 20;

/// A target as anyone with `viewer` sees it: its URL shown without its secret part.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TargetView {
    pub id: i64,
    pub project_id: i64,
    /// `slack` or `webhook`.
    pub kind: String,
    /// The URL's origin and its last 4 characters.
    pub url: String,
    pub events: Vec<String>,
    pub enabled: bool,
    /// `new`, `healthy`, `failing` or `disabled`.
    pub health: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// A new `webhook` target's signing secret (`whsec_…`): in the creation's answer only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

pub(crate) fn health_name(health: TargetHealth) -> &'static str {
    match health {
        TargetHealth::New => "new",
        TargetHealth::Healthy => "healthy",
        TargetHealth::Failing => "failing",
        TargetHealth::Disabled => "disabled",
    }
}

impl From<Target> for TargetView {
    fn from(target: Target) -> Self {
        let at = |moment: Option<time::OffsetDateTime>| moment.map(super::rfc3339);
        Self {
            id: target.id,
            project_id: target.project_id.0,
            kind: target.kind.as_str().to_owned(),
            url: target.url_shown,
            events: target
                .events
                .iter()
                .map(|e| e.as_str().to_owned())
                .collect(),
            enabled: target.enabled,
            health: health_name(target.health).to_owned(),
            // Errors stored before they were scrubbed at the send are scrubbed here too.
            last_error: target
                .last_error
                .map(|e| slipway_core::notify::scrub_url(&e, &target.url)),
            last_attempt_at: at(target.last_attempt_at),
            last_success_at: at(target.last_success_at),
            failing_since: at(target.failing_since),
            disabled_at: at(target.disabled_at),
            created_at: super::rfc3339(target.created_at),
            updated_at: super::rfc3339(target.updated_at),
            secret: None,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTargetBody {
    /// `slack` (an incoming webhook's URL) or `webhook` (any endpoint, signed).
    pub kind: String,
    /// https; http only for hosts in `SLIPWAY_NOTIFY_ALLOW_HOSTS`.
    pub url: String,
    /// Any of `validation.finished`, `pull_request.merged`, `run.needs_input`, `fix.gave_up`.
    pub events: Vec<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetPatchBody {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    /// `true` switches a disabled target on again (its failures are forgotten).
    pub enabled: Option<bool>,
}

/// How a test send went.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TestOutcome {
    pub delivered: bool,
    /// The receiver's HTTP status, when it answered with success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it was not delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub target: TargetView,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
}

/// The events named, each known, at least one, none twice.
pub(crate) fn events_of(names: &[String]) -> Result<Vec<NotifyEvent>, ApiError> {
    let known = NotifyEvent::ALL.map(NotifyEvent::as_str).join(", ");
    if names.is_empty() {
        return Err(invalid(format!("events: choose at least one of {known}")));
    }
    let mut events = Vec::new();
    for name in names {
        let event = NotifyEvent::parse(name)
            .ok_or_else(|| invalid(format!("events: unknown event '{name}'; use {known}")))?;
        if !events.contains(&event) {
            events.push(event);
        }
    }
    Ok(events)
}

pub(crate) fn kind_of(name: &str) -> Result<TargetKind, ApiError> {
    TargetKind::parse(name).ok_or_else(|| {
        invalid(format!(
            "kind: '{name}' is not a target kind; use slack or webhook"
        ))
    })
}

/// The URL checked now (form, scheme, resolved addresses): 422 saying what is wrong.
pub(crate) async fn checked_url(state: &AppState, url: &str) -> Result<String, ApiError> {
    state
        .engine
        .check_notification_url(url)
        .await
        .map_err(|refused| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_url",
                refused.to_string(),
            )
        })?;
    Ok(url.trim().to_owned())
}

/// Creates a target after checking what it was given; a webhook's secret is in the view.
pub(crate) async fn create_target(
    state: &AppState,
    project: ProjectId,
    kind: TargetKind,
    url: &str,
    events: Vec<NotifyEvent>,
) -> ApiResult<TargetView> {
    let existing = state.store.notification_targets(project).await?;
    if existing.len() >= MAX_TARGETS {
        return Err(invalid(format!(
            "this project has {MAX_TARGETS} notification targets already; delete one first"
        )));
    }
    let url = checked_url(state, url).await?;
    let secret = (kind == TargetKind::Webhook).then(slipway_engine::new_notification_secret);
    let new = NewTarget {
        kind,
        url,
        events,
        secret: secret.clone(),
    };
    let target = state
        .store
        .create_notification_target(project, &new)
        .await?;
    tracing::info!(project_id = %project, target = target.id, kind = kind.as_str(), "notification target created");
    let mut view = TargetView::from(target);
    view.secret = secret;
    Ok(view)
}

/// List a project's notification targets with their health.
#[utoipa::path(get, path = "/api/v1/projects/{id}/notifications", tag = "notifications",
    params(("id" = i64, Path)), responses((status = 200, body = [TargetView]), (status = 404, body = ErrorBody)))]
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ProjectId>,
) -> ApiResult<Json<Vec<TargetView>>> {
    caller.require(Role::Viewer)?;
    let targets = state.store.notification_targets(id).await?;
    Ok(Json(targets.into_iter().map(TargetView::from).collect()))
}

/// Add a target (admin). A `webhook` target's answer carries its signing secret, once.
#[utoipa::path(post, path = "/api/v1/projects/{id}/notifications", tag = "notifications", request_body = NewTargetBody,
    params(("id" = i64, Path)),
    responses((status = 201, body = TargetView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ProjectId>,
    ApiJson(body): ApiJson<NewTargetBody>,
) -> ApiResult<(StatusCode, Json<TargetView>)> {
    caller.require(Role::Admin)?;
    state.store.project(id).await?;
    let kind = kind_of(&body.kind)?;
    let events = events_of(&body.events)?;
    let view = create_target(&state, id, kind, &body.url, events).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Change a target's URL, events or switch (admin).
#[utoipa::path(patch, path = "/api/v1/projects/{id}/notifications/{tid}", tag = "notifications", request_body = TargetPatchBody,
    params(("id" = i64, Path), ("tid" = i64, Path)),
    responses((status = 200, body = TargetView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((id, tid)): ApiPath<(ProjectId, i64)>,
    ApiJson(body): ApiJson<TargetPatchBody>,
) -> ApiResult<Json<TargetView>> {
    caller.require(Role::Admin)?;
    state.store.notification_target(id, tid).await?;
    let patch = TargetPatch {
        url: match &body.url {
            Some(url) => Some(checked_url(&state, url).await?),
            None => None,
        },
        events: body.events.as_deref().map(events_of).transpose()?,
        enabled: body.enabled,
    };
    let target = state
        .store
        .update_notification_target(id, tid, &patch)
        .await?;
    tracing::info!(project_id = %id, target = tid, "notification target changed");
    Ok(Json(target.into()))
}

/// Delete a target (admin); its queued notifications are dropped.
#[utoipa::path(delete, path = "/api/v1/projects/{id}/notifications/{tid}", tag = "notifications",
    params(("id" = i64, Path), ("tid" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((id, tid)): ApiPath<(ProjectId, i64)>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    state.store.delete_notification_target(id, tid).await?;
    tracing::info!(project_id = %id, target = tid, "notification target deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Send a test notification now (operator): how it went, and the target's health after it.
#[utoipa::path(post, path = "/api/v1/projects/{id}/notifications/{tid}/test", tag = "notifications",
    params(("id" = i64, Path), ("tid" = i64, Path)),
    responses((status = 200, body = TestOutcome), (status = 404, body = ErrorBody)))]
pub async fn test(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((id, tid)): ApiPath<(ProjectId, i64)>,
) -> ApiResult<Json<TestOutcome>> {
    caller.require(Role::Operator)?;
    let outcome = send_test(&state, id, tid).await?;
    Ok(Json(outcome))
}

pub(crate) async fn send_test(state: &AppState, id: ProjectId, tid: i64) -> ApiResult<TestOutcome> {
    let project = state.store.project(id).await?;
    let target = state.store.notification_target(id, tid).await?;
    let sent = state
        .engine
        .send_test_notification(&project, &target)
        .await?;
    let target = state.store.notification_target(id, tid).await?;
    Ok(TestOutcome {
        delivered: matches!(sent, Sent::Delivered { .. }),
        status: match sent {
            Sent::Delivered { status } => Some(status),
            _ => None,
        },
        error: sent.error().map(str::to_owned),
        target: target.into(),
    })
}
