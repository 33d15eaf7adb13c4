//! `/api/v1/projects/{id}/settings`: the whole settings document, read and replaced.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use slipway_core::{ProjectId, Role, Settings};

/// A project's settings, with the project's id.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SettingsView {
    pub id: ProjectId,
    #[serde(flatten)]
    pub settings: Settings,
}

/// Read a project's settings (defaults until first saved).
#[utoipa::path(get, path = "/api/v1/projects/{id}/settings", tag = "settings",
    params(("id" = i64, Path)), responses((status = 200, body = SettingsView), (status = 404, body = ErrorBody)))]
pub async fn show(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ProjectId>,
) -> ApiResult<Json<SettingsView>> {
    caller.require(Role::Viewer)?;
    let settings = state.store.settings(id).await?;
    Ok(Json(SettingsView { id, settings }))
}

/// Replace a project's settings (admin). Absent fields take their defaults; an `id`, if
/// sent back from a `GET`, must be this project's.
#[utoipa::path(put, path = "/api/v1/projects/{id}/settings", tag = "settings", request_body = Settings,
    params(("id" = i64, Path)),
    responses((status = 200, body = SettingsView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn replace(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ProjectId>,
    ApiJson(mut body): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<Json<SettingsView>> {
    caller.require(Role::Admin)?;
    if let Some(sent) = body.remove("id") {
        if sent != serde_json::json!(id.0) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("id: {sent} does not match the project in the path ({id}); leave it out"),
            ));
        }
    }
    let settings: Settings =
        serde_json::from_value(serde_json::Value::Object(body)).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!("{e}; see /api/v1/openapi.json for the accepted fields"),
            )
        })?;
    settings.validate()?;
    state.store.put_settings(id, &settings).await?;
    tracing::info!(project_id = %id, "settings saved");
    Ok(Json(SettingsView { id, settings }))
}
