//! A WebSocket client of `GET /ws` for tests.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct EventStream {
    socket: Socket,
}

impl EventStream {
    /// Opens `/ws` with a bearer token (or none) and extra headers; the handshake's HTTP
    /// status on refusal.
    pub async fn connect(
        base_url: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Self, u16> {
        let url = format!("{}/ws", base_url.replacen("http://", "ws://", 1));
        let mut request = url.into_client_request().expect("a WebSocket URL");
        if let Some(token) = token {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        for (name, value) in headers {
            request.headers_mut().insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => Ok(Self { socket }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(error) => panic!("the WebSocket handshake failed: {error}"),
        }
    }

    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("sent");
    }

    pub async fn subscribe(&mut self, project: i64, after: Option<i64>) {
        let mut message = json!({"type": "subscribe_project", "project_id": project});
        if let Some(after) = after {
            message["after"] = json!(after);
        }
        self.send(message).await;
    }

    /// The next message, or `None` after `wait` without one.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(wait, self.socket.next())
                .await
                .ok()??;
            if let Message::Text(text) = message.expect("a WebSocket message") {
                return Some(serde_json::from_str(&text).expect("JSON"));
            }
        }
    }

    /// The next message (at most 30 s).
    pub async fn next(&mut self) -> Value {
        self.next_within(Duration::from_secs(30))
            .await
            .expect("a message within 30 s")
    }

    /// Messages until one satisfies `done` (included).
    pub async fn until(&mut self, done: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let message = self.next().await;
            let stop = done(&message);
            seen.push(message);
            if stop {
                return seen;
            }
        }
    }

    /// The close code the server ended the stream with within `wait`; `None` if it stayed
    /// open (text messages meanwhile are skipped).
    pub async fn closed_within(&mut self, wait: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()?;
            match message {
                None | Some(Err(_)) => return Some(1006),
                Some(Ok(Message::Close(frame))) => {
                    return Some(frame.map(|f| u16::from(f.code)).unwrap_or(1005))
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
