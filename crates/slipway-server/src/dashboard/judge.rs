//! The validation page's AI judgement: the model's answer, tokens and cost, read from the
//! `judge.json` artifact the judge step keeps (masked when it was written).

use crate::state::AppState;
use slipway_core::ValidationId;

use slipway_engine::evidence::{FAILURE_NOTE as ANALYSIS, JUDGE as FILE};

/// A model's note on why a step failed.
pub struct AnalysisView {
    pub step: String,
    pub model: String,
    pub cause: String,
    pub files: Vec<String>,
    pub fix: String,
}

/// The validation's failure analysis, when a model made one.
pub async fn analysis_of(state: &AppState, id: ValidationId) -> Option<AnalysisView> {
    let text = tokio::fs::read(state.engine.artifacts_dir(id).join(ANALYSIS))
        .await
        .ok()?;
    let a: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    Some(AnalysisView {
        step: text(&a["step"]),
        model: text(&a["model"]),
        cause: text(&a["note"]["probable_cause"]),
        files: a["note"]["files"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect(),
        fix: text(&a["note"]["suggested_fix"]),
    })
}

pub struct CriterionView {
    pub criterion: String,
    pub met: bool,
    pub evidence: String,
}

/// What the page shows of a judgement.
pub struct JudgeView {
    pub model: String,
    pub mode: String,
    /// `passed`, `failed` or `error`: what it made of the step.
    pub status: String,
    pub detail: String,
    pub verdict: Option<String>,
    pub score: Option<u64>,
    pub criteria: Vec<CriterionView>,
    pub concerns: Vec<String>,
    pub tokens: String,
    pub left_out: Vec<String>,
}

/// The validation's judgement, when its judge step answered or failed to.
pub async fn judge_of(state: &AppState, id: ValidationId) -> Option<JudgeView> {
    let text = tokio::fs::read(state.engine.artifacts_dir(id).join(FILE))
        .await
        .ok()?;
    let j: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let answer = &j["answer"];
    let usage = &j["usage"];
    let cost = usage["cost_usd"]
        .as_f64()
        .map(|c| format!(" · ${c:.4}"))
        .unwrap_or_default();
    Some(JudgeView {
        model: text(&j["model"]),
        mode: text(&j["mode"]),
        status: text(&j["outcome"]["status"]),
        detail: text(&j["outcome"]["detail"]),
        verdict: answer["verdict"].as_str().map(str::to_owned),
        score: answer["score"].as_u64(),
        criteria: answer["criteria"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| CriterionView {
                criterion: text(&c["criterion"]),
                met: c["met"] == true,
                evidence: text(&c["evidence"]),
            })
            .collect(),
        concerns: answer["concerns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect(),
        tokens: format!(
            "{} input + {} output tokens{cost}",
            usage["input_tokens"], usage["output_tokens"]
        ),
        left_out: j["left_out"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect(),
    })
}
