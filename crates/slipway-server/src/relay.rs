//! The webhook relay's puller (`SLIPWAY_RELAY_URL`, `SLIPWAY_RELAY_TOKEN`): Slipway behind NAT
//! long-polls the relay Worker (`relay/`) outbound, stores each delivery through the same
//! intake as `POST /webhooks/github` (signature checked again, deduplicated by delivery id),
//! and only then acknowledges it (with the next pull: one round trip per batch). A lost acknowledgement means the relay serves the delivery
//! again and the dedupe absorbs it; relay errors are retried with capped, jittered backoff.

use crate::intake::{intake, IncomingDelivery, Intake};
use crate::state::AppState;
use base64::Engine as _;
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// How long one pull waits at the relay for a delivery.
const LONG_POLL_SECS: u64 = 25;
/// Deliveries asked for per pull.
const PULL_LIMIT: u32 = 100;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The most one pull's answer may hold: the relay sends at most 8 MiB of bodies, or one
/// delivery of up to GitHub's 25 MiB, base64-encoded (a third larger), plus JSON.
const MAX_ANSWER_BYTES: usize = 40 * 1024 * 1024;
/// How long deliveries whose signature Slipway refused are left at the relay before the next
/// pull (the relay answers at once while they wait, so the long poll cannot pace it).
const HELD_PAUSE: Duration = Duration::from_secs(15);

/// Where the relay is and the token it wants.
#[derive(Clone)]
pub struct RelayConfig {
    /// The Worker's base URL; `/relay/deliveries` and `/relay/ack` are under it.
    pub url: reqwest::Url,
    pub token: String,
}

impl std::fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayConfig")
            .field("url", &self.url.as_str())
            .field("token", &"<redacted>")
            .finish()
    }
}

impl RelayConfig {
    /// Reads `SLIPWAY_RELAY_URL` and `SLIPWAY_RELAY_TOKEN` through `var`: both or neither.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let (url, token) = match (set("SLIPWAY_RELAY_URL"), set("SLIPWAY_RELAY_TOKEN")) {
            (None, None) => return Ok(None),
            (Some(url), Some(token)) => (url, token),
            (Some(_), None) | (None, Some(_)) => {
                return Err(
                    "set both SLIPWAY_RELAY_URL and SLIPWAY_RELAY_TOKEN to pull webhook \
                            deliveries from the relay, or neither"
                        .into(),
                )
            }
        };
        let bad_url = |why: &str| {
            format!(
                "invalid value '{url}' for SLIPWAY_RELAY_URL: {why}; expected the relay Worker's \
                 base URL, such as https://slipway-relay.<account>.workers.dev"
            )
        };
        let mut parsed = reqwest::Url::parse(url.trim()).map_err(|e| bad_url(&e.to_string()))?;
        if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
            return Err(bad_url("not an http(s) URL with a host"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad_url("it has a query or fragment"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad_url(
                "it has a user name or password (they would be sent instead of the token, \
                 and logged); put the relay's RELAY_TOKEN in SLIPWAY_RELAY_TOKEN",
            ));
        }
        if parsed.scheme() == "http" && !is_loopback(&parsed) {
            return Err(bad_url(
                "http would send the token unencrypted; use https (http only for a relay on \
                 this machine's loopback)",
            ));
        }
        if !parsed.path().ends_with('/') {
            let path = format!("{}/", parsed.path());
            parsed.set_path(&path);
        }
        let token = token.trim().to_owned();
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(
                "invalid value for SLIPWAY_RELAY_TOKEN: it has spaces or control \
                        characters; give the relay's RELAY_TOKEN as it was set"
                    .into(),
            );
        }
        Ok(Some(Self { url: parsed, token }))
    }
}

/// `localhost` or a loopback address: the only hosts the relay may be reached over http.
fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The puller's connection to the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// Started, no answer yet.
    Connecting,
    /// The last pull was answered.
    Connected,
    /// The last pull or acknowledgement failed; retried after a backoff.
    Failing { error: String },
}

/// What the dashboard and `/ready` show of the relay.
#[derive(Debug, Clone)]
pub struct RelaySnapshot {
    pub url: String,
    pub connection: Connection,
    pub since: OffsetDateTime,
    pub last_delivery_at: Option<OffsetDateTime>,
    /// Deliveries waiting at the relay that Slipway has not taken yet, as of its last answer.
    pub backlog: Option<u64>,
    /// Deliveries stored (new), redelivered (duplicates) and refused since start.
    pub stored: u64,
    pub duplicates: u64,
    pub refused: u64,
    pub last_refusal: Option<String>,
    /// Deliveries left at the relay because their signature does not hold under Slipway's
    /// secrets (taken once the secrets agree), as of the last pull.
    pub held: u64,
}

impl RelaySnapshot {
    pub fn state_name(&self) -> &'static str {
        match self.connection {
            Connection::Connecting => "connecting",
            Connection::Connected => "connected",
            Connection::Failing { .. } => "failing",
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let at = |t: Option<OffsetDateTime>| t.map(crate::routes::rfc3339);
        serde_json::json!({
            "url": self.url,
            "state": self.state_name(),
            "since": crate::routes::rfc3339(self.since),
            "error": match &self.connection { Connection::Failing { error } => Some(error), _ => None },
            "last_delivery_at": at(self.last_delivery_at),
            "backlog": self.backlog,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "refused": self.refused,
            "last_refusal": self.last_refusal,
            "held": self.held,
        })
    }
}

/// The relay's state, shared between the puller and the pages that show it.
#[derive(Clone)]
pub struct RelayStatus(Arc<Mutex<RelaySnapshot>>);

impl RelayStatus {
    fn new(url: &reqwest::Url) -> Self {
        Self(Arc::new(Mutex::new(RelaySnapshot {
            url: url.as_str().trim_end_matches('/').to_owned(),
            connection: Connection::Connecting,
            since: OffsetDateTime::now_utc(),
            last_delivery_at: None,
            backlog: None,
            stored: 0,
            duplicates: 0,
            refused: 0,
            last_refusal: None,
            held: 0,
        })))
    }

    pub fn snapshot(&self) -> RelaySnapshot {
        self.0.lock().expect("the relay status lock").clone()
    }

    fn update(&self, change: impl FnOnce(&mut RelaySnapshot)) {
        change(&mut self.0.lock().expect("the relay status lock"));
    }

    fn connection(&self, connection: Connection) {
        self.update(|s| {
            if s.connection != connection {
                s.since = OffsetDateTime::now_utc();
                s.connection = connection;
            }
        });
    }
}

/// A status shared before the puller starts, so that `AppState` can hold it.
pub fn status_for(config: &RelayConfig) -> RelayStatus {
    RelayStatus::new(&config.url)
}

/// One delivery as the relay serves it.
#[derive(Deserialize)]
struct Pulled {
    id: String,
    event: String,
    signature: String,
    content_type: Option<String>,
    /// The raw body, base64.
    body: String,
}

#[derive(Deserialize)]
struct PullAnswer {
    deliveries: Vec<Pulled>,
    backlog: u64,
}

#[derive(Deserialize)]
struct AckAnswer {
    backlog: u64,
}

/// Why a round with the relay failed.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error("{0}")]
    Relay(String),
    #[error("Slipway could not store a delivery: {0}")]
    Intake(String),
}

/// Pulls until `shutdown` fires. A store failure leaves the delivery unacknowledged at the
/// relay (served again after the backoff). A delivery whose signature does not hold under
/// Slipway's secrets (the relay's secret and Slipway's disagree) is left at the relay, shown,
/// and taken once they agree; any other refusal (a malformed delivery) is acknowledged and
/// shown, as a direct one would be answered 4xx.
pub async fn pull(
    state: AppState,
    config: RelayConfig,
    status: RelayStatus,
    shutdown: CancellationToken,
) {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(LONG_POLL_SECS + 30))
        // The relay never redirects: one that does is not the relay.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("the relay's HTTP client builds");
    let relay = Relay {
        client,
        config,
        status,
    };
    tracing::info!(url = %relay.status.snapshot().url, "pulling webhook deliveries from the relay");
    let mut backoff = FIRST_BACKOFF;
    // Stored by Slipway, not yet acknowledged to the relay.
    let mut stored = Vec::new();
    while !shutdown.is_cancelled() {
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => break,
            outcome = relay.round(&state, &shutdown, &mut stored) => outcome,
        };
        match outcome {
            Ok(Round::Taken) => backoff = FIRST_BACKOFF,
            Ok(Round::OnlyHeld(held)) => {
                backoff = FIRST_BACKOFF;
                relay.status.connection(Connection::Failing {
                    error: format!(
                        "{held} deliveries wait at the relay: their signature does not hold \
                         under Slipway's secrets; set the relay's GITHUB_WEBHOOK_SECRET and \
                         Slipway's (or the project secret GITHUB_WEBHOOK_SECRET) to the same \
                         value, and they are taken"
                    ),
                });
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(HELD_PAUSE) => {}
                }
            }
            Err(error) => {
                let error = error.to_string();
                tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "webhook relay");
                relay.status.connection(Connection::Failing { error });
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(jittered(backoff)) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    if !stored.is_empty() {
        if let Err(error) = relay.acknowledge(&stored).await {
            tracing::info!(%error, "the last acknowledgement did not reach the relay; it serves those deliveries again");
        }
    }
}

/// What a round with the relay came to.
enum Round {
    /// Something was stored, or nothing waited.
    Taken,
    /// Only deliveries left at the relay came (this many): pause before pulling again.
    OnlyHeld(u64),
}

/// What the intake made of one relayed delivery.
enum Taken {
    /// Stored (or stored before): acknowledge it.
    Stored,
    /// Refused for good (malformed): acknowledge it, it can never be taken.
    Refused,
    /// Its signature does not hold under Slipway's secrets: leave it at the relay.
    Held,
}

struct Relay {
    client: reqwest::Client,
    config: RelayConfig,
    status: RelayStatus,
}

impl Relay {
    /// One long poll, the intake of what it brought, and its acknowledgement.
    async fn round(
        &self,
        state: &AppState,
        shutdown: &CancellationToken,
        stored: &mut Vec<String>,
    ) -> Result<Round, RoundError> {
        // What the last round stored is acknowledged by this pull; should the acknowledgement
        // be lost, the relay serves those deliveries again and the intake's dedupe absorbs them.
        let answer: PullAnswer = self
            .call(
                self.client
                    .post(self.endpoint("relay/deliveries"))
                    .query(&[
                        ("wait", LONG_POLL_SECS.to_string()),
                        ("limit", PULL_LIMIT.to_string()),
                    ])
                    .json(&serde_json::json!({ "ack": stored })),
            )
            .await?;
        stored.clear();
        if answer.deliveries.len() > PULL_LIMIT as usize {
            return Err(RoundError::Relay(format!(
                "the relay sent {} deliveries for a pull of at most {PULL_LIMIT}; is \
                 SLIPWAY_RELAY_URL the relay Worker's base URL?",
                answer.deliveries.len()
            )));
        }
        let mut held = 0;
        for delivery in &answer.deliveries {
            // Once stopping, the rest waits at the relay.
            if shutdown.is_cancelled() {
                break;
            }
            match self.take(state, delivery).await? {
                Taken::Stored | Taken::Refused => stored.push(delivery.id.clone()),
                Taken::Held => held += 1,
            }
        }
        // The relay's count includes this batch until the next pull acknowledges it.
        let waiting = answer.backlog.saturating_sub(stored.len() as u64);
        self.status.update(|s| {
            s.backlog = Some(waiting);
            s.held = held;
        });
        if held > 0 && stored.is_empty() {
            return Ok(Round::OnlyHeld(held));
        }
        self.status.connection(Connection::Connected);
        Ok(Round::Taken)
    }

    /// Acknowledges what was stored since the last pull (when stopping).
    async fn acknowledge(&self, stored: &[String]) -> Result<(), RoundError> {
        let acked: AckAnswer = self
            .call(
                self.client
                    .post(self.endpoint("relay/ack"))
                    .timeout(Duration::from_secs(5))
                    .json(&serde_json::json!({ "ids": stored })),
            )
            .await?;
        self.status.update(|s| s.backlog = Some(acked.backlog));
        Ok(())
    }

    /// Stores one delivery through the intake.
    async fn take(&self, state: &AppState, delivery: &Pulled) -> Result<Taken, RoundError> {
        let body = base64::engine::general_purpose::STANDARD
            .decode(&delivery.body)
            .map_err(|e| {
                RoundError::Relay(format!("the relay sent a body that is not base64: {e}"))
            })?;
        let incoming = IncomingDelivery {
            signature: Some(&delivery.signature),
            content_type: delivery.content_type.as_deref(),
            event: Some(&delivery.event),
            delivery: Some(&delivery.id),
            body: &body,
        };
        match intake(state, incoming).await {
            Ok(taken) => {
                self.status.update(|s| {
                    s.last_delivery_at = Some(OffsetDateTime::now_utc());
                    match taken {
                        Intake::Duplicate | Intake::Pong { duplicate: true } => s.duplicates += 1,
                        Intake::Pong { duplicate: false } | Intake::Queued => s.stored += 1,
                    }
                });
                Ok(Taken::Stored)
            }
            Err(refused) if refused.status.is_client_error() => {
                // Debug quoting: the relay's words never split a log line.
                tracing::warn!(delivery = ?delivery.id, error = %refused.message, "relayed delivery refused");
                self.status.update(|s| {
                    s.refused += 1;
                    s.last_refusal = Some(format!(
                        "{}: {}",
                        delivery.id.escape_debug(),
                        refused.message
                    ));
                });
                Ok(if refused.status == reqwest::StatusCode::UNAUTHORIZED {
                    Taken::Held
                } else {
                    Taken::Refused
                })
            }
            Err(fault) => Err(RoundError::Intake(fault.message)),
        }
    }

    fn endpoint(&self, path: &str) -> reqwest::Url {
        self.config.url.join(path).expect("a relative path joins")
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, RoundError> {
        let url = &self.status.snapshot().url;
        let answer = request
            .bearer_auth(&self.config.token)
            .send()
            .await
            .map_err(|e| {
                let why = if e.is_timeout() {
                    "no answer in time".to_owned()
                } else {
                    e.without_url().to_string()
                };
                RoundError::Relay(format!("cannot reach the relay at {url}: {why}"))
            })?;
        let code = answer.status();
        match code.as_u16() {
            200..=299 => {
                let body = read_bounded(answer, url).await?;
                serde_json::from_slice(&body).map_err(|e| {
                    RoundError::Relay(format!(
                        "the relay at {url} answered something that is not the relay's JSON \
                         ({e}); is SLIPWAY_RELAY_URL the relay Worker's base URL?"
                    ))
                })
            }
            300..=399 => Err(RoundError::Relay(format!(
                "the relay at {url} answered a redirect ({code}), which the relay never does; \
                 set SLIPWAY_RELAY_URL to the relay Worker's own base URL"
            ))),
            401 | 403 => Err(RoundError::Relay(format!(
                "the relay at {url} refused SLIPWAY_RELAY_TOKEN ({code}): set it to the relay's \
                 RELAY_TOKEN (wrangler secret put RELAY_TOKEN)"
            ))),
            404 => Err(RoundError::Relay(format!(
                "no relay at {url} (404): SLIPWAY_RELAY_URL must be the relay Worker's base URL"
            ))),
            _ => {
                // The relay's own words say what it lacks (a secret not set, say).
                let said = answer.json::<serde_json::Value>().await.ok();
                let said = said
                    .as_ref()
                    .and_then(|body| body["error"]["message"].as_str())
                    .map(|message| format!(": {message}"))
                    .unwrap_or_default();
                Err(RoundError::Relay(format!(
                    "the relay at {url} answered {code}{said}"
                )))
            }
        }
    }
}

/// The answer's body, refused past `MAX_ANSWER_BYTES` (a relay never sends more).
async fn read_bounded(mut answer: reqwest::Response, url: &str) -> Result<Vec<u8>, RoundError> {
    let mut body = Vec::new();
    loop {
        let chunk = answer.chunk().await.map_err(|e| {
            RoundError::Relay(if e.is_timeout() {
                format!("the relay at {url} did not finish its answer in time")
            } else {
                format!(
                    "the relay at {url} broke off its answer: {}",
                    e.without_url()
                )
            })
        })?;
        let Some(chunk) = chunk else { return Ok(body) };
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(RoundError::Relay(format!(
                "the relay at {url} answered more than {} MiB, more than a relay ever sends; \
                 is SLIPWAY_RELAY_URL the relay Worker's base URL?",
                MAX_ANSWER_BYTES >> 20
            )));
        }
        body.extend_from_slice(&chunk);
    }
}

/// Between half and all of `backoff`, so that restarted pullers do not retry in step.
fn jittered(backoff: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let fraction = match getrandom::getrandom(&mut byte) {
        Ok(()) => 0.5 + f64::from(byte[0]) / 510.0,
        Err(_) => 1.0,
    };
    backoff.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Option<RelayConfig>, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RelayConfig::from_env(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn both_variables_or_neither() {
        assert!(config(&[]).unwrap().is_none());
        let one = config(&[("SLIPWAY_RELAY_URL", "https://r.example")]).unwrap_err();
        assert!(
            one.contains("set both SLIPWAY_RELAY_URL and SLIPWAY_RELAY_TOKEN"),
            "{one}"
        );
        let other = config(&[("SLIPWAY_RELAY_TOKEN", "t0ken")]).unwrap_err();
        assert!(other.contains("set both"), "{other}");
    }

    #[test]
    fn the_url_is_a_base_that_paths_join_under() {
        let relay = config(&[
            ("SLIPWAY_RELAY_URL", "https://r.example/prefix"),
            ("SLIPWAY_RELAY_TOKEN", "t0ken"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            relay.url.join("relay/ack").unwrap().as_str(),
            "https://r.example/prefix/relay/ack"
        );
        assert!(!format!("{relay:?}").contains("t0ken"));
    }

    #[test]
    fn bad_urls_and_tokens_are_refused_with_what_to_give() {
        for url in [
            "relay.example.com",
            "ftp://r.example",
            "https://r.example/?a=1",
            "https://user:hunter2@r.example",
            "https://user@r.example",
            "http://r.example",
            "http://10.0.0.5:8787",
        ] {
            let refused =
                config(&[("SLIPWAY_RELAY_URL", url), ("SLIPWAY_RELAY_TOKEN", "t")]).unwrap_err();
            assert!(refused.contains("invalid value"), "{url}: {refused}");
            assert!(refused.contains("workers.dev"), "{url}: {refused}");
        }
        let spaced = config(&[
            ("SLIPWAY_RELAY_URL", "https://r.example"),
            ("SLIPWAY_RELAY_TOKEN", "two words"),
        ])
        .unwrap_err();
        assert!(spaced.contains("SLIPWAY_RELAY_TOKEN"), "{spaced}");
        for local in [
            "http://127.0.0.1:8787",
            "http://localhost:8787",
            "http://[::1]:8787",
        ] {
            let taken = config(&[("SLIPWAY_RELAY_URL", local), ("SLIPWAY_RELAY_TOKEN", "t")]);
            assert!(matches!(taken, Ok(Some(_))), "{local}: {taken:?}");
        }
    }

    #[test]
    fn jitter_stays_within_half_and_all_of_the_backoff() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(10));
            assert!(
                d >= Duration::from_secs(5) && d <= Duration::from_secs(10),
                "{d:?}"
            );
        }
    }
}
