//! A cell: where one validation's (or one agent turn's) commands run, together. They share
//! a network namespace (the service listens there; tests, the health check and the browser
//! reach it there), a cgroup, a workspace and a `/tmp`, and nothing else.

mod browser;
mod bwrap;
mod network;
mod watch;

pub use watch::Quotas;

use crate::cgroup::{Cgroup, CgroupLimits};
use crate::enter::{self, Entry, Ids, NewNamespaces};
use crate::process::{self, Process, Rlimits};
use crate::{CommandSpec, Isolation, Sandbox};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Where the workspace is inside the sandbox.
pub const WORKSPACE_INSIDE: &str = "/workspace";
/// Descriptor numbers the workspace and `/tmp` are handed to bubblewrap as.
const WORKSPACE_FD: i32 = 10;
const TMP_FD: i32 = 11;
/// Where bubblewrap writes its status (whether it started the command, its exit code).
const STATUS_FD: i32 = 12;

/// Network access of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// Outbound connections through pasta (installs); the host's loopback stays unreachable.
    #[default]
    Outbound,
    /// Only the cell's own loopback.
    None,
}

/// What a cell is made for.
#[derive(Debug, Clone)]
pub struct CellSpec<'a> {
    /// The only writable directory (also `HOME`), created by the caller.
    pub workspace: &'a Path,
    /// A directory of the cell's own for its `/tmp`; created here, removed by the caller.
    pub scratch: &'a Path,
    pub network: Network,
    pub quotas: Quotas,
    /// Paths hidden in addition to the sandbox's own (the project's source repository).
    pub hidden: &'a [PathBuf],
    /// Host paths the cell sees read-only besides the system's (a command agent's own
    /// script); see [`paths_named_in`].
    pub visible: &'a [PathBuf],
    /// Names the cell's cgroup (the process id is added).
    pub name: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum CellError {
    /// A call to the system failed (a directory, a namespace, a process).
    #[error("the sandbox could not be made: {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A tool the cell needs (pasta, `ip`) is missing or ended badly; what it said.
    #[error("the sandbox could not be made: {0}")]
    Tool(String),
    /// The administrator's configuration of the sandbox is invalid (it says which).
    #[error("the sandbox could not be made: {0}")]
    Config(String),
}

impl CellError {
    /// Whether making the cell again later may succeed (not a configuration to fix first).
    pub fn is_transient(&self) -> bool {
        !matches!(self, CellError::Config(_))
    }
}

fn setup(what: &str) -> impl FnOnce(std::io::Error) -> CellError + '_ {
    move |source| CellError::Io {
        what: what.to_owned(),
        source,
    }
}

/// A running cell. [`Cell::close`] (or dropping it) kills whatever still runs in it.
pub struct Cell {
    isolation: Isolation,
    workspace: PathBuf,
    tmp: PathBuf,
    quotas: Quotas,
    hidden: Vec<PathBuf>,
    visible: Vec<PathBuf>,
    drop_to: Option<Ids>,
    /// The cell's user and network namespaces (bubblewrap only).
    namespaces: Option<Arc<(OwnedFd, OwnedFd)>>,
    workspace_fd: Option<OwnedFd>,
    tmp_fd: Option<OwnedFd>,
    cgroup: Option<Arc<Cgroup>>,
    pasta: Option<Process>,
    watch: Arc<watch::Watch>,
    stop_watch: CancellationToken,
    /// What the cell could not enforce or provide here, for the log.
    pub notes: Vec<String>,
}

impl Sandbox {
    /// Makes a cell. Failing here is Slipway's fault (or the machine's), never the code's.
    pub async fn cell(&self, spec: &CellSpec<'_>) -> Result<Cell, CellError> {
        let tmp = spec.scratch.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(setup("cannot create the cell's /tmp"))?;
        crate::give_to_sandbox(self, &tmp).map_err(setup("cannot hand /tmp to the sandbox"))?;
        // bubblewrap takes absolute paths only (a relative data directory would be refused).
        let hidden = self
            .hidden
            .iter()
            .chain(spec.hidden)
            .filter_map(|p| std::path::absolute(p).ok())
            .collect();
        let mut cell = Cell {
            isolation: self.isolation.clone(),
            workspace: spec.workspace.to_path_buf(),
            tmp,
            quotas: spec.quotas,
            hidden,
            visible: spec.visible.to_vec(),
            drop_to: self.outside_owner().map(|(uid, gid)| Ids { uid, gid }),
            namespaces: None,
            workspace_fd: None,
            tmp_fd: None,
            cgroup: None,
            pasta: None,
            watch: Arc::default(),
            stop_watch: CancellationToken::new(),
            notes: Vec::new(),
        };
        if let Isolation::Bubblewrap { pasta, .. } = &self.isolation {
            cell.workspace_fd = Some(open_path(&cell.workspace)?);
            cell.tmp_fd = Some(open_path(&cell.tmp)?);
            let limits = CgroupLimits {
                memory_bytes: spec.quotas.memory_mb * 1024 * 1024,
                max_processes: spec.quotas.max_processes,
            };
            match Cgroup::create(spec.name, limits) {
                Ok(cgroup) => cell.cgroup = Some(Arc::new(cgroup)),
                Err(why) => cell.notes.push(crate::cgroup::unenforced(&why)),
            }
            cell.namespaces = Some(Arc::new(cell.new_namespaces().await?));
            match (spec.network, pasta) {
                (Network::Outbound, Some(pasta)) => {
                    cell.pasta = Some(cell.start_pasta(pasta).await?);
                    cell.close_host_network().await?;
                }
                (Network::Outbound, None) => cell.notes.push(
                    "no outbound network: pasta is not installed (apt-get install passt)".into(),
                ),
                (Network::None, _) => {}
            }
        }
        cell.start_watch();
        Ok(cell)
    }
}

/// The absolute paths that `command` names and that exist (a command agent's script), for
/// [`CellSpec::visible`]: only for commands an operator configured, never a pull request's.
pub fn paths_named_in(command: &str) -> Vec<PathBuf> {
    command
        .split_whitespace()
        .map(|word| word.trim_matches(|c| matches!(c, '"' | '\'' | ';' | '(' | ')')))
        .filter(|word| word.starts_with('/'))
        .map(PathBuf::from)
        .filter(|path| path.exists())
        .fold(Vec::new(), |mut paths, path| {
            if !paths.contains(&path) {
                paths.push(path);
            }
            paths
        })
}

fn open_path(path: &Path) -> Result<OwnedFd, CellError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)
        .map(OwnedFd::from)
        .map_err(setup(&format!("cannot open {}", path.display())))
}

impl Cell {
    /// How a child enters the cell: always as the sandbox user; into the cgroup (what counts
    /// against the quotas) and the namespaces as asked.
    fn entry(&self, into_cgroup: bool, into_namespaces: bool) -> Entry {
        Entry {
            cgroup_procs: match &self.cgroup {
                Some(cgroup) if into_cgroup => cgroup.procs_files(),
                _ => Vec::new(),
            },
            drop_to: self.drop_to,
            namespaces: self
                .namespaces
                .as_ref()
                .filter(|_| into_namespaces)
                .map(|ns| (ns.0.as_raw_fd(), ns.1.as_raw_fd())),
            fds: Vec::new(),
        }
    }

    fn outside_ids(&self) -> Ids {
        self.drop_to.unwrap_or_else(|| {
            // SAFETY: getuid/getgid have no preconditions.
            unsafe {
                Ids {
                    uid: libc::getuid(),
                    gid: libc::getgid(),
                }
            }
        })
    }

    /// A short-lived process makes the user and network namespaces; their descriptors keep
    /// them alive after it is gone.
    async fn new_namespaces(&self) -> Result<(OwnedFd, OwnedFd), CellError> {
        let entry = self.entry(false, false);
        let fresh = NewNamespaces::new(self.outside_ids());
        let mut holder = tokio::process::Command::new("sleep");
        holder
            .arg("60")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        // SAFETY: Entry and NewNamespaces use only async-signal-safe calls.
        unsafe {
            holder.pre_exec(move || {
                entry.apply()?;
                fresh.apply()
            });
        }
        let mut child = holder.spawn().map_err(setup(
            "cannot make the cell's namespaces (are user namespaces enabled?)",
        ))?;
        let pid = child.id().expect("a running child has a pid");
        let open = |kind: &str| {
            std::fs::File::open(format!("/proc/{pid}/ns/{kind}"))
                .map(OwnedFd::from)
                .map_err(setup("cannot open the cell's namespace"))
        };
        let namespaces = (open("user"), open("net"));
        let _ = child.kill().await;
        Ok((namespaces.0?, namespaces.1?))
    }

    /// pasta gives the namespace outbound access; nothing is forwarded in either direction
    /// and the gateway is not mapped to the host, so the host's loopback stays out of reach.
    async fn start_pasta(&self, pasta: &Path) -> Result<Process, CellError> {
        // Written as the sandbox user, so into the cell's /tmp (by descriptor: its parent
        // may be closed to that user), and removed before any command runs.
        let ready = self.tmp.join(".pasta.pid");
        let _ = std::fs::remove_file(&ready);
        let namespaces = self.namespaces.as_ref().expect("made first");
        let (user, net) = (&namespaces.0, &namespaces.1);
        let mut entry = self.entry(false, false);
        let tmp = self.tmp_fd.as_ref().expect("bubblewrap").as_raw_fd();
        entry.fds = vec![(user.as_raw_fd(), 3), (net.as_raw_fd(), 4), (tmp, 5)];
        let mut command = tokio::process::Command::new(pasta);
        command
            .args(["--config-net", "--no-map-gw", "--quiet", "--foreground"])
            .args(["-t", "none", "-u", "none", "-T", "none", "-U", "none"])
            .args(["--userns", "/proc/self/fd/3", "--netns", "/proc/self/fd/4"])
            .args(["--pid", "/proc/self/fd/5/.pasta.pid"])
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin");
        let (tx, mut rx) = tokio::sync::mpsc::channel(process::LINES_IN_FLIGHT);
        let mut process = process::spawn(command, Some(entry), Rlimits::none(), tx)
            .map_err(setup(&format!("cannot start {}", pasta.display())))?;
        for _ in 0..500 {
            if ready.exists() {
                let _ = std::fs::remove_file(&ready);
                return Ok(process);
            }
            if let Some(outcome) = process.exited() {
                let mut said = Vec::new();
                while let Ok(line) = rx.try_recv() {
                    said.push(line);
                }
                return Err(CellError::Tool(format!(
                    "pasta ended ({outcome:?}): {}",
                    said.join(" ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        process.kill().await;
        Err(CellError::Tool(
            "pasta did not become ready within a second".into(),
        ))
    }

    /// The quotas the cell enforces.
    pub fn quotas(&self) -> Quotas {
        self.quotas
    }

    /// Where a path of the workspace is inside the sandbox.
    pub fn inside(&self, path: &Path) -> PathBuf {
        match (&self.isolation, path.strip_prefix(&self.workspace)) {
            (Isolation::Bubblewrap { .. }, Ok(rest)) if rest.as_os_str().is_empty() => {
                PathBuf::from(WORKSPACE_INSIDE)
            }
            (Isolation::Bubblewrap { .. }, Ok(rest)) => Path::new(WORKSPACE_INSIDE).join(rest),
            _ => path.to_path_buf(),
        }
    }

    /// Starts a command in the cell; its output lines go to `lines`.
    pub fn spawn(
        &self,
        spec: &CommandSpec<'_>,
        lines: tokio::sync::mpsc::Sender<String>,
    ) -> std::io::Result<Process> {
        let (mut command, entry, status) = match &self.isolation {
            Isolation::Bubblewrap { bwrap, .. } => {
                // The code may have locked its workspace (`chmod 000`): bubblewrap could not
                // enter it, and the code's failure would read as the sandbox's. Opened again.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&self.workspace, std::fs::Permissions::from_mode(0o700))?;
                let mut command = tokio::process::Command::new(bwrap);
                command.args(self.bwrap_args(spec)?);
                let (status_reader, status_writer) = std::io::pipe()?;
                let mut entry = self.entry(true, true);
                entry.fds = vec![
                    (
                        self.workspace_fd.as_ref().expect("bubblewrap").as_raw_fd(),
                        WORKSPACE_FD,
                    ),
                    (
                        self.tmp_fd.as_ref().expect("bubblewrap").as_raw_fd(),
                        TMP_FD,
                    ),
                    (status_writer.as_raw_fd(), STATUS_FD),
                ];
                (command, Some(entry), Some((status_reader, status_writer)))
            }
            Isolation::None => {
                let mut command = tokio::process::Command::new("/bin/sh");
                command.args(["-c", spec.command]).current_dir(spec.cwd);
                (command, None, None)
            }
        };
        command.env_clear();
        command
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("HOME", self.inside(&self.workspace))
            .env("TMPDIR", self.tmp_inside())
            .env("LANG", "C.UTF-8")
            .env("CI", "true");
        for (key, value) in crate::passed_through_env() {
            command.env(key, value);
        }
        for (key, value) in spec.env {
            command.env(key, value);
        }
        let rlimits = Rlimits {
            file_size: Some(self.quotas.disk_mb * 1024 * 1024),
            cpu_seconds: Some(self.quotas.cpu_secs),
            // Without a pids cgroup, the sandbox user's process count is the fallback.
            processes: (self.cgroup.is_none() && self.drop_to.is_some())
                .then_some(self.quotas.max_processes),
        };
        let mut process = process::spawn(command, entry, rlimits, lines)?;
        if let Some((reader, writer)) = status {
            // Only bubblewrap holds the writing end now: its exit is the end of the status.
            drop(writer);
            process.report_sandbox_status(std::fs::File::from(std::os::fd::OwnedFd::from(reader)));
        }
        let mut groups = self.watch.groups.lock().expect("watch lock");
        groups.retain(|g| g.strong_count() > 0);
        groups.push(Arc::downgrade(process.group()));
        Ok(process)
    }

    fn tmp_inside(&self) -> PathBuf {
        match self.isolation {
            Isolation::Bubblewrap { .. } => PathBuf::from("/tmp"),
            Isolation::None => self.tmp.clone(),
        }
    }

    /// A TCP connection to `127.0.0.1:port` inside the cell (the service's health check, the
    /// browser). Made by a short-lived child that enters the cell and hands the socket back.
    pub async fn connect(&self, port: u16) -> std::io::Result<tokio::net::TcpStream> {
        if self.namespaces.is_none() {
            return tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
        }
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let channel = theirs.as_raw_fd();
        let entry = self.entry(false, true);
        let mut helper = std::process::Command::new("/bin/true");
        helper.stdin(std::process::Stdio::null());
        // SAFETY: Entry and connect_and_send use only async-signal-safe calls.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut helper, move || {
                entry.apply()?;
                enter::connect_and_send(port, channel)
            });
        }
        let fd = tokio::task::spawn_blocking(move || {
            let mut child = helper.spawn()?;
            drop(theirs);
            let received = enter::receive_fd(ours.as_raw_fd());
            let _ = child.wait();
            received
        })
        .await
        .map_err(std::io::Error::other)??;
        let stream = std::net::TcpStream::from(fd);
        stream.set_nonblocking(true)?;
        tokio::net::TcpStream::from_std(stream)
    }

    /// Stops the watcher, kills whatever still runs in the cell and its helpers.
    pub async fn close(mut self) {
        self.stop_watch.cancel();
        if let Some(mut pasta) = self.pasta.take() {
            // Nothing of pasta's is worth a graceful end, nor waiting for its namespace's
            // teardown: it is reaped in the background.
            pasta.group().signal(libc::SIGKILL);
            tokio::spawn(async move { pasta.kill().await });
        }
        if let Some(cgroup) = self.cgroup.take() {
            let _ = tokio::task::spawn_blocking(move || cgroup.remove()).await;
        }
    }
}

impl Drop for Cell {
    fn drop(&mut self) {
        self.stop_watch.cancel();
        if let Some(pasta) = &self.pasta {
            pasta.group().signal(libc::SIGKILL);
        }
        if let Some(cgroup) = self.cgroup.take() {
            std::thread::spawn(move || cgroup.remove());
        }
    }
}
