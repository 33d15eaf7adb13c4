//! Failure analysis for the fix loop: after a step failed, a model's short note on the
//! probable cause from the step's masked log tail and the diff (read before any code ran, by
//! the judge's preparation), labelled as the model's opinion wherever it goes.

use super::Attempt;
use slipway_core::pipeline::PipelineConfig;
use slipway_core::validation::{StepName, StepStatus};
use slipway_judge::AnyModel;

/// The failure analysis's note among the validation's artifacts.
use crate::evidence::FAILURE_NOTE as ANALYSIS_FILE;
/// The diff the failure analysis reads, in tokens.
const ANALYSIS_DIFF_TOKENS: usize = 6_000;

impl Attempt<'_> {
    /// After a step failed (not the judge), when a model is configured: a short note on the
    /// probable cause from its masked log tail and the diff, labelled as the model's opinion,
    /// in its log and `failure-analysis.json` (which the fix loop sends to the agent). A
    /// model that does not answer only costs the note.
    pub(super) async fn analyse_failure(&self, config: &PipelineConfig) {
        let failed = self
            .statuses
            .iter()
            .find(|(name, status)| *status == StepStatus::Failed && *name != StepName::Judge);
        let (Some(&(step, _)), Some(source)) = (failed, &self.judge_source) else {
            return;
        };
        let judge = config.judge.as_ref();
        let models = &self.inner.config.models;
        let Ok(chosen) = models.pick(
            judge.and_then(|j| j.provider),
            judge.and_then(|j| j.model.as_deref()),
        ) else {
            return;
        };
        let model = AnyModel::new(chosen);
        match self.model_budget().await {
            Ok(Ok(())) => {}
            // Over the budget (or it cannot be read): no note, and the log says why.
            Ok(Err(note)) => {
                self.logs
                    .line(step, &format!("[no failure analysis: {note}]"));
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "the model budget could not be read");
                return;
            }
        }
        let detail = match self.inner.store.validation(self.id()).await {
            Ok(record) => record
                .steps
                .into_iter()
                .find(|s| s.name == step)
                .and_then(|s| s.detail),
            Err(_) => None,
        };
        let input =
            slipway_judge::analysis::FailureInput {
                step: step.to_string(),
                detail: detail.map(|d| self.logs.mask(&d)),
                log_tail: self.logs.recent(step),
                diff: source.diff.as_ref().ok().map(|diff| {
                    slipway_judge::diff::trim(&self.logs.mask(diff), ANALYSIS_DIFF_TOKENS)
                }),
            };
        let analysis = tokio::select! {
            analysis = slipway_judge::analysis::analyse(&model, &input) => analysis,
            _ = self.cancel.cancelled() => return,
        };
        match analysis {
            Ok(analysis) => {
                self.spend_model_tokens(analysis.usage).await;
                for line in analysis.note.text().lines() {
                    self.logs
                        .line(step, &format!("[the model's opinion] {line}"));
                }
                let dir = self.artifacts_dir();
                let json = serde_json::to_string_pretty(&analysis).expect("a note serializes");
                let written = async {
                    tokio::fs::create_dir_all(&dir).await?;
                    tokio::fs::write(dir.join(ANALYSIS_FILE), self.logs.mask(&json)).await
                };
                if let Err(error) = written.await {
                    tracing::warn!(%error, "the failure analysis was not stored");
                }
            }
            Err(why) => self
                .logs
                .line(step, &format!("[no failure analysis: {why}]")),
        }
    }
}

/// The note kept among a validation's artifacts (`dir`), as text, if a model made one.
pub(crate) async fn failure_note(dir: &std::path::Path) -> Option<String> {
    let bytes = tokio::fs::read(dir.join(ANALYSIS_FILE)).await.ok()?;
    let analysis: slipway_judge::analysis::Analysis = serde_json::from_slice(&bytes).ok()?;
    Some(analysis.note.text())
}

/// The note as the pull request's report shows it: quoted, and said to be an opinion.
pub(crate) fn for_report(note: &str) -> String {
    let quoted: Vec<String> = note.lines().map(|line| format!("> {line}")).collect();
    format!(
        "\n**A model's opinion of the failure** (it may be wrong: check it against the log):\n\n{}\n",
        quoted.join("\n")
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_report_quotes_the_note_as_an_opinion() {
        let text = super::for_report("probable cause: x\nsuggested fix: y");
        assert!(text.contains("A model's opinion of the failure"));
        assert!(text.contains("> probable cause: x\n> suggested fix: y"));
    }
}
