//! `/mcp`: Slipway's MCP tools over streamable HTTP (`slipway_mcp::http`), behind the API's
//! bearer tokens: 401 without a valid one, 403 for a tool call the token's role does not
//! allow (viewers read; operators validate and start or answer runs). A session answers
//! only the token that opened it (404 to any other), and sessions are capped
//! (`slipway_mcp::sessions`: 429 past a token's cap, 503 past the server's).

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use slipway_mcp::sessions::{Refusal, SessionGuard, SessionLimits};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The header naming a request's MCP session.
const SESSION_ID: &str = "mcp-session-id";

/// The `/mcp` route; `stop` ends its open streams when the server shuts down.
pub fn routes(state: &AppState, stop: CancellationToken) -> Router<AppState> {
    let (service, guard) = slipway_mcp::http::service(
        state.store.clone(),
        state.engine.clone(),
        stop,
        crate::MAX_BODY_BYTES,
        SessionLimits::default(),
    );
    Router::new()
        .route_service("/mcp", service)
        .route_layer(axum::middleware::from_fn(
            move |request: Request, next: Next| {
                let guard = guard.clone();
                async move { own_sessions(&guard, request, next).await }
            },
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
}

/// Keeps each session its opener's: a request naming a session another token opened (or
/// none open) gets 404, as if it did not exist; a request opening one is held to the caps.
async fn own_sessions(guard: &SessionGuard, request: Request, next: Next) -> Response {
    let Some(owner) = request.extensions().get::<Owner>().map(|o| o.0.to_string()) else {
        return ApiError::internal("/mcp reached without its caller").into_response();
    };
    let method = request.method().clone();
    let named = request
        .headers()
        .get(SESSION_ID)
        .map(|id| id.to_str().unwrap_or_default().to_owned());
    let reservation = match &named {
        Some(id) if !guard.owns(id, &owner) => {
            return ApiError::not_found(
                "no MCP session with that mcp-session-id is open for this token; start one \
                 with an initialize request (without the header)",
            )
            .into_response()
        }
        Some(_) => None,
        None if method == Method::POST => match guard.admit(&owner).await {
            Ok(reservation) => Some(reservation),
            Err(refusal) => return refused(refusal),
        },
        None => None,
    };
    let response = next.run(request).await;
    if let Some(reservation) = reservation {
        if let Some(id) = response.headers().get(SESSION_ID) {
            reservation.bind(id.to_str().unwrap_or_default());
        }
    }
    if let (Some(id), &Method::DELETE) = (&named, &method) {
        if response.status().is_success() {
            guard.forget(id);
        }
    }
    response
}

fn refused(refusal: Refusal) -> Response {
    let error = match refusal {
        Refusal::TokenFull(_) => ApiError {
            code: "too_many_sessions",
            ..ApiError::too_many(refusal.to_string(), 60)
        },
        Refusal::ServerFull(_) => ApiError {
            retry_after_secs: Some(60),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_sessions",
                refusal.to_string(),
            )
        },
    };
    error.into_response()
}

/// Whose sessions a request may use: the token's id, or the administrator's token.
#[derive(Clone)]
struct Owner(Arc<str>);

/// Authenticates the request and refuses tool calls above the caller's role; the caller
/// goes on to the tools in the request's extensions.
async fn authorize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let caller = match Caller::from_request_parts(&mut parts, &state).await {
        Ok(caller) => caller,
        Err(error) => {
            let mut response = error.into_response();
            if response.status() == StatusCode::UNAUTHORIZED {
                // MCP clients read the scheme from here (RFC 6750).
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"slipway\""),
                );
            }
            return response;
        }
    };
    let body = match axum::body::to_bytes(body, crate::MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the request body is over {} bytes", crate::MAX_BODY_BYTES),
            )
            .into_response()
        }
    };
    let owner = match caller.token {
        Some(id) => format!("token {id}"),
        None => "SLIPWAY_ADMIN_TOKEN".to_owned(),
    };
    parts.extensions.insert(Owner(owner.into()));
    let caller = slipway_mcp::Caller {
        role: caller.role,
        name: caller.name,
    };
    if let Some(why) = slipway_mcp::http::forbidden_call(&caller, &body) {
        return ApiError::forbidden(why).into_response();
    }
    parts.extensions.insert(caller);
    next.run(Request::from_parts(parts, Body::from(body))).await
}
