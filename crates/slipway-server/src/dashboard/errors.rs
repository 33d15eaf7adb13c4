//! Error pages: every refusal or missing page under the dashboard is a page of the dashboard
//! (its header, who is signed in, a way back), never plain text or raw JSON. API paths keep
//! their JSON errors.

use super::pages::layout;
use super::session::Signed;
use super::{page_error, render, Layout};
use crate::auth::SessionCaller;
use crate::state::AppState;
use askama::Template;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

/// Set on a plain error page (one rendered without the session at hand) so that the
/// dashboard's layer can show it in the dashboard's frame.
#[derive(Clone)]
pub struct ShownError(pub String);

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    heading: String,
    message: String,
    back_href: String,
    back_text: &'static str,
}

/// Paths whose callers are programs: their errors stay JSON.
pub fn is_api_path(path: &str) -> bool {
    ["/api", "/ws", "/webhooks", "/health", "/ready", "/metrics"]
        .iter()
        .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")))
}

/// A path nothing answers: a page of the dashboard saying so.
pub async fn not_found(state: &AppState, headers: &HeaderMap, path: &str) -> Response {
    let message = format!("There is no page at {path}.");
    framed(state, headers, StatusCode::NOT_FOUND, message, path).await
}

/// The dashboard's routes' errors in the dashboard's frame: a refusal of ours
/// ([`ShownError`]) or the router's own plain-text one (`/projects/abc`: "Invalid URL").
pub async fn in_frame(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let headers = request.headers().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    if let Some(ShownError(message)) = response.extensions().get::<ShownError>().cloned() {
        return framed(&state, &headers, status, message, &path).await;
    }
    let plain = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|t| t.to_str().ok())
        .is_some_and(|t| t.starts_with("text/plain"));
    if !plain {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).into_owned();
    // A path parameter that does not parse (`/projects/abc`) names no page.
    if text.starts_with("Invalid URL") {
        return not_found(&state, &headers, &path).await;
    }
    framed(&state, &headers, status, text, &path).await
}

async fn framed(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    message: String,
    path: &str,
) -> Response {
    let mut request = Request::builder().body(()).expect("an empty request");
    *request.headers_mut() = headers.clone();
    let (parts, ()) = request.into_parts();
    let session = SessionCaller::from_parts(&parts, state)
        .await
        .ok()
        .flatten();
    let Some(session) = session else {
        return page_error(status, &message);
    };
    let signed = Signed(session);
    let Ok(layout) = layout(state, &signed, 0, None).await else {
        return page_error(status, &message);
    };
    let (back_href, back_text) = back(path);
    let page = ErrorPage {
        layout,
        heading: status.canonical_reason().unwrap_or("Error").to_owned(),
        message,
        back_href,
        back_text,
    };
    let mut response = render(&page);
    *response.status_mut() = status;
    response
}

/// The nearest page above `path` that exists for sure: a project's page from its pages, or
/// the projects.
fn back(path: &str) -> (String, &'static str) {
    let mut parts = path.trim_start_matches('/').split('/');
    match (parts.next(), parts.next().map(str::parse::<i64>)) {
        (Some("projects"), Some(Ok(id))) if parts.next().is_some() => {
            (format!("/projects/{id}"), "Back to the project")
        }
        _ => ("/".to_owned(), "Back to the projects"),
    }
}

#[cfg(test)]
mod tests {
    use super::{back, is_api_path};

    #[test]
    fn api_paths_keep_json_and_pages_go_back_to_what_exists() {
        assert!(is_api_path("/api/v1/nothing") && is_api_path("/ws") && is_api_path("/api"));
        assert!(!is_api_path("/apis") && !is_api_path("/projects/abc"));
        assert_eq!(back("/projects/3/pulls/9").0, "/projects/3");
        assert_eq!(back("/projects/abc").0, "/");
        assert_eq!(back("/nowhere").0, "/");
    }
}
