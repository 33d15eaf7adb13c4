//! Real `slipway` processes sharing one database, for the tests that run several of them:
//! servers (`serve`) and workers (`worker`), each with a data directory of its own, their
//! output captured. The database is a SQLite file or a new database on the PostgreSQL server
//! `SLIPWAY_TEST_POSTGRES_URL` names (`scripts/test.sh` sets it; without it the PostgreSQL
//! half says why and passes, except under CI).

// Each test file uses the part it needs.
#![allow(dead_code)]

use serde_json::{json, Value};
use slipway_testkit::events::EventStream;
use slipway_testkit::Api;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_slipway");
pub const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
pub const TOKEN: &str = "cluster-admin-token-abcdefghij";

/// Runs each named test (an `async fn(Db)`) on both backends, as `sqlite::NAME` and
/// `postgres::NAME`, on a runtime of two threads (an in-process fake answers the processes
/// while the test waits on them).
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::cluster::Db::Sqlite).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(db) = super::cluster::Db::postgres().await {
                    super::$name(db).await
                }
            })*
        }
    };
}

/// The database the processes share.
pub enum Db {
    /// A file in the cluster's directory.
    Sqlite,
    /// A new database on the test server.
    Postgres(String),
}

impl Db {
    /// A new database on `SLIPWAY_TEST_POSTGRES_URL`; `None` (saying why) without one,
    /// outside CI.
    pub async fn postgres() -> Option<Db> {
        let Ok(server) = std::env::var("SLIPWAY_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "SLIPWAY_TEST_POSTGRES_URL is not set: under CI the PostgreSQL half must run"
            );
            eprintln!("skipped on PostgreSQL: SLIPWAY_TEST_POSTGRES_URL is not set");
            return None;
        };
        Some(Db::Postgres(
            slipway_testkit::database::postgres_database(&server).await,
        ))
    }
}

/// One database shared by every process started from it, each with a data directory of its
/// own.
pub struct Cluster {
    dir: tempfile::TempDir,
    database_url: String,
    /// Environment every process gets beyond the shared settings.
    env: Vec<(String, String)>,
}

impl Cluster {
    pub fn new(db: Db, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database_url = match db {
            Db::Sqlite => format!("sqlite://{}", dir.path().join("shared.db").display()),
            Db::Postgres(url) => url,
        };
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self {
            dir,
            database_url,
            env,
        }
    }

    pub fn command(&self, data_dir: &str, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SLIPWAY_MASTER_KEY", KEY)
            .env("SLIPWAY_ADMIN_TOKEN", TOKEN)
            .env("SLIPWAY_LOG_FORMAT", "json")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(args)
            .args(["--data-dir", self.path(data_dir).to_str().unwrap()])
            .args(["--database-url", &self.database_url])
            .stdin(Stdio::null());
        command
    }

    /// A path in the cluster's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Server number `n`: `slipway serve --workers <workers>` (0: the API only, no jobs).
    pub fn server(&self, n: usize, workers: usize) -> (Proc, Api) {
        let workers = workers.to_string();
        let args = ["serve", "--workers", &workers, "--bind", "127.0.0.1:0"];
        let data = format!("server-{n}");
        let server = Proc::spawn(self.command(&data, &args), LISTENING);
        let api = Api::new(&server.base_url(), Some(TOKEN));
        (server, api)
    }

    /// `slipway worker` number `n`, running two validations at once.
    pub fn worker(&self, n: usize) -> Proc {
        let args = ["worker", "--concurrency", "2"];
        let data = format!("worker-{n}");
        Proc::spawn(self.command(&data, &args), "Slipway worker running")
    }

    /// A local repository whose `main` runs `command` as its test step, with `branches`
    /// more branches (`b0`, `b1`, …) of one commit each: validations of different branches
    /// never cancel each other.
    pub fn repository(&self, command: &str, branches: usize) -> PathBuf {
        let repo = self.path("repo");
        let pipeline = format!("[test]\ncommands = [{}]\n", json!(command));
        slipway_testkit::fixture_repo(&repo, &[(".slipway.toml", &pipeline)]);
        for n in 0..branches {
            let branch = format!("b{n}");
            slipway_testkit::git(&repo, &["branch", &branch, "main"]);
        }
        repo
    }
}

const LISTENING: &str = "Slipway listening on http://";

/// A running `slipway` process with its output captured; killed when dropped.
pub struct Proc {
    child: Child,
    stderr: Arc<Mutex<String>>,
    /// The first line of stdout that the process printed when ready.
    ready: String,
}

fn capture(
    stream: impl Read + Send + 'static,
    sink: Arc<Mutex<String>>,
) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&line);
            sink.lock().unwrap().push('\n');
            let _ = tx.send(line);
        }
    });
    rx
}

impl Proc {
    /// Runs `command` until it prints a line starting with `ready`.
    pub fn spawn(mut command: Command, ready: &str) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("slipway starts");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let lines = capture(child.stdout.take().unwrap(), stdout);
        capture(child.stderr.take().unwrap(), stderr.clone());
        let ready = loop {
            let line = lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("never ready; stderr: {}", stderr.lock().unwrap()));
            if line.starts_with(ready) {
                break line;
            }
        };
        Self {
            child,
            stderr,
            ready,
        }
    }

    /// A server's address, as it printed it.
    pub fn base_url(&self) -> String {
        let addr = &self.ready[LISTENING.len()..];
        format!("http://{addr}")
    }

    /// A WebSocket client of this server's `/ws`, subscribed to `project` after `after`.
    pub async fn events(&self, project: i64, after: Option<i64>) -> EventStream {
        let url = self.base_url();
        let mut events = EventStream::connect(&url, Some(TOKEN), &[]).await.unwrap();
        events.subscribe(project, after).await;
        events
    }

    /// SIGKILL: no shutdown at all.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit status (a guard fails the test if it never comes).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        for _ in 0..1_200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("slipway did not exit after SIGTERM: {}", self.stderr());
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The entries of this process's JSON log whose message is `message`.
    pub fn logged(&self, message: &str) -> Vec<Value> {
        self.stderr()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|entry| entry["fields"]["message"] == message)
            .collect()
    }

    /// The validations this process's log says it finished (one entry per time).
    pub fn finished(&self) -> Vec<i64> {
        self.logged("validation finished")
            .iter()
            .filter_map(|entry| entry["fields"]["validation"].as_str()?.parse().ok())
            .collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `done` until it holds; panics with `what` if it never does (a guard, not a measure).
pub async fn until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..3_600 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}
