//! Signing in and out of the dashboard, the session extractor, and CSRF checks.

use super::{page_error, render, version, LoginPage, PageError};
use crate::auth::{caller_for, SessionCaller, SESSION_COOKIE};
use crate::state::AppState;
use axum::extract::{FromRequestParts, State};
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use slipway_store::hash_token;
use std::time::Duration;

/// How long a dashboard session lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// A signed-in user; anyone else is sent to the sign-in page.
pub struct Signed(pub SessionCaller);

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match SessionCaller::from_parts(parts, state).await {
            Ok(Some(session)) => Ok(Signed(session)),
            Ok(None) => Err(Redirect::to("/login").into_response()),
            Err(error) => Err(page_error(error.status, &error.message)),
        }
    }
}

impl Signed {
    /// 403 unless the form carries this session's CSRF token.
    pub fn check(&self, csrf: &str) -> Result<(), PageError> {
        if self.0.csrf_matches(csrf) {
            Ok(())
        } else {
            Err(PageError::new(
                StatusCode::FORBIDDEN,
                "this form is stale or came from another site; reload the page and try again",
            ))
        }
    }
}

pub async fn login_page() -> Response {
    render(&LoginPage {
        version: version(),
        error: None,
    })
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

pub async fn login(State(state): State<AppState>, Form(form): Form<LoginForm>) -> Response {
    let hash = hash_token(form.token.trim());
    if caller_for(&state, &hash).await.is_err() {
        let page = LoginPage {
            version: version(),
            error: Some("That token is unknown or revoked.".into()),
        };
        return (StatusCode::UNAUTHORIZED, render(&page)).into_response();
    }
    match state.store.create_session(&hash, SESSION_LIFETIME).await {
        Ok((id, _)) => {
            let cookie = format!(
                "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
                SESSION_LIFETIME.as_secs(),
                if state.secure_cookies { "; Secure" } else { "" }
            );
            ([(SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        Err(error) => page_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &crate::ApiError::internal(error).message,
        ),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

pub async fn logout(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = signed.check(&form.csrf) {
        return refused.into_response();
    }
    let _ = state.store.delete_session(&signed.0.session_id).await;
    state.credentials_changed();
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}
