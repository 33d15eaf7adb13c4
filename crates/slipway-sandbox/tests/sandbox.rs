//! The local sandbox driver with real processes. Isolation tests need bubblewrap
//! (`apt-get install bubblewrap`; `scripts/test.sh` installs it).

use slipway_sandbox::snapshot::{key, Manifest, Scope, SnapshotError, Snapshots};
use slipway_sandbox::{Isolation, Outcome, Quotas, Sandbox};
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod common;

use common::{processes_with, run_in_cell, Options, Ran};

async fn run_in(sandbox: &Sandbox, workspace: &Path, command: &str, timeout: Duration) -> Ran {
    let options = Options {
        timeout,
        ..Options::default()
    };
    run_in_cell(sandbox, workspace, command, options).await
}

fn bwrap() -> Sandbox {
    common::bwrap(Vec::new())
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
        let home = if sandbox.is_isolated() {
            "/workspace".to_owned()
        } else {
            ws.path().display().to_string()
        };
        assert!(
            ran.lines.contains(&format!("HOME={home}")),
            "{:?}",
            ran.lines
        );
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
        let options = Options {
            timeout: Duration::from_secs(60),
            cancel,
            ..Options::default()
        };
        let ran = run_in_cell(&sandbox, ws.path(), &command, options).await;
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
    let sandbox = Sandbox::new(Isolation::None, Vec::new());
    let quotas = Quotas {
        disk_mb: 1,
        ..Quotas::default()
    };
    let options = Options {
        quotas,
        ..Options::default()
    };
    let ran = run_in_cell(
        &sandbox,
        ws.path(),
        "head -c 3000000 /dev/zero > big",
        options,
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

/// Every file below `root` but `.git`, with its contents (a link's target for links).
fn tree(root: &Path) -> std::collections::BTreeMap<String, String> {
    let mut files = std::collections::BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            if relative == ".git" {
                continue;
            }
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_symlink() {
                files.insert(
                    relative,
                    format!("-> {}", std::fs::read_link(&path).unwrap().display()),
                );
            } else {
                files.insert(relative, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    files
}

/// A checkout of a small repository with a lockfile, a tracked file setup rewrites and one
/// it deletes.
fn checkout() -> tempfile::TempDir {
    let ws = tempfile::tempdir().unwrap();
    git(ws.path(), &["init", "-q"]);
    std::fs::write(ws.path().join("lock.json"), "v1").unwrap();
    std::fs::write(ws.path().join(".gitignore"), "deps/\n").unwrap();
    std::fs::create_dir(ws.path().join("src")).unwrap();
    std::fs::write(ws.path().join("src/schema.rs"), "old").unwrap();
    std::fs::write(ws.path().join("src/main.rs"), "fn main() {}").unwrap();
    std::fs::write(ws.path().join("obsolete.txt"), "bye").unwrap();
    git(ws.path(), &["add", "."]);
    git(ws.path(), &["commit", "-qm", "x"]);
    ws
}

/// Each tracked file's blob id, as the engine reads them before any code runs.
fn versions(ws: &Path) -> std::collections::HashMap<std::path::PathBuf, String> {
    let out = std::process::Command::new("git")
        .args(["ls-files", "-s"])
        .current_dir(ws)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (meta, path) = line.split_once('\t').unwrap();
            let blob = meta.split_whitespace().nth(1).unwrap();
            (path.into(), blob.to_owned())
        })
        .collect()
}

fn scope() -> Scope {
    Scope::branch("1:/srv/app.git", "main")
}

fn scan(ws: &Path) -> Manifest {
    Manifest::scan(ws, versions(ws)).unwrap()
}

/// What the setup of these tests does, as plain file operations.
fn cold_setup(ws: &Path) {
    std::fs::create_dir_all(ws.join("deps/pkg")).unwrap();
    std::fs::write(ws.join("deps/pkg/index.js"), "module").unwrap();
    std::fs::write(ws.join("generated.txt"), "gen").unwrap();
    std::fs::write(ws.join("src/schema.rs"), "regenerated").unwrap();
    std::fs::write(ws.join("src/new.rs"), "new").unwrap();
    std::fs::remove_file(ws.join("obsolete.txt")).unwrap();
    std::os::unix::fs::symlink("deps/pkg/index.js", ws.join("entry.js")).unwrap();
}

#[test]
fn a_restored_snapshot_equals_a_cold_setup_file_by_file() {
    let ws = checkout();
    let commands = vec!["install".to_owned()];
    let files = vec!["lock.json".to_owned()];
    let k1 = key(ws.path(), &scope(), &files, &commands);
    assert_eq!(k1, key(ws.path(), &scope(), &files, &commands));
    assert_ne!(k1, key(ws.path(), &scope(), &files, &["other".to_owned()]));

    let store = tempfile::tempdir().unwrap();
    let snapshots = Snapshots::new(store.path().to_owned(), u64::MAX);
    let layers = tempfile::tempdir().unwrap();
    assert!(snapshots
        .restore(&k1, ws.path(), layers.path(), None, &scan(ws.path()))
        .unwrap()
        .is_none());
    let before = scan(ws.path());
    cold_setup(ws.path());
    snapshots
        .save(&k1, ws.path(), &before, None, &Quotas::default())
        .unwrap();
    assert!(snapshots.contains(&k1));
    let cold = tree(ws.path());
    assert!(cold.contains_key("deps/pkg/index.js") && !cold.contains_key("obsolete.txt"));

    let fresh = checkout();
    let fresh_layers = tempfile::tempdir().unwrap();
    let restored = snapshots
        .restore(
            &k1,
            fresh.path(),
            fresh_layers.path(),
            None,
            &scan(fresh.path()),
        )
        .unwrap()
        .unwrap();
    assert_eq!(tree(fresh.path()), cold, "restored differs from cold");
    // Overlays need root in the initial user namespace (not a container's).
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0
        && std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| m.contains("4294967295"));
    assert_eq!(restored.mechanism, if root { "overlay" } else { "copy" });

    // A restored workspace is independent: changing, adding and deleting files in it
    // leave the snapshot as it was.
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    std::fs::write(fresh.path().join("deps/pkg/index.js"), "tampered").unwrap();
    std::fs::write(fresh.path().join("deps/new.js"), "added").unwrap();
    std::fs::remove_file(fresh.path().join("generated.txt")).unwrap();
    let again = checkout();
    let again_layers = tempfile::tempdir().unwrap();
    let second = snapshots
        .restore(
            &k1,
            again.path(),
            again_layers.path(),
            None,
            &scan(again.path()),
        )
        .unwrap()
        .unwrap();
    assert_eq!(tree(again.path()), cold);
    assert_eq!(read(&again.path().join("deps/pkg/index.js")), "module");
    snapshots.release(restored);
    snapshots.release(second);
    assert!(
        !root || !fresh.path().join("deps/pkg/index.js").exists(),
        "released: unmounted"
    );

    std::fs::write(ws.path().join("lock.json"), "v2").unwrap();
    assert_ne!(key(ws.path(), &scope(), &files, &commands), k1);

    // A commit with another version of a file setup rewrites gets a cold setup, never the
    // snapshot's result of the old version.
    let changed = checkout();
    std::fs::write(changed.path().join("src/schema.rs"), "new schema").unwrap();
    git(changed.path(), &["commit", "-qam", "schema"]);
    assert_eq!(
        key(changed.path(), &scope(), &files, &commands),
        k1,
        "same key"
    );
    let changed_layers = tempfile::tempdir().unwrap();
    let refused = snapshots.restore(
        &k1,
        changed.path(),
        changed_layers.path(),
        None,
        &scan(changed.path()),
    );
    assert!(
        matches!(&refused, Err(SnapshotError::Stale(path)) if path == "src/schema.rs"),
        "{refused:?}"
    );
    assert_eq!(read(&changed.path().join("src/schema.rs")), "new schema");
}

#[test]
fn a_symlinked_cache_key_file_is_hashed_as_a_link_not_followed() {
    let ws = tempfile::tempdir().unwrap();
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "one").unwrap();
    std::os::unix::fs::symlink(secret.path(), ws.path().join("lock.json")).unwrap();
    let files = vec!["lock.json".to_owned()];
    let first = key(ws.path(), &scope(), &files, &[]);
    std::fs::write(secret.path(), "two").unwrap();
    assert_eq!(
        key(ws.path(), &scope(), &files, &[]),
        first,
        "the target's contents were read"
    );
}

#[test]
fn the_least_recently_used_snapshots_are_evicted_beyond_the_cap() {
    let store = tempfile::tempdir().unwrap();
    // Each snapshot takes ~100 KB of disk (its blob, and a few blocks and inodes more).
    let snapshots = Snapshots::new(store.path().to_owned(), 250_000);
    let save = |name: &str| {
        let ws = tempfile::tempdir().unwrap();
        let before = scan(ws.path());
        std::fs::write(ws.path().join("blob"), vec![b'x'; 100_000]).unwrap();
        snapshots
            .save(name, ws.path(), &before, None, &Quotas::default())
            .unwrap();
        std::thread::sleep(Duration::from_millis(30));
    };
    save("a");
    save("b");
    let (scratch, layers) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let restored = snapshots
        .restore(
            "a",
            scratch.path(),
            layers.path(),
            None,
            &scan(scratch.path()),
        )
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
        let before = scan(ws.path());
        std::fs::create_dir(ws.path().join("deps")).unwrap();
        std::fs::write(ws.path().join("deps/blob"), vec![b'x'; 1_000]).unwrap();
        snapshots
            .save(name, ws.path(), &before, None, &Quotas::default())
            .unwrap();
        std::thread::sleep(Duration::from_millis(30));
    };
    save("old");
    let (ws, layers) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let restored = snapshots
        .restore("old", ws.path(), layers.path(), None, &scan(ws.path()))
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

#[tokio::test]
async fn a_command_the_sandbox_cannot_start_is_unstarted_not_failed() {
    let ws = tempfile::tempdir().unwrap();
    let options = Options {
        cwd: Some("no-such-directory".into()),
        ..Options::default()
    };
    let ran = run_in_cell(&bwrap(), ws.path(), "true", options).await;
    assert_eq!(ran.outcome, Outcome::Unstarted, "{:?}", ran.lines);
    assert!(
        ran.lines.iter().any(|l| l.starts_with("bwrap:")),
        "{:?}",
        ran.lines
    );
    // The command's own failures stay its own.
    let ran = run_in(&bwrap(), ws.path(), "exit 1", Duration::from_secs(10)).await;
    assert_eq!(ran.outcome, Outcome::Exited(1));
}

/// Whatever descriptor numbers the cell's own files get, a command starts in it: handing the
/// workspace to bubblewrap at a fixed number (10 to 12) must not overwrite one still needed.
/// With 10 to 12 free and 0 to 15 placeholders open, the cell's files take each number in turn.
#[test]
fn commands_start_whatever_descriptor_numbers_the_cell_gets() {
    for fd in 10..=12 {
        // SAFETY: moves an inherited descriptor (none of this test's) out of the way.
        unsafe {
            if libc::fcntl(fd, libc::F_GETFD) != -1 {
                assert!(libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 200) >= 200);
                libc::close(fd);
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let sandbox = bwrap();
        for held in 0..16 {
            let placeholders: Vec<std::fs::File> = (0..held)
                .map(|_| std::fs::File::open("/dev/null").unwrap())
                .collect();
            let ws = tempfile::tempdir().unwrap();
            let ran = run_in(&sandbox, ws.path(), "echo started", Duration::from_secs(10)).await;
            assert_eq!(ran.outcome, Outcome::Exited(0), "{held}: {:?}", ran.lines);
            assert_eq!(ran.lines, ["started"], "{held}");
            drop(placeholders);
        }
    });
}
