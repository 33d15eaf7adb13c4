//! The webhook relay (`relay/`) on the real Workers runtime: `wrangler dev` (workerd from
//! npm) on a free loopback port, its Durable Object storage persisted to a directory so that
//! a restart keeps what it stored. `relay/node_modules` must be installed (`npm ci --prefix
//! relay`; `scripts/test.sh` does it).

use crate::WEBHOOK_SECRET;
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The bearer token every `LocalRelay` wants from its puller.
pub const RELAY_TOKEN: &str = "test-relay-token-0123456789";

/// A running relay; stopped (its whole process group) when dropped.
pub struct LocalRelay {
    pub base_url: String,
    port: u16,
    persist: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    client: reqwest::Client,
    /// `RETENTION_HOURS`, when not the Worker's default.
    retention_hours: Option<String>,
}

/// Where the Worker's project is.
pub fn relay_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../relay")
}

impl LocalRelay {
    /// Starts the relay with its state under `state_dir` (kept across [`Self::restart`]).
    pub async fn start(state_dir: &Path) -> Self {
        Self::start_keeping(state_dir, None).await
    }

    /// Starts the relay keeping deliveries `retention_hours` (its `RETENTION_HOURS`).
    pub async fn start_keeping(state_dir: &Path, retention_hours: Option<&str>) -> Self {
        // The free port may be taken by another test before wrangler binds it: take another.
        for _ in 0..5 {
            let port = free_port();
            let mut relay = Self {
                base_url: format!("http://127.0.0.1:{port}"),
                port,
                persist: state_dir.join("relay-state"),
                log: state_dir.join("relay.log"),
                child: None,
                client: reqwest::Client::new(),
                retention_hours: retention_hours.map(str::to_owned),
            };
            match relay.launch().await {
                Ok(()) => return relay,
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("{log}"),
            }
        }
        panic!("the relay found no free port in five tries")
    }

    /// What Slipway needs to pull from this relay.
    pub fn config(&self) -> slipway_server::relay::RelayConfig {
        self.config_with(&self.base_url, RELAY_TOKEN)
    }

    /// A puller's configuration for `url` (a proxy in front of the relay, say) and `token`.
    pub fn config_with(&self, url: &str, token: &str) -> slipway_server::relay::RelayConfig {
        let get = |name: &str| match name {
            "SLIPWAY_RELAY_URL" => Some(url.to_owned()),
            "SLIPWAY_RELAY_TOKEN" => Some(token.to_owned()),
            _ => None,
        };
        slipway_server::relay::RelayConfig::from_env(get)
            .expect("a valid relay configuration")
            .expect("both variables set")
    }

    /// Kills the relay (workerd included, no chance to flush anything) and starts it again
    /// on the same port over the same storage.
    pub async fn restart(&mut self) {
        self.kill();
        if let Err(log) = self.launch().await {
            panic!("{log}");
        }
    }

    /// Posts a delivery signed with the webhook secret, as GitHub does; the relay's status.
    pub async fn deliver(&self, event: &str, delivery: &str, body: &[u8]) -> reqwest::StatusCode {
        let signature = slipway_forge::webhook::sign(WEBHOOK_SECRET.as_bytes(), body);
        self.post_signed(event, delivery, body, Some(&signature))
            .await
    }

    /// Posts a delivery with the given `X-Hub-Signature-256` (or none).
    pub async fn post_signed(
        &self,
        event: &str,
        delivery: &str,
        body: &[u8],
        signature: Option<&str>,
    ) -> reqwest::StatusCode {
        let mut request = self
            .client
            .post(format!("{}/webhooks/github", self.base_url))
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        request.send().await.expect("the relay answers").status()
    }

    /// `GET /relay/status`: backlog (unacknowledged), stored (all kept), times.
    pub async fn status(&self) -> Value {
        self.client
            .get(format!("{}/relay/status", self.base_url))
            .bearer_auth(RELAY_TOKEN)
            .send()
            .await
            .expect("the relay answers")
            .json()
            .await
            .expect("the relay's status is JSON")
    }

    /// Waits until the relay holds nothing unacknowledged; its status then.
    pub async fn drained(&self) -> Value {
        for _ in 0..2_400 {
            let status = self.status().await;
            if status["backlog"] == 0 {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the relay still holds deliveries: {}", self.status().await)
    }

    /// Starts wrangler on `self.port`; `Err` with what it printed when it does not answer.
    async fn launch(&mut self) -> Result<(), String> {
        let dir = relay_dir();
        let wrangler = dir.join("node_modules/.bin/wrangler");
        assert!(
            wrangler.exists(),
            "{} is missing: install the relay's dependencies with `npm ci --prefix relay` \
             (scripts/test.sh does)",
            wrangler.display()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the relay's log file opens");
        let mut command = Command::new(&wrangler);
        if let Some(hours) = &self.retention_hours {
            command.args(["--var", &format!("RETENTION_HOURS:{hours}")]);
        }
        let child = command
            .current_dir(&dir)
            .args(["dev", "--ip", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--inspector-port", &free_port().to_string()])
            .arg("--persist-to")
            .arg(&self.persist)
            .args([
                "--show-interactive-dev-session=false",
                "--log-level",
                "warn",
            ])
            .args(["--var", &format!("GITHUB_WEBHOOK_SECRET:{WEBHOOK_SECRET}")])
            .args(["--var", &format!("RELAY_TOKEN:{RELAY_TOKEN}")])
            .env("CI", "1")
            .env("WRANGLER_SEND_METRICS", "false")
            .env("WRANGLER_LOG_PATH", self.persist.with_extension("logs"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log descriptor duplicates"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("wrangler starts (Node.js is needed)");
        self.child = Some(child);
        for _ in 0..1_200 {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.kill();
                return Err(format!(
                    "wrangler dev exited ({status}) before the relay answered:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ));
            }
            let health = self
                .client
                .get(format!("{}/health", self.base_url))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "the relay did not answer /health:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        ))
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // wrangler runs workerd as its child, in the group started for it.
            let group = child.id() as libc::pid_t;
            // SAFETY: killpg has no memory-safety preconditions; the group is our child's.
            unsafe {
                libc::killpg(group, libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }
}

impl Drop for LocalRelay {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}
