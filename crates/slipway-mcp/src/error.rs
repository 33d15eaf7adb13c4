//! Tool errors a model can act on: what to send instead, what it may not do, what does not
//! exist, or a fault of Slipway's own (never reported as the code's failure).

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::json;
use slipway_store::StoreError;

#[derive(Debug)]
pub enum ToolError {
    /// The arguments are wrong: the message says what to send.
    BadArgument(String),
    /// The caller's role does not allow it.
    Forbidden(String),
    NotFound(String),
    /// The state does not allow it now (a run that waits for no answer, say).
    Conflict(String),
    /// Slipway failed (its database, its sandbox): nothing about the caller's code.
    Slipway(String),
}

impl ToolError {
    fn kind(&self) -> &'static str {
        match self {
            ToolError::BadArgument(_) => "bad_argument",
            ToolError::Forbidden(_) => "forbidden",
            ToolError::NotFound(_) => "not_found",
            ToolError::Conflict(_) => "conflict",
            ToolError::Slipway(_) => "slipway_error",
        }
    }

    fn message(&self) -> &str {
        match self {
            ToolError::BadArgument(m)
            | ToolError::Forbidden(m)
            | ToolError::NotFound(m)
            | ToolError::Conflict(m)
            | ToolError::Slipway(m) => m,
        }
    }

    /// A tool result with `isError`, its kind and message as text and as structured content.
    pub fn into_result(self) -> CallToolResult {
        let text = match &self {
            ToolError::Slipway(m) => format!(
                "slipway_error: a fault of Slipway's own, not of your code: {m}. Try again later \
                 or tell whoever runs Slipway"
            ),
            other => format!("{}: {}", other.kind(), other.message()),
        };
        let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
        result.structured_content = Some(json!({
            "error": {"kind": self.kind(), "message": self.message()}
        }));
        result
    }

    /// A store failure: a missing `what` is the caller's to fix, anything else is Slipway's.
    pub fn store(error: StoreError, what: impl FnOnce() -> String) -> Self {
        match error {
            StoreError::NotFound => ToolError::NotFound(what()),
            StoreError::Conflict(message) => ToolError::Conflict(message),
            other => ToolError::Slipway(other.to_string()),
        }
    }
}

impl From<StoreError> for ToolError {
    fn from(error: StoreError) -> Self {
        ToolError::store(error, || "not found".into())
    }
}
