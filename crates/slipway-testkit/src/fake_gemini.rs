//! A fake of Gemini's `models.generateContent` on localhost, in the published shapes
//! (`POST /v1beta/models/{model}:generateContent`, key in `x-goog-api-key`; a
//! `GenerateContentResponse` with `candidates[].content.parts[].text`, `finishReason` and
//! `usageMetadata`; errors as `{"error": {"code", "message", "status"}}`), with scripted
//! answers and injected faults (see [`crate::fake_model`]).

use crate::fake_model::{self, Fault, Handle, Reply, Shared};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

pub use crate::fake_model::Script;

pub struct FakeGemini {
    /// `GEMINI_API_URL`.
    pub url: String,
    pub handle: Handle,
    shutdown: tokio_util::sync::CancellationToken,
}

impl Drop for FakeGemini {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl std::ops::Deref for FakeGemini {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        &self.handle
    }
}

#[derive(Clone)]
struct Served {
    world: Shared,
    key: String,
}

impl FakeGemini {
    /// Starts the fake; it accepts only `key`.
    pub async fn start(key: &str) -> Self {
        let world = Shared::default();
        let served = Served {
            world: world.clone(),
            key: key.to_owned(),
        };
        let router = Router::new()
            .route("/v1beta/models/{call}", post(generate))
            .with_state(served);
        let (url, shutdown) = fake_model::serve(router).await;
        Self {
            url,
            handle: Handle { world },
            shutdown,
        }
    }
}

fn error(status: u16, message: &str) -> Response {
    let name = match status {
        400 => "INVALID_ARGUMENT",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    let body = json!({"error": {"code": status, "message": message, "status": name}});
    (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
}

async fn generate(
    State(served): State<Served>,
    Path(call): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let Some(model) = call.strip_suffix(":generateContent") else {
        return error(404, &format!("models/{call} is not found"));
    };
    match headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()) {
        None => return error(403, "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API."),
        Some(key) if key != served.key => {
            return error(400, "API key not valid. Please pass a valid API key.")
        }
        Some(_) => {}
    }
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        return error(400, "Invalid JSON payload received.");
    };
    let user = request["contents"][0]["parts"][0]["text"].as_str();
    let config = &request["generationConfig"];
    if user.is_none() {
        return error(
            400,
            "* GenerateContentRequest.contents: contents is not specified",
        );
    }
    if config["responseSchema"].is_object() && config["responseMimeType"] != "application/json" {
        return error(
            400,
            "responseSchema requires responseMimeType application/json",
        );
    }
    let reply = fake_model::next(&served.world, &request).await;
    let text = match reply {
        Reply::Fault(Fault::Status(status, retry_after)) => {
            let mut response = error(status, "injected fault");
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", secs.to_string().parse().unwrap());
            }
            return response;
        }
        Reply::Fault(Fault::MalformedBody) => {
            return (StatusCode::OK, "{\"candidates\": [{\"content\": ").into_response()
        }
        Reply::Fault(Fault::Slow(_)) => unreachable!("a slow fault waits, then answers"),
        Reply::Text(text) => text,
    };
    let system = request["systemInstruction"]["parts"][0]["text"]
        .as_str()
        .unwrap_or_default();
    let prompt = fake_model::tokens(system) + fake_model::tokens(user.unwrap_or_default());
    let candidates = fake_model::tokens(&text);
    Json(json!({
        "candidates": [{
            "content": {"parts": [{"text": text}], "role": "model"},
            "finishReason": "STOP",
            "index": 0
        }],
        "usageMetadata": {
            "promptTokenCount": prompt,
            "candidatesTokenCount": candidates,
            "totalTokenCount": prompt + candidates
        },
        "modelVersion": model,
        "responseId": "fake-response"
    }))
    .into_response()
}
