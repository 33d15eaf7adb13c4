//! One JSON POST to a model API, retried on 408/429/5xx, timeouts and broken connections
//! (waiting as `Retry-After` asks, else with backoff); a 4xx is a final error that says what
//! the server said. The API key travels in a header and never in a message.

use crate::ModelError;
use std::time::Duration;

const MAX_TRIES: u32 = 4;
const MAX_WAIT: Duration = Duration::from_secs(60);

/// A try that may be worth repeating.
enum Try {
    Answer(serde_json::Value),
    Again {
        message: String,
        retry_after: Option<Duration>,
    },
    Final(ModelError),
}

/// Posts `body` until it is answered; the answer's JSON and the calls it took.
pub(crate) async fn post_json(
    http: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
    body: &serde_json::Value,
    retry_base: Duration,
) -> Result<(serde_json::Value, u32), ModelError> {
    let mut tries = 0;
    loop {
        tries += 1;
        match post_once(http, url, headers, body).await {
            Try::Answer(value) => return Ok((value, tries)),
            Try::Final(error) => return Err(error),
            Try::Again {
                message,
                retry_after,
            } => {
                if tries >= MAX_TRIES {
                    return Err(ModelError::Unavailable { tries, message });
                }
                let wait = retry_after
                    .unwrap_or_else(|| slipway_core::backoff::backoff(retry_base, tries, random()))
                    .min(MAX_WAIT);
                tracing::warn!(%message, ?wait, tries, "model unanswered; trying again");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

async fn post_once(
    http: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
    body: &serde_json::Value,
) -> Try {
    let mut request = http.post(url).json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let again = |message: String| Try::Again {
        message,
        retry_after: None,
    };
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) if e.is_timeout() => return again("no answer within the timeout".into()),
        Err(e) => return again(format!("no answer: {}", without_url(&e))),
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = match response.text().await {
        Ok(text) => text,
        Err(e) if e.is_timeout() => return again("the answer did not finish in time".into()),
        Err(e) => return again(format!("the answer broke off: {}", without_url(&e))),
    };
    if status.is_success() {
        return match serde_json::from_str(&text) {
            Ok(value) => Try::Answer(value),
            Err(e) => Try::Final(ModelError::Unreadable(format!(
                "not JSON ({e}): {}",
                snippet(&text)
            ))),
        };
    }
    let message = format!("{status}: {}", error_message(&text));
    if matches!(status.as_u16(), 408 | 429) || status.is_server_error() {
        return Try::Again {
            message,
            retry_after,
        };
    }
    let hint = match status.as_u16() {
        400 => {
            "; the request was not accepted (check the model name and its support for a \
                response schema)"
        }
        401 | 403 => "; check the API key (GEMINI_API_KEY or SLIPWAY_LLM_API_KEY)",
        404 => "; check the model name and the API URL",
        _ => "",
    };
    Try::Final(ModelError::Refused {
        status: status.as_u16(),
        message: format!("{}{hint}", error_message(&text)),
    })
}

/// Both APIs answer errors as `{"error": {"message": …}}`.
fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| snippet(body))
}

/// reqwest's errors name the URL; Gemini's may carry a key in a query, so none is shown.
fn without_url(error: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    let mut last = None;
    while let Some(cause) = source {
        last = Some(cause.to_string());
        source = cause.source();
    }
    last.unwrap_or_else(|| "connection failed".into())
}

pub(crate) fn snippet(text: &str) -> String {
    text.chars().take(200).collect()
}

fn random() -> f64 {
    let mut bytes = [0u8; 4];
    getrandom::getrandom(&mut bytes).expect("the OS random source is available");
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX)
}
