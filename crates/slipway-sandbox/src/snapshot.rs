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

use crate::tree::{copy_entry, Budget, CopyOptions};
use rustix::fs::AtFlags;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
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

/// Largest `cache_key` file read; a larger one keys as "too large", never read whole.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The key of a prepared workspace in `scope` (see [`Scope`]): the setup commands, the
/// `cache_key` files' contents and the platform. The files are read below `workspace` only,
/// never through a link, never a FIFO or a device. Blocking.
pub fn key(
    workspace: &Path,
    scope: &Scope,
    cache_key_files: &[String],
    setup_commands: &[String],
) -> String {
    keys(
        workspace,
        std::slice::from_ref(scope),
        cache_key_files,
        setup_commands,
    )
    .pop()
    .expect("one scope, one key")
}

/// [`key`] in each of `scopes`, the files read once.
pub fn keys(
    workspace: &Path,
    scopes: &[Scope],
    cache_key_files: &[String],
    setup_commands: &[String],
) -> Vec<String> {
    let contents = contents_digest(workspace, cache_key_files, setup_commands);
    scopes
        .iter()
        .map(|scope| {
            let mut hash = Sha256::new();
            hash.update(b"slipway-snapshot-v3\0scope\0");
            hash.update(scope.0.as_bytes());
            hash.update(b"\0contents\0");
            hash.update(contents);
            hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
        })
        .collect()
}

/// What a workspace's setup depends on, whatever its scope.
fn contents_digest(
    workspace: &Path,
    cache_key_files: &[String],
    setup_commands: &[String],
) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(std::env::consts::OS.as_bytes());
    hash.update(std::env::consts::ARCH.as_bytes());
    for command in setup_commands {
        hash.update(b"\0command\0");
        hash.update(command.as_bytes());
    }
    let root = crate::tree::open_dir(workspace);
    for file in cache_key_files {
        hash.update(b"\0file\0");
        hash.update(file.as_bytes());
        let read = root
            .as_ref()
            .map_err(|e| std::io::Error::new(e.kind(), e.to_string()));
        match read.and_then(|root| {
            crate::tree::read_file_beneath(root, Path::new(file), MAX_KEY_FILE_BYTES)
        }) {
            Ok(bytes) => {
                hash.update(b"\0present\0");
                hash.update(&bytes);
            }
            // Missing, a link, not a regular file, too large: all key alike and differ from
            // any content.
            Err(_) => hash.update(b"\0unreadable\0"),
        }
    }
    hash.finalize().into()
}

/// Whose snapshots a validation may use, as GitHub Actions scopes caches: a project's
/// branch, or one pull request of it. A pull request's validation saves into its own scope
/// and restores from it or, failing that, from its base branch's; a branch's validation saves
/// and restores only its own. So no pull request, and no other branch, can plant what a
/// branch's validations restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope(String);

impl Scope {
    /// The branch `branch` of `project` (a project id, or a repository's location for the
    /// CLI).
    pub fn branch(project: &str, branch: &str) -> Self {
        Self(format!("{project}\0branch\0{branch}"))
    }

    /// The pull request `number` of `project`.
    pub fn pull_request(project: &str, number: u64) -> Self {
        Self(format!("{project}\0pull\0{number}"))
    }
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
    fn of(stat: &rustix::fs::Stat) -> Self {
        Self {
            len: stat.st_size as u64,
            modified_ns: i128::from(stat.st_mtime) * 1_000_000_000 + i128::from(stat.st_mtime_nsec),
            inode: stat.st_ino,
            mode: stat.st_mode,
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
        walk_checkout(workspace, &mut |node| {
            if node.is_dir() {
                manifest.dirs.insert(node.relative.to_path_buf());
                true
            } else {
                manifest
                    .files
                    .insert(node.relative.to_path_buf(), Stamp::of(node.stat));
                false
            }
        })?;
        Ok(manifest)
    }
}

/// Visits the checkout's files: everything below `root` but its top-level `.git`.
fn walk_checkout(
    root: &Path,
    visit: &mut dyn FnMut(&crate::tree::Node<'_>) -> bool,
) -> Result<(), SnapshotError> {
    crate::tree::walk(root, &mut |node| {
        Ok(node.relative.as_os_str() != ".git" && visit(node))
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
        let into = crate::tree::open_dir(workspace).map_err(io(workspace))?;
        let from = crate::tree::open_dir(&files).map_err(io(&files))?;
        let everything = CopyOptions {
            accept: &|_, _| true,
            budget: None,
        };
        for entry in std::fs::read_dir(&files).map_err(io(&files))? {
            let entry = entry.map_err(io(&files))?;
            let name = crate::tree::cstring(&entry.file_name());
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            let absent = matches!(
                rustix::fs::statat(&into, &name, AtFlags::SYMLINK_NOFOLLOW),
                Err(rustix::io::Errno::NOENT)
            );
            if is_dir && overlays && absent {
                let layer = scratch.join(restored.mounts.len().to_string());
                let to = workspace.join(entry.file_name());
                match mount_overlay_at(&entry.path(), &layer, &into, &name, owner) {
                    Ok(()) => {
                        restored.mounts.push(to);
                        restored.mechanism = "overlay";
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "overlay mount failed; copying instead");
                        let _ = rustix::fs::unlinkat(&into, &name, AtFlags::REMOVEDIR);
                    }
                }
            }
            copy_entry(&from, &into, &name, &everything).map_err(io(&entry.path()))?;
        }
        let deleted = std::fs::read(dir.join("deleted")).unwrap_or_default();
        for path in deleted.split(|b| *b == 0).filter(|p| !p.is_empty()) {
            let relative = Path::new(std::ffi::OsStr::from_bytes(path));
            // Below the workspace, through no link: a deletion that cannot be made so is
            // not made.
            if let Ok((parent, name)) = crate::tree::open_parent_beneath(&into, relative) {
                let _ = rustix::fs::unlinkat(&parent, &name, AtFlags::empty());
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
    /// With `owner` (Slipway is root), only what that user owns is kept: anything else in a
    /// workspace (a hard link to a file of root's, say) is not setup's to cache. A snapshot
    /// is never larger than `quotas` let the workspace be (`disk_mb` in files' full lengths,
    /// sparse or hard-linked ones included; `max_files`): past them it is not saved.
    pub fn save(
        &self,
        key: &str,
        workspace: &Path,
        before: &Manifest,
        owner: Option<(u32, u32)>,
        quotas: &crate::Quotas,
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
        crate::tree::remove(&staging).map_err(io(&staging))?;
        let files = staging.join("files");
        std::fs::create_dir_all(&files).map_err(io(&files))?;
        let budget = Budget::new(quotas.disk_mb * 1024 * 1024, quotas.max_files);
        let saved = self.save_into(&staging, workspace, before, owner, &budget);
        if saved.is_err() {
            let _ = crate::tree::remove(&staging);
        }
        saved?;
        // Atomic publish: a reader sees a whole snapshot or none.
        if std::fs::rename(&staging, &target).is_err() {
            let _ = crate::tree::remove(&staging);
        }
        self.evict(key)
    }

    fn save_into(
        &self,
        staging: &Path,
        workspace: &Path,
        before: &Manifest,
        owner: Option<(u32, u32)>,
        budget: &Budget,
    ) -> Result<(), SnapshotError> {
        let files = staging.join("files");
        let mut changed = Vec::new();
        let mut seen = std::collections::HashSet::new();
        walk_checkout(workspace, &mut |node| {
            if node.is_dir() {
                if before.dirs.contains(node.relative) {
                    return true;
                }
                // A directory setup made: kept whole.
                changed.push(node.relative.to_path_buf());
                return false;
            }
            seen.insert(node.relative.to_path_buf());
            if before.files.get(node.relative) != Some(&Stamp::of(node.stat)) {
                changed.push(node.relative.to_path_buf());
            }
            false
        })?;
        let accept =
            |_: &Path, stat: &rustix::fs::Stat| owner.is_none_or(|(uid, _)| stat.st_uid == uid);
        let options = CopyOptions {
            accept: &accept,
            budget: Some(budget),
        };
        let (from_root, to_root) = (
            crate::tree::open_dir(workspace).map_err(io(workspace))?,
            crate::tree::open_dir(&files).map_err(io(&files))?,
        );
        let mut skipped = 0;
        for relative in &changed {
            let shown = workspace.join(relative);
            let (from, name) =
                crate::tree::open_parent_beneath(&from_root, relative).map_err(io(&shown))?;
            let parent = relative.parent().unwrap_or(Path::new(""));
            let to = crate::tree::make_dirs_beneath(&to_root, parent).map_err(io(&shown))?;
            skipped += copy_entry(&from, &to, &name, &options)
                .map_err(io(&shown))?
                .entries;
        }
        if skipped > 0 {
            tracing::info!(
                skipped,
                "snapshot: entries setup did not make were left out"
            );
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
        Ok(())
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
            crate::tree::remove(&path).map_err(io(&path))?;
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

/// What a snapshot's directory takes on disk (unmeasurable: counted as huge, so it is
/// evicted first).
fn size_of(path: &Path) -> u64 {
    // Blocks, and an inode's worth for each entry: a million empty files are not free.
    crate::tree::total(path, |stat| stat.st_blocks as u64 * 512 + 256).unwrap_or(u64::MAX / 4)
}

/// Whether overlay mounts work here (root, overlayfs in the kernel); probed once.
fn overlay_supported(root: &Path) -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let probe = root.join(format!(".overlay-probe-{}", std::process::id()));
        let (lower, target) = (probe.join("lower"), probe.join("target"));
        let works = std::fs::create_dir_all(&lower).is_ok()
            && std::fs::create_dir_all(&target).is_ok()
            && crate::tree::open_dir(&target).is_ok_and(|fd| {
                mount_overlay(&lower, &probe.join("layer"), fd.as_fd(), None).is_ok()
            });
        if works {
            unmount(&target);
        }
        let _ = crate::tree::remove(&probe);
        tracing::info!(overlay = works, "snapshot restore mechanism probed");
        works
    })
}

/// Overlay options are comma- and colon-separated: paths containing them cannot be mounted.
fn mountable_path(path: &Path) -> bool {
    path.to_str().is_some_and(|p| !p.contains([',', ':', '\\']))
}

/// Makes the directory `name` of `into` (never through a link) and mounts the overlay of
/// `lower` there (see [`mount_overlay`]).
fn mount_overlay_at(
    lower: &Path,
    layer: &Path,
    into: impl AsFd,
    name: &CStr,
    owner: Option<(u32, u32)>,
) -> Result<(), SnapshotError> {
    let shown = || name.to_string_lossy().into_owned();
    rustix::fs::mkdirat(&into, name, rustix::fs::Mode::from_raw_mode(0o755)).map_err(|e| {
        SnapshotError::Io {
            path: shown(),
            source: e.into(),
        }
    })?;
    let target = crate::tree::open_dir_at(&into, name).map_err(|source| SnapshotError::Io {
        path: shown(),
        source,
    })?;
    mount_overlay(lower, layer, target.as_fd(), owner)
}

/// Mounts `lower` (read-only) under a fresh writable layer in `layer` (Slipway's own paths),
/// on the directory `target` (by descriptor, so no link on its path is followed). The
/// writable layer (and so the mounted directory) belongs to `owner`.
fn mount_overlay(
    lower: &Path,
    layer: &Path,
    target: BorrowedFd<'_>,
    owner: Option<(u32, u32)>,
) -> Result<(), SnapshotError> {
    let (upper, work) = (layer.join("upper"), layer.join("work"));
    for dir in [&upper, &work] {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::lchown(&upper, Some(uid), Some(gid)).map_err(io(&upper))?;
    }
    if ![lower, &upper, &work].iter().all(|p| mountable_path(p)) {
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
    let target_c = c(&format!("/proc/self/fd/{}", target.as_raw_fd()));
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
            path: lower.display().to_string(),
            source: std::io::Error::last_os_error(),
        })
    }
}

/// Detaches a mount; one already gone is fine.
pub fn unmount(target: &Path) {
    if let Ok(path) = std::ffi::CString::new(target.display().to_string()) {
        // SAFETY: a valid NUL-terminated path.
        unsafe {
            libc::umount2(path.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW);
        }
    }
}

/// A mount point as `/proc/self/mountinfo` spells it: space, tab, newline and backslash are
/// octal escapes (`\040`), which a directory the code named may hold.
fn unescape_mount_point(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(digits)) => {
                let value = digits.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
                out.push(value as u8);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(&out))
}

/// Detaches every mount below `dir` (what a crash left in old workspaces).
pub fn unmount_all_below(dir: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_point)
        .filter(|point| point.starts_with(dir))
        .collect();
    // Deepest first.
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in points {
        unmount(&point);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn mount_points_are_read_with_their_escapes_decoded() {
        assert_eq!(
            super::unescape_mount_point("/ws/2-1/dir\\040with\\011tab\\134x"),
            std::path::Path::new("/ws/2-1/dir with\ttab\\x")
        );
        assert_eq!(
            super::unescape_mount_point("/plain\\0"),
            std::path::Path::new("/plain\\0")
        );
    }
}
