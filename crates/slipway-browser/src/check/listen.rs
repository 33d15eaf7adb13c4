//! What a check's tab is listened to for: requests outside the service and the allowed hosts
//! are blocked and listed; failed answers and requests, console errors and uncaught
//! exceptions are gathered, bounded (the page is the code's, and may say gigabytes).

use super::{host_of, ConsoleMessage, RequestProblem, Target};
use chromiumoxide::cdp::browser_protocol::fetch::{
    self, ContinueRequestParams, EventRequestPaused, FailRequestParams, RequestPattern,
};
use chromiumoxide::cdp::browser_protocol::network::{
    ErrorReason, EventLoadingFailed, EventRequestWillBeSent, EventResponseReceived, ResourceType,
};
use chromiumoxide::cdp::js_protocol::runtime::{
    ConsoleApiCalledType, EventConsoleApiCalled, EventExceptionThrown,
};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the page's listeners gather while the check runs.
#[derive(Default)]
pub(super) struct Seen {
    pub console: Vec<ConsoleMessage>,
    pub requests: Vec<RequestProblem>,
    methods: HashMap<String, (String, String)>,
    pub status: Option<i64>,
}

/// The most console messages and failed requests a check keeps, and the longest text of
/// each: the page is the code's, and may say gigabytes.
const MAX_ENTRIES: usize = 200;
const MAX_ENTRY_TEXT: usize = 4096;

/// `text` cut at a character boundary to at most [`MAX_ENTRY_TEXT`] bytes, marked.
fn capped(mut text: String) -> String {
    if text.len() > MAX_ENTRY_TEXT {
        let mut end = MAX_ENTRY_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(" … [cut]");
    }
    text
}

impl Seen {
    fn note_console(&mut self, message: ConsoleMessage) {
        if self.console.len() < MAX_ENTRIES {
            self.console.push(ConsoleMessage {
                text: capped(message.text),
                source: message.source.map(capped),
                ..message
            });
        }
    }

    fn note_request(&mut self, problem: RequestProblem) {
        if self.requests.len() < MAX_ENTRIES {
            self.requests.push(RequestProblem {
                url: capped(problem.url),
                error: problem.error.map(capped),
                ..problem
            });
        }
    }
}

/// Listens to the tab: requests outside the service and the allowed hosts are blocked, and
/// what a person would look at (failed answers and requests, console errors, uncaught
/// exceptions) is gathered into `seen`.
pub(super) async fn listen(
    page: &chromiumoxide::Page,
    target: &Target<'_>,
    seen: &Arc<Mutex<Seen>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    // (The tab's Network and Runtime domains are on from its creation.)
    let pattern = RequestPattern {
        url_pattern: Some("*".into()),
        ..Default::default()
    };
    let _ = page
        .execute(fetch::EnableParams {
            patterns: Some(vec![pattern]),
            handle_auth_requests: None,
        })
        .await;
    vec![
        block_outside(page, target, seen).await,
        gather(page, seen, |e: &EventRequestWillBeSent, seen| {
            let entry = (e.request.method.clone(), e.request.url.clone());
            seen.methods.insert(e.request_id.inner().clone(), entry);
        })
        .await,
        gather(page, seen, answered).await,
        gather(page, seen, loading_failed).await,
        gather(page, seen, console_called).await,
        gather(page, seen, |e: &EventExceptionThrown, seen| {
            let details = &e.exception_details;
            let text = details
                .exception
                .as_ref()
                .and_then(|e| e.description.clone())
                .unwrap_or_else(|| details.text.clone());
            let source = details
                .url
                .as_ref()
                .map(|url| format!("{url}:{}", details.line_number + 1));
            seen.note_console(ConsoleMessage {
                level: "error".into(),
                text,
                source,
            });
        })
        .await,
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Notes every event of kind `E` of the tab into `seen`, until aborted.
async fn gather<E>(
    page: &chromiumoxide::Page,
    seen: &Arc<Mutex<Seen>>,
    note: fn(&E, &mut Seen),
) -> Option<tokio::task::JoinHandle<()>>
where
    E: chromiumoxide::cdp::IntoEventKind + Unpin + Send + Sync + 'static,
{
    let mut events = page.event_listener::<E>().await.ok()?;
    let seen = seen.clone();
    Some(tokio::spawn(async move {
        while let Some(event) = events.next().await {
            note(&event, &mut seen.lock().expect("seen lock"));
        }
    }))
}

/// Lets through what goes to the service (or an allowed host), blocks the rest and lists it.
async fn block_outside(
    page: &chromiumoxide::Page,
    target: &Target<'_>,
    seen: &Arc<Mutex<Seen>>,
) -> Option<tokio::task::JoinHandle<()>> {
    let mut paused = page.event_listener::<EventRequestPaused>().await.ok()?;
    let service_host = host_of(target.base_url);
    let allowed: Vec<String> = target.allow_hosts.to_vec();
    let (page, seen) = (page.clone(), seen.clone());
    Some(tokio::spawn(async move {
        while let Some(event) = paused.next().await {
            let host = host_of(&event.request.url);
            let ok = event.request.url.starts_with("data:")
                || host == service_host
                || allowed
                    .iter()
                    .any(|a| host == *a || host.ends_with(&format!(".{a}")));
            if ok {
                let _ = page
                    .execute(ContinueRequestParams::new(event.request_id.clone()))
                    .await;
                continue;
            }
            seen.lock()
                .expect("seen lock")
                .requests
                .push(RequestProblem {
                    method: event.request.method.clone(),
                    url: event.request.url.clone(),
                    status: None,
                    error: Some(
                        "blocked: not the service nor an allowed host (ui.allow_hosts)".into(),
                    ),
                });
            let fail =
                FailRequestParams::new(event.request_id.clone(), ErrorReason::BlockedByClient);
            let _ = page.execute(fail).await;
        }
    }))
}

/// The document's status, and answers of 400 and above.
fn answered(event: &EventResponseReceived, seen: &mut Seen) {
    let status = event.response.status;
    if event.r#type == ResourceType::Document && seen.status.is_none() {
        seen.status = Some(status);
    }
    // The browser asks for /favicon.ico by itself; a site without one is fine.
    let favicon = event.response.url.ends_with("/favicon.ico");
    if status >= 400 && !favicon {
        let method = seen
            .methods
            .get(event.request_id.inner())
            .map_or("GET".to_owned(), |m| m.0.clone());
        seen.note_request(RequestProblem {
            method,
            url: event.response.url.clone(),
            status: Some(status),
            error: None,
        });
    }
}

/// Requests that failed (blocked ones are listed when blocked).
fn loading_failed(event: &EventLoadingFailed, seen: &mut Seen) {
    if event.error_text.contains("ERR_BLOCKED_BY_CLIENT") {
        return;
    }
    let (method, url) = seen
        .methods
        .get(event.request_id.inner())
        .cloned()
        .unwrap_or_default();
    seen.note_request(RequestProblem {
        method,
        url,
        status: None,
        error: Some(event.error_text.clone()),
    });
}

/// Console errors and warnings, with where they were written.
fn console_called(event: &EventConsoleApiCalled, seen: &mut Seen) {
    let level = match event.r#type {
        ConsoleApiCalledType::Error | ConsoleApiCalledType::Assert => "error",
        ConsoleApiCalledType::Warning => "warning",
        _ => return,
    };
    let text = event
        .args
        .iter()
        .map(|a| match (&a.value, &a.description) {
            (Some(serde_json::Value::String(s)), _) => s.clone(),
            (Some(v), _) => v.to_string(),
            (None, Some(d)) => d.clone(),
            _ => String::new(),
        })
        .collect::<Vec<_>>()
        .join(" ");
    let source = event
        .stack_trace
        .as_ref()
        .and_then(|t| t.call_frames.first())
        .map(|f| format!("{}:{}", f.url, f.line_number + 1));
    seen.note_console(ConsoleMessage {
        level: level.into(),
        text,
        source,
    });
}
