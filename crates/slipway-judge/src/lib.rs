//! Model clients behind one trait ([`Model`]): Gemini's `generateContent` with a
//! `responseSchema`, and any OpenAI-compatible server's chat completions with a `json_schema`
//! response format; and the AI judgement of a pull request ([`judge`]): its input trimmed to a
//! budget ([`diff`]), the prompt with the PR's words fenced as data ([`prompt`]), and the
//! answer held to its schema ([`answer`]).

pub mod analysis;
pub mod answer;
pub mod config;
pub mod diff;
mod gemini;
pub mod goal;
mod http;
pub mod judge;
mod openai;
pub mod prompt;

pub use config::{ModelConfig, Models, Price};
pub use gemini::Gemini;
pub use openai::OpenAi;

use serde::Serialize;
use std::future::Future;

/// One question to a model: instructions, the data, the schema its answer must follow.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub system: &'a str,
    pub user: &'a str,
    /// A JSON Schema (the subset both APIs take: objects, arrays, strings, integers,
    /// booleans, enums, ranges).
    pub schema: &'a serde_json::Value,
    pub max_output_tokens: u32,
}

/// What one call used, and cost when a price is configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

/// A model's answer: its text (JSON, by the schema asked for) and what it used.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub usage: Usage,
    /// Calls made for it (retries included).
    pub calls: u32,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// No usable answer after every retry (rate limits, the server's faults, timeouts).
    #[error("the model is unavailable after {tries} tries: {message}")]
    Unavailable { tries: u32, message: String },
    /// The server refused the request; trying again will not help.
    #[error("the model's server refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    /// An answer that does not follow the API's shape.
    #[error("the model's server answered something Slipway cannot read: {0}")]
    Unreadable(String),
}

/// A model behind an HTTP API.
pub trait Model: Send + Sync {
    /// `provider:model`, for reports and cache keys.
    fn name(&self) -> String;

    /// Asks once (retrying transient faults); the answer's text is not checked here.
    fn complete(
        &self,
        request: Request<'_>,
    ) -> impl Future<Output = Result<Completion, ModelError>> + Send;
}

/// Either client, chosen by configuration.
#[derive(Clone)]
pub enum AnyModel {
    Gemini(Gemini),
    OpenAi(OpenAi),
}

impl AnyModel {
    pub fn new(config: ModelConfig) -> Self {
        match config.provider {
            slipway_core::judge::Provider::Gemini => AnyModel::Gemini(Gemini::new(config)),
            slipway_core::judge::Provider::Openai => AnyModel::OpenAi(OpenAi::new(config)),
        }
    }
}

impl Model for AnyModel {
    fn name(&self) -> String {
        match self {
            AnyModel::Gemini(m) => m.name(),
            AnyModel::OpenAi(m) => m.name(),
        }
    }

    async fn complete(&self, request: Request<'_>) -> Result<Completion, ModelError> {
        match self {
            AnyModel::Gemini(m) => m.complete(request).await,
            AnyModel::OpenAi(m) => m.complete(request).await,
        }
    }
}
