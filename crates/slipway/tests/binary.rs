//! The real `slipway` binary as a process: start-up, configuration, secrets at rest and in
//! logs, shutdown.

use serde_json::{json, Value};
use slipway_testkit::{processes_with, Api};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_slipway");
const KEY_A: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const KEY_B: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=";

/// A `slipway serve` process with its output captured.
struct Server {
    child: Child,
    addr: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

fn command(data_dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SLIPWAY_DATA_DIR", data_dir)
        .stdin(Stdio::null());
    command
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

impl Server {
    /// `slipway serve --bind 127.0.0.1:0` with this command's environment.
    fn start(mut command: Command) -> Self {
        command.args(["serve", "--bind", "127.0.0.1:0"]);
        Self::spawn(command)
    }

    /// Runs the command (its arguments already given) until it prints its address.
    fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("slipway starts");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let lines = capture(child.stdout.take().unwrap(), stdout.clone());
        capture(child.stderr.take().unwrap(), stderr.clone());
        let addr = loop {
            let line = lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no address; stderr: {}", stderr.lock().unwrap()));
            if let Some(addr) = line.strip_prefix("Slipway listening on http://") {
                break addr.to_owned();
            }
        };
        Self {
            child,
            addr,
            stdout,
            stderr,
        }
    }

    fn api(&self, token: &str) -> Api {
        Api::new(&format!("http://{}", self.addr), Some(token))
    }

    fn admin_token_printed(&self) -> Option<String> {
        self.stdout
            .lock()
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("admin token: ").map(str::to_owned))
    }

    /// SIGTERM, then wait for the exit status.
    fn stop(mut self) -> (std::process::ExitStatus, String, String) {
        sigterm(&self.child);
        let status = wait(&mut self.child);
        std::thread::sleep(Duration::from_millis(100));
        let out = self.stdout.lock().unwrap().clone();
        let err = self.stderr.lock().unwrap().clone();
        (status, out, err)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("slipway did not exit within 10 s of SIGTERM");
}

/// Runs a command that must end by itself; fails the test instead of hanging if it does not.
fn run(command: &mut Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("slipway runs");
    for _ in 0..400 {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    panic!(
        "slipway did not exit within 10 s: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Every file below `dir`, with its bytes (files that vanish while listed are skipped).
fn files_below(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_below(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            files.push((path, bytes));
        }
    }
    files
}

#[tokio::test]
async fn first_start_prints_an_admin_token_once_and_keeps_only_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start(command(dir.path()));
    let token = first.admin_token_printed().expect("a token on first start");
    assert_eq!(first.api(&token).list_projects().await.status, 200);
    let (status, _, _) = first.stop();
    assert!(status.success(), "{status:?}");

    for (file, bytes) in files_below(dir.path()) {
        assert!(!contains(&bytes, &token), "{file:?}");
    }

    let second = Server::start(command(dir.path()));
    assert_eq!(second.admin_token_printed(), None);
    assert_eq!(second.api(&token).list_projects().await.status, 200);
}

#[tokio::test]
async fn an_admin_token_from_the_environment_suppresses_the_generated_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.env("SLIPWAY_ADMIN_TOKEN", "env-admin-token-abcdefghij");
    let server = Server::start(cmd);
    assert_eq!(server.admin_token_printed(), None);
    let api = server.api("env-admin-token-abcdefghij");
    assert_eq!(api.tokens().await.status, 200);

    let mut weak = command(dir.path());
    weak.env("SLIPWAY_ADMIN_TOKEN", "short")
        .args(["serve", "--bind", "127.0.0.1:0"]);
    let out = run(&mut weak);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SLIPWAY_ADMIN_TOKEN"));
}

#[tokio::test]
async fn a_secret_value_appears_nowhere_in_the_database_responses_or_logs() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "sekrit-Value-3b8e1c77-do-not-leak";
    let mut cmd = command(dir.path());
    cmd.env("SLIPWAY_LOG", "debug")
        .env("SLIPWAY_LOG_FORMAT", "json");
    let server = Server::start(cmd);
    let api = server.api(&server.admin_token_printed().unwrap());

    let mut replies = Vec::new();
    let project = api
        .create_project(&json!({"name": "p", "repo": "acme/app"}))
        .await;
    let id = project.body["id"].as_i64().unwrap();
    replies.push(api.put_secret(id, "API_KEY", secret).await);
    replies.push(api.put_secret(id, "API_KEY", secret).await);
    replies.push(api.put_secret(id, "bad name", secret).await);
    replies.push(
        api.import_secrets(
            id,
            &format!("OTHER={secret}\nAPI_KEY={secret}\n9X={secret}\n"),
        )
        .await,
    );
    replies.push(api.secrets(id).await);
    replies.push(api.settings(id).await);
    replies.push(api.project(id).await);
    replies.push(api.list_projects().await);
    replies.push(api.metrics().await);
    let (status, stdout, stderr) = server.stop();
    assert!(status.success());

    assert_eq!(replies[0].status, 201);
    assert_eq!(replies[3].body["imported"].as_array().unwrap().len(), 2);
    for reply in &replies {
        assert!(
            !reply.text.contains(secret),
            "response leaked: {}",
            reply.text
        );
    }
    assert!(
        stderr.contains("\"request_id\""),
        "logs are JSON with request ids"
    );
    for line in stderr.lines() {
        serde_json::from_str::<Value>(line).expect("every log line is JSON");
    }
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "logs leaked"
    );
    let files = files_below(dir.path());
    assert!(files.iter().any(|(f, _)| f.ends_with("slipway.db")));
    for (file, bytes) in files {
        assert!(!contains(&bytes, secret), "{file:?} leaked");
    }
}

#[tokio::test]
async fn a_wrong_master_key_is_refused_at_start_and_the_secrets_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.env("SLIPWAY_MASTER_KEY", KEY_A);
    let server = Server::start(cmd);
    let api = server.api(&server.admin_token_printed().unwrap());
    let id = api
        .create_project(&json!({"name": "p", "repo": "acme/app"}))
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    assert_eq!(api.put_secret(id, "TOKEN", "survives").await.status, 201);
    server.stop();
    let db = database_dump(dir.path());

    let mut wrong = command(dir.path());
    wrong
        .env("SLIPWAY_MASTER_KEY", KEY_B)
        .args(["serve", "--bind", "127.0.0.1:0"]);
    let out = run(&mut wrong);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("master key does not match"), "{stderr}");
    // The data, not the file's bytes: a connection closing may move the WAL into the file.
    assert_eq!(database_dump(dir.path()), db);

    let mut malformed = command(dir.path());
    malformed
        .env("SLIPWAY_MASTER_KEY", "too-short")
        .args(["serve", "--bind", "127.0.0.1:0"]);
    let out = run(&mut malformed);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SLIPWAY_MASTER_KEY"));

    let key = slipway_store::MasterKey::from_base64(KEY_A).unwrap();
    let url = format!("sqlite://{}", dir.path().join("slipway.db").display());
    let store = slipway_store::Store::open(&url, &key).await.unwrap();
    let values = store
        .secret_values(slipway_core::ProjectId(id))
        .await
        .unwrap();
    assert_eq!(values[0].1.expose(), "survives");
}

struct Case {
    env: Vec<(&'static str, &'static str)>,
    file: &'static str,
    expected: Vec<&'static str>,
}

#[test]
fn bad_configuration_is_refused_naming_the_key_the_value_and_what_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("slipway.toml");
    let case = |env: &'static [(&'static str, &'static str)], file: &'static str, expected| Case {
        env: env.to_vec(),
        file,
        expected,
    };
    let cases = [
        case(
            &[("SLIPWAY_BIND", "nonsense")],
            "",
            vec!["SLIPWAY_BIND", "nonsense", "127.0.0.1:8080"],
        ),
        case(
            &[("SLIPWAY_LOG_FORMAT", "xml")],
            "",
            vec!["SLIPWAY_LOG_FORMAT", "xml", "'json'"],
        ),
        case(
            &[("SLIPWAY_DATABASE_URL", "mysql://x")],
            "",
            vec!["SLIPWAY_DATABASE_URL", "mysql://x", "sqlite://"],
        ),
        case(
            &[],
            "bind = \"127.0.0.1:0\"\nport = 80\n",
            vec!["slipway.toml:2", "unknown field `port`", "bind"],
        ),
        case(&[], "bind = 8080\n", vec!["slipway.toml:1", "invalid type"]),
        case(
            &[],
            "bind = \"here\"\n",
            vec!["config file key 'bind'", "here"],
        ),
    ];
    for Case {
        env,
        file,
        expected,
    } in cases
    {
        let mut cmd = command(&dir.path().join("data"));
        cmd.arg("serve");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        if !file.is_empty() {
            std::fs::write(&config, file).unwrap();
            cmd.arg("--config").arg(&config);
        }
        let out = run(&mut cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?} {file}: {stderr}");
        for needle in expected {
            assert!(stderr.contains(needle), "{needle} not in: {stderr}");
        }
    }
}

#[tokio::test]
async fn a_flag_wins_over_the_environment_which_wins_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("slipway.toml");
    std::fs::write(&config, "bind = \"not-an-address\"\nlog_format = \"xml\"\n").unwrap();
    let mut cmd = command(&dir.path().join("data"));
    cmd.env("SLIPWAY_BIND", "also-not-an-address")
        .env("SLIPWAY_LOG_FORMAT", "json")
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(&config);
    let server = Server::spawn(cmd);
    assert_eq!(server.api("x").health().await.status, 200);
    let (_, _, stderr) = server.stop();
    let first = stderr.lines().next().unwrap();
    serde_json::from_str::<Value>(first).expect("the environment's json beats the file's xml");
}

#[test]
fn sigterm_lets_a_request_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.env("SLIPWAY_ADMIN_TOKEN", "env-admin-token-abcdefghij");
    let mut server = Server::start(cmd);

    // Send the head of a request and half its body, then SIGTERM, then the rest.
    let body = br#"{"name":"in-flight","repo":"acme/app"}"#;
    let (first, rest) = body.split_at(10);
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    write!(
        stream,
        "POST /api/v1/projects HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer env-admin-token-abcdefghij\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(first).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&server.child);
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(rest).unwrap();
    let mut response = String::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    assert!(response.contains("in-flight"));

    let status = wait(&mut server.child);
    assert!(status.success(), "{status:?}");
    assert!(server.stderr.lock().unwrap().contains("shutdown complete"));
}

#[tokio::test]
async fn token_create_makes_a_working_token_of_the_asked_role() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        run(command(dir.path()).args(["token", "create", "--role", "viewer", "--name", "dash"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("slw_"));

    let server = Server::start(command(dir.path()));
    let api = server.api(&token);
    assert_eq!(api.list_projects().await.status, 200);
    assert_eq!(
        api.create_project(&json!({"name": "x", "repo": "a/b"}))
            .await
            .status,
        403
    );

    let bad = run(command(dir.path()).args(["token", "create", "--role", "root"]));
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("admin, operator or viewer"));
}

#[test]
fn token_create_elsewhere_never_makes_a_database_no_server_uses() {
    let server_dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let bare = |dir: &Path| {
        let mut command = Command::new(BIN);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .current_dir(dir)
            .stdin(Stdio::null());
        command
    };
    // From another directory, with no data directory named: refused, nothing made.
    let out = run(bare(elsewhere.path()).args(["token", "create", "--role", "admin"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no Slipway data directory"), "{stderr}");
    assert!(
        stderr.contains("--data-dir") && stderr.contains("--new-data-dir"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    assert!(!elsewhere.path().join(".slipway").exists());

    // Naming the server's data directory: it says which database it used.
    let data_dir = server_dir.path().join("data");
    let out = run(bare(elsewhere.path())
        .args(["token", "create", "--role", "admin", "--data-dir"])
        .arg(&data_dir));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "sqlite://{}",
            data_dir.join("slipway.db").display()
        )),
        "{stderr}"
    );
    assert!(data_dir.join("slipway.db").exists());

    // Asked for explicitly: a new ./.slipway here.
    let out =
        run(bare(elsewhere.path()).args(["token", "create", "--role", "viewer", "--new-data-dir"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(elsewhere.path().join(".slipway/slipway.db").exists());
    // Once it exists, it is used without the flag.
    let out = run(bare(elsewhere.path()).args(["token", "create", "--role", "viewer"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn migrate_creates_the_schema_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(command(dir.path()).arg("migrate"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("slipway.db").exists());
    let again = run(command(dir.path()).arg("migrate"));
    assert!(again.status.success());
}

#[tokio::test]
async fn a_validation_survives_a_sigkill_of_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    slipway_testkit::fixture_repo(
        &repo,
        &[(
            ".slipway.toml",
            "[test]\ncommands = [\"sleep 1.9173 && echo slept\"]\n",
        )],
    );
    let data = dir.path().join("data");
    let token = "env-admin-token-abcdefghij";
    let start = || {
        let mut cmd = command(&data);
        cmd.env("SLIPWAY_ADMIN_TOKEN", token);
        Server::start(cmd)
    };
    let mut first = start();
    let api = first.api(token);
    let project = api
        .create_project(&json!({"name": "p", "repo": repo.display().to_string()}))
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let id = api
        .start_validation(project, &json!({"branch": "main"}))
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    for _ in 0..200 {
        if processes_with("1.9173") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(processes_with("1.9173") > 0, "the test step never started");
    assert_eq!(api.validation(id).await.body["status"], "running");

    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();

    let second = start();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let api = second.api(token);
    let done = api.finished_validation(id).await;
    assert_eq!(done["status"], "passed", "{done}");
    assert_eq!(done["attempt"], 2, "{done}");
    let log = api.validation_logs(id, "").await.text;
    assert!(log.contains("previous attempt was interrupted"), "{log}");
    assert_eq!(
        processes_with("1.9173"),
        0,
        "no process of either attempt is left"
    );
}

#[test]
fn github_app_settings_must_be_complete_and_the_key_readable() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("app.pem");
    std::fs::write(&key, "not a pem").unwrap();
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[("GITHUB_APP_ID", "1")],
            "set both GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY_PATH",
        ),
        (
            &[
                ("GITHUB_APP_ID", "1"),
                ("GITHUB_APP_PRIVATE_KEY_PATH", "/no/such.pem"),
            ],
            "cannot read GITHUB_APP_PRIVATE_KEY_PATH",
        ),
        (
            &[
                ("GITHUB_APP_ID", "1"),
                ("GITHUB_APP_PRIVATE_KEY_PATH", key.to_str().unwrap()),
            ],
            "expected an RSA private key",
        ),
    ];
    for (env, expected) in cases {
        let mut cmd = command(&dir.path().join("data"));
        cmd.args(["serve", "--bind", "127.0.0.1:0"]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(2), "{env:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(expected),
            "{env:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn metrics_need_the_metrics_token_when_one_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.env("SLIPWAY_METRICS_TOKEN", "metrics-token-0123456789");
    let server = Server::start(cmd);
    assert_eq!(server.api("wrong-token").metrics().await.status, 401);
    let reply = Api::new(&format!("http://{}", server.addr), None)
        .metrics()
        .await;
    assert_eq!(reply.status, 401);
    assert!(
        reply.text.contains("SLIPWAY_METRICS_TOKEN"),
        "{}",
        reply.text
    );
    let reply = server.api("metrics-token-0123456789").metrics().await;
    assert_eq!(reply.status, 200);
    assert!(reply.text.contains("# EOF"), "{}", reply.text);
}

#[test]
fn serve_refuses_to_run_pull_request_code_without_bubblewrap_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let empty_path = tempfile::tempdir().unwrap();
    let mut refused = command(dir.path());
    refused
        .env("PATH", empty_path.path())
        .args(["serve", "--bind", "127.0.0.1:0"]);
    let out = run(&mut refused);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("apt-get install bubblewrap passt"),
        "{stderr}"
    );
    assert!(stderr.contains("SLIPWAY_ALLOW_UNSANDBOXED=1"), "{stderr}");

    let mut allowed = command(dir.path());
    allowed
        .env("PATH", empty_path.path())
        .env("SLIPWAY_ALLOW_UNSANDBOXED", "1");
    let server = Server::start(allowed);
    let (status, _, err) = server.stop();
    assert!(status.success(), "{err}");
    assert!(err.contains("UNISOLATED"), "{err}");
}

/// Every row of the data directory's SQLite database, as SQL (Python's `iterdump`).
fn database_dump(dir: &std::path::Path) -> String {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys; print('\\n'.join(sqlite3.connect(sys.argv[1]).iterdump()))")
        .arg(dir.join("slipway.db"))
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump = String::from_utf8(out.stdout).unwrap();
    assert!(
        dump.contains("INSERT INTO"),
        "the database holds rows: {dump}"
    );
    dump
}
