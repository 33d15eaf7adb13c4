//! Snapshots of prepared workspaces. After `setup`, what setup added to the checkout (the
//! files git does not track: `node_modules/`, `.venv/`, build caches) is saved under a key
//! made from the `cache_key` files' contents, the setup commands and the platform. A later
//! validation with the same key gets them back instead of running setup:
//! - each saved directory is mounted as the read-only lower layer of an overlay whose upper
//!   layer belongs to the validation (copy-on-write, constant time), when this process may
//!   mount (root) and the kernel has overlayfs;
//! - otherwise it is copied with `cp --reflink=auto` (a reflink where the filesystem has
//!   them, else a real copy).
//!
//! Either way a validation can never change a saved snapshot. Total size is capped; the least
//! recently used snapshots go first, never one that a running validation has mounted.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot IO on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Command(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The key of a prepared workspace.
pub fn key(workspace: &Path, cache_key_files: &[String], setup_commands: &[String]) -> String {
    let mut hash = Sha256::new();
    hash.update(b"slipway-snapshot-v1\0");
    hash.update(std::env::consts::OS.as_bytes());
    hash.update(std::env::consts::ARCH.as_bytes());
    for command in setup_commands {
        hash.update(b"\0command\0");
        hash.update(command.as_bytes());
    }
    for file in cache_key_files {
        hash.update(b"\0file\0");
        hash.update(file.as_bytes());
        match std::fs::read(workspace.join(file)) {
            Ok(bytes) => {
                hash.update(b"\0present\0");
                hash.update(&bytes);
            }
            Err(_) => hash.update(b"\0missing\0"),
        }
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The snapshot store of one data directory.
#[derive(Debug, Clone)]
pub struct Snapshots {
    root: PathBuf,
    cap_bytes: u64,
    /// Snapshots mounted by running validations, with how many mount them.
    in_use: Arc<Mutex<HashMap<String, usize>>>,
}

/// A restored snapshot. Call [`Snapshots::release`] with it when the workspace is done.
#[derive(Debug)]
pub struct Restored {
    key: String,
    /// Overlay mount points inside the workspace.
    mounts: Vec<PathBuf>,
    /// `Overlay` or `Copy`, for the log.
    pub mechanism: &'static str,
}

impl Snapshots {
    pub fn new(root: PathBuf, cap_bytes: u64) -> Self {
        Self {
            root,
            cap_bytes,
            in_use: Arc::default(),
        }
    }

    fn dir(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Puts the snapshot's contents into `workspace` (overlays get their writable layers in
    /// `scratch`); `None` when there is no snapshot for `key`.
    pub fn restore(
        &self,
        key: &str,
        workspace: &Path,
        scratch: &Path,
    ) -> Result<Option<Restored>, SnapshotError> {
        let dir = self.dir(key);
        if !dir.is_dir() {
            return Ok(None);
        }
        // Mark as recently used.
        let _ = std::fs::File::open(&dir).and_then(|f| f.set_modified(SystemTime::now()));
        let mut restored = Restored {
            key: key.to_owned(),
            mounts: Vec::new(),
            mechanism: "copy",
        };
        if !overlay_supported(&self.root) || !mountable_path(workspace) || !mountable_path(scratch)
        {
            copy_tree_contents(&dir, workspace)?;
            return Ok(Some(restored));
        }
        *self
            .in_use
            .lock()
            .expect("in-use lock")
            .entry(key.to_owned())
            .or_default() += 1;
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let (from, to) = (entry.path(), workspace.join(entry.file_name()));
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir && !to.exists() {
                let layer = scratch.join(restored.mounts.len().to_string());
                match mount_overlay(&from, &layer, &to) {
                    Ok(()) => {
                        restored.mounts.push(to);
                        restored.mechanism = "overlay";
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "overlay mount failed; copying instead");
                        let _ = std::fs::remove_dir(&to);
                    }
                }
            }
            run(Command::new("cp")
                .args(["-a", "--reflink=auto"])
                .arg(from.as_os_str())
                .arg(to.as_os_str()))?;
        }
        Ok(Some(restored))
    }

    /// Unmounts a restored snapshot's overlays (before the workspace is removed).
    pub fn release(&self, restored: Restored) {
        for mount in &restored.mounts {
            unmount(mount);
        }
        let mut in_use = self.in_use.lock().expect("in-use lock");
        if let Some(count) = in_use.get_mut(&restored.key) {
            *count -= 1;
            if *count == 0 {
                in_use.remove(&restored.key);
            }
        }
    }

    /// Saves what setup left untracked in `workspace`; then evicts down to the cap.
    pub fn save(&self, key: &str, workspace: &Path) -> Result<(), SnapshotError> {
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let target = self.dir(key);
        if target.exists() {
            return Ok(());
        }
        let staging = self
            .root
            .join(format!(".staging-{key}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(io(&staging))?;
        for entry in untracked_entries(workspace)? {
            let from = workspace.join(&entry);
            let to = staging.join(&entry);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            run(Command::new("cp")
                .args(["-a", "--reflink=auto"])
                .arg(from.as_os_str())
                .arg(to.as_os_str()))?;
        }
        // Atomic publish: a reader sees a whole snapshot or none.
        if std::fs::rename(&staging, &target).is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        self.evict(key)
    }

    /// Removes least recently used snapshots until the total is under the cap.
    fn evict(&self, keep: &str) -> Result<(), SnapshotError> {
        let mut snapshots = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(io(&self.root))? {
            let entry = entry.map_err(io(&self.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let used = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            snapshots.push((used, name, size_of(&entry.path())));
        }
        let mut total: u64 = snapshots.iter().map(|s| s.2).sum();
        snapshots.sort();
        for (_, name, size) in snapshots {
            if total <= self.cap_bytes {
                break;
            }
            if name == keep || self.in_use.lock().expect("in-use lock").contains_key(&name) {
                continue;
            }
            let path = self.root.join(&name);
            std::fs::remove_dir_all(&path).map_err(io(&path))?;
            total -= size;
            tracing::info!(snapshot = %name, bytes = size, "snapshot evicted");
        }
        Ok(())
    }

    /// Whether a snapshot exists for `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.dir(key).is_dir()
    }
}

/// Top-level untracked paths (directories collapsed), ignored ones included.
fn untracked_entries(workspace: &Path) -> Result<Vec<PathBuf>, SnapshotError> {
    let output = Command::new("git")
        .args(["ls-files", "--others", "--directory", "-z"])
        .current_dir(workspace)
        .output()
        .map_err(io(workspace))?;
    if !output.status.success() {
        return Err(SnapshotError::Command(format!(
            "git ls-files failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(output
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(String::from_utf8_lossy(p).trim_end_matches('/')))
        .collect())
}

fn copy_tree_contents(from: &Path, to: &Path) -> Result<(), SnapshotError> {
    let mut source = from.as_os_str().to_owned();
    source.push("/.");
    run(Command::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(source)
        .arg(to.as_os_str()))
}

fn run(command: &mut Command) -> Result<(), SnapshotError> {
    let output = command
        .output()
        .map_err(|e| SnapshotError::Command(format!("{command:?}: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(SnapshotError::Command(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(path)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| size_of(&e.path()))
                    .sum()
            })
            .unwrap_or(0)
    } else {
        meta.len()
    }
}

/// Whether overlay mounts work here (root, overlayfs in the kernel); probed once.
fn overlay_supported(root: &Path) -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let probe = root.join(format!(".overlay-probe-{}", std::process::id()));
        let (lower, target) = (probe.join("lower"), probe.join("target"));
        let works = std::fs::create_dir_all(&lower).is_ok()
            && mount_overlay(&lower, &probe.join("layer"), &target).is_ok();
        if works {
            unmount(&target);
        }
        let _ = std::fs::remove_dir_all(&probe);
        tracing::info!(overlay = works, "snapshot restore mechanism probed");
        works
    })
}

/// Overlay options are comma- and colon-separated: paths containing them cannot be mounted.
fn mountable_path(path: &Path) -> bool {
    path.to_str().is_some_and(|p| !p.contains([',', ':', '\\']))
}

/// Mounts `lower` (read-only) under a fresh writable layer in `layer`, at `target`.
fn mount_overlay(lower: &Path, layer: &Path, target: &Path) -> Result<(), SnapshotError> {
    let (upper, work) = (layer.join("upper"), layer.join("work"));
    for dir in [&upper, &work, &target.to_path_buf()] {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    if ![lower, &upper, &work, target]
        .iter()
        .all(|p| mountable_path(p))
    {
        return Err(SnapshotError::Command("path not mountable".into()));
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let c = |text: &str| std::ffi::CString::new(text).expect("no NUL in paths");
    let (source, fstype, data) = (c("overlay"), c("overlay"), c(&options));
    let target_c = c(&target.display().to_string());
    // SAFETY: every pointer is a valid NUL-terminated string for the duration of the call.
    let result = unsafe {
        libc::mount(
            source.as_ptr(),
            target_c.as_ptr(),
            fstype.as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(SnapshotError::Io {
            path: target.display().to_string(),
            source: std::io::Error::last_os_error(),
        })
    }
}

/// Detaches a mount; one already gone is fine.
pub fn unmount(target: &Path) {
    if let Ok(path) = std::ffi::CString::new(target.display().to_string()) {
        // SAFETY: a valid NUL-terminated path.
        unsafe {
            libc::umount2(path.as_ptr(), libc::MNT_DETACH);
        }
    }
}

/// Detaches every mount below `dir` (what a crash left in old workspaces).
pub fn unmount_all_below(dir: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|point| point.starts_with(dir))
        .collect();
    // Deepest first.
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in points {
        unmount(&point);
    }
}
