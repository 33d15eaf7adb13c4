//! `[judge]` of `.slipway.toml` and what a judgement makes of the step: the model's answer
//! (the fixed schema of DESIGN.md §6) and the decision, advisory or blocking. Pure.

use crate::Invalid;
use serde::{Deserialize, Serialize};

/// `[judge]`: a model judges the pull request against its goal and the evidence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JudgeSection {
    /// `advisory` (default: reported, never fails the validation) or `blocking`.
    #[serde(default)]
    pub mode: JudgeMode,
    /// A blocking judge fails a score below this (0–100; default 0: the verdict decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_score: Option<u8>,
    /// `gemini` or `openai` (an OpenAI-compatible server); default: Gemini when
    /// `GEMINI_API_KEY` is set, else `SLIPWAY_LLM_URL`'s server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    /// The model, instead of `GEMINI_MODEL` / `SLIPWAY_LLM_MODEL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Tokens the judge's input may take (default 24000): the diff is trimmed to fit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_input_tokens: Option<u32>,
    /// Tokens the answer may take (default 2048).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JudgeMode {
    #[default]
    Advisory,
    Blocking,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Gemini,
    Openai,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Gemini => "gemini",
            Provider::Openai => "openai",
        }
    }
}

pub const DEFAULT_MAX_INPUT_TOKENS: u32 = 24_000;
pub const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 2_048;
const INPUT_TOKENS: (u32, u32) = (1_000, 1_000_000);
const OUTPUT_TOKENS: (u32, u32) = (256, 65_536);

impl JudgeSection {
    pub fn validate(&self) -> Result<(), Invalid> {
        if let Some(score) = self.min_score {
            if score > 100 {
                return Err(Invalid::new(
                    "judge.min_score",
                    format!("{score} is out of range; accepted: 0 to 100"),
                ));
            }
        }
        if let Some(model) = self.model.as_deref() {
            // A model's name goes into the API's URL path: a name, nothing else.
            let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/');
            if model.is_empty()
                || model.len() > 100
                || model.contains("..")
                || !model.chars().all(allowed)
            {
                return Err(Invalid::new(
                    "judge.model",
                    format!(
                        "{model:?} is not a model name; use letters, digits, '.', '_', '-' or '/' \
                         (at most 100), or leave the key out"
                    ),
                ));
            }
        }
        for (key, value, (min, max)) in [
            ("max_input_tokens", self.max_input_tokens, INPUT_TOKENS),
            ("max_output_tokens", self.max_output_tokens, OUTPUT_TOKENS),
        ] {
            if let Some(value) = value {
                if !(min..=max).contains(&value) {
                    return Err(Invalid::new(
                        format!("judge.{key}"),
                        format!("{value} is out of range; accepted: {min} to {max}"),
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn input_tokens(&self) -> u32 {
        self.max_input_tokens.unwrap_or(DEFAULT_MAX_INPUT_TOKENS)
    }

    pub fn output_tokens(&self) -> u32 {
        self.max_output_tokens.unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS)
    }
}

/// The judge's verdict on the pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    Uncertain,
}

/// One acceptance criterion as the judge saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CriterionResult {
    pub criterion: String,
    pub met: bool,
    pub evidence: String,
}

/// The judge's answer, in the schema sent to the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub verdict: Verdict,
    pub score: u8,
    pub criteria: Vec<CriterionResult>,
    pub concerns: Vec<String>,
}

/// What the judgement makes of the step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Passed(String),
    Failed(String),
}

/// Advisory: reported, never failed. Blocking: fails on `fail`, on an unmet criterion, or
/// below `min_score` (an `uncertain` verdict that meets all of them passes, saying so).
pub fn decide(section: &JudgeSection, answer: &Answer) -> Decision {
    let verdict = match answer.verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Uncertain => "uncertain",
    };
    let unmet: Vec<&str> = answer
        .criteria
        .iter()
        .filter(|c| !c.met)
        .map(|c| c.criterion.as_str())
        .collect();
    let mut summary = format!("the judge says {verdict}, score {}/100", answer.score);
    if !unmet.is_empty() {
        summary.push_str(&format!("; unmet: {}", unmet.join("; ")));
    }
    if section.mode == JudgeMode::Advisory {
        return Decision::Passed(format!("{summary} (advisory: never fails the validation)"));
    }
    let min = section.min_score.unwrap_or(0);
    let mut why = Vec::new();
    if answer.verdict == Verdict::Fail {
        why.push("the verdict is fail".to_owned());
    }
    if !unmet.is_empty() {
        why.push(format!("{} criterion(s) unmet", unmet.len()));
    }
    if answer.score < min {
        why.push(format!("the score is below min_score {min}"));
    }
    if why.is_empty() {
        Decision::Passed(format!("{summary} (blocking)"))
    } else {
        Decision::Failed(format!("{summary} (blocking: {})", why.join(", ")))
    }
}

/// The acceptance criteria of a run, one per non-empty line (list markers dropped).
pub fn criteria_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| {
            line.trim()
                .trim_start_matches(['-', '*', '•'])
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .trim_start_matches(['.', ')'])
                .trim()
        })
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(verdict: Verdict, score: u8, met: &[bool]) -> Answer {
        Answer {
            verdict,
            score,
            criteria: met
                .iter()
                .enumerate()
                .map(|(i, &met)| CriterionResult {
                    criterion: format!("c{i}"),
                    met,
                    evidence: "x".into(),
                })
                .collect(),
            concerns: vec![],
        }
    }

    #[test]
    fn an_advisory_judge_never_fails() {
        let section = JudgeSection::default();
        let d = decide(&section, &answer(Verdict::Fail, 3, &[false]));
        assert!(matches!(&d, Decision::Passed(s) if s.contains("fail") && s.contains("unmet: c0")));
    }

    #[test]
    fn a_blocking_judge_fails_on_fail_unmet_or_low_score() {
        let section = JudgeSection {
            mode: JudgeMode::Blocking,
            min_score: Some(70),
            ..Default::default()
        };
        let cases = [
            (answer(Verdict::Fail, 90, &[true]), "verdict is fail"),
            (
                answer(Verdict::Pass, 90, &[true, false]),
                "1 criterion(s) unmet",
            ),
            (answer(Verdict::Pass, 69, &[true]), "below min_score 70"),
        ];
        for (a, why) in cases {
            assert!(matches!(decide(&section, &a), Decision::Failed(s) if s.contains(why)));
        }
        assert!(matches!(
            decide(&section, &answer(Verdict::Pass, 70, &[true])),
            Decision::Passed(_)
        ));
        assert!(matches!(
            decide(&section, &answer(Verdict::Uncertain, 80, &[])),
            Decision::Passed(s) if s.contains("uncertain")
        ));
    }

    #[test]
    fn out_of_range_keys_are_refused() {
        let bad = [
            JudgeSection {
                min_score: Some(101),
                ..Default::default()
            },
            JudgeSection {
                max_input_tokens: Some(10),
                ..Default::default()
            },
            JudgeSection {
                model: Some(" ".into()),
                ..Default::default()
            },
        ];
        for section in bad {
            assert!(section.validate().is_err(), "{section:?}");
        }
        assert!(JudgeSection::default().validate().is_ok());
    }

    #[test]
    fn criteria_are_read_one_per_line() {
        assert_eq!(
            criteria_lines("- a user can log in\n\n2. posts show on the index\n* x"),
            ["a user can log in", "posts show on the index", "x"]
        );
    }
}
