//! The code that runs between clone and execve, in the order of DESIGN.md.
//!
//! It runs in a child cloned from a possibly multi-threaded process, so it
//! only touches data prepared by the parent and raw syscalls: no allocation,
//! no locks, no glibc wrappers with process-wide state. The cloned child is
//! pid 1 of a new pid namespace; it sets everything up, confines itself, then
//! forks the command and stays as its reaper.

use std::ffi::CString;

use libc::c_char;

use super::creds::Creds;
use super::landlock::LandlockPlan;
use super::mounts::MountPlan;
use super::report::{self, Step};
use super::rlimits::RlimitPlan;
use super::sched::SchedPlan;
use super::sys;

/// Everything the child needs, built by the parent.
#[derive(Debug)]
pub struct ChildPlan {
    /// Fds that become the command's 0, 1 and 2.
    pub stdio: [i32; 3],
    /// stdin is /dev/null: reopen the sandbox's own node after the mounts,
    /// so `/dev/stdin` names a file the command may open.
    pub stdin_null: bool,
    /// CLOEXEC pipe: a setup failure (step, errno); EOF means exec happened.
    pub err_w: i32,
    /// CLOEXEC pipe: init's report of how the command ended.
    pub status_w: i32,
    /// A pre-made network namespace to enter, if the pool had one.
    pub netns: Option<i32>,
    pub hostname: Vec<u8>,
    /// [arg_start, arg_end, env_start, env_end] of the daemon (/proc/self/stat).
    pub daemon_argv_env: [usize; 4],
    pub mounts: MountPlan,
    /// Opened `cgroup.procs` files to join.
    pub cgroup_procs: Vec<i32>,
    pub rlimits: RlimitPlan,
    pub sched: SchedPlan,
    pub creds: Creds,
    pub landlock: LandlockPlan,
    pub seccomp: &'static [seccompiler::sock_filter],
    pub program: CString,
    /// NULL-terminated pointer arrays into `_strings`.
    pub argv: Vec<*const c_char>,
    pub envp: Vec<*const c_char>,
    pub _strings: Vec<CString>,
    /// A session sandbox: init's end of the supervisor socket; init serves
    /// it (`session_init.rs`) instead of running `argv`.
    pub session: Option<i32>,
}

/// Sends the failure to the parent and exits.
macro_rules! step {
    ($fd:expr, $step:expr, $e:expr) => {
        if let Err(errno) = $e {
            report::fail($fd, $step, errno)
        }
    };
    ($fd:expr, $e:expr) => {
        if let Err((step, errno)) = $e {
            report::fail($fd, step, errno)
        }
    };
}

/// Signal dispositions inherited from the daemon (handlers, SIG_IGN for
/// SIGPIPE) must not reach init or the command.
fn reset_signals() {
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            sys::sigaction_default(sig);
        }
    }
    sys::unblock_all_signals();
}

/// Moves the prepared fds onto 0, 1, 2, first lifting any that already sit
/// in that range so no dup2 clobbers a source still needed.
fn install_stdio(stdio: [i32; 3]) -> Result<(), sys::Errno> {
    let mut src = stdio;
    for fd in src.iter_mut() {
        if *fd < 3 {
            *fd = sys::check(unsafe {
                libc::syscall(libc::SYS_fcntl, *fd, libc::F_DUPFD_CLOEXEC, 3)
            })? as i32;
        }
    }
    for (target, fd) in src.iter().enumerate() {
        sys::dup2(*fd, target as i32)?;
    }
    Ok(())
}

/// Closes every fd except 0, 1, 2 and `keep` (small, unsorted; -1 = none).
fn close_all_except(keep: [i32; 3]) -> Result<(), sys::Errno> {
    let mut keep = keep;
    keep.sort_unstable();
    let mut next = 3;
    for fd in keep {
        if fd < next {
            continue;
        }
        if fd > next {
            sys::close_range(next as u32, (fd - 1) as u32)?;
        }
        next = fd + 1;
    }
    sys::close_range(next as u32, i32::MAX as u32)
}

/// Overwrites, in init's copy of the daemon's memory, the argv and environ
/// strings that /proc/1/cmdline and /proc/1/environ read: `ps` then shows
/// "agentjail-init" and no daemon secret from its environment remains there.
/// (PR_SET_MM would need CAP_SYS_RESOURCE, which some hosts withhold.)
fn scrub_daemon_argv_env(r: [usize; 4]) {
    const NAME: &[u8] = b"agentjail-init";
    for (start, end) in [(r[0], r[1]), (r[2], r[3])] {
        if start == 0 || end <= start {
            continue;
        }
        // SAFETY: the kernel-reported argv/environ area of the initial
        // stack; writable, and nothing in this process reads it any more.
        unsafe { core::ptr::write_bytes(start as *mut u8, 0, end - start) };
    }
    if r[1] > r[0] + NAME.len() {
        // SAFETY: as above, and the area is longer than NAME.
        unsafe { core::ptr::copy_nonoverlapping(NAME.as_ptr(), r[0] as *mut u8, NAME.len()) };
    }
}

/// Entry point of the cloned child (pid 1 in the sandbox).
pub fn run_init(p: &mut ChildPlan) -> ! {
    let e = p.err_w;
    reset_signals();
    // 1. No controlling terminal; die with the launching thread; keep the
    //    copy of the daemon's memory that init carries away from /proc.
    step!(e, Step::Session, sys::setsid());
    step!(
        e,
        Step::Session,
        sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong)
    );
    step!(e, Step::Session, sys::prctl(libc::PR_SET_DUMPABLE, 0));
    step!(e, Step::Stdio, install_stdio(p.stdio));
    scrub_daemon_argv_env(p.daemon_argv_env);
    // 2. Namespaces: pid, mount, ipc, uts (and net) came with clone.
    if let Some(fd) = p.netns {
        step!(e, Step::NetNs, sys::setns(fd, libc::CLONE_NEWNET));
    }
    step!(e, Step::Hostname, sys::sethostname(&p.hostname));
    // A session's servers listen on its loopback, down in a new namespace.
    if p.session.is_some() && p.netns.is_none() {
        step!(e, Step::NetNs, sys::loopback_up());
    }
    // Scheduling state (nice, oom_score_adj, policy, ioprio), while the
    // host's /proc is still mounted and before the privilege drop.
    step!(e, Step::Sched, p.sched.apply());
    // 3. Filesystem view.
    step!(e, p.mounts.apply());
    if p.stdin_null {
        let null = match sys::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC, 0) {
            Ok(fd) => fd,
            Err(errno) => report::fail(e, Step::Stdio, errno),
        };
        step!(e, Step::Stdio, sys::dup2(null, 0));
        sys::close(null);
    }
    // 5. cgroups (4, closing fds, and the rlimits follow Landlock: see
    //    below).
    for fd in &p.cgroup_procs {
        step!(e, Step::CgroupJoin, sys::write_all(*fd, b"0"));
    }
    // 6. Credentials.
    step!(e, p.creds.drop_privileges());
    // A credential change clears both settings: set them again.
    step!(
        e,
        Step::Session,
        sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong)
    );
    step!(e, Step::Session, sys::prctl(libc::PR_SET_DUMPABLE, 0));
    step!(e, Step::Cwd, sys::chdir(p.mounts.cwd().as_ptr()));
    // 7. Landlock (sets no_new_privs).
    step!(e, p.landlock.apply());
    // 4. Only now close inherited fds: the landlock crate owns its ruleset
    //    fd and does not say which it is.
    step!(
        e,
        Step::CloseFds,
        close_all_except([p.err_w, p.status_w, p.session.unwrap_or(-1)])
    );
    // 5b. rlimits only once the inherited fds are closed: lowering
    //     RLIMIT_NOFILE below the daemon's open fds (a busy daemon has
    //     thousands) would make every later open fail with EMFILE. Lowering
    //     needs no privilege, so it may follow the credential drop.
    step!(e, Step::Rlimit, p.rlimits.apply());
    // 8. seccomp last, so the filter need not allow the calls above.
    step!(e, Step::Seccomp, super::seccomp::apply(p.seccomp));
    // 9s. A session: init stays, confined like a command, and serves the
    //     daemon's requests; closing `e` tells the launcher it is ready.
    if let Some(sock) = p.session {
        sys::close(e);
        super::session_init::serve(sock, p.status_w)
    }
    // 9. The command, as init's only child.
    let pid = match sys::fork() {
        Ok(pid) => pid,
        Err(errno) => report::fail(e, Step::ForkCommand, errno),
    };
    if pid == 0 {
        sys::close(p.status_w);
        let errno = sys::execve(p.program.as_ptr(), p.argv.as_ptr(), p.envp.as_ptr());
        report::fail(e, Step::Exec, errno);
    }
    sys::close(e);
    reap(pid, p.status_w)
}

/// Reaps every process that lands on init until the command exits, then
/// reports its status and exits, which kills whatever is left in the
/// namespace (`sleep 1000 &` does not outlive the call).
fn reap(command: libc::pid_t, status_w: i32) -> ! {
    loop {
        let mut status = 0;
        match sys::wait4(-1, &mut status, 0) {
            Ok(pid) if pid == command => {
                let _ = sys::write_all(status_w, &report::encode_status(status));
                sys::exit(0);
            }
            Ok(_) | Err(libc::EINTR) => {}
            Err(_) => sys::exit(1),
        }
    }
}
