//! `/api/v1/projects/{id}/settings`: the settings document, read, replaced, or patched (only
//! the fields sent change).

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
    let settings = settings_from(id, &mut body)?;
    save(&state, id, settings).await
}

/// Change only the fields sent (admin): a JSON merge patch (RFC 7386) — objects merge, a
/// `null` puts a field back to its default.
#[utoipa::path(patch, path = "/api/v1/projects/{id}/settings", tag = "settings", request_body = Settings,
    params(("id" = i64, Path)),
    responses((status = 200, body = SettingsView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn patch(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ProjectId>,
    ApiJson(patch): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<Json<SettingsView>> {
    caller.require(Role::Admin)?;
    let current = state.store.settings(id).await?;
    let mut document = serde_json::to_value(&current).expect("settings serialize");
    merge(&mut document, serde_json::Value::Object(patch));
    let serde_json::Value::Object(mut body) = document else {
        unreachable!("settings are an object")
    };
    let settings = settings_from(id, &mut body)?;
    save(&state, id, settings).await
}

/// RFC 7386: `patch` merged into `target`.
fn merge(target: &mut serde_json::Value, patch: serde_json::Value) {
    match patch {
        serde_json::Value::Object(fields) => {
            if !target.is_object() {
                *target = serde_json::Value::Object(Default::default());
            }
            let object = target.as_object_mut().expect("an object");
            for (key, value) in fields {
                if value.is_null() {
                    object.remove(&key);
                } else {
                    merge(object.entry(key).or_insert(serde_json::Value::Null), value);
                }
            }
        }
        other => *target = other,
    }
}

async fn save(
    state: &AppState,
    id: ProjectId,
    settings: Settings,
) -> ApiResult<Json<SettingsView>> {
    settings.validate()?;
    if let slipway_core::settings::AgentConfig::Command { command, .. } = &settings.agent {
        if let Err(why) = state.engine.check_agent_command(command) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("agent.command: {why}"),
            ));
        }
    }
    state.store.put_settings(id, &settings).await?;
    tracing::info!(project_id = %id, "settings saved");
    Ok(Json(SettingsView { id, settings }))
}

/// The settings a body describes; an `id` in it must be this project's.
fn settings_from(
    id: ProjectId,
    body: &mut serde_json::Map<String, serde_json::Value>,
) -> ApiResult<Settings> {
    if let Some(sent) = body.remove("id") {
        if sent != serde_json::json!(id.0) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("id: {sent} does not match the project in the path ({id}); leave it out"),
            ));
        }
    }
    serde_json::from_value(serde_json::Value::Object(std::mem::take(body))).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("{e}; see /api/v1/openapi.json for the accepted fields"),
        )
    })
}
