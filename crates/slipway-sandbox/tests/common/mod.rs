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
