//! `GET /ws` (DESIGN.md §5): subscribe to a project's events, replay what a reconnecting
//! client missed (`after`), then follow live; ping/pong. Authenticated by a bearer token or
//! the dashboard's session cookie (then the `Origin` must be this server).

use crate::auth::{Caller, SessionCaller};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::header::{HOST, ORIGIN};
use axum::http::request::Parts;
use axum::response::Response;
use serde::Deserialize;
use slipway_core::{ProjectId, Role};
use slipway_store::LiveEvent;
use std::collections::HashMap;
use tokio::sync::broadcast::error::RecvError;

const REPLAY_PAGE: u32 = 1_000;
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    SubscribeProject { project_id: i64, after: Option<i64> },
    UnsubscribeProject { project_id: i64 },
    Ping { timestamp: Option<String> },
}

/// Who may open the stream: a bearer token, or a session from this very origin.
pub struct WsCaller(Caller, Credential);

/// What a stream was opened with, checked again whenever a credential is revoked.
enum Credential {
    Token([u8; 32]),
    Session(String),
}

impl Credential {
    async fn still_valid(&self, state: &AppState) -> bool {
        let token_hash = match self {
            Credential::Token(hash) => *hash,
            Credential::Session(id) => match state.store.session(id).await {
                Ok(Some(session)) => session.token_hash,
                _ => return false,
            },
        };
        crate::auth::caller_for(state, &token_hash).await.is_ok()
    }
}

impl FromRequestParts<AppState> for WsCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        {
            let hash = crate::auth::bearer_hash(&parts.headers)?;
            let caller = crate::auth::caller_for(state, &hash).await?;
            return Ok(WsCaller(caller, Credential::Token(hash)));
        }
        let Some(session) = SessionCaller::from_parts(parts, state).await? else {
            return Err(ApiError::unauthorized(
                "sign in to the dashboard, or send 'Authorization: Bearer <token>'",
            ));
        };
        // A browser sends cookies with cross-site WebSocket handshakes too: only our origin.
        let host = parts.headers.get(HOST).and_then(|v| v.to_str().ok());
        let origin = parts.headers.get(ORIGIN).and_then(|v| v.to_str().ok());
        let same_origin = match (origin, host) {
            (Some(origin), Some(host)) => origin
                .split_once("://")
                .is_some_and(|(_, rest)| rest == host),
            _ => false,
        };
        if !same_origin {
            return Err(ApiError::forbidden(
                "a session may open the event stream only from the dashboard's own origin",
            ));
        }
        Ok(WsCaller(
            session.caller,
            Credential::Session(session.session_id),
        ))
    }
}

pub async fn ws(
    WsCaller(caller, credential): WsCaller,
    State(state): State<AppState>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| stream(socket, state, credential)))
}

/// One connection: its subscriptions and the last event sent of each project.
async fn stream(mut socket: WebSocket, state: AppState, credential: Credential) {
    let mut live = state.store.subscribe_events();
    let mut auth = state.auth_epoch.subscribe();
    let mut subscribed: HashMap<ProjectId, i64> = HashMap::new();
    let mut last_sent = 0i64;
    loop {
        tokio::select! {
            Ok(()) = auth.changed() => {
                if !credential.still_valid(&state).await {
                    let close = axum::extract::ws::CloseFrame {
                        code: 4401,
                        reason: "the token or session was revoked; sign in again".into(),
                    };
                    let _ = socket.send(Message::Close(Some(close))).await;
                    return;
                }
            }
            incoming = socket.recv() => {
                let Some(Ok(message)) = incoming else { return };
                let text = match message {
                    Message::Text(text) => text,
                    Message::Close(_) => return,
                    _ => continue,
                };
                let reply = match serde_json::from_str::<ClientMessage>(&text) {
                    Ok(ClientMessage::Ping { timestamp }) => Some(serde_json::json!({
                        "type": "pong", "event_id": last_sent, "timestamp": timestamp,
                    })),
                    Ok(ClientMessage::SubscribeProject { project_id, after }) => {
                        let project = ProjectId(project_id);
                        if state.store.project(project).await.is_err() {
                            Some(error_message(&format!("project {project_id} does not exist")))
                        } else {
                            let start = match after {
                                Some(after) => after.max(0),
                                None => state.store.last_event_id().await.unwrap_or(0),
                            };
                            subscribed.insert(project, start);
                            if replay(&mut socket, &state, project, &mut subscribed, &mut last_sent).await.is_err() {
                                return;
                            }
                            None
                        }
                    }
                    Ok(ClientMessage::UnsubscribeProject { project_id }) => {
                        subscribed.remove(&ProjectId(project_id));
                        None
                    }
                    Err(error) => Some(error_message(&format!(
                        "unreadable message ({error}); send {{\"type\":\"subscribe_project\",\"project_id\":ID,\"after\":EVENT_ID}} or {{\"type\":\"ping\"}}"
                    ))),
                };
                if let Some(reply) = reply {
                    if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                        return;
                    }
                }
            }
            event = live.recv() => match event {
                Ok(event) => {
                    if send_if_new(&mut socket, &event, &mut subscribed, &mut last_sent).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // Fell behind the live buffer: catch up from the table.
                    let projects: Vec<ProjectId> = subscribed.keys().copied().collect();
                    for project in projects {
                        if replay(&mut socket, &state, project, &mut subscribed, &mut last_sent).await.is_err() {
                            return;
                        }
                    }
                }
                Err(RecvError::Closed) => return,
            },
        }
    }
}

async fn send_if_new(
    socket: &mut WebSocket,
    live: &LiveEvent,
    subscribed: &mut HashMap<ProjectId, i64>,
    last_sent: &mut i64,
) -> Result<(), axum::Error> {
    let event = &live.event;
    match subscribed.get_mut(&event.project_id) {
        Some(last) if event.id > *last => {
            *last = event.id;
            *last_sent = (*last_sent).max(event.id);
            socket.send(Message::Text(live.text.as_str().into())).await
        }
        _ => Ok(()),
    }
}

/// Sends a project's stored events after the last one sent, in order.
async fn replay(
    socket: &mut WebSocket,
    state: &AppState,
    project: ProjectId,
    subscribed: &mut HashMap<ProjectId, i64>,
    last_sent: &mut i64,
) -> Result<(), axum::Error> {
    loop {
        let after = subscribed.get(&project).copied().unwrap_or(0);
        let page = match state.store.events_after(project, after, REPLAY_PAGE).await {
            Ok(page) => page,
            Err(error) => {
                tracing::error!(%error, "events could not be replayed");
                return socket
                    .send(Message::Text(
                        error_message("events could not be replayed; reconnect")
                            .to_string()
                            .into(),
                    ))
                    .await;
            }
        };
        let full = page.len() as u32 == REPLAY_PAGE;
        for event in page {
            send_if_new(socket, &LiveEvent::from(event), subscribed, last_sent).await?;
        }
        if !full {
            return Ok(());
        }
    }
}

fn error_message(message: &str) -> serde_json::Value {
    serde_json::json!({"type": "error", "message": message})
}
