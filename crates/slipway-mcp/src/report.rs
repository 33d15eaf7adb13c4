//! A validation's report: what `slipway validate --json` prints and what the `validate` and
//! `get_validation` tools return as `structuredContent` (one type, so they cannot drift).

use schemars::JsonSchema;
use serde::Serialize;
use slipway_core::validation::{StepName, StepStatus, ValidationStatus};
use slipway_store::{StepRecord, Store, StoreError, ValidationRecord};
use std::path::Path;

/// Log lines kept in each step's `log_tail`.
pub const TAIL_LINES: usize = 20;
/// Browser checks' reports included at most.
const BROWSER_REPORTS: usize = 20;

/// One validation, its steps with their log tails (secrets masked) and its evidence.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Report {
    pub id: i64,
    /// queued, running, passed, failed, cancelled or error.
    pub status: String,
    /// What the status means for the code: `passed`, `failed` (the code's failure),
    /// `slipway_error` (Slipway's own fault: not the code's), `cancelled` or `pending`.
    pub outcome: Outcome,
    /// The head commit validated.
    pub sha: String,
    /// The branch it was validated merged onto, and that branch's head.
    pub base_ref: Option<String>,
    pub base_sha: Option<String>,
    /// Where the pipeline came from: repository, project_settings, config_file, setup_trial.
    pub pipeline_source: Option<String>,
    /// Why the validation could not finish, when it could not.
    pub error: Option<String>,
    pub steps: Vec<StepReport>,
    /// The first step that failed, with its command, exit code and the tail of its log.
    pub failing_step: Option<StepReport>,
    /// Where the browser checks' screenshots and evidence were kept (local validations).
    pub artifacts: Option<String>,
    /// The browser checks' reports (steps, expectations, console and network evidence).
    pub browser_checks: Vec<serde_json::Value>,
    /// The judge's answer, tokens and cost, when it ran.
    pub judge: serde_json::Value,
    /// The analysis's findings (`rule`, `severity`, `file`, `line`, `message`), once it ran.
    pub analysis: Option<serde_json::Value>,
}

/// What a validation's status means, said for a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    Failed,
    SlipwayError,
    Cancelled,
    Pending,
}

impl From<ValidationStatus> for Outcome {
    fn from(status: ValidationStatus) -> Self {
        match status {
            ValidationStatus::Passed => Outcome::Passed,
            ValidationStatus::Failed => Outcome::Failed,
            ValidationStatus::Error => Outcome::SlipwayError,
            ValidationStatus::Cancelled => Outcome::Cancelled,
            ValidationStatus::Queued | ValidationStatus::Running => Outcome::Pending,
        }
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StepReport {
    pub name: String,
    /// queued, running, passed, failed, skipped, cancelled or error (Slipway's fault).
    pub status: String,
    pub command: Option<String>,
    pub duration_ms: Option<i64>,
    pub exit_code: Option<i32>,
    /// Why it was skipped, or what went wrong.
    pub detail: Option<String>,
    /// Passed only after a failed try.
    pub flaky: bool,
    /// The last lines of its log, secrets masked.
    pub log_tail: String,
}

impl Report {
    /// The report of `record`; `artifacts` is where its evidence files are.
    pub async fn build(
        store: &Store,
        record: &ValidationRecord,
        artifacts: Option<&Path>,
        analysis: Option<serde_json::Value>,
    ) -> Result<Self, StoreError> {
        let mut steps = Vec::with_capacity(record.steps.len());
        for step in &record.steps {
            steps.push(step_report(store, record, step).await?);
        }
        let failing_step = steps
            .iter()
            .find(|s| s.status == StepStatus::Failed.as_str() || s.status == "error")
            .cloned();
        Ok(Report {
            id: record.id.0,
            status: record.status.as_str().to_owned(),
            outcome: record.status.into(),
            sha: record.sha.clone(),
            base_ref: record.base_ref.clone(),
            base_sha: record.base_sha.clone(),
            pipeline_source: record.pipeline_source.map(|s| s.as_str().to_owned()),
            error: record.error.clone(),
            steps,
            failing_step,
            artifacts: artifacts.map(|dir| dir.display().to_string()),
            browser_checks: artifacts.map(browser_checks).unwrap_or_default(),
            judge: artifacts.map(judgement).unwrap_or(serde_json::Value::Null),
            analysis,
        })
    }

    /// One short paragraph for clients that read only text.
    pub fn summary(&self) -> String {
        let short = &self.sha[..self.sha.len().min(12)];
        let mut text = match self.outcome {
            Outcome::Passed => format!("validation {} passed: {short}", self.id),
            Outcome::Failed => format!("validation {} failed: {short}", self.id),
            Outcome::SlipwayError => format!(
                "validation {} could not finish because of a fault of Slipway's own (not the \
                 code's): {}",
                self.id,
                self.error.as_deref().unwrap_or("see the steps")
            ),
            Outcome::Cancelled => format!("validation {} was cancelled", self.id),
            Outcome::Pending => format!("validation {} is {}", self.id, self.status),
        };
        if let Some(step) = &self.failing_step {
            text.push_str(&format!("\nfailing step: {} ({})", step.name, step.status));
            if let Some(command) = &step.command {
                text.push_str(&format!("\ncommand: {command}"));
            }
            if let Some(code) = step.exit_code {
                text.push_str(&format!("\nexit code: {code}"));
            }
            if let Some(detail) = &step.detail {
                text.push_str(&format!("\n{detail}"));
            }
            if !step.log_tail.is_empty() {
                text.push_str(&format!("\nlast lines of its log:\n{}", step.log_tail));
            }
        }
        if let Some(count) = self
            .analysis
            .as_ref()
            .and_then(|a| a["findings"].as_array())
        {
            if !count.is_empty() {
                text.push_str(&format!("\nanalysis findings: {}", count.len()));
            }
        }
        text
    }
}

async fn step_report(
    store: &Store,
    record: &ValidationRecord,
    step: &StepRecord,
) -> Result<StepReport, StoreError> {
    Ok(StepReport {
        name: step.name.as_str().to_owned(),
        status: step.status.as_str().to_owned(),
        command: step.command.clone(),
        duration_ms: step.duration_ms,
        exit_code: step.exit_code,
        detail: step.detail.clone(),
        flaky: step.flaky,
        log_tail: tail(store, record, step.name, TAIL_LINES).await?.join("\n"),
    })
}

/// The last `lines` lines of a step's log (stored masked).
pub async fn tail(
    store: &Store,
    record: &ValidationRecord,
    step: StepName,
    lines: usize,
) -> Result<Vec<String>, StoreError> {
    let all = store.logs(record.id, Some(step), 0, 1_000_000).await?;
    let skip = all.len().saturating_sub(lines);
    Ok(all.into_iter().skip(skip).map(|l| l.line).collect())
}

/// The judge's evidence (answer, tokens, cost), when it ran.
fn judgement(artifacts: &Path) -> serde_json::Value {
    std::fs::read_to_string(artifacts.join(slipway_engine::evidence::JUDGE))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// The browser checks' JSON reports among the artifacts (every string masked when written).
fn browser_checks(artifacts: &Path) -> Vec<serde_json::Value> {
    let mut files: Vec<_> = std::fs::read_dir(artifacts)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".json") && !slipway_engine::evidence::STEP_FILES.contains(&name)
        })
        .collect();
    files.sort();
    files
        .iter()
        .take(BROWSER_REPORTS)
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .filter_map(|text| serde_json::from_str(&text).ok())
        .collect()
}
