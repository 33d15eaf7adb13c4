//! Any OpenAI-compatible server's chat completions (`POST {base}/chat/completions`, bearer
//! key when set): a system and a user message, `response_format` of type `json_schema`
//! (strict); the text from `choices[0].message.content`, tokens from `usage`.

use crate::{gemini::client, http, Completion, Model, ModelConfig, ModelError, Request, Usage};
use serde_json::json;

#[derive(Clone)]
pub struct OpenAi {
    http: reqwest::Client,
    config: ModelConfig,
}

impl OpenAi {
    pub fn new(config: ModelConfig) -> Self {
        Self {
            http: client(&config),
            config,
        }
    }
}

impl Model for OpenAi {
    fn name(&self) -> String {
        format!("openai:{}", self.config.model)
    }

    async fn complete(&self, request: Request<'_>) -> Result<Completion, ModelError> {
        let url = format!("{}/chat/completions", self.config.url.trim_end_matches('/'));
        let body = json!({
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": request.system},
                {"role": "user", "content": request.user},
            ],
            "temperature": 0,
            "max_tokens": request.max_output_tokens,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "strict": true, "schema": request.schema},
            },
        });
        let bearer = self.config.api_key.as_ref().map(|k| format!("Bearer {k}"));
        let headers: Vec<(&str, &str)> = bearer
            .as_deref()
            .map(|b| ("authorization", b))
            .into_iter()
            .collect();
        let (answer, calls) =
            http::post_json(&self.http, &url, &headers, &body, self.config.retry_base).await?;
        let message = &answer["choices"][0]["message"];
        let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) else {
            let why = message["refusal"]
                .as_str()
                .map(|r| format!("the model refused: {}", http::snippet(r)))
                .or_else(|| {
                    answer["choices"][0]["finish_reason"]
                        .as_str()
                        .map(|r| format!("finish reason: {r}"))
                })
                .unwrap_or_else(|| "no choice".into());
            return Err(ModelError::Unreadable(format!(
                "no content in the answer ({why})"
            )));
        };
        let input = answer["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
        let output = answer["usage"]["completion_tokens"].as_u64().unwrap_or(0);
        Ok(Completion {
            text: text.to_owned(),
            usage: Usage {
                input_tokens: input,
                output_tokens: output,
                cost_usd: self.config.price.map(|p| p.cost(input, output)),
            },
            calls,
        })
    }
}
