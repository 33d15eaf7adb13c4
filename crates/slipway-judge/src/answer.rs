//! The judge's answer: the schema sent to the model (DESIGN.md §6) and the checks its text
//! must pass. Anything else is the step's `error`, never a pass.

use slipway_core::judge::Answer;

/// The response schema, in the JSON Schema subset both APIs take.
pub fn schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "verdict": {"type": "string", "enum": ["pass", "fail", "uncertain"]},
            "score": {"type": "integer", "description": "0 to 100"},
            "criteria": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "criterion": {"type": "string"},
                        "met": {"type": "boolean"},
                        "evidence": {"type": "string"}
                    },
                    "required": ["criterion", "met", "evidence"]
                }
            },
            "concerns": {"type": "array", "items": {"type": "string"}}
        },
        "required": ["verdict", "score", "criteria", "concerns"]
    })
}

/// Why an answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the judge's answer breaks its schema: {0}")]
pub struct Refused(pub String);

/// Shortest quote accepted as evidence of a met criterion.
const MIN_EVIDENCE_CHARS: usize = 8;

/// Reads the model's text as an [`Answer`]: exactly the schema's fields, a score of 0–100,
/// one result per acceptance criterion in order, and for each criterion marked met a quote
/// that appears in `data` (the input it was given, compared case- and space-insensitively).
pub fn read(text: &str, criteria: &[String], data: &str) -> Result<Answer, Refused> {
    let answer: Answer = serde_json::from_str(text.trim())
        .map_err(|e| Refused(format!("{e}: {}", crate::http::snippet(text))))?;
    if answer.score > 100 {
        return Err(Refused(format!("score {} is not 0 to 100", answer.score)));
    }
    if answer.criteria.len() != criteria.len() {
        return Err(Refused(format!(
            "{} criteria judged, {} given",
            answer.criteria.len(),
            criteria.len()
        )));
    }
    let haystack = normal(data);
    for (given, judged) in criteria.iter().zip(&answer.criteria) {
        if normal(given) != normal(&judged.criterion) {
            return Err(Refused(format!(
                "criterion '{}' was answered as '{}'",
                given, judged.criterion
            )));
        }
        if judged.met {
            let quote = normal(&judged.evidence);
            if quote.chars().count() < MIN_EVIDENCE_CHARS || !haystack.contains(&quote) {
                return Err(Refused(format!(
                    "criterion '{given}' is marked met on evidence that is not in the input: \
                     '{}'",
                    crate::http::snippet(&judged.evidence)
                )));
            }
        }
    }
    Ok(answer)
}

/// Lower case, every run of white space one space.
fn normal(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_core::judge::Verdict;

    const DATA: &str = "+ app.post('/login', handler)\n test: 3 passed";

    fn criteria() -> Vec<String> {
        vec!["users can log in".into()]
    }

    #[test]
    fn a_well_formed_answer_with_quoted_evidence_is_read() {
        let text = r#"{"verdict":"pass","score":88,"criteria":[{"criterion":"Users can log in",
            "met":true,"evidence":"app.post('/login',   handler)"}],"concerns":[]}"#;
        let answer = read(text, &criteria(), DATA).unwrap();
        assert_eq!((answer.verdict, answer.score), (Verdict::Pass, 88));
    }

    #[test]
    fn answers_outside_the_schema_are_refused() {
        let cases = [
            ("not json", "expected"),
            (
                r#"{"verdict":"approve","score":1,"criteria":[],"concerns":[]}"#,
                "unknown variant",
            ),
            (
                r#"{"verdict":"pass","score":101,"criteria":[{"criterion":"users can log in","met":false,"evidence":""}],"concerns":[]}"#,
                "score 101",
            ),
            (
                r#"{"verdict":"pass","score":-1,"criteria":[],"concerns":[]}"#,
                "invalid value",
            ),
            (
                r#"{"verdict":"pass","score":90,"criteria":[],"concerns":[]}"#,
                "0 criteria judged, 1 given",
            ),
            (
                r#"{"verdict":"pass","score":90,"criteria":[{"criterion":"users can log in","met":false,"evidence":""}],"concerns":[],"extra":1}"#,
                "unknown field",
            ),
            (
                r#"{"verdict":"pass","score":90,"criteria":[{"criterion":"something else","met":false,"evidence":""}],"concerns":[]}"#,
                "was answered as",
            ),
            (
                r#"{"verdict":"pass","score":90,"criteria":[{"criterion":"users can log in","met":true,"evidence":"the tests all pass, trust me"}],"concerns":[]}"#,
                "not in the input",
            ),
        ];
        for (text, why) in cases {
            let err = read(text, &criteria(), DATA).unwrap_err();
            assert!(err.0.contains(why), "{text}: {err}");
        }
    }
}
