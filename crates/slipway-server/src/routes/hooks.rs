//! `/api/v1/projects/{id}/webhook`: the GitHub webhook Slipway set up for the project's
//! repository (see `slipway_engine::hooks`), and its repair.

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::ApiPath;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use slipway_core::{ProjectId, Role};
use slipway_engine::hooks::HookState;

/// The project's webhook as GitHub has it: `state` is `installed` (with its last response
/// and delivery), `missing`, `not_permitted` (with what to grant), `unreachable`, `app` (a
/// GitHub App needs none), `no_public_url`, `no_credentials` or `not_git_hub`.
#[utoipa::path(get, path = "/api/v1/projects/{id}/webhook", tag = "projects",
    params(("id" = i64, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn show(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ProjectId>,
) -> ApiResult<Json<HookState>> {
    caller.require(Role::Viewer)?;
    let project = state.store.project(id).await?;
    Ok(Json(state.engine.webhook_state(&project).await))
}

/// Create the webhook again, or make Slipway's existing one right (operator).
#[utoipa::path(post, path = "/api/v1/projects/{id}/webhook/repair", tag = "projects",
    params(("id" = i64, Path)),
    responses((status = 200, body = Object), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn repair(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ProjectId>,
) -> ApiResult<Json<HookState>> {
    caller.require(Role::Operator)?;
    let project = state.store.project(id).await?;
    Ok(Json(state.engine.set_up_webhook(&project).await))
}
