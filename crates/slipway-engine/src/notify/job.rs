//! The `notification` job: one notification to one target. The queue retries a failed send
//! with backoff and jitter, a bounded number of times; a 429 postpones it by the receiver's
//! `Retry-After` without spending an attempt (a bounded number of times too). Every outcome
//! is recorded on the target, which a long failure disables (`core::notify::DISABLE_AFTER`).

use super::send::{Outgoing, Sent};
use crate::jobs::{self, JobKind, Outcome};
use crate::{Engine, Inner};
use slipway_core::notify::message::Message;
use slipway_core::notify::{NotifyEvent, TargetKind};
use slipway_core::ProjectId;
use slipway_store::{Job, StoreError, Target};
use tokio::sync::Notify;

/// The `notification` job kind.
pub(crate) struct NotificationJob;

impl JobKind for NotificationJob {
    const KIND: &'static str = "notification";
    type Payload = Payload;

    fn wake(inner: &Inner) -> &Notify {
        &inner.notify_wake
    }

    fn span(payload: &Payload, attempt: u32) -> tracing::Span {
        tracing::info_span!("notification", target = payload.target, attempt)
    }

    async fn run(engine: Engine, payload: Payload, attempt: jobs::Attempt) -> Outcome {
        match send_once(&engine, &attempt.job, payload).await {
            Ok(outcome) => outcome,
            Err(error) => {
                // Slipway's own fault (the store): the notification is tried again later.
                tracing::error!(job = attempt.job.id, %error, "a notification could not be sent");
                Outcome::Retry(format!("Slipway could not send it: {error}"))
            }
        }
    }

    async fn panicked(_: &Engine, _: &Payload, _: u32, _: &str) {}
}

/// Attempts of one notification: the queue's backoff doubles from 2 s up to 10 minutes, so
/// about 40 minutes of trying before it is given up (docs/operations.md).
pub(crate) const ATTEMPTS: u32 = 10;
/// How many `Retry-After`s one notification waits out before they count as failures.
const MAX_POSTPONED: u32 = 10;

/// A queued notification: what to send where.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Payload {
    pub project: i64,
    pub target: i64,
    /// `webhook-id`: one per notification, the same for each of its attempts.
    pub id: String,
    /// `None` for a test.
    pub event: Option<NotifyEvent>,
    /// When it happened (RFC 3339).
    pub timestamp: String,
    pub message: Message,
    #[serde(default)]
    pub postponed: u32,
}

impl Payload {
    pub(crate) fn new(
        target: &Target,
        event: Option<NotifyEvent>,
        message: &Message,
        timestamp: &str,
    ) -> Self {
        let mut random = [0u8; 12];
        getrandom::getrandom(&mut random).expect("the OS random source is available");
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        Self {
            project: target.project_id.0,
            target: target.id,
            id: format!("msg_{hex}"),
            event,
            timestamp: timestamp.to_owned(),
            message: message.clone(),
            postponed: 0,
        }
    }

    fn kind(&self) -> &str {
        self.event.map_or(
            slipway_core::notify::message::TEST_TYPE,
            NotifyEvent::as_str,
        )
    }
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Queues one notification to one target.
pub(crate) async fn enqueue(
    engine: &Engine,
    target: &Target,
    event: Option<NotifyEvent>,
    message: &Message,
    timestamp: &str,
) -> anyhow::Result<i64> {
    let payload = Payload::new(target, event, message, timestamp);
    let dedupe_key = Some(format!("notify:{}:{}", target.id, payload.id));
    let job = jobs::new_job::<NotificationJob>(&payload, dedupe_key, ATTEMPTS)?;
    Ok(jobs::enqueue::<NotificationJob>(&engine.inner, job).await?)
}

/// Sends one notification now, masked with the project's secrets, and records how it went
/// on the target (a 429 is no failure of the target's).
pub(crate) async fn deliver(
    engine: &Engine,
    target: &Target,
    payload: &Payload,
) -> Result<Sent, StoreError> {
    let store = &engine.inner.store;
    let secrets = store.secret_values(target.project_id).await?;
    let masker = slipway_core::Masker::new(secrets.iter().map(|(_, v)| v.expose()));
    let message = payload.message.masked(&masker);
    let secret = match target.kind {
        TargetKind::Webhook => store.notification_secret(target.id).await?,
        TargetKind::Slack => None,
    };
    let sent = engine
        .inner
        .notifier
        .send(&Outgoing {
            kind: target.kind,
            url: &target.url,
            secret: secret.as_deref(),
            id: &payload.id,
            event: payload.kind(),
            timestamp: &payload.timestamp,
            message: &message,
        })
        .await;
    match &sent {
        Sent::Delivered { .. } => store.record_notification_success(target.id).await?,
        Sent::RetryAfter { .. } => {}
        Sent::Retryable(why) | Sent::Final(why) => {
            let why = masker.mask(why).into_owned();
            let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
            if store
                .record_notification_failure(target.id, &why, now as i64)
                .await?
            {
                tracing::warn!(target = target.id, %why, "a notification target failing for days was disabled");
            }
        }
    }
    Ok(sent)
}

/// Sends one attempt of a notification job.
async fn send_once(
    engine: &Engine,
    job: &Job,
    mut payload: Payload,
) -> Result<Outcome, StoreError> {
    let store = &engine.inner.store;
    let target = match store
        .notification_target(ProjectId(payload.project), payload.target)
        .await
    {
        Ok(target) => target,
        Err(StoreError::NotFound) => return Ok(Outcome::Complete), // the target was deleted
        Err(error) => return Err(error),
    };
    if !target.enabled {
        let why = "the target is disabled; nothing is sent to it".to_owned();
        return Ok(Outcome::Fatal(why));
    }
    Ok(match deliver(engine, &target, &payload).await? {
        Sent::Delivered { .. } => Outcome::Complete,
        Sent::RetryAfter { after, why } if payload.postponed < MAX_POSTPONED => {
            payload.postponed += 1;
            let next = serde_json::to_string(&payload).expect("a payload serializes");
            store.set_payload(job, &next).await?;
            Outcome::Postpone(after, why)
        }
        Sent::RetryAfter { why, .. } | Sent::Retryable(why) => Outcome::Retry(why),
        Sent::Final(why) => Outcome::Fatal(why),
    })
}
