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
    /// Set when the value just written is short (under 8 characters): how it is masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl From<SecretMeta> for SecretView {
    fn from(meta: SecretMeta) -> Self {
        Self {
            name: meta.name,
            created_at: super::rfc3339(meta.created_at),
            updated_at: super::rfc3339(meta.updated_at),
            warning: None,
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

/// Create or replace a secret (admin). 201 when created, 200 when replaced. A value under 4
/// characters is refused (422: store it as a variable); one under 8 is accepted with a
/// `warning` (it is masked only where it stands as a whole word). A name that is a variable
/// already is refused (409).
#[utoipa::path(put, path = "/api/v1/projects/{id}/secrets/{name}", tag = "secrets", request_body = SecretBody,
    params(("id" = i64, Path), ("name" = String, Path)),
    responses((status = 201, body = SecretView), (status = 200, body = SecretView),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((id, name)): ApiPath<(ProjectId, String)>,
    ApiJson(body): ApiJson<SecretBody>,
) -> ApiResult<(StatusCode, Json<SecretView>)> {
    caller.require(Role::Admin)?;
    validate_name(&name)?;
    let (value, warning) = SecretValue::new_secret(body.value)?;
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
    let view = SecretView {
        warning,
        ..meta.into()
    };
    Ok((status, Json(view)))
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
    /// `secret` or `variable`.
    pub kind: String,
    /// `created` or `updated`.
    pub status: String,
    /// Why it went where it did, or how a short secret is masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RefusedLine {
    pub line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub reason: String,
}

/// Import secrets from dotenv text (admin). Every line is reported: imported, or refused
/// with the reason. A line whose value is under 4 characters (a switch like `FEATURE=on`)
/// becomes a variable, as it is too short to be a secret. Text that is not dotenv at all
/// imports nothing (422). All lines are written in one transaction.
#[utoipa::path(post, path = "/api/v1/projects/{id}/secrets/import", tag = "secrets",
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
    let report = import_dotenv(&state, id, &text, ImportAs::Secrets).await?;
    Ok(Json(report))
}

/// What a `.env` import makes of its lines.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ImportAs {
    /// Secrets, but a value too short to be one becomes a variable.
    Secrets,
    /// Every line a variable.
    Variables,
}

/// One line's destination under `ImportAs`: (`is a variable`, note).
pub fn destination(value: &SecretValue, rule: ImportAs) -> (bool, Option<String>) {
    if rule == ImportAs::Variables {
        return (true, None);
    }
    match SecretValue::new_secret(value.expose().to_owned()) {
        Ok((_, warning)) => (false, warning),
        Err(_) => (
            true,
            Some(format!(
                "under {} characters, too short to be a secret: kept as a variable (shown, never masked)",
                slipway_core::secret::MIN_SECRET_CHARS
            )),
        ),
    }
}

/// Parses and stores a `.env` text in one transaction; every line reported.
pub async fn import_dotenv(
    state: &AppState,
    id: ProjectId,
    text: &str,
    rule: ImportAs,
) -> ApiResult<ImportReport> {
    let lines = dotenv::parse(text).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_dotenv",
            e.to_string(),
        )
    })?;
    let mut secrets = Vec::new();
    let mut variables = Vec::new();
    let mut refused = Vec::new();
    for line in &lines {
        match line {
            DotenvLine::Entry { line, name, value } => match destination(value, rule) {
                (true, note) => variables.push((*line, name.as_str(), value, note)),
                (false, note) => secrets.push((*line, name.as_str(), value, note)),
            },
            DotenvLine::Refused { line, name, reason } => refused.push(RefusedLine {
                line: *line,
                name: name.clone(),
                reason: reason.clone(),
            }),
        }
    }
    let secret_writes: Vec<(&str, &SecretValue)> =
        secrets.iter().map(|(_, n, v, _)| (*n, *v)).collect();
    let variable_writes: Vec<(&str, &str)> = variables
        .iter()
        .map(|(_, n, v, _)| (*n, v.expose()))
        .collect();
    let (secret_outcomes, variable_outcomes) = state
        .store
        .put_secrets_and_variables(id, &secret_writes, &variable_writes)
        .await?;
    if secrets.is_empty() && variables.is_empty() {
        state.store.project(id).await?;
    }
    let status = |write: SecretWrite| match write {
        SecretWrite::Created => "created".to_owned(),
        SecretWrite::Updated => "updated".to_owned(),
    };
    let mut imported: Vec<ImportedLine> = secrets
        .into_iter()
        .zip(secret_outcomes)
        .map(|((line, _, _, note), outcome)| (line, "secret", note, outcome))
        .chain(
            variables
                .into_iter()
                .zip(variable_outcomes)
                .map(|((line, _, _, note), outcome)| (line, "variable", note, outcome)),
        )
        .map(|(line, kind, note, outcome)| ImportedLine {
            line,
            name: outcome.name,
            kind: kind.into(),
            status: status(outcome.write),
            note,
        })
        .collect();
    imported.sort_by_key(|i| i.line);
    tracing::info!(project_id = %id, imported = imported.len(), refused = refused.len(), "dotenv imported");
    Ok(ImportReport { imported, refused })
}
