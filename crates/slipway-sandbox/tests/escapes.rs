//! The escape suite: what pull-request code tried against earlier sandboxes, each with real
//! bubblewrap, real namespaces and real processes. Every test asserts that the attack failed
//! and that this process (standing in for Slipway) and a validation running beside it were
//! unaffected. Every attack also proves that it ran. Where a cgroup can be made (root, or a
//! delegated one) the quotas must be enforced; where none can (checked apart from Slipway),
//! the cell must say that they are not, and the test says so loudly.

use slipway_sandbox::{Network, Outcome, Quotas, Sandbox};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;

use common::{processes_with, run_in_cell, Options, Ran};

fn sandbox(hidden: Vec<PathBuf>) -> Sandbox {
    common::bwrap(hidden)
}

/// What a cell says when it cannot enforce memory and process quotas, with how to get them.
const UNENFORCED: &str = "memory and process quotas are not enforced";

/// Whether the command printed `line` (stdout and stderr arrive in no fixed order).
fn said(ran: &Ran, line: &str) -> bool {
    ran.lines.iter().any(|l| l == line)
}

fn unenforced_note(ran: &Ran) -> Option<&String> {
    ran.notes.iter().find(|n| n.contains(UNENFORCED))
}

async fn attack(
    sandbox: &Sandbox,
    workspace: &Path,
    network: Network,
    quotas: Quotas,
    command: &str,
    timeout: Duration,
) -> Ran {
    let options = Options {
        timeout,
        network,
        quotas,
        ..Options::default()
    };
    run_in_cell(sandbox, workspace, command, options).await
}

/// Runs `command` as an attack while a second validation runs beside it; asserts that the
/// neighbour finished normally and that this process is alive and its files intact.
async fn attack_beside_a_neighbour(
    sandbox: &Sandbox,
    command: &str,
    quotas: Quotas,
    timeout: Duration,
) -> Ran {
    let (ws, neighbour_ws) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let neighbour = attack(
        sandbox,
        neighbour_ws.path(),
        Network::None,
        Quotas::default(),
        "sleep 1; echo neighbour-ok > done.txt; echo neighbour-ok",
        Duration::from_secs(60),
    );
    let attacker = attack(sandbox, ws.path(), Network::None, quotas, command, timeout);
    let (neighbour, ran) = tokio::join!(neighbour, attacker);
    assert_eq!(
        neighbour.outcome,
        Outcome::Exited(0),
        "{:?}",
        neighbour.lines
    );
    assert_eq!(
        std::fs::read_to_string(neighbour_ws.path().join("done.txt")).unwrap(),
        "neighbour-ok\n"
    );
    ran
}

#[tokio::test]
async fn code_runs_unprivileged_with_no_capabilities_and_cannot_mount() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("master.key"), "KEY-MATERIAL").unwrap();
    let sandbox = sandbox(vec![data.path().to_owned()]);
    let key = data.path().join("master.key").display().to_string();
    let command = format!(
        "grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status; echo uid=$(id -u)
         umount -l {dir} && echo UNMOUNTED
         mkdir -p /tmp/v && mount --bind /var /tmp/v && echo BOUND
         mount -o remount,bind,rw / && echo REMOUNTED
         umount -l /proc && echo PROC-UNMOUNTED
         unshare -Ur true && echo NEW-USERNS
         cat {key}; echo end",
        dir = data.path().display()
    );
    let ran = attack_beside_a_neighbour(
        &sandbox,
        &command,
        Quotas::default(),
        Duration::from_secs(20),
    )
    .await;
    let text = ran.lines.join("\n");
    for cap in ["CapEff", "CapPrm", "CapBnd"] {
        assert!(
            text.contains(&format!("{cap}:\t0000000000000000")),
            "{text}"
        );
    }
    assert!(!text.contains("uid=0"), "{text}");
    for success in [
        "UNMOUNTED",
        "BOUND",
        "REMOUNTED",
        "PROC-UNMOUNTED",
        "NEW-USERNS",
        "KEY-MATERIAL",
    ] {
        assert!(!text.contains(success), "{success}: {text}");
    }
    assert!(said(&ran, "end"), "{text}");
}

/// A secret in the real environment of the process standing in for Slipway (`set_var`
/// changes no `/proc/PID/environ`, so the test runs again in a child started with it).
const SECRET: &str = "admin-token-that-must-not-leak-5b1c9e";
const CHILD: &str = "SLIPWAY_ESCAPES_CHILD";

#[tokio::test]
async fn slipways_environment_cannot_be_read_nor_its_process_signalled() {
    let name = "slipways_environment_cannot_be_read_nor_its_process_signalled";
    if std::env::var_os(CHILD).is_none() {
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .env("SLIPWAY_ADMIN_TOKEN", SECRET)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&child.stdout),
            String::from_utf8_lossy(&child.stderr)
        );
        assert!(child.status.success(), "{text}");
        // It ran there (a filter matching nothing would pass too).
        assert!(text.contains("1 passed"), "{text}");
        return;
    }
    let me = std::process::id();
    let environ = std::fs::read(format!("/proc/{me}/environ")).unwrap();
    assert!(
        environ
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes()),
        "the secret is in this process's environment, where the attack looks"
    );
    let sandbox = sandbox(Vec::new());
    let command = format!(
        "echo ran; env; cat /proc/{me}/environ; \
         for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f; done; \
         kill -9 {me} && echo KILLED; kill -9 -1; echo end"
    );
    let ran = attack_beside_a_neighbour(
        &sandbox,
        &command,
        Quotas::default(),
        Duration::from_secs(20),
    )
    .await;
    let text = ran.lines.join("\n");
    // It ran and printed the environment it has: the allowlist.
    assert!(said(&ran, "ran"), "{text}");
    assert!(
        text.contains("CI=true") && text.contains("PORT=4000"),
        "{text}"
    );
    assert!(!text.contains(SECRET), "{text}");
    assert!(!text.contains("SLIPWAY_ADMIN_TOKEN"), "{text}");
    assert!(!text.contains("KILLED"), "{text}");
    assert!(said(&ran, "end"), "{text}");
    assert!(std::fs::metadata(format!("/proc/{me}")).is_ok());
}

#[tokio::test]
async fn the_hosts_loopback_is_unreachable_even_with_outbound_network() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let sandbox = sandbox(Vec::new());
    let ws = tempfile::tempdir().unwrap();
    let probe = format!(
        "import socket,subprocess\n\
         out=subprocess.run(['ip','route'],capture_output=True,text=True).stdout.split()\n\
         gw=out[out.index('via')+1] if 'via' in out else None\n\
         for host in ['127.0.0.1','localhost',gw,'192.0.2.2','10.0.2.2']:\n\
         \x20 if not host: continue\n\
         \x20 try:\n\
         \x20   socket.create_connection((host,{port}),timeout=2); print('REACHED',host)\n\
         \x20 except Exception as e: print('refused',host,type(e).__name__)\n"
    );
    std::fs::write(ws.path().join("probe.py"), probe).unwrap();
    for network in [Network::Outbound, Network::None] {
        let ran = attack(
            &sandbox,
            ws.path(),
            network,
            Quotas::default(),
            "python3 probe.py; echo end",
            Duration::from_secs(30),
        )
        .await;
        let text = ran.lines.join("\n");
        assert!(!text.contains("REACHED"), "{network:?}: {text}");
        assert!(text.contains("refused 127.0.0.1"), "{network:?}: {text}");
        assert!(listener.accept().is_err(), "a connection arrived");
        if network == Network::Outbound {
            // Outbound really was on (pasta ran), or this proves nothing about it.
            assert!(
                !ran.notes.iter().any(|n| n.contains("pasta")),
                "{:?}",
                ran.notes
            );
        }
    }
}

#[tokio::test]
async fn another_validations_workspace_is_not_reachable() {
    let data = tempfile::tempdir().unwrap();
    let other = data.path().join("workspaces/1");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("secret.txt"), "OTHER-WORKSPACE").unwrap();
    let sandbox = sandbox(vec![data.path().to_owned()]);
    // Its own secret.txt proves the search ran and finds what is there.
    let command = format!(
        "echo mine > secret.txt; cat {p}/secret.txt; ls -la {p}; \
         find / -name secret.txt 2>/dev/null | sed 's/^/FOUND /'; echo end",
        p = other.display()
    );
    let ran = attack_beside_a_neighbour(
        &sandbox,
        &command,
        Quotas::default(),
        Duration::from_secs(60),
    )
    .await;
    let text = ran.lines.join("\n");
    assert!(!text.contains("OTHER-WORKSPACE"), "{text}");
    let found: Vec<&str> = ran
        .lines
        .iter()
        .filter(|l| l.starts_with("FOUND"))
        .map(String::as_str)
        .collect();
    assert_eq!(found, ["FOUND /workspace/secret.txt"], "{text}");
    assert!(said(&ran, "end"), "{text}");
}

#[tokio::test]
async fn a_setsid_daemon_does_not_outlive_its_command() {
    let sandbox = sandbox(Vec::new());
    let ran = attack_beside_a_neighbour(
        &sandbox,
        "setsid sh -c 'sleep 7341.5' >/dev/null 2>&1 < /dev/null & nohup sleep 7341.5 >/dev/null 2>&1 & echo started",
        Quotas::default(),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(ran.outcome, Outcome::Exited(0));
    assert_eq!(ran.lines, ["started"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let left = processes_with("7341.5");
    assert!(left.is_empty(), "{left:?}");
}

/// Runs `command` under `quotas` beside a neighbour; asserts it was stopped with a reason
/// that says `expected`. Where this machine gives no cgroup (checked apart from Slipway), the
/// attack would only load the machine: the cell must say instead that the quotas are not
/// enforced and how to get them, and the test says so loudly (`None`).
async fn stopped_by_a_quota(
    quotas: Quotas,
    command: &str,
    timeout: Duration,
    expected: &str,
) -> Option<Ran> {
    let sandbox = sandbox(Vec::new());
    match common::writable_cgroup() {
        Ok(place) => {
            let ran = attack_beside_a_neighbour(&sandbox, command, quotas, timeout).await;
            assert_eq!(
                unenforced_note(&ran),
                None,
                "cgroups can be made at {place:?}, so the quotas must be enforced"
            );
            assert_ne!(ran.outcome, Outcome::Exited(0), "{:?}", ran.lines);
            let exceeded = ran.exceeded.clone().expect("a quota was hit");
            assert!(exceeded.contains(expected), "{exceeded}");
            Some(ran)
        }
        Err(why) => {
            let ws = tempfile::tempdir().unwrap();
            let ran = attack(
                &sandbox,
                ws.path(),
                Network::None,
                quotas,
                "echo ran",
                timeout,
            )
            .await;
            assert_eq!(ran.lines, ["ran"]);
            let note = unenforced_note(&ran).unwrap_or_else(|| {
                panic!(
                    "no cgroup can be made here ({why}), yet the cell does not say so: {:?}",
                    ran.notes
                )
            });
            assert!(
                note.contains("Delegate=yes") && note.contains("root"),
                "{note}"
            );
            eprintln!(
                "\n!!! NOT ENFORCED on this machine: no cgroup can be made ({why}).\n\
                 !!! The cell says so: {note}\n"
            );
            None
        }
    }
}

#[tokio::test]
async fn a_fork_bomb_is_bounded_and_ends_only_its_own_validation() {
    let quotas = Quotas {
        max_processes: 64,
        ..Quotas::default()
    };
    stopped_by_a_quota(
        quotas,
        "bomb() { bomb | bomb & }; bomb; sleep 3; echo end",
        Duration::from_secs(5),
        "more than 64 processes",
    )
    .await;
}

#[tokio::test]
async fn memory_beyond_the_quota_ends_the_step_with_the_reason() {
    let quotas = Quotas {
        memory_mb: 128,
        ..Quotas::default()
    };
    let ran = stopped_by_a_quota(
        quotas,
        "python3 -c \"x = b'x' * (600 * 1024 * 1024); print('ALLOCATED')\"",
        Duration::from_secs(30),
        "more than 128 MiB of memory",
    )
    .await;
    if let Some(ran) = ran {
        assert!(!ran.lines.iter().any(|l| l.contains("ALLOCATED")));
    }
}

#[tokio::test]
async fn a_3_gb_file_is_refused_in_the_workspace_and_in_tmp() {
    let sandbox = sandbox(Vec::new());
    for target in ["big", "/tmp/big"] {
        let ws = tempfile::tempdir().unwrap();
        let ran = attack(
            &sandbox,
            ws.path(),
            Network::None,
            Quotas::default(),
            &format!("echo ran; head -c 3G /dev/zero > {target} && echo WROTE; ls -l {target}"),
            Duration::from_secs(120),
        )
        .await;
        let text = ran.lines.join("\n");
        assert!(said(&ran, "ran"), "{target}: {text}");
        assert!(!text.contains("WROTE"), "{target}: {text}");
        // The writing ran up to the cap: ls found the file, or the disk watcher stopped it.
        let listed = ran
            .lines
            .iter()
            .any(|l| l.ends_with(target) && !l.contains("No such"));
        let stopped = ran.exceeded.as_ref().is_some_and(|e| e.contains("of disk"));
        assert!(listed || stopped, "{target}: {text} {:?}", ran.exceeded);
        if target == "big" {
            let size = std::fs::metadata(ws.path().join("big"))
                .map(|m| m.len())
                .unwrap_or(0);
            assert!(size > 0 && size <= 2_048 * 1024 * 1024, "{size}");
        }
    }
}

#[tokio::test]
async fn disk_use_past_the_quota_across_many_files_ends_the_step() {
    let sandbox = sandbox(Vec::new());
    let quotas = Quotas {
        disk_mb: 64,
        ..Quotas::default()
    };
    let ws = tempfile::tempdir().unwrap();
    let ran = attack(
        &sandbox,
        ws.path(),
        Network::None,
        quotas,
        "i=0; while [ $i -lt 200 ]; do head -c 1M /dev/zero > f$i; i=$((i+1)); done; sleep 5; echo FINISHED",
        Duration::from_secs(60),
    )
    .await;
    assert!(
        !ran.lines.iter().any(|l| l.contains("FINISHED")),
        "{:?}",
        ran.lines
    );
    let exceeded = ran.exceeded.expect("the disk quota was hit");
    assert!(exceeded.contains("more than 64 MiB of disk"), "{exceeded}");
}

/// After a crash, the next start kills what a cell left through its cgroup and removes it;
/// a cgroup not named as Slipway's cells are is left alone.
#[tokio::test]
async fn what_a_crashed_slipways_cells_left_is_killed_through_their_cgroups() {
    if let Err(why) = common::writable_cgroup() {
        eprintln!("\n!!! NOT RUN on this machine: no cgroup can be made ({why}).\n");
        return;
    }
    // A cell first, so that the directories cells go in exist.
    let ws = tempfile::tempdir().unwrap();
    let ran = run_in_cell(
        &sandbox(Vec::new()),
        ws.path(),
        "echo ran",
        Options::default(),
    )
    .await;
    assert_eq!(ran.lines, ["ran"]);
    let parents = cell_parents();
    assert!(!parents.is_empty(), "no directory for cells' cgroups");
    // Named as a cell of this process id but another start time: a crashed Slipway's.
    let me = std::process::id();
    let stale: Vec<PathBuf> = parents
        .iter()
        .map(|p| p.join(format!("cell-crashed.0.{me}.1")))
        .collect();
    let foreign: Vec<PathBuf> = parents
        .iter()
        .map(|p| p.join(format!("not-a-cell-{me}")))
        .collect();
    let mut left = std::process::Command::new("sleep")
        .arg("3600")
        .spawn()
        .unwrap();
    let mut other = std::process::Command::new("sleep")
        .arg("3600")
        .spawn()
        .unwrap();
    for (dirs, pid) in [(&stale, left.id()), (&foreign, other.id())] {
        for dir in dirs {
            std::fs::create_dir(dir).unwrap();
            std::fs::write(dir.join("cgroup.procs"), pid.to_string()).unwrap();
        }
    }

    slipway_sandbox::remove_stale_cells();

    // Reaped within a bound, so that a process never killed fails the test, not hangs it.
    let mut status = None;
    for _ in 0..500 {
        status = left.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if status.is_none() {
        let _ = left.kill();
        let _ = left.wait();
    }
    let still = other.try_wait().unwrap();
    let _ = other.kill();
    let _ = other.wait();
    // Clean up before judging, so that a failure leaves nothing behind.
    let foreign_removed: Vec<_> = foreign.iter().map(std::fs::remove_dir).collect();
    let stale_left: Vec<&PathBuf> = stale.iter().filter(|d| d.exists()).collect();
    for dir in &stale_left {
        let _ = std::fs::remove_dir(dir);
    }
    let signal = status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s));
    assert_eq!(
        signal,
        Some(libc::SIGKILL),
        "what the cell left was not killed"
    );
    assert!(stale_left.is_empty(), "{stale_left:?} left");
    assert!(
        foreign_removed.iter().all(Result::is_ok),
        "{foreign_removed:?}"
    );
    assert!(
        still.is_none(),
        "a process in a cgroup not Slipway's was killed"
    );
}

/// The directories this process's cells' cgroups go in (as `cgroup.rs` places them).
fn cell_parents() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    if root.join("cgroup.controllers").exists() {
        let path = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
        let path = path.trim().trim_start_matches('/');
        let path = path.strip_suffix("slipway-server").unwrap_or(path);
        return [
            root.join("slipway-cells"),
            root.join(path).join("slipway-cells"),
        ]
        .into_iter()
        .filter(|p| p.is_dir())
        .take(1)
        .collect();
    }
    ["memory", "pids", "cpuacct"]
        .iter()
        .filter_map(|controller| {
            let path = own.lines().find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
                names.split(',').any(|n| n == *controller).then_some(path)
            })?;
            let dir = root
                .join(controller)
                .join(path.trim_start_matches('/'))
                .join("slipway");
            dir.is_dir().then_some(dir)
        })
        .collect()
}
