//! `/api/v1/projects/{id}/validations` and `/api/v1/validations/{id}`: start, read, follow
//! the log, retry and cancel validations.

use super::paging;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::responses::{LogLine, ValidationRecord};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use slipway_core::validation::StepName;
use slipway_core::validation::ValidationStatus;
use slipway_core::{ProjectId, Role, ValidationId};
use slipway_engine::{SubmitError, Target};
use slipway_store::ValidationFilter;

/// What to validate: exactly one of `branch`, `sha` or `pr`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationRequest {
    pub branch: Option<String>,
    /// A full commit id, or (for a local repository) any revision git understands.
    pub sha: Option<String>,
    pub pr: Option<i64>,
}

impl From<SubmitError> for ApiError {
    fn from(error: SubmitError) -> Self {
        match error {
            SubmitError::Invalid(message) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
            }
            SubmitError::Store(error) => error.into(),
        }
    }
}

/// Start a validation (operator).
#[utoipa::path(post, path = "/api/v1/projects/{id}/validations", tag = "validations",
    request_body = ValidationRequest, params(("id" = i64, Path)),
    responses((status = 201, body = ValidationRecord), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn start(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ProjectId>,
    ApiJson(request): ApiJson<ValidationRequest>,
) -> ApiResult<(StatusCode, Json<ValidationRecord>)> {
    caller.require(Role::Operator)?;
    let project = state.store.project(id).await?;
    let target = match (request.branch, request.sha, request.pr) {
        (Some(branch), None, None) => {
            slipway_core::project::validate_branch("branch", &branch)?;
            Target::Branch(branch)
        }
        (None, Some(sha), None) => Target::Sha(sha),
        (None, None, Some(number)) => {
            let record = state
                .engine
                .validate_pull_request_number(&project, number, &caller.name)
                .await?;
            tracing::info!(validation = %record.id, project_id = %id, pr = number, "validation queued");
            return Ok((
                StatusCode::CREATED,
                Json(state.engine.masked_validation(record).await?.into()),
            ));
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "give exactly one of branch, sha or pr, e.g. {\"branch\": \"main\"}",
            ))
        }
    };
    let record = state
        .engine
        .submit_by(&project, target, caller.name.clone())
        .await?;
    tracing::info!(validation = %record.id, project_id = %id, sha = %record.sha, "validation queued");
    Ok((
        StatusCode::CREATED,
        Json(state.engine.masked_validation(record).await?.into()),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// At most this many, newest first (default 50, at most 500).
    pub limit: Option<u32>,
    /// The previous page's `X-Next-Cursor`: the page after it.
    pub cursor: Option<String>,
    /// Only validations in this state (queued, running, passed, failed, error, cancelled).
    pub status: Option<String>,
    /// Only validations of this branch (a pull request's head branch included).
    pub branch: Option<String>,
}

/// A project's validations, newest first; the next page's cursor is in `X-Next-Cursor`.
#[utoipa::path(get, path = "/api/v1/projects/{id}/validations", tag = "validations",
    params(("id" = i64, Path), ListQuery),
    responses((status = 200, body = [ValidationRecord], headers(
        ("x-next-cursor" = String, description = "The cursor of the next page, when this one is full"),
        ("link" = String, description = "The next page's URL, rel=\"next\""))), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ProjectId>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<(HeaderMap, Json<Vec<ValidationRecord>>)> {
    caller.require(Role::Viewer)?;
    let limit = paging::limit(query.limit);
    let filter = filter(&query)?;
    let page = state.store.list_validations(id, &filter, limit).await?;
    let mut kept = Vec::new();
    if let Some(status) = &query.status {
        kept.push(("status", status.clone()));
    }
    if let Some(branch) = &query.branch {
        kept.push(("branch", branch.clone()));
    }
    let ids: Vec<i64> = page.iter().map(|v| v.id.0).collect();
    let path = format!("/api/v1/projects/{id}/validations");
    let page: Vec<ValidationRecord> = state
        .engine
        .masked_validations(page)
        .await?
        .into_iter()
        .map(ValidationRecord::from)
        .collect();
    Ok((paging::next_page(&path, &kept, limit, &ids), Json(page)))
}

/// The store's filter for a list query; 422 for a status that does not exist.
pub fn filter(query: &ListQuery) -> Result<ValidationFilter, ApiError> {
    let status = query
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|text| {
            text.parse::<ValidationStatus>().map_err(|_| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid",
                    format!(
                        "status: '{text}' is not a validation state; \
                         use queued, running, passed, failed, error or cancelled"
                    ),
                )
            })
        })
        .transpose()?;
    Ok(ValidationFilter {
        pr: None,
        status,
        branch: query.branch.clone().filter(|b| !b.is_empty()),
        before: paging::after(query.cursor.as_deref())?.map(ValidationId),
    })
}

/// One validation with its steps.
#[utoipa::path(get, path = "/api/v1/validations/{id}", tag = "validations",
    params(("id" = i64, Path)), responses((status = 200, body = ValidationView), (status = 404, body = ErrorBody)))]
pub async fn show(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ValidationId>,
) -> ApiResult<Json<ValidationView>> {
    caller.require(Role::Viewer)?;
    let validation = state.store.validation(id).await?;
    let validation = state.engine.masked_validation(validation).await?;
    let analysis = state.engine.analysis_evidence(id).await;
    Ok(Json(ValidationView {
        validation: validation.into(),
        analysis,
    }))
}

/// A validation, with its analysis's findings once that step ran.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ValidationView {
    #[serde(flatten)]
    pub validation: ValidationRecord,
    /// `files`, `findings` (`rule`, `severity`, `file`, `line`, `message`, `code`) and
    /// `languages` (time per language): DESIGN.md §6.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub analysis: Option<serde_json::Value>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Only this step's lines.
    pub step: Option<String>,
    /// Only lines after this sequence number (0: from the start).
    pub after: Option<i64>,
    /// At most this many lines (default 1000, at most 10000).
    pub limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LogPage {
    pub lines: Vec<LogLine>,
    /// Pass as `after` to get the lines that follow.
    pub next_after: i64,
}

/// A validation's log lines (secrets masked), in order.
#[utoipa::path(get, path = "/api/v1/validations/{id}/logs", tag = "validations",
    params(("id" = i64, Path), LogQuery),
    responses((status = 200, body = LogPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn logs(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ValidationId>,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> ApiResult<Json<LogPage>> {
    caller.require(Role::Viewer)?;
    state.store.validation(id).await?;
    let step = match query.step.as_deref() {
        None => None,
        Some(text) => Some(text.parse::<StepName>().map_err(|_| {
            ApiError::bad_request(
                "invalid_query",
                format!("step '{text}' is not a step; use checkout, setup, build, deploy, test, ui, analysis, judge or merge"),
            )
        })?),
    };
    let after = query.after.unwrap_or(0).max(0);
    let limit = query.limit.unwrap_or(1_000).clamp(1, 10_000);
    let lines = state.store.logs(id, step, after, limit).await?;
    let next_after = lines.last().map(|l| l.seq).unwrap_or(after);
    let lines = lines.into_iter().map(LogLine::from).collect();
    Ok(Json(LogPage { lines, next_after }))
}

/// A file a validation kept: a browser check's evidence (JSON) or screenshot (PNG).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Artifact {
    pub name: String,
    pub bytes: u64,
    pub content_type: &'static str,
    /// Where to read it (same authentication).
    pub url: String,
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// The validation's artifacts, by name.
#[utoipa::path(get, path = "/api/v1/validations/{id}/artifacts", tag = "validations",
    params(("id" = i64, Path)), responses((status = 200, body = Vec<Artifact>), (status = 404, body = ErrorBody)))]
pub async fn artifacts(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ValidationId>,
) -> ApiResult<Json<Vec<Artifact>>> {
    caller.require(Role::Viewer)?;
    state.store.validation(id).await?;
    let mut list = Vec::new();
    if let Ok(mut entries) = tokio::fs::read_dir(state.engine.artifacts_dir(id)).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(meta) = entry.metadata().await else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            list.push(Artifact {
                url: format!("/api/v1/validations/{id}/artifacts/{name}"),
                content_type: content_type(&name),
                bytes: meta.len(),
                name,
            });
        }
    }
    list.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(list))
}

/// One artifact's bytes, with its content type.
#[utoipa::path(get, path = "/api/v1/validations/{id}/artifacts/{name}", tag = "validations",
    params(("id" = i64, Path), ("name" = String, Path)), responses((status = 200), (status = 404, body = ErrorBody)))]
pub async fn artifact(
    caller: Caller,
    State(state): State<AppState>,
    axum::extract::Path((id, name)): axum::extract::Path<(i64, String)>,
) -> ApiResult<axum::response::Response> {
    caller.require(Role::Viewer)?;
    read_artifact(&state, ValidationId(id), &name).await
}

/// An artifact as an HTTP answer; a name that is not a plain file name is not found.
pub(crate) async fn read_artifact(
    state: &AppState,
    id: ValidationId,
    name: &str,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    state.store.validation(id).await?;
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let missing = || ApiError::not_found(format!("validation {id} has no artifact '{name}'"));
    if !plain {
        return Err(missing());
    }
    let bytes = tokio::fs::read(state.engine.artifacts_dir(id).join(name))
        .await
        .map_err(|_| missing())?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, content_type(name)),
            (axum::http::header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        bytes,
    )
        .into_response())
}

/// Validate the same commit again, as a new validation (operator).
#[utoipa::path(post, path = "/api/v1/validations/{id}/retry", tag = "validations",
    params(("id" = i64, Path)), responses((status = 201, body = ValidationRecord), (status = 404, body = ErrorBody)))]
pub async fn retry(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ValidationId>,
) -> ApiResult<(StatusCode, Json<ValidationRecord>)> {
    caller.require(Role::Operator)?;
    let record = state.engine.retry(id).await?;
    tracing::info!(validation = %record.id, retry_of = %id, "validation retried");
    Ok((
        StatusCode::CREATED,
        Json(state.engine.masked_validation(record).await?.into()),
    ))
}

/// Cancel a validation (operator): a queued one never starts, a running one is stopped
/// and its processes killed. Cancelling a finished one changes nothing.
#[utoipa::path(post, path = "/api/v1/validations/{id}/cancel", tag = "validations",
    params(("id" = i64, Path)), responses((status = 202, body = ValidationRecord), (status = 404, body = ErrorBody)))]
pub async fn cancel(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ValidationId>,
) -> ApiResult<(StatusCode, Json<ValidationRecord>)> {
    caller.require(Role::Operator)?;
    state.engine.cancel(id).await?;
    tracing::info!(validation = %id, "validation cancel requested");
    Ok((
        StatusCode::ACCEPTED,
        Json(state.store.validation(id).await?.into()),
    ))
}
