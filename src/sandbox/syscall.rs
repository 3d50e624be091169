//! The seam for the privileged calls of a sandbox's setup (youki's
//! `Syscall` trait is the model): `child::setup` and the plans it applies
//! (mounts, credentials, rlimits) make every such call through [`Syscall`],
//! so the order of the steps and what each plan does can be unit-tested
//! without root by a recording fake (see the tests in `child.rs`).
//!
//! Thin on purpose: [`Real`] forwards each method to the same raw syscall
//! wrapper in `sys.rs` that the code called before the seam existed, and
//! all of it stays async-signal-safe (no allocation, no locks). The
//! Landlock, seccomp and scheduling plans are single calls here: their own
//! contents are the crate's or the kernel's, tested where they are built.

use libc::{c_char, c_int, c_ulong, c_void};

use super::landlock::LandlockPlan;
use super::report::Step;
use super::sched::SchedPlan;
use super::sys::{self, Errno};

/// The privileged (and fd-shuffling) calls a sandbox's setup makes.
pub trait Syscall {
    fn setsid(&self) -> Result<(), Errno>;
    fn prctl(&self, op: c_int, arg: c_ulong) -> Result<(), Errno>;
    /// `fcntl(F_DUPFD_CLOEXEC, min)`.
    fn dup_above(&self, fd: c_int, min: c_int) -> Result<c_int, Errno>;
    fn dup2(&self, old: c_int, new: c_int) -> Result<(), Errno>;
    fn open(&self, path: *const c_char, flags: c_int, mode: libc::mode_t) -> Result<c_int, Errno>;
    fn close(&self, fd: c_int);
    fn close_range(&self, first: u32, last: u32) -> Result<(), Errno>;
    fn write_all(&self, fd: c_int, buf: &[u8]) -> Result<(), Errno>;
    fn setns(&self, fd: c_int, nstype: c_int) -> Result<(), Errno>;
    fn sethostname(&self, name: &[u8]) -> Result<(), Errno>;
    fn mount(
        &self,
        src: *const c_char,
        dst: *const c_char,
        fstype: *const c_char,
        flags: c_ulong,
        data: *const c_void,
    ) -> Result<(), Errno>;
    fn mount_setattr_recursive(&self, path: *const c_char, attr_set: u64) -> Result<(), Errno>;
    fn mkdir(&self, path: *const c_char, mode: libc::mode_t) -> Result<(), Errno>;
    fn mknod(&self, path: *const c_char, mode: libc::mode_t, dev: u64) -> Result<(), Errno>;
    fn symlink(&self, target: *const c_char, link: *const c_char) -> Result<(), Errno>;
    fn pivot_root(&self, new: *const c_char, old: *const c_char) -> Result<(), Errno>;
    fn umount2(&self, path: *const c_char, flags: c_int) -> Result<(), Errno>;
    fn chdir(&self, path: *const c_char) -> Result<(), Errno>;
    fn setgroups_empty(&self) -> Result<(), Errno>;
    fn setresgid(&self, gid: u32) -> Result<(), Errno>;
    fn setresuid(&self, uid: u32) -> Result<(), Errno>;
    /// (effective, permitted, inheritable) capability sets.
    fn capget_self(&self) -> Result<(u64, u64, u64), Errno>;
    fn prlimit_get(&self, resource: c_int) -> Result<(u64, u64), Errno>;
    fn prlimit(&self, resource: c_int, soft: u64, hard: u64) -> Result<(), Errno>;
    /// Nice, policy, I/O priority and OOM score of the calling process.
    fn sched(&self, plan: &SchedPlan) -> Result<(), Errno>;
    /// Adds the path rules and enforces the ruleset (sets no_new_privs).
    fn landlock(&self, plan: &mut LandlockPlan) -> Result<(), (Step, Errno)>;
    fn umask(&self, mask: libc::mode_t);
    /// Brings up `lo` in the current network namespace.
    fn loopback_up(&self) -> Result<(), Errno>;
    fn seccomp(&self, prog: &[seccompiler::sock_filter]) -> Result<(), Errno>;
}

/// The kernel: each method is the raw syscall of `sys.rs`.
pub struct Real;

impl Syscall for Real {
    fn setsid(&self) -> Result<(), Errno> {
        sys::setsid()
    }
    fn prctl(&self, op: c_int, arg: c_ulong) -> Result<(), Errno> {
        sys::prctl(op, arg).map(drop)
    }
    fn dup_above(&self, fd: c_int, min: c_int) -> Result<c_int, Errno> {
        // SAFETY: fcntl with integer arguments.
        sys::check(unsafe { libc::syscall(libc::SYS_fcntl, fd, libc::F_DUPFD_CLOEXEC, min) })
            .map(|fd| fd as c_int)
    }
    fn dup2(&self, old: c_int, new: c_int) -> Result<(), Errno> {
        sys::dup2(old, new)
    }
    fn open(&self, path: *const c_char, flags: c_int, mode: libc::mode_t) -> Result<c_int, Errno> {
        sys::open(path, flags, mode)
    }
    fn close(&self, fd: c_int) {
        sys::close(fd)
    }
    fn close_range(&self, first: u32, last: u32) -> Result<(), Errno> {
        sys::close_range(first, last)
    }
    fn write_all(&self, fd: c_int, buf: &[u8]) -> Result<(), Errno> {
        sys::write_all(fd, buf)
    }
    fn setns(&self, fd: c_int, nstype: c_int) -> Result<(), Errno> {
        sys::setns(fd, nstype)
    }
    fn sethostname(&self, name: &[u8]) -> Result<(), Errno> {
        sys::sethostname(name)
    }
    fn mount(
        &self,
        src: *const c_char,
        dst: *const c_char,
        fstype: *const c_char,
        flags: c_ulong,
        data: *const c_void,
    ) -> Result<(), Errno> {
        sys::mount(src, dst, fstype, flags, data)
    }
    fn mount_setattr_recursive(&self, path: *const c_char, attr_set: u64) -> Result<(), Errno> {
        sys::mount_setattr_recursive(path, attr_set)
    }
    fn mkdir(&self, path: *const c_char, mode: libc::mode_t) -> Result<(), Errno> {
        sys::mkdir(path, mode)
    }
    fn mknod(&self, path: *const c_char, mode: libc::mode_t, dev: u64) -> Result<(), Errno> {
        sys::mknod(path, mode, dev)
    }
    fn symlink(&self, target: *const c_char, link: *const c_char) -> Result<(), Errno> {
        sys::symlink(target, link)
    }
    fn pivot_root(&self, new: *const c_char, old: *const c_char) -> Result<(), Errno> {
        sys::pivot_root(new, old)
    }
    fn umount2(&self, path: *const c_char, flags: c_int) -> Result<(), Errno> {
        sys::umount2(path, flags)
    }
    fn chdir(&self, path: *const c_char) -> Result<(), Errno> {
        sys::chdir(path)
    }
    fn setgroups_empty(&self) -> Result<(), Errno> {
        sys::setgroups_empty()
    }
    fn setresgid(&self, gid: u32) -> Result<(), Errno> {
        sys::setresgid(gid)
    }
    fn setresuid(&self, uid: u32) -> Result<(), Errno> {
        sys::setresuid(uid)
    }
    fn capget_self(&self) -> Result<(u64, u64, u64), Errno> {
        sys::capget_self()
    }
    fn prlimit_get(&self, resource: c_int) -> Result<(u64, u64), Errno> {
        sys::prlimit_get(resource)
    }
    fn prlimit(&self, resource: c_int, soft: u64, hard: u64) -> Result<(), Errno> {
        sys::prlimit(resource, soft, hard)
    }
    fn sched(&self, plan: &SchedPlan) -> Result<(), Errno> {
        plan.apply()
    }
    fn landlock(&self, plan: &mut LandlockPlan) -> Result<(), (Step, Errno)> {
        plan.apply()
    }
    fn umask(&self, mask: libc::mode_t) {
        sys::umask(mask)
    }
    fn loopback_up(&self) -> Result<(), Errno> {
        sys::loopback_up()
    }
    fn seccomp(&self, prog: &[seccompiler::sock_filter]) -> Result<(), Errno> {
        super::seccomp::apply(prog)
    }
}
