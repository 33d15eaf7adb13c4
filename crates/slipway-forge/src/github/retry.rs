//! When a call is tried again: which calls may be, the pause before, which errors are
//! transient, and which answers are rate limits.

use super::GitHubError;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Whether a call may be made again without changing its effect: reads, edits and deletions,
/// and commit statuses (the latest of a context wins). Creations and the merge are not.
pub(super) fn idempotent(method: &reqwest::Method, path: &str) -> bool {
    use reqwest::Method;
    match *method {
        Method::GET | Method::HEAD | Method::PATCH | Method::DELETE => true,
        Method::POST => path.contains("/statuses/"),
        _ => false,
    }
}

/// `base` doubled per earlier failure, with jitter (so that many callers do not retry at once).
pub(super) fn jittered(base: Duration, failures: u32) -> Duration {
    let mut bytes = [0u8; 2];
    getrandom::getrandom(&mut bytes).expect("the OS random source is available");
    let random = f64::from(u16::from_le_bytes(bytes)) / 65_536.0;
    slipway_core::backoff::backoff(base, failures, random)
}

/// Whether an error of a forge call is worth trying again later (GitHub could not be reached,
/// failed with a 5xx, or a rate limit still held) rather than a refusal to say.
pub fn is_transient(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| match cause.downcast_ref::<GitHubError>() {
            Some(GitHubError::Transport(_))
            | Some(GitHubError::RateLimited { .. })
            | Some(GitHubError::SecondaryRateLimited { .. }) => true,
            Some(GitHubError::Status { status, .. }) => *status >= 500,
            _ => false,
        })
}

/// A rate limit an answer says was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Limit {
    /// Wait this long (`Retry-After`, or until `X-RateLimit-Reset`), then try again.
    Primary(Duration),
    /// A secondary rate limit without `Retry-After`: GitHub asks for at least a minute.
    Secondary,
}

/// Whether a 403 or 429 is a rate limit, and which: `Retry-After` or a spent
/// `X-RateLimit-Remaining` say so, and so does a 429 without either, or a 403 whose message
/// names a secondary rate limit. Any other 403 is a refusal (a permission, a rule).
pub(super) fn rate_limit(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    message: &str,
) -> Option<Limit> {
    if status != 403 && status != 429 {
        return None;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(secs) = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Limit::Primary(Duration::from_secs(secs)));
    }
    if header("x-ratelimit-remaining") == Some("0") {
        if let Some(reset) = header("x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok()) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            return Some(Limit::Primary(Duration::from_secs(
                reset.saturating_sub(now).max(1),
            )));
        }
        return Some(Limit::Secondary);
    }
    let message = message.to_ascii_lowercase();
    if status == 429
        || message.contains("secondary rate limit")
        || message.contains("abuse detection")
    {
        return Some(Limit::Secondary);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{idempotent, is_transient, GitHubError};
    use std::time::Duration;

    #[test]
    fn secondary_rate_limits_are_told_from_refusals() {
        use super::{rate_limit, Limit};
        use reqwest::header::HeaderMap;
        let none = HeaderMap::new();
        let secondary = "You have exceeded a secondary rate limit. Please wait a few minutes.";
        assert_eq!(rate_limit(403, &none, secondary), Some(Limit::Secondary));
        assert_eq!(rate_limit(429, &none, ""), Some(Limit::Secondary));
        assert_eq!(
            rate_limit(403, &none, "Resource not accessible by integration"),
            None
        );
        assert_eq!(rate_limit(405, &none, secondary), None);
        let mut retry = HeaderMap::new();
        retry.insert("retry-after", "2".parse().unwrap());
        assert_eq!(
            rate_limit(403, &retry, ""),
            Some(Limit::Primary(std::time::Duration::from_secs(2)))
        );
    }

    #[test]
    fn server_errors_timeouts_and_outlasting_limits_are_transient_refusals_are_not() {
        let status = |status| {
            anyhow::Error::from(GitHubError::Status {
                status,
                what: "PUT /repos/a/b/pulls/1/merge".into(),
                message: String::new(),
            })
        };
        assert!(is_transient(&status(502)));
        assert!(is_transient(&status(500)));
        assert!(!is_transient(&status(403)));
        assert!(!is_transient(&status(422)));
        let limited = anyhow::Error::from(GitHubError::SecondaryRateLimited {
            what: "POST".into(),
            attempts: 3,
            waited: Duration::ZERO,
        });
        assert!(is_transient(
            &limited.context("the report could not be posted")
        ));
        assert!(!is_transient(&anyhow::anyhow!("a local git failure")));
        assert!(idempotent(&reqwest::Method::GET, "/repos/a/b/pulls/1"));
        assert!(idempotent(
            &reqwest::Method::POST,
            "/repos/a/b/statuses/abc"
        ));
        assert!(!idempotent(
            &reqwest::Method::POST,
            "/repos/a/b/issues/1/comments"
        ));
        assert!(!idempotent(
            &reqwest::Method::PUT,
            "/repos/a/b/pulls/1/merge"
        ));
    }
}
