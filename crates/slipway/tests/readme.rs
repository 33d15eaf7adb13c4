//! The README's quick start, run as written: its shell block is taken from README.md, the
//! server started with `./scripts/serve.sh` on its embedded defaults (the relative data
//! directory `./.slipway`, port 8080), in a temporary HOME, with the sandbox as installed.
//! Three deviations: `D` names a fresh directory (so a demo of the reader's own is
//! untouched), `SLIPWAY_BIN` hands `serve.sh` the binary under test instead of building a
//! release one, and the `sleep 10` before reading the run waits until the run has succeeded (up
//! to two minutes: a test machine runs other tests at the same time).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MARKER: &str = "# in another terminal, from this repository:";

struct QuickStart {
    /// The lines before the server is started, and after: the reader's terminal.
    setup: String,
    /// The line that starts the server, "in another terminal".
    serve: String,
    client: String,
}

/// The quick start's shell block, split where the README starts the server.
fn quick_start(readme: &str, demo_dir: &Path) -> QuickStart {
    let section = &readme[readme
        .find("## Quick start")
        .expect("a quick start section")..];
    let start = section.find("```sh\n").expect("a shell block") + 6;
    let block = &section[start..start + section[start..].find("```").unwrap()];
    let assignment = "D=/var/tmp/slipway-demo";
    assert!(
        block.contains(assignment),
        "the block sets D as this test expects"
    );
    let block = block.replacen(assignment, &format!("D={}", demo_dir.display()), 1);
    let wait = "sleep 10;";
    assert!(block.contains(wait), "the block waits as this test expects");
    let until_ended = "for _ in $(seq 240); do curl -s -H \"$AUTH\" $API/runs/1 | grep -q '\"status\":\"succeeded\"' && break; sleep 0.5; done;";
    let block = block.replacen(wait, until_ended, 1);
    let (setup, rest) = block.split_once(MARKER).expect("the server step");
    let rest = rest.trim_start();
    let (serve, client) = rest.split_once('\n').unwrap();
    QuickStart {
        setup: setup.to_owned(),
        serve: serve.to_owned(),
        client: client.to_owned(),
    }
}

fn bash(script: &str, cwd: &Path, home: &Path) -> std::process::Output {
    Command::new("bash")
        .args(["-c", script])
        .current_dir(cwd)
        .env("HOME", home)
        .env_remove("SLIPWAY_DATA_DIR")
        .output()
        .expect("bash runs")
}

fn copy_scripts(repo: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("scripts")).unwrap();
    for entry in std::fs::read_dir(repo.join("scripts")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join("scripts").join(entry.file_name())).unwrap();
    }
}

#[test]
fn the_readme_quick_start_works_as_written() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    // Under /var/tmp, as the README asks: sandboxed code cannot enter a private /tmp dir.
    let demo = tempfile::Builder::new()
        .prefix("slipway-readme-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let demo_dir = demo.path().join("demo");
    let home = tempfile::tempdir().unwrap();
    // "From this repository": a copy of its scripts, so that ./.slipway is a fresh one.
    let checkout = tempfile::tempdir().unwrap();
    copy_scripts(&repo, checkout.path());
    let steps = quick_start(&readme, &demo_dir);

    let mut server = Command::new("bash")
        .args(["-c", &steps.serve])
        .current_dir(checkout.path())
        .env("HOME", home.path())
        .env("SLIPWAY_BIN", env!("CARGO_BIN_EXE_slipway"))
        .env_remove("SLIPWAY_DATA_DIR")
        .env_remove("SLIPWAY_BIND")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect("127.0.0.1:8080").is_err() {
        if let Ok(Some(status)) = server.try_wait() {
            let mut err = String::new();
            std::io::Read::read_to_string(server.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("serve.sh ended ({status}): {err}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no server on 8080"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The reader's own terminal: one shell for the lines before and after the server's.
    let client = bash(
        &format!("{}\n{}", steps.setup, steps.client),
        home.path(),
        home.path(),
    );
    let out = String::from_utf8_lossy(&client.stdout).into_owned();
    // SIGTERM: a graceful stop.
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
    assert!(
        checkout.path().join(".slipway/slipway.db").exists(),
        "the data directory is ./.slipway"
    );
    assert!(
        client.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&client.stderr)
    );
    // What the README's comments promise.
    assert!(out.contains("\"status\":\"succeeded\""), "{out}");
    assert!(out.contains("\"fix_attempts\":1"), "{out}");
    assert!(out.trim_end().ends_with("hello, world"), "{out}");
}
