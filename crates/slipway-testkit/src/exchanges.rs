//! What a fake answered, recorded so that a test can hold every answer to the service's
//! published description (see `openapi.rs`).

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// One answer: the route as the fake spells it, the method, the status and the JSON body
/// (`Null` when there is none).
#[derive(Debug, Clone)]
pub struct Exchange {
    pub route: String,
    pub method: String,
    pub status: u16,
    pub body: Value,
}

pub type Exchanges = Arc<Mutex<Vec<Exchange>>>;

/// A route layer that records each answer into `exchanges`.
pub async fn record(
    axum::extract::State(exchanges): axum::extract::State<Exchanges>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let method = request.method().to_string();
    let response = next.run(request).await;
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    exchanges.lock().unwrap().push(Exchange {
        route,
        method,
        status: parts.status.as_u16(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    });
    Response::from_parts(parts, Body::from(bytes))
}
