//! `POST /webhooks/github`: deliveries are verified over their raw body, stored durably with
//! the job that will act on them (`crate::intake`, shared with the relay's puller), and
//! answered before any processing.

use crate::error::ApiError;
use crate::extract::RawBody;
use crate::intake::{intake, IncomingDelivery, Intake};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub async fn github(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let delivery = header(&headers, "x-github-delivery");
    let incoming = IncomingDelivery {
        signature: header(&headers, "x-hub-signature-256"),
        content_type: header(&headers, "content-type"),
        event: header(&headers, "x-github-event"),
        delivery,
        body: &body,
    };
    let (code, status) = match intake(&state, incoming).await? {
        Intake::Pong { .. } => (StatusCode::OK, "pong"),
        Intake::Queued => (StatusCode::ACCEPTED, "queued"),
        Intake::Duplicate => (StatusCode::ACCEPTED, "duplicate"),
    };
    Ok((code, Json(json!({"status": status, "delivery": delivery}))))
}
