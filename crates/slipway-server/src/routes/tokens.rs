//! `/api/v1/tokens`: admins create, list and revoke API tokens.

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use slipway_core::{Invalid, Role, TokenId};
use slipway_store::TokenRecord;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub name: String,
    pub role: Role,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenView {
    pub id: TokenId,
    pub name: String,
    pub role: Role,
    pub created_at: String,
}

impl From<TokenRecord> for TokenView {
    fn from(record: TokenRecord) -> Self {
        Self {
            id: record.id,
            name: record.name,
            role: record.role,
            created_at: super::rfc3339(record.created_at),
        }
    }
}

/// A new token: the only response that ever carries its plaintext.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub record: TokenView,
    pub token: String,
}

/// List live tokens (admin).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = [TokenView]), (status = 403, body = ErrorBody)))]
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<TokenView>>> {
    caller.require(Role::Admin)?;
    let tokens = state.store.list_tokens().await?;
    Ok(Json(tokens.into_iter().map(TokenView::from).collect()))
}

/// Create a token (admin); its plaintext is shown once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = TokenRequest,
    responses((status = 201, body = CreatedToken), (status = 422, body = ErrorBody)))]
pub async fn create(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<TokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    caller.require(Role::Admin)?;
    let name = request.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(Invalid::new("name", "give the token a name of 1 to 100 characters").into());
    }
    let new = state.store.create_token(name, request.role).await?;
    tracing::info!(token_id = %new.record.id, role = %new.record.role, by = ?caller.token, "token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            record: new.record.into(),
            token: new.token,
        }),
    ))
}

/// Revoke a token (admin).
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = i64, Path)), responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<TokenId>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    state.store.revoke_token(id).await?;
    state.credentials_changed();
    tracing::info!(token_id = %id, by = ?caller.token, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}
