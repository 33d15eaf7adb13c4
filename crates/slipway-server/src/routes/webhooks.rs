//! `POST /webhooks/github`: deliveries are verified over their raw body, stored durably with
//! the job that will act on them, and answered before any processing.

use crate::error::ApiError;
use crate::extract::RawBody;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use slipway_forge::webhook;
use slipway_store::Recorded;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub async fn github(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Some(secret) = &state.webhook_secret else {
        return Err(ApiError::unauthorized(
            "no webhook secret is configured, so no delivery can be verified; set GITHUB_WEBHOOK_SECRET to the secret of the GitHub webhook",
        ));
    };
    let signature = header(&headers, "x-hub-signature-256").ok_or_else(|| {
        ApiError::unauthorized("missing X-Hub-Signature-256: configure the webhook with a secret")
    })?;
    if !webhook::signature_is_valid(secret.as_bytes(), &body, signature) {
        tracing::warn!("webhook delivery with a wrong signature refused");
        return Err(ApiError::unauthorized(
            "X-Hub-Signature-256 does not match the body: the webhook's secret differs from GITHUB_WEBHOOK_SECRET",
        ));
    }
    let event = header(&headers, "x-github-event")
        .filter(|e| !e.is_empty() && e.len() <= 64)
        .ok_or_else(|| ApiError::bad_request("missing_event", "missing X-GitHub-Event header"))?;
    let delivery = header(&headers, "x-github-delivery")
        .filter(|d| {
            !d.is_empty()
                && d.len() <= 100
                && d.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing_delivery",
                "missing or malformed X-GitHub-Delivery header (a GUID)",
            )
        })?;
    let is_ping = event == "ping";
    let repository = webhook::repository_of(&body);
    let recorded = state
        .store
        .record_delivery(delivery, event, repository.as_deref(), &body, !is_ping)
        .await?;
    tracing::info!(delivery, event, repository = ?repository, duplicate = recorded == Recorded::Duplicate, "webhook delivery");
    if is_ping {
        return Ok((
            StatusCode::OK,
            Json(json!({"status": "pong", "delivery": delivery})),
        ));
    }
    let status = match recorded {
        Recorded::New => {
            state.engine.delivery_recorded();
            "queued"
        }
        Recorded::Duplicate => "duplicate",
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"status": status, "delivery": delivery})),
    ))
}
