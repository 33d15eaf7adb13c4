//! A cell's control group: its memory and process-count limits, and the counters that tell
//! whether a limit was hit. cgroup v2 when the machine has it (under Slipway's own cgroup, or
//! the root when Slipway is there), else the v1 `memory`, `pids` and `cpuacct` hierarchies.
//! Needs write access to the hierarchy (root, or a delegated subtree); without it a cell has
//! no cgroup and only the per-process rlimits apply (said once, see [`unenforced`]).
//!
//! Processes are only ever killed through a cgroup: `cgroup.kill` on v2, else the members its
//! `cgroup.procs` lists at that moment, each checked to be in it through a pidfd first.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

const ROOT: &str = "/sys/fs/cgroup";
/// Every cell's cgroup is named `cell-<name>.<seq>.<pid>.<start>`: only such directories are
/// ever removed as stale.
const PREFIX: &str = "cell-";
/// The leaf Slipway moves itself into in a delegated v2 cgroup.
const SERVER_LEAF: &str = "slipway-server";
/// How to get quotas enforced when Slipway cannot make cgroups.
pub(crate) const HOW_TO_ENFORCE: &str = "to enforce them, run Slipway as root or in a delegated \
     cgroup (systemd-run --user --scope -p Delegate=yes slipway serve, or validate)";

/// Why a cell has no cgroup.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CgroupError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot create {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("no cgroup v2 path for this process")]
    NoV2Path,
    #[error("no cgroup v1 {0} controller")]
    NoV1Controller(&'static str),
    /// Neither at the top of the v2 hierarchy nor in Slipway's own cgroup.
    #[error("{top}; {own}")]
    NotDelegated {
        top: Box<CgroupError>,
        own: Box<CgroupError>,
    },
}

/// The note a cell without a cgroup carries (for its log); the first one is also logged as a
/// warning, once per process.
pub(crate) fn unenforced(why: &CgroupError) -> String {
    static WARNED: Once = Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            "memory and process quotas are not enforced: Slipway cannot make cgroups here \
             ({why}); {HOW_TO_ENFORCE}"
        )
    });
    format!("memory and process quotas are not enforced here ({why}); {HOW_TO_ENFORCE}")
}

#[derive(Debug)]
pub(crate) struct Cgroup {
    v2: bool,
    /// One directory on v2; memory, pids and cpuacct directories on v1 (fewer while being
    /// made, or none).
    dirs: Vec<PathBuf>,
}

/// What the limits of a cell's cgroup are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CgroupLimits {
    pub memory_bytes: u64,
    pub max_processes: u64,
}

/// Which limit a cell's processes ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hit {
    Memory,
    Processes,
}

impl Cgroup {
    /// A new cgroup for `name` with `limits`; `Err` says why there is none. Each is new (two
    /// cells of one name never share one), and its name carries this process's id and start
    /// time, so that what a crash left can be told apart from a live Slipway's.
    pub fn create(name: &str, limits: CgroupLimits) -> Result<Self, CgroupError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let (v2, parents) = parents()?;
        let (pid, start) = owner();
        let leaf = format!(
            "{PREFIX}{name}.{}.{pid}.{start}",
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut group = Cgroup {
            v2,
            dirs: Vec::new(),
        };
        let made = (|| {
            for parent in parents {
                mkdir_all(&parent)?;
                let dir = parent.join(&leaf);
                std::fs::create_dir(&dir).map_err(|source| CgroupError::Create {
                    path: dir.clone(),
                    source,
                })?;
                group.dirs.push(dir);
            }
            group.limit(limits)
        })();
        match made {
            Ok(()) => Ok(group),
            Err(error) => {
                group.remove();
                Err(error)
            }
        }
    }

    fn memory_dir(&self) -> Option<&Path> {
        self.dirs.first().map(PathBuf::as_path)
    }

    fn pids_dir(&self) -> Option<&Path> {
        self.dirs
            .get(if self.v2 { 0 } else { 1 })
            .map(PathBuf::as_path)
    }

    fn cpu_dir(&self) -> Option<&Path> {
        self.dirs
            .get(if self.v2 { 0 } else { 2 })
            .map(PathBuf::as_path)
    }

    fn limit(&self, limits: CgroupLimits) -> Result<(), CgroupError> {
        let (Some(memory_dir), Some(pids_dir)) = (self.memory_dir(), self.pids_dir()) else {
            return Err(CgroupError::NoV1Controller("memory or pids"));
        };
        let (memory, processes) = (
            limits.memory_bytes.to_string(),
            limits.max_processes.to_string(),
        );
        if self.v2 {
            write(&memory_dir.join("memory.max"), &memory)?;
            // Not every kernel has swap accounting.
            write(&memory_dir.join("memory.swap.max"), "0").ok();
        } else {
            write(&memory_dir.join("memory.limit_in_bytes"), &memory)?;
            write(&memory_dir.join("memory.memsw.limit_in_bytes"), &memory).ok();
        }
        write(&pids_dir.join("pids.max"), &processes)
    }

    /// Removes the cgroups of cells whose Slipway process is gone (killed, crashed): what is
    /// left in one is killed through it first. Only Slipway's own (`cell-…`) are touched; one
    /// that cannot be removed is reported and tried again at the next start.
    pub fn remove_stale() {
        let Ok((v2, parents)) = parents() else { return };
        for parent in parents {
            let Ok(entries) = std::fs::read_dir(&parent) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                if !is_dir || !stale(&name) {
                    continue;
                }
                let group = Cgroup {
                    v2,
                    dirs: vec![entry.path()],
                };
                group.remove();
            }
        }
    }

    /// The `cgroup.procs` files a child writes itself into.
    pub fn procs_files(&self) -> Vec<CString> {
        self.dirs
            .iter()
            .map(|d| CString::new(d.join("cgroup.procs").display().to_string()).expect("no NUL"))
            .collect()
    }

    /// Which limit was hit, if one was.
    pub fn hit(&self) -> Option<Hit> {
        let memory = self.memory_dir().map_or(0, |dir| {
            if self.v2 {
                counter(&dir.join("memory.events"), "oom_kill")
            } else {
                counter(&dir.join("memory.oom_control"), "oom_kill")
            }
        });
        let pids = self
            .pids_dir()
            .map_or(0, |dir| counter(&dir.join("pids.events"), "max"));
        if memory > 0 {
            Some(Hit::Memory)
        } else if pids > 0 {
            Some(Hit::Processes)
        } else {
            None
        }
    }

    /// CPU time used by every process of the cell so far.
    pub fn cpu_seconds(&self) -> u64 {
        let Some(dir) = self.cpu_dir() else { return 0 };
        if self.v2 {
            counter(&dir.join("cpu.stat"), "usage_usec") / 1_000_000
        } else {
            std::fs::read_to_string(dir.join("cpuacct.usage"))
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(0)
                / 1_000_000_000
        }
    }

    /// Kills every process in the cgroup (none when it has no directory).
    pub fn kill_all(&self) {
        if self.v2 {
            if let Some(dir) = self.dirs.first() {
                if write(&dir.join("cgroup.kill"), "1").is_ok() {
                    return;
                }
            }
        }
        // v1 (or a v2 kernel before 5.14): signal the members each directory lists now,
        // until none is left (a member may fork meanwhile; the pids limit bounds that).
        for dir in &self.dirs {
            for _ in 0..50 {
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                let pids: Vec<i32> = procs.lines().filter_map(|l| l.parse().ok()).collect();
                if pids.is_empty() {
                    break;
                }
                for pid in pids {
                    kill_member(pid, dir);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Kills what is left and removes the cgroup; a removal that fails is logged (a stale
    /// one is tried again at the next start).
    pub fn remove(&self) {
        self.kill_all();
        for dir in &self.dirs {
            let mut last = None;
            for _ in 0..100 {
                match std::fs::remove_dir(dir) {
                    Ok(()) => {
                        last = None;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        last = None;
                        break;
                    }
                    // Members killed but not reaped yet keep it busy for a moment.
                    Err(e) => last = Some(e),
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            if let Some(error) = last {
                tracing::warn!(
                    cgroup = %dir.display(),
                    "a cell's cgroup could not be removed ({error}); the next start tries again"
                );
            }
        }
    }
}

/// SIGKILL to `pid` only while it is a member of the cgroup at `dir`: a pidfd pins the
/// process, then its own `/proc` entry must name that cgroup (a reused number names another).
fn kill_member(pid: i32, dir: &Path) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if pidfd < 0 {
        if io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) && in_cgroup(pid, dir) {
            // A kernel before 5.3: no pidfds, the smallest window left is this one.
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        return;
    }
    // SAFETY: pidfd is a descriptor this function just opened and owns.
    let pidfd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(pidfd) };
    if in_cgroup(pid, dir) {
        // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                std::os::fd::AsRawFd::as_raw_fd(&pidfd),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }
}

/// Whether `/proc/<pid>/cgroup` puts the process in the cgroup at `dir`.
fn in_cgroup(pid: i32, dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return false;
    };
    // `dir` below /sys/fs/cgroup (v2) or /sys/fs/cgroup/<controller> (v1).
    let Ok(below) = dir.strip_prefix(ROOT) else {
        return false;
    };
    text.lines().any(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            return false;
        };
        let path = Path::new(path.trim_start_matches('/'));
        if controllers.is_empty() {
            below == path
        } else {
            controllers
                .split(',')
                .any(|c| below == Path::new(c).join(path))
        }
    })
}

/// Whether `name` is a cell cgroup of a Slipway process that is gone: its owner's id is free,
/// or now another process's (another start time).
fn stale(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PREFIX) else {
        return false;
    };
    let mut parts = rest.rsplitn(4, '.');
    let (Some(start), Some(pid), Some(seq), Some(_name)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Ok(start), Ok(pid), Ok(_)) =
        (start.parse::<u64>(), pid.parse::<u32>(), seq.parse::<u64>())
    else {
        return false;
    };
    start_time(pid) != Some(start)
}

/// This process's id and start time (clock ticks after boot).
fn owner() -> (u32, u64) {
    let pid = std::process::id();
    (pid, start_time(pid).unwrap_or(0))
}

/// A process's start time from `/proc/<pid>/stat` (field 22), if it exists.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after its last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// The directories cells' cgroups go in: one on v2; the memory, pids and cpuacct ones on
/// v1, under this process's own cgroups. `true` for v2. Found once per process, when found.
fn parents() -> Result<(bool, Vec<PathBuf>), CgroupError> {
    static FOUND: Mutex<Option<(bool, Vec<PathBuf>)>> = Mutex::new(None);
    let mut found = FOUND.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = &*found {
        return Ok(found.clone());
    }
    let path = PathBuf::from("/proc/self/cgroup");
    let own =
        std::fs::read_to_string(&path).map_err(|source| CgroupError::Read { path, source })?;
    let parents = if Path::new(ROOT).join("cgroup.controllers").exists() {
        let path = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or(CgroupError::NoV2Path)?;
        (true, vec![v2_base(path)?])
    } else {
        let parents = ["memory", "pids", "cpuacct"]
            .into_iter()
            .map(|controller| {
                let path = own
                    .lines()
                    .find_map(|l| {
                        let mut parts = l.splitn(3, ':');
                        let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
                        names.split(',').any(|n| n == controller).then_some(path)
                    })
                    .ok_or(CgroupError::NoV1Controller(controller))?;
                Ok(Path::new(ROOT)
                    .join(controller)
                    .join(path.trim_start_matches('/'))
                    .join("slipway"))
            })
            .collect::<Result<_, CgroupError>>()?;
        (false, parents)
    };
    *found = Some(parents.clone());
    Ok(parents)
}

/// The v2 directory cells go under, with the memory and pids controllers enabled for it:
/// `slipway-cells` at the top of the hierarchy when Slipway may write there (root), else in
/// Slipway's own (delegated) cgroup. A cgroup with processes cannot hand controllers to
/// children, so in its own cgroup Slipway first moves itself (and what else is there) into a
/// leaf.
fn v2_base(own: &str) -> Result<PathBuf, CgroupError> {
    let enabled = |dir: &Path| {
        std::fs::read_to_string(dir.join("cgroup.subtree_control"))
            .is_ok_and(|c| c.contains("memory") && c.contains("pids"))
    };
    let top = Path::new(ROOT).join("slipway-cells");
    let at_top = || -> Result<PathBuf, CgroupError> {
        write(
            &Path::new(ROOT).join("cgroup.subtree_control"),
            "+memory +pids",
        )?;
        mkdir_all(&top)?;
        if !enabled(&top) {
            write(&top.join("cgroup.subtree_control"), "+memory +pids")?;
        }
        Ok(top.clone())
    };
    let top_error = match at_top() {
        Ok(base) => return Ok(base),
        Err(error) => error,
    };
    // Already moved into the leaf (by this process): its parent is the delegated cgroup.
    let own = own.trim().trim_start_matches('/');
    let own = own
        .strip_suffix(SERVER_LEAF)
        .map_or(own, |o| o.trim_end_matches('/'));
    let own_dir = Path::new(ROOT).join(own);
    let base = own_dir.join("slipway-cells");
    if enabled(&base) {
        return Ok(base);
    }
    let delegated = || -> Result<PathBuf, CgroupError> {
        let leaf = own_dir.join(SERVER_LEAF);
        mkdir_all(&leaf)?;
        write(&leaf.join("cgroup.procs"), &std::process::id().to_string())?;
        // Whatever else runs there (cargo run's cargo, a test runner) moves along: all of
        // it is inside the delegated cgroup, and one left behind blocks the controllers.
        let others = std::fs::read_to_string(own_dir.join("cgroup.procs")).unwrap_or_default();
        for pid in others.lines() {
            let _ = write(&leaf.join("cgroup.procs"), pid);
        }
        write(&own_dir.join("cgroup.subtree_control"), "+memory +pids")?;
        mkdir_all(&base)?;
        write(&base.join("cgroup.subtree_control"), "+memory +pids")?;
        Ok(base.clone())
    };
    delegated().map_err(|own| CgroupError::NotDelegated {
        top: Box::new(top_error),
        own: Box::new(own),
    })
}

fn mkdir_all(dir: &Path) -> Result<(), CgroupError> {
    std::fs::create_dir_all(dir).map_err(|source| CgroupError::Create {
        path: dir.to_path_buf(),
        source,
    })
}

fn write(file: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(file, value).map_err(|source| CgroupError::Write {
        path: file.to_path_buf(),
        source,
    })
}

/// The value of `key` in a flat-keyed cgroup file (`key value` lines).
fn counter(file: &Path, key: &str) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let (k, v) = line.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok()).flatten()
            })
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_slipways_cell_cgroups_of_a_gone_process_are_stale() {
        let (pid, start) = owner();
        assert!(!stale(&format!("cell-validation-1.0.{pid}.{start}")));
        // The same id with another start time: the id was reused.
        assert!(stale(&format!("cell-validation-1.0.{pid}.{}", start + 1)));
        assert!(stale("cell-test-.tmpAb.c.3.4194303.1"));
        for foreign in [
            "validation-1.99999999",
            "user.slice",
            "cell-x",
            "cell-x.1.2",
        ] {
            assert!(!stale(foreign), "{foreign}");
        }
    }

    #[test]
    fn a_cgroup_with_no_directory_does_nothing_and_reports_nothing() {
        for v2 in [true, false] {
            let group = Cgroup {
                v2,
                dirs: Vec::new(),
            };
            group.kill_all();
            assert_eq!(group.hit(), None);
            assert_eq!(group.cpu_seconds(), 0);
            assert!(group.procs_files().is_empty());
            group.remove();
        }
    }

    #[test]
    fn membership_is_read_from_the_process_own_cgroup_file() {
        let me = std::process::id() as i32;
        let text = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let line = text.lines().next().unwrap();
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        let mut dir = PathBuf::from(ROOT);
        if let Some(first) = controllers.split(',').next().filter(|c| !c.is_empty()) {
            dir.push(first);
        }
        dir.push(path.trim_start_matches('/'));
        assert!(in_cgroup(me, &dir), "{dir:?} from {line}");
        assert!(!in_cgroup(me, &dir.join("cell-other.0.1.1")));
    }
}
