//! `/mcp`: Slipway's MCP tools over streamable HTTP (`slipway_mcp::http`), behind the API's
//! bearer tokens: 401 without a valid one, 403 for a tool call the token's role does not
//! allow (viewers read; operators validate and start or answer runs).

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio_util::sync::CancellationToken;

/// The `/mcp` route; `stop` ends its open streams when the server shuts down.
pub fn routes(state: &AppState, stop: CancellationToken) -> Router<AppState> {
    let service = slipway_mcp::http::service(
        state.store.clone(),
        state.engine.clone(),
        stop,
        crate::MAX_BODY_BYTES,
    );
    Router::new()
        .route_service("/mcp", service)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
}

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
