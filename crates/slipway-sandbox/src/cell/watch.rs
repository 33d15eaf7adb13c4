//! A cell's quotas: the cgroup's counters and a watcher for what no cgroup limits (disk
//! use, total CPU time). Past a quota, every process of the cell is killed and the reason
//! is kept for the step's report.

use super::Cell;
use crate::cgroup::{Cgroup, Hit};
use crate::process::Group;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Mutex, Weak};
use std::time::Duration;

const DISK_CHECK_EVERY: Duration = Duration::from_secs(1);
/// Measurements in a row that may fail before the disk quota counts as exceeded.
const UNMEASURED_TIMES: u32 = 3;

/// Limits per cell (one validation, or one agent turn).
#[derive(Debug, Clone, Copy)]
pub struct Quotas {
    pub memory_mb: u64,
    pub max_processes: u64,
    /// The workspace and `/tmp` together; also the largest file.
    pub disk_mb: u64,
    /// CPU time of all the cell's processes together.
    pub cpu_secs: u64,
    /// Files and directories in the workspace and `/tmp` together (each costs the host an
    /// inode, and a snapshot a copy, whatever its size).
    pub max_files: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            memory_mb: 2_048,
            max_processes: 512,
            disk_mb: 2_048,
            cpu_secs: 3_600,
            max_files: 500_000,
        }
    }
}

/// Shared with the disk and CPU watcher.
#[derive(Debug, Default)]
pub(super) struct Watch {
    pub(super) exceeded: Mutex<Option<String>>,
    /// The process groups of the cell's commands (signalled only while their leaders live).
    pub(super) groups: Mutex<Vec<Weak<Group>>>,
    /// The host's addresses closed to the cell so far (see `network.rs`).
    pub(super) closed_addresses: Mutex<BTreeSet<IpAddr>>,
}

impl Watch {
    /// Kills every process of the cell: through its cgroup, and each command's group.
    fn kill_all(&self, cgroup: Option<&Cgroup>) {
        for group in self.groups.lock().expect("watch lock").iter() {
            if let Some(group) = group.upgrade() {
                group.signal(libc::SIGKILL);
            }
        }
        if let Some(cgroup) = cgroup {
            cgroup.kill_all();
        }
    }
}

impl Cell {
    /// The disk watcher (and the CPU one where there is a cgroup): past a quota, every
    /// process of the cell is killed and the reason kept for the step's report.
    pub(super) fn start_watch(&self) {
        let watch = self.watch.clone();
        let stop = self.stop_watch.clone();
        let (workspace, tmp, quotas) = (self.workspace.clone(), self.tmp.clone(), self.quotas);
        let cgroup = self.cgroup.clone();
        // Only a cell with outbound access can reach the host's addresses.
        let outbound = self.pasta.as_ref().and(self.namespaces.clone());
        let drop_to = self.drop_to;
        tokio::spawn(async move {
            let mut unmeasured = 0;
            let mut pause = DISK_CHECK_EVERY;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
                let (ws, tmp) = (workspace.clone(), tmp.clone());
                let started = std::time::Instant::now();
                let used = tokio::task::spawn_blocking(move || {
                    Ok::<_, std::io::Error>(usage(&ws)? + usage(&tmp)?)
                })
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
                // A huge tree is measured less often, so that measuring never takes over.
                pause = DISK_CHECK_EVERY.max(started.elapsed() * 4);
                // A tree that cannot be measured (moved while read, say) gets another look;
                // one that stays unmeasurable counts as over the quota, never as empty.
                unmeasured = if used.is_ok() { 0 } else { unmeasured + 1 };
                let walled = match &outbound {
                    Some(namespaces) => {
                        let closed = &watch.closed_addresses;
                        super::network::close_new_addresses(namespaces, drop_to, closed).await
                    }
                    None => Ok(()),
                };
                let reason = if let Err(error) = walled {
                    Some(format!(
                        "the host gained an address that could not be closed to the cell: {error}"
                    ))
                } else {
                    over_quota(&quotas, cgroup.as_deref(), &used, unmeasured)
                };
                if let Some(reason) = reason {
                    *watch.exceeded.lock().expect("watch lock") = Some(reason);
                    watch.kill_all(cgroup.as_deref());
                    // Once: the step fails and the cell is closed; nothing is killed again.
                    return;
                }
            }
        });
    }

    /// The quota the cell's processes ran into, in words, if any.
    pub fn exceeded(&self) -> Option<String> {
        if let Some(reason) = self.watch.exceeded.lock().expect("watch lock").clone() {
            return Some(reason);
        }
        Some(hit_reason(self.cgroup.as_ref()?.hit()?, &self.quotas))
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

/// What a cell's files take: disk, and entries (inodes).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    pub bytes: u64,
    pub entries: u64,
}

impl std::ops::Add for Usage {
    type Output = Usage;
    fn add(self, other: Usage) -> Usage {
        Usage {
            bytes: self.bytes.saturating_add(other.bytes),
            entries: self.entries.saturating_add(other.entries),
        }
    }
}

/// What the files below `root` take.
fn usage(root: &Path) -> std::io::Result<Usage> {
    let bytes = std::cell::Cell::new(0u64);
    let entries = crate::tree::total(root, |stat| {
        bytes.set(bytes.get().saturating_add(stat.st_blocks as u64 * 512));
        1
    })?;
    Ok(Usage {
        bytes: bytes.get(),
        entries,
    })
}

/// The quota the cell is past, in words: the cgroup's, then disk and files, then CPU.
fn over_quota(
    quotas: &Quotas,
    cgroup: Option<&Cgroup>,
    used: &std::io::Result<Usage>,
    unmeasured: u32,
) -> Option<String> {
    if let Some(hit) = cgroup.and_then(|c| c.hit()) {
        return Some(hit_reason(hit, quotas));
    }
    match used {
        Err(error) if unmeasured >= UNMEASURED_TIMES => {
            return Some(format!(
                "the step's disk use could not be measured ({error}); counted as over the {} MiB quota ([sandbox] disk_mb)",
                quotas.disk_mb
            ))
        }
        Ok(used) if used.bytes > quotas.disk_mb * 1024 * 1024 => {
            return Some(format!(
                "the step used more than {} MiB of disk (workspace and /tmp; [sandbox] disk_mb)",
                quotas.disk_mb
            ))
        }
        Ok(used) if used.entries > quotas.max_files => {
            return Some(format!(
                "the step made more than {} files and directories (workspace and /tmp; [sandbox] max_files)",
                quotas.max_files
            ))
        }
        _ => {}
    }
    cgroup
        .is_some_and(|c| c.cpu_seconds() > quotas.cpu_secs)
        .then(|| {
            format!(
                "the validation used more than {} s of CPU time ([sandbox] cpu_secs)",
                quotas.cpu_secs
            )
        })
}
