//! What the fake model APIs share: scripted answers, injected faults, and every request
//! received (so a test can assert on exactly what a model was sent).

use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The model's next answer.
#[derive(Clone, Debug)]
pub enum Script {
    /// This JSON as the answer's text.
    Answer(Value),
    /// This text as the answer (to break the schema).
    Text(String),
}

/// A fault for the next request, before any script is used.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// This status with the API's error body, and `Retry-After` seconds when given.
    Status(u16, Option<u64>),
    /// A 200 whose body is not JSON.
    MalformedBody,
    /// Wait this long before answering (the next script, or a fault that follows).
    Slow(Duration),
}

#[derive(Default)]
pub(crate) struct World {
    pub scripts: VecDeque<Script>,
    pub faults: VecDeque<Fault>,
    /// Every request body, in order, faults included.
    pub requests: Vec<Value>,
}

pub(crate) type Shared = Arc<Mutex<World>>;

/// What to do with one request.
pub(crate) enum Reply {
    Fault(Fault),
    Text(String),
}

/// Records the request and takes the next fault (or script). A slow fault sleeps here and
/// then answers with what follows it.
pub(crate) async fn next(world: &Shared, body: &Value) -> Reply {
    let first = {
        let mut world = world.lock().unwrap();
        world.requests.push(body.clone());
        world.faults.pop_front()
    };
    let fault = match first {
        Some(Fault::Slow(wait)) => {
            tokio::time::sleep(wait).await;
            world.lock().unwrap().faults.pop_front()
        }
        other => other,
    };
    if let Some(fault) = fault {
        return Reply::Fault(fault);
    }
    match world.lock().unwrap().scripts.pop_front() {
        Some(Script::Answer(value)) => Reply::Text(value.to_string()),
        Some(Script::Text(text)) => Reply::Text(text),
        None => Reply::Fault(Fault::Status(500, None)),
    }
}

/// About four characters a token, as the clients estimate too.
pub(crate) fn tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// The handle both fakes expose.
pub struct Handle {
    pub(crate) world: Shared,
}

impl Handle {
    /// Queues the model's next answers.
    pub fn script(&self, scripts: impl IntoIterator<Item = Script>) {
        self.world.lock().unwrap().scripts.extend(scripts);
    }

    /// Queues faults for the next requests.
    pub fn fault(&self, faults: impl IntoIterator<Item = Fault>) {
        self.world.lock().unwrap().faults.extend(faults);
    }

    /// Every request body received, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.world.lock().unwrap().requests.clone()
    }
}

/// Serves `router` on a random loopback port until the token is cancelled.
pub(crate) async fn serve(router: axum::Router) -> (String, tokio_util::sync::CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .unwrap();
    });
    (url, shutdown)
}
