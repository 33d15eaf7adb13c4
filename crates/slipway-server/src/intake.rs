//! The one durable intake of GitHub deliveries, whoever carries them: `POST /webhooks/github`
//! and the relay's puller. The signature is checked over the raw body, the delivery stored
//! (deduplicated by its id) with the job that will act on it, and the engine woken.

use crate::error::ApiError;
use crate::state::AppState;
use slipway_forge::webhook;
use slipway_store::Recorded;

/// What arrived: the raw body and the headers GitHub sent with it.
pub struct IncomingDelivery<'a> {
    pub signature: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub event: Option<&'a str>,
    pub delivery: Option<&'a str>,
    pub body: &'a [u8],
}

/// What the intake made of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intake {
    /// A `ping`: stored for the record (unless it was before), nothing to act on.
    Pong { duplicate: bool },
    /// Stored now; it will be acted on.
    Queued,
    /// Stored before (GitHub's or the relay's redelivery): not acted on again.
    Duplicate,
}

/// Verifies and stores one delivery. A refusal (4xx) stores nothing.
pub async fn intake(state: &AppState, incoming: IncomingDelivery<'_>) -> Result<Intake, ApiError> {
    let signature = incoming.signature.ok_or_else(|| {
        ApiError::unauthorized("missing X-Hub-Signature-256: configure the webhook with a secret")
    })?;
    let body = incoming.body;
    // GitHub sends JSON, or by default a form whose `payload` field is the JSON; the
    // signature covers the raw body either way.
    let payload = webhook::json_payload(incoming.content_type, body);
    let routing = payload.as_deref().unwrap_or(body);
    if !signed_by_a_configured_secret(state, body, routing, signature).await? {
        tracing::warn!("webhook delivery with a wrong signature refused");
        return Err(ApiError::unauthorized(
            "X-Hub-Signature-256 does not match the body under any configured secret: set the webhook's secret \
             as GITHUB_WEBHOOK_SECRET (for every repository) or as the project secret GITHUB_WEBHOOK_SECRET",
        ));
    }
    let payload = payload.map_err(|why| {
        ApiError::bad_request(
            "bad_payload",
            format!("{why}; GitHub sends a delivery as application/json, or as a form whose payload field is the JSON"),
        )
    })?;
    let event = incoming
        .event
        .filter(|e| !e.is_empty() && e.len() <= 64)
        .ok_or_else(|| ApiError::bad_request("missing_event", "missing X-GitHub-Event header"))?;
    let delivery = incoming
        .delivery
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
    let repository = webhook::repository_of(&payload);
    let recorded = state
        .store
        .record_delivery(delivery, event, repository.as_deref(), &payload, !is_ping)
        .await?;
    tracing::info!(delivery, event, repository = ?repository, duplicate = recorded == Recorded::Duplicate, "webhook delivery");
    Ok(match (is_ping, recorded) {
        (true, recorded) => Intake::Pong {
            duplicate: recorded == Recorded::Duplicate,
        },
        (false, Recorded::New) => {
            state.engine.delivery_recorded();
            Intake::Queued
        }
        (false, Recorded::Duplicate) => Intake::Duplicate,
    })
}

/// The global secret, or the `GITHUB_WEBHOOK_SECRET` of a project on the repository the
/// payload names (the name picks which secrets to try; only a matching signature admits it).
async fn signed_by_a_configured_secret(
    state: &AppState,
    body: &[u8],
    payload: &[u8],
    signature: &str,
) -> Result<bool, ApiError> {
    if let Some(secret) = &state.webhook_secret {
        if webhook::signature_is_valid(secret.as_bytes(), body, signature) {
            return Ok(true);
        }
    }
    let Some(repository) = webhook::repository_of(payload) else {
        return Ok(false);
    };
    for project in state.store.projects_on_github_repo(&repository).await? {
        let secrets = state.store.secret_values(project.id).await?;
        let own = secrets
            .iter()
            .find(|(name, _)| name == slipway_core::secret::WEBHOOK_SECRET_NAME);
        if let Some((_, secret)) = own {
            if webhook::signature_is_valid(secret.expose().as_bytes(), body, signature) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
