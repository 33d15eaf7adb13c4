//! Notification receivers on localhost, real HTTP servers that keep every request: a
//! Slack-shaped incoming webhook (answers `ok`, `400 invalid_payload` to a body without text
//! or blocks, and `429` with `Retry-After` when told to, as Slack does) and a plain endpoint
//! for Standard Webhooks deliveries. Either can be told to fail its next requests, and a
//! receiver can be started on an address chosen before it listens (down, then up).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How a receiver answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Slack's incoming webhooks: `ok` as text, a body without `text` or `blocks` refused.
    Slack,
    /// Any endpoint: 204 to anything.
    Webhook,
}

/// An answer for the next request, before the receiver's normal one.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// This status (and `Retry-After` seconds when given).
    Status(u16, Option<u64>),
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub status: u16,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct World {
    faults: VecDeque<Fault>,
    received: Vec<Received>,
}

/// A running receiver; it stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    shape: Shape,
    world: Arc<Mutex<World>>,
    stop: CancellationToken,
}

impl Receiver {
    /// Starts one on a free port of 127.0.0.1.
    pub async fn start(shape: Shape) -> Self {
        Self::start_at(shape, "127.0.0.1:0".parse().unwrap()).await
    }

    /// An address nothing listens on yet (the receiver is "down" until started there).
    pub fn free_address() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }

    /// Starts one on `addr`.
    pub async fn start_at(shape: Shape, addr: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("the address is free");
        let addr = listener.local_addr().unwrap();
        let world = Arc::new(Mutex::new(World::default()));
        let stop = CancellationToken::new();
        let app = axum::Router::new()
            .fallback(answer)
            .with_state((shape, world.clone()));
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await;
        });
        Self {
            addr,
            shape,
            world,
            stop,
        }
    }

    /// The URL to give Slipway (http: the tests allow 127.0.0.1).
    pub fn url(&self) -> String {
        let path = match self.shape {
            Shape::Slack => "/services/T000/B000/XXXXXXXXXXXXXXXX",
            Shape::Webhook => "/hooks/slipway",
        };
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next requests with these faults first.
    pub fn fail_next(&self, faults: &[Fault]) {
        self.world
            .lock()
            .unwrap()
            .faults
            .extend(faults.iter().copied());
    }

    /// Every request so far, faults included.
    pub fn received(&self) -> Vec<Received> {
        self.world.lock().unwrap().received.clone()
    }

    /// The requests answered with success, once there are `count` (or after `wait`).
    pub async fn delivered(&self, count: usize, wait: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let delivered: Vec<Received> = self
                .received()
                .into_iter()
                .filter(|r| (200..300).contains(&r.status))
                .collect();
            if delivered.len() >= count || tokio::time::Instant::now() >= deadline {
                return delivered;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn answer(
    State((shape, world)): State<(Shape, Arc<Mutex<World>>)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let mut world = world.lock().unwrap();
    let (status, retry_after, text) = match world.faults.pop_front() {
        Some(Fault::Status(429, after)) => (429, after, "rate_limited"),
        Some(Fault::Status(status, after)) => (status, after, "fault"),
        None => match shape {
            Shape::Slack => slack(&body),
            Shape::Webhook => (204, None, ""),
        },
    };
    world.received.push(Received {
        headers,
        body: body.to_vec(),
        status,
    });
    let mut response = (StatusCode::from_u16(status).unwrap(), text.to_owned()).into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", secs.to_string().parse().unwrap());
    }
    response
}

/// Slack's answer to a message: `ok`, or `400 invalid_payload` / `no_text`.
fn slack(body: &[u8]) -> (u16, Option<u64>, &'static str) {
    let Ok(message) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (400, None, "invalid_payload");
    };
    let has_text = message["text"].as_str().is_some_and(|t| !t.is_empty());
    let blocks_ok = match &message["blocks"] {
        serde_json::Value::Null => true,
        serde_json::Value::Array(blocks) => blocks.iter().all(|b| b["type"].is_string()),
        _ => false,
    };
    match (has_text || message["blocks"].is_array(), blocks_ok) {
        (true, true) => (200, None, "ok"),
        (false, _) => (400, None, "no_text"),
        (_, false) => (400, None, "invalid_blocks"),
    }
}
