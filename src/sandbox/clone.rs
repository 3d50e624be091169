//! Cloning a sandbox's init: `clone3` with `CLONE_PIDFD`, and with
//! `CLONE_INTO_CGROUP` when the launch has a cgroup2 group, so the child is
//! born in its group instead of joining it (a join takes the cgroup
//! threadgroup lock for writing: the 8–11 ms p90 tail measured here). Where
//! `clone3` or `CLONE_INTO_CGROUP` is refused (kernels before 5.7, a group
//! the kernel will not clone into, a seccomp filter on the host), the
//! launcher falls back once and for all to `clone` + `pidfd_open`, and the
//! child joins the group itself (`Step::CgroupJoin`). cgroup v1 groups
//! (memory, pids, cpu on hosts without cgroup2 controllers) are always
//! joined by the child: the kernel clones into a cgroup2 group only.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args`, CLONE_ARGS_SIZE_VER2 (with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Set once `clone3` into a cgroup failed for want of support: later
/// launches go straight to the fallback.
static CLONE3_REFUSED: AtomicBool = AtomicBool::new(false);

/// Whether a launch should prepare for `CLONE_INTO_CGROUP` (the child then
/// skips joining the cgroup2 group).
pub fn into_cgroup_usable() -> bool {
    !CLONE3_REFUSED.load(Ordering::Relaxed)
}

/// What a clone gave the parent.
pub enum Cloned {
    /// In the child.
    Child,
    /// In the parent: the child's pid and a pidfd on it.
    Parent { pid: libc::pid_t, pidfd: OwnedFd },
}

/// A fork-like clone (no CLONE_VM, no new stack) with namespace `flags`,
/// into the cgroup2 directory `cgroup` when given. `before_fallback` runs
/// in the parent before a plain `clone` replaces a refused `clone3` (the
/// child must then join the group itself). `Ok(Cloned::Child)` returns in
/// the child, which must never return to the caller's caller.
///
/// # Safety
/// Like fork: the child may only run code fit for a child of this process
/// (the launcher is single-threaded but for its helper threads, so the
/// child keeps to async-signal-safe code).
pub unsafe fn clone_init(
    flags: libc::c_int,
    cgroup: Option<RawFd>,
    before_fallback: impl FnOnce(),
) -> io::Result<Cloned> {
    if let Some(cg) = cgroup {
        let mut pidfd: RawFd = -1;
        let args = CloneArgs {
            flags: flags as u64 | CLONE_PIDFD | CLONE_INTO_CGROUP,
            pidfd: &mut pidfd as *mut RawFd as u64,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: cg as u64,
            ..CloneArgs::default()
        };
        // SAFETY: a valid clone_args of the size passed; fork-like (no
        // stack, no CLONE_VM), as the caller guarantees it may be.
        let r = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        match r {
            0 => return Ok(Cloned::Child),
            pid if pid > 0 => {
                return Ok(Cloned::Parent {
                    pid: pid as libc::pid_t,
                    // SAFETY: the kernel filled in a fresh pidfd.
                    pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
                });
            }
            _ => {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    // No clone3, no CLONE_INTO_CGROUP, a filter, or a group
                    // the kernel cannot clone into: fall back, for good.
                    Some(
                        libc::ENOSYS
                        | libc::E2BIG
                        | libc::EINVAL
                        | libc::EOPNOTSUPP
                        | libc::EPERM
                        | libc::EBUSY,
                    ) => {
                        CLONE3_REFUSED.store(true, Ordering::Relaxed);
                        tracing::warn!(
                            "clone3 with CLONE_INTO_CGROUP refused ({e}); sandboxes join their \
                             cgroups after clone from now on"
                        );
                    }
                    _ => return Err(e),
                }
            }
        }
        before_fallback();
    }
    // SAFETY: fork-like clone, as above.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0,
            0,
            0,
            0,
        )
    };
    match pid {
        0 => Ok(Cloned::Child),
        pid if pid > 0 => {
            let pid = pid as libc::pid_t;
            match super::launcher_process::pidfd_open(pid) {
                Ok(pidfd) => Ok(Cloned::Parent { pid, pidfd }),
                Err(e) => {
                    // SAFETY: our unreaped child; end it rather than lose it.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                        libc::waitpid(pid, std::ptr::null_mut(), 0);
                    }
                    Err(e)
                }
            }
        }
        _ => Err(io::Error::last_os_error()),
    }
}
