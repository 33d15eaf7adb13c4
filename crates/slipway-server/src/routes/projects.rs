//! `/api/v1/projects`: create, list, read, update, delete.

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use slipway_core::{Invalid, Project, ProjectDraft, ProjectId, ProjectPatch, RepoLocation, Role};
use std::path::Path;

/// Checks a draft's fields and, for a local repository, that it is a git repository on disk.
pub(crate) async fn validate(draft: &ProjectDraft) -> Result<(), Invalid> {
    if let RepoLocation::Local { path } = draft.validate()? {
        if !is_git_repository(&path).await {
            return Err(Invalid::new(
                "repo",
                format!(
                    "'{}' is not an existing local git repository; \
                     give the path of a repository (with .git, or a bare one) or 'owner/name' for GitHub",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

async fn is_git_repository(path: &Path) -> bool {
    let is_dir = |p: std::path::PathBuf| async move {
        tokio::fs::metadata(&p)
            .await
            .map(|m| m.is_dir())
            .unwrap_or(false)
    };
    let is_file = |p: std::path::PathBuf| async move {
        tokio::fs::metadata(&p)
            .await
            .map(|m| m.is_file())
            .unwrap_or(false)
    };
    tokio::fs::metadata(path.join(".git")).await.is_ok()
        || (is_file(path.join("HEAD")).await && is_dir(path.join("objects")).await)
}

/// List every project.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects",
    responses((status = 200, body = [Project]), (status = 401, body = ErrorBody)))]
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
) -> ApiResult<Json<std::sync::Arc<[Project]>>> {
    caller.require(Role::Viewer)?;
    Ok(Json(state.store.list_projects().await?))
}

/// Create a project (admin); for a GitHub repository, its webhook too.
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = ProjectDraft,
    responses((status = 201, body = Project), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn create(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(draft): ApiJson<ProjectDraft>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    caller.require(Role::Admin)?;
    validate(&draft).await?;
    let project = state.store.create_project(&draft).await?;
    tracing::info!(project_id = %project.id, "project created");
    // The repository's webhook (GET …/webhook shows how that went; the project stands).
    state.engine.set_up_webhook(&project).await;
    Ok((StatusCode::CREATED, Json(project)))
}

/// Read one project.
#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects",
    params(("id" = i64, Path)), responses((status = 200, body = Project), (status = 404, body = ErrorBody)))]
pub async fn show(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ProjectId>,
) -> ApiResult<Json<Project>> {
    caller.require(Role::Viewer)?;
    Ok(Json(state.store.project(id).await?))
}

/// Change some of a project's fields (admin).
#[utoipa::path(patch, path = "/api/v1/projects/{id}", tag = "projects", request_body = ProjectPatch,
    params(("id" = i64, Path)),
    responses((status = 200, body = Project), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ProjectId>,
    ApiJson(patch): ApiJson<ProjectPatch>,
) -> ApiResult<Json<Project>> {
    caller.require(Role::Admin)?;
    let current = state.store.project(id).await?;
    let draft = patch.apply(&current);
    validate(&draft).await?;
    Ok(Json(state.store.update_project(id, &draft).await?))
}

/// Delete a project with its settings and secrets, and the webhook Slipway set up (admin).
#[utoipa::path(delete, path = "/api/v1/projects/{id}", tag = "projects",
    params(("id" = i64, Path)), responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ProjectId>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    let project = state.store.project(id).await?;
    state.engine.remove_webhook(&project).await;
    state.store.delete_project(id).await?;
    tracing::info!(project_id = %id, "project deleted");
    Ok(StatusCode::NO_CONTENT)
}
