//! The `verdict` job: a report or merge that could not be made for a transient reason (a
//! 5xx, a timeout, a rate limit that outlasted the client's waits, mergeability still being
//! computed) is tried again later, with backoff, a bounded number of times. The validation's
//! merge step shows "retrying: …" until the final outcome. The merge still names the exact
//! validated pair, read afresh at each attempt; a merge already made is only told again.

use super::report::{self, Shown};
use super::{control, Ended, Occasion, Redo};
use crate::Engine;
use slipway_core::ValidationId;
use slipway_store::{Job, JobFailure, NewJob};

pub(crate) const VERDICT_JOB: &str = "verdict";

/// Attempts of a verdict job (the queue's backoff doubles from 2 s: about four minutes).
const ATTEMPTS: u32 = 8;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Payload {
    validation: i64,
    #[serde(flatten)]
    redo: Redo,
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
        validation: id.0,
        redo: redo.clone(),
    };
    engine
        .inner
        .store
        .enqueue(&NewJob {
            kind: VERDICT_JOB.into(),
            payload: serde_json::to_string(&payload)?,
            dedupe_key: Some(format!("verdict:{id}")),
            max_attempts: ATTEMPTS,
        })
        .await?;
    engine.inner.verdict_wake.notify_one();
    let validation = engine.inner.store.validation(id).await?;
    report::show(engine, &validation, Shown::Retrying(why)).await;
    Ok(())
}

/// Runs one attempt of a verdict job.
pub(crate) async fn run_verdict_job(engine: &Engine, job: Job) {
    let store = &engine.inner.store;
    let Ok(payload) = serde_json::from_str::<Payload>(&job.payload) else {
        let _ = store
            .fail(&job, &JobFailure::Fatal("malformed payload".into()))
            .await;
        return;
    };
    let id = ValidationId(payload.validation);
    if let Some(newer) = superseded(engine, id).await {
        // A newer validation of the pull request speaks for it now: this one's status, merge
        // or report would contradict it.
        tracing::info!(validation = %id, newer = %newer, "a superseded verdict is not retried");
        if let Err(error) = store.complete(&job).await {
            tracing::error!(validation = %id, %error, "could not record the verdict job's end");
        }
        return;
    }
    let ended = control(engine, id, Occasion::Verdict, &payload.redo).await;
    let recorded = match ended {
        Ok(Ended::Done(_) | Ended::Nothing(_)) => store.complete(&job).await,
        Ok(Ended::Pending { redo, why, .. }) => {
            let next = Payload {
                validation: id.0,
                redo,
            };
            let _ = store
                .set_payload(&job, &serde_json::to_string(&next).unwrap_or_default())
                .await;
            if job.attempt < job.max_attempts {
                let shown = format!("{why} (attempt {} of {})", job.attempt, job.max_attempts);
                if let Ok(validation) = store.validation(id).await {
                    report::show(engine, &validation, Shown::Retrying(&shown)).await;
                }
                store.fail(&job, &JobFailure::Retryable(why)).await
            } else {
                gave_up(engine, id, &next.redo, &why, job.attempt).await;
                store.fail(&job, &JobFailure::Fatal(why)).await
            }
        }
        Err(error) => {
            let why = error.to_string();
            gave_up(engine, id, &payload.redo, &why, job.attempt).await;
            store.fail(&job, &JobFailure::Fatal(why)).await
        }
    };
    if let Err(error) = recorded {
        tracing::error!(validation = %id, %error, "could not record the verdict job's end");
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
