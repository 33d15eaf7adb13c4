//! What Slipway does with a tree that a pull request shaped (tracked links, a workspace after
//! its code ran): snapshot restore and save, cache keys, removal, the disk quota. Each case is
//! an attack that got through once; each must fail when its defence is removed.

mod common;

use common::{bwrap, open_cell, run_command, run_in_cell, Options};
use slipway_sandbox::snapshot::{key, Manifest, Scope, Snapshots};
use slipway_sandbox::Quotas;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn main_scope() -> Scope {
    Scope::branch("1:/srv/app.git", "main")
}

fn no_versions() -> HashMap<PathBuf, String> {
    HashMap::new()
}

/// A snapshot of `main` whose setup made `conf/settings`.
fn snapshot_with_conf(store: &Path) -> (Snapshots, String) {
    let snapshots = Snapshots::new(store.to_owned(), u64::MAX);
    let ws = tempfile::tempdir().unwrap();
    let before = Manifest::scan(ws.path(), no_versions()).unwrap();
    std::fs::create_dir(ws.path().join("conf")).unwrap();
    std::fs::write(
        ws.path().join("conf/settings"),
        "written by the pull request",
    )
    .unwrap();
    let key = key(ws.path(), &main_scope(), &[], &["make conf".to_owned()]);
    snapshots
        .save(&key, ws.path(), &before, None, &Quotas::default())
        .unwrap();
    (snapshots, key)
}

#[test]
fn restoring_a_snapshot_never_writes_through_a_link_the_checkout_tracks() {
    let store = tempfile::tempdir().unwrap();
    let (snapshots, key) = snapshot_with_conf(store.path());
    // The host directory the branch's link points at, with a file of its own.
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("settings"), "the host's own").unwrap();
    let ws = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(host.path(), ws.path().join("conf")).unwrap();
    // A link deeper down, in a directory the snapshot merges into.
    std::fs::create_dir(ws.path().join("lib")).unwrap();
    let layers = tempfile::tempdir().unwrap();
    let checkout = Manifest::scan(ws.path(), no_versions()).unwrap();
    let restored = snapshots
        .restore(&key, ws.path(), layers.path(), None, &checkout)
        .unwrap()
        .expect("the snapshot exists");
    assert_eq!(
        std::fs::read_to_string(host.path().join("settings")).unwrap(),
        "the host's own",
        "the snapshot was written through the link"
    );
    let conf = std::fs::symlink_metadata(ws.path().join("conf")).unwrap();
    assert!(
        conf.is_dir(),
        "the link is replaced by the snapshot's directory"
    );
    assert_eq!(
        std::fs::read_to_string(ws.path().join("conf/settings")).unwrap(),
        "written by the pull request"
    );
    snapshots.release(restored);
}

#[test]
fn a_deleted_file_is_never_removed_through_a_link() {
    let store = tempfile::tempdir().unwrap();
    let snapshots = Snapshots::new(store.path().to_owned(), u64::MAX);
    let ws = tempfile::tempdir().unwrap();
    std::fs::create_dir(ws.path().join("conf")).unwrap();
    std::fs::write(ws.path().join("conf/old"), "tracked").unwrap();
    let before = Manifest::scan(ws.path(), no_versions()).unwrap();
    std::fs::remove_file(ws.path().join("conf/old")).unwrap();
    let key = key(ws.path(), &main_scope(), &[], &["clean".to_owned()]);
    snapshots
        .save(&key, ws.path(), &before, None, &Quotas::default())
        .unwrap();
    // The snapshot says "conf/old was deleted"; this checkout's conf is a link.
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("old"), "the host's own").unwrap();
    let next = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(host.path(), next.path().join("conf")).unwrap();
    let layers = tempfile::tempdir().unwrap();
    let checkout = Manifest::scan(next.path(), no_versions()).unwrap();
    // Untracked versions make it stale or not; either way the host file stays.
    let _ = snapshots.restore(&key, next.path(), layers.path(), None, &checkout);
    assert!(
        host.path().join("old").exists(),
        "a file was removed through the link"
    );
}

#[test]
fn snapshots_are_keyed_by_project_and_branch_or_pull_request() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("lock.json"), "v1").unwrap();
    let files = ["lock.json".to_owned()];
    let commands = ["npm ci".to_owned()];
    let keys = [
        main_scope(),
        Scope::branch("1:/srv/app.git", "feature"),
        Scope::branch("2:/srv/other.git", "main"),
        Scope::pull_request("1:/srv/app.git", 7),
        Scope::pull_request("1:/srv/app.git", 8),
    ]
    .map(|scope| key(ws.path(), &scope, &files, &commands));
    let distinct: std::collections::HashSet<_> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "{keys:?}");
}

#[test]
fn cache_key_files_are_read_below_the_workspace_only_and_never_block() {
    let ws = tempfile::tempdir().unwrap();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("master.key"), "one").unwrap();
    std::os::unix::fs::symlink(host.path(), ws.path().join("hostdir")).unwrap();
    std::os::unix::fs::symlink("/dev", ws.path().join("dev")).unwrap();
    let fifo =
        std::ffi::CString::new(ws.path().join("fifo").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let files = ["hostdir/master.key", "dev/zero", "dev/urandom", "fifo"].map(String::from);
    let started = Instant::now();
    let first = key(ws.path(), &main_scope(), &files, &[]);
    std::fs::write(host.path().join("master.key"), "two").unwrap();
    let second = key(ws.path(), &main_scope(), &files, &[]);
    assert_eq!(first, second, "a host file's contents reached the key");
    // Not a timing assertion: a FIFO or /dev/zero read would never end at all.
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_huge_cache_key_file_is_not_read_whole() {
    let ws = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(ws.path().join("lock.json")).unwrap();
    file.set_len(100 * 1024 * 1024 * 1024).unwrap(); // sparse: 100 GiB that take no disk
    let files = ["lock.json".to_owned()];
    let with_huge = key(ws.path(), &main_scope(), &files, &[]);
    std::fs::remove_file(ws.path().join("lock.json")).unwrap();
    assert_eq!(
        with_huge,
        key(ws.path(), &main_scope(), &files, &[]),
        "a file past the limit keys as unreadable"
    );
}

/// A directory `levels` deep made by the code in a cell, as a PR's test step would.
async fn deep_tree_from_a_cell(ws: &Path, levels: u32) -> common::Ran {
    let sandbox = bwrap(Vec::new());
    let command = format!(
        "python3 -c \"import os\nfor _ in range({levels}):\n    os.mkdir('d'); os.chdir('d')\nopen('f','w').write('x')\""
    );
    run_in_cell(
        &sandbox,
        ws,
        &command,
        Options {
            timeout: Duration::from_secs(120),
            ..Options::default()
        },
    )
    .await
}

#[tokio::test]
async fn a_tree_sixteen_thousand_levels_deep_is_removed_without_a_crash() {
    let root = tempfile::tempdir().unwrap();
    let ws = root.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    let ran = deep_tree_from_a_cell(&ws, 16_000).await;
    assert_eq!(
        ran.outcome,
        slipway_sandbox::Outcome::Exited(0),
        "{:?}",
        ran.lines
    );
    slipway_sandbox::remove_tree_async(ws.clone())
        .await
        .unwrap();
    assert!(!ws.exists());
}

#[tokio::test]
async fn the_disk_quota_sees_below_paths_longer_than_path_max() {
    let ws = tempfile::tempdir().unwrap();
    let sandbox = bwrap(Vec::new());
    // 300 levels of 30 characters: 9,300 bytes of path, past PATH_MAX (4,096); 48 MiB in
    // files each under the largest-file limit.
    let command =
        "python3 -c \"import os\nfor _ in range(300):\n    os.mkdir('d'*30); os.chdir('d'*30)\n\
                   for i in range(4): open('big%d' % i,'wb').write(b'x'*(12<<20))\" && sleep 20";
    let ran = run_in_cell(
        &sandbox,
        ws.path(),
        command,
        Options {
            timeout: Duration::from_secs(30),
            quotas: Quotas {
                disk_mb: 16,
                ..Quotas::default()
            },
            ..Options::default()
        },
    )
    .await;
    let exceeded = ran.exceeded.unwrap_or_default();
    assert!(
        exceeded.contains("disk"),
        "not caught: {:?} {:?}",
        ran.outcome,
        ran.lines
    );
    assert_ne!(ran.outcome, slipway_sandbox::Outcome::Exited(0));
}

#[tokio::test]
async fn output_without_newlines_arrives_in_bounded_lines() {
    let ws = tempfile::tempdir().unwrap();
    let sandbox = bwrap(Vec::new());
    // 20 MB without one newline.
    let ran = run_in_cell(
        &sandbox,
        ws.path(),
        "head -c 20000000 /dev/zero | tr '\\0' x; echo; echo done",
        Options {
            timeout: Duration::from_secs(60),
            ..Options::default()
        },
    )
    .await;
    assert_eq!(ran.outcome, slipway_sandbox::Outcome::Exited(0));
    let longest = ran.lines.iter().map(String::len).max().unwrap_or(0);
    assert!(
        longest <= slipway_sandbox::MAX_LINE_BYTES + 64,
        "a line of {longest} bytes"
    );
    assert_eq!(ran.lines.len(), 2, "one cut line, then done");
    assert!(ran.lines[0].ends_with("[line cut at 64 KiB]"));
    assert_eq!(ran.lines[1], "done");
}

/// A workspace whose setup left `make` behind, saved under quotas of 16 MiB and 1,000 files.
fn save_under_small_quotas(make: impl FnOnce(&Path)) -> (Result<(), String>, u64) {
    let store = tempfile::tempdir().unwrap();
    let snapshots = Snapshots::new(store.path().to_owned(), u64::MAX);
    let ws = tempfile::tempdir().unwrap();
    let before = Manifest::scan(ws.path(), no_versions()).unwrap();
    make(ws.path());
    let quotas = Quotas {
        disk_mb: 16,
        max_files: 1_000,
        ..Quotas::default()
    };
    let key = key(ws.path(), &main_scope(), &[], &["setup".to_owned()]);
    let saved = snapshots
        .save(&key, ws.path(), &before, None, &quotas)
        .map_err(|e| e.to_string());
    let written = common::disk_use(store.path());
    (saved, written)
}

#[test]
fn a_snapshot_is_never_larger_than_the_quotas_let_the_workspace_be() {
    // Sparse files: 4 KiB of disk in the workspace, 400 MiB once copied.
    let (saved, written) = save_under_small_quotas(|ws| {
        std::fs::create_dir(ws.join("cache")).unwrap();
        for i in 0..4 {
            let file = std::fs::File::create(ws.join(format!("cache/sparse{i}"))).unwrap();
            file.set_len(100 << 20).unwrap();
        }
    });
    assert!(saved.is_err(), "sparse files were saved whole");
    assert!(written < 1 << 20, "{written} bytes written to the store");
    // Hard links: 4 MiB in the workspace, 44 MiB once each link is copied.
    let (saved, written) = save_under_small_quotas(|ws| {
        std::fs::create_dir(ws.join("cache")).unwrap();
        std::fs::write(ws.join("cache/big"), vec![7u8; 4 << 20]).unwrap();
        for i in 0..10 {
            std::fs::hard_link(ws.join("cache/big"), ws.join(format!("cache/l{i}"))).unwrap();
        }
    });
    assert!(
        saved.is_err(),
        "hard links were saved as copies past the quota"
    );
    assert!(written < 20 << 20, "{written} bytes written to the store");
    // Many empty files: no disk to speak of, an inode each.
    let (saved, _) = save_under_small_quotas(|ws| {
        std::fs::create_dir(ws.join("cache")).unwrap();
        for i in 0..2_000 {
            std::fs::File::create(ws.join(format!("cache/{i}"))).unwrap();
        }
    });
    assert!(
        saved.is_err(),
        "2,000 files were saved under max_files = 1000"
    );
    // What fits is saved.
    let (saved, _) = save_under_small_quotas(|ws| {
        std::fs::create_dir(ws.join("cache")).unwrap();
        std::fs::write(ws.join("cache/small"), "fits").unwrap();
    });
    assert_eq!(saved, Ok(()));
}

#[tokio::test]
async fn files_past_max_files_end_the_step() {
    let ws = tempfile::tempdir().unwrap();
    let ran = run_in_cell(
        &bwrap(Vec::new()),
        ws.path(),
        "mkdir many && cd many && seq 1 3000 | xargs touch && sleep 20",
        Options {
            timeout: Duration::from_secs(30),
            quotas: Quotas {
                max_files: 1_000,
                ..Quotas::default()
            },
            ..Options::default()
        },
    )
    .await;
    let exceeded = ran.exceeded.unwrap_or_default();
    assert!(
        exceeded.contains("max_files"),
        "not caught: {:?} {:?}",
        ran.outcome,
        ran.lines
    );
}

#[tokio::test]
async fn a_descriptor_slipway_inherited_never_reaches_the_code() {
    // A host file open in Slipway without close-on-exec, as a shell or a service manager
    // may leave one.
    let host = tempfile::tempdir().unwrap();
    let path = std::ffi::CString::new(host.path().join("host.txt").as_os_str().as_encoded_bytes())
        .unwrap();
    // SAFETY: a valid path; the descriptor is closed below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644) };
    assert!(fd > 2);
    let ws = tempfile::tempdir().unwrap();
    let ran = run_in_cell(
        &bwrap(Vec::new()),
        ws.path(),
        &format!("ls /proc/self/fd; echo written-by-the-code >&{fd} && echo reached"),
        Options::default(),
    )
    .await;
    // SAFETY: our own descriptor.
    unsafe { libc::close(fd) };
    let said = ran.lines.join("\n");
    assert!(
        said.contains('0') && said.contains('1'),
        "the command ran: {said}"
    );
    assert!(!said.contains("reached"), "{said}");
    assert_eq!(
        std::fs::read_to_string(host.path().join("host.txt")).unwrap(),
        "",
        "the code wrote a host file through an inherited descriptor"
    );
}

#[tokio::test]
async fn a_workspace_the_code_locked_is_the_codes_failure_not_the_sandboxs() {
    let ws = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let cell = open_cell(&bwrap(Vec::new()), ws.path(), scratch.path(), &[]).await;
    let mut outcomes = Vec::new();
    for command in ["chmod 000 /workspace", "exit 3"] {
        outcomes.push(run_command(&cell, ws.path(), command).await.0);
    }
    cell.close().await;
    assert_eq!(
        outcomes,
        [
            slipway_sandbox::Outcome::Exited(0),
            slipway_sandbox::Outcome::Exited(3)
        ]
    );
}
