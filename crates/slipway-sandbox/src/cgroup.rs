//! A cell's control group: its memory and process-count limits, and the counters that tell
//! whether a limit was hit. cgroup v2 when the machine has it (under Slipway's own cgroup, or
//! the root when Slipway is there), else the v1 `memory`, `pids` and `cpuacct` hierarchies.
//! Needs write access to the hierarchy (root, or a delegated subtree); without it a cell has
//! no cgroup and only the per-process rlimits apply.

use std::ffi::CString;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

#[derive(Debug)]
pub(crate) struct Cgroup {
    v2: bool,
    /// One directory on v2; memory, pids and cpuacct directories on v1.
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
    /// A new cgroup for `name` with `limits`; `Err` says why there is none. Its directory
    /// ends in `.<pid>` of this process, so that what a crash left can be told apart.
    pub fn create(name: &str, limits: CgroupLimits) -> Result<Self, String> {
        let (v2, parents) = parents()?;
        let mut group = Cgroup {
            v2,
            dirs: Vec::new(),
        };
        let made = (|| {
            for parent in parents {
                let dir = parent.join(format!("{name}.{}", std::process::id()));
                mkdir(&dir)?;
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

    fn limit(&self, limits: CgroupLimits) -> Result<(), String> {
        let (memory, processes) = (
            limits.memory_bytes.to_string(),
            limits.max_processes.to_string(),
        );
        if self.v2 {
            write(&self.dirs[0].join("memory.max"), &memory)?;
            write(&self.dirs[0].join("memory.swap.max"), "0").ok();
            write(&self.dirs[0].join("pids.max"), &processes)
        } else {
            write(&self.dirs[0].join("memory.limit_in_bytes"), &memory)?;
            write(&self.dirs[0].join("memory.memsw.limit_in_bytes"), &memory).ok();
            write(&self.dirs[1].join("pids.max"), &processes)
        }
    }

    /// Removes the cgroups of cells whose Slipway process is gone (killed, crashed). Their
    /// processes died with it; one whose last members are not reaped yet is left for the
    /// next start rather than waited for.
    pub fn remove_stale() {
        let Ok((_, parents)) = parents() else { return };
        for parent in parents {
            let Ok(entries) = std::fs::read_dir(&parent) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let owner = name
                    .rsplit_once('.')
                    .and_then(|(_, pid)| pid.parse::<u32>().ok());
                if owner.is_some_and(|pid| !Path::new("/proc").join(pid.to_string()).exists()) {
                    let _ = std::fs::remove_dir(entry.path());
                }
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
        let (memory, pids) = if self.v2 {
            (
                counter(&self.dirs[0].join("memory.events"), "oom_kill"),
                counter(&self.dirs[0].join("pids.events"), "max"),
            )
        } else {
            (
                counter(&self.dirs[0].join("memory.oom_control"), "oom_kill"),
                counter(&self.dirs[1].join("pids.events"), "max"),
            )
        };
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
        if self.v2 {
            counter(&self.dirs[0].join("cpu.stat"), "usage_usec") / 1_000_000
        } else {
            std::fs::read_to_string(self.dirs[2].join("cpuacct.usage"))
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(0)
                / 1_000_000_000
        }
    }

    /// Kills every process in the cgroup.
    pub fn kill_all(&self) {
        let Some(first) = self.dirs.first() else {
            return;
        };
        if self.v2 && write(&first.join("cgroup.kill"), "1").is_ok() {
            return;
        }
        // v1 (or an old v2 kernel): signal each member until none is left.
        for _ in 0..50 {
            let procs = std::fs::read_to_string(first.join("cgroup.procs")).unwrap_or_default();
            let pids: Vec<i32> = procs.lines().filter_map(|l| l.parse().ok()).collect();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Kills what is left and removes the cgroup.
    pub fn remove(&self) {
        self.kill_all();
        for dir in &self.dirs {
            for _ in 0..100 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

/// The directories cells' cgroups go in: one on v2; the memory, pids and cpuacct ones on
/// v1, under this process's own cgroups. `true` for v2.
fn parents() -> Result<(bool, Vec<PathBuf>), String> {
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    if Path::new(ROOT).join("cgroup.controllers").exists() {
        let path = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or("no cgroup v2 path for this process")?;
        return Ok((true, vec![v2_base(path)?]));
    }
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
                .ok_or(format!("no cgroup v1 {controller} controller"))?;
            Ok(Path::new(ROOT)
                .join(controller)
                .join(path.trim_start_matches('/'))
                .join("slipway"))
        })
        .collect::<Result<_, String>>()?;
    Ok((false, parents))
}

/// The v2 directory cells go under, with the memory and pids controllers enabled for it:
/// `slipway-cells` at the top of the hierarchy when Slipway may write there (root), else in
/// Slipway's own (delegated) cgroup. A cgroup with processes cannot hand controllers to
/// children, so in its own cgroup Slipway first moves itself into a leaf.
fn v2_base(own: &str) -> Result<PathBuf, String> {
    let enabled = |dir: &Path| {
        std::fs::read_to_string(dir.join("cgroup.subtree_control"))
            .is_ok_and(|c| c.contains("memory") && c.contains("pids"))
    };
    let top = Path::new(ROOT).join("slipway-cells");
    let at_top = || -> Result<PathBuf, String> {
        write(
            &Path::new(ROOT).join("cgroup.subtree_control"),
            "+memory +pids",
        )?;
        mkdir(&top)?;
        if !enabled(&top) {
            write(&top.join("cgroup.subtree_control"), "+memory +pids")?;
        }
        Ok(top.clone())
    };
    let top_error = match at_top() {
        Ok(base) => return Ok(base),
        Err(error) => error,
    };
    let own_dir = Path::new(ROOT).join(own.trim().trim_start_matches('/'));
    let base = own_dir.join("slipway-cells");
    if enabled(&base) {
        return Ok(base);
    }
    let delegated = || -> Result<PathBuf, String> {
        let leaf = own_dir.join("slipway-server");
        mkdir(&leaf)?;
        write(&leaf.join("cgroup.procs"), &std::process::id().to_string())?;
        write(&own_dir.join("cgroup.subtree_control"), "+memory +pids")?;
        mkdir(&base)?;
        write(&base.join("cgroup.subtree_control"), "+memory +pids")?;
        Ok(base.clone())
    };
    delegated().map_err(|error| format!("{top_error}; {error}"))
}

fn mkdir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

fn write(file: &Path, value: &str) -> Result<(), String> {
    std::fs::write(file, value).map_err(|e| format!("cannot write {}: {e}", file.display()))
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
