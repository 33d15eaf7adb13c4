//! Several real `slipway` processes on one database: `serve --workers 0` (API only) and
//! `slipway worker`s that run the jobs. Validations are shared out, none runs twice at once
//! and none is lost; a killed worker's validation is finished by another; the workers go on
//! while the server is down; a stopped worker hands its job back at once. Every test runs on
//! a SQLite file and on PostgreSQL (`SLIPWAY_TEST_POSTGRES_URL`, which `scripts/test.sh`
//! sets; without it the PostgreSQL half says why and passes, except under CI).

use serde_json::{json, Value};
use slipway_testkit::events::EventStream;
use slipway_testkit::{processes_with, Api};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_slipway");
const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const TOKEN: &str = "workers-admin-token-abcdefghij";

/// Runs each named test (an `async fn(Db)`) on both backends, as `sqlite::NAME` and
/// `postgres::NAME`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Db::Sqlite).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                if let Some(db) = super::Db::postgres().await {
                    super::$name(db).await
                }
            })*
        }
    };
}

on_both_backends!(
    three_workers_share_thirty_validations_none_twice_none_lost,
    a_killed_workers_validation_is_finished_by_another_once_its_lease_ran_out,
    the_workers_go_on_while_the_server_is_down_and_a_restarted_server_shows_their_results,
    a_stopped_worker_hands_its_validation_back_and_another_takes_it_at_once,
    a_stopped_worker_finishes_its_validation_within_the_grace_period_then_exits_0,
    a_workers_events_stream_live_from_the_server_and_a_restarted_server_replays_the_rest,
);

/// The database the processes share.
enum Db {
    /// A file in the cluster's directory.
    Sqlite,
    /// A new database on the test server.
    Postgres(String),
}

impl Db {
    /// A new database on `SLIPWAY_TEST_POSTGRES_URL`; `None` (saying why) without one,
    /// outside CI.
    async fn postgres() -> Option<Db> {
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
struct Cluster {
    dir: tempfile::TempDir,
    database_url: String,
    /// Environment every process gets beyond the shared settings.
    env: Vec<(&'static str, String)>,
}

/// A running `slipway` process with its output captured.
struct Proc {
    child: Child,
    stderr: Arc<Mutex<String>>,
    /// The first line of stdout that the process printed when ready.
    ready: String,
}

impl Cluster {
    fn new(db: Db, env: &[(&'static str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database_url = match db {
            Db::Sqlite => format!("sqlite://{}", dir.path().join("shared.db").display()),
            Db::Postgres(url) => url,
        };
        let env = env.iter().map(|(k, v)| (*k, v.to_string())).collect();
        Self {
            dir,
            database_url,
            env,
        }
    }

    fn command(&self, data_dir: &str, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SLIPWAY_MASTER_KEY", KEY)
            .env("SLIPWAY_ADMIN_TOKEN", TOKEN)
            .env("SLIPWAY_LOG_FORMAT", "json")
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .args(args)
            .args(["--data-dir", self.path(data_dir).to_str().unwrap()])
            .args(["--database-url", &self.database_url])
            .stdin(Stdio::null());
        command
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `slipway serve --workers 0`: the API, no jobs.
    fn server(&self) -> (Proc, Api) {
        let args = ["serve", "--workers", "0", "--bind", "127.0.0.1:0"];
        let server = Proc::spawn(
            self.command("server", &args),
            "Slipway listening on http://",
        );
        let addr = server.ready["Slipway listening on http://".len()..].to_owned();
        let api = Api::new(&format!("http://{addr}"), Some(TOKEN));
        (server, api)
    }

    /// `slipway worker` number `n`, running two validations at once.
    fn worker(&self, n: usize) -> Proc {
        let args = ["worker", "--concurrency", "2"];
        let data = format!("worker-{n}");
        Proc::spawn(self.command(&data, &args), "Slipway worker running")
    }

    /// A local repository whose `main` runs `command` as its test step, with `branches`
    /// more branches (`b0`, `b1`, …) of one commit each: validations of different branches
    /// never cancel each other.
    fn repository(&self, command: &str, branches: usize) -> PathBuf {
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
    fn spawn(mut command: Command, ready: &str) -> Self {
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
    fn base_url(&self) -> String {
        let addr = &self.ready["Slipway listening on http://".len()..];
        format!("http://{addr}")
    }

    /// A WebSocket client of this server's `/ws`, subscribed to `project` after `after`.
    async fn events(&self, project: i64, after: Option<i64>) -> EventStream {
        let url = self.base_url();
        let mut events = EventStream::connect(&url, Some(TOKEN), &[]).await.unwrap();
        events.subscribe(project, after).await;
        events
    }

    /// SIGKILL: no shutdown at all.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit status (a guard fails the test if it never comes).
    fn terminate(&mut self) -> std::process::ExitStatus {
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

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The validations this process's log says it finished (one entry per time).
    fn finished(&self) -> Vec<i64> {
        self.stderr()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|entry| entry["fields"]["message"] == "validation finished")
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

async fn project(api: &Api, repo: &Path) -> i64 {
    let created = api
        .create_project(&json!({"name": "app", "repo": repo.display().to_string()}))
        .await;
    created.body["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{}", created.text))
}

async fn start(api: &Api, project: i64, branch: &str) -> i64 {
    let started = api
        .start_validation(project, &json!({ "branch": branch }))
        .await;
    started.body["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{}", started.text))
}

/// Polls `done` until it holds; panics with `what` if it never does (a guard, not a measure).
async fn until<F, Fut>(what: &str, mut done: F)
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

async fn finished(api: &Api, id: i64) -> Value {
    let mut last = Value::Null;
    for _ in 0..3_600 {
        last = api.validation(id).await.body;
        if !matches!(last["status"].as_str(), Some("queued" | "running")) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("validation {id} did not finish: {last}");
}

async fn three_workers_share_thirty_validations_none_twice_none_lost(db: Db) {
    let cluster = Cluster::new(db, &[]);
    let repo = cluster.repository("echo ran-once; sleep 0.5", 30);
    let (_server, api) = cluster.server();
    let workers: Vec<Proc> = (0..3).map(|n| cluster.worker(n)).collect();
    let project = project(&api, &repo).await;
    let mut ids = Vec::new();
    for n in 0..30 {
        ids.push(start(&api, project, &format!("b{n}")).await);
    }
    for id in &ids {
        let done = finished(&api, *id).await;
        let log = api.validation_logs(*id, "").await.text;
        assert_eq!(done["status"], "passed", "{done}\n{log}");
        assert_eq!(done["attempt"], 1, "ran more than once: {done}");
        assert_eq!(log.matches(r#""line":"ran-once""#).count(), 1, "{log}");
    }
    // Each validation was finished by exactly one worker, once.
    let mut times: HashMap<i64, usize> = HashMap::new();
    for worker in &workers {
        for id in worker.finished() {
            *times.entry(id).or_default() += 1;
        }
    }
    for id in &ids {
        assert_eq!(times.get(id), Some(&1), "validation {id}: {times:?}");
    }
    assert_eq!(times.len(), ids.len(), "{times:?}");
    let busy = workers.iter().filter(|w| !w.finished().is_empty()).count();
    assert!(busy >= 2, "one worker ran everything: {times:?}");
}

/// A sleep of about `secs` seconds whose exact length names this test's process (nextest
/// runs each test in a process of its own, and the two backends' tests at once), so that
/// `processes_with` counts only this test's steps.
fn marked(secs: &str) -> String {
    format!("{secs}{:07}", std::process::id())
}

/// Waits until a process with `marker` in its command line runs (a test step started).
async fn step_running(marker: &str) {
    until(&format!("a step with {marker} started"), || async {
        processes_with(marker) > 0
    })
    .await;
}

async fn a_killed_workers_validation_is_finished_by_another_once_its_lease_ran_out(db: Db) {
    let cluster = Cluster::new(db, &[("SLIPWAY_JOB_LEASE_SECS", "3")]);
    let marker = marked("2.8317");
    let repo = cluster.repository(&format!("echo started; sleep {marker}; echo done"), 0);
    let (_server, api) = cluster.server();
    let mut first = cluster.worker(0);
    let project = project(&api, &repo).await;
    let id = start(&api, project, "main").await;
    step_running(&marker).await;
    let others: Vec<Proc> = (1..3).map(|n| cluster.worker(n)).collect();
    first.kill(); // SIGKILL mid-validation
    let done = finished(&api, id).await;
    let log = api.validation_logs(id, "").await.text;
    assert_eq!(done["status"], "passed", "{done}\n{log}");
    assert_eq!(done["attempt"], 2, "{done}");
    assert!(log.contains("previous attempt was interrupted"), "{log}");
    let finishers: Vec<usize> = (0..others.len())
        .filter(|n| others[*n].finished().contains(&id))
        .collect();
    assert_eq!(finishers.len(), 1, "{finishers:?}");
    until("no process of either attempt is left", || async {
        processes_with(&marker) == 0
    })
    .await;
}

async fn the_workers_go_on_while_the_server_is_down_and_a_restarted_server_shows_their_results(
    db: Db,
) {
    let cluster = Cluster::new(db, &[]);
    let marker = marked("1.7713");
    let repo = cluster.repository(&format!("echo started; sleep {marker}"), 6);
    let (mut server, api) = cluster.server();
    let workers: Vec<Proc> = (0..3).map(|n| cluster.worker(n)).collect();
    let project = project(&api, &repo).await;
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(start(&api, project, &format!("b{n}")).await);
    }
    step_running(&marker).await;
    server.kill(); // SIGKILL: no server from here on
    until("the workers finished every validation", || {
        let done: Vec<i64> = workers.iter().flat_map(Proc::finished).collect();
        let all = ids.iter().all(|id| done.contains(id));
        async move { all }
    })
    .await;
    let (_server, api) = cluster.server();
    for id in &ids {
        let done = finished(&api, *id).await;
        assert_eq!(done["status"], "passed", "{done}");
        assert_eq!(done["attempt"], 1, "run again after the restart: {done}");
    }
}

async fn a_stopped_worker_hands_its_validation_back_and_another_takes_it_at_once(db: Db) {
    // Leases that outlast the test: only a hand-back lets the other worker in.
    let cluster = Cluster::new(
        db,
        &[
            ("SLIPWAY_SHUTDOWN_GRACE_SECS", "0"),
            ("SLIPWAY_JOB_LEASE_SECS", "3600"),
        ],
    );
    let marker = marked("3.4419");
    let repo = cluster.repository(&format!("echo started; sleep {marker}; echo done"), 0);
    let (_server, api) = cluster.server();
    let mut first = cluster.worker(0);
    let project = project(&api, &repo).await;
    let id = start(&api, project, "main").await;
    step_running(&marker).await;
    let second = cluster.worker(1);
    let status = first.terminate();
    assert!(status.success(), "{status:?}: {}", first.stderr());
    let done = finished(&api, id).await;
    let log = api.validation_logs(id, "").await.text;
    assert_eq!(done["status"], "passed", "{done}\n{log}");
    assert_eq!(done["attempt"], 2, "{done}");
    assert_eq!(second.finished(), vec![id]);
    assert!(first.finished().is_empty());
}

async fn a_stopped_worker_finishes_its_validation_within_the_grace_period_then_exits_0(db: Db) {
    let cluster = Cluster::new(db, &[("SLIPWAY_SHUTDOWN_GRACE_SECS", "600")]);
    let marker = marked("1.5527");
    let repo = cluster.repository(&format!("echo started; sleep {marker}; echo done"), 0);
    let (_server, api) = cluster.server();
    let mut worker = cluster.worker(0);
    let project = project(&api, &repo).await;
    let id = start(&api, project, "main").await;
    step_running(&marker).await;
    let status = worker.terminate();
    assert!(status.success(), "{status:?}: {}", worker.stderr());
    assert_eq!(worker.finished(), vec![id]);
    let done = finished(&api, id).await;
    assert_eq!(done["status"], "passed", "{done}");
    assert_eq!(done["attempt"], 1, "{done}");
}

fn log_lines(events: &[Value]) -> Vec<&str> {
    let logs = events
        .iter()
        .filter(|e| e["type"] == "log" && e["step"] == "test");
    logs.filter_map(|e| e["line"].as_str()).collect()
}

fn event_ids(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .filter_map(|e| e["event_id"].as_i64())
        .collect()
}

fn verdict(event: &Value) -> bool {
    event["type"] == "validation_update"
        && event["step_index"].is_null()
        && matches!(
            event["overall_status"].as_str(),
            Some("passed" | "failed" | "error")
        )
}

async fn a_workers_events_stream_live_from_the_server_and_a_restarted_server_replays_the_rest(
    db: Db,
) {
    let cluster = Cluster::new(db, &[]);
    let marker = marked("1.9391");
    let command = format!("echo one; sleep {marker}; echo two; echo three");
    let repo = cluster.repository(&command, 0);
    let (mut server, api) = cluster.server();
    let worker = cluster.worker(0);
    let project = project(&api, &repo).await;
    let mut live = server.events(project, None).await;
    let id = start(&api, project, "main").await;
    // Live, through the server, from the worker's process.
    let seen = live
        .until(|e| e["type"] == "log" && e["line"] == "one")
        .await;
    assert!(seen
        .iter()
        .all(|e| e["validation_id"] == id || e["type"] != "log"));
    let last = *event_ids(&seen).last().unwrap();
    server.kill(); // SIGKILL mid-validation
    until("the worker finished the validation", || {
        let done = worker.finished().contains(&id);
        async move { done }
    })
    .await;
    let (server, _api) = cluster.server();
    let mut replayed = server.events(project, Some(last)).await;
    let rest = replayed.until(verdict).await;
    assert_eq!(rest.last().unwrap()["overall_status"], "passed", "{rest:?}");
    let ids = event_ids(&rest);
    assert!(ids[0] > last, "{last} then {ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(log_lines(&rest), ["two", "three"], "{rest:?}");
}
