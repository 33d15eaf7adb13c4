//! Liveness, readiness, metrics and the OpenAPI document.

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};
use slipway_core::Role;

/// Liveness: the process answers.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// A process is live when it was heard from within this (it beats every 5 s).
const WORKER_LIVE_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Readiness: the database answers; with which backend, and how many processes running jobs
/// were heard from lately (0 is ready too: `serve --workers 0` waits for workers). The webhook
/// relay's state is shown, not required: while the relay is out of reach GitHub's deliveries
/// wait there, and the API still serves.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let database = state.store.backend().as_str();
    let checked = async {
        state.store.ping().await?;
        state.store.live_workers(WORKER_LIVE_WITHIN).await
    };
    let (code, mut body) = match checked.await {
        Ok(workers) => (
            StatusCode::OK,
            json!({"status": "ready", "store": "ok", "database": database,
                    "workers": workers.len()}),
        ),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "unavailable", "store": "unreachable",
                        "database": database}),
            )
        }
    };
    if let Some(relay) = &state.relay {
        let mut shown = relay.snapshot().to_json();
        // Unauthenticated: where the relay is and what failed stay for the dashboard.
        if let Some(fields) = shown.as_object_mut() {
            for private in ["url", "error", "last_refusal"] {
                fields.remove(private);
            }
        }
        body["relay"] = shown;
    }
    (code, Json(body))
}

/// Prometheus text; with `SLIPWAY_METRICS_TOKEN` set, only for that bearer token.
pub async fn metrics(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, crate::error::ApiError> {
    if let Some(expected) = &state.metrics_hash {
        let given = crate::auth::bearer_hash(&headers).ok();
        let matches =
            given.is_some_and(|g| bool::from(subtle::ConstantTimeEq::ct_eq(&g[..], &expected[..])));
        if !matches {
            return Err(crate::error::ApiError::unauthorized(
                "/metrics needs 'Authorization: Bearer <SLIPWAY_METRICS_TOKEN>'",
            ));
        }
    }
    match state.store.flaky_step_count().await {
        Ok(count) => state.metrics.observe_flaky_steps(count),
        Err(error) => tracing::warn!(%error, "the flaky-step count could not be read"),
    }
    match state.store.queue_depth().await {
        Ok(depth) => state.metrics.observe_queue(&depth),
        Err(error) => tracing::warn!(%error, "the queue's depth could not be read"),
    }
    match state.store.live_workers(WORKER_LIVE_WITHIN).await {
        Ok(workers) => state.metrics.observe_workers(&workers),
        Err(error) => tracing::warn!(%error, "the worker registry could not be read"),
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    ))
}

pub async fn openapi(caller: Caller) -> ApiResult<Json<utoipa::openapi::OpenApi>> {
    caller.require(Role::Viewer)?;
    Ok(Json(crate::openapi::document()))
}
