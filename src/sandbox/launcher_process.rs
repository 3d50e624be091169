//! The launcher process: the privileged, synchronous corner that builds
//! sandboxes, kept apart from the gRPC daemon (HTTP/2, protobuf, regexes).
//!
//! `serve` forks it first thing, before the async runtime or any other
//! thread exists, so it is a small single-threaded copy of the daemon at
//! start. It owns the sandbox singletons: the kernel probe used to build
//! plans, the netns pool (its one helper thread), the per-call cgroups, the
//! daemon-port Landlock guard. The cgroup layout is readied by the daemon
//! just before the fork (so under systemd both processes sit in the leaf).
//!
//! One `poll` loop serves three kinds of events (see `wire.rs` for the
//! messages): a launch request on the control socket (built synchronously
//! by [`super::launcher::spawn`]; the reply carries the stdio fds and a
//! pidfd), a Kill or a closed launch socket (the tree is killed), and an
//! init's pidfd becoming readable (reaped; stats and cgroup cleanup; the
//! exit record sent). When the daemon goes away (control socket EOF, or the
//! parent-death signal) every sandbox is killed and the launcher exits.
//!
//! Panics abort, in the launcher and in every child cloned from it: a copy
//! of the launcher must never unwind past the code meant to run in it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use super::launcher::{self, Sandbox};
use super::wire::{self, FromLauncher, LaunchError, ToLauncher};

/// The launcher process, as `main` holds it to stop it at the end.
pub struct Child {
    pub pid: libc::pid_t,
    control: OwnedFd,
}

/// Forks the launcher process and returns it and the daemon's end of its
/// control socket (for the server). Call it while the process is
/// single-threaded.
pub fn start(daemon_ports: Vec<u16>, netns_pool: usize) -> io::Result<(Child, OwnedFd)> {
    let (daemon_end, launcher_end) = wire::pair()?;
    // SAFETY: getpid has no preconditions.
    let daemon = unsafe { libc::getpid() };
    // SAFETY: the caller guarantees no other thread exists, so the child
    // may allocate and run ordinary Rust.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            drop(daemon_end);
            run(launcher_end, daemon, daemon_ports, netns_pool)
        }
        pid => Ok((
            Child {
                pid,
                control: daemon_end.try_clone()?,
            },
            daemon_end,
        )),
    }
}

impl Child {
    /// Asks the launcher to end every sandbox, remove their cgroups and
    /// exit; waits up to `grace`, then kills it.
    pub fn stop(self, grace: std::time::Duration) {
        let _ = wire::send(self.control.as_fd(), &ToLauncher::Shutdown, &[]);
        let deadline = std::time::Instant::now() + grace;
        loop {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if r != 0 {
                return; // reaped (or not ours any more)
            }
            if std::time::Instant::now() > deadline {
                // SAFETY: our unreaped child: the pid is still its own.
                unsafe { libc::kill(self.pid, libc::SIGKILL) };
                // SAFETY: as above.
                unsafe { libc::waitpid(self.pid, &mut status, 0) };
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

fn run(control: OwnedFd, daemon: libc::pid_t, ports: Vec<u16>, netns_pool: usize) -> ! {
    abort_on_panic();
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        libc::prctl(libc::PR_SET_NAME, c"aj-launcher".as_ptr());
    }
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != daemon {
        // The daemon died before the death signal was armed.
        super::sys::exit(0);
    }
    launcher::set_owner(daemon as u32);
    super::landlock::set_daemon_ports(ports);
    if let Err(e) = super::netns::start_pool(netns_pool) {
        tracing::warn!("launcher: no network-namespace pool ({e}); each launch creates its own");
    }
    Loop {
        control,
        live: Vec::new(),
    }
    .serve();
    super::sys::exit(0)
}

/// A panic anywhere in this process (or a child cloned from it) ends it at
/// once: no unwinding, no destructors run in a copy of the launcher.
fn abort_on_panic() {
    // SAFETY: getpid has no preconditions.
    let launcher = unsafe { libc::getpid() };
    std::panic::set_hook(Box::new(move |info| {
        // SAFETY: as above.
        if unsafe { libc::getpid() } == launcher {
            eprintln!("agentjail launcher: {info}");
        }
        std::process::abort();
    }));
}

/// One running sandbox.
struct Live {
    sandbox: Sandbox,
    /// This launch's socket; `None` once the daemon closed it.
    conn: Option<OwnedFd>,
    pidfd: OwnedFd,
}

struct Loop {
    control: OwnedFd,
    live: Vec<Live>,
}

impl Loop {
    fn serve(&mut self) {
        loop {
            let mut fds = vec![pollfd(self.control.as_raw_fd())];
            for l in &self.live {
                fds.push(pollfd(l.conn.as_ref().map_or(-1, |c| c.as_raw_fd())));
                fds.push(pollfd(l.pidfd.as_raw_fd()));
            }
            // SAFETY: `fds` is a valid array of pollfd of that length.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return self.kill_all();
            }
            // The live sandboxes first (their indices match `fds`), newest
            // first so removing one leaves the others' indices intact.
            for i in (0..self.live.len()).rev() {
                if fds[1 + 2 * i].revents != 0 {
                    self.on_conn(i);
                }
                if fds[2 + 2 * i].revents != 0 {
                    self.on_exit(i);
                }
            }
            if fds[0].revents != 0 {
                match wire::recv::<ToLauncher>(self.control.as_fd()) {
                    Ok(Some((ToLauncher::Launch, fds))) => self.launch(fds),
                    Ok(Some((ToLauncher::RefreshEtc, _))) => super::etc::refresh(),
                    Ok(Some((ToLauncher::Kill, _))) => {}
                    Ok(Some((ToLauncher::Shutdown, _))) => return self.kill_all(),
                    // The daemon is gone: nothing may outlive it.
                    Ok(None) | Err(_) => return self.kill_all(),
                }
            }
        }
    }

    fn launch(&mut self, fds: Vec<OwnedFd>) {
        let Ok::<[OwnedFd; 2], _>([spec, conn]) = fds.try_into() else {
            return;
        };
        let started = wire::read_spec(spec).and_then(|spec| launcher::spawn(&spec));
        let mut sandbox = match started {
            Ok(s) => s,
            Err(e) => {
                let _ = wire::send(
                    conn.as_fd(),
                    &FromLauncher::Failed(LaunchError::from_io(&e)),
                    &[],
                );
                return;
            }
        };
        let pidfd = match pidfd_open(sandbox.pid) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = wire::send(
                    conn.as_fd(),
                    &FromLauncher::Failed(LaunchError::from_io(&e)),
                    &[],
                );
                return; // dropping the sandbox kills and reaps it
            }
        };
        let (stdin, stdout, stderr) = sandbox.take_stdio();
        let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
            return;
        };
        let session = sandbox.session.take();
        let mut passed = vec![pidfd.as_fd(), stdout.as_fd(), stderr.as_fd()];
        if let Some(stdin) = &stdin {
            passed.push(stdin.as_fd());
        }
        if let Some(session) = &session {
            passed.push(session.as_fd());
        }
        let reply = FromLauncher::Started {
            pid: sandbox.pid,
            timings: sandbox.timings(),
            stdin: stdin.is_some(),
            session: session.is_some(),
        };
        if wire::send(conn.as_fd(), &reply, &passed).is_err() {
            return; // the call is gone already: the sandbox dies here
        }
        self.live.push(Live {
            sandbox,
            conn: Some(conn),
            pidfd,
        });
    }

    fn on_conn(&mut self, i: usize) {
        let l = &mut self.live[i];
        let Some(conn) = &l.conn else { return };
        match wire::recv::<ToLauncher>(conn.as_fd()) {
            Ok(Some((ToLauncher::Kill, _))) => l.sandbox.kill_tree(),
            Ok(Some((ToLauncher::Launch | ToLauncher::RefreshEtc | ToLauncher::Shutdown, _))) => {}
            // The daemon dropped the call: end the tree, reap it later.
            Ok(None) | Err(_) => {
                l.sandbox.kill_tree();
                l.conn = None;
            }
        }
    }

    fn on_exit(&mut self, i: usize) {
        let mut l = self.live.swap_remove(i);
        let exit = l.sandbox.wait();
        if let (Some(conn), Ok(info)) = (&l.conn, exit) {
            let _ = wire::send(conn.as_fd(), &FromLauncher::Exited(info), &[]);
        }
    }

    fn kill_all(&mut self) {
        for l in &self.live {
            l.sandbox.kill_tree();
        }
        // Dropping each reaps it and removes its cgroups.
        self.live.clear();
        super::cgroup::finish_removals(std::time::Duration::from_secs(2));
    }
}

fn pollfd(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

pub(super) fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
pub(super) fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills both fds on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fds owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
