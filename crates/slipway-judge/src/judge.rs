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
    /// Reused from an earlier judgement of the same input by the same model: no call made.
    pub cached: bool,
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

/// An answer kept for the same input: `<cache>/<key>.json`.
#[derive(Serialize, serde::Deserialize)]
struct Kept {
    answer: Answer,
    usage: Usage,
}

/// What makes two judgements the same: the model, the schema, the prompt (with its nonce
/// left out) and the answer's budget.
fn cache_key(model: &str, input: &JudgeInput, section: &JudgeSection) -> String {
    use sha2::{Digest, Sha256};
    let prompt = prompt::build(input, "nonce");
    let mut hash = Sha256::new();
    for part in [
        model,
        &answer::schema().to_string(),
        &prompt.system,
        &prompt.user,
        &section.output_tokens().to_string(),
    ] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Judges `input` with `model` under `section`; with `cache`, an answer given earlier for
/// the same input is reused (no paying twice for the same change), and a new one is kept.
pub async fn judge(
    model: &impl Model,
    section: &JudgeSection,
    input: &JudgeInput,
    cache: Option<&std::path::Path>,
) -> Judgement {
    let file =
        cache.map(|dir| dir.join(format!("{}.json", cache_key(&model.name(), input, section))));
    let kept = match &file {
        Some(file) => tokio::fs::read(file)
            .await
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Kept>(&bytes).ok()),
        None => None,
    };
    let mut judgement = judge_once(model, section, input, kept.as_ref()).await;
    if let (Some(file), Some(answer), None) = (&file, &judgement.answer, &kept) {
        let kept = Kept {
            answer: answer.clone(),
            usage: judgement.usage,
        };
        let json = serde_json::to_vec(&kept).expect("an answer serializes");
        let written = async {
            tokio::fs::create_dir_all(file.parent().expect("in the cache")).await?;
            tokio::fs::write(file, json).await
        };
        if let Err(error) = written.await {
            tracing::warn!(%error, "a judgement was not cached");
        }
    }
    judgement.cached = kept.is_some();
    judgement
}

async fn judge_once(
    model: &impl Model,
    section: &JudgeSection,
    input: &JudgeInput,
    kept: Option<&Kept>,
) -> Judgement {
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
        cached: false,
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
    if let Some(kept) = kept {
        judgement.usage = kept.usage;
        judgement.outcome = match decide(section, &kept.answer) {
            Decision::Passed(why) => Outcome::Passed(why),
            Decision::Failed(why) => Outcome::Failed(why),
        };
        judgement.answer = Some(kept.answer.clone());
        return judgement;
    }
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
