//! `slipway serve` pulling from the webhook relay (`relay/` on the real Workers runtime) as
//! a process: stopped while GitHub keeps delivering, then started again; and its refusals
//! of a relay configuration that cannot work.

use serde_json::{json, Value};
use slipway_testkit::relay::{LocalRelay, RELAY_TOKEN};
use slipway_testkit::{webhook_fixture, WEBHOOK_SECRET};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_slipway");

fn command(data_dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SLIPWAY_DATA_DIR", data_dir)
        .env("SLIPWAY_ADMIN_TOKEN", "env-admin-token-abcdefghij")
        .env("GITHUB_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .stdin(Stdio::null());
    command
}

/// `slipway serve` pulling from `relay`; its base URL once it listens.
fn serve(data_dir: &Path, relay: &LocalRelay) -> (Child, String) {
    let mut child = command(data_dir)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("SLIPWAY_RELAY_URL", &relay.base_url)
        .env("SLIPWAY_RELAY_TOKEN", RELAY_TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("slipway starts");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    for line in stdout.lines().map_while(Result::ok) {
        if let Some(addr) = line.strip_prefix("Slipway listening on ") {
            return (child, addr.to_owned());
        }
    }
    panic!("slipway exited before listening: {:?}", child.wait());
}

/// SIGTERM, and the exit.
fn stop(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success(), "slipway stops cleanly");
}

/// `/ready`'s relay section once Slipway has stored `count` relayed deliveries.
async fn relayed(base_url: &str, count: u64) -> Value {
    for _ in 0..2_400 {
        let ready: Value = reqwest::get(format!("{base_url}/ready"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let stored = ready["relay"]["stored"].as_u64().unwrap_or(0);
        assert!(stored <= count, "{ready}");
        if stored == count {
            return ready["relay"].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("slipway never stored {count} relayed deliveries");
}

fn comment(n: usize) -> Vec<u8> {
    let mut payload = webhook_fixture("issue_comment/created.payload.json");
    payload["repository"]["full_name"] = json!("acme/elsewhere");
    payload["comment"]["body"] = json!(format!("comment {n}"));
    serde_json::to_vec(&payload).unwrap()
}

#[tokio::test]
async fn deliveries_made_while_slipway_is_stopped_arrive_once_each_when_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let relay = LocalRelay::start(dir.path()).await;
    let (slipway, base_url) = serve(&data_dir, &relay);
    assert_eq!(
        relay
            .deliver("issue_comment", "before-stop", &comment(0))
            .await,
        202
    );
    relayed(&base_url, 1).await;
    relay.drained().await;
    stop(slipway);

    let ids: Vec<String> = (1..=50).map(|n| format!("while-stopped-{n}")).collect();
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(
            relay.deliver("issue_comment", id, &comment(n + 1)).await,
            202
        );
    }
    assert_eq!(relay.status().await["backlog"], 50);

    let (slipway, base_url) = serve(&data_dir, &relay);
    let shown = relayed(&base_url, 50).await;
    assert_eq!(shown["duplicates"], 0, "{shown}");
    relay.drained().await;
    stop(slipway);

    let key = slipway_store::MasterKey::load_or_create(&data_dir.join("master.key")).unwrap();
    let url = format!("sqlite://{}", data_dir.join("slipway.db").display());
    let store = slipway_store::Store::open(&url, &key).await.unwrap();
    assert_eq!(store.count_deliveries().await.unwrap(), 51);
    for id in ids.iter().chain(std::iter::once(&"before-stop".to_owned())) {
        let stored = store.delivery(id).await.expect("stored");
        assert_eq!(stored.event, "issue_comment");
    }
}

#[test]
fn a_relay_configuration_that_cannot_work_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case; 3] = [
        (
            &[("SLIPWAY_RELAY_URL", "https://relay.example")],
            &["set both SLIPWAY_RELAY_URL and SLIPWAY_RELAY_TOKEN"],
        ),
        (
            &[
                ("SLIPWAY_RELAY_URL", "relay.example"),
                ("SLIPWAY_RELAY_TOKEN", "t0ken"),
            ],
            &[
                "invalid value 'relay.example' for SLIPWAY_RELAY_URL",
                "workers.dev",
            ],
        ),
        (
            &[
                ("SLIPWAY_RELAY_URL", "https://relay.example"),
                ("SLIPWAY_RELAY_TOKEN", "a b"),
            ],
            &["SLIPWAY_RELAY_TOKEN", "spaces"],
        ),
    ];
    for (env, expected) in cases {
        let mut cmd = command(&dir.path().join("data"));
        cmd.args(["serve", "--bind", "127.0.0.1:0"])
            .envs(env.iter().copied());
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {stderr}");
        for needle in expected {
            assert!(stderr.contains(needle), "{needle} not in: {stderr}");
        }
        assert!(
            !stderr.contains("t0ken"),
            "the token is never printed: {stderr}"
        );
    }
}
