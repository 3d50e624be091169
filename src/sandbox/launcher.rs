//! `spawn`: prepares everything in the parent, clones the sandbox's init,
//! and hands back a handle to wait for or kill the whole tree.
//!
//! Runs in the launcher process (`launcher_process.rs`), on its one
//! long-lived thread: PR_SET_PDEATHSIG fires when the *thread* that cloned
//! init exits.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::cgroup::{Cgroup, CgroupStats};
use super::child::{self, ChildPlan};
use super::creds::Creds;
use super::landlock::LandlockPlan;
use super::mounts::MountPlan;
use super::probe::{self, KernelSupport};
use super::report::{self, Termination};
use super::rlimits::RlimitPlan;
use super::spec::{SandboxSpec, Stdin};
use super::{netns, seccomp};

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
    cgroup: Cgroup,
    started: Instant,
    reaped: bool,
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
    /// After init was reaped: stats and cgroup removal.
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
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills both fds on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fds owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| super::spec::invalid("argument or environment contains NUL"))
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

/// Launches `spec.argv` in a fresh sandbox.
///
/// Returns once the command has been exec'd, or with the setup step and
/// errno that failed (nothing runs then, and the cgroup is removed).
pub fn spawn(spec: &SandboxSpec) -> io::Result<Sandbox> {
    let t0 = Instant::now();
    spec.validate()?;
    let ks = support();
    ks.require_for_launch()?;
    // A session runs no program of its own (its supervisor is init).
    let program = if spec.session {
        std::path::PathBuf::from("/")
    } else {
        spec.resolve_program()?
    };
    MountPlan::ensure_staging_dir()?;

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
    let (session_daemon, session_init) = if spec.session {
        let (d, i) = super::wire::pair()?;
        (Some(d), Some(i))
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
        cgroup_procs: cgroup.open_procs()?,
        session: session_init,
    };
    let mut plan = match build_plan(spec, &program, &ends, ks.landlock_abi) {
        Ok(p) => p,
        Err(e) => {
            cgroup.remove();
            return Err(e);
        }
    };

    let mut flags =
        libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    if !spec.network && ends.netns.is_none() {
        flags |= libc::CLONE_NEWNET;
    }
    let t1 = Instant::now();
    // SAFETY: a fork-like clone (no CLONE_VM, no new stack); the child only
    // runs `run_init`, which never returns.
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
    if pid == 0 {
        // Never unwind in the copy: a panic here ends the child at once.
        let _ =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| child::run_init(&mut plan)));
        std::process::abort();
    }
    let t2 = Instant::now();
    drop(plan);
    drop(ends);
    if pid < 0 {
        let e = io::Error::last_os_error();
        cgroup.remove();
        return Err(e);
    }
    let pid = pid as libc::pid_t;
    let mut child = Sandbox {
        pid,
        stdin: stdin_w.map(File::from),
        stdout: Some(stdout_r.into()),
        stderr: Some(stderr_r.into()),
        session: session_daemon,
        status: status_r.into(),
        cgroup,
        started: t0,
        reaped: false,
        timings: Timings {
            prepare: t1 - t0,
            clone: t2 - t1,
            ..Timings::default()
        },
    };
    // Blocks until exec (EOF: the command's copy closed on exec, init's
    // copy closed after fork) or a failure record.
    let mut rec = Vec::with_capacity(8);
    File::from(err_r).read_to_end(&mut rec)?;
    if let Some(failure) = report::decode_failure(&rec) {
        let _ = child.wait();
        return Err(failure.into_io());
    }
    child.timings.child_setup = t2.elapsed();
    Ok(child)
}

fn build_plan(
    spec: &SandboxSpec,
    program: &std::path::Path,
    ends: &ChildEnds,
    abi: i32,
) -> io::Result<ChildPlan> {
    let argv: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| cstring(a))
        .collect::<io::Result<_>>()?;
    let env: Vec<CString> = spec
        .env
        .iter()
        .map(|(k, v)| cstring(&format!("{k}={v}")))
        .collect::<io::Result<_>>()?;
    let argc = argv.len();
    let mut strings = argv;
    strings.extend(env);
    let ptrs = |r: std::ops::Range<usize>| -> Vec<*const libc::c_char> {
        strings[r]
            .iter()
            .map(|s| s.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    let (argv_ptrs, envp_ptrs) = (ptrs(0..argc), ptrs(argc..strings.len()));
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
        daemon_argv_env: daemon_argv_env(),
        mounts: MountPlan::build(spec)?,
        cgroup_procs: ends.cgroup_procs.iter().map(|f| f.as_raw_fd()).collect(),
        rlimits: RlimitPlan::build(&spec.limits),
        sched: super::sched::SchedPlan::build(),
        creds: Creds::new(spec.uid, spec.gid),
        landlock: LandlockPlan::build(spec, abi)?,
        seccomp: seccomp::program()?,
        program: CString::new(program.as_os_str().as_bytes())
            .map_err(|_| super::spec::invalid("NUL in program"))?,
        argv: argv_ptrs,
        envp: envp_ptrs,
        _strings: strings,
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
        Ok(self.wait_flags(0)?.expect("blocking wait returns a status"))
    }

    fn wait_flags(&mut self, flags: libc::c_int) -> io::Result<Option<ExitInfo>> {
        if self.reaped {
            return Err(io::Error::other("already waited"));
        }
        let mut status = 0;
        // SAFETY: rusage is plain data.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: valid out-pointers.
            let r = unsafe { libc::wait4(self.pid, &mut status, flags, &mut ru) };
            match r {
                0 => return Ok(None),
                r if r == self.pid => break,
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
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
        self.cgroup.kill();
        let cg = self.cgroup.stats();
        self.cgroup.remove_in_background();
        self.timings.cleanup = t.elapsed();
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        Ok(Some(ExitInfo {
            termination,
            wall,
            user_cpu: tv(ru.ru_utime),
            system_cpu: tv(ru.ru_stime),
            max_rss_bytes: ru.ru_maxrss as u64 * 1024,
            oom_killed: cg.oom_kills > 0,
            cgroup: cg,
            timings: self.timings,
        }))
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
            let _ = self.wait();
        }
    }
}
