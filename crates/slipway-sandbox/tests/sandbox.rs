//! The local sandbox driver with real processes. Isolation tests need bubblewrap
//! (`apt-get install bubblewrap`; `scripts/test.sh` installs it).

use slipway_sandbox::snapshot::{key, Snapshots};
use slipway_sandbox::{CommandSpec, Isolation, Outcome, Sandbox};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

struct Ran {
    outcome: Outcome,
    lines: Vec<String>,
    elapsed: Duration,
}

async fn run_in(sandbox: &Sandbox, workspace: &Path, command: &str, timeout: Duration) -> Ran {
    run_with(
        sandbox,
        workspace,
        command,
        timeout,
        &CancellationToken::new(),
    )
    .await
}

async fn run_with(
    sandbox: &Sandbox,
    workspace: &Path,
    command: &str,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Ran {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let env = vec![("PORT".to_owned(), "4000".to_owned())];
    let started = Instant::now();
    let process = sandbox
        .spawn(
            &CommandSpec {
                command,
                workspace,
                cwd: workspace,
                env: &env,
            },
            tx,
        )
        .unwrap();
    let outcome = process.wait(timeout, cancel).await;
    let elapsed = started.elapsed();
    let mut lines = Vec::new();
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
        lines.push(line);
    }
    Ran {
        outcome,
        lines,
        elapsed,
    }
}

fn bwrap() -> Sandbox {
    let isolation = Isolation::detect();
    assert!(
        matches!(isolation, Isolation::Bubblewrap(_)),
        "bubblewrap is required for isolation tests: apt-get install bubblewrap"
    );
    Sandbox::new(isolation, Vec::new())
}

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(marker) {
                found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

fn sandboxes() -> Vec<Sandbox> {
    vec![Sandbox::new(Isolation::None, Vec::new()), bwrap()]
}

#[tokio::test]
async fn output_and_exit_codes_are_reported() {
    for sandbox in sandboxes() {
        let ws = tempfile::tempdir().unwrap();
        let ran = run_in(
            &sandbox,
            ws.path(),
            "echo out; echo err >&2; exit 3",
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(ran.outcome, Outcome::Exited(3));
        assert!(ran.lines.contains(&"out".to_owned()) && ran.lines.contains(&"err".to_owned()));
    }
}

#[tokio::test]
async fn the_environment_is_cleared_to_the_allowlist() {
    std::env::set_var("SLIPWAY_TEST_SHOULD_NOT_LEAK", "leaked");
    for sandbox in sandboxes() {
        let ws = tempfile::tempdir().unwrap();
        let ran = run_in(&sandbox, ws.path(), "env | sort", Duration::from_secs(10)).await;
        let names: Vec<&str> = ran
            .lines
            .iter()
            .filter_map(|l| l.split('=').next())
            .collect();
        assert!(
            !names.contains(&"SLIPWAY_TEST_SHOULD_NOT_LEAK"),
            "{names:?}"
        );
        for expected in ["PATH", "HOME", "LANG", "CI", "PORT"] {
            assert!(names.contains(&expected), "{expected} missing: {names:?}");
        }
        assert!(ran.lines.contains(&format!("HOME={}", ws.path().display())));
    }
}

#[tokio::test]
async fn a_timeout_kills_the_whole_tree_within_two_seconds() {
    for (i, sandbox) in sandboxes().into_iter().enumerate() {
        let ws = tempfile::tempdir().unwrap();
        let marker = format!("1{i}31.77");
        let command = format!("sleep {marker} & sh -c 'sleep {marker}' & sleep {marker}");
        let ran = run_in(&sandbox, ws.path(), &command, Duration::from_millis(300)).await;
        assert_eq!(ran.outcome, Outcome::TimedOut);
        assert!(
            ran.elapsed < Duration::from_millis(2_300),
            "{:?}",
            ran.elapsed
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(processes_with(&marker), Vec::<String>::new());
    }
}

#[tokio::test]
async fn cancel_kills_the_whole_tree() {
    for (i, sandbox) in sandboxes().into_iter().enumerate() {
        let ws = tempfile::tempdir().unwrap();
        let marker = format!("2{i}42.5");
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            trigger.cancel();
        });
        let command = format!("sleep {marker} & sleep {marker}");
        let ran = run_with(
            &sandbox,
            ws.path(),
            &command,
            Duration::from_secs(60),
            &cancel,
        )
        .await;
        assert_eq!(ran.outcome, Outcome::Cancelled);
        assert!(ran.elapsed < Duration::from_secs(2), "{:?}", ran.elapsed);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(processes_with(&marker), Vec::<String>::new());
    }
}

#[tokio::test]
async fn a_background_process_does_not_outlive_a_successful_command() {
    for (i, sandbox) in sandboxes().into_iter().enumerate() {
        let ws = tempfile::tempdir().unwrap();
        let marker = format!("3{i}53.25");
        let ran = run_in(
            &sandbox,
            ws.path(),
            &format!("(sleep {marker} &) ; nohup sleep {marker} >/dev/null 2>&1 & echo started"),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(ran.outcome, Outcome::Exited(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(processes_with(&marker), Vec::<String>::new());
    }
}

#[tokio::test]
async fn inside_bubblewrap_even_a_new_session_dies_with_the_command() {
    let ws = tempfile::tempdir().unwrap();
    let ran = run_in(
        &bwrap(),
        ws.path(),
        "setsid sleep 4567.25 >/dev/null 2>&1 < /dev/null & echo escaped",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(ran.outcome, Outcome::Exited(0));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(processes_with("4567.25"), Vec::<String>::new());
}

#[tokio::test]
async fn inside_bubblewrap_the_data_directory_is_invisible_and_only_the_workspace_writable() {
    let data = tempfile::tempdir().unwrap();
    let key_file = data.path().join("master.key");
    std::fs::write(&key_file, "TOP-SECRET-KEY-MATERIAL").unwrap();
    let outside = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::new(bwrap().isolation, vec![data.path().to_owned()]);

    let read = run_in(
        &sandbox,
        ws.path(),
        &format!("cat {}", key_file.display()),
        Duration::from_secs(10),
    )
    .await;
    assert_ne!(read.outcome, Outcome::Exited(0));
    assert!(!read.lines.iter().any(|l| l.contains("TOP-SECRET")));

    let listed = run_in(
        &sandbox,
        ws.path(),
        &format!("ls -a {}", data.path().display()),
        Duration::from_secs(10),
    )
    .await;
    assert!(
        !listed.lines.iter().any(|l| l.contains("master.key")),
        "{:?}",
        listed.lines
    );

    let target = outside.path().join("pwned");
    let write = run_in(
        &sandbox,
        ws.path(),
        &format!("echo x > {}", target.display()),
        Duration::from_secs(10),
    )
    .await;
    assert_ne!(write.outcome, Outcome::Exited(0));
    assert!(!target.exists());
    let etc = run_in(
        &sandbox,
        ws.path(),
        "echo x > /etc/slipway-pwned",
        Duration::from_secs(10),
    )
    .await;
    assert_ne!(etc.outcome, Outcome::Exited(0));
    assert!(!Path::new("/etc/slipway-pwned").exists());

    let inside = run_in(
        &sandbox,
        ws.path(),
        "echo ok > built.txt",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(inside.outcome, Outcome::Exited(0));
    assert_eq!(
        std::fs::read_to_string(ws.path().join("built.txt")).unwrap(),
        "ok\n"
    );
}

#[tokio::test]
async fn a_file_larger_than_the_limit_cannot_be_written() {
    let ws = tempfile::tempdir().unwrap();
    let mut sandbox = Sandbox::new(Isolation::None, Vec::new());
    sandbox.limits.max_file_size_bytes = 1024 * 1024;
    let ran = run_in(
        &sandbox,
        ws.path(),
        "head -c 3000000 /dev/zero > big",
        Duration::from_secs(10),
    )
    .await;
    assert_ne!(ran.outcome, Outcome::Exited(0));
    assert!(std::fs::metadata(ws.path().join("big")).unwrap().len() <= 1024 * 1024);
}

fn git(dir: &Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn snapshots_restore_what_setup_left_untracked_and_keys_follow_the_lockfile() {
    let ws = tempfile::tempdir().unwrap();
    git(ws.path(), &["init", "-q"]);
    std::fs::write(ws.path().join("lock.json"), "v1").unwrap();
    std::fs::write(ws.path().join(".gitignore"), "deps/\n").unwrap();
    git(ws.path(), &["add", "."]);
    git(ws.path(), &["commit", "-qm", "x"]);
    std::fs::create_dir_all(ws.path().join("deps/pkg")).unwrap();
    std::fs::write(ws.path().join("deps/pkg/index.js"), "module").unwrap();
    std::fs::write(ws.path().join("generated.txt"), "gen").unwrap();

    let commands = vec!["install".to_owned()];
    let files = vec!["lock.json".to_owned()];
    let k1 = key(ws.path(), &files, &commands);
    assert_eq!(k1, key(ws.path(), &files, &commands));
    assert_ne!(k1, key(ws.path(), &files, &["other".to_owned()]));

    let store = tempfile::tempdir().unwrap();
    let snapshots = Snapshots::new(store.path().to_owned(), u64::MAX);
    let layers = tempfile::tempdir().unwrap();
    assert!(snapshots
        .restore(&k1, ws.path(), layers.path())
        .unwrap()
        .is_none());
    snapshots.save(&k1, ws.path()).unwrap();
    assert!(snapshots.contains(&k1));

    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let fresh_layers = tempfile::tempdir().unwrap();
    let restored = snapshots
        .restore(&k1, fresh.path(), fresh_layers.path())
        .unwrap()
        .unwrap();
    assert_eq!(read(&fresh.path().join("deps/pkg/index.js")), "module");
    assert_eq!(read(&fresh.path().join("generated.txt")), "gen");
    assert!(
        !fresh.path().join("lock.json").exists(),
        "tracked files are not in the snapshot"
    );
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert_eq!(restored.mechanism, if root { "overlay" } else { "copy" });

    // A restored workspace is independent: changing, adding and deleting files in it
    // leave the snapshot as it was.
    std::fs::write(fresh.path().join("deps/pkg/index.js"), "tampered").unwrap();
    std::fs::write(fresh.path().join("deps/new.js"), "added").unwrap();
    std::fs::remove_file(fresh.path().join("generated.txt")).unwrap();
    let again = tempfile::tempdir().unwrap();
    let again_layers = tempfile::tempdir().unwrap();
    let second = snapshots
        .restore(&k1, again.path(), again_layers.path())
        .unwrap()
        .unwrap();
    assert_eq!(read(&again.path().join("deps/pkg/index.js")), "module");
    assert!(!again.path().join("deps/new.js").exists());
    assert_eq!(read(&again.path().join("generated.txt")), "gen");
    snapshots.release(restored);
    snapshots.release(second);
    assert!(
        !fresh.path().join("deps/pkg/index.js").exists(),
        "released: unmounted"
    );

    std::fs::write(ws.path().join("lock.json"), "v2").unwrap();
    assert_ne!(key(ws.path(), &files, &commands), k1);
}

#[test]
fn the_least_recently_used_snapshots_are_evicted_beyond_the_cap() {
    let store = tempfile::tempdir().unwrap();
    let snapshots = Snapshots::new(store.path().to_owned(), 2_500);
    let save = |name: &str| {
        let ws = tempfile::tempdir().unwrap();
        git(ws.path(), &["init", "-q"]);
        std::fs::write(ws.path().join("blob"), vec![b'x'; 1_000]).unwrap();
        snapshots.save(name, ws.path()).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    };
    save("a");
    save("b");
    let (scratch, layers) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let restored = snapshots
        .restore("a", scratch.path(), layers.path())
        .unwrap()
        .unwrap();
    snapshots.release(restored);
    std::thread::sleep(Duration::from_millis(30));
    save("c");
    assert!(snapshots.contains("a"), "recently used, kept");
    assert!(!snapshots.contains("b"), "least recently used, evicted");
    assert!(snapshots.contains("c"), "just saved, kept");
}

#[test]
fn a_mounted_snapshot_is_not_evicted_while_in_use() {
    let store = tempfile::tempdir().unwrap();
    let snapshots = Snapshots::new(store.path().to_owned(), 1_500);
    let save = |name: &str| {
        let ws = tempfile::tempdir().unwrap();
        git(ws.path(), &["init", "-q"]);
        std::fs::create_dir(ws.path().join("deps")).unwrap();
        std::fs::write(ws.path().join("deps/blob"), vec![b'x'; 1_000]).unwrap();
        snapshots.save(name, ws.path()).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    };
    save("old");
    let (ws, layers) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let restored = snapshots
        .restore("old", ws.path(), layers.path())
        .unwrap()
        .unwrap();
    std::thread::sleep(Duration::from_millis(30));
    save("new");
    if restored.mechanism == "overlay" {
        assert!(snapshots.contains("old"), "in use: kept despite the cap");
    }
    assert_eq!(
        std::fs::read(ws.path().join("deps/blob")).unwrap().len(),
        1_000
    );
    snapshots.release(restored);
    save("newer");
    assert!(!snapshots.contains("old"), "released: evicted");
}
