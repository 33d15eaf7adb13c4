//! The `validation` job: the pipeline, then what its verdict leads to (merging, the fix
//! loop). Its payload is queued by the store with the validation's record, in one
//! transaction (`{"validation_id": N}`).

use super::{Attempt, JobKind, Outcome};
use crate::pipeline::{self, Ended};
use crate::{merging, runs, Engine, Inner};
use slipway_core::validation::ValidationStatus;
use slipway_core::ValidationId;
use tokio::sync::Notify;

pub(crate) struct ValidationJob;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct ValidationPayload {
    pub(crate) validation_id: ValidationId,
}

impl JobKind for ValidationJob {
    const KIND: &'static str = slipway_store::VALIDATION_JOB;
    type Payload = ValidationPayload;

    fn wake(inner: &Inner) -> &Notify {
        &inner.wake
    }

    fn span(payload: &ValidationPayload, attempt: u32) -> tracing::Span {
        tracing::info_span!("validation", validation = %payload.validation_id, attempt)
    }

    async fn cancelled(engine: &Engine, payload: &ValidationPayload) -> bool {
        let store = &engine.inner.store;
        store
            .cancel_requested(payload.validation_id)
            .await
            .unwrap_or(false)
    }

    async fn run(engine: Engine, payload: ValidationPayload, attempt: Attempt) -> Outcome {
        let id = payload.validation_id;
        let _running = Running::new(&engine, id, &attempt);
        body(&engine, id, &attempt).await
    }

    async fn panicked(engine: &Engine, payload: &ValidationPayload, _attempt: u32, message: &str) {
        let _ = engine
            .inner
            .store
            .finish_validation(
                payload.validation_id,
                ValidationStatus::Error,
                Some(message),
            )
            .await;
    }
}

/// The validation's cancel token in `Inner::running` (for `Engine::cancel`) while it runs.
struct Running<'a> {
    engine: &'a Engine,
    id: ValidationId,
}

impl<'a> Running<'a> {
    fn new(engine: &'a Engine, id: ValidationId, attempt: &Attempt) -> Self {
        let mut running = engine.inner.running.lock().expect("running lock");
        running.insert(id, attempt.cancel.clone());
        Self { engine, id }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Ok(mut running) = self.engine.inner.running.lock() {
            running.remove(&self.id);
        }
    }
}

async fn body(engine: &Engine, id: ValidationId, attempt: &Attempt) -> Outcome {
    let interrupted = || attempt.interrupted();
    let result = pipeline::execute(
        &engine.inner,
        id,
        attempt.number(),
        &attempt.cancel,
        &interrupted,
    )
    .await;
    match result {
        Ok(Ended::Verdict(status)) => {
            tracing::info!(validation = %id, %status, "validation finished");
            crate::notify::validation_finished(engine, id).await;
            let policy = match merging::after_verdict(engine, id).await {
                Ok(policy) => policy,
                Err(error) => {
                    tracing::error!(validation = %id, %error, "the merge controller failed");
                    None
                }
            };
            if let Err(error) = runs::after_validation(engine, id, policy).await {
                tracing::error!(validation = %id, %error, "the fix loop failed");
            }
            Outcome::Complete
        }
        // Fenced: the runner reports nothing, whatever is returned.
        Ok(Ended::Interrupted) if attempt.fenced() => Outcome::Fatal("fenced out".into()),
        Ok(Ended::Interrupted) => {
            let why = "interrupted by a shutdown; it will run again";
            let _ = engine.inner.store.requeue_validation(id, why).await;
            Outcome::HandBack(why.into())
        }
        Err(error) => {
            tracing::error!(validation = %id, error = &error as &dyn std::error::Error, "validation could not run");
            let _ = engine
                .inner
                .store
                .finish_validation(
                    id,
                    ValidationStatus::Error,
                    Some(&format!("infrastructure error: {error}")),
                )
                .await;
            Outcome::Fatal(error.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stores_validation_payload_is_read_as_it_is_queued() {
        let stored = r#"{"validation_id":12}"#;
        let payload: ValidationPayload = serde_json::from_str(stored).unwrap();
        assert_eq!(payload.validation_id, ValidationId(12));
    }
}
