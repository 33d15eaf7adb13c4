//! What the sandbox's test files share: running one command in a fresh cell.
// Each test file uses part of it.
#![allow(dead_code)]

use slipway_sandbox::{CellSpec, CommandSpec, Isolation, Network, Outcome, Quotas, Sandbox};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub struct Ran {
    pub outcome: Outcome,
    pub lines: Vec<String>,
    pub elapsed: Duration,
    /// The quota the command ran into, in the cell's words.
    pub exceeded: Option<String>,
    /// What the cell could not enforce here.
    pub notes: Vec<String>,
}

pub struct Options {
    pub timeout: Duration,
    pub cancel: CancellationToken,
    pub network: Network,
    pub quotas: Quotas,
    /// Where the command starts, below the workspace (default: the workspace).
    pub cwd: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            cancel: CancellationToken::new(),
            network: Network::None,
            quotas: Quotas::default(),
            cwd: None,
        }
    }
}

/// Runs `command` (with `PORT=4000`) in a new cell over `workspace`, then closes the cell.
pub async fn run_in_cell(
    sandbox: &Sandbox,
    workspace: &Path,
    command: &str,
    options: Options,
) -> Ran {
    slipway_sandbox::give_to_sandbox(sandbox, workspace).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let name = format!(
        "test-{}",
        scratch.path().file_name().unwrap().to_string_lossy()
    );
    let cell = sandbox
        .cell(&CellSpec {
            visible: &[],
            workspace,
            scratch: scratch.path(),
            network: options.network,
            quotas: options.quotas,
            hidden: &[],
            name: &name,
        })
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(slipway_sandbox::LINES_IN_FLIGHT);
    let env = vec![("PORT".to_owned(), "4000".to_owned())];
    let started = Instant::now();
    let cwd = workspace.join(options.cwd.unwrap_or_default());
    let process = cell
        .spawn(
            &CommandSpec {
                command,
                cwd: &cwd,
                env: &env,
            },
            tx,
        )
        .unwrap();
    // Read while it runs: output waits for a reader once a bounded number of lines is unread.
    let collect = async {
        let mut lines = Vec::new();
        while let Some(line) = rx.recv().await {
            lines.push(line);
        }
        lines
    };
    let (outcome, lines) = tokio::join!(
        async {
            let outcome = process.wait(options.timeout, &options.cancel).await;
            let (exceeded, notes) = (cell.exceeded(), cell.notes.clone());
            cell.close().await;
            (outcome, exceeded, notes)
        },
        collect
    );
    let (outcome, exceeded, notes) = outcome;
    let elapsed = started.elapsed();
    Ran {
        outcome,
        lines,
        elapsed,
        exceeded,
        notes,
    }
}

/// A sandbox with bubblewrap, hiding `hidden`.
pub fn bwrap(hidden: Vec<PathBuf>) -> Sandbox {
    let isolation = Isolation::detect();
    assert!(
        matches!(isolation, Isolation::Bubblewrap { .. }),
        "bubblewrap is required for isolation tests: apt-get install bubblewrap passt"
    );
    Sandbox::new(isolation, hidden)
}

/// Processes whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<String> {
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

/// Where this process could make a cgroup with memory and process limits, found without
/// Slipway's code: `Ok(the place)`, or `Err(why not)` (not root and nothing delegated, or a
/// hierarchy mounted read-only).
pub fn writable_cgroup() -> Result<PathBuf, String> {
    let root = Path::new("/sys/fs/cgroup");
    let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    let probe = |dir: &Path| -> Result<(), String> {
        let child = dir.join(format!("slipway-probe-{}", std::process::id()));
        std::fs::create_dir(&child).map_err(|e| format!("cannot create {child:?}: {e}"))?;
        let _ = std::fs::remove_dir(&child);
        Ok(())
    };
    if root.join("cgroup.controllers").exists() {
        // v2: the top (root), or this process's own cgroup when it is delegated to it.
        let own = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or("no v2 line in /proc/self/cgroup")?;
        let mut why = Vec::new();
        for dir in [
            root.to_path_buf(),
            root.join(own.trim().trim_start_matches('/')),
        ] {
            let controllers =
                std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
            let usable = controllers.contains("memory") && controllers.contains("pids");
            let writable = writable(&dir.join("cgroup.subtree_control"))
                && writable(&dir.join("cgroup.procs"));
            match (usable, writable) {
                (true, true) => match probe(&dir) {
                    Ok(()) => return Ok(dir),
                    Err(e) => why.push(e),
                },
                _ => why.push(format!(
                    "{dir:?}: controllers {:?}, writable {writable}",
                    controllers.trim()
                )),
            }
        }
        return Err(why.join("; "));
    }
    // v1: children of this process's memory and pids cgroups, with their limits writable.
    let mut found = root.to_path_buf();
    for (controller, limit, value) in [
        ("memory", "memory.limit_in_bytes", "67108864"),
        ("pids", "pids.max", "64"),
    ] {
        let path = own
            .lines()
            .find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
                names.split(',').any(|n| n == controller).then_some(path)
            })
            .ok_or(format!("no v1 {controller} hierarchy"))?;
        let dir = root.join(controller).join(path.trim_start_matches('/'));
        let child = dir.join(format!("slipway-probe-{}", std::process::id()));
        std::fs::create_dir(&child).map_err(|e| format!("cannot create {child:?}: {e}"))?;
        let limited = std::fs::write(child.join(limit), value);
        let _ = std::fs::remove_dir(&child);
        limited.map_err(|e| format!("cannot write {limit} in {child:?}: {e}"))?;
        found = dir;
    }
    Ok(found)
}

fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access reads a valid NUL-terminated path.
    unsafe { libc::access(path.as_ptr(), libc::W_OK) == 0 }
}

/// Bytes on disk below `root` (as `du` counts them).
pub fn disk_use(root: &Path) -> u64 {
    let output = std::process::Command::new("du")
        .args(["-s", "-B1"])
        .arg(root)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// A cell over `workspace` (handed to the sandbox's user) that sees `visible` too; the caller
/// runs commands with [`run_command`] and closes it.
pub async fn open_cell(
    sandbox: &Sandbox,
    workspace: &Path,
    scratch: &Path,
    visible: &[PathBuf],
) -> slipway_sandbox::Cell {
    slipway_sandbox::give_to_sandbox(sandbox, workspace).unwrap();
    let name = format!("test-{}", scratch.file_name().unwrap().to_string_lossy());
    sandbox
        .cell(&CellSpec {
            visible,
            workspace,
            scratch,
            network: Network::None,
            quotas: Quotas::default(),
            hidden: &[],
            name: &name,
        })
        .await
        .unwrap()
}

/// Runs `command` in `cell`'s workspace; how it ended and what it printed.
pub async fn run_command(
    cell: &slipway_sandbox::Cell,
    workspace: &Path,
    command: &str,
) -> (Outcome, Vec<String>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(slipway_sandbox::LINES_IN_FLIGHT);
    let process = cell
        .spawn(
            &CommandSpec {
                command,
                cwd: workspace,
                env: &[],
            },
            tx,
        )
        .unwrap();
    let collect = async {
        let mut lines = Vec::new();
        while let Some(line) = rx.recv().await {
            lines.push(line);
        }
        lines
    };
    let cancel = CancellationToken::new();
    tokio::join!(process.wait(Duration::from_secs(10), &cancel), collect)
}
