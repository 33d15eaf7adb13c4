//! The `verdict` job: a report or merge that could not be made for a transient reason (a
//! 5xx, a timeout, a rate limit that outlasted the client's waits, mergeability still being
//! computed) is tried again later, with backoff, a bounded number of times. The validation's
//! merge step shows "retrying: …" until the final outcome. The merge still names the exact
//! validated pair, read afresh at each attempt; a merge already made is only told again.

use super::report::{self, Shown};
use super::{control, Ended, Occasion, Redo};
use crate::jobs::{self, Attempt, JobKind, Outcome};
use crate::{Engine, Inner};
use slipway_core::ValidationId;
use tokio::sync::Notify;

/// Attempts of a verdict job (the queue's backoff doubles from 2 s: about four minutes).
const ATTEMPTS: u32 = 8;

/// The `verdict` job: what is left of a verdict's report or merge, tried again.
pub(crate) struct VerdictJob;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Payload {
    validation: ValidationId,
    #[serde(flatten)]
    redo: Redo,
}

impl JobKind for VerdictJob {
    const KIND: &'static str = "verdict";
    type Payload = Payload;

    fn wake(inner: &Inner) -> &Notify {
        &inner.verdict_wake
    }

    fn span(payload: &Payload, attempt: u32) -> tracing::Span {
        tracing::info_span!("verdict", validation = %payload.validation, attempt)
    }

    async fn run(engine: Engine, payload: Payload, attempt: Attempt) -> Outcome {
        attempt_verdict(&engine, payload, &attempt).await
    }

    async fn panicked(engine: &Engine, payload: &Payload, attempt: u32, message: &str) {
        gave_up(engine, payload.validation, &payload.redo, message, attempt).await;
    }
}

/// Queues a later attempt of what `redo` says for validation `id`, and shows why.
pub(super) async fn later(
    engine: &Engine,
    id: ValidationId,
    redo: &Redo,
    why: &str,
) -> anyhow::Result<()> {
    tracing::warn!(validation = %id, why, "the verdict's report or merge is retried by a job");
    let payload = Payload {
        validation: id,
        redo: redo.clone(),
    };
    let job = jobs::new_job::<VerdictJob>(&payload, Some(format!("verdict:{id}")), ATTEMPTS)?;
    jobs::enqueue::<VerdictJob>(&engine.inner, job).await?;
    let validation = engine.inner.store.validation(id).await?;
    report::show(engine, &validation, Shown::Retrying(why)).await;
    Ok(())
}

/// Runs one attempt of a verdict job.
async fn attempt_verdict(engine: &Engine, payload: Payload, attempt: &Attempt) -> Outcome {
    let store = &engine.inner.store;
    let id = payload.validation;
    if let Some(newer) = superseded(engine, id).await {
        // A newer validation of the pull request speaks for it now: this one's status, merge
        // or report would contradict it.
        tracing::info!(validation = %id, newer = %newer, "a superseded verdict is not retried");
        return Outcome::Complete;
    }
    let (number, max) = (attempt.number(), attempt.job.max_attempts);
    match control(engine, id, Occasion::Verdict, &payload.redo).await {
        Ok(Ended::Done(_) | Ended::Nothing(_)) => Outcome::Complete,
        Ok(Ended::Pending { redo, why, .. }) => {
            let next = Payload {
                validation: id,
                redo,
            };
            if let Ok(text) = serde_json::to_string(&next) {
                let _ = store.set_payload(&attempt.job, &text).await;
            }
            if !attempt.is_last() {
                let shown = format!("{why} (attempt {number} of {max})");
                if let Ok(validation) = store.validation(id).await {
                    report::show(engine, &validation, Shown::Retrying(&shown)).await;
                }
                Outcome::Retry(why)
            } else {
                gave_up(engine, id, &next.redo, &why, number).await;
                Outcome::Fatal(why)
            }
        }
        Err(error) => {
            let why = error.to_string();
            gave_up(engine, id, &payload.redo, &why, number).await;
            Outcome::Fatal(why)
        }
    }
}

/// The newest validation of `id`'s pull request, when it is another one.
async fn superseded(engine: &Engine, id: ValidationId) -> Option<ValidationId> {
    let store = &engine.inner.store;
    let validation = store.validation(id).await.ok()?;
    let number = validation.pr?;
    let (_, newest) = store
        .validations_of_pull_request(validation.project_id, number)
        .await
        .ok()?;
    newest.filter(|newest| *newest != id)
}

/// The last attempt failed too: the merge step says so, for good.
async fn gave_up(engine: &Engine, id: ValidationId, redo: &Redo, why: &str, attempts: u32) {
    tracing::error!(validation = %id, why, attempts, "the verdict's report or merge was given up");
    let Ok(validation) = engine.inner.store.validation(id).await else {
        return;
    };
    let mut outcome = match redo {
        Redo::Tell { outcome } => outcome.clone(),
        Redo::All => super::Outcome::said("Not merged.".into()),
    };
    outcome.refusals.push(format!(
        "Given up after {attempts} attempts: {why}. Retry the validation, or merge by hand."
    ));
    report::show(engine, &validation, Shown::Final(&outcome)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_verdict_payloads_keep_their_format() {
        let payload: Payload = serde_json::from_str(r#"{"validation":5,"redo":"all"}"#).unwrap();
        assert_eq!(payload.validation, ValidationId(5));
        assert_eq!(payload.redo, Redo::All);
        let written = serde_json::to_value(&payload).unwrap();
        assert_eq!(written, serde_json::json!({"validation": 5, "redo": "all"}));
    }
}
