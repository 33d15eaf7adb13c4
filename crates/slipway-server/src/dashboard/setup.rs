//! Setting a project up from the dashboard: the repositories GitHub lets Slipway reach (for
//! the new-project dialog, searched as the user types), and the project's webhook (its state
//! on the project page, and the operator's "repair").

use super::pages::require;
use super::session::Signed;
use super::{back_with_error, PageError};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::json;
use slipway_core::{Project, ProjectId, Role};
use slipway_engine::hooks::HookState;
use std::time::Duration;

/// The project page waits at most this long for GitHub's view of the webhook.
const HOOK_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Repositories sent to the dialog at most per search.
const MAX_LISTED: usize = 100;

/// The webhook as the project page shows it.
pub struct WebhookView {
    /// `ok`, `warn` or `off` (a CSS class).
    pub tone: &'static str,
    pub headline: String,
    pub detail: String,
    pub last_delivery: Option<String>,
    /// Whether the "repair" button is offered.
    pub repairable: bool,
}

fn view(state: HookState) -> WebhookView {
    let repairable = state.repairable();
    let plain = |tone, headline: &str, detail: String| WebhookView {
        tone,
        headline: headline.to_owned(),
        detail,
        last_delivery: None,
        repairable,
    };
    match state {
        HookState::NotGitHub => plain("off", "No webhook", "A local repository: Slipway polls it.".into()),
        HookState::App => plain("ok", "Webhook: the GitHub App's", "Slipway runs as a GitHub App: the App's own webhook brings every delivery, nothing to set up here.".into()),
        HookState::NoCredentials => plain("warn", "Webhook: not set up", "Set GITHUB_TOKEN (or a GitHub App) so that Slipway can reach GitHub and set the webhook up.".into()),
        HookState::NoPublicUrl => plain("warn", "Webhook: not set up", "Set SLIPWAY_PUBLIC_URL to the address GitHub can reach Slipway at; then repair.".into()),
        HookState::NotPermitted { message, .. } => plain("warn", "Webhook: not permitted", message),
        HookState::Unreachable { message } => plain("warn", "Webhook: unknown", format!("GitHub could not be asked: {message}")),
        HookState::Missing { url } => plain("warn", "Webhook: missing", format!("The repository has no webhook to {url}; repair creates it.")),
        HookState::Installed { url, active, events_missing, last_status, last_code, last_message, last_delivery, .. } => {
            let mut detail = format!("Delivers to {url}");
            if !active {
                detail.push_str("; it is switched off on GitHub");
            }
            if !events_missing.is_empty() {
                detail.push_str(&format!("; it does not send {}", events_missing.join(", ")));
            }
            let last = match (last_status.as_deref(), last_code) {
                (Some("unused") | None, _) => "no delivery yet".to_owned(),
                (Some(status), code) => format!(
                    "last answer: {}{}{}",
                    code.map(|c| format!("{c} ")).unwrap_or_default(),
                    status,
                    last_message.map(|m| format!(" ({m})")).unwrap_or_default()
                ),
            };
            detail.push_str(&format!("; {last}."));
            let answered = matches!(last_status.as_deref(), None | Some("unused" | "active"));
            let healthy = active && events_missing.is_empty() && answered;
            WebhookView {
                tone: if healthy { "ok" } else { "warn" },
                headline: if healthy { "Webhook: active".into() } else { "Webhook: needs attention".into() },
                detail,
                last_delivery: last_delivery.map(|d| match d.status_code {
                    0 => format!("{} at {}: no answer ({})", d.event, d.delivered_at, d.status),
                    code => format!("{} at {}: {code} {}", d.event, d.delivered_at, d.status),
                }),
                repairable,
            }
        }
    }
}

/// The webhook section of a GitHub project's page (`None` for a local one).
pub(super) async fn webhook_view(state: &AppState, project: &Project) -> Option<WebhookView> {
    project.location.github()?;
    let read = state.engine.webhook_state(project);
    let hook = tokio::time::timeout(HOOK_READ_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| HookState::Unreachable {
            message: format!("no answer within {} s", HOOK_READ_TIMEOUT.as_secs()),
        });
    Some(view(hook))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// "Repair": creates the webhook again or makes Slipway's one right (operator).
pub async fn repair_webhook(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    signed.check(&form.csrf)?;
    require(&signed, Role::Operator)?;
    let project = state
        .store
        .project(ProjectId(id))
        .await
        .map_err(|e| PageError::from(crate::ApiError::from(e)))?;
    let page = format!("/projects/{id}");
    Ok(match state.engine.set_up_webhook(&project).await {
        HookState::Installed { .. } | HookState::App => Redirect::to(&page).into_response(),
        other => back_with_error(
            &page,
            &format!("The webhook was not repaired. {}", view(other).detail),
        ),
    })
}

#[derive(Deserialize)]
pub struct RepositoryQuery {
    #[serde(default)]
    q: String,
}

/// The repositories the token or the App's installations reach whose name holds `q`
/// (any case), at most `MAX_LISTED`, for the new-project dialog (admin).
pub async fn repositories(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<RepositoryQuery>,
) -> Result<Response, PageError> {
    require(&signed, Role::Admin)?;
    let all = state.engine.github_repositories().await;
    let needle = query.q.trim().to_lowercase();
    let matching: Vec<&String> = all
        .iter()
        .filter(|name| name.to_lowercase().contains(&needle))
        .collect();
    let listed: Vec<&String> = matching.iter().take(MAX_LISTED).copied().collect();
    Ok(Json(json!({
        "repositories": listed,
        "matching": matching.len(),
        "total": all.len(),
    }))
    .into_response())
}
