//! The daemon's side of the launcher process: ask for a sandbox, then hold
//! a handle to it. Nothing here is privileged beyond signalling the
//! sandbox's init through its pidfd.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::launcher::{ExitInfo, Timings};
use super::spec::SandboxSpec;
use super::wire::{self, FromLauncher, ToLauncher};

/// The launcher process is gone: no command can run until the daemon is
/// restarted. Callers find it with [`LauncherGone::of`].
#[derive(Debug, Clone, Copy)]
pub struct LauncherGone;

impl std::fmt::Display for LauncherGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "the sandbox launcher process has exited; commands are refused until the daemon \
             is restarted (see the daemon's log)",
        )
    }
}

impl std::error::Error for LauncherGone {}

impl LauncherGone {
    fn io() -> io::Error {
        io::Error::new(io::ErrorKind::BrokenPipe, LauncherGone)
    }

    pub fn of(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|i| i.is::<LauncherGone>())
    }
}

/// True while the launcher holds its end of `control` open. It never
/// writes there, so readable (EOF) or a hang-up means it has exited.
pub fn launcher_alive(control: BorrowedFd<'_>) -> bool {
    let mut p = libc::pollfd {
        fd: control.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 0
}

/// Asks the launcher to rebuild its /etc snapshots on next use.
pub fn request_etc_refresh(control: BorrowedFd<'_>) -> io::Result<()> {
    wire::send(control, &ToLauncher::RefreshEtc, &[]).map_err(|_| LauncherGone::io())
}

/// Asks the launcher for a sandbox running `spec` (blocking: call it off
/// the async threads). Returns once the command was exec'd, or the typed
/// reason it was not (a [`super::SetupError`] inside the `io::Error`, or
/// [`LauncherGone`]). `pool`: the key (agent and policy version) under
/// which a sandbox built ahead for the same shape may serve it.
pub fn launch(
    control: BorrowedFd<'_>,
    spec: &SandboxSpec,
    pool: Option<String>,
) -> io::Result<SandboxChild> {
    let memfd = wire::spec_memfd(spec)?;
    let (conn, theirs) = wire::pair()?;
    wire::send(
        control,
        &ToLauncher::Launch { pool },
        &[memfd.as_fd(), theirs.as_fd()],
    )
    .map_err(|_| LauncherGone::io())?;
    drop(theirs);
    let reply = wire::recv::<FromLauncher>(conn.as_fd()).map_err(|_| LauncherGone::io())?;
    match reply {
        Some((
            FromLauncher::Started {
                pid,
                timings,
                stdin,
                session,
                pooled,
            },
            fds,
        )) => {
            let mut fds = fds.into_iter();
            let (Some(pidfd), Some(stdout), Some(stderr)) = (fds.next(), fds.next(), fds.next())
            else {
                return Err(io::Error::other(
                    "the launcher's reply lacks its descriptors",
                ));
            };
            let stdin = if stdin {
                fds.next().map(File::from)
            } else {
                None
            };
            let session = if session { fds.next() } else { None };
            Ok(SandboxChild {
                pid,
                stdin,
                stdout: Some(stdout.into()),
                stderr: Some(stderr.into()),
                session,
                pidfd,
                conn,
                timings,
                pooled,
                ended: false,
            })
        }
        Some((FromLauncher::Failed(e), _)) => Err(e.into_io()),
        Some((FromLauncher::Exited(_), _)) => Err(io::Error::other(
            "the launcher answered a launch with an exit record",
        )),
        None => Err(LauncherGone::io()),
    }
}

/// A running sandboxed command. Dropping it kills the whole tree (the
/// launcher sees this launch's socket close).
#[derive(Debug)]
pub struct SandboxChild {
    /// Host pid of the sandbox's init (pid 1 inside); informational, use
    /// [`SandboxChild::pidfd`] to act on it.
    pub pid: libc::pid_t,
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
    /// A session sandbox: the supervisor's socket (`session_init.rs`).
    pub session: Option<OwnedFd>,
    pidfd: OwnedFd,
    conn: OwnedFd,
    timings: Timings,
    /// Served by a sandbox built ahead (the pool).
    pub pooled: bool,
    ended: bool,
}

impl SandboxChild {
    /// Kills the whole tree: init at once through its pidfd (the kernel then
    /// kills its pid namespace), and everything in its cgroups by the
    /// launcher.
    pub fn kill_tree(&self) {
        if self.ended {
            return;
        }
        // SAFETY: pidfd_send_signal on our pidfd; a pidfd never names a
        // reused pid.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        let _ = wire::send(self.conn.as_fd(), &ToLauncher::Kill, &[]);
    }

    /// Readable once init has exited (the command's end).
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Blocks until the launcher has reaped the sandbox and collected its
    /// figures.
    pub fn wait(&mut self) -> io::Result<ExitInfo> {
        if self.ended {
            return Err(io::Error::other("already waited"));
        }
        let reply = recv_exit(self.conn.as_fd())?;
        self.ended = true;
        match reply {
            Some((FromLauncher::Exited(info), _)) => Ok(info),
            Some(_) => Err(io::Error::other(
                "the launcher sent something other than an exit record",
            )),
            None => Err(LauncherGone::io()),
        }
    }

    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// Takes the stdio pipes (the daemon streams them).
    pub fn take_stdio(&mut self) -> (Option<File>, Option<File>, Option<File>) {
        (self.stdin.take(), self.stdout.take(), self.stderr.take())
    }
}

/// The launcher's exit record. A Kill that crossed it may still have been
/// unread when the launcher closed its end: the kernel then reports
/// ECONNRESET once, ahead of the record that is queued, so read again.
fn recv_exit(conn: BorrowedFd<'_>) -> io::Result<Option<(FromLauncher, Vec<OwnedFd>)>> {
    let mut resets = 0;
    loop {
        match wire::recv::<FromLauncher>(conn) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && resets < 2 => resets += 1,
            r => return r.map_err(|_| LauncherGone::io()),
        }
    }
}

impl Drop for SandboxChild {
    /// Never leave a process behind: init dies now, the launcher then kills
    /// the rest of its cgroups when it sees the launch socket close.
    fn drop(&mut self) {
        self.kill_tree();
    }
}
