//! A fake OpenAI-compatible server's chat completions on localhost, in the published shapes
//! (`POST /v1/chat/completions`, bearer key; a `chat.completion` with
//! `choices[].message.content`, `finish_reason` and `usage`; errors as
//! `{"error": {"message", "type", "param", "code"}}`), with scripted answers and injected
//! faults (see [`crate::fake_model`]).

use crate::fake_model::{self, Fault, Handle, Reply, Shared};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

pub use crate::fake_model::Script;

pub struct FakeOpenAi {
    /// `SLIPWAY_LLM_URL` (with `/v1`).
    pub url: String,
    pub handle: Handle,
    shutdown: tokio_util::sync::CancellationToken,
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl std::ops::Deref for FakeOpenAi {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        &self.handle
    }
}

#[derive(Clone)]
struct Served {
    world: Shared,
    key: Option<String>,
}

impl FakeOpenAi {
    /// Starts the fake; with `key`, it accepts only that bearer key (a local server may
    /// take none).
    pub async fn start(key: Option<&str>) -> Self {
        let world = Shared::default();
        let served = Served {
            world: world.clone(),
            key: key.map(str::to_owned),
        };
        let router = Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(served);
        let (url, shutdown) = fake_model::serve(router).await;
        Self {
            url: format!("{url}/v1"),
            handle: Handle { world },
            shutdown,
        }
    }
}

fn error(status: u16, message: &str, kind: &str, code: &str) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
}

async fn complete(State(served): State<Served>, headers: HeaderMap, body: String) -> Response {
    if let Some(key) = &served.key {
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(key.as_str()) {
            return error(
                401,
                "Incorrect API key provided.",
                "invalid_request_error",
                "invalid_api_key",
            );
        }
    }
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        return error(
            400,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
            "invalid_json",
        );
    };
    let model = request["model"].as_str().unwrap_or_default().to_owned();
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    if model.is_empty() || messages.is_empty() {
        return error(
            400,
            "'model' and 'messages' are required.",
            "invalid_request_error",
            "missing_required_parameter",
        );
    }
    let format = &request["response_format"];
    if format["type"] == "json_schema" && !format["json_schema"]["schema"].is_object() {
        return error(
            400,
            "Missing required parameter: 'response_format.json_schema'.",
            "invalid_request_error",
            "missing_required_parameter",
        );
    }
    let text = match fake_model::next(&served.world, &request).await {
        Reply::Fault(Fault::Status(status, retry_after)) => {
            let mut response = match status {
                429 => error(
                    429,
                    "Rate limit reached for requests",
                    "requests",
                    "rate_limit_exceeded",
                ),
                _ => error(
                    status,
                    "The server had an error while processing your request.",
                    "server_error",
                    "server_error",
                ),
            };
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", secs.to_string().parse().unwrap());
            }
            return response;
        }
        Reply::Fault(Fault::MalformedBody) => {
            return (StatusCode::OK, "{\"id\": \"chatcmpl-1\", \"choices\": [").into_response()
        }
        Reply::Fault(Fault::Slow(_)) => unreachable!("a slow fault waits, then answers"),
        Reply::Text(text) => text,
    };
    let prompt: u64 = messages
        .iter()
        .map(|m| fake_model::tokens(m["content"].as_str().unwrap_or_default()))
        .sum();
    let completion = fake_model::tokens(&text);
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Json(json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion
        }
    }))
    .into_response()
}
