//! Runs untrusted commands (a pull request's build, tests and app) on this machine:
//! each in its own process group with a cleared environment and resource limits, inside
//! bubblewrap when it is available (only the workspace writable, Slipway's data directory
//! invisible, a private PID namespace so nothing outlives the command), with timeouts and
//! cancellation that kill the whole process tree.

mod process;
pub mod snapshot;

pub use libc::SIGKILL;
pub use process::{kill_group, Outcome, Process};

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How commands are isolated from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// Inside bubblewrap at this path.
    Bubblewrap(PathBuf),
    /// As plain child processes: PR code can read what Slipway's user can read.
    None,
}

impl Isolation {
    /// Bubblewrap if `bwrap` is on the PATH and actually works here, else none.
    pub fn detect() -> Self {
        let Some(path) = find_on_path("bwrap") else {
            return Isolation::None;
        };
        let works = std::process::Command::new(&path)
            .args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"])
            .args(["--unshare-pid", "--die-with-parent", "true"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if works {
            Isolation::Bubblewrap(path)
        } else {
            Isolation::None
        }
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

/// Resource limits applied to every command (per process, as rlimits).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// RLIMIT_NPROC (not enforced by the kernel for root).
    pub max_processes: u64,
    /// RLIMIT_FSIZE: the largest file a command may write.
    pub max_file_size_bytes: u64,
    /// RLIMIT_CPU: CPU seconds per process.
    pub cpu_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_processes: 4_096,
            max_file_size_bytes: 4 * 1024 * 1024 * 1024,
            cpu_seconds: 3_600,
        }
    }
}

/// The local sandbox driver.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub isolation: Isolation,
    pub limits: Limits,
    /// Paths PR code must not see (Slipway's data directory, its key file).
    pub hidden: Vec<PathBuf>,
}

/// One command to run.
#[derive(Debug, Clone)]
pub struct CommandSpec<'a> {
    /// Run with `sh -c`.
    pub command: &'a str,
    /// The only writable place; also `HOME`.
    pub workspace: &'a Path,
    /// The working directory (inside the workspace).
    pub cwd: &'a Path,
    /// Added to the allowlisted environment.
    pub env: &'a [(String, String)],
}

/// The environment every command starts from; nothing else of Slipway's is passed on.
pub const ENV_ALLOWLIST_DOC: &str =
    "PATH (Slipway's), HOME (the workspace), LANG=C.UTF-8, CI=true, plus PORT and SLIPWAY_* facts and the project's secrets";

/// How long a killed tree gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_millis(500);

impl Sandbox {
    pub fn new(isolation: Isolation, hidden: Vec<PathBuf>) -> Self {
        Self {
            isolation,
            limits: Limits::default(),
            hidden,
        }
    }

    /// Starts a command; its output lines go to `lines` (stdout and stderr interleaved).
    pub fn spawn(
        &self,
        spec: &CommandSpec<'_>,
        lines: tokio::sync::mpsc::UnboundedSender<String>,
    ) -> std::io::Result<Process> {
        let mut command = match &self.isolation {
            Isolation::Bubblewrap(bwrap) => {
                let mut c = tokio::process::Command::new(bwrap);
                c.args([
                    "--die-with-parent",
                    "--unshare-pid",
                    "--unshare-ipc",
                    "--unshare-uts",
                ])
                .args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"])
                .args(["--tmpfs", "/tmp"]);
                for hidden in &self.hidden {
                    if hidden.is_dir() {
                        c.arg("--tmpfs").arg(hidden);
                    } else if hidden.exists() {
                        c.arg("--ro-bind").arg("/dev/null").arg(hidden);
                    }
                }
                c.arg("--bind").arg(spec.workspace).arg(spec.workspace);
                c.arg("--chdir").arg(spec.cwd);
                c.args(["--", "/bin/sh", "-c", spec.command]);
                c
            }
            Isolation::None => {
                let mut c = tokio::process::Command::new("/bin/sh");
                c.args(["-c", spec.command]).current_dir(spec.cwd);
                c
            }
        };
        command.env_clear();
        command
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("HOME", spec.workspace)
            .env("LANG", "C.UTF-8")
            .env("CI", "true");
        for (key, value) in spec.env {
            command.env(key, value);
        }
        process::spawn(command, self.limits, lines)
    }
}
