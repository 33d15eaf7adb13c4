//! One judgement: the prompt, one model call, the answer held to its schema, and what it
//! makes of the step. An answer outside the schema, or none, is an error, never a pass.

use crate::answer;
use crate::diff::{self, CHARS_PER_TOKEN};
use crate::prompt::{self, JudgeInput};
use crate::{Model, Request, Usage};
use serde::Serialize;
use slipway_core::judge::{decide, Answer, Decision, JudgeSection};

/// How the step ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "detail", rename_all = "snake_case")]
pub enum Outcome {
    Passed(String),
    Failed(String),
    /// No usable answer: the model's fault or the configuration's, never the code's.
    Error(String),
}

/// What the validation shows of the judgement (the evidence JSON).
#[derive(Debug, Clone, Serialize)]
pub struct Judgement {
    pub model: String,
    pub mode: slipway_core::judge::JudgeMode,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
    pub usage: Usage,
    pub calls: u32,
    /// Lockfiles and generated files the judge was not shown, and files summarised.
    pub left_out: Vec<String>,
    pub summarised: Vec<String>,
}

/// Puts `raw_diff` into `input`, trimmed so that the whole input stays within the section's
/// token budget.
pub fn fit_diff(input: &mut JudgeInput, raw_diff: &str, section: &JudgeSection) {
    input.diff = None;
    let rest = prompt::build(input, &"0".repeat(32));
    let rest_tokens = (rest.system.len() + rest.user.len()) / CHARS_PER_TOKEN;
    let budget = (section.input_tokens() as usize).saturating_sub(rest_tokens);
    input.diff = Some(diff::trim(raw_diff, budget));
}

/// Judges `input` with `model` under `section`.
pub async fn judge(model: &impl Model, section: &JudgeSection, input: &JudgeInput) -> Judgement {
    let prompt = prompt::build(input, &prompt::nonce());
    let schema = answer::schema();
    let request = Request {
        system: &prompt.system,
        user: &prompt.user,
        schema: &schema,
        max_output_tokens: section.output_tokens(),
    };
    let mut judgement = Judgement {
        model: model.name(),
        mode: section.mode,
        outcome: Outcome::Error(String::new()),
        answer: None,
        usage: Usage::default(),
        calls: 0,
        left_out: input
            .diff
            .as_ref()
            .map(|d| d.left_out.clone())
            .unwrap_or_default(),
        summarised: input
            .diff
            .as_ref()
            .map(|d| d.summarised.clone())
            .unwrap_or_default(),
    };
    let completion = match model.complete(request).await {
        Ok(completion) => completion,
        Err(error) => {
            judgement.outcome = Outcome::Error(format!("no judgement: {error}"));
            return judgement;
        }
    };
    judgement.usage = completion.usage;
    judgement.calls = completion.calls;
    judgement.outcome = match answer::read(&completion.text, &input.criteria, &prompt.data) {
        Ok(answer) => {
            let outcome = match decide(section, &answer) {
                Decision::Passed(why) => Outcome::Passed(why),
                Decision::Failed(why) => Outcome::Failed(why),
            };
            judgement.answer = Some(answer);
            outcome
        }
        Err(refused) => Outcome::Error(refused.to_string()),
    };
    judgement
}
