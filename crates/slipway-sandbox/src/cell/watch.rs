//! A cell's quotas: the cgroup's counters and a watcher for what no cgroup limits (disk
//! use, total CPU time). Past a quota, every process of the cell is killed and the reason
//! is kept for the step's report.

use super::Cell;
use crate::cgroup::Hit;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

const DISK_CHECK_EVERY: Duration = Duration::from_secs(1);

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

/// Shared with the disk and CPU watcher.
#[derive(Debug, Default)]
pub(super) struct Watch {
    pub(super) exceeded: Mutex<Option<String>>,
    pub(super) groups: Mutex<Vec<i32>>,
}

impl Cell {
    /// The disk watcher (and the CPU one where there is a cgroup): past a quota, every
    /// process of the cell is killed and the reason kept for the step's report.
    pub(super) fn start_watch(&self) {
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

/// Bytes used on disk below `root`.
fn disk_usage(root: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    crate::tree::total(root, |meta| meta.blocks() * 512)
}
