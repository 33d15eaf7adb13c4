//! `/api/v1/projects/{id}/runs` and `/api/v1/runs/{id}`: start agent runs, read them, and
//! answer them (continue a reply, confirm or modify a plan), or cancel them.

use super::paging;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::responses::{FixAttempt, RunRecord};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use slipway_core::prompt::Goal;
use slipway_core::run::allowed_actions;
use slipway_core::{ProjectId, Role};
use slipway_engine::{RunAnswer, RunError};

/// A goal for the project's agent.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// What the agent should do, in plain words.
    pub goal: String,
    pub requirements: Option<String>,
    pub acceptance_criteria: Option<String>,
}

/// A person's text for `continue` and `modify`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    pub text: String,
}

/// A run with what may be done next and every fix attempt.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RunView {
    #[serde(flatten)]
    pub run: RunRecord,
    /// What a person may do now: `continue`, `confirm`, `modify`, `cancel`.
    pub actions: Vec<&'static str>,
    pub attempts: Vec<FixAttempt>,
}

impl From<RunError> for ApiError {
    fn from(error: RunError) -> Self {
        match error {
            RunError::Invalid(message) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
            }
            RunError::Conflict(message) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            RunError::OverBudget {
                reason,
                retry_after_secs,
            } => ApiError::too_many(reason, retry_after_secs),
            RunError::Store(error) => error.into(),
        }
    }
}

async fn view(state: &AppState, run: slipway_store::RunRecord) -> ApiResult<RunView> {
    let run = state.engine.masked_run(run).await?;
    let attempts = state.store.fix_attempts(run.id).await?;
    Ok(RunView {
        actions: allowed_actions(run.status, run.response.as_ref()).to_vec(),
        attempts: attempts.into_iter().map(FixAttempt::from).collect(),
        run: run.into(),
    })
}

/// Start an agent run (operator). 429 with `Retry-After` when a budget refuses it.
#[utoipa::path(post, path = "/api/v1/projects/{id}/runs", tag = "runs",
    request_body = RunRequest, params(("id" = i64, Path)),
    responses((status = 201, body = RunView), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn start(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ProjectId>,
    ApiJson(request): ApiJson<RunRequest>,
) -> ApiResult<(StatusCode, Json<RunView>)> {
    caller.require(Role::Operator)?;
    let project = state.store.project(id).await?;
    let goal = Goal {
        text: request.goal,
        requirements: request.requirements.filter(|t| !t.trim().is_empty()),
        acceptance_criteria: request.acceptance_criteria.filter(|t| !t.trim().is_empty()),
    };
    let run = state.engine.start_run(&project, goal, &caller.name).await?;
    Ok((StatusCode::CREATED, Json(view(&state, run).await?)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// At most this many, newest first (default 50, at most 500).
    pub limit: Option<u32>,
    /// The previous page's `X-Next-Cursor`: the page after it.
    pub cursor: Option<String>,
}

/// A project's runs, newest first; the next page's cursor is in `X-Next-Cursor`.
#[utoipa::path(get, path = "/api/v1/projects/{id}/runs", tag = "runs",
    params(("id" = i64, Path), ListQuery),
    responses((status = 200, body = [RunRecord], headers(
        ("x-next-cursor" = String, description = "The cursor of the next page, when this one is full"),
        ("link" = String, description = "The next page's URL, rel=\"next\""))), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ProjectId>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<(HeaderMap, Json<Vec<RunRecord>>)> {
    caller.require(Role::Viewer)?;
    state.store.project(id).await?;
    let limit = paging::limit(query.limit);
    let after = paging::after(query.cursor.as_deref())?;
    let page = state.store.runs_of_project(id, after, limit).await?;
    let ids: Vec<i64> = page.iter().map(|r| r.id).collect();
    let path = format!("/api/v1/projects/{id}/runs");
    let mut masked = Vec::with_capacity(page.len());
    if let Some(first) = page.first() {
        let masker = state.engine.output_masker(first.project_id).await?;
        for mut run in page {
            slipway_engine::masking::mask_run(&mut run, &masker);
            masked.push(RunRecord::from(run));
        }
    }
    Ok((paging::next_page(&path, &[], limit, &ids), Json(masked)))
}

/// One run.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs",
    params(("id" = i64, Path)), responses((status = 200, body = RunView), (status = 404, body = ErrorBody)))]
pub async fn show(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<RunView>> {
    caller.require(Role::Viewer)?;
    let run = state.store.run(id).await?;
    Ok(Json(view(&state, run).await?))
}

/// Answer the agent's reply with text (operator).
#[utoipa::path(post, path = "/api/v1/runs/{id}/continue", tag = "runs",
    request_body = AnswerRequest, params(("id" = i64, Path)),
    responses((status = 200, body = RunView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn continue_run(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(request): ApiJson<AnswerRequest>,
) -> ApiResult<Json<RunView>> {
    answer(caller, &state, id, RunAnswer::Continue(request.text)).await
}

/// Confirm the agent's plan (operator).
#[utoipa::path(post, path = "/api/v1/runs/{id}/confirm", tag = "runs",
    params(("id" = i64, Path)),
    responses((status = 200, body = RunView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn confirm(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<RunView>> {
    answer(caller, &state, id, RunAnswer::Confirm).await
}

/// Ask the agent to change its plan (operator).
#[utoipa::path(post, path = "/api/v1/runs/{id}/modify", tag = "runs",
    request_body = AnswerRequest, params(("id" = i64, Path)),
    responses((status = 200, body = RunView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn modify(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(request): ApiJson<AnswerRequest>,
) -> ApiResult<Json<RunView>> {
    answer(caller, &state, id, RunAnswer::Modify(request.text)).await
}

async fn answer(
    caller: Caller,
    state: &AppState,
    id: i64,
    answer: RunAnswer,
) -> ApiResult<Json<RunView>> {
    caller.require(Role::Operator)?;
    let run = state.engine.answer_run(id, answer).await?;
    Ok(Json(view(state, run).await?))
}

/// Cancel a run (operator): its agent stops and nothing revives it.
#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "runs",
    params(("id" = i64, Path)),
    responses((status = 200, body = RunView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<RunView>> {
    caller.require(Role::Operator)?;
    let run = state.engine.cancel_run(id).await?;
    Ok(Json(view(&state, run).await?))
}
