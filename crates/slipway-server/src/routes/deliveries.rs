//! `/api/v1/deliveries/{id}`: a stored webhook delivery (by `X-GitHub-Delivery`), and its
//! replay. GitHub's own "Redeliver" of a stored delivery is dropped as a duplicate, so a
//! delivery that was ignored or failed (a project created later, a fault fixed since) is
//! acted on again only when an operator replays it.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiPath;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use slipway_core::Role;

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    pub delivery: String,
    pub event: String,
    pub repository: Option<String>,
    /// `pending`, `processed`, `ignored` or `failed`.
    pub state: String,
    pub note: Option<String>,
}

fn checked(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 100
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    ok.then_some(()).ok_or_else(|| {
        ApiError::bad_request(
            "bad_delivery",
            "a delivery id is the X-GitHub-Delivery GUID (letters, digits and -)",
        )
    })
}

/// Read a stored delivery: what Slipway made of it (operator).
#[utoipa::path(get, path = "/api/v1/deliveries/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "X-GitHub-Delivery")),
    responses((status = 200, body = DeliveryView), (status = 404, body = ErrorBody)))]
pub async fn show(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<DeliveryView>> {
    caller.require(Role::Operator)?;
    checked(&id)?;
    let delivery = state.store.delivery(&id).await?;
    Ok(Json(DeliveryView {
        delivery: delivery.delivery_id,
        event: delivery.event,
        repository: delivery.repository,
        state: delivery.state.as_str().to_owned(),
        note: delivery.note,
    }))
}

/// Act on a stored delivery again, as if it had just come (operator): 202; 409 while it is
/// still pending.
#[utoipa::path(post, path = "/api/v1/deliveries/{id}/replay", tag = "webhooks",
    params(("id" = String, Path, description = "X-GitHub-Delivery")),
    responses((status = 202, body = DeliveryView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn replay(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<(StatusCode, Json<DeliveryView>)> {
    caller.require(Role::Operator)?;
    checked(&id)?;
    state
        .store
        .replay_delivery(&id, "replayed by an operator")
        .await?;
    state.engine.delivery_recorded();
    tracing::info!(delivery = %id, "delivery replayed");
    let delivery = state.store.delivery(&id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DeliveryView {
            delivery: delivery.delivery_id,
            event: delivery.event,
            repository: delivery.repository,
            state: delivery.state.as_str().to_owned(),
            note: delivery.note,
        }),
    ))
}
