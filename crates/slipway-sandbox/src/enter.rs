//! What a child process does between `fork` and `exec` to enter its cell: join the cell's
//! cgroups, drop to the sandbox's unprivileged user, and join the cell's user and network
//! namespaces. Everything here runs in the forked child, so it uses only async-signal-safe
//! system calls on memory prepared before the fork.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

/// The user every sandboxed process runs as when Slipway runs as root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ids {
    pub uid: u32,
    pub gid: u32,
}

/// Prepared before the fork; applied in the child.
#[derive(Debug, Default)]
pub(crate) struct Entry {
    /// `cgroup.procs` files to write "0" to (moves the child into the cell's cgroups).
    pub cgroup_procs: Vec<CString>,
    /// Drop to these ids (only when Slipway runs as root).
    pub drop_to: Option<Ids>,
    /// The cell's user namespace, then its network namespace.
    pub namespaces: Option<(RawFd, RawFd)>,
    /// Descriptors to place at fixed numbers (the target loses close-on-exec).
    pub fds: Vec<(RawFd, RawFd)>,
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Marks every descriptor from 3 up close-on-exec, so that nothing Slipway inherited or
/// opened reaches the command; the descriptors an entry places on purpose are placed after
/// (placing one clears the mark on its new number).
///
/// # Safety
/// Async-signal-safe: only system calls.
pub(crate) unsafe fn close_inherited() {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) == 0 {
        return;
    }
    // Kernels before 5.11: one descriptor at a time, up to the limit.
    let mut limit: libc::rlimit = std::mem::zeroed();
    let highest = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
        limit.rlim_cur.min(1 << 20) as i32
    } else {
        1024
    };
    for fd in 3..highest {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags != -1 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

impl Entry {
    /// Applies the entry in a forked child.
    ///
    /// # Safety
    /// Only between fork and exec (or `_exit`) of a child: it changes the calling process's
    /// credentials and namespaces.
    pub unsafe fn apply(&self) -> io::Result<()> {
        close_inherited();
        for procs in &self.cgroup_procs {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd == -1 {
                return Err(io::Error::last_os_error());
            }
            let written = libc::write(fd, b"0\n".as_ptr().cast(), 2);
            libc::close(fd);
            if written == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        if let Some(ids) = self.drop_to {
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setresgid(ids.gid, ids.gid, ids.gid))?;
            check(libc::setresuid(ids.uid, ids.uid, ids.uid))?;
            // The change of user made the process undumpable, which leaves its /proc files
            // to root; it needs them (its own uid_map, ns files) as the new user.
            check(libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0))?;
        }
        // After the change of user, which clears it: die when Slipway dies.
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
        if let Some((user, net)) = self.namespaces {
            check(libc::setns(user, libc::CLONE_NEWUSER))?;
            check(libc::setns(net, libc::CLONE_NEWNET))?;
        }
        // Descriptors last: a target may have the number of a namespace's descriptor. Via
        // copies above every target, so that no target overwrites a later source (the lowest
        // free numbers above them: a fixed high number may pass RLIMIT_NOFILE).
        let above = self.fds.iter().map(|&(_, to)| to + 1).max().unwrap_or(0);
        let mut copies = [0; 8];
        for (copy, &(from, _)) in copies.iter_mut().zip(&self.fds) {
            *copy = libc::fcntl(from, libc::F_DUPFD_CLOEXEC, above);
            check(*copy)?;
        }
        for (copy, &(_, to)) in copies.iter().zip(&self.fds) {
            check(libc::dup2(*copy, to))?;
        }
        Ok(())
    }
}

/// Prepared before the fork: makes a new user and network namespace for a cell, maps the
/// calling user to root inside it and brings its loopback up.
#[derive(Debug)]
pub(crate) struct NewNamespaces {
    setgroups: CString,
    uid_map: (CString, Vec<u8>),
    gid_map: (CString, Vec<u8>),
}

impl NewNamespaces {
    pub fn new(outside: Ids) -> Self {
        let c = |s: &str| CString::new(s).expect("no NUL");
        Self {
            setgroups: c("/proc/self/setgroups"),
            uid_map: (
                c("/proc/self/uid_map"),
                format!("0 {} 1\n", outside.uid).into_bytes(),
            ),
            gid_map: (
                c("/proc/self/gid_map"),
                format!("0 {} 1\n", outside.gid).into_bytes(),
            ),
        }
    }

    /// # Safety
    /// Only in a forked child, after [`Entry::apply`] dropped its privileges.
    pub unsafe fn apply(&self) -> io::Result<()> {
        check(libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET))?;
        write_file(&self.setgroups, b"deny\n")?;
        write_file(&self.uid_map.0, &self.uid_map.1)?;
        write_file(&self.gid_map.0, &self.gid_map.1)?;
        loopback_up()
    }
}

unsafe fn write_file(path: &CString, data: &[u8]) -> io::Result<()> {
    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    let written = libc::write(fd, data.as_ptr().cast(), data.len());
    libc::close(fd);
    if written == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

unsafe fn loopback_up() -> io::Result<()> {
    let socket = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
    if socket == -1 {
        return Err(io::Error::last_os_error());
    }
    let mut request: libc::ifreq = std::mem::zeroed();
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    let mut result = libc::ioctl(socket, libc::SIOCGIFFLAGS, &mut request);
    if result != -1 {
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        result = libc::ioctl(socket, libc::SIOCSIFFLAGS, &request);
    }
    let error = io::Error::last_os_error();
    libc::close(socket);
    if result == -1 {
        Err(error)
    } else {
        Ok(())
    }
}

/// In a forked child inside the cell: connects to `127.0.0.1:port` and hands the connected
/// socket (or the error number) back over `channel`, then exits.
///
/// # Safety
/// Only in a forked child after [`Entry::apply`]; never returns.
pub(crate) unsafe fn connect_and_send(port: u16, channel: RawFd) -> ! {
    let socket = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
    let mut errno: u8 = 0;
    if socket == -1 {
        errno = 1;
    } else {
        let address = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        let connected = libc::connect(
            socket,
            (&address as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        if connected == -1 {
            errno = (*libc::__errno_location()).clamp(1, 255) as u8;
        }
    }
    send_fd(channel, if errno == 0 { Some(socket) } else { None }, errno);
    libc::_exit(0)
}

unsafe fn send_fd(channel: RawFd, fd: Option<RawFd>, code: u8) {
    let mut data = [code];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u8; 64];
    let mut message: libc::msghdr = std::mem::zeroed();
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    if let Some(fd) = fd {
        let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        message.msg_control = control.as_mut_ptr().cast();
        message.msg_controllen = space;
        let header = libc::CMSG_FIRSTHDR(&message);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(header).cast::<RawFd>(), fd);
    }
    libc::sendmsg(channel, &message, 0);
}

/// Receives what [`connect_and_send`] sent: the connected socket, or why it failed.
pub(crate) fn receive_fd(channel: RawFd) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let mut data = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u8; 64];
    // SAFETY: the message points at live buffers of the stated sizes.
    unsafe {
        let mut message: libc::msghdr = std::mem::zeroed();
        message.msg_iov = &mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        message.msg_controllen = control.len();
        let received = libc::recvmsg(channel, &mut message, libc::MSG_CMSG_CLOEXEC);
        if received == -1 {
            return Err(io::Error::last_os_error());
        }
        if received == 0 {
            return Err(io::Error::other(
                "the connecting helper ended without an answer",
            ));
        }
        if data[0] != 0 {
            return Err(io::Error::from_raw_os_error(data[0].into()));
        }
        let header = libc::CMSG_FIRSTHDR(&message);
        if header.is_null() || (*header).cmsg_type != libc::SCM_RIGHTS {
            return Err(io::Error::other("the connecting helper sent no socket"));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(header).cast::<RawFd>());
        Ok(std::os::fd::OwnedFd::from_raw_fd(fd))
    }
}
