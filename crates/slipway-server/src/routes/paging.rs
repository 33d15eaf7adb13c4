//! Pages of a list route: `limit` (default 50, at most 500) and a `cursor` from the previous
//! page, which a page hands on in `X-Next-Cursor` and a `Link: <…>; rel="next"` header.

use crate::error::ApiError;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

static NEXT_CURSOR: HeaderName = HeaderName::from_static("x-next-cursor");

/// The page size asked for, within bounds.
pub fn limit(asked: Option<u32>) -> u32 {
    asked.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

/// The item a cursor stands for: items older than it come next.
pub fn after(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    cursor
        .map(|text| {
            text.parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid",
                        format!(
                            "cursor: '{text}' is not a cursor this server gave; \
                         pass the X-Next-Cursor of the previous page, or none for the first"
                        ),
                    )
                })
        })
        .transpose()
}

/// The headers that lead to the next page when this one is full: `path` is the route,
/// `query` the other parameters as given.
pub fn next_page(path: &str, query: &[(&str, String)], limit: u32, ids: &[i64]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let (Some(last), true) = (ids.last(), ids.len() == limit as usize) else {
        return headers;
    };
    let cursor = last.to_string();
    let mut params: Vec<(&str, String)> = query.to_vec();
    params.push(("limit", limit.to_string()));
    params.push(("cursor", cursor.clone()));
    let encoded = serde_urlencoded::to_string(&params).unwrap_or_default();
    if let Ok(value) = HeaderValue::from_str(&cursor) {
        headers.insert(NEXT_CURSOR.clone(), value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("<{path}?{encoded}>; rel=\"next\"")) {
        headers.insert(axum::http::header::LINK, value);
    }
    headers
}
