//! The analysis step. What it reads comes from git's objects in Slipway's own clone, and it
//! is analysed right after the checkout, before any of the pull request's code runs (so
//! nothing the code wrote can reach it); tree-sitter's C parsers then see input bounded per
//! file and in total, parse under a deadline (a watchdog above it), and the walk never
//! recurses. The step, in its place in the pipeline, reports what was found.

use super::{Attempt, PipelineError, PipelineResult, StepEnd};
use slipway_analysis::{Change, Config, Report, Severity, Side};
use slipway_core::pipeline::{AnalysisSection, PipelineConfig};
use slipway_core::policy::PIPELINE_FILE;
use slipway_core::validation::StepName;
use slipway_forge::git::Blob;
use std::time::Duration;

/// Changed files analysed; past them, one note.
const MAX_FILES: usize = 2_000;
/// Bytes read for one analysis, both sides of every file together.
const MAX_TOTAL_BYTES: u64 = 64 << 20;
/// How long parsing may take; the watchdog allows a little more for the rest.
const TIME_LIMIT: Duration = Duration::from_secs(60);
const WATCHDOG_GRACE: Duration = Duration::from_secs(30);
/// The findings written to the step's log; all of them are in `analysis.json`.
const MAX_LOGGED: usize = 200;
/// The evidence file among the validation's artifacts.
pub(crate) use crate::evidence::ANALYSIS as ARTIFACT;

impl Attempt<'_> {
    /// For a pull request (a base), `[analysis]` is the base branch's, when its
    /// `.slipway.toml` has that section: a pull request cannot relax its own analysis.
    pub(super) async fn with_base_analysis(&self, mut config: PipelineConfig) -> PipelineConfig {
        let Some(base) = self.record.base_sha.clone() else {
            return config;
        };
        let name = format!("{base}:{PIPELINE_FILE}");
        let Ok(id) = self
            .git
            .run(Some(&self.workspace), &["rev-parse", &name])
            .await
        else {
            return config;
        };
        let ids = [id.clone()];
        let blobs = self
            .git
            .blobs(&self.workspace, &ids, 1 << 20, 1 << 20)
            .await;
        if let Ok(Some(Blob::Content(bytes))) = blobs.map(|mut b| b.remove(&id)) {
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(Some(section)) =
                PipelineConfig::from_toml(PIPELINE_FILE, &text).map(|base| base.analysis)
            {
                config.analysis = Some(section);
            }
        }
        config
    }

    /// Reads the change and analyses it, before any of the pull request's code runs.
    pub(super) async fn prepare_analysis(&mut self, section: &AnalysisSection) {
        let result = self.analyse(section).await;
        if let Err(error) = &result {
            tracing::warn!(validation = %self.id(), "analysis: {error:#}");
        }
        self.analysis = Some(result.map_err(|e| format!("{e:#}")));
    }

    async fn analyse(&mut self, section: &AnalysisSection) -> PipelineResult<Report> {
        let (git, dir, head) = (&self.git, &self.workspace, self.record.sha.clone());
        // The merge base with the base branch; without one, the commit's first parent.
        let base = match &self.record.base_sha {
            Some(base_sha) => git.merge_base(dir, base_sha, &head).await,
            None => git.first_parent(dir, &head).await,
        };
        let mut files = git.changed_files(dir, base.as_deref(), &head).await?;
        let rest = files.split_off(MAX_FILES.min(files.len()));
        let skipped = rest.len();
        let max_file_bytes = u64::from(section.max_file_kb.unwrap_or(1024)) << 10;
        let mut ids: Vec<String> = files
            .iter()
            .flat_map(|f| [f.base.clone(), f.head.clone()])
            .flatten()
            .collect();
        ids.sort();
        ids.dedup();
        let mut blobs = git
            .blobs(dir, &ids, max_file_bytes, MAX_TOTAL_BYTES)
            .await?;
        let mut side = |id: &Option<String>| match id.as_ref().and_then(|id| blobs.remove(id)) {
            None if id.is_none() => Side::Absent,
            None => Side::NotRead("git could not read it".into()),
            Some(Blob::Content(bytes)) => Side::Content(bytes),
            Some(Blob::TooLarge(size)) => Side::TooLarge(size),
            Some(Blob::OverBudget(_)) => Side::NotRead(format!(
                "the change's first {} MiB were read",
                MAX_TOTAL_BYTES >> 20
            )),
        };
        let changes: Vec<Change> = files
            .iter()
            .map(|f| Change {
                path: f.path.clone(),
                base: side(&f.base),
                head: side(&f.head),
            })
            .collect();
        let config = Config {
            max_function_complexity: section
                .max_function_complexity
                .unwrap_or(slipway_analysis::DEFAULT_MAX_FUNCTION_COMPLEXITY),
            max_function_lines: section.max_function_lines.filter(|&n| n > 0),
            tampering: self.tampering_severity(section).await?,
            allow: section.allow.clone(),
            secrets: self.secret_values().await?,
            max_file_bytes,
            time_limit: TIME_LIMIT,
        };
        for glob in &config.allow {
            if let Err(why) = slipway_analysis::valid_glob(glob) {
                return Err(PipelineError::Config(format!(
                    "[analysis] allow: '{glob}' is not a glob: {why}"
                )));
            }
        }
        let past_limit = slipway_analysis::skipped_files(
            rest.iter().map(|f| f.path.as_str()),
            &format!("past the first {MAX_FILES} changed files analysed"),
            &config,
        );
        let analysed =
            tokio::task::spawn_blocking(move || slipway_analysis::analyse(&changes, &config));
        let mut report = tokio::time::timeout(TIME_LIMIT + WATCHDOG_GRACE, analysed)
            .await
            .map_err(|_| PipelineError::TimedOut("the analysis"))??;
        report.findings.extend(past_limit);
        if skipped > 0 {
            report.findings.push(slipway_analysis::Finding {
                rule: slipway_analysis::NOT_ANALYSED,
                severity: Severity::Note,
                file: String::new(),
                line: None,
                message: format!(
                    "{skipped} more changed files were not analysed (the first {MAX_FILES} were)"
                ),
                code: None,
            });
        }
        Ok(report)
    }

    /// Weakened tests fail pull requests opened by Slipway's agent runs and validations of
    /// branches and commits (`protect_tests`, default true); people's pull requests warn.
    async fn tampering_severity(&self, section: &AnalysisSection) -> PipelineResult<Severity> {
        if !section.protect_tests.unwrap_or(true) {
            return Ok(Severity::Warning);
        }
        let Some(number) = self.record.pr else {
            return Ok(Severity::Error);
        };
        let store = &self.inner.store;
        let run = store
            .newest_run_of_pull_request(self.record.project_id, number)
            .await?;
        Ok(if run.is_some() {
            Severity::Error
        } else {
            Severity::Warning
        })
    }

    async fn secret_values(&self) -> PipelineResult<Vec<String>> {
        let secrets = self
            .inner
            .store
            .secret_values(self.record.project_id)
            .await?;
        Ok(secrets
            .iter()
            .map(|(_, value)| value.expose().to_owned())
            .collect())
    }

    /// The step: the findings in the log and as evidence; errors fail it.
    pub(super) async fn analysis(&mut self) -> StepEnd {
        let report = match self.analysis.take() {
            Some(Ok(report)) => report,
            Some(Err(error)) => {
                return StepEnd::Error(format!("the analysis could not run: {error}"))
            }
            None => return StepEnd::Error("the change was not read before the code ran".into()),
        };
        for finding in report.findings.iter().take(MAX_LOGGED) {
            let place = match finding.line {
                Some(line) => format!("{}:{line}", finding.file),
                None => finding.file.clone(),
            };
            let severity = format!("{:?}", finding.severity).to_lowercase();
            let line = format!("{place}: {severity} [{}] {}", finding.rule, finding.message);
            self.logs.line(StepName::Analysis, &line);
            if let Some(code) = &finding.code {
                self.logs.line(StepName::Analysis, &format!("    {code}"));
            }
        }
        if report.findings.len() > MAX_LOGGED {
            let more = report.findings.len() - MAX_LOGGED;
            self.logs.line(
                StepName::Analysis,
                &format!("… and {more} more (see {ARTIFACT})"),
            );
        }
        for time in &report.languages {
            let line = format!(
                "{}: {} files in {} ms",
                time.language,
                time.files,
                time.micros / 1000
            );
            self.logs.line(StepName::Analysis, &line);
        }
        self.keep_report(&report).await;
        let (errors, warnings, notes) = (
            report.errors(),
            report.count(Severity::Warning),
            report.count(Severity::Note),
        );
        let summary = format!(
            "{} files analysed: {errors} errors, {warnings} warnings, {notes} notes",
            report.files
        );
        let Some(first) = report
            .findings
            .iter()
            .find(|f| f.severity == Severity::Error)
        else {
            return StepEnd::Passed(Some(summary));
        };
        let tampered = report
            .findings
            .iter()
            .any(|f| f.severity == Severity::Error && f.rule == slipway_analysis::TEST_TAMPERING);
        let refusal = if tampered {
            "weakening, skipping or deleting tests is refused: fix the code instead; "
        } else {
            ""
        };
        let place = first.line.map(|l| format!(":{l}")).unwrap_or_default();
        StepEnd::Failed {
            exit_code: None,
            detail: format!(
                "{summary}; {refusal}first: {}{place} [{}] {}",
                first.file, first.rule, first.message
            ),
            retryable: false,
        }
    }

    /// `analysis.json` among the validation's artifacts, every string masked.
    async fn keep_report(&self, report: &Report) {
        let dir = self.artifacts_dir();
        let mut value = serde_json::to_value(report).expect("a report serializes");
        mask_strings(&mut value, &|text| self.logs.mask(text));
        let written = async {
            tokio::fs::create_dir_all(&dir).await?;
            tokio::fs::write(dir.join(ARTIFACT), serde_json::to_vec(&value)?).await
        };
        if let Err(error) = written.await {
            tracing::warn!(%error, "the analysis's findings were not kept");
            self.logs.line(
                StepName::Analysis,
                "the findings were not kept as evidence (see the server log)",
            );
        }
    }
}

fn mask_strings(value: &mut serde_json::Value, mask: &dyn Fn(&str) -> String) {
    match value {
        serde_json::Value::String(text) => *text = mask(text),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| mask_strings(v, mask)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| mask_strings(v, mask)),
        _ => {}
    }
}

impl crate::Engine {
    /// The analysis step's evidence of a validation (`analysis.json`: files, findings, time
    /// per language), when it ran.
    pub async fn analysis_evidence(
        &self,
        id: slipway_core::ValidationId,
    ) -> Option<serde_json::Value> {
        let bytes = tokio::fs::read(self.artifacts_dir(id).join(ARTIFACT))
            .await
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Findings shown in a pull request's report.
const FINDINGS_REPORTED: usize = 20;

/// The analysis's findings for a pull request's report (Markdown): the first 20 and a count.
pub(crate) fn findings_markdown(evidence: &serde_json::Value) -> String {
    let Some(all) = evidence["findings"].as_array().filter(|a| !a.is_empty()) else {
        return String::new();
    };
    let mut text = format!("\n**Analysis** ({} findings):\n", all.len());
    for finding in all.iter().take(FINDINGS_REPORTED) {
        let field = |key: &str| finding[key].as_str().unwrap_or_default().replace('`', "'");
        let place = match finding["line"].as_u64() {
            Some(line) => format!("{}:{line}", field("file")),
            None => field("file"),
        };
        text.push_str(&format!(
            "- `{place}` {} [{}] {}\n",
            field("severity"),
            field("rule"),
            field("message")
        ));
    }
    if all.len() > FINDINGS_REPORTED {
        text.push_str(&format!("- … and {} more\n", all.len() - FINDINGS_REPORTED));
    }
    text
}

/// The findings at a line, as a forge's annotations (GitHub's check run: at most 1,000 here).
pub(crate) fn annotations(evidence: &serde_json::Value) -> Vec<slipway_forge::Annotation> {
    let all = evidence["findings"].as_array().into_iter().flatten();
    all.filter_map(|finding| {
        let line = u32::try_from(finding["line"].as_u64()?).ok()?;
        let text = |key: &str| finding[key].as_str().unwrap_or_default().to_owned();
        let level = match finding["severity"].as_str()? {
            "error" => "failure",
            "warning" => "warning",
            _ => "notice",
        };
        Some(slipway_forge::Annotation {
            path: text("file"),
            line,
            level,
            title: text("rule"),
            message: text("message"),
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_report_lists_the_first_twenty_findings_and_counts_the_rest() {
        let finding = |n: u64| {
            json!({"rule": "complexity", "severity": "error", "file": "a.py", "line": n,
                   "message": "`f` has cyclomatic complexity 20 (limit 15): split it"})
        };
        let evidence = json!({"findings": (1..=23).map(finding).collect::<Vec<_>>()});
        let text = super::findings_markdown(&evidence);
        assert!(text.contains("**Analysis** (23 findings):"), "{text}");
        assert!(
            text.contains("- `a.py:20` error [complexity] 'f' has cyclomatic"),
            "{text}"
        );
        assert!(!text.contains("a.py:21"), "{text}");
        assert!(text.ends_with("- … and 3 more\n"), "{text}");
        assert_eq!(super::findings_markdown(&json!({"findings": []})), "");
    }
}
