//! A running command: its process group, its output, its end.

use crate::enter::Entry;
use crate::KILL_GRACE;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    /// Killed by a signal it did not ask for (OOM, a crash, another process).
    Signalled(i32),
    TimedOut,
    Cancelled,
    /// The sandbox could not start the command (bubblewrap's own error, in the output): a
    /// fault of Slipway's or the machine's, never the code's.
    Unstarted,
}

/// A started command, leader of its own process group.
pub struct Process {
    child: tokio::process::Child,
    pgid: i32,
    /// bubblewrap's `--json-status-fd` reader: it reports an exit code only for a command
    /// it managed to start.
    sandbox_status: Option<std::fs::File>,
}

/// Per-process limits; `None` leaves the inherited one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rlimits {
    pub file_size: Option<u64>,
    pub cpu_seconds: Option<u64>,
    pub processes: Option<u64>,
}

impl Rlimits {
    pub fn none() -> Self {
        Self {
            file_size: None,
            cpu_seconds: None,
            processes: None,
        }
    }
}

/// Starts `command` as the leader of a new process group, after `entry` (joining a cell)
/// and the rlimits are applied in the child.
pub(crate) fn spawn(
    mut command: tokio::process::Command,
    entry: Option<Entry>,
    limits: Rlimits,
    lines: UnboundedSender<String>,
) -> std::io::Result<Process> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: only async-signal-safe calls (see Entry::apply; setrlimit) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if let Some(entry) = &entry {
                entry.apply()?;
            }
            for (resource, value) in [
                (libc::RLIMIT_FSIZE, limits.file_size),
                (libc::RLIMIT_CPU, limits.cpu_seconds),
                (libc::RLIMIT_NPROC, limits.processes),
                (libc::RLIMIT_CORE, Some(0)),
            ] {
                if let Some(value) = value {
                    set_limit(resource, value)?;
                }
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    let pgid = child.id().expect("a just-spawned child has a pid") as i32;
    forward(child.stdout.take().expect("piped"), lines.clone());
    forward(child.stderr.take().expect("piped"), lines);
    Ok(Process {
        child,
        pgid,
        sandbox_status: None,
    })
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: setrlimit reads a valid rlimit struct.
    if unsafe { libc::setrlimit(resource, &limit) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn forward(stream: impl AsyncRead + Unpin + Send + 'static, lines: UnboundedSender<String>) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream);
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            match reader.read_until(b'\n', &mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buffer);
                    let line = text.trim_end_matches(['\n', '\r']).to_owned();
                    if lines.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
}

impl Process {
    /// The process group id (the leader's pid).
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// Waits for the command to end, at most `timeout`, or until `cancel`. Whatever the end,
    /// the whole process group is killed afterwards, so no background process survives.
    pub async fn wait(mut self, timeout: Duration, cancel: &CancellationToken) -> Outcome {
        let outcome = tokio::select! {
            status = self.child.wait() => match status {
                Ok(status) => self.outcome_of(status),
                Err(_) => Outcome::Signalled(0),
            },
            _ = tokio::time::sleep(timeout) => Outcome::TimedOut,
            _ = cancel.cancelled() => Outcome::Cancelled,
        };
        self.kill().await;
        outcome
    }

    /// Whether the leader has exited (a service that died).
    pub fn exited(&mut self) -> Option<Outcome> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(self.outcome_of(status)),
            _ => None,
        }
    }

    /// Reads bubblewrap's status from `reader` to tell its own failures from the command's.
    pub(crate) fn report_sandbox_status(&mut self, reader: std::fs::File) {
        self.sandbox_status = Some(reader);
    }

    fn outcome_of(&mut self, status: std::process::ExitStatus) -> Outcome {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(_), _) if !self.sandbox_ran_command() => Outcome::Unstarted,
            (Some(code), _) => Outcome::Exited(code),
            (None, signal) => Outcome::Signalled(signal.unwrap_or(0)),
        }
    }

    /// Whether bubblewrap reported the command's exit code (true without bubblewrap).
    fn sandbox_ran_command(&mut self) -> bool {
        use std::io::Read;
        let Some(reader) = &mut self.sandbox_status else {
            return true;
        };
        // Everything was written before bubblewrap exited; read what is there, never wait.
        // SAFETY: fcntl on a descriptor this File owns.
        unsafe {
            let fd = std::os::fd::AsRawFd::as_raw_fd(reader);
            libc::fcntl(
                fd,
                libc::F_SETFL,
                libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK,
            );
        }
        let mut status = Vec::new();
        let _ = reader.read_to_end(&mut status);
        String::from_utf8_lossy(&status).contains("\"exit-code\"")
    }

    /// SIGTERM to the group, SIGKILL after a short grace; reaps the leader.
    pub async fn kill(&mut self) {
        kill_group(self.pgid, libc::SIGTERM);
        let exited = tokio::time::timeout(KILL_GRACE, self.child.wait())
            .await
            .is_ok();
        // Even when the leader left, others of its group may linger: always SIGKILL.
        kill_group(self.pgid, libc::SIGKILL);
        if !exited {
            let _ = self.child.wait().await;
        }
    }
}

/// Whether any process of the group is still there.
pub(crate) fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    pgid > 1 && unsafe { libc::killpg(pgid, 0) } == 0
}

/// Sends `signal` to every process of the group; a group already gone is fine.
pub fn kill_group(pgid: i32, signal: i32) {
    if pgid > 1 {
        // SAFETY: killpg has no memory-safety preconditions.
        unsafe {
            libc::killpg(pgid, signal);
        }
    }
}
