//! Sending one notification to one target over HTTP: a Slack message, or a JSON body signed
//! per Standard Webhooks. The URL's rules are checked again at every send, and the host is
//! resolved by a resolver that refuses forbidden addresses, so a name that changed its
//! address since the target was saved (DNS rebinding) still cannot reach one. No redirects,
//! no proxy.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use slipway_core::notify::message::Message;
use slipway_core::notify::{self, AllowList, TargetKind};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// One send's timeout (Slack asks for an answer within 3 s of its own; receivers may be slow).
const TIMEOUT: Duration = Duration::from_secs(15);
/// A `Retry-After` longer than this is waited as this (the job's bounded postponements
/// keep a receiver that always says "later" from holding it forever).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3_600);
/// Characters of a receiver's answer kept in the target's last error.
const ERROR_BODY_CHARS: usize = 200;

/// How one send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    Delivered {
        status: u16,
    },
    /// 429: try again after the receiver's `Retry-After` (not a failure of the target).
    RetryAfter {
        after: Duration,
        why: String,
    },
    /// Worth another attempt (no connection, a timeout, 5xx).
    Retryable(String),
    /// Never worth retrying this notification (refused URL, 4xx).
    Final(String),
}

impl Sent {
    /// The same, its reason with `url` masked ([`notify::scrub_url`]).
    fn scrubbed(self, url: &str) -> Self {
        let scrub = |why: String| notify::scrub_url(&why, url);
        match self {
            Self::Delivered { status } => Self::Delivered { status },
            Self::RetryAfter { after, why } => Self::RetryAfter {
                after,
                why: scrub(why),
            },
            Self::Retryable(why) => Self::Retryable(scrub(why)),
            Self::Final(why) => Self::Final(scrub(why)),
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            Self::Delivered { .. } => None,
            Self::RetryAfter { why, .. } | Self::Retryable(why) | Self::Final(why) => Some(why),
        }
    }
}

/// What one send carries.
pub(crate) struct Outgoing<'a> {
    pub kind: TargetKind,
    pub url: &'a str,
    /// The webhook's `whsec_…` secret.
    pub secret: Option<&'a str>,
    /// `webhook-id`: the same for every attempt of one notification.
    pub id: &'a str,
    /// The body's `type`.
    pub event: &'a str,
    /// The body's `timestamp` (when it happened, RFC 3339).
    pub timestamp: &'a str,
    /// Already masked.
    pub message: &'a Message,
}

/// The HTTP client for notifications.
#[derive(Clone)]
pub(crate) struct Sender {
    client: reqwest::Client,
    allow: Arc<AllowList>,
}

impl Sender {
    pub fn new(allow: AllowList) -> Self {
        let allow = Arc::new(allow);
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(Guarded {
                allow: allow.clone(),
            }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("Slipway-Notifications/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the notification client builds");
        Self { client, allow }
    }

    pub fn allow_list(&self) -> &AllowList {
        &self.allow
    }

    /// Sends one notification. Why it failed never quotes the URL beyond its shown form
    /// (a Slack URL's path is its credential, and errors are stored and shown to viewers).
    pub async fn send(&self, out: &Outgoing<'_>) -> Sent {
        self.send_unscrubbed(out).await.scrubbed(out.url)
    }

    async fn send_unscrubbed(&self, out: &Outgoing<'_>) -> Sent {
        if let Err(refused) = notify::check_url(out.url, &self.allow) {
            return Sent::Final(refused.to_string());
        }
        let body = match out.kind {
            TargetKind::Slack => out.message.slack(out.event),
            TargetKind::Webhook => out.message.body(out.event, out.timestamp),
        };
        let body = serde_json::to_vec(&body).expect("a JSON value serializes");
        let mut headers: Vec<(&str, String)> = Vec::new();
        if out.kind == TargetKind::Webhook {
            let Some(secret) = out.secret else {
                return Sent::Final("the webhook target has no signing secret".into());
            };
            let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
            match signature(secret, out.id, timestamp, &body) {
                Ok(signed) => {
                    headers.push(("webhook-id", out.id.to_owned()));
                    headers.push(("webhook-timestamp", timestamp.to_string()));
                    headers.push(("webhook-signature", signed));
                }
                Err(why) => return Sent::Final(why),
            }
        }
        let mut request = self
            .client
            .post(out.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        match request.send().await {
            Ok(response) => answered(response).await,
            Err(error) => Sent::Retryable(chain(&error.without_url())),
        }
    }
}

/// What a receiver's answer means.
async fn answered(response: reqwest::Response) -> Sent {
    let status = response.status();
    if status.is_success() {
        return Sent::Delivered {
            status: status.as_u16(),
        };
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    let text = response.text().await.unwrap_or_default();
    let said: String = text.trim().chars().take(ERROR_BODY_CHARS).collect();
    let why = if said.is_empty() {
        format!("the receiver answered {status}")
    } else {
        format!("the receiver answered {status}: {said}")
    };
    match status.as_u16() {
        429 => Sent::RetryAfter {
            after: retry_after.unwrap_or(Duration::from_secs(30)),
            why,
        },
        408 | 425 | 500..=599 => Sent::Retryable(why),
        300..=399 => Sent::Final(format!(
            "{why} (redirects are not followed; give the final URL)"
        )),
        _ => Sent::Final(why),
    }
}

/// An error with its causes, which say why (a refused address, a refused connection).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

/// `v1,<base64 HMAC-SHA256 over "id.timestamp.body">` with the base64-decoded part of a
/// `whsec_` secret (Standard Webhooks).
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("the signing secret is not whsec_ + base64 ({e})"))?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    Ok(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    ))
}

/// A new signing secret: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    getrandom::getrandom(&mut key).expect("the OS random source is available");
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// Resolves a target's host, refusing it when any address is forbidden (checked at the
/// moment of connecting, so the address used is the address checked).
struct Guarded {
    allow: Arc<AllowList>,
}

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ips: Vec<_> = addresses.iter().map(SocketAddr::ip).collect();
            notify::check_addresses(&host, &ips, &allow)
                .map_err(|refused| Box::new(refused) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Resolves `host` and checks its addresses now (when a target is saved), with the same
/// rules the send applies again.
pub(crate) async fn check_resolved(url: &str, allow: &AllowList) -> Result<(), notify::UrlRefused> {
    let checked = notify::check_url(url, allow)?;
    if checked.host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(()); // checked as written
    }
    let addresses = tokio::net::lookup_host((checked.host.as_str(), checked.port))
        .await
        .map_err(|e| notify::UrlRefused::Unresolved {
            host: checked.host.clone(),
            why: e.to_string(),
        })?;
    let ips: Vec<_> = addresses.map(|a| a.ip()).collect();
    notify::check_addresses(&checked.host, &ips, allow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_specifications_example() {
        // The example of the Standard Webhooks specification's reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let signed = signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(signed, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_new_secret_is_whsec_and_32_bytes() {
        let secret = new_secret();
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        assert_eq!(key.len(), 32);
        assert_ne!(new_secret(), secret);
    }
}
