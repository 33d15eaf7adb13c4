//! What a verdict tells the forge (the commit status's line, the report's step table) and
//! what the validation's merge step shows of the outcome.

use crate::Engine;
use serde::{Deserialize, Serialize};
use slipway_core::merge::short;
use slipway_core::validation::{StepName, StepStatus, ValidationStatus};
use slipway_forge::{Report, Verdict};
use slipway_store::ValidationRecord;

/// What the token or App needs, said with every refusal.
pub(super) const PERMISSIONS: &str = "Give Slipway's token (or GitHub App) what the README lists: \
contents, pull requests, commit statuses (and checks, for an App) with write access.";

/// What became of a pull request after its verdict, as told to it and shown on the merge
/// step. Kept in a retry job's payload when only telling is left to do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Outcome {
    pub(crate) merged: bool,
    /// The sentence for the report.
    pub(crate) sentence: String,
    /// What the forge refused, each with its message.
    pub(crate) refusals: Vec<String>,
}

impl Outcome {
    pub(crate) fn said(sentence: String) -> Self {
        Self {
            sentence,
            ..Self::default()
        }
    }

    pub(crate) fn not_merged(why: &str) -> Self {
        Self::said(slipway_core::merge::not_merged(why))
    }

    /// The sentence and every refusal, as the report ends.
    fn told(&self) -> String {
        let mut said = self.sentence.clone();
        for refusal in &self.refusals {
            said.push_str(&format!("\n\n**Refused:** {refusal}"));
        }
        said
    }
}

/// The report of a finished validation; `None` for one cancelled (a newer head, a closed pull
/// request: nothing to say).
pub(super) async fn verdict_report(
    engine: &Engine,
    validation: &ValidationRecord,
) -> Option<Report> {
    let (verdict, summary) = match validation.status {
        ValidationStatus::Passed => (
            Verdict::Success,
            format!("validation {} passed", validation.id),
        ),
        ValidationStatus::Failed => {
            let failing = validation
                .steps
                .iter()
                .find(|s| s.status == StepStatus::Failed);
            let detail = failing
                .map(|s| format!("{} failed: {}", s.name, s.detail.as_deref().unwrap_or("")))
                .unwrap_or_else(|| "failed".into());
            (Verdict::Failure, detail)
        }
        ValidationStatus::Error => (
            Verdict::Error,
            format!(
                "infrastructure error: {}",
                validation.error.as_deref().unwrap_or("see the log")
            ),
        ),
        _ => return None,
    };
    let link = crate::github::link(&engine.inner, validation.id);
    let mut details = table(validation, &summary, link.as_deref());
    let mut annotations = Vec::new();
    if let Some(evidence) = engine.analysis_evidence(validation.id).await {
        details.push_str(&inert(&crate::pipeline::findings_markdown(&evidence)));
        annotations = crate::pipeline::annotations(&evidence);
    }
    if verdict == Verdict::Failure {
        let note = crate::pipeline::failure_note(&engine.artifacts_dir(validation.id)).await;
        details.extend(note.map(|note| inert(&crate::pipeline::for_report(&note))));
    }
    Some(Report {
        sha: validation.sha.clone(),
        verdict,
        details,
        summary,
        link,
        annotations,
    })
}

/// Text the pull request shaped (file names, findings, a model's note), made inert before
/// Slipway's account posts it: no @mention notifies anyone, no image or link is fetched.
fn inert(markdown: &str) -> String {
    markdown
        .replace('@', "@\u{2060}")
        .replace("](", "]\u{2060}(")
}

/// `report` ending with what became of the pull request.
pub(super) fn with_outcome(report: &Report, outcome: &Outcome) -> Report {
    let mut report = report.clone();
    report.details.push_str(&format!("\n{}\n", outcome.told()));
    report
}

/// What the merge step shows.
#[derive(Debug, Clone)]
pub(super) enum Shown<'a> {
    /// The outcome, final.
    Final(&'a Outcome),
    /// Something could not be made yet and a job tries again: why.
    Retrying(&'a str),
}

/// The merge step of the validation shows the outcome (the dashboard reads it there).
pub(super) async fn show(engine: &Engine, validation: &ValidationRecord, shown: Shown<'_>) {
    let Some(index) = validation
        .steps
        .iter()
        .find(|s| s.name == StepName::Merge)
        .map(|s| s.index)
    else {
        return;
    };
    let (status, detail) = match shown {
        Shown::Retrying(why) => (StepStatus::Running, slipway_core::merge::retrying(why)),
        Shown::Final(outcome) => {
            let status = if !outcome.refusals.is_empty() {
                StepStatus::Error
            } else if outcome.merged {
                StepStatus::Passed
            } else {
                StepStatus::Skipped
            };
            let mut detail = outcome.sentence.clone();
            for refusal in &outcome.refusals {
                detail.push_str(&format!(" Refused: {refusal}"));
            }
            (status, detail)
        }
    };
    let update = slipway_store::StepUpdate {
        status: Some(status),
        detail: Some(detail),
        ..Default::default()
    };
    if let Err(error) = engine
        .inner
        .store
        .update_step(validation.id, index, &update)
        .await
    {
        tracing::warn!(%error, "the merge outcome was not recorded");
    }
}

/// Whether the validation's merge step shows a merge made.
pub(crate) fn merged(validation: &ValidationRecord) -> bool {
    validation
        .steps
        .iter()
        .any(|s| s.name == StepName::Merge && s.status == StepStatus::Passed)
}

fn table(validation: &ValidationRecord, summary: &str, link: Option<&str>) -> String {
    let mut text = format!(
        "### Slipway: {} for `{}`\n\n{summary}\n\n",
        validation.status,
        short(&validation.sha)
    );
    if let (Some(base), Some(sha)) = (&validation.base_ref, &validation.base_sha) {
        text.push_str(&format!(
            "Validated merged onto `{base}` at `{}`, as merging would make it.\n\n",
            short(sha)
        ));
    }
    if let Some(source) = validation.pipeline_source {
        text.push_str(&format!("Pipeline: {}.\n\n", source.describe()));
    }
    text.push_str("| step | status | time | detail |\n|---|---|---|---|\n");
    for step in &validation.steps {
        let time = step
            .duration_ms
            .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
            .unwrap_or_default();
        let detail = step
            .detail
            .as_deref()
            .unwrap_or("")
            .replace('|', "\\|")
            .replace('\n', " ");
        if step.name == StepName::Merge && step.status == StepStatus::Running {
            // A retry in progress: the outcome follows the table.
            text.push_str("| merge | below | | |\n");
            continue;
        }
        let flaky = if step.flaky { " (flaky)" } else { "" };
        text.push_str(&format!(
            "| {} | {}{flaky} | {time} | {detail} |\n",
            step.name, step.status
        ));
    }
    if let Some(link) = link {
        text.push_str(&format!("\n[Full log]({link})\n"));
        let ui_ran = validation.steps.iter().any(|s| {
            s.name == StepName::Ui && matches!(s.status, StepStatus::Passed | StepStatus::Failed)
        });
        if ui_ran {
            let page = link.replacen("/api/v1/validations/", "/validations/", 1);
            text.push_str(&format!(
                "[Browser checks: screenshots, console and requests]({page})\n"
            ));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn what_the_pull_request_shaped_mentions_no_one_and_fetches_nothing() {
        let said = super::inert("see @octocat ![x](https://evil.example/p.png) [y](https://e.x)");
        assert!(!said.contains("@octocat"));
        assert!(!said.contains("]("));
        assert!(said.contains("octocat") && said.contains("https://evil.example/p.png"));
    }
}
