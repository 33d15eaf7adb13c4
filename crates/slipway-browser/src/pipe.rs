//! DevTools over a pipe: Chromium started with `--remote-debugging-pipe` reads commands on
//! its descriptor 3 and writes answers and events on its descriptor 4, each a JSON message
//! ended by a NUL byte. No port, no socket: only the holder of the pipe's ends can drive it.
//! chromiumoxide speaks WebSocket, so one client is relayed to the pipe from a WebSocket
//! served on the host's loopback (never inside a cell, out of PR code's reach).

use futures_util::{SinkExt, StreamExt};
use std::os::fd::OwnedFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// The path chromiumoxide is given; any path is served.
const PATH: &str = "/devtools/browser/pipe";

/// Serves one WebSocket connection on `127.0.0.1` (a random port) relayed to a browser's
/// DevTools pipe: `to_browser` is the writing end of its descriptor 3, `from_browser` the
/// reading end of its descriptor 4. Returns the port ([`url`] is the URL to connect to).
/// The relay ends when the
/// browser closes its end (it exited) or the client goes; then the browser's end of the
/// command pipe sees its end too, and Chromium closes.
pub async fn relay(to_browser: OwnedFd, from_browser: OwnedFd) -> std::io::Result<u16> {
    let to_browser = pipe::Sender::from_owned_fd(to_browser)?;
    let from_browser = pipe::Receiver::from_owned_fd(from_browser)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let (messages, mut received) = mpsc::channel(64);
    tokio::spawn(read_messages(from_browser, messages));
    tokio::spawn(async move {
        // Until the client comes, the browser says nothing; its end is still watched, so a
        // browser that dies (and is never connected to) ends the relay and the listener.
        let mut early = Vec::new();
        let stream = loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => break stream,
                    Err(_) => return,
                },
                message = received.recv() => match message {
                    Some(message) => early.push(message),
                    None => return,
                },
            }
        };
        // One client only: nobody else may connect afterwards.
        drop(listener);
        let Ok(socket) = tokio_tungstenite::accept_async(stream).await else {
            return;
        };
        let (mut ws_out, mut ws_in) = socket.split();
        for message in early {
            if ws_out.send(Message::text(message)).await.is_err() {
                return;
            }
        }
        let mut to_browser = to_browser;
        loop {
            tokio::select! {
                command = ws_in.next() => {
                    let bytes = match command {
                        Some(Ok(Message::Text(text))) => text.as_bytes().to_vec(),
                        Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                        Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    };
                    // A NUL inside a message would end it early: JSON never has one raw.
                    if bytes.contains(&0) {
                        continue;
                    }
                    if to_browser.write_all(&bytes).await.is_err()
                        || to_browser.write_all(&[0]).await.is_err()
                    {
                        break;
                    }
                }
                message = received.recv() => match message {
                    Some(message) => {
                        if ws_out.send(Message::text(message)).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
            }
        }
        let _ = ws_out.close().await;
    });
    Ok(port)
}

/// The WebSocket URL of a relay on `port`.
pub fn url(port: u16) -> String {
    format!("ws://127.0.0.1:{port}{PATH}")
}

/// Reads NUL-ended messages from the browser until its end closes.
async fn read_messages(mut from_browser: pipe::Receiver, messages: mpsc::Sender<String>) {
    let mut pending = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let read = match from_browser.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        let mut rest = &chunk[..read];
        while let Some(at) = rest.iter().position(|b| *b == 0) {
            pending.extend_from_slice(&rest[..at]);
            rest = &rest[at + 1..];
            let message = String::from_utf8_lossy(&std::mem::take(&mut pending)).into_owned();
            if messages.send(message).await.is_err() {
                return;
            }
        }
        pending.extend_from_slice(rest);
    }
}
