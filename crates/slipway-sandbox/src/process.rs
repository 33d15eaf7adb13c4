//! A running command: its process group, its output, its end.

use crate::enter::Entry;
use crate::KILL_GRACE;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc::Sender;
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
    group: Arc<Group>,
    /// Readable once the leader has exited (before it is reaped).
    exit: AsyncFd<OwnedFd>,
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
    lines: Sender<String>,
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
            match &entry {
                Some(entry) => entry.apply()?,
                None => crate::enter::close_inherited(),
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
    let pid = child.id().expect("a just-spawned child has a pid") as i32;
    // SAFETY: an OwnedFd keeps its one descriptor open until the AsyncFd drops it.
    let exit = unsafe { AsyncFd::register_with_interest(pidfd_open(pid)?, Interest::READABLE)? };
    forward(child.stdout.take().expect("piped"), lines.clone());
    forward(child.stderr.take().expect("piped"), lines);
    Ok(Process {
        child,
        group: Arc::new(Group {
            pgid: pid,
            reaped: Mutex::new(false),
        }),
        exit,
        sandbox_status: None,
    })
}

/// A process group, signalled only while its leader is not reaped: until then the kernel
/// cannot give its number to another process, afterwards it may have (a bare number is
/// never signalled).
#[derive(Debug)]
pub(crate) struct Group {
    pgid: i32,
    reaped: Mutex<bool>,
}

impl Group {
    /// Sends `signal` to every process of the group, if its leader is not reaped yet.
    pub(crate) fn signal(&self, signal: i32) {
        let reaped = self.reaped.lock().expect("group lock");
        if !*reaped {
            // SAFETY: killpg has no memory-safety preconditions.
            unsafe {
                libc::killpg(self.pgid, signal);
            }
        }
    }

    /// From now on the group is not signalled: its leader is about to be reaped.
    fn retire(&self) {
        *self.reaped.lock().expect("group lock") = true;
    }
}

fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor just returned to us, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// How the process `pid` ended, if it has, without reaping it.
fn peek_exit(pid: i32) -> Option<std::process::ExitStatus> {
    use std::os::unix::process::ExitStatusExt;
    // SAFETY: waitid writes a siginfo_t that we own; WNOWAIT leaves the child unreaped.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        if libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) != 0 || info.si_pid() == 0
        {
            return None;
        }
        let status = info.si_status();
        Some(match info.si_code {
            libc::CLD_EXITED => std::process::ExitStatus::from_raw((status & 0xff) << 8),
            _ => std::process::ExitStatus::from_raw(status & 0x7f),
        })
    }
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

/// Longest line kept whole; the rest of a longer one is dropped and the cut marked.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Lines a command may have in flight before its output waits (back-pressure).
pub const LINES_IN_FLIGHT: usize = 256;
const LINE_CUT_MARK: &str = " … [line cut at 64 KiB]";

/// Reads `stream` in chunks and sends it as lines, each at most [`MAX_LINE_BYTES`]: a
/// command that prints without newlines costs Slipway one bounded buffer, never its memory.
fn forward(mut stream: impl AsyncRead + Unpin + Send + 'static, lines: Sender<String>) {
    tokio::spawn(async move {
        let mut chunk = vec![0u8; 64 * 1024];
        let mut splitter = LineSplitter::default();
        loop {
            let read = match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            for line in splitter.push(&chunk[..read]) {
                if lines.send(line).await.is_err() {
                    return;
                }
            }
        }
        if let Some(line) = splitter.finish() {
            let _ = lines.send(line).await;
        }
    });
}

/// Cuts a byte stream into lines of at most [`MAX_LINE_BYTES`].
#[derive(Default)]
pub(crate) struct LineSplitter {
    line: Vec<u8>,
    cut: bool,
}

impl LineSplitter {
    /// The lines that `bytes` completes.
    pub(crate) fn push(&mut self, mut bytes: &[u8]) -> Vec<String> {
        let mut done = Vec::new();
        while !bytes.is_empty() {
            let (segment, ends) = match bytes.iter().position(|b| *b == b'\n') {
                Some(at) => (&bytes[..at], true),
                None => (bytes, false),
            };
            let room = MAX_LINE_BYTES.saturating_sub(self.line.len());
            if segment.len() > room {
                self.cut = true;
            }
            self.line
                .extend_from_slice(&segment[..segment.len().min(room)]);
            bytes = &bytes[(segment.len() + usize::from(ends)).min(bytes.len())..];
            if ends {
                done.push(self.take());
            }
        }
        done
    }

    /// What is left when the stream ends without a newline.
    pub(crate) fn finish(&mut self) -> Option<String> {
        (!self.line.is_empty() || self.cut).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let mut text = String::from_utf8_lossy(&self.line)
            .trim_end_matches('\r')
            .to_owned();
        if std::mem::take(&mut self.cut) {
            text.push_str(LINE_CUT_MARK);
        }
        self.line.clear();
        text
    }
}

impl Process {
    /// The process group id (the leader's pid).
    pub fn pgid(&self) -> i32 {
        self.group.pgid
    }

    pub(crate) fn group(&self) -> &Arc<Group> {
        &self.group
    }

    /// Waits for the command to end, at most `timeout`, or until `cancel`. Whatever the end,
    /// the whole process group is killed afterwards, so no background process survives.
    pub async fn wait(mut self, timeout: Duration, cancel: &CancellationToken) -> Outcome {
        let ended = tokio::select! {
            _ = self.exit.readable() => None,
            _ = tokio::time::sleep(timeout) => Some(Outcome::TimedOut),
            _ = cancel.cancelled() => Some(Outcome::Cancelled),
        };
        let status = self.kill().await;
        match (ended, status) {
            (Some(outcome), _) => outcome,
            (None, Some(status)) => self.outcome_of(status),
            (None, None) => Outcome::Signalled(0),
        }
    }

    /// Whether the leader has exited (a service that died); it is not reaped, so its group
    /// can still be killed.
    pub fn exited(&mut self) -> Option<Outcome> {
        let status = peek_exit(self.group.pgid)?;
        Some(self.outcome_of(status))
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

    /// SIGTERM to the group, SIGKILL after a short grace; then reaps the leader and says how
    /// it ended. The group is signalled only before the leader is reaped.
    pub async fn kill(&mut self) -> Option<std::process::ExitStatus> {
        self.group.signal(libc::SIGTERM);
        let _ = tokio::time::timeout(KILL_GRACE, self.exit.readable()).await;
        // Even when the leader left, others of its group may linger: always SIGKILL.
        self.group.signal(libc::SIGKILL);
        self.group.retire();
        self.child.wait().await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::{LineSplitter, MAX_LINE_BYTES};

    #[test]
    fn lines_are_cut_at_the_limit_and_marked_whatever_the_chunks() {
        let mut splitter = LineSplitter::default();
        let mut lines = splitter.push(b"one\r\ntw");
        lines.extend(splitter.push(b"o\n"));
        let long = vec![b'x'; MAX_LINE_BYTES * 3];
        for part in long.chunks(10_000) {
            lines.extend(splitter.push(part));
        }
        lines.extend(splitter.push(b"\nend"));
        lines.extend(splitter.finish());
        assert_eq!(
            lines.len(),
            4,
            "{:?}",
            lines.iter().map(String::len).collect::<Vec<_>>()
        );
        assert_eq!((lines[0].as_str(), lines[1].as_str()), ("one", "two"));
        assert!(lines[2].starts_with(&"x".repeat(MAX_LINE_BYTES)));
        assert!(
            lines[2].ends_with("[line cut at 64 KiB]"),
            "{}",
            &lines[2][MAX_LINE_BYTES..]
        );
        assert_eq!(lines[3], "end");
    }
}
