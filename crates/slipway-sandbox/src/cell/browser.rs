//! The ui step's browser in a cell: on the cell's network (where the service listens) and
//! under its quotas and user, but in a sandbox of its own that PR code cannot reach. Its
//! profile, `HOME` and `/tmp` are a directory of the browser's own (PR commands could plant
//! files in the workspace or the shared `/tmp`); DevTools is a pipe on its descriptors 3
//! and 4 (`--remote-debugging-pipe`), never a port or a socket on the cell's network.

use super::{Cell, STATUS_FD, TMP_FD, WORKSPACE_FD};
use crate::enter::Entry;
use crate::process::{self, Process, Rlimits};
use crate::{CommandSpec, Isolation};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

/// The browser's ends of DevTools' pipe: it reads commands here, and answers here.
const COMMANDS_FD: i32 = 3;
const ANSWERS_FD: i32 = 4;

/// A browser started in a cell: its process, the writing end of its command pipe and the
/// reading end of its answers (NUL-ended JSON messages both ways).
pub struct CellBrowser {
    pub process: Process,
    pub commands: OwnedFd,
    pub answers: OwnedFd,
}

impl Cell {
    /// Starts `command` (a browser reading DevTools on descriptor 3 and answering on 4) in
    /// the cell. With bubblewrap, its `/workspace` (`HOME`, the working directory) and `/tmp`
    /// are a fresh directory of its own beside the cell's `/tmp`, bound into its sandbox
    /// only; neither the workspace nor the cell's `/tmp` is there.
    pub fn spawn_browser(
        &self,
        command: &str,
        lines: tokio::sync::mpsc::Sender<String>,
    ) -> std::io::Result<CellBrowser> {
        let home = self.browser_home()?;
        let (commands_in, commands) = std::io::pipe()?;
        let (answers, answers_out) = std::io::pipe()?;
        let pipes = [
            (commands_in.as_raw_fd(), COMMANDS_FD),
            (answers_out.as_raw_fd(), ANSWERS_FD),
        ];
        let spec = CommandSpec {
            command,
            cwd: &self.workspace,
            env: &[],
        };
        let (mut child, entry, status, held) = match &self.isolation {
            Isolation::Bubblewrap { bwrap, .. } => {
                let mut child = tokio::process::Command::new(bwrap);
                child.env_clear();
                // The browser's home stands where the command line binds the workspace.
                child.args(self.bwrap_args(&spec)?);
                let tmp = home.join("tmp");
                let open = |dir: &std::path::Path| {
                    super::open_path(dir).map_err(|e| std::io::Error::other(e.to_string()))
                };
                let (home_fd, tmp_fd) = (open(&home)?, open(&tmp)?);
                let (status_reader, status_writer) = std::io::pipe()?;
                let mut entry = self.entry(true, true);
                entry.fds = vec![
                    (home_fd.as_raw_fd(), WORKSPACE_FD),
                    (tmp_fd.as_raw_fd(), TMP_FD),
                    (status_writer.as_raw_fd(), STATUS_FD),
                ];
                entry.fds.extend(pipes);
                child
                    .env("HOME", self.inside(&self.workspace))
                    .env("TMPDIR", "/tmp");
                (
                    child,
                    entry,
                    Some((status_reader, status_writer)),
                    vec![home_fd, tmp_fd],
                )
            }
            Isolation::None => {
                let mut child = tokio::process::Command::new("/bin/sh");
                child.env_clear().args(["-c", command]).current_dir(&home);
                child.env("HOME", &home).env("TMPDIR", home.join("tmp"));
                let entry = Entry {
                    fds: pipes.to_vec(),
                    ..Entry::default()
                };
                (child, entry, None, Vec::new())
            }
        };
        // Nothing of Slipway's environment, nor the project's secrets: the browser needs none.
        child
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("LANG", "C.UTF-8");
        let rlimits = Rlimits {
            file_size: Some(self.quotas.disk_mb * 1024 * 1024),
            cpu_seconds: Some(self.quotas.cpu_secs),
            processes: (self.cgroup.is_none() && self.drop_to.is_some())
                .then_some(self.quotas.max_processes),
        };
        let mut process = process::spawn(child, Some(entry), rlimits, lines)?;
        // Only the browser holds its ends now (and the directories' descriptors are bound).
        drop((commands_in, answers_out, held));
        if let Some((reader, writer)) = status {
            drop(writer);
            process.report_sandbox_status(std::fs::File::from(OwnedFd::from(reader)));
        }
        let mut groups = self.watch.groups.lock().expect("watch lock");
        groups.retain(|g| g.strong_count() > 0);
        groups.push(Arc::downgrade(process.group()));
        drop(groups);
        Ok(CellBrowser {
            process,
            commands: commands.into(),
            answers: answers.into(),
        })
    }

    /// A fresh directory for the browser beside the cell's `/tmp` (in the cell's scratch
    /// directory, which no command's sandbox binds), with a `tmp` in it, the sandbox user's.
    fn browser_home(&self) -> std::io::Result<PathBuf> {
        let scratch = self
            .tmp
            .parent()
            .expect("the cell's /tmp is in its scratch");
        let home = scratch.join("browser");
        // Only an earlier browser of this cell wrote there; PR code never saw it.
        match std::fs::remove_dir_all(&home) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        std::fs::create_dir(&home)?;
        std::fs::create_dir(home.join("tmp"))?;
        if let Some(ids) = self.drop_to {
            use std::os::unix::fs::{lchown, PermissionsExt};
            for dir in [home.clone(), home.join("tmp")] {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
                lchown(&dir, Some(ids.uid), Some(ids.gid))?;
            }
        }
        Ok(home)
    }
}
