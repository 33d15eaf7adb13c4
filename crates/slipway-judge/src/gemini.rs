//! Gemini's `models.generateContent` (`POST /v1beta/models/{model}:generateContent`, key in
//! `x-goog-api-key`): the instructions as `systemInstruction`, the data as one user turn, the
//! answer constrained by `generationConfig.responseSchema` (OpenAPI's subset, upper-case
//! types); the text from `candidates[0].content.parts`, tokens from `usageMetadata`.

use crate::{http, Completion, Model, ModelConfig, ModelError, Request, Usage};
use serde_json::{json, Value};

#[derive(Clone)]
pub struct Gemini {
    http: reqwest::Client,
    config: ModelConfig,
}

impl Gemini {
    pub fn new(config: ModelConfig) -> Self {
        Self {
            http: client(&config),
            config,
        }
    }

    fn body(request: &Request<'_>) -> Value {
        json!({
            "systemInstruction": {"parts": [{"text": request.system}]},
            "contents": [{"role": "user", "parts": [{"text": request.user}]}],
            "generationConfig": {
                "temperature": 0,
                "maxOutputTokens": request.max_output_tokens,
                "responseMimeType": "application/json",
                "responseSchema": gemini_schema(request.schema),
            }
        })
    }
}

pub(crate) fn client(config: &ModelConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(config.timeout)
        .user_agent("slipway")
        .build()
        .expect("an HTTP client builds")
}

/// JSON Schema → Gemini's `Schema`: upper-case types, no `additionalProperties`.
fn gemini_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(key, _)| key.as_str() != "additionalProperties")
                .map(|(key, value)| {
                    let value = match (key.as_str(), value) {
                        ("type", Value::String(t)) => Value::String(t.to_ascii_uppercase()),
                        ("properties", Value::Object(props)) => Value::Object(
                            props
                                .iter()
                                .map(|(k, v)| (k.clone(), gemini_schema(v)))
                                .collect(),
                        ),
                        _ => gemini_schema(value),
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

impl Model for Gemini {
    fn name(&self) -> String {
        format!("gemini:{}", self.config.model)
    }

    async fn complete(&self, request: Request<'_>) -> Result<Completion, ModelError> {
        let url = format!(
            "{}/v1beta/models/{}:generateContent",
            self.config.url.trim_end_matches('/'),
            self.config.model
        );
        let key = self.config.api_key.as_deref().unwrap_or_default();
        let (answer, calls) = http::post_json(
            &self.http,
            &url,
            &[("x-goog-api-key", key)],
            &Self::body(&request),
            self.config.retry_base,
        )
        .await?;
        let candidate = &answer["candidates"][0];
        let parts = candidate["content"]["parts"].as_array();
        let text: Option<String> = parts.map(|parts| {
            parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<String>()
        });
        let Some(text) = text.filter(|t| !t.is_empty()) else {
            let why = candidate["finishReason"]
                .as_str()
                .or(answer["promptFeedback"]["blockReason"].as_str())
                .unwrap_or("no candidate");
            return Err(ModelError::Unreadable(format!(
                "no text in the answer (finish reason: {why})"
            )));
        };
        let meta = &answer["usageMetadata"];
        let input = meta["promptTokenCount"].as_u64().unwrap_or(0);
        let output = meta["candidatesTokenCount"].as_u64().unwrap_or(0)
            + meta["thoughtsTokenCount"].as_u64().unwrap_or(0);
        Ok(Completion {
            text,
            usage: Usage {
                input_tokens: input,
                output_tokens: output,
                cost_usd: self.config.price.map(|p| p.cost(input, output)),
            },
            calls,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_schema_takes_geminis_spelling() {
        let schema = serde_json::json!({"type": "object", "additionalProperties": false,
            "properties": {"a": {"type": "array", "items": {"type": "string"}}}});
        let converted = super::gemini_schema(&schema);
        assert_eq!(
            converted,
            serde_json::json!({"type": "OBJECT",
                "properties": {"a": {"type": "ARRAY", "items": {"type": "STRING"}}}})
        );
    }
}
