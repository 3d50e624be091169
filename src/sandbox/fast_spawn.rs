//! A vfork-style spawn: `clone(CLONE_VM | CLONE_VFORK)` on a stack of its
//! own, for processes (a session's supervisor, a pooled sandbox's init)
//! that start children often. A plain fork copies the caller's page tables
//! (a copy of the daemon: ~0.3 ms); here the child borrows the caller's
//! memory until it execs or exits, and the caller's thread waits meanwhile,
//! as `posix_spawn` does.
//!
//! Order, the caller's side: block every signal, clone (with `CLONE_PIDFD`:
//! the pidfd comes with the pid, no `pidfd_open` race), restore the mask.
//! The child's side, before the caller's routine: every signal that had a
//! handler when the caller took its [`Handlers`] is reset to SIG_DFL (a
//! handler would run on the caller's memory), then the caller's mask is
//! restored. The caller takes that snapshot once, not the child at every
//! spawn: asking the kernel about 62 signals was ~20% of a session
//! command's spawn. A routine that gives up before exec reports
//! `(step, errno)` through [`Failure::fail`], a word in the caller's
//! memory; the caller reaps such a child before it returns.

use std::convert::Infallible;
use std::ffi::c_void;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

/// `CLONE_PIDFD` (Linux 5.2): the pidfd is stored where `parent_tid` points.
const CLONE_PIDFD: libc::c_int = 0x1000;
/// Set in the failure word once a routine has failed.
const FAILED: u64 = 1 << 63;

/// Enough stack for a routine that makes a few raw syscalls and execs.
pub const CHILD_STACK_BYTES: usize = 64 << 10;

/// A child's stack, mapped once and used by one spawn at a time (the
/// caller's thread waits until the child has exec'd or exited, so the
/// stack is free again when [`spawn`] returns). Its lowest page is a guard.
pub struct Stack {
    base: *mut c_void,
    len: usize,
}

// SAFETY: a private mapping owned by this value alone.
unsafe impl Send for Stack {}

impl Stack {
    /// A stack of `len` bytes (rounded up to pages) plus its guard page.
    pub fn new(len: usize) -> io::Result<Stack> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let len = len.div_ceil(page) * page + page;
        // SAFETY: a fresh anonymous mapping; checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Stack { base, len };
        // SAFETY: the first page of our own mapping.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The initial stack pointer (stacks grow down), 16-byte aligned.
    fn top(&mut self) -> *mut c_void {
        let end = self.base as usize + self.len;
        (end & !15) as *mut c_void
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: our mapping, no longer used by any child.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// How a routine reports that it gave up before exec.
pub struct Failure {
    word: AtomicU64,
}

impl Failure {
    /// Records `(step, errno)` for the caller and exits the child (127).
    /// Async-signal-safe: one store and `_exit`.
    pub fn fail(&self, step: u32, errno: i32) -> ! {
        let word = FAILED | (u64::from(step) << 32) | u64::from(errno as u32);
        self.word.store(word, Ordering::SeqCst);
        // SAFETY: _exit runs no handlers and never returns.
        unsafe { libc::_exit(127) }
    }
}

/// The signals that have a handler (neither SIG_DFL nor SIG_IGN), as they
/// were when [`Handlers::now`] was called: what a child must reset. Take
/// it after the caller's last change of a disposition; a sandbox's init
/// resets every one at its start and changes none after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handlers(u64);

impl Handlers {
    /// This process's handlers now.
    pub fn now() -> Handlers {
        let mut set = 0u64;
        for sig in 1..=64 {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            // SAFETY: sigaction only reads into a plain-data value (errors,
            // for the signals libc reserves, leave it zeroed: SIG_DFL).
            let old = unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(sig, std::ptr::null(), &mut old);
                old
            };
            if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN {
                set |= 1 << (sig - 1);
            }
        }
        Handlers(set)
    }

    fn has(self, sig: i32) -> bool {
        self.0 & (1 << (sig - 1)) != 0
    }
}

/// What became of a spawn.
#[derive(Debug)]
pub enum Spawned {
    /// The child exec'd (or will exit by itself without reporting).
    Running { pid: libc::pid_t, pidfd: OwnedFd },
    /// The routine reported a failure; the child (`pid`) has been reaped.
    Failed {
        pid: libc::pid_t,
        step: u32,
        errno: i32,
    },
}

/// What the trampoline finds in the caller's memory.
struct Shared<F> {
    routine: Option<F>,
    failure: Failure,
    mask: libc::sigset_t,
    handlers: Handlers,
}

/// Starts a child that runs `routine` on `stack`, sharing this process's
/// memory until it execs or exits; returns once it has.
///
/// `flags` are added to `CLONE_VM | CLONE_VFORK | CLONE_PIDFD` (e.g.
/// namespace flags for a sandbox's init); the exit signal is SIGCHLD.
/// `handlers` are the caller's signal handlers (see [`Handlers`]).
///
/// # Safety
///
/// The routine runs in a process that shares the caller's memory, on a
/// thread that is a copy of the calling one (the other threads do not
/// exist there, and whatever locks they held stay held). So it must:
///
/// - make raw syscalls and async-signal-safe calls only: no allocation, no
///   locks, no stdio, nothing that may panic;
/// - write no memory the caller reads afterwards, except through
///   [`Failure::fail`] (what it needs, such as C strings and pointer
///   arrays, is prepared by the caller beforehand and only read);
/// - never return: end in `execve` or in [`Failure::fail`] (or `_exit`);
///   its return type, `Infallible`, says so (`!` is not stable).
///
/// And `handlers` must hold every signal that has a handler now.
///
/// The caller's thread is suspended until then: a routine that blocks
/// blocks it too. What the routine owns is never dropped (it does not
/// return): capture references.
pub unsafe fn spawn<F>(
    stack: &mut Stack,
    flags: libc::c_int,
    handlers: Handlers,
    routine: F,
) -> io::Result<Spawned>
where
    F: FnOnce(&Failure) -> Infallible,
{
    // SAFETY: sigset_t is plain data, filled in below.
    let mut shared = Shared {
        routine: Some(routine),
        failure: Failure {
            word: AtomicU64::new(0),
        },
        mask: unsafe { std::mem::zeroed() },
        handlers,
    };
    // SAFETY: sigset_t is plain data.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut pidfd: libc::c_int = -1;
    // SAFETY: signal masks of this thread with valid pointers; clone with
    // a stack of ours, a trampoline that never returns, and `shared` and
    // `pidfd` alive until it returns (CLONE_VFORK: after the child's exec
    // or exit).
    let pid = unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut shared.mask);
        let pid = libc::clone(
            trampoline::<F>,
            stack.top(),
            flags | libc::CLONE_VM | libc::CLONE_VFORK | CLONE_PIDFD | libc::SIGCHLD,
            (&mut shared as *mut Shared<F>).cast(),
            &mut pidfd as *mut libc::c_int,
        );
        let err = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &shared.mask, std::ptr::null_mut());
        if pid < 0 {
            return Err(err);
        }
        pid
    };
    // SAFETY: CLONE_PIDFD stored a fresh close-on-exec pidfd there.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let word = shared.failure.word.load(Ordering::SeqCst);
    if word & FAILED == 0 {
        return Ok(Spawned::Running { pid, pidfd });
    }
    // It has exited already (CLONE_VFORK): reap it.
    let mut status = 0;
    // SAFETY: waiting for our own child.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
        && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
    {}
    Ok(Spawned::Failed {
        pid,
        step: ((word >> 32) & 0x7fff_ffff) as u32,
        errno: word as u32 as i32,
    })
}

/// The child's first code: signal dispositions and mask, then the routine.
extern "C" fn trampoline<F>(arg: *mut c_void) -> libc::c_int
where
    F: FnOnce(&Failure) -> Infallible,
{
    // SAFETY: `arg` is the caller's `Shared<F>`, alive while it waits.
    let shared = unsafe { &mut *arg.cast::<Shared<F>>() };
    // SAFETY: sigaction with valid pointers (errors, for the signals libc
    // reserves, are ignored); sigprocmask with the caller's saved mask.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in (1..=64).filter(|s| shared.handlers.has(*s)) {
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &shared.mask, std::ptr::null_mut());
    }
    let Some(routine) = shared.routine.take() else {
        // SAFETY: _exit never returns.
        unsafe { libc::_exit(127) }
    };
    // Its return type is uninhabited: this is never reached.
    #[allow(unreachable_code)]
    match routine(&shared.failure) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    fn wait(pid: libc::pid_t) -> i32 {
        let mut status = 0;
        // SAFETY: our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        status
    }

    fn mask() -> libc::sigset_t {
        // SAFETY: reading this thread's mask into plain data.
        unsafe {
            let mut m: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut m);
            m
        }
    }

    fn blocked(m: &libc::sigset_t, sig: i32) -> bool {
        // SAFETY: a valid set.
        unsafe { libc::sigismember(m, sig) == 1 }
    }

    #[test]
    fn a_child_that_execs_runs_and_its_exit_status_is_its_own() {
        let mut stack = Stack::new(64 << 10).unwrap();
        let prog = CString::new("/bin/sh").unwrap();
        let args = [c"sh".as_ptr(), c"-c".as_ptr(), c"exit 7".as_ptr()];
        let argv = [args[0], args[1], args[2], std::ptr::null()];
        let envp = [std::ptr::null::<libc::c_char>()];
        // SAFETY: the routine only calls execve and fail.
        let spawned = unsafe {
            spawn(&mut stack, 0, Handlers::now(), |failure| {
                libc::execve(prog.as_ptr(), argv.as_ptr(), envp.as_ptr());
                failure.fail(2, *libc::__errno_location())
            })
        }
        .unwrap();
        let Spawned::Running { pid, pidfd } = spawned else {
            panic!("exec failed: {spawned:?}");
        };
        drop(pidfd);
        let status = wait(pid);
        assert!(libc::WIFEXITED(status));
        assert_eq!(libc::WEXITSTATUS(status), 7);
    }

    #[test]
    fn a_child_that_fails_before_exec_reports_its_step_and_errno() {
        let mut stack = Stack::new(64 << 10).unwrap();
        let missing = CString::new("/nonexistent/agentjail-fast-spawn").unwrap();
        // SAFETY: the routine only calls chdir and fail.
        let spawned = unsafe {
            spawn(&mut stack, 0, Handlers::now(), |failure| {
                if libc::chdir(missing.as_ptr()) != 0 {
                    failure.fail(1, *libc::__errno_location());
                }
                libc::_exit(0)
            })
        }
        .unwrap();
        let Spawned::Failed { pid, step, errno } = spawned else {
            panic!("expected a failure, got {spawned:?}");
        };
        assert_eq!((step, errno), (1, libc::ENOENT));
        // It was reaped: it is no child of ours any more.
        // SAFETY: probing without waiting.
        let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        assert_eq!(r, -1, "the failed child was left unreaped");
    }

    extern "C" fn ignore(_: libc::c_int) {}

    /// Whether the child saw a handler for `sig` (exit 1) or SIG_DFL (0).
    fn child_sees_handler(sig: i32, handlers: Handlers) -> bool {
        let mut stack = Stack::new(64 << 10).unwrap();
        // SAFETY: the routine only reads a disposition and exits.
        let spawned = unsafe {
            spawn(&mut stack, 0, handlers, |_failure| {
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(sig, std::ptr::null(), &mut old);
                libc::_exit(i32::from(old.sa_sigaction != libc::SIG_DFL))
            })
        }
        .unwrap();
        let Spawned::Running { pid, .. } = spawned else {
            panic!("unexpected {spawned:?}");
        };
        libc::WEXITSTATUS(wait(pid)) == 1
    }

    #[test]
    fn a_handler_in_the_snapshot_is_reset_in_the_child_and_only_there() {
        let sig = libc::SIGURG;
        // SAFETY: a handler that does nothing, for a signal nothing sends.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = ignore as *const () as usize;
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
        let handlers = Handlers::now();
        assert!(handlers.has(sig), "the snapshot missed the handler");
        assert!(!child_sees_handler(sig, handlers), "the child kept it");
        // The control: a snapshot without it leaves it in the child, so
        // the reset above was the snapshot's doing.
        assert!(child_sees_handler(sig, Handlers(0)));
        // SAFETY: back to the default.
        unsafe {
            let dfl: libc::sigaction = std::mem::zeroed();
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
        }
        assert!(!Handlers::now().has(sig));
    }

    #[test]
    fn the_callers_signal_mask_is_restored_and_the_child_gets_it() {
        // SIGUSR2 blocked in this thread, SIGUSR1 not.
        // SAFETY: plain signal-set calls on this thread.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR2);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
        let mut stack = Stack::new(64 << 10).unwrap();
        // The child reports whether SIGUSR1 was blocked in it (it must not
        // be: the caller's mask, not the all-blocked one of the clone).
        // SAFETY: the routine only reads its mask and exits.
        let spawned = unsafe {
            spawn(&mut stack, 0, Handlers::now(), |_failure| {
                let mut m: libc::sigset_t = std::mem::zeroed();
                libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut m);
                let code = i32::from(libc::sigismember(&m, libc::SIGUSR1) == 1)
                    | i32::from(libc::sigismember(&m, libc::SIGUSR2) == 1) << 1;
                libc::_exit(code)
            })
        }
        .unwrap();
        let after = mask();
        let Spawned::Running { pid, .. } = spawned else {
            panic!("unexpected {spawned:?}");
        };
        let status = wait(pid);
        assert!(!blocked(&after, libc::SIGUSR1), "SIGUSR1 left blocked");
        assert!(blocked(&after, libc::SIGUSR2), "SIGUSR2 unblocked");
        assert!(!blocked(&after, libc::SIGTERM), "SIGTERM left blocked");
        // In the child: SIGUSR1 open, SIGUSR2 blocked, as in the caller.
        assert_eq!(libc::WEXITSTATUS(status), 0b10);
        // SAFETY: undo the test's own block.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR2);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        }
    }
}
