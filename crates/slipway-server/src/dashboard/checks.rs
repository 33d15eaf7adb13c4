//! The validation page's browser checks: each check's verdict, evidence and screenshot, read
//! from the validation's artifacts; and the screenshots themselves for a signed-in visitor.

use super::session::Signed;
use super::PageError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use slipway_core::ValidationId;

/// One browser check in one viewport, as the page shows it.
pub struct CheckView {
    pub name: String,
    pub viewport: String,
    pub passed: bool,
    pub failure: Option<String>,
    /// The screenshot's URL on the dashboard.
    pub screenshot: Option<String>,
    pub timeline: Vec<String>,
    pub console: Vec<String>,
    pub requests: Vec<String>,
}

/// The browser checks a validation ran, failed ones first.
pub async fn checks_of(state: &AppState, id: ValidationId) -> Vec<CheckView> {
    let dir = state.engine.artifacts_dir(id);
    let mut views = Vec::new();
    let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
        return views;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".json") || slipway_engine::evidence::STEP_FILES.contains(&name.as_str())
        {
            continue;
        }
        let Ok(text) = tokio::fs::read(entry.path()).await else {
            continue;
        };
        let Ok(report) = serde_json::from_slice::<serde_json::Value>(&text) else {
            continue;
        };
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        let list = |key: &str, line: &dyn Fn(&serde_json::Value) -> String| {
            report[key]
                .as_array()
                .into_iter()
                .flatten()
                .map(line)
                .collect::<Vec<_>>()
        };
        views.push(CheckView {
            name: text(&report["check"]),
            viewport: text(&report["viewport"]),
            passed: report["passed"] == true,
            failure: report["failure"].as_str().map(str::to_owned),
            screenshot: report["screenshot"]
                .as_str()
                .map(|file| format!("/validations/{id}/artifacts/{file}")),
            timeline: list("timeline", &|s| {
                format!(
                    "{} · {} ms{}",
                    text(&s["step"]),
                    s["ms"],
                    if s["ok"] == true { "" } else { " · failed" }
                )
            }),
            console: list("console", &|m| {
                let source = m["source"]
                    .as_str()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default();
                format!("{}: {}{source}", text(&m["level"]), text(&m["text"]))
            }),
            requests: list("requests", &|r| {
                let outcome = r["status"]
                    .as_i64()
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| text(&r["error"]));
                format!("{} {} → {outcome}", text(&r["method"]), text(&r["url"]))
            }),
        });
    }
    views.sort_by(|a, b| (a.passed, &a.name, &a.viewport).cmp(&(b.passed, &b.name, &b.viewport)));
    views
}

/// `GET /validations/{id}/artifacts/{name}`: a screenshot or evidence file.
pub async fn artifact(
    State(state): State<AppState>,
    _signed: Signed,
    Path((id, name)): Path<(i64, String)>,
) -> Result<Response, PageError> {
    match crate::routes::validations::read_artifact(&state, ValidationId(id), &name).await {
        Ok(response) => Ok(response),
        Err(error) => Ok(error.into_response()),
    }
}
