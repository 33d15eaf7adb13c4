//! Snapshots of prepared workspaces. Before setup runs, a [`Manifest`] records the checkout's
//! files; after it, what setup changed is saved: files it added (`node_modules/`, `.venv/`,
//! build caches), tracked files it rewrote (a lockfile) and files it deleted. The key is made
//! from the `cache_key` files' contents, the setup commands and the platform. A later
//! validation with the same key gets the same changes applied to its checkout instead of
//! running setup, so a restored workspace equals a cold one:
//! - each new top-level directory is mounted as the read-only lower layer of an overlay whose
//!   upper layer belongs to the validation (copy-on-write, constant time), when this process
//!   may mount (root) and the kernel has overlayfs;
//! - everything else is copied with `cp --reflink=auto`.
//!
//! Nothing here runs git: after setup the workspace holds whatever the pull request's code
//! wrote, including its own `.git` configuration and hooks, so it is read as plain files,
//! never following symbolic links. A validation can never change a saved snapshot. Total
//! size is capped; the least recently used snapshots go first, never one in use.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

/// Tells concurrent saves of one process apart.
static STAGING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot IO on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Command(String),
    /// Setup rewrote or deleted a tracked file that this checkout has in another version:
    /// the snapshot would put back the other version's result.
    #[error("setup changed {0}, which differs in this commit")]
    Stale(String),
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
        match read_no_follow(&workspace.join(file)) {
            Ok(bytes) => {
                hash.update(b"\0present\0");
                hash.update(&bytes);
            }
            Err(_) => hash.update(b"\0missing\0"),
        }
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A file's contents, or a symbolic link's target (never what it points at).
fn read_no_follow(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(std::fs::read_link(path)?.as_os_str().as_bytes().to_vec());
    }
    std::fs::read(path)
}

/// What identifies a file's version cheaply: change of any of these means it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified_ns: i128,
    inode: u64,
    mode: u32,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            len: meta.len(),
            modified_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            inode: meta.ino(),
            mode: meta.mode(),
        }
    }
}

/// The checkout's files (everything but `.git`), recorded before any code runs in it.
#[derive(Debug, Default)]
pub struct Manifest {
    files: HashMap<PathBuf, Stamp>,
    /// Directories holding at least one recorded file.
    dirs: std::collections::HashSet<PathBuf>,
    /// The version of each tracked file (git's blob ids), read before any code ran.
    versions: HashMap<PathBuf, String>,
}

impl Manifest {
    /// Records the checkout; `versions` names each tracked file's content (its blob id).
    pub fn scan(
        workspace: &Path,
        versions: HashMap<PathBuf, String>,
    ) -> Result<Self, SnapshotError> {
        let mut manifest = Manifest {
            versions,
            ..Manifest::default()
        };
        walk_checkout(workspace, &mut |relative, meta| {
            if meta.is_dir() {
                manifest.dirs.insert(relative.to_path_buf());
                true
            } else {
                manifest
                    .files
                    .insert(relative.to_path_buf(), Stamp::of(meta));
                false
            }
        })?;
        Ok(manifest)
    }
}

/// Visits the checkout's files: everything below `root` but its top-level `.git`.
fn walk_checkout(
    root: &Path,
    visit: &mut dyn FnMut(&Path, &std::fs::Metadata) -> bool,
) -> Result<(), SnapshotError> {
    crate::tree::walk(root, &mut |relative, meta| {
        relative.as_os_str() != ".git" && visit(relative, meta)
    })
    .map_err(io(root))
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
    /// A shared lock on the snapshot's directory while the workspace uses it.
    _hold: Option<std::fs::File>,
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

    /// Applies the snapshot's changes to `workspace`, a fresh checkout described by
    /// `checkout` (overlays get their writable layers in `scratch`, owned by `owner`);
    /// `None` when there is no snapshot. Refused ([`SnapshotError::Stale`]) when setup
    /// changed a tracked file that this checkout has in another version.
    pub fn restore(
        &self,
        key: &str,
        workspace: &Path,
        scratch: &Path,
        owner: Option<(u32, u32)>,
        checkout: &Manifest,
    ) -> Result<Option<Restored>, SnapshotError> {
        let dir = self.dir(key);
        let files = dir.join("files");
        // Held until release: another process's eviction skips a snapshot in use.
        let hold = lock(&dir, false);
        if !files.is_dir() || hold.is_none() {
            return Ok(None);
        }
        let based_on = std::fs::read(dir.join("based-on")).unwrap_or_default();
        let mut fields = based_on.split(|b| *b == 0);
        while let (Some(path), Some(version)) = (fields.next(), fields.next()) {
            let path = Path::new(std::ffi::OsStr::from_bytes(path));
            if checkout.versions.get(path).map(String::as_bytes) != Some(version) {
                return Err(SnapshotError::Stale(path.display().to_string()));
            }
        }
        // Mark as recently used.
        let _ = std::fs::File::open(&dir).and_then(|f| f.set_modified(SystemTime::now()));
        let mut restored = Restored {
            key: key.to_owned(),
            mounts: Vec::new(),
            mechanism: "copy",
            _hold: hold,
        };
        let overlays =
            overlay_supported(&self.root) && mountable_path(workspace) && mountable_path(scratch);
        if overlays {
            *self
                .in_use
                .lock()
                .expect("in-use lock")
                .entry(key.to_owned())
                .or_default() += 1;
        }
        for entry in std::fs::read_dir(&files).map_err(io(&files))? {
            let entry = entry.map_err(io(&files))?;
            let (from, to) = (entry.path(), workspace.join(entry.file_name()));
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir && overlays && std::fs::symlink_metadata(&to).is_err() {
                let layer = scratch.join(restored.mounts.len().to_string());
                match mount_overlay(&from, &layer, &to, owner) {
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
            if is_dir && std::fs::symlink_metadata(&to).is_ok_and(|m| m.is_dir()) {
                copy_tree_contents(&from, &to)?;
            } else {
                copy(&from, &to)?;
            }
        }
        let deleted = std::fs::read(dir.join("deleted")).unwrap_or_default();
        for path in deleted.split(|b| *b == 0).filter(|p| !p.is_empty()) {
            let relative = Path::new(std::ffi::OsStr::from_bytes(path));
            if relative
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
            {
                let _ = std::fs::remove_file(workspace.join(relative));
            }
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

    /// Saves what setup changed in `workspace` since `before`; then evicts down to the cap.
    pub fn save(
        &self,
        key: &str,
        workspace: &Path,
        before: &Manifest,
    ) -> Result<(), SnapshotError> {
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let target = self.dir(key);
        if target.exists() {
            return Ok(());
        }
        let staging = self.root.join(format!(
            ".staging-{key}-{}-{}",
            std::process::id(),
            STAGING.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&staging);
        let files = staging.join("files");
        std::fs::create_dir_all(&files).map_err(io(&files))?;
        let mut changed = Vec::new();
        let mut seen = std::collections::HashSet::new();
        walk_checkout(workspace, &mut |relative, meta| {
            if meta.is_dir() {
                if before.dirs.contains(relative) {
                    return true;
                }
                // A directory setup made: kept whole.
                changed.push(relative.to_path_buf());
                return false;
            }
            seen.insert(relative.to_path_buf());
            if before.files.get(relative) != Some(&Stamp::of(meta)) {
                changed.push(relative.to_path_buf());
            }
            false
        })?;
        for relative in &changed {
            let to = files.join(relative);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            copy(&workspace.join(relative), &to)?;
        }
        let mut deleted = Vec::new();
        for path in before.files.keys().filter(|p| !seen.contains(*p)) {
            deleted.extend_from_slice(path.as_os_str().as_bytes());
            deleted.push(0);
        }
        let list = staging.join("deleted");
        std::fs::write(&list, deleted).map_err(io(&list))?;
        // The versions of the checkout's files that setup rewrote or deleted: the snapshot
        // holds their result, valid only for those versions.
        let mut based_on = Vec::new();
        let touched = changed.iter().filter(|p| before.files.contains_key(*p));
        let gone = before.files.keys().filter(|p| !seen.contains(*p));
        for path in touched.chain(gone) {
            based_on.extend_from_slice(path.as_os_str().as_bytes());
            based_on.push(0);
            // Unknown (untracked) content never matches: such a snapshot is not reused.
            let version = before.versions.get(path).map_or("unknown", String::as_str);
            based_on.extend_from_slice(version.as_bytes());
            based_on.push(0);
        }
        let list = staging.join("based-on");
        std::fs::write(&list, based_on).map_err(io(&list))?;
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
            // In use by another process (slipway validate runs share a cache): kept.
            let Some(_exclusive) = lock(&path, true) else {
                continue;
            };
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

/// A lock on a snapshot's directory without waiting: shared while a workspace uses it,
/// exclusive to remove it. `None` when it is gone or (exclusive) in use.
fn lock(dir: &Path, exclusive: bool) -> Option<std::fs::File> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(dir).ok()?;
    let mode = if exclusive {
        libc::LOCK_EX | libc::LOCK_NB
    } else {
        libc::LOCK_SH
    };
    // SAFETY: flock on a descriptor this function owns.
    (unsafe { libc::flock(file.as_raw_fd(), mode) } == 0).then_some(file)
}

/// Copies one file, link or directory as it is (a link stays a link), replacing `to`.
fn copy(from: &Path, to: &Path) -> Result<(), SnapshotError> {
    run(Command::new("cp")
        .args(["-a", "--reflink=auto", "--remove-destination"])
        .arg(from.as_os_str())
        .arg(to.as_os_str()))
}

fn copy_tree_contents(from: &Path, to: &Path) -> Result<(), SnapshotError> {
    let mut source = from.as_os_str().to_owned();
    source.push("/.");
    run(Command::new("cp")
        .args(["-a", "--reflink=auto", "--remove-destination"])
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

/// Bytes of the files below a snapshot's directory.
fn size_of(path: &Path) -> u64 {
    crate::tree::total(path, |meta| if meta.is_dir() { 0 } else { meta.len() })
}

/// Whether overlay mounts work here (root, overlayfs in the kernel); probed once.
fn overlay_supported(root: &Path) -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let probe = root.join(format!(".overlay-probe-{}", std::process::id()));
        let (lower, target) = (probe.join("lower"), probe.join("target"));
        let works = std::fs::create_dir_all(&lower).is_ok()
            && mount_overlay(&lower, &probe.join("layer"), &target, None).is_ok();
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
/// The writable layer (and so the mounted directory) belongs to `owner`.
fn mount_overlay(
    lower: &Path,
    layer: &Path,
    target: &Path,
    owner: Option<(u32, u32)>,
) -> Result<(), SnapshotError> {
    let (upper, work) = (layer.join("upper"), layer.join("work"));
    for dir in [&upper, &work, &target.to_path_buf()] {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::lchown(&upper, Some(uid), Some(gid)).map_err(io(&upper))?;
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
