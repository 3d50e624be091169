//! `spawn`: prepares everything in the parent, clones the sandbox's init,
//! and hands back a handle to wait for or kill the whole tree.
//!
//! Runs in the launcher process (`launcher_process.rs`), on its one
//! long-lived thread: PR_SET_PDEATHSIG fires when the *thread* that cloned
//! init exits.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::cgroup::{Cgroup, CgroupStats};
use super::child::{self, ChildPlan};
use super::command::CommandArea;
use super::creds::Creds;
use super::landlock::LandlockPlan;
use super::mounts::MountPlan;
use super::probe::{self, KernelSupport};
use super::report::{self, Termination};
use super::rlimits::RlimitPlan;
use super::spec::{SandboxSpec, Stdin};
use super::{clone, netns, seccomp};

/// A running sandboxed command, as its parent (the launcher) holds it.
#[derive(Debug)]
pub struct Sandbox {
    /// Host pid of the sandbox's init (pid 1 inside).
    pub pid: libc::pid_t,
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
    /// A session sandbox: the daemon's end of the supervisor socket.
    pub session: Option<OwnedFd>,
    status: File,
    /// Readable once init has exited.
    pidfd: OwnedFd,
    cgroup: Cgroup,
    started: Instant,
    reaped: bool,
    /// The cgroups were killed and queued for removal.
    cleaned: bool,
    timings: Timings,
}

/// Where a launch spent its time (for metrics and the benchmark).
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct Timings {
    /// Parent: validation, pipes, cgroup creation and limits, plans.
    pub prepare: Duration,
    /// The clone syscall, as seen by the parent.
    pub clone: Duration,
    /// From clone's return to the command's exec (the child's whole setup).
    pub child_setup: Duration,
    /// After init was reaped: reading the cgroup figures (the kill and the
    /// removal follow the answer, off its path).
    pub cleanup: Duration,
}

/// How the command ended and what it used.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ExitInfo {
    pub termination: Termination,
    pub wall: Duration,
    /// CPU time of init and every process it reaped.
    pub user_cpu: Duration,
    pub system_cpu: Duration,
    /// Largest RSS of any single process (getrusage).
    pub max_rss_bytes: u64,
    pub cgroup: CgroupStats,
    /// The memory limit's OOM killer fired in this sandbox.
    pub oom_killed: bool,
    pub timings: Timings,
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    super::sys::pipe().map_err(io::Error::from_raw_os_error)
}

/// Whose sandboxes these are: per-call cgroups are named `<pid>-<n>` after
/// the daemon (not the launcher), which is what an operator looks for.
static OWNER: OnceLock<u32> = OnceLock::new();

/// Names per-call cgroups after `pid` (the launcher passes the daemon's).
pub fn set_owner(pid: u32) {
    let _ = OWNER.set(pid);
}

fn next_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        OWNER.get().copied().unwrap_or_else(std::process::id),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Probe results, taken once: launching needs the Landlock ABI.
fn support() -> &'static KernelSupport {
    static S: OnceLock<KernelSupport> = OnceLock::new();
    S.get_or_init(probe::probe)
}

/// Where the daemon's argv and environ strings live (fields 48-51 of
/// /proc/self/stat); init scrubs them from its copy.
fn daemon_argv_env() -> [usize; 4] {
    static R: OnceLock<[usize; 4]> = OnceLock::new();
    *R.get_or_init(|| {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let after_comm = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        // after_comm starts at field 3 (state).
        let f: Vec<usize> = after_comm
            .split_whitespace()
            .skip(45)
            .take(4)
            .filter_map(|x| x.parse().ok())
            .collect();
        f.try_into().unwrap_or([0; 4])
    })
}

/// Parent-side fds that must outlive the clone, then be closed.
struct ChildEnds {
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    err_w: OwnedFd,
    status_w: OwnedFd,
    netns: Option<OwnedFd>,
    cgroup_procs: Vec<OwnedFd>,
    session: Option<OwnedFd>,
}

/// Launches `spec.argv` in a fresh sandbox and waits for its setup.
///
/// Returns once the command has been exec'd, or with the setup step and
/// errno that failed (nothing runs then, and the cgroup is removed). The
/// launcher's loop uses [`start`] instead, so that it never waits on a
/// child's setup. (The one-shot form, for callers outside that loop.)
#[allow(dead_code)]
pub fn spawn(spec: &SandboxSpec) -> io::Result<Sandbox> {
    let program = spec.resolve_program()?;
    let mut pending = start(spec)?;
    pending.send_command(&program, spec)?;
    loop {
        let mut p = libc::pollfd {
            fd: pending.setup_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, -1) } < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
            continue;
        }
        if let Setup::Done = pending.poll_setup()? {
            return Ok(pending.finish());
        }
    }
}

/// A sandbox whose init was cloned and is still setting up: the parent
/// polls [`Pending::setup_fd`] and calls [`Pending::finish`] once it is
/// readable (the command was exec'd, or a step failed).
#[derive(Debug)]
pub struct Pending {
    sandbox: Sandbox,
    /// Read end of the child's CLOEXEC setup pipe.
    setup: File,
    cloned: Instant,
    /// Where the command goes (`command.rs`); init waits for it.
    command: CommandArea,
}

/// What the setup pipe said.
#[derive(Debug, PartialEq, Eq)]
pub enum Setup {
    /// Init finished its setup and waits for its command.
    Ready,
    /// EOF: the command was exec'd (or init is gone: its pidfd says how).
    Done,
}

/// Prepares the sandbox in the parent and clones its init; returns without
/// waiting for the child's setup (see [`Pending`]).
pub fn start(spec: &SandboxSpec) -> io::Result<Pending> {
    let t0 = Instant::now();
    spec.validate()?;
    let ks = support();
    ks.require_for_launch()?;
    MountPlan::ensure_staging_dir()?;
    let mut command = CommandArea::new()?;

    let (stdin_r, stdin_w) = match spec.stdin {
        Stdin::Pipe => {
            let (r, w) = pipe()?;
            (r, Some(w))
        }
        Stdin::Null => (File::open("/dev/null")?.into(), None),
    };
    let (stdout_r, stdout_w) = pipe()?;
    let (stderr_r, stderr_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (status_r, status_w) = pipe()?;

    // Pipes are owned by their creator with mode 0600: without this, the
    // command cannot reopen its own stdio through /dev/stdout.
    // Never stdin when it is /dev/null: as root, fchown would succeed and give
    // the host's /dev/null to the sandbox user, who could then chmod it.
    let pipes = [
        stdin_w.is_some().then_some(&stdin_r),
        Some(&stdout_w),
        Some(&stderr_w),
    ];
    for fd in pipes.into_iter().flatten() {
        // SAFETY: fchown on pipe fds we own.
        unsafe { libc::fchown(fd.as_raw_fd(), spec.uid, spec.gid) };
    }
    let cgroup = Cgroup::create(&next_id(), &spec.limits)?;
    // Born in the cgroup2 group where the kernel allows it (clone.rs).
    let into_v2 = match cgroup.v2_dir().filter(|_| clone::into_cgroup_usable()) {
        Some(dir) => match File::open(dir) {
            Ok(f) => Some(OwnedFd::from(f)),
            Err(e) => {
                cgroup.remove();
                return Err(e);
            }
        },
        None => None,
    };
    let cgroup_procs = match cgroup.open_procs() {
        Ok(p) => p,
        Err(e) => {
            cgroup.remove();
            return Err(e);
        }
    };
    let (session_daemon, session_init) = if spec.session {
        match super::wire::pair() {
            Ok((d, i)) => (Some(d), Some(i)),
            Err(e) => {
                cgroup.remove();
                return Err(e);
            }
        }
    } else {
        (None, None)
    };
    let ends = ChildEnds {
        stdin: stdin_r,
        stdout: stdout_w,
        stderr: stderr_w,
        err_w,
        status_w,
        // A session makes its own namespace: the pool's refill thread is
        // then less likely to hold the allocator's lock at the clone, which
        // the long-lived supervisor would inherit.
        netns: if spec.network || spec.session {
            None
        } else {
            netns::take()
        },
        cgroup_procs,
        session: session_init,
    };
    let mut plan = match build_plan(spec, &command, &ends, ks.landlock_abi) {
        Ok(p) => p,
        Err(e) => {
            cgroup.remove();
            return Err(e);
        }
    };
    // The cgroup2 group's procs file comes first: skip it when cloning into it.
    let all_procs = plan.cgroup_procs.clone();
    if into_v2.is_some() {
        plan.cgroup_procs.remove(0);
    }

    let mut flags =
        libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    if !spec.network && ends.netns.is_none() {
        flags |= libc::CLONE_NEWNET;
    }
    let t1 = Instant::now();
    // SAFETY: the child only runs `run_init`, which never returns.
    let cloned = unsafe {
        clone::clone_init(flags, into_v2.as_ref().map(|f| f.as_raw_fd()), || {
            plan.cgroup_procs = all_procs
        })
    };
    if let Ok(clone::Cloned::Child) = cloned {
        // Never unwind in the copy: a panic here ends the child at once.
        let _ =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| child::run_init(&mut plan)));
        std::process::abort();
    }
    let t2 = Instant::now();
    command.after_clone();
    drop(plan);
    drop(ends);
    drop(into_v2);
    let (pid, pidfd) = match cloned {
        Ok(clone::Cloned::Parent { pid, pidfd }) => (pid, pidfd),
        Ok(clone::Cloned::Child) => unreachable!("the child never gets here"),
        Err(e) => {
            cgroup.remove();
            return Err(e);
        }
    };
    let sandbox = Sandbox {
        pid,
        stdin: stdin_w.map(File::from),
        stdout: Some(stdout_r.into()),
        stderr: Some(stderr_r.into()),
        session: session_daemon,
        status: status_r.into(),
        pidfd,
        cgroup,
        started: t0,
        reaped: false,
        cleaned: false,
        timings: Timings {
            prepare: t1 - t0,
            clone: t2 - t1,
            ..Timings::default()
        },
    };
    Ok(Pending {
        sandbox,
        setup: err_r.into(),
        cloned: t2,
        command,
    })
}

impl Pending {
    /// Readable once the command was exec'd (EOF: the command's copy closed
    /// on exec, init's after the fork) or a step failed (its record).
    pub fn setup_fd(&self) -> RawFd {
        self.setup.as_raw_fd()
    }

    /// Kills the tree while it is still setting up.
    pub fn kill_tree(&self) {
        self.sandbox.kill_tree()
    }

    /// Host pid of init.
    pub fn pid(&self) -> libc::pid_t {
        self.sandbox.pid
    }

    /// Call each time [`Pending::setup_fd`] is readable: init is ready for
    /// its command, or the command was exec'd, or the typed setup failure
    /// (the failed child is then reaped; dropping `self` removes its cgroup).
    pub fn poll_setup(&mut self) -> io::Result<Setup> {
        // One read per record: each is 8 bytes written at once (less than
        // PIPE_BUF, so never split); EOF reads 0.
        let mut rec = [0u8; 8];
        let n = loop {
            match self.setup.read(&mut rec) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => break r?,
            }
        };
        if n == 0 {
            return Ok(Setup::Done);
        }
        if rec == report::READY {
            self.sandbox.timings.child_setup = self.cloned.elapsed();
            return Ok(Setup::Ready);
        }
        let _ = self.sandbox.wait();
        Err(report::decode_failure(&rec[..n])
            .map(|f| f.into_io())
            .unwrap_or_else(|| io::Error::other("a malformed setup record")))
    }

    /// Hands init its command (`program` resolved on the spec's PATH). A
    /// cold launch sends it at once; init reads it when its setup is done.
    pub fn send_command(
        &mut self,
        program: &std::path::Path,
        spec: &SandboxSpec,
    ) -> io::Result<()> {
        self.command
            .send(program, &spec.cwd, &spec.argv, &spec.env)?;
        // The command's wall time starts now, not when it was built.
        self.sandbox.started = Instant::now();
        Ok(())
    }

    /// After [`Setup::Done`]: the running sandbox.
    pub fn finish(self) -> Sandbox {
        self.sandbox
    }
}

fn build_plan(
    spec: &SandboxSpec,
    command: &CommandArea,
    ends: &ChildEnds,
    abi: i32,
) -> io::Result<ChildPlan> {
    Ok(ChildPlan {
        stdio: [
            ends.stdin.as_raw_fd(),
            ends.stdout.as_raw_fd(),
            ends.stderr.as_raw_fd(),
        ],
        stdin_null: spec.stdin == Stdin::Null,
        err_w: ends.err_w.as_raw_fd(),
        status_w: ends.status_w.as_raw_fd(),
        netns: ends.netns.as_ref().map(|f| f.as_raw_fd()),
        hostname: spec.hostname.as_bytes().to_vec(),
        umask: spec.umask,
        daemon_argv_env: daemon_argv_env(),
        mounts: MountPlan::build(spec)?,
        cgroup_procs: ends.cgroup_procs.iter().map(|f| f.as_raw_fd()).collect(),
        rlimits: RlimitPlan::build(&spec.limits),
        sched: super::sched::SchedPlan::build(),
        creds: Creds::new(spec.uid, spec.gid),
        landlock: LandlockPlan::build(spec, abi)?,
        seccomp: seccomp::program()?,
        command: command.child_view(),
        session: ends.session.as_ref().map(|f| f.as_raw_fd()),
    })
}

impl Sandbox {
    /// Kills the whole tree: init (the kernel then kills every process in
    /// its pid namespace) and everything in the cgroup.
    pub fn kill_tree(&self) {
        if !self.reaped {
            // SAFETY: init is our unreaped child, so its pid cannot be reused.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
        self.cgroup.kill();
    }

    /// Waits for the command (init exits right after it), then collects the
    /// figures and removes the cgroup.
    pub fn wait(&mut self) -> io::Result<ExitInfo> {
        let info = self.reap()?;
        self.clean_up();
        Ok(info)
    }

    /// Readable once init has exited: poll it, then [`Sandbox::reap`].
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Reaps init (blocking until it exits) and collects the figures the
    /// answer needs. The cgroups stay until [`Sandbox::clean_up`], so the
    /// launcher can answer first and clean up after.
    pub fn reap(&mut self) -> io::Result<ExitInfo> {
        if self.reaped {
            return Err(io::Error::other("already waited"));
        }
        let mut status = 0;
        // SAFETY: rusage is plain data.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: valid out-pointers.
            let r = unsafe { libc::wait4(self.pid, &mut status, 0, &mut ru) };
            if r == self.pid {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        self.reaped = true;
        let wall = self.started.elapsed();
        let mut rec = [0u8; 8];
        let n = self.status.read(&mut rec).unwrap_or(0);
        // No record: init itself was killed (kill_tree, OOM, pdeathsig).
        let termination =
            report::decode_status(&rec[..n]).unwrap_or(if libc::WIFSIGNALED(status) {
                Termination::Signaled(libc::WTERMSIG(status))
            } else {
                Termination::Exited(libc::WEXITSTATUS(status))
            });
        let t = Instant::now();
        // Init's exit ended its whole pid namespace: the groups hold no
        // process of this sandbox now, so their figures are final.
        let cg = self.cgroup.stats();
        self.timings.cleanup = t.elapsed();
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        Ok(ExitInfo {
            termination,
            wall,
            user_cpu: tv(ru.ru_utime),
            system_cpu: tv(ru.ru_stime),
            max_rss_bytes: ru.ru_maxrss as u64 * 1024,
            oom_killed: cg.oom_kills > 0,
            cgroup: cg,
            timings: self.timings,
        })
    }

    /// After [`Sandbox::reap`]: kills anything left in the groups (belt and
    /// braces: the pid namespace is gone) and removes them on the removal
    /// thread. Idempotent; Drop calls it too, so no group leaks.
    pub fn clean_up(&mut self) {
        if self.cleaned {
            return;
        }
        self.cleaned = true;
        self.cgroup.kill();
        self.cgroup.remove_in_background();
    }

    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// Takes the stdio pipes (the daemon streams them).
    pub fn take_stdio(&mut self) -> (Option<File>, Option<File>, Option<File>) {
        (self.stdin.take(), self.stdout.take(), self.stderr.take())
    }
}

impl Drop for Sandbox {
    /// Never leave a process or a zombie behind.
    fn drop(&mut self) {
        if !self.reaped {
            self.kill_tree();
            let _ = self.reap();
        }
        self.clean_up();
    }
}
