//! A plain copy of the agent's files, for Slipway's git to commit from. The agent's tree is
//! hostile: a `.git` file or directory in it (at any depth) would make git resolve a
//! repository the agent points at, as Slipway. So every `.git` is dropped, links are copied
//! as links and never followed, FIFOs, sockets and devices are skipped, and every step opens
//! one name relative to an open directory, refusing links, so nothing leads out of the tree.

use rustix::fs::FileType;
use std::cell::RefCell;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Copies the tree at `from` into `to` (created here, Slipway's own). Returns what was
/// dropped or skipped, for the log.
pub(super) fn plain_copy(from: &Path, to: &Path) -> io::Result<Vec<String>> {
    // Files not the tree owner's (a hard link to someone else's file) are not read.
    let owner = std::fs::symlink_metadata(from)?.uid();
    let notes = RefCell::new(Vec::new());
    // The agent's cell ran under the default quotas: its copy is held to them.
    slipway_sandbox::copy_tree(
        from,
        to,
        &slipway_sandbox::Quotas::default(),
        &|path, stat| {
            let shown = path.display();
            // The clone's own `.git` is dropped without a word; any other is the agent's doing.
            if path == Path::new(".git") {
                return false;
            }
            let note = if path.file_name().is_some_and(|name| name == ".git") {
                format!("{shown} dropped: Slipway's git never reads a repository of the agent's")
            } else {
                match FileType::from_raw_mode(stat.st_mode) {
                    FileType::Directory | FileType::Symlink => return true,
                    FileType::RegularFile if stat.st_uid == owner => return true,
                    FileType::RegularFile => format!("{shown} skipped: a file of another user"),
                    _ => format!("{shown} skipped: not a file, a directory or a link"),
                }
            };
            notes.borrow_mut().push(note);
            false
        },
    )?;
    Ok(notes.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn git_entries_are_dropped_links_kept_as_links_and_fifos_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("from"), dir.path().join("to"));
        std::fs::create_dir_all(from.join("sub/.git/objects")).unwrap();
        std::fs::create_dir_all(from.join("vendor")).unwrap();
        std::fs::write(from.join("vendor/.git"), "gitdir: /elsewhere\n").unwrap();
        std::fs::write(from.join("sub/a.txt"), "a").unwrap();
        std::fs::write(from.join(".git"), "gitdir: /elsewhere\n").unwrap();
        symlink("/etc", from.join("etc-link")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            from.join("fifo"),
            FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let notes = plain_copy(&from, &to).unwrap();
        assert_eq!(std::fs::read_to_string(to.join("sub/a.txt")).unwrap(), "a");
        assert_eq!(
            std::fs::read_link(to.join("etc-link")).unwrap(),
            Path::new("/etc")
        );
        for gone in [".git", "sub/.git", "vendor/.git", "fifo"] {
            assert!(std::fs::symlink_metadata(to.join(gone)).is_err(), "{gone}");
        }
        assert!(to.join("vendor").is_dir());
        assert_eq!(
            notes.len(),
            3,
            "the top-level .git is dropped silently: {notes:?}"
        );
    }

    #[test]
    fn a_root_that_is_a_link_or_a_tree_too_deep_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        symlink(&real, dir.path().join("link")).unwrap();
        assert!(plain_copy(&dir.path().join("link"), &dir.path().join("to")).is_err());
        let deep: std::path::PathBuf = (0..=slipway_sandbox::MAX_COPY_DEPTH + 1)
            .map(|_| "d")
            .collect();
        std::fs::create_dir_all(real.join(deep)).unwrap();
        let error = plain_copy(&real, &dir.path().join("to2")).unwrap_err();
        assert!(error.to_string().contains("deeper"), "{error}");
    }

    #[test]
    fn a_tree_larger_than_the_quotas_allow_is_refused_not_copied() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("from"), dir.path().join("to"));
        std::fs::create_dir(&from).unwrap();
        // Sparse: no disk in the agent's tree, 3 GiB once copied.
        let file = std::fs::File::create(from.join("sparse.bin")).unwrap();
        file.set_len(3 << 30).unwrap();
        assert!(plain_copy(&from, &to).is_err());
        let used: u64 = walk_blocks(&to);
        assert!(used < 1 << 20, "{used} bytes were written");
    }

    fn walk_blocks(dir: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.metadata().map(|m| m.blocks() * 512).unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    }
}
