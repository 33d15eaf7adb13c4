//! Snapshots of prepared workspaces. After `setup`, what setup added to the checkout (the
//! files git does not track: `node_modules/`, `.venv/`, build caches) is saved under a key
//! made from the `cache_key` files' contents, the setup commands and the platform. A later
//! validation with the same key copies them into its fresh checkout instead of running setup.
//! Copies use `cp --reflink=auto` (a reflink where the filesystem has them, else a real
//! copy), so a validation can never change a saved snapshot. Total size is capped; the least
//! recently used snapshots go first.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
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
}

impl Snapshots {
    pub fn new(root: PathBuf, cap_bytes: u64) -> Self {
        Self { root, cap_bytes }
    }

    fn dir(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Copies the snapshot into `workspace`; `false` when there is none.
    pub fn restore(&self, key: &str, workspace: &Path) -> Result<bool, SnapshotError> {
        let dir = self.dir(key);
        if !dir.is_dir() {
            return Ok(false);
        }
        // Mark as recently used.
        let _ = std::fs::File::open(&dir).and_then(|f| f.set_modified(SystemTime::now()));
        copy_tree_contents(&dir, workspace)?;
        Ok(true)
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
            if name == keep {
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
