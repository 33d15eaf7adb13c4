//! The dashboard's CSS and JavaScript, embedded in the binary and served with long-lived
//! cache headers (pages link them with a content hash, so a new build is fetched anew).

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

const APP_JS: &str = include_str!("../../assets/app.js");
const APP_CSS: &str = include_str!("../../assets/app.css");
const FAVICON: &str = include_str!("../../assets/favicon.svg");

/// A hash of every asset.
pub static VERSION: LazyLock<String> = LazyLock::new(|| {
    let digest = Sha256::new()
        .chain_update(APP_JS)
        .chain_update(APP_CSS)
        .chain_update(FAVICON)
        .finalize();
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
});

pub async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "favicon.svg" => (FAVICON, "image/svg+xml"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (CONTENT_TYPE, kind),
            (CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}

/// `/favicon.ico`, which browsers ask for by themselves: the same picture (SVG, which they
/// accept under any name).
pub async fn favicon() -> Response {
    serve(Path("favicon.svg".to_owned())).await
}
