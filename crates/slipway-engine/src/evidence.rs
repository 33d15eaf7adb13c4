//! The names of the evidence files the steps keep among a validation's artifacts (beside the
//! browser checks' own reports and screenshots): written by the engine, read by the dashboard
//! and the CLI.

/// The analysis step's findings.
pub const ANALYSIS: &str = "analysis.json";
/// The judge step's answer, tokens and cost.
pub const JUDGE: &str = "judge.json";
/// A model's note on why a step failed.
pub const FAILURE_NOTE: &str = "failure-analysis.json";

/// Every step's evidence file: what among the artifacts is not a browser check.
pub const STEP_FILES: [&str; 3] = [ANALYSIS, JUDGE, FAILURE_NOTE];
