//! Trees that untrusted code wrote (a workspace after a pull request's commands ran, a
//! snapshot of one), read and removed by descriptor: every step opens one name relative to an
//! open directory and refuses symbolic links, so no link, `..` or path length leads Slipway
//! anywhere else, and no FIFO or device is ever opened. Walks are iterative and hold two
//! descriptors at a time (going back up through `..`, checked to be the directory it came
//! from), so no depth exhausts Slipway's stack or descriptors.

mod copy;

pub use copy::MAX_COPY_DEPTH;
pub(crate) use copy::{copy_entry, Budget, CopyOptions};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// One entry met by [`walk`].
pub(crate) struct Node<'a> {
    /// Below the walk's root.
    pub relative: &'a Path,
    pub stat: &'a Stat,
    /// The directory holding it, and its name there.
    pub parent: BorrowedFd<'a>,
    pub name: &'a CStr,
}

impl Node<'_> {
    pub fn is_dir(&self) -> bool {
        kind(self.stat) == FileType::Directory
    }
}

pub(crate) fn kind(stat: &Stat) -> FileType {
    FileType::from_raw_mode(stat.st_mode)
}

/// Opens a directory of Slipway's own by path, refusing a link in its last component.
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(path, DIR_FLAGS, Mode::empty())?)
}

/// Opens the directory `name` of `parent`, never through a link.
pub(crate) fn open_dir_at(parent: impl AsFd, name: &CStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty())?)
}

/// The names of `relative`, which must stay below its root (no `..`, no root).
pub(crate) fn names(relative: &Path) -> io::Result<Vec<CString>> {
    relative
        .components()
        .filter(|c| *c != Component::CurDir)
        .map(|component| match component {
            Component::Normal(name) => Ok(cstring(name)),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} leaves its tree", relative.display()),
            )),
        })
        .collect()
}

pub(crate) fn cstring(name: &OsStr) -> CString {
    CString::new(name.as_bytes()).unwrap_or_else(|_| CString::from(c"\u{fffd}"))
}

/// The directory holding `relative` (opened below `root`) and its last name.
pub(crate) fn open_parent_beneath(
    root: impl AsFd,
    relative: &Path,
) -> io::Result<(OwnedFd, CString)> {
    let mut names = names(relative)?;
    let last = names.pop().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "an empty path names no file")
    })?;
    let mut current = rustix::io::fcntl_dupfd_cloexec(root, 0)?;
    for name in names {
        current = open_dir_at(&current, &name)?;
    }
    Ok((current, last))
}

/// Opens the regular file `name` of `parent` for reading: never through a link, never a
/// FIFO or a device (non-blocking, checked before any read).
pub(crate) fn open_regular_at(parent: impl AsFd, name: &CStr) -> io::Result<(OwnedFd, Stat)> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let flags = flags | OFlags::NOCTTY;
    // O_PATH first: opening a FIFO or device for reading can have effects of its own.
    let path_only = rustix::fs::openat(
        &parent,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let stat = rustix::fs::fstat(&path_only)?;
    if kind(&stat) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", name.to_string_lossy()),
        ));
    }
    let file = rustix::fs::openat(&parent, name, flags, Mode::empty())?;
    let again = rustix::fs::fstat(&file)?;
    if (again.st_dev, again.st_ino) != (stat.st_dev, stat.st_ino) {
        return Err(io::Error::other("the file changed while it was opened"));
    }
    Ok((file, again))
}

/// The contents of the regular file `relative` below `root`, at most `limit` bytes (larger
/// is an error); links, FIFOs and devices are refused.
pub(crate) fn read_file_beneath(
    root: impl AsFd,
    relative: &Path,
    limit: u64,
) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let (parent, name) = open_parent_beneath(root, relative)?;
    let (file, stat) = open_regular_at(&parent, &name)?;
    if stat.st_size as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("{} is larger than {limit} bytes", relative.display()),
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::from(file)
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("{} grew past {limit} bytes", relative.display()),
        ));
    }
    Ok(bytes)
}

/// Where a walk is: the directory it is in (by descriptor) and the ones above it (by name).
struct Frame {
    name: CString,
    dev: u64,
    ino: u64,
    /// Subdirectories still to go into: name and inode.
    pending: Vec<(CString, u64)>,
}

struct Cursor {
    current: OwnedFd,
    frame: Frame,
    above: Vec<Frame>,
    relative: PathBuf,
}

impl Cursor {
    fn at(root: OwnedFd) -> io::Result<Self> {
        let stat = rustix::fs::fstat(&root)?;
        Ok(Self {
            current: root,
            frame: Frame {
                name: CString::default(),
                dev: stat.st_dev,
                ino: stat.st_ino,
                pending: Vec::new(),
            },
            above: Vec::new(),
            relative: PathBuf::new(),
        })
    }

    /// Goes into the next pending subdirectory; `false` when there is none left here.
    /// A subdirectory gone in the meantime is skipped.
    fn descend(&mut self) -> io::Result<bool> {
        while let Some((name, ino)) = self.frame.pending.pop() {
            let child = match open_dir_at(&self.current, &name) {
                Ok(child) => child,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(e),
            };
            let stat = rustix::fs::fstat(&child)?;
            if stat.st_ino != ino {
                return Err(io::Error::other(format!(
                    "{} changed while it was read",
                    self.relative
                        .join(OsStr::from_bytes(name.as_bytes()))
                        .display()
                )));
            }
            self.relative.push(OsStr::from_bytes(name.as_bytes()));
            let frame = Frame {
                name,
                dev: stat.st_dev,
                ino: stat.st_ino,
                pending: Vec::new(),
            };
            self.above.push(std::mem::replace(&mut self.frame, frame));
            self.current = child;
            return Ok(true);
        }
        Ok(false)
    }

    /// Goes back to the parent; returns the name of the directory left, `None` at the root.
    fn ascend(&mut self) -> io::Result<Option<CString>> {
        let Some(parent) = self.above.pop() else {
            return Ok(None);
        };
        let fd = rustix::fs::openat(&self.current, c"..", DIR_FLAGS, Mode::empty())?;
        let stat = rustix::fs::fstat(&fd)?;
        if (stat.st_dev, stat.st_ino) != (parent.dev, parent.ino) {
            return Err(io::Error::other(format!(
                "{} was moved while it was read",
                self.relative.display()
            )));
        }
        self.relative.pop();
        self.current = fd;
        let left = std::mem::replace(&mut self.frame, parent);
        Ok(Some(left.name))
    }

    /// Every entry of the current directory (but `.` and `..`) with its own status.
    fn entries(&self) -> io::Result<Vec<(CString, Stat)>> {
        let mut dir = rustix::fs::Dir::read_from(&self.current)?;
        let mut entries = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry?;
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            match rustix::fs::statat(&self.current, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => entries.push((name.to_owned(), stat)),
                Err(Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(entries)
    }
}

/// Visits everything below `root` (not `root` itself), never following a link; `visit`
/// says whether to go into a directory. The first error ends the walk with that error.
pub(crate) fn walk(
    root: &Path,
    visit: &mut dyn FnMut(&Node<'_>) -> io::Result<bool>,
) -> io::Result<()> {
    let mut cursor = Cursor::at(open_dir(root)?)?;
    loop {
        for (name, stat) in cursor.entries()? {
            cursor.relative.push(OsStr::from_bytes(name.as_bytes()));
            let node = Node {
                relative: &cursor.relative,
                stat: &stat,
                parent: cursor.current.as_fd(),
                name: &name,
            };
            let descend = visit(&node)? && node.is_dir();
            cursor.relative.pop();
            if descend {
                cursor.frame.pending.push((name, stat.st_ino));
            }
        }
        while !cursor.descend()? {
            if cursor.ascend()?.is_none() {
                return Ok(());
            }
        }
    }
}

/// The sum of `measure` over everything below `root`; an error when any part of the tree
/// could not be read (a measure that missed part of a tree is no measure).
pub(crate) fn total(root: &Path, measure: impl Fn(&Stat) -> u64) -> io::Result<u64> {
    let mut sum = 0u64;
    walk(root, &mut |node| {
        sum = sum.saturating_add(measure(node.stat));
        Ok(true)
    })?;
    Ok(sum)
}

/// Removes `path` and everything below it without following links, at any depth and path
/// length. Directories that the code made unreadable are opened up first (when Slipway is
/// not root, they are its own). A mount below is not crossed: detach it first. A path that
/// is not there is fine.
pub fn remove(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return std::fs::remove_file(path);
    }
    empty(open_dir(path)?)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    std::fs::remove_dir(path)
}

/// Removes the directory `name` of `parent` with everything below it.
pub(crate) fn remove_at(parent: impl AsFd, name: &CStr) -> io::Result<()> {
    empty(open_dir_at(&parent, name)?)?;
    Ok(rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR)?)
}

/// Removes everything below the directory `dir`.
fn empty(dir: OwnedFd) -> io::Result<()> {
    let mut cursor = Cursor::at(dir)?;
    let root_dev = cursor.frame.dev;
    loop {
        for (name, stat) in cursor.entries()? {
            if kind(&stat) != FileType::Directory {
                match rustix::fs::unlinkat(&cursor.current, &name, AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            if stat.st_dev != root_dev {
                return Err(io::Error::other(format!(
                    "{} is a mount point; it is left in place",
                    cursor
                        .relative
                        .join(OsStr::from_bytes(name.as_bytes()))
                        .display()
                )));
            }
            if stat.st_mode & 0o700 != 0o700 {
                rustix::fs::chmodat(
                    &cursor.current,
                    &name,
                    Mode::from_raw_mode(0o700),
                    AtFlags::empty(),
                )?;
            }
            cursor.frame.pending.push((name, stat.st_ino));
        }
        while !cursor.descend()? {
            let Some(left) = cursor.ascend()? else {
                return Ok(());
            };
            match rustix::fs::unlinkat(&cursor.current, &left, AtFlags::REMOVEDIR) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Makes the directories of `relative` below `root` that are missing (never through a
/// link) and opens the last one.
pub(crate) fn make_dirs_beneath(root: impl AsFd, relative: &Path) -> io::Result<OwnedFd> {
    let mut current = rustix::io::fcntl_dupfd_cloexec(root, 0)?;
    for name in names(relative)? {
        match rustix::fs::mkdirat(&current, &name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        current = open_dir_at(&current, &name)?;
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deep(root: &Path, levels: usize) {
        let fd = open_dir(root).unwrap();
        let mut current = fd;
        for _ in 0..levels {
            rustix::fs::mkdirat(&current, c"d", Mode::from_raw_mode(0o755)).unwrap();
            current = open_dir_at(&current, c"d").unwrap();
        }
        let file = rustix::fs::openat(
            &current,
            c"f",
            OFlags::CREATE | OFlags::WRONLY,
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        rustix::io::write(&file, b"deep").unwrap();
    }

    #[test]
    fn walks_and_removals_go_deeper_than_any_path_or_stack() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir(&root).unwrap();
        // 20,000 levels: paths of 40,000 bytes, far past PATH_MAX.
        deep(&root, 20_000);
        let mut files = 0;
        let bytes = total(&root, |stat| {
            if kind(stat) == FileType::RegularFile {
                stat.st_size as u64
            } else {
                0
            }
        })
        .unwrap();
        assert_eq!(bytes, 4, "the file at the bottom is counted");
        walk(&root, &mut |node| {
            if !node.is_dir() {
                files += 1;
                assert_eq!(node.relative.components().count(), 20_001);
            }
            Ok(true)
        })
        .unwrap();
        assert_eq!(files, 1);
        remove(&root).unwrap();
        assert!(!root.exists());
    }

    #[test]
    fn reads_refuse_links_fifos_and_devices_and_huge_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/lock"), "content").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/dev", root.join("dev")).unwrap();
        std::os::unix::fs::symlink("sub/lock", root.join("link")).unwrap();
        rustix::fs::mknodat(
            open_dir(root).unwrap(),
            c"fifo",
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let fd = open_dir(root).unwrap();
        assert_eq!(
            read_file_beneath(&fd, Path::new("sub/lock"), 100).unwrap(),
            b"content"
        );
        for refused in [
            "etc/hostname",
            "dev/zero",
            "link",
            "fifo",
            "../x",
            "/etc/passwd",
        ] {
            assert!(
                read_file_beneath(&fd, Path::new(refused), 100).is_err(),
                "{refused} must be refused"
            );
        }
        assert!(read_file_beneath(&fd, Path::new("sub/lock"), 3).is_err());
    }

    #[test]
    fn removal_never_follows_links_out_of_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "keep").unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("a/b/out")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("top")).unwrap();
        std::fs::set_permissions(
            root.join("a"),
            std::os::unix::fs::PermissionsExt::from_mode(0o000),
        )
        .unwrap();
        remove(&root).unwrap();
        assert!(!root.exists());
        assert_eq!(
            std::fs::read_to_string(outside.join("keep")).unwrap(),
            "keep"
        );
    }
}
