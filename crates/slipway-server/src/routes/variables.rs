//! `/api/v1/projects/{id}/variables`: plain configuration beside secrets. Values are shown,
//! never masked, and given to the project's commands as secrets are (not to a fork's).

use super::secrets::{import_dotenv, ImportAs, ImportReport};
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, TextBody};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use slipway_core::secret::{validate_env_name, SecretValue};
use slipway_core::{ProjectId, Role};
use slipway_store::{SecretWrite, Variable};

/// A variable, with its value.
#[derive(Serialize, utoipa::ToSchema)]
pub struct VariableView {
    pub name: String,
    pub value: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Variable> for VariableView {
    fn from(variable: Variable) -> Self {
        Self {
            name: variable.name,
            value: variable.value,
            created_at: super::rfc3339(variable.created_at),
            updated_at: super::rfc3339(variable.updated_at),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariableBody {
    /// The value, stored and shown as it is.
    pub value: String,
}

/// List a project's variables, values included.
#[utoipa::path(get, path = "/api/v1/projects/{id}/variables", tag = "variables",
    params(("id" = i64, Path)), responses((status = 200, body = [VariableView]), (status = 404, body = ErrorBody)))]
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ProjectId>,
) -> ApiResult<Json<Vec<VariableView>>> {
    caller.require(Role::Viewer)?;
    let variables = state.store.list_variables(id).await?;
    Ok(Json(
        variables.into_iter().map(VariableView::from).collect(),
    ))
}

/// Create or replace a variable (admin). 201 when created, 200 when replaced; a name that is
/// a secret already is refused (409).
#[utoipa::path(put, path = "/api/v1/projects/{id}/variables/{name}", tag = "variables", request_body = VariableBody,
    params(("id" = i64, Path), ("name" = String, Path)),
    responses((status = 201, body = VariableView), (status = 200, body = VariableView),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((id, name)): ApiPath<(ProjectId, String)>,
    ApiJson(body): ApiJson<VariableBody>,
) -> ApiResult<(StatusCode, Json<VariableView>)> {
    caller.require(Role::Admin)?;
    validate_env_name(&name, "variable")?;
    // The same bounds as a secret's value (not empty, at most 64 KiB).
    let value = SecretValue::new(body.value)?;
    let writes = state
        .store
        .put_variables(id, &[(name.as_str(), value.expose())])
        .await?;
    let variable = state
        .store
        .list_variables(id)
        .await?
        .into_iter()
        .find(|v| v.name == name)
        .ok_or_else(|| crate::ApiError::internal("a variable just written is missing"))?;
    tracing::info!(project_id = %id, variable = %name, "variable written");
    let status = match writes.first() {
        Some(SecretWrite::Created) => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    Ok((status, Json(variable.into())))
}

/// Delete a variable (admin).
#[utoipa::path(delete, path = "/api/v1/projects/{id}/variables/{name}", tag = "variables",
    params(("id" = i64, Path), ("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((id, name)): ApiPath<(ProjectId, String)>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    state.store.delete_variable(id, &name).await?;
    tracing::info!(project_id = %id, variable = %name, "variable deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Import variables from dotenv text (admin): every line a variable, each reported.
#[utoipa::path(post, path = "/api/v1/projects/{id}/variables/import", tag = "variables",
    request_body(content = String, content_type = "text/plain"),
    params(("id" = i64, Path)),
    responses((status = 200, body = ImportReport), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn import(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ProjectId>,
    TextBody(text): TextBody,
) -> ApiResult<Json<ImportReport>> {
    caller.require(Role::Admin)?;
    Ok(Json(
        import_dotenv(&state, id, &text, ImportAs::Variables).await?,
    ))
}
