//! Raw syscall wrappers for the child side of the launch.
//!
//! Everything here is async-signal-safe: no allocation, no locks, no glibc
//! wrappers that keep per-process state (glibc's `setresuid` broadcasts to
//! threads that do not exist in a child forked from a multi-threaded process).

use libc::{c_char, c_int, c_long, c_ulong, c_void};

/// An errno, captured right after a failing syscall.
pub type Errno = i32;

/// The calling thread's errno (after a raw libc call).
pub fn last_errno() -> Errno {
    errno()
}

fn errno() -> Errno {
    // SAFETY: reading the thread's errno location is always valid.
    unsafe { *libc::__errno_location() }
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd), Errno> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills both fds on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(errno());
    }
    // SAFETY: fresh fds owned by nobody else.
    Ok(unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    })
}

/// Makes `fd` non-blocking, with one `F_SETFL` and no `F_GETFL` first: the
/// other status flags (`O_APPEND`, `O_ASYNC`, ...) are cleared, which is
/// right for the pipes, sockets and terminals the daemon reads and writes
/// (some of them handed over by a supervisor it does not trust).
pub fn set_nonblocking(fd: std::os::fd::BorrowedFd<'_>) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on a descriptor the caller holds.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } as c_long)
        .map(drop)
}

/// Turns a raw syscall return into a `Result`.
pub fn check(ret: c_long) -> Result<c_long, Errno> {
    if ret < 0 { Err(errno()) } else { Ok(ret) }
}

macro_rules! sc {
    ($nr:expr $(, $a:expr)*) => {
        // SAFETY: callers pass pointers to live, NUL-terminated or correctly sized data.
        check(unsafe { libc::syscall($nr $(, $a)*) })
    };
}

pub fn mount(
    src: *const c_char,
    dst: *const c_char,
    fstype: *const c_char,
    flags: c_ulong,
    data: *const c_void,
) -> Result<(), Errno> {
    sc!(libc::SYS_mount, src, dst, fstype, flags, data).map(drop)
}

/// `struct mount_attr` for mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Applies mount attributes to a whole mount tree (unlike MS_REMOUNT, which
/// only touches the top mount of a recursive bind).
pub fn mount_setattr_recursive(path: *const c_char, attr_set: u64) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let size = core::mem::size_of::<MountAttr>();
    sc!(
        libc::SYS_mount_setattr,
        libc::AT_FDCWD,
        path,
        libc::AT_RECURSIVE as libc::c_uint,
        &attr as *const MountAttr,
        size
    )
    .map(drop)
}

pub fn pivot_root(new: *const c_char, old: *const c_char) -> Result<(), Errno> {
    sc!(libc::SYS_pivot_root, new, old).map(drop)
}
pub fn umount2(path: *const c_char, flags: c_int) -> Result<(), Errno> {
    sc!(libc::SYS_umount2, path, flags).map(drop)
}
pub fn chdir(path: *const c_char) -> Result<(), Errno> {
    sc!(libc::SYS_chdir, path).map(drop)
}
pub fn mkdir(path: *const c_char, mode: libc::mode_t) -> Result<(), Errno> {
    match sc!(libc::SYS_mkdirat, libc::AT_FDCWD, path, mode) {
        Err(libc::EEXIST) => Ok(()),
        r => r.map(drop),
    }
}
pub fn mknod(path: *const c_char, mode: libc::mode_t, dev: u64) -> Result<(), Errno> {
    // umask is 022 in most daemons: chmod after, so the nodes are 0666.
    sc!(libc::SYS_mknodat, libc::AT_FDCWD, path, mode, dev)?;
    sc!(libc::SYS_fchmodat, libc::AT_FDCWD, path, mode & 0o7777).map(drop)
}
pub fn symlink(target: *const c_char, link: *const c_char) -> Result<(), Errno> {
    sc!(libc::SYS_symlinkat, target, libc::AT_FDCWD, link).map(drop)
}
pub fn open(path: *const c_char, flags: c_int, mode: libc::mode_t) -> Result<c_int, Errno> {
    sc!(libc::SYS_openat, libc::AT_FDCWD, path, flags, mode).map(|fd| fd as c_int)
}
pub fn close(fd: c_int) {
    let _ = sc!(libc::SYS_close, fd);
}
pub fn write_all(fd: c_int, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match sc!(libc::SYS_write, fd, buf.as_ptr(), buf.len()) {
            Ok(n) => buf = &buf[n as usize..],
            Err(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
pub fn dup2(old: c_int, new: c_int) -> Result<(), Errno> {
    // dup3 refuses old == new; in that case only clear FD_CLOEXEC.
    if old == new {
        return sc!(libc::SYS_fcntl, old, libc::F_SETFD, 0).map(drop);
    }
    sc!(libc::SYS_dup3, old, new, 0).map(drop)
}
pub fn close_range(first: u32, last: u32) -> Result<(), Errno> {
    sc!(libc::SYS_close_range, first, last, 0).map(drop)
}
pub fn setsid() -> Result<(), Errno> {
    sc!(libc::SYS_setsid).map(drop)
}
pub fn prctl(op: c_int, a: c_ulong) -> Result<c_long, Errno> {
    sc!(libc::SYS_prctl, op, a, 0, 0, 0)
}
/// Sets the file mode creation mask (it cannot fail).
pub fn umask(mask: libc::mode_t) {
    let _ = sc!(libc::SYS_umask, mask);
}
pub fn setns(fd: c_int, nstype: c_int) -> Result<(), Errno> {
    sc!(libc::SYS_setns, fd, nstype).map(drop)
}
pub fn sethostname(name: &[u8]) -> Result<(), Errno> {
    sc!(libc::SYS_sethostname, name.as_ptr(), name.len()).map(drop)
}
pub fn setgroups_empty() -> Result<(), Errno> {
    sc!(libc::SYS_setgroups, 0, core::ptr::null::<libc::gid_t>()).map(drop)
}
pub fn setresgid(g: u32) -> Result<(), Errno> {
    sc!(libc::SYS_setresgid, g, g, g).map(drop)
}
pub fn setresuid(u: u32) -> Result<(), Errno> {
    sc!(libc::SYS_setresuid, u, u, u).map(drop)
}
/// The current (soft, hard) limit of `resource`.
pub fn prlimit_get(resource: c_int) -> Result<(u64, u64), Errno> {
    let mut lim = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    sc!(
        libc::SYS_prlimit64,
        0,
        resource,
        core::ptr::null::<libc::rlimit64>(),
        &mut lim as *mut libc::rlimit64
    )?;
    Ok((lim.rlim_cur, lim.rlim_max))
}

pub fn prlimit(resource: c_int, soft: u64, hard: u64) -> Result<(), Errno> {
    let lim = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    sc!(
        libc::SYS_prlimit64,
        0,
        resource,
        &lim as *const libc::rlimit64,
        core::ptr::null::<libc::rlimit64>()
    )
    .map(drop)
}
pub fn execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> Errno {
    let _ = sc!(libc::SYS_execve, path, argv, envp);
    errno()
}
pub fn wait4(pid: libc::pid_t, status: &mut c_int, flags: c_int) -> Result<libc::pid_t, Errno> {
    sc!(
        libc::SYS_wait4,
        pid,
        status as *mut c_int,
        flags,
        core::ptr::null_mut::<libc::rusage>()
    )
    .map(|p| p as libc::pid_t)
}
pub fn exit(code: c_int) -> ! {
    // SAFETY: _exit never returns and runs no atexit handlers.
    unsafe { libc::_exit(code) }
}
pub fn sigaction_default(sig: c_int) {
    // SAFETY: zeroed sigaction is SIG_DFL with an empty mask.
    let act: libc::sigaction = unsafe { core::mem::zeroed() };
    let _ = sc!(
        libc::SYS_rt_sigaction,
        sig,
        &act as *const libc::sigaction,
        core::ptr::null_mut::<libc::sigaction>(),
        8
    );
}
pub fn unblock_all_signals() {
    let set: u64 = 0;
    let _ = sc!(
        libc::SYS_rt_sigprocmask,
        libc::SIG_SETMASK,
        &set as *const u64,
        core::ptr::null_mut::<u64>(),
        8
    );
}

/// Landlock: `struct landlock_path_beneath_attr` (packed in the uapi).
#[repr(C, packed)]
struct PathBeneath {
    allowed_access: u64,
    parent_fd: i32,
}
const LANDLOCK_RULE_PATH_BENEATH: c_int = 1;

pub fn landlock_add_path_rule(
    ruleset_fd: c_int,
    parent_fd: c_int,
    access: u64,
) -> Result<(), Errno> {
    let attr = PathBeneath {
        allowed_access: access,
        parent_fd,
    };
    sc!(
        libc::SYS_landlock_add_rule,
        ruleset_fd,
        LANDLOCK_RULE_PATH_BENEATH,
        &attr as *const PathBeneath,
        0
    )
    .map(drop)
}

/// Enforces an already built Landlock ruleset on the calling thread.
pub fn landlock_restrict_self(ruleset_fd: c_int) -> Result<(), Errno> {
    sc!(libc::SYS_landlock_restrict_self, ruleset_fd, 0).map(drop)
}

/// Returns the (effective, permitted) capability sets, all 64 bits.
pub fn capget_self() -> Result<(u64, u64, u64), Errno> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut hdr = Header {
        version: 0x2008_0522,
        pid: 0,
    }; // _LINUX_CAPABILITY_VERSION_3
    let mut data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    sc!(libc::SYS_capget, &mut hdr as *mut Header, data.as_mut_ptr())?;
    let join = |lo: u32, hi: u32| (hi as u64) << 32 | lo as u64;
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
        join(data[0].inheritable, data[1].inheritable),
    ))
}

/// Brings up `lo` in the current network namespace (SIOCSIFFLAGS).
pub fn loopback_up() -> Result<(), Errno> {
    let fd = sc!(
        libc::SYS_socket,
        libc::AF_INET,
        libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
        0
    )? as c_int;
    // SAFETY: ifreq is plain data; the name is NUL-padded.
    let mut ifr: libc::ifreq = unsafe { core::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo") {
        *d = *s as c_char;
    }
    let r = sc!(
        libc::SYS_ioctl,
        fd,
        libc::SIOCGIFFLAGS,
        &mut ifr as *mut libc::ifreq
    )
    .and_then(|_| {
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        unsafe { ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as i16 };
        sc!(
            libc::SYS_ioctl,
            fd,
            libc::SIOCSIFFLAGS,
            &ifr as *const libc::ifreq
        )
    });
    close(fd);
    r.map(drop)
}
