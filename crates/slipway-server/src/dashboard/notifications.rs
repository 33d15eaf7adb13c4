//! The settings dialog's Notifications tab: each target with its health (failing since when,
//! its last error, disabled), a form per target to save its events and switch, send a test or
//! delete it, and a form to add one. A webhook's signing secret is shown once, on the page
//! that answers its creation. The same checks as the API (`routes::notifications`).

use super::pages::{layout, project_page, require, ListQuery, PageResult};
use super::session::Signed;
use crate::routes::notifications::{create_target, events_of, health_name, kind_of, send_test};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Form;
use serde::Deserialize;
use slipway_core::notify::{NotifyEvent, TargetHealth};
use slipway_core::{ProjectId, Role};
use slipway_store::{Target, TargetPatch};
use std::collections::HashMap;

/// The tab the settings dialog opens at after a notifications action.
pub const TAB: &str = "tab-notifications";

/// One target as the tab shows it.
pub struct Row {
    pub id: i64,
    pub kind: &'static str,
    pub url: String,
    /// (contract name, label, subscribed)
    pub events: Vec<(&'static str, &'static str, bool)>,
    pub enabled: bool,
    /// `new`, `healthy`, `failing`, `disabled`.
    pub health: &'static str,
    /// The health in words, with since when.
    pub health_text: String,
    pub last_error: Option<String>,
}

/// What each event is called on the page.
pub fn label(event: NotifyEvent) -> &'static str {
    match event {
        NotifyEvent::ValidationFinished => "Validation finished (with the failing step)",
        NotifyEvent::PullRequestMerged => "Pull request merged",
        NotifyEvent::RunNeedsInput => "A run needs you (a plan to confirm, a reply to continue)",
        NotifyEvent::FixGaveUp => "The fix loop gave up",
    }
}

/// Every event with its label, all chosen: the add form's boxes.
pub fn all_events() -> Vec<(&'static str, &'static str, bool)> {
    NotifyEvent::ALL
        .into_iter()
        .map(|e| (e.as_str(), label(e), true))
        .collect()
}

fn when(at: Option<time::OffsetDateTime>) -> String {
    at.map(|t| format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute()))
        .unwrap_or_default()
}

fn row(target: Target) -> Row {
    let health_text = match target.health {
        TargetHealth::New => "Nothing sent yet".to_owned(),
        TargetHealth::Healthy => {
            format!("Healthy: last delivered {}", when(target.last_success_at))
        }
        TargetHealth::Failing => format!("Failing since {}", when(target.failing_since)),
        TargetHealth::Disabled => match target.disabled_at {
            Some(at) => format!("Disabled {} (switch it on to try again)", when(Some(at))),
            None => "Disabled".to_owned(),
        },
    };
    Row {
        id: target.id,
        kind: match target.kind {
            slipway_core::notify::TargetKind::Slack => "Slack",
            slipway_core::notify::TargetKind::Webhook => "Webhook",
        },
        url: target.url_shown,
        events: NotifyEvent::ALL
            .into_iter()
            .map(|e| (e.as_str(), label(e), target.events.contains(&e)))
            .collect(),
        enabled: target.enabled,
        health: health_name(target.health),
        health_text,
        // Errors stored before they were scrubbed at the send are scrubbed here too.
        last_error: target
            .last_error
            .map(|e| slipway_core::notify::scrub_url(&e, &target.url)),
    }
}

/// The project's targets as the tab shows them.
pub async fn rows(state: &AppState, id: ProjectId) -> Result<Vec<Row>, slipway_store::StoreError> {
    Ok(state
        .store
        .notification_targets(id)
        .await?
        .into_iter()
        .map(row)
        .collect())
}

#[derive(Deserialize)]
pub struct AddForm {
    csrf: String,
    kind: String,
    url: String,
    /// `event:NAME` boxes.
    #[serde(flatten)]
    boxes: HashMap<String, String>,
}

#[derive(Deserialize)]
pub struct TargetForm {
    csrf: String,
    /// `save`, `test` or `delete`.
    action: String,
    #[serde(default)]
    url: String,
    enabled: Option<String>,
    #[serde(flatten)]
    boxes: HashMap<String, String>,
}

fn chosen(boxes: &HashMap<String, String>) -> Vec<String> {
    NotifyEvent::ALL
        .into_iter()
        .map(NotifyEvent::as_str)
        .filter(|name| boxes.contains_key(&format!("event:{name}")))
        .map(str::to_owned)
        .collect()
}

/// The project page with the settings dialog open at this tab, saying `outcome`.
async fn answer(
    state: &AppState,
    signed: &Signed,
    id: i64,
    outcome: Result<String, String>,
) -> PageResult {
    let (notice, error) = match outcome {
        Ok(notice) => (Some(notice), None),
        Err(error) => (None, Some(error)),
    };
    let mut layout = layout(state, signed, id, error).await?;
    layout.notice = notice;
    layout.open_tab = Some(TAB);
    project_page(
        state,
        layout,
        ProjectId(id),
        None,
        None,
        &ListQuery::default(),
    )
    .await
}

/// `POST /projects/{id}/notifications`: adds a target (admin).
pub async fn add(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<i64>,
    Form(form): Form<AddForm>,
) -> PageResult {
    signed.check(&form.csrf)?;
    require(&signed, Role::Admin)?;
    let project = ProjectId(id);
    let created = async {
        let kind = kind_of(&form.kind)?;
        let events = events_of(&chosen(&form.boxes))?;
        create_target(&state, project, kind, &form.url, events).await
    }
    .await;
    let outcome = match created {
        Ok(view) => Ok(match view.secret {
            Some(secret) => format!(
                "Webhook target added. Its signing secret, shown only this once (verify \
                 deliveries with it per Standard Webhooks): {secret}"
            ),
            None => "Slack target added.".to_owned(),
        }),
        Err(error) => Err(error.message),
    };
    answer(&state, &signed, id, outcome).await
}

/// `POST /projects/{id}/notifications/{tid}`: saves, tests or deletes one target.
pub async fn change(
    State(state): State<AppState>,
    signed: Signed,
    Path((id, tid)): Path<(i64, i64)>,
    Form(form): Form<TargetForm>,
) -> PageResult {
    signed.check(&form.csrf)?;
    let project = ProjectId(id);
    let outcome = match form.action.as_str() {
        "test" => {
            require(&signed, Role::Operator)?;
            match send_test(&state, project, tid).await {
                Ok(tested) if tested.delivered => Ok("Test notification delivered.".to_owned()),
                Ok(tested) => Err(format!(
                    "The test notification was not delivered: {}",
                    tested.error.unwrap_or_default()
                )),
                Err(error) => Err(error.message),
            }
        }
        "delete" => {
            require(&signed, Role::Admin)?;
            match state.store.delete_notification_target(project, tid).await {
                Ok(()) => Ok("Notification target deleted.".to_owned()),
                Err(error) => Err(crate::ApiError::from(error).message),
            }
        }
        _ => {
            require(&signed, Role::Admin)?;
            let saved = async {
                let url = form.url.trim();
                let patch = TargetPatch {
                    url: match url.is_empty() {
                        true => None,
                        false => {
                            Some(crate::routes::notifications::checked_url(&state, url).await?)
                        }
                    },
                    events: Some(events_of(&chosen(&form.boxes))?),
                    enabled: Some(form.enabled.is_some()),
                };
                Ok::<_, crate::ApiError>(
                    state
                        .store
                        .update_notification_target(project, tid, &patch)
                        .await?,
                )
            }
            .await;
            saved
                .map(|_| "Notification target saved.".to_owned())
                .map_err(|error| error.message)
        }
    };
    answer(&state, &signed, id, outcome).await
}
