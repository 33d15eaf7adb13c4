//! A plain copy of the agent's files, for Slipway's git to commit from. The agent's tree is
//! hostile: a `.git` file or directory in it (at any depth) would make git resolve a
//! repository the agent points at, as Slipway. So every `.git` is dropped, links are copied
//! as links and never followed, FIFOs, sockets and devices are skipped, and every step opens
//! one name relative to an open directory, refusing links, so nothing leads out of the tree.

use rustix::fs::{self, AtFlags, FileType, Mode, OFlags};
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const DIR: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
/// Deeper trees are refused: each level open holds two descriptors while copied.
pub(super) const MAX_DEPTH: usize = 100;

/// A directory being copied: its descriptors on both sides and the names left to copy.
struct Frame {
    from: OwnedFd,
    to: OwnedFd,
    names: Vec<CString>,
    path: PathBuf,
}

/// Copies the tree at `from` into `to` (created here, Slipway's own). Returns what was
/// dropped or skipped, for the log.
pub(super) fn plain_copy(from: &Path, to: &Path) -> io::Result<Vec<String>> {
    let root = fs::open(from, DIR, Mode::empty())?;
    // Files not the tree owner's (a hard link to someone else's file) are not read.
    let owner = fs::fstat(&root)?.st_uid;
    fs::mkdir(to, Mode::from_raw_mode(0o700))?;
    let mut notes = Vec::new();
    let mut stack = vec![Frame {
        names: names_of(&root)?,
        from: root,
        to: fs::open(to, DIR, Mode::empty())?,
        path: PathBuf::new(),
    }];
    loop {
        let depth = stack.len();
        let Some(frame) = stack.last_mut() else {
            break;
        };
        let Some(name) = frame.names.pop() else {
            stack.pop();
            continue;
        };
        let path = frame.path.join(OsStr::from_bytes(name.to_bytes()));
        let shown = path.display();
        if name.as_bytes() == b".git" {
            notes.push(format!(
                "{shown} dropped: Slipway's git never reads a repository of the agent's"
            ));
            continue;
        }
        let stat = fs::statat(&frame.from, &name, AtFlags::SYMLINK_NOFOLLOW)?;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => {
                if depth > MAX_DEPTH {
                    return Err(io::Error::other(format!(
                        "{shown}: directories nest deeper than {MAX_DEPTH} levels"
                    )));
                }
                let from = fs::openat(&frame.from, &name, DIR, Mode::empty())?;
                fs::mkdirat(&frame.to, &name, Mode::from_raw_mode(0o755))?;
                let to = fs::openat(&frame.to, &name, DIR, Mode::empty())?;
                let names = names_of(&from)?;
                stack.push(Frame {
                    from,
                    to,
                    names,
                    path,
                });
            }
            FileType::RegularFile if stat.st_uid != owner => {
                notes.push(format!("{shown} skipped: a file of another user"))
            }
            FileType::RegularFile => copy_file(&frame.from, &frame.to, &name)?,
            FileType::Symlink => {
                let target = fs::readlinkat(&frame.from, &name, Vec::new())?;
                fs::symlinkat(&target, &frame.to, &name)?;
            }
            _ => notes.push(format!(
                "{shown} skipped: not a file, a directory or a link"
            )),
        }
    }
    Ok(notes)
}

/// The names in a directory, but `.` and `..`.
fn names_of(dir: &OwnedFd) -> io::Result<Vec<CString>> {
    let mut names = Vec::new();
    for entry in fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// Copies one regular file; opened without following a link and without blocking, and
/// checked to be a regular file once open.
fn copy_file(from: &OwnedFd, to: &OwnedFd, name: &CString) -> io::Result<()> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    let source = fs::openat(from, name, flags | OFlags::CLOEXEC, Mode::empty())?;
    let stat = fs::fstat(&source)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(io::Error::other("a file changed while it was copied"));
    }
    let mode = if stat.st_mode & 0o111 != 0 {
        0o755
    } else {
        0o644
    };
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
    let target = fs::openat(to, name, flags | OFlags::CLOEXEC, Mode::from_raw_mode(mode))?;
    io::copy(
        &mut std::fs::File::from(source),
        &mut std::fs::File::from(target),
    )?;
    Ok(())
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
        fs::mknodat(
            fs::CWD,
            &from.join("fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
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
        assert_eq!(notes.len(), 4, "{notes:?}");
    }

    #[test]
    fn a_root_that_is_a_link_or_a_tree_too_deep_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        symlink(&real, dir.path().join("link")).unwrap();
        assert!(plain_copy(&dir.path().join("link"), &dir.path().join("to")).is_err());
        let deep: PathBuf = (0..=MAX_DEPTH + 1).map(|_| "d").collect();
        std::fs::create_dir_all(real.join(deep)).unwrap();
        let error = plain_copy(&real, &dir.path().join("to2")).unwrap_err();
        assert!(error.to_string().contains("deeper"), "{error}");
    }
}
