//! A validation's log: every line is masked, numbered and written in batches, off the hot
//! path of the command that produced it.

use slipway_core::validation::StepName;
use slipway_core::{Masker, ValidationId};
use slipway_store::Store;
use std::sync::Arc;
use tokio::sync::mpsc;

const BATCH: usize = 512;

/// Where a validation's output goes. Cheap to clone.
#[derive(Clone)]
pub struct LogSink {
    tx: mpsc::UnboundedSender<(StepName, String)>,
    masker: Arc<Masker>,
}

/// The writer task; `finish` flushes everything.
pub struct LogWriter {
    handle: tokio::task::JoinHandle<()>,
}

impl LogSink {
    pub fn start(store: Store, validation: ValidationId, masker: Masker) -> (Self, LogWriter) {
        let (tx, mut rx) = mpsc::unbounded_channel::<(StepName, String)>();
        let handle = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            let mut seq = match store.last_log_seq(validation).await {
                Ok(seq) => seq,
                Err(error) => {
                    tracing::error!(%error, validation = %validation, "log unavailable");
                    return;
                }
            };
            // Lines that arrive while a write is in flight make the next batch bigger.
            while let Some(first) = rx.recv().await {
                batch.push(first);
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(line) => batch.push(line),
                        Err(_) => break,
                    }
                }
                match store.append_logs(validation, seq, &batch).await {
                    Ok(last) => seq = last,
                    Err(error) => {
                        tracing::error!(%error, validation = %validation, "log lines lost")
                    }
                }
                batch.clear();
            }
        });
        (
            Self {
                tx,
                masker: Arc::new(masker),
            },
            LogWriter { handle },
        )
    }

    /// Masks and records one line of a step.
    pub fn line(&self, step: StepName, line: &str) {
        let _ = self.tx.send((step, self.masker.mask(line).into_owned()));
    }

    /// Forwards a process's lines to `step` until the process's output ends.
    pub fn follow(
        &self,
        step: StepName,
        mut lines: mpsc::UnboundedReceiver<String>,
    ) -> tokio::task::JoinHandle<()> {
        let sink = self.clone();
        tokio::spawn(async move {
            while let Some(line) = lines.recv().await {
                sink.line(step, &line);
            }
        })
    }

    /// Masks any text with this validation's secrets.
    pub fn mask(&self, text: &str) -> String {
        self.masker.mask(text).into_owned()
    }
}

impl LogWriter {
    /// Waits until every line sent by `sink` (dropped by then) is stored.
    pub async fn finish(self, sink: LogSink) {
        drop(sink);
        let _ = self.handle.await;
    }
}
