//! The code that runs between clone and execve, in the order of DESIGN.md.
//!
//! It runs in a child cloned from a possibly multi-threaded process, so it
//! only touches data prepared by the parent and raw syscalls: no allocation,
//! no locks, no glibc wrappers with process-wide state. The cloned child is
//! pid 1 of a new pid namespace; it sets everything up, confines itself, then
//! forks the command and stays as its reaper.

use super::command::ChildArea;
use super::creds::Creds;
use super::fast_spawn;
use super::landlock::LandlockPlan;
use super::mounts::MountPlan;
use super::report::{self, Step};
use super::rlimits::RlimitPlan;
use super::sched::SchedPlan;
use super::sys;
use super::syscall::{Real, Syscall};

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
    /// The command's umask; None: the daemon's, inherited.
    pub umask: Option<libc::mode_t>,
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
    /// Where init waits for its command (`command.rs`).
    pub command: ChildArea,
    /// A session sandbox: init's end of the supervisor socket; init serves
    /// it (`session_init.rs`) instead of running `argv`.
    pub session: Option<i32>,
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
fn install_stdio(s: &impl Syscall, stdio: [i32; 3]) -> Result<(), sys::Errno> {
    let mut src = stdio;
    for fd in src.iter_mut() {
        if *fd < 3 {
            *fd = s.dup_above(*fd, 3)?;
        }
    }
    for (target, fd) in src.iter().enumerate() {
        s.dup2(*fd, target as i32)?;
    }
    Ok(())
}

/// Closes every fd except 0, 1, 2 and `keep` (small, unsorted; -1 = none).
fn close_all_except(s: &impl Syscall, keep: [i32; 4]) -> Result<(), sys::Errno> {
    let mut keep = keep;
    keep.sort_unstable();
    let mut next = 3;
    for fd in keep {
        if fd < next {
            continue;
        }
        if fd > next {
            s.close_range(next as u32, (fd - 1) as u32)?;
        }
        next = fd + 1;
    }
    s.close_range(next as u32, i32::MAX as u32)
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

fn errno_of(err: &std::io::Error) -> sys::Errno {
    err.raw_os_error().unwrap_or(libc::EIO)
}

/// Tags an errno with the step it failed at.
fn at<T>(step: Step, r: Result<T, sys::Errno>) -> Result<T, (Step, sys::Errno)> {
    r.map_err(|e| (step, e))
}

/// Entry point of the cloned child (pid 1 in the sandbox): the setup, then
/// the command as init's only child.
pub fn run_init(p: &mut ChildPlan) -> ! {
    reset_signals();
    if let Err((step, errno)) = setup(&Real, p) {
        report::fail(p.err_w, step, errno);
    }
    // 9s. A session: init stays, confined like a command, and serves the
    //     daemon's requests; closing the error pipe tells the launcher it
    //     is ready (as an exec would).
    if let Some(sock) = p.session {
        sys::close(p.err_w);
        super::session_init::serve(sock, p.status_w)
    }
    // 9. Ready: say so, then wait for the command. A sandbox built ahead
    //    (the pool) waits here until a call takes it; a cold one finds its
    //    command already there. EOF instead: the sandbox is destroyed.
    //    Its name says which (`ps`, and the tests' leftover checks).
    let e = p.err_w;
    //    What the command's spawn needs is made before: `fast_spawn`, not
    //    fork (init is a copy of the launcher, and a fork would copy its
    //    page tables, ~0.3 ms), its stack (mmap, not malloc: nothing
    //    allocates in init) and the handlers to reset (none since
    //    `reset_signals`, asked once).
    let mut stack = match fast_spawn::Stack::new(fast_spawn::CHILD_STACK_BYTES) {
        Ok(stack) => stack,
        Err(err) => report::fail(e, Step::ForkCommand, errno_of(&err)),
    };
    let handlers = fast_spawn::Handlers::now();
    let _ = sys::prctl(libc::PR_SET_NAME, c"aj-ready".as_ptr() as libc::c_ulong);
    if sys::write_all(e, &report::READY).is_err() {
        sys::exit(1)
    }
    let Some(cmd) = p.command.wait() else {
        sys::exit(0)
    };
    let _ = sys::prctl(
        libc::PR_SET_NAME,
        c"agentjail-init".as_ptr() as libc::c_ulong,
    );
    // 10. The command's cwd, entered with its own credentials and under
    //     its Landlock domain, then the command as init's only child.
    if let Err(errno) = sys::chdir(cmd.cwd) {
        report::fail(e, Step::Cwd, errno);
    }
    //     Started with `fast_spawn` (see 9.).
    let status_w = p.status_w;
    // SAFETY: the routine makes raw syscalls only and ends in execve or
    // `Failure::fail`; the strings and arrays it passes were laid out in
    // the command area before, and it writes no memory.
    let spawned = unsafe {
        fast_spawn::spawn(&mut stack, 0, handlers, |failure| {
            sys::close(status_w);
            let errno = sys::execve(cmd.program, cmd.argv, cmd.envp);
            failure.fail(Step::Exec as u32, errno)
        })
    };
    let pid = match spawned {
        Ok(fast_spawn::Spawned::Running { pid, .. }) => pid,
        Ok(fast_spawn::Spawned::Failed { errno, .. }) => report::fail(e, Step::Exec, errno),
        Err(err) => report::fail(e, Step::ForkCommand, errno_of(&err)),
    };
    sys::close(e);
    reap(pid, p.status_w)
}

/// The whole setup of a sandbox's init, in order (the one place that
/// order is written; DESIGN.md explains each step). Every privileged call
/// goes through `s`, so the order is unit-tested with a recording fake.
/// Stops at the first failing step and returns it with its errno.
pub fn setup(s: &impl Syscall, p: &mut ChildPlan) -> Result<(), (Step, sys::Errno)> {
    let pdeathsig = libc::SIGKILL as libc::c_ulong;
    // 1. No controlling terminal; die with the launching thread; keep the
    //    copy of the daemon's memory that init carries away from /proc.
    at(Step::Session, s.setsid())?;
    at(Step::Session, s.prctl(libc::PR_SET_PDEATHSIG, pdeathsig))?;
    at(Step::Session, s.prctl(libc::PR_SET_DUMPABLE, 0))?;
    at(Step::Stdio, install_stdio(s, p.stdio))?;
    scrub_daemon_argv_env(p.daemon_argv_env);
    // 2. Namespaces: pid, mount, ipc, uts (and net) came with clone.
    if let Some(fd) = p.netns {
        at(Step::NetNs, s.setns(fd, libc::CLONE_NEWNET))?;
    }
    at(Step::Hostname, s.sethostname(&p.hostname))?;
    // A session's servers listen on its loopback, down in a new namespace.
    if p.session.is_some() && p.netns.is_none() {
        at(Step::NetNs, s.loopback_up())?;
    }
    // Scheduling state (nice, oom_score_adj, policy, ioprio), while the
    // host's /proc is still mounted and before the privilege drop.
    at(Step::Sched, s.sched(&p.sched))?;
    // 3. Filesystem view.
    p.mounts.apply(s)?;
    if p.stdin_null {
        let null = at(
            Step::Stdio,
            s.open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC, 0),
        )?;
        at(Step::Stdio, s.dup2(null, 0))?;
        s.close(null);
    }
    // 5. cgroups (4, closing fds, and the rlimits follow Landlock: see
    //    below). A group the child was cloned into is not in the list.
    for fd in &p.cgroup_procs {
        at(Step::CgroupJoin, s.write_all(*fd, b"0"))?;
    }
    // 6. Credentials.
    p.creds.drop_privileges(s)?;
    // A credential change clears both settings: set them again.
    at(Step::Session, s.prctl(libc::PR_SET_PDEATHSIG, pdeathsig))?;
    at(Step::Session, s.prctl(libc::PR_SET_DUMPABLE, 0))?;
    // 7. Landlock (sets no_new_privs).
    s.landlock(&mut p.landlock)?;
    // 4. Only now close inherited fds: the landlock crate owns its ruleset
    //    fd and does not say which it is.
    let session = p.session.unwrap_or(-1);
    at(
        Step::CloseFds,
        close_all_except(s, [p.err_w, p.status_w, session, p.command.wait_fd()]),
    )?;
    // 5b. rlimits only once the inherited fds are closed: lowering
    //     RLIMIT_NOFILE below the daemon's open fds (a busy daemon has
    //     thousands) would make every later open fail with EMFILE. Lowering
    //     needs no privilege, so it may follow the credential drop.
    at(Step::Rlimit, p.rlimits.apply(s))?;
    // 5c. The umask the command starts with (deterministic commands),
    //     after every node of the sandbox's own is made.
    if let Some(mask) = p.umask {
        s.umask(mask);
    }
    // 8. seccomp last, so the filter need not allow the calls above.
    at(Step::Seccomp, s.seccomp(p.seccomp))?;
    Ok(())
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

#[cfg(test)]
mod tests {
    //! The setup order and the plans, checked without root: a recording
    //! fake stands in for the kernel behind the `Syscall` seam.

    use super::*;
    use crate::sandbox::landlock::LandlockPlan;
    use crate::sandbox::mounts::{MountOp, MountPlan};
    use crate::sandbox::spec::Limits;
    use libc::c_char;
    use std::cell::RefCell;
    use std::ffi::{CStr, CString};

    /// Records each call as text; fails the first call whose text starts
    /// with `fail` (with EPERM).
    #[derive(Default)]
    struct Recorder {
        calls: RefCell<Vec<String>>,
        fail: Option<&'static str>,
    }

    fn text(p: *const c_char) -> String {
        if p.is_null() {
            return "-".into();
        }
        // SAFETY: the plans pass NUL-terminated strings.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    impl Recorder {
        fn failing(prefix: &'static str) -> Recorder {
            Recorder {
                fail: Some(prefix),
                ..Recorder::default()
            }
        }
        fn call(&self, c: String) -> Result<(), sys::Errno> {
            let fails = self.fail.is_some_and(|f| c.starts_with(f));
            self.calls.borrow_mut().push(c);
            if fails { Err(libc::EPERM) } else { Ok(()) }
        }
        fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
        /// Index of the first call starting with `prefix`.
        fn pos(&self, prefix: &str) -> usize {
            self.calls
                .borrow()
                .iter()
                .position(|c| c.starts_with(prefix))
                .unwrap_or_else(|| panic!("no call {prefix:?} in {:#?}", self.calls()))
        }
        fn last(&self, prefix: &str) -> usize {
            self.calls
                .borrow()
                .iter()
                .rposition(|c| c.starts_with(prefix))
                .unwrap_or_else(|| panic!("no call {prefix:?} in {:#?}", self.calls()))
        }
        fn has(&self, prefix: &str) -> bool {
            self.calls.borrow().iter().any(|c| c.starts_with(prefix))
        }
    }

    impl Syscall for Recorder {
        fn setsid(&self) -> Result<(), sys::Errno> {
            self.call("setsid".into())
        }
        fn prctl(&self, op: libc::c_int, arg: libc::c_ulong) -> Result<(), sys::Errno> {
            self.call(format!("prctl {op} {arg}"))
        }
        fn dup_above(&self, fd: libc::c_int, min: libc::c_int) -> Result<libc::c_int, sys::Errno> {
            self.call(format!("dup_above {fd} {min}"))
                .map(|()| 100 + fd)
        }
        fn dup2(&self, old: libc::c_int, new: libc::c_int) -> Result<(), sys::Errno> {
            self.call(format!("dup2 {old} {new}"))
        }
        fn open(
            &self,
            path: *const c_char,
            _flags: libc::c_int,
            _mode: libc::mode_t,
        ) -> Result<libc::c_int, sys::Errno> {
            self.call(format!("open {}", text(path))).map(|()| 50)
        }
        fn close(&self, fd: libc::c_int) {
            let _ = self.call(format!("close {fd}"));
        }
        fn close_range(&self, first: u32, last: u32) -> Result<(), sys::Errno> {
            self.call(format!("close_range {first} {last}"))
        }
        fn write_all(&self, fd: libc::c_int, buf: &[u8]) -> Result<(), sys::Errno> {
            self.call(format!("write {fd} {}", String::from_utf8_lossy(buf)))
        }
        fn setns(&self, fd: libc::c_int, nstype: libc::c_int) -> Result<(), sys::Errno> {
            self.call(format!("setns {fd} {nstype:#x}"))
        }
        fn sethostname(&self, name: &[u8]) -> Result<(), sys::Errno> {
            self.call(format!("sethostname {}", String::from_utf8_lossy(name)))
        }
        fn mount(
            &self,
            src: *const c_char,
            dst: *const c_char,
            fstype: *const c_char,
            flags: libc::c_ulong,
            _data: *const libc::c_void,
        ) -> Result<(), sys::Errno> {
            let kind = if flags & libc::MS_REMOUNT != 0 {
                "remount"
            } else if flags & libc::MS_BIND != 0 {
                "bind"
            } else if flags & libc::MS_PRIVATE != 0 {
                "private"
            } else {
                "fs"
            };
            self.call(format!(
                "mount {kind} {} {} {}",
                text(src),
                text(dst),
                text(fstype)
            ))
        }
        fn mount_setattr_recursive(
            &self,
            path: *const c_char,
            attr_set: u64,
        ) -> Result<(), sys::Errno> {
            self.call(format!("setattr {} {attr_set:#x}", text(path)))
        }
        fn mkdir(&self, path: *const c_char, _mode: libc::mode_t) -> Result<(), sys::Errno> {
            self.call(format!("mkdir {}", text(path)))
        }
        fn mknod(
            &self,
            path: *const c_char,
            _mode: libc::mode_t,
            _dev: u64,
        ) -> Result<(), sys::Errno> {
            self.call(format!("mknod {}", text(path)))
        }
        fn symlink(&self, target: *const c_char, link: *const c_char) -> Result<(), sys::Errno> {
            self.call(format!("symlink {} {}", text(target), text(link)))
        }
        fn pivot_root(&self, new: *const c_char, old: *const c_char) -> Result<(), sys::Errno> {
            self.call(format!("pivot_root {} {}", text(new), text(old)))
        }
        fn umount2(&self, path: *const c_char, _flags: libc::c_int) -> Result<(), sys::Errno> {
            self.call(format!("umount2 {}", text(path)))
        }
        fn chdir(&self, path: *const c_char) -> Result<(), sys::Errno> {
            self.call(format!("chdir {}", text(path)))
        }
        fn setgroups_empty(&self) -> Result<(), sys::Errno> {
            self.call("setgroups".into())
        }
        fn setresgid(&self, gid: u32) -> Result<(), sys::Errno> {
            self.call(format!("setresgid {gid}"))
        }
        fn setresuid(&self, uid: u32) -> Result<(), sys::Errno> {
            self.call(format!("setresuid {uid}"))
        }
        fn capget_self(&self) -> Result<(u64, u64, u64), sys::Errno> {
            self.call("capget".into()).map(|()| (0, 0, 0))
        }
        fn prlimit_get(&self, resource: libc::c_int) -> Result<(u64, u64), sys::Errno> {
            self.call(format!("prlimit_get {resource}"))
                .map(|()| (u64::MAX, u64::MAX))
        }
        fn prlimit(&self, resource: libc::c_int, soft: u64, hard: u64) -> Result<(), sys::Errno> {
            self.call(format!("prlimit {resource} {soft} {hard}"))
        }
        fn sched(&self, _plan: &SchedPlan) -> Result<(), sys::Errno> {
            self.call("sched".into())
        }
        fn landlock(&self, _plan: &mut LandlockPlan) -> Result<(), (Step, sys::Errno)> {
            self.call("landlock".into())
                .map_err(|e| (Step::LandlockRestrict, e))
        }
        fn umask(&self, mask: libc::mode_t) {
            let _ = self.call(format!("umask {mask:o}"));
        }
        fn loopback_up(&self) -> Result<(), sys::Errno> {
            self.call("loopback_up".into())
        }
        fn seccomp(&self, _prog: &[seccompiler::sock_filter]) -> Result<(), sys::Errno> {
            self.call("seccomp".into())
        }
    }

    const STAGING: &str = "/run/agentjail-sandbox/root";

    /// A plan like the real ones: a workspace bind, /tmp, /dev, /proc.
    fn plan(netns: Option<i32>, cgroup_procs: Vec<i32>, stdin_null: bool) -> ChildPlan {
        let c = |s: &str| CString::new(s).unwrap();
        let ops = vec![
            MountOp::Dir(c(&format!("{STAGING}/workspace"))),
            MountOp::Bind {
                src: c("/srv/ws"),
                dst: c(&format!("{STAGING}/workspace")),
                attrs: 0x2,
            },
            MountOp::Tmpfs {
                dst: c(&format!("{STAGING}/tmp")),
                data: c("size=1m"),
                nodev: true,
            },
            MountOp::Mknod {
                path: c(&format!("{STAGING}/dev/null")),
                rdev: 0x103,
            },
            MountOp::Proc {
                dst: c(&format!("{STAGING}/proc")),
            },
        ];
        ChildPlan {
            stdio: [0, 1, 7],
            stdin_null,
            err_w: 8,
            status_w: 9,
            netns,
            hostname: b"sandbox".to_vec(),
            daemon_argv_env: [0; 4],
            mounts: MountPlan::for_tests(STAGING, ops),
            cgroup_procs,
            rlimits: RlimitPlan::build(&Limits::default()),
            sched: SchedPlan::build(),
            creds: Creds {
                uid: 65534,
                gid: 65534,
                cap_last: 40,
            },
            landlock: LandlockPlan::for_tests(),
            umask: Some(0o022),
            session: None,
            seccomp: &[],
            command: ChildArea::for_tests(),
        }
    }

    fn assert_before(r: &Recorder, first: &str, then: &str) {
        let (a, b) = (r.last(first), r.pos(then));
        assert!(a < b, "{first:?} (#{a}) must come before {then:?} (#{b})");
    }

    #[test]
    fn the_steps_run_in_the_written_order() {
        let r = Recorder::default();
        setup(&r, &mut plan(Some(5), vec![11, 12], false)).expect("setup succeeds");
        let calls = r.calls();
        assert_eq!(calls[0], "setsid", "{calls:#?}");
        assert_eq!(calls.last().unwrap(), "seccomp", "seccomp is last");
        // The cwd is the command's, entered once it arrives (after setup).
        assert!(!r.has("chdir /workspace"), "{calls:#?}");
        for (first, then) in [
            ("setsid", "dup2"),
            ("dup2", "setns"),
            ("setns", "sethostname"),
            ("sethostname", "sched"),
            ("sched", "mount private - / -"),
            ("mount private", &format!("mount fs tmpfs {STAGING} tmpfs")),
            (
                &format!("mount fs tmpfs {STAGING} tmpfs"),
                &format!("mount bind /srv/ws {STAGING}/workspace"),
            ),
            ("mount bind", "pivot_root . ."),
            (&format!("mount fs proc {STAGING}/proc"), "pivot_root"),
            ("pivot_root", "umount2 ."),
            ("umount2 .", "mount remount - / -"),
            ("mount remount", "write 11 0"),
            ("write 12 0", &format!("prctl {} 0", libc::PR_CAPBSET_DROP)),
            ("prctl 24 40", "setgroups"),
            ("setgroups", "setresgid 65534"),
            ("setresgid", "setresuid 65534"),
            ("setresuid", "capget"),
            ("capget", "landlock"),
            ("landlock", "close_range"),
            ("close_range", "prlimit"),
            ("prlimit", "umask 22"),
            ("umask 22", "seccomp"),
        ] {
            assert_before(&r, first, then);
        }
        // The bounding set is emptied, every capability.
        let drops = calls
            .iter()
            .filter(|c| c.starts_with(&format!("prctl {} ", libc::PR_CAPBSET_DROP)))
            .count();
        assert_eq!(drops, 41, "{calls:#?}");
        // The death signal and non-dumpable are set again after the uid change.
        let pdeath = format!("prctl {} {}", libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        assert!(r.last(&pdeath) > r.pos("setresuid"), "{calls:#?}");
        // The err and status pipes survive the fd sweep.
        assert!(calls.contains(&"close_range 3 7".to_string()), "{calls:#?}");
        assert!(
            calls.contains(&"close_range 10 2147483647".to_string()),
            "{calls:#?}"
        );
    }

    #[test]
    fn stdio_sources_below_three_are_lifted_before_dup2() {
        let r = Recorder::default();
        setup(&r, &mut plan(None, vec![], false)).unwrap();
        // stdio [0, 1, 7]: 0 and 1 are lifted (to 100, 101) before any dup2.
        assert_before(&r, "dup_above 1 3", "dup2");
        let calls = r.calls();
        for want in ["dup2 100 0", "dup2 101 1", "dup2 7 2"] {
            assert!(calls.contains(&want.to_string()), "{calls:#?}");
        }
    }

    #[test]
    fn a_plan_without_netns_or_cgroups_to_join_skips_those_steps() {
        let r = Recorder::default();
        setup(&r, &mut plan(None, vec![], false)).unwrap();
        assert!(!r.has("setns"), "no setns without a pooled namespace");
        assert!(!r.has("write "), "nothing to join (born in its group)");
        assert!(!r.has("open /dev/null"));
    }

    #[test]
    fn stdin_null_reopens_the_sandboxes_dev_null_after_pivot_root() {
        let r = Recorder::default();
        setup(&r, &mut plan(None, vec![], true)).unwrap();
        assert_before(&r, "mount remount", "open /dev/null");
        assert!(r.calls().contains(&"dup2 50 0".to_string()));
    }

    #[test]
    fn a_failed_step_stops_the_setup_and_is_named() {
        for (fail, step) in [
            ("setns", Step::NetNs),
            ("pivot_root", Step::PivotRoot),
            ("mount bind", Step::MountBind),
            ("write 11", Step::CgroupJoin),
            ("setresuid", Step::SetIds),
            ("landlock", Step::LandlockRestrict),
            ("seccomp", Step::Seccomp),
        ] {
            let r = Recorder::failing(fail);
            let got = setup(&r, &mut plan(Some(5), vec![11], false));
            assert_eq!(got, Err((step, libc::EPERM)), "failing {fail:?}");
            let calls = r.calls();
            assert!(
                calls.last().unwrap().starts_with(fail),
                "nothing runs after the failed {fail:?}: {calls:#?}"
            );
            if step != Step::Seccomp {
                assert!(!r.has("seccomp"), "{calls:#?}");
            }
        }
        // A failed mount means the uid is never changed in a half-built root.
        let r = Recorder::failing("pivot_root");
        let _ = setup(&r, &mut plan(None, vec![], false));
        assert!(!r.has("setresuid") && !r.has("landlock"));
    }
}
