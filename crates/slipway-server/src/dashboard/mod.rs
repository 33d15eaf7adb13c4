//! The dashboard: server-rendered pages (askama templates in `templates/`) over the same
//! store and engine as the API, a session cookie after signing in with a token, CSRF tokens
//! on every form, and `assets/` (our CSS and one JavaScript module) embedded in the binary.

mod ansi;
mod assets;
mod checks;
mod errors;
mod findings;
mod judge;
mod lists;
mod notifications;
mod pages;
mod pulls;
mod relay;
mod run;
mod session;
mod settings;
mod setup;
mod validation;

pub use errors::{in_frame, is_api_path, not_found};

use crate::state::AppState;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/projects", post(pages::create_project))
        .route("/projects/{id}", get(pages::project))
        .route("/projects/{id}/runs", post(pages::start_run))
        .route("/projects/{id}/validations", post(pages::start_validation))
        .route("/projects/{id}/settings", post(settings::save_settings))
        .route("/projects/{id}/webhook", post(setup::repair_webhook))
        .route("/projects/{id}/notifications", post(notifications::add))
        .route(
            "/projects/{id}/notifications/{tid}",
            post(notifications::change),
        )
        .route("/github/repositories", get(setup::repositories))
        .route("/projects/{id}/pulls/{number}", get(pulls::pull))
        .route("/projects/{id}/pulls/{number}/{action}", post(pulls::act))
        .route("/runs/{id}", get(run::run))
        .route("/runs/{id}/{action}", post(run::answer_run))
        .route("/validations/{id}", get(validation::validation))
        .route("/validations/{id}/lines", get(validation::earlier_lines))
        .route("/validations/{id}/artifacts/{name}", get(checks::artifact))
        .route(
            "/validations/{id}/{action}",
            post(validation::act_on_validation),
        )
        .route("/assets/{file}", get(assets::serve))
        .route("/favicon.ico", get(assets::favicon))
}

/// What every signed-in page's frame shows.
pub struct Layout {
    pub version: &'static str,
    pub csrf: String,
    /// The project the page is about (0: none), for the selector and the live stream.
    pub project_id: i64,
    /// The newest event when the page was rendered: the stream resumes after it.
    pub last_event: i64,
    pub projects: Vec<(i64, String)>,
    /// Who is signed in, and with which role ("token ci-bot", "operator").
    pub who: (String, &'static str),
    pub error: Option<String>,
    /// A confirmation ("Settings saved.").
    pub notice: Option<String>,
    /// The signed-in token's role: buttons it cannot use are not shown.
    pub role: slipway_core::Role,
    /// A dialog's tab to open the page at (after a notifications action).
    pub open_tab: Option<&'static str>,
}

impl Layout {
    /// Whether the signed-in role may start and stop work (runs, validations, merges).
    pub fn can_operate(&self) -> bool {
        self.role.allows(slipway_core::Role::Operator)
    }

    /// Whether the signed-in role may manage projects, settings, secrets and variables.
    pub fn can_admin(&self) -> bool {
        self.role.allows(slipway_core::Role::Admin)
    }
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    version: &'static str,
    error: Option<String>,
}

/// The assets' version, for cache-busting URLs.
pub fn version() -> &'static str {
    assets::VERSION.as_str()
}

pub fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => page_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &crate::ApiError::internal(error).message,
        ),
    }
}

/// An error shown as a plain page.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<crate::ApiError> for PageError {
    fn from(error: crate::ApiError) -> Self {
        Self::new(error.status, error.message)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        page_error(self.status, &self.message)
    }
}

/// A plain error page; the dashboard's layer shows it in the dashboard's frame
/// ([`errors::in_frame`]) when someone is signed in.
pub fn page_error(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Error · Slipway</title>\
         <link rel=\"icon\" href=\"/assets/favicon.svg\" type=\"image/svg+xml\">\
         <link rel=\"stylesheet\" href=\"/assets/app.css?v={}\"><main><h1>{}</h1><p role=\"alert\">{}</p>\
         <p><a href=\"/\">Back to the projects</a></p></main>",
        version(),
        status.canonical_reason().unwrap_or("Error"),
        ansi::to_html(message)
    );
    let mut response = (status, Html(body)).into_response();
    response
        .extensions_mut()
        .insert(errors::ShownError(message.to_owned()));
    response
}

/// Back to `path`, showing `message` in the page's banner.
pub fn back_with_error(path: &str, message: &str) -> Response {
    let query = serde_urlencoded::to_string([("error", message)]).unwrap_or_default();
    Redirect::to(&format!("{path}?{query}")).into_response()
}
