//! The service's health check, made from inside the validation's network namespace (where
//! the service listens) over a connection the cell hands out: one HTTP/1.1 GET, the status.

use slipway_sandbox::Cell;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const TIMEOUT: Duration = Duration::from_secs(2);
const MAX_STATUS_LINE: u64 = 4096;

/// The status `GET path` answers with on `127.0.0.1:port` in the cell.
pub(crate) async fn status(cell: &Cell, port: u16, path: &str) -> std::io::Result<u16> {
    let request = async {
        let mut stream = cell.connect(port).await?;
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: slipway-health\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await?;
        // The status line only, and at most a few KiB of it: the service is the code's.
        let mut line = String::new();
        BufReader::new(stream.take(MAX_STATUS_LINE))
            .read_line(&mut line)
            .await?;
        parse_status(&line).ok_or_else(|| {
            std::io::Error::other(format!("not an HTTP answer: {:?}", line.trim_end()))
        })
    };
    tokio::time::timeout(TIMEOUT, request)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("no answer within 2 s")))
}

fn parse_status(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_status_is_read_from_the_status_line_only() {
        assert_eq!(
            super::parse_status("HTTP/1.1 204 No Content\r\n"),
            Some(204)
        );
        assert_eq!(super::parse_status("HTTP/1.0 500\r\n"), Some(500));
        assert_eq!(super::parse_status("SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(super::parse_status(""), None);
    }
}
