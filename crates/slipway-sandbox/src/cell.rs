//! A cell: where one validation's (or one agent turn's) commands run, together. They share
//! a network namespace (the service listens there; tests, the health check and the browser
//! reach it there), a cgroup, a workspace and a `/tmp`, and nothing else.

use crate::cgroup::{Cgroup, CgroupLimits, Hit};
use crate::enter::{self, Entry, Ids, NewNamespaces};
use crate::process::{self, Process, Rlimits};
use crate::{CommandSpec, Isolation, Sandbox};
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Where the workspace is inside the sandbox.
pub const WORKSPACE_INSIDE: &str = "/workspace";
/// Descriptor numbers the workspace and `/tmp` are handed to bubblewrap as.
const WORKSPACE_FD: i32 = 10;
const TMP_FD: i32 = 11;
const DISK_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Network access of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// Outbound connections through pasta (installs); the host's loopback stays unreachable.
    #[default]
    Outbound,
    /// Only the cell's own loopback.
    None,
}

/// Limits per cell (one validation, or one agent turn).
#[derive(Debug, Clone, Copy)]
pub struct Quotas {
    pub memory_mb: u64,
    pub max_processes: u64,
    /// The workspace and `/tmp` together; also the largest file.
    pub disk_mb: u64,
    /// CPU time of all the cell's processes together.
    pub cpu_secs: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            memory_mb: 2_048,
            max_processes: 512,
            disk_mb: 2_048,
            cpu_secs: 3_600,
        }
    }
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
    /// Names the cell's cgroup.
    pub name: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum CellError {
    #[error("the sandbox could not be made: {0}")]
    Setup(String),
}

fn setup(what: &str) -> impl FnOnce(std::io::Error) -> CellError + '_ {
    move |e| CellError::Setup(format!("{what}: {e}"))
}

/// Shared with the disk and CPU watcher.
#[derive(Debug, Default)]
struct Watch {
    exceeded: Mutex<Option<String>>,
    groups: Mutex<Vec<i32>>,
}

/// A running cell. [`Cell::close`] (or dropping it) kills whatever still runs in it.
pub struct Cell {
    isolation: Isolation,
    workspace: PathBuf,
    tmp: PathBuf,
    quotas: Quotas,
    hidden: Vec<PathBuf>,
    drop_to: Option<Ids>,
    /// The cell's user and network namespaces (bubblewrap only).
    namespaces: Option<(OwnedFd, OwnedFd)>,
    workspace_fd: Option<OwnedFd>,
    tmp_fd: Option<OwnedFd>,
    cgroup: Option<Arc<Cgroup>>,
    pasta: Option<Process>,
    watch: Arc<Watch>,
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
                Err(why) => cell.notes.push(format!(
                    "memory and process quotas are not enforced here ({why}); \
                     run Slipway as root or give it a delegated cgroup"
                )),
            }
            cell.namespaces = Some(cell.new_namespaces().await?);
            match (spec.network, pasta) {
                (Network::Outbound, Some(pasta)) => {
                    cell.pasta = Some(cell.start_pasta(pasta).await?)
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
    fn entry(&self, join_namespaces: bool) -> Entry {
        Entry {
            cgroup_procs: self
                .cgroup
                .as_ref()
                .map(|c| c.procs_files())
                .unwrap_or_default(),
            drop_to: self.drop_to,
            namespaces: if join_namespaces {
                self.namespaces
                    .as_ref()
                    .map(|(user, net)| (user.as_raw_fd(), net.as_raw_fd()))
            } else {
                None
            },
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
        let mut entry = self.entry(false);
        entry.cgroup_procs.clear();
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
        let (user, net) = self.namespaces.as_ref().expect("made first");
        let mut entry = self.entry(false);
        entry.cgroup_procs.clear();
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
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
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
                return Err(CellError::Setup(format!(
                    "pasta ended ({outcome:?}): {}",
                    said.join(" ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        process.kill().await;
        Err(CellError::Setup(
            "pasta did not become ready within a second".into(),
        ))
    }

    /// The disk watcher (and the CPU one where there is a cgroup): past a quota, every
    /// process of the cell is killed and the reason kept for the step's report.
    fn start_watch(&self) {
        let watch = self.watch.clone();
        let stop = self.stop_watch.clone();
        let (workspace, tmp, quotas) = (self.workspace.clone(), self.tmp.clone(), self.quotas);
        let cgroup = self.cgroup.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(DISK_CHECK_EVERY) => {}
                }
                let (ws, tmp) = (workspace.clone(), tmp.clone());
                let used = tokio::task::spawn_blocking(move || disk_usage(&ws) + disk_usage(&tmp))
                    .await
                    .unwrap_or(0);
                let reason = if let Some(hit) = cgroup.as_ref().and_then(|c| c.hit()) {
                    Some(hit_reason(hit, &quotas))
                } else if used > quotas.disk_mb * 1024 * 1024 {
                    Some(format!(
                        "the step used more than {} MiB of disk (workspace and /tmp; [sandbox] disk_mb)",
                        quotas.disk_mb
                    ))
                } else if cgroup
                    .as_ref()
                    .is_some_and(|c| c.cpu_seconds() > quotas.cpu_secs)
                {
                    Some(format!(
                        "the validation used more than {} s of CPU time ([sandbox] cpu_secs)",
                        quotas.cpu_secs
                    ))
                } else {
                    None
                };
                if let Some(reason) = reason {
                    *watch.exceeded.lock().expect("watch lock") = Some(reason);
                    for pgid in watch.groups.lock().expect("watch lock").iter() {
                        crate::kill_group(*pgid, libc::SIGKILL);
                    }
                    if let Some(cgroup) = &cgroup {
                        cgroup.kill_all();
                    }
                }
            }
        });
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

    /// The quota the cell's processes ran into, in words, if any.
    pub fn exceeded(&self) -> Option<String> {
        if let Some(reason) = self.watch.exceeded.lock().expect("watch lock").clone() {
            return Some(reason);
        }
        Some(hit_reason(self.cgroup.as_ref()?.hit()?, &self.quotas))
    }

    /// Process groups of the cell's helpers (pasta), for crash clean-up.
    pub fn helper_groups(&self) -> Vec<i32> {
        self.pasta.iter().map(Process::pgid).collect()
    }

    /// Starts a command in the cell; its output lines go to `lines`.
    pub fn spawn(
        &self,
        spec: &CommandSpec<'_>,
        lines: tokio::sync::mpsc::UnboundedSender<String>,
    ) -> std::io::Result<Process> {
        let (mut command, entry) = match &self.isolation {
            Isolation::Bubblewrap { bwrap, .. } => {
                let mut command = tokio::process::Command::new(bwrap);
                command.args(self.bwrap_args(spec)?);
                let mut entry = self.entry(true);
                entry.fds = vec![
                    (
                        self.workspace_fd.as_ref().expect("bubblewrap").as_raw_fd(),
                        WORKSPACE_FD,
                    ),
                    (
                        self.tmp_fd.as_ref().expect("bubblewrap").as_raw_fd(),
                        TMP_FD,
                    ),
                ];
                (command, Some(entry))
            }
            Isolation::None => {
                let mut command = tokio::process::Command::new("/bin/sh");
                command.args(["-c", spec.command]).current_dir(spec.cwd);
                (command, None)
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
        let process = process::spawn(command, entry, rlimits, lines)?;
        let mut groups = self.watch.groups.lock().expect("watch lock");
        groups.retain(|g| process::group_alive(*g));
        groups.push(process.pgid());
        Ok(process)
    }

    fn tmp_inside(&self) -> PathBuf {
        match self.isolation {
            Isolation::Bubblewrap { .. } => PathBuf::from("/tmp"),
            Isolation::None => self.tmp.clone(),
        }
    }

    fn bwrap_args(&self, spec: &CommandSpec<'_>) -> std::io::Result<Vec<OsString>> {
        let mut args: Vec<OsString> = [
            "--unshare-user",
            "--uid",
            "1000",
            "--gid",
            "1000",
            "--disable-userns",
            "--cap-drop",
            "ALL",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--die-with-parent",
            "--new-session",
            "--tmpfs",
            "/",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let mut push =
            |items: &[&std::ffi::OsStr]| args.extend(items.iter().map(|s| s.to_os_string()));
        for entry in std::fs::read_dir("/")?.flatten() {
            let name = entry.file_name();
            let from = entry.path();
            if matches!(
                name.as_bytes(),
                b"proc" | b"dev" | b"tmp" | b"run" | b"workspace"
            ) {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_symlink() {
                let target = std::fs::read_link(&from)?;
                push(&["--symlink".as_ref(), target.as_os_str(), from.as_os_str()]);
            } else if kind.is_dir() || kind.is_file() {
                push(&["--ro-bind".as_ref(), from.as_os_str(), from.as_os_str()]);
            }
        }
        push(&[
            "--dev".as_ref(),
            "/dev".as_ref(),
            "--proc".as_ref(),
            "/proc".as_ref(),
        ]);
        push(&["--tmpfs".as_ref(), "/run".as_ref()]);
        let resolver = Path::new("/run/systemd/resolve");
        if resolver.is_dir() {
            push(&[
                "--ro-bind".as_ref(),
                resolver.as_os_str(),
                resolver.as_os_str(),
            ]);
        }
        let ids = self.drop_to;
        for hidden in &self.hidden {
            // A path the sandbox user cannot even reach needs no cover (and cannot get one).
            if !reachable(hidden, ids) {
                continue;
            }
            match std::fs::symlink_metadata(hidden) {
                Ok(meta) if meta.is_dir() => push(&["--tmpfs".as_ref(), hidden.as_os_str()]),
                Ok(_) => push(&[
                    "--ro-bind".as_ref(),
                    "/dev/null".as_ref(),
                    hidden.as_os_str(),
                ]),
                Err(_) => {}
            }
        }
        let (ws_fd, tmp_fd) = (WORKSPACE_FD.to_string(), TMP_FD.to_string());
        push(&[
            "--bind-fd".as_ref(),
            ws_fd.as_ref(),
            WORKSPACE_INSIDE.as_ref(),
        ]);
        push(&["--bind-fd".as_ref(), tmp_fd.as_ref(), "/tmp".as_ref()]);
        push(&["--remount-ro".as_ref(), "/".as_ref()]);
        let cwd = self.inside(spec.cwd);
        push(&["--chdir".as_ref(), cwd.as_os_str()]);
        push(&[
            "--".as_ref(),
            "/bin/sh".as_ref(),
            "-c".as_ref(),
            spec.command.as_ref(),
        ]);
        Ok(args)
    }

    /// A TCP connection to `127.0.0.1:port` inside the cell (the service's health check, the
    /// browser). Made by a short-lived child that enters the cell and hands the socket back.
    pub async fn connect(&self, port: u16) -> std::io::Result<tokio::net::TcpStream> {
        if self.namespaces.is_none() {
            return tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
        }
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let channel = theirs.as_raw_fd();
        let mut entry = self.entry(true);
        entry.cgroup_procs.clear();
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
            crate::kill_group(pasta.pgid(), libc::SIGKILL);
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
            crate::kill_group(pasta.pgid(), libc::SIGKILL);
        }
        if let Some(cgroup) = self.cgroup.take() {
            std::thread::spawn(move || cgroup.remove());
        }
    }
}

fn hit_reason(hit: Hit, quotas: &Quotas) -> String {
    match hit {
        Hit::Memory => format!(
            "the step used more than {} MiB of memory ([sandbox] memory_mb)",
            quotas.memory_mb
        ),
        Hit::Processes => format!(
            "the step tried to run more than {} processes at once ([sandbox] max_processes)",
            quotas.max_processes
        ),
    }
}

/// Whether a process with `ids` (or Slipway's own user) could reach `path` by name.
fn reachable(path: &Path, ids: Option<Ids>) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(ids) = ids else { return true };
    path.ancestors()
        .skip(1)
        .all(|dir| match std::fs::metadata(dir) {
            Ok(meta) => {
                let mode = meta.mode();
                if meta.uid() == ids.uid {
                    mode & 0o100 != 0
                } else if meta.gid() == ids.gid {
                    mode & 0o010 != 0
                } else {
                    mode & 0o001 != 0
                }
            }
            Err(_) => false,
        })
}

/// Bytes used on disk below `root` (symbolic links not followed).
fn disk_usage(root: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            total += meta.blocks() * 512;
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    total
}
