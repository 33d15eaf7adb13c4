//! `/api/v1/projects/{id}/pulls`: pull requests of the local forge.

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::responses::PullRequest;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use slipway_core::{ProjectId, Role};

/// A pull request to open: `head` into `base` (the project's default branch when absent).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenPullRequest {
    pub head: String,
    pub base: Option<String>,
    pub title: String,
}

/// Open a pull request on a local project and validate its head (operator).
#[utoipa::path(post, path = "/api/v1/projects/{id}/pulls", tag = "pulls",
    request_body = OpenPullRequest, params(("id" = i64, Path)),
    responses((status = 201, body = PullRequest), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn open(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ProjectId>,
    ApiJson(request): ApiJson<OpenPullRequest>,
) -> ApiResult<(StatusCode, Json<PullRequest>)> {
    caller.require(Role::Operator)?;
    let project = state.store.project(id).await?;
    let base = request
        .base
        .unwrap_or_else(|| project.default_branch.clone());
    let pr = state
        .engine
        .open_pull_request(&project, &request.title, &request.head, &base)
        .await?;
    tracing::info!(project_id = %id, pr = pr.number, "pull request opened");
    Ok((StatusCode::CREATED, Json(pr.into())))
}

/// A project's pull requests, newest first.
#[utoipa::path(get, path = "/api/v1/projects/{id}/pulls", tag = "pulls",
    params(("id" = i64, Path)), responses((status = 200, body = [PullRequest]), (status = 404, body = ErrorBody)))]
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ProjectId>,
) -> ApiResult<Json<Vec<PullRequest>>> {
    caller.require(Role::Viewer)?;
    state.store.project(id).await?;
    let pulls = state.store.list_pull_requests(id).await?;
    Ok(Json(pulls.into_iter().map(PullRequest::from).collect()))
}

/// What a person's merge or close of a pull request did.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PullAction {
    pub pull: PullRequest,
    /// What happened, in a sentence.
    pub outcome: String,
}

/// The project, when its pull request `number` is open (409 saying so otherwise).
async fn with_open_pull(
    state: &AppState,
    id: i64,
    number: i64,
    act: &str,
) -> ApiResult<slipway_core::Project> {
    let project = state.store.project(ProjectId(id)).await?;
    let pull = state.store.pull_request(project.id, number).await?;
    if pull.state != slipway_store::PullState::Open {
        return Err(crate::error::ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "pull request #{number} is {}; only an open one can be {act}",
                pull.state
            ),
        ));
    }
    Ok(project)
}

/// Merge a local pull request by hand (operator): only a head that passed validation merged
/// onto the current base is merged, as the merge controller does.
#[utoipa::path(post, path = "/api/v1/projects/{id}/pulls/{number}/merge", tag = "pulls",
    params(("id" = i64, Path), ("number" = i64, Path)),
    responses((status = 200, body = PullAction), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn merge(
    caller: Caller,
    State(state): State<AppState>,
    axum::extract::Path((id, number)): axum::extract::Path<(i64, i64)>,
) -> ApiResult<Json<PullAction>> {
    caller.require(Role::Operator)?;
    let project = with_open_pull(&state, id, number, "merged").await?;
    let outcome = state
        .engine
        .merge_pull_request(&project, number)
        .await
        .map_err(crate::error::ApiError::internal)?;
    let pull = state.store.pull_request(project.id, number).await?;
    Ok(Json(PullAction {
        pull: pull.into(),
        outcome,
    }))
}

/// Close a local pull request without merging it (operator); its validations are cancelled.
#[utoipa::path(post, path = "/api/v1/projects/{id}/pulls/{number}/close", tag = "pulls",
    params(("id" = i64, Path), ("number" = i64, Path)),
    responses((status = 200, body = PullAction), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn close(
    caller: Caller,
    State(state): State<AppState>,
    axum::extract::Path((id, number)): axum::extract::Path<(i64, i64)>,
) -> ApiResult<Json<PullAction>> {
    caller.require(Role::Operator)?;
    let project = with_open_pull(&state, id, number, "closed").await?;
    state
        .engine
        .close_pull_request(&project, number)
        .await
        .map_err(crate::error::ApiError::internal)?;
    let pull = state.store.pull_request(project.id, number).await?;
    let outcome = "Closed without merging.".to_owned();
    Ok(Json(PullAction {
        pull: pull.into(),
        outcome,
    }))
}
