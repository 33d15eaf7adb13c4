//! `/api/v1/projects/{id}/secrets`: write-only values; only names and dates come back.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, TextBody};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use slipway_core::dotenv::{self, DotenvLine};
use slipway_core::secret::{validate_name, SecretValue};
use slipway_core::{ProjectId, Role};
use slipway_store::{SecretMeta, SecretWrite};

/// A secret as the API shows it: never its value.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SecretView {
    pub name: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<SecretMeta> for SecretView {
    fn from(meta: SecretMeta) -> Self {
        let rfc3339 = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        Self {
            name: meta.name,
            created_at: rfc3339(meta.created_at),
            updated_at: rfc3339(meta.updated_at),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretBody {
    /// The plaintext; stored encrypted and never returned.
    pub value: String,
}

/// List a project's secrets: names and dates only.
#[utoipa::path(get, path = "/api/v1/projects/{id}/secrets", tag = "secrets",
    params(("id" = i64, Path)), responses((status = 200, body = [SecretView]), (status = 404, body = ErrorBody)))]
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ProjectId>,
) -> ApiResult<Json<Vec<SecretView>>> {
    caller.require(Role::Viewer)?;
    let secrets = state.store.list_secrets(id).await?;
    Ok(Json(secrets.into_iter().map(SecretView::from).collect()))
}

/// Create or replace a secret (admin). 201 when created, 200 when replaced.
#[utoipa::path(put, path = "/api/v1/projects/{id}/secrets/{name}", tag = "secrets", request_body = SecretBody,
    params(("id" = i64, Path), ("name" = String, Path)),
    responses((status = 201, body = SecretView), (status = 200, body = SecretView),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((id, name)): ApiPath<(ProjectId, String)>,
    ApiJson(body): ApiJson<SecretBody>,
) -> ApiResult<(StatusCode, Json<SecretView>)> {
    caller.require(Role::Admin)?;
    validate_name(&name)?;
    let value = SecretValue::new(body.value)?;
    let write = state.store.put_secret(id, &name, &value).await?;
    let meta = state
        .store
        .list_secrets(id)
        .await?
        .into_iter()
        .find(|m| m.name == name)
        .ok_or_else(|| ApiError::internal("a secret just written is missing"))?;
    tracing::info!(project_id = %id, secret = %name, "secret written");
    let status = match write {
        SecretWrite::Created => StatusCode::CREATED,
        SecretWrite::Updated => StatusCode::OK,
    };
    Ok((status, Json(meta.into())))
}

/// Delete a secret (admin).
#[utoipa::path(delete, path = "/api/v1/projects/{id}/secrets/{name}", tag = "secrets",
    params(("id" = i64, Path), ("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((id, name)): ApiPath<(ProjectId, String)>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    state.store.delete_secret(id, &name).await?;
    tracing::info!(project_id = %id, secret = %name, "secret deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub imported: Vec<ImportedLine>,
    pub refused: Vec<RefusedLine>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ImportedLine {
    pub line: usize,
    pub name: String,
    /// `created` or `updated`.
    pub status: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RefusedLine {
    pub line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub reason: String,
}

/// Import secrets from dotenv text (admin). Every line is reported: imported, or refused
/// with the reason. Text that is not dotenv at all imports nothing (422).
#[utoipa::path(post, path = "/api/v1/projects/{id}/secrets/import", tag = "secrets",
    request_body(content = String, content_type = "text/plain"),
    params(("id" = i64, Path)),
    responses((status = 200, body = ImportReport), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn import(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ProjectId>,
    TextBody(text): TextBody,
) -> ApiResult<Json<ImportReport>> {
    caller.require(Role::Admin)?;
    let lines = dotenv::parse(&text).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_dotenv",
            e.to_string(),
        )
    })?;
    let mut entries = Vec::new();
    let mut refused = Vec::new();
    for line in &lines {
        match line {
            DotenvLine::Entry { line, name, value } => entries.push((*line, name.as_str(), value)),
            DotenvLine::Refused { line, name, reason } => refused.push(RefusedLine {
                line: *line,
                name: name.clone(),
                reason: reason.clone(),
            }),
        }
    }
    let writes: Vec<(&str, &SecretValue)> = entries.iter().map(|(_, n, v)| (*n, *v)).collect();
    let outcomes = if writes.is_empty() {
        state.store.project(id).await?;
        Vec::new()
    } else {
        state.store.put_secrets(id, &writes).await?
    };
    let imported = entries
        .iter()
        .zip(outcomes)
        .map(|((line, _, _), outcome)| ImportedLine {
            line: *line,
            name: outcome.name,
            status: match outcome.write {
                SecretWrite::Created => "created".into(),
                SecretWrite::Updated => "updated".into(),
            },
        })
        .collect::<Vec<_>>();
    tracing::info!(project_id = %id, imported = imported.len(), refused = refused.len(), "secrets imported");
    Ok(Json(ImportReport { imported, refused }))
}
