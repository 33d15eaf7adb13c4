//! Server errors as GitHub gives them on a bad day: a 500 with GitHub's JSON, or a gateway's
//! 502/504 page (HTML, no JSON), before the work was done, or after it (the answer lost).

use super::{FakeGitHub, World};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Where a server error is injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failing {
    /// `PUT …/pulls/{n}/merge`, answered before anything is merged.
    Merge,
    /// `PUT …/pulls/{n}/merge`: merged, but the answer is a server error (a gateway timed
    /// out while GitHub finished the work).
    MergeAnswerLost,
    /// `POST …/statuses/{sha}`, nothing recorded.
    Status,
    /// `POST …/issues/{n}/comments`, nothing created.
    Comment,
}

impl FakeGitHub {
    /// The next calls of kind `on` are answered with a server error, one call per status
    /// given (500, 502, 503, 504), in order; the calls after them are answered as usual.
    pub fn server_error_next(&self, on: Failing, statuses: &[u16]) {
        let mut world = self.world.lock().unwrap();
        world
            .server_errors
            .extend(statuses.iter().map(|status| (on, *status)));
    }
}

/// The server error due for a call of kind `on`, if one is (taken from the queue).
pub(super) fn take(world: &mut World, on: Failing) -> Option<u16> {
    let at = world.server_errors.iter().position(|(f, _)| *f == on)?;
    Some(world.server_errors.remove(at).1)
}

/// GitHub's answer with `status`: its JSON for a 500 or 503, a proxy's HTML page otherwise.
pub(super) fn answer(status: u16) -> Response {
    let code = StatusCode::from_u16(status).expect("a status");
    match status {
        500 | 503 => (code, Json(json!({"message": "Server Error"}))).into_response(),
        _ => (
            code,
            [("content-type", "text/html")],
            "<html><body><h1>Unicorn!</h1>This page is taking too long to load.</body></html>",
        )
            .into_response(),
    }
}
