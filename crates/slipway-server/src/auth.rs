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
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: Role,
    /// `None` for the token given in `SLIPWAY_ADMIN_TOKEN`.
    pub token: Option<TokenId>,
    /// Who it is, as lists show who started something: "token ci-bot".
    pub name: String,
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
        caller_for(state, &bearer_hash(&parts.headers)?).await
    }
}

/// The SHA-256 of the request's bearer token; 401 saying what to send when there is none.
pub(crate) fn bearer_hash(headers: &axum::http::HeaderMap) -> Result<[u8; 32], ApiError> {
    let header = headers
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
    Ok(hash_token(token))
}

/// The caller a token (given by its hash) stands for; 401 when it is unknown or revoked.
pub async fn caller_for(state: &AppState, hash: &[u8; 32]) -> Result<Caller, ApiError> {
    if let Some(admin) = &state.env_admin_hash {
        if bool::from(admin.ct_eq(hash)) {
            return Ok(Caller {
                role: Role::Admin,
                token: None,
                name: "the admin token".into(),
            });
        }
    }
    match state.store.token_by_hash(hash).await? {
        Some(record) => Ok(Caller {
            role: record.role,
            token: Some(record.id),
            name: format!("token {}", record.name),
        }),
        None => Err(ApiError::unauthorized(
            "the token is unknown or revoked; ask an admin for a new one",
        )),
    }
}

/// The dashboard's session cookie.
pub const SESSION_COOKIE: &str = "slipway_session";

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A signed-in dashboard user: a live session whose token is still valid.
#[derive(Debug, Clone)]
pub struct SessionCaller {
    pub caller: Caller,
    pub session_id: String,
    pub csrf: String,
}

impl SessionCaller {
    /// Opens the session the request's cookie names, if any and still valid.
    pub async fn from_parts(parts: &Parts, state: &AppState) -> Result<Option<Self>, ApiError> {
        let Some(id) = cookie(parts, SESSION_COOKIE) else {
            return Ok(None);
        };
        let Some(session) = state.store.session(id).await? else {
            return Ok(None);
        };
        match caller_for(state, &session.token_hash).await {
            Ok(caller) => Ok(Some(Self {
                caller,
                session_id: id.to_owned(),
                csrf: session.csrf,
            })),
            Err(_) => Ok(None),
        }
    }

    /// Whether `token` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, token: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(token.as_bytes()))
    }
}
