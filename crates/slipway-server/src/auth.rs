//! Bearer-token authentication and role checks.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use slipway_core::{Role, TokenId};
use slipway_store::hash_token;
use subtle::ConstantTimeEq;

/// Who is calling: the role of a valid token. Extracting it is what authenticates a route.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub role: Role,
    /// `None` for the token given in `SLIPWAY_ADMIN_TOKEN`.
    pub token: Option<TokenId>,
}

impl Caller {
    /// 403 unless the caller's role includes `required`.
    pub fn require(&self, required: Role) -> Result<(), ApiError> {
        if self.role.allows(required) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs a token with the {required} role; yours has {}",
                self.role
            )))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "missing token: send 'Authorization: Bearer <token>' \
                     (create one with 'slipway token create --role viewer')",
                )
            })?
            .to_str()
            .map_err(|_| ApiError::unauthorized("the Authorization header is not ASCII"))?;
        let token = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be 'Bearer <token>'")
            })?;
        let hash = hash_token(token);
        if let Some(admin) = &state.env_admin_hash {
            if bool::from(admin.ct_eq(&hash)) {
                return Ok(Caller {
                    role: Role::Admin,
                    token: None,
                });
            }
        }
        match state.store.token_by_hash(&hash).await? {
            Some(record) => Ok(Caller {
                role: record.role,
                token: Some(record.id),
            }),
            None => Err(ApiError::unauthorized(
                "the token is unknown or revoked; ask an admin for a new one",
            )),
        }
    }
}
