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
//! One `poll` loop serves four kinds of events (see `wire.rs` for the
//! messages), and never blocks on a child: a launch request on the control
//! socket (prepared and cloned by [`super::launcher::start`], which returns
//! at once), a child's setup pipe becoming readable (exec'd: the reply
//! carries the stdio fds and a pidfd; or a typed setup error), a Kill or a
//! closed launch socket (the tree is killed), and an init's pidfd becoming
//! readable (reaped, stats read, the exit record sent; only then the cgroup
//! kill and removal, off the answer's path). When the daemon goes away (control socket EOF, or the
//! parent-death signal) every sandbox is killed and the launcher exits.
//!
//! Panics abort, in the launcher and in every child cloned from it: a copy
//! of the launcher must never unwind past the code meant to run in it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use std::path::PathBuf;
use std::time::Instant;

use super::launcher::{self, Pending, Sandbox, Setup};
use super::pool::{Pool, PoolConfig, Shape};
use super::spec::SandboxSpec;
use super::wire::{self, FromLauncher, LaunchError, ToLauncher};

/// The launcher process, as `main` holds it to stop it at the end.
pub struct Child {
    pub pid: libc::pid_t,
    control: OwnedFd,
}

/// Forks the launcher process and returns it and the daemon's end of its
/// control socket (for the server). Call it while the process is
/// single-threaded.
pub fn start(
    daemon_ports: Vec<u16>,
    netns_pool: usize,
    pool: PoolConfig,
) -> io::Result<(Child, OwnedFd)> {
    let (daemon_end, launcher_end) = wire::pair()?;
    // SAFETY: getpid has no preconditions.
    let daemon = unsafe { libc::getpid() };
    // SAFETY: the caller guarantees no other thread exists, so the child
    // may allocate and run ordinary Rust.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            drop(daemon_end);
            run(launcher_end, daemon, daemon_ports, netns_pool, pool)
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

fn run(
    control: OwnedFd,
    daemon: libc::pid_t,
    ports: Vec<u16>,
    netns_pool: usize,
    pool: PoolConfig,
) -> ! {
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
        pool: Pool::new(pool),
        refills: Vec::new(),
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

/// Where a sandbox is in its life, as the loop sees it.
enum Stage {
    /// Init was cloned and is setting up, or waits for its command; the
    /// loop polls its setup pipe. `waiting`: the call claimed a sandbox
    /// built ahead that was still setting up; its command goes in once init
    /// is ready and its view is proven fresh (`fresh.rs`). `pooled`: built
    /// ahead (the record says so).
    SettingUp {
        pending: Pending,
        waiting: Option<Box<(PathBuf, SandboxSpec)>>,
        pooled: bool,
    },
    /// The command was exec'd; the loop polls init's pidfd.
    Running(Sandbox),
}

/// One sandbox and the launch socket of its call.
struct Live {
    stage: Stage,
    /// This launch's socket; `None` once the daemon closed it.
    conn: Option<OwnedFd>,
}

impl Live {
    /// The fd whose readiness moves this sandbox on.
    fn event_fd(&self) -> i32 {
        match &self.stage {
            Stage::SettingUp { pending, .. } => pending.setup_fd(),
            Stage::Running(s) => s.pidfd().as_raw_fd(),
        }
    }

    fn kill_tree(&self) {
        match &self.stage {
            Stage::SettingUp { pending, .. } => pending.kill_tree(),
            Stage::Running(s) => s.kill_tree(),
        }
    }
}

struct Loop {
    control: OwnedFd,
    live: Vec<Live>,
    /// Sandboxes built ahead, each waiting for one call (`pool.rs`).
    pool: Pool<Pending>,
    /// Replacements to build, one per loop turn, after the turn's replies.
    refills: Vec<Refill>,
}

/// A sandbox to build ahead for `shape`.
struct Refill {
    shape: Shape,
    spec: SandboxSpec,
    /// Asked for by a call (it may take the place of the key's oldest entry
    /// of another shape); a top-up only fills room that is free.
    by_demand: bool,
}

impl Loop {
    /// Never waits on a child: each sandbox's setup and exit are events in
    /// the poll set, so one slow setup (a cgroup join, a large mount plan)
    /// delays no other call.
    fn serve(&mut self) {
        loop {
            let mut fds = vec![pollfd(self.control.as_raw_fd())];
            for l in &self.live {
                fds.push(pollfd(l.conn.as_ref().map_or(-1, |c| c.as_raw_fd())));
                fds.push(pollfd(l.event_fd()));
            }
            let pooled_at = fds.len();
            for e in self.pool.entries() {
                fds.push(pollfd(e.item.setup_fd()));
            }
            // SAFETY: `fds` is a valid array of pollfd of that length.
            let n = unsafe {
                libc::poll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    self.poll_timeout(),
                )
            };
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return self.kill_all();
            }
            // The pool's entries, then the live sandboxes (indices match
            // `fds`), newest first so removing one leaves the others'
            // indices intact.
            for j in (0..self.pool.len()).rev() {
                if fds[pooled_at + j].revents != 0 {
                    self.on_pool_event(j);
                }
            }
            for i in (0..self.live.len()).rev() {
                if fds[1 + 2 * i].revents != 0 {
                    self.on_conn(i);
                }
                if fds[2 + 2 * i].revents != 0 {
                    self.on_event(i);
                }
            }
            if fds[0].revents != 0 {
                match wire::recv::<ToLauncher>(self.control.as_fd()) {
                    Ok(Some((ToLauncher::Launch { pool }, fds))) => self.launch(pool, fds),
                    Ok(Some((ToLauncher::RefreshEtc, _))) => {
                        // A reload: a new /etc snapshot, maybe new rules.
                        // Nothing built before it may serve a call after it.
                        super::etc::refresh();
                        self.refills.clear();
                        drop(self.pool.flush());
                    }
                    Ok(Some((ToLauncher::Kill, _))) => {}
                    Ok(Some((ToLauncher::Shutdown, _))) => return self.kill_all(),
                    // The daemon is gone: nothing may outlive it.
                    Ok(None) | Err(_) => return self.kill_all(),
                }
            }
            drop(self.pool.expire(Instant::now()));
            self.refill_one();
        }
    }

    /// Wake at once for a queued refill, else when the next pooled
    /// sandbox falls idle, else only for an event.
    fn poll_timeout(&self) -> i32 {
        if !self.refills.is_empty() {
            return 0;
        }
        match self.pool.next_expiry() {
            Some(at) => at
                .saturating_duration_since(Instant::now())
                .as_millis()
                .saturating_add(1)
                .min(i32::MAX as u128) as i32,
            None => -1,
        }
    }

    /// Builds one queued replacement, within the pool's bounds, and queues
    /// a top-up while the shape's key has room: each take queues one
    /// replacement, so without it the pool would never hold more than the
    /// one sandbox the previous call left, and a call arriving sooner than
    /// one build after the previous would always wait for it.
    fn refill_one(&mut self) {
        let Some(refill) = self.refills.pop() else {
            return;
        };
        if refill.by_demand {
            drop(self.pool.evict_for(&refill.shape));
        }
        if !self.pool.has_room(&refill.shape) {
            return;
        }
        match launcher::start(&refill.spec) {
            Ok(pending) => {
                drop(
                    self.pool
                        .insert(refill.shape.clone(), pending, Instant::now()),
                );
                if self.pool.has_room(&refill.shape) {
                    self.refills.insert(
                        0,
                        Refill {
                            by_demand: false,
                            ..refill
                        },
                    );
                }
            }
            Err(e) => tracing::debug!("launcher: building a pooled sandbox failed: {e}"),
        }
    }

    /// A pooled sandbox's setup pipe: ready (it now waits for a call), or
    /// it failed or died: destroyed.
    fn on_pool_event(&mut self, j: usize) {
        let was_ready = self.pool.entries()[j].ready;
        match self.pool.item_mut(j).poll_setup() {
            Ok(Setup::Ready) if !was_ready => self.pool.mark_ready(j),
            _ => drop(self.pool.remove(j)),
        }
    }

    /// Takes a sandbox built ahead for this call's exact shape (proven
    /// fresh), or claims one still being built, or builds one now; then
    /// queues a replacement.
    fn launch(&mut self, key: Option<String>, fds: Vec<OwnedFd>) {
        let Ok::<[OwnedFd; 2], _>([spec, conn]) = fds.try_into() else {
            return;
        };
        let prepared = wire::read_spec(spec).and_then(|spec| {
            spec.validate()?;
            // A session runs no program of its own (its supervisor is init).
            let program = if spec.session {
                PathBuf::from("/")
            } else {
                spec.resolve_program()?
            };
            Ok((spec, program))
        });
        let (spec, program) = match prepared {
            Ok(p) => p,
            Err(e) => return fail(&conn, &e),
        };
        let Some(shape) = key.and_then(|k| Shape::of(&k, &spec)) else {
            return self.cold(spec, program, conn);
        };
        if self.refills.len() < 64 {
            self.refills.push(Refill {
                shape: shape.clone(),
                spec: super::pool::shaping_part(&spec),
                by_demand: true,
            });
        }
        match self.pool.take(&shape) {
            Some((mut pending, true)) => match hand_over(&mut pending, &program, &spec) {
                Ok(()) => self.live.push(Live {
                    stage: Stage::SettingUp {
                        pending,
                        waiting: None,
                        pooled: true,
                    },
                    conn: Some(conn),
                }),
                Err(e) => {
                    tracing::info!("launcher: {e}; building one for this call");
                    drop(pending);
                    drop(self.pool.remove_shape(&shape));
                    self.cold(spec, program, conn)
                }
            },
            // Still setting up: never slower than a build started now.
            Some((pending, false)) => self.live.push(Live {
                stage: Stage::SettingUp {
                    pending,
                    waiting: Some(Box::new((program, spec))),
                    pooled: true,
                },
                conn: Some(conn),
            }),
            None => self.cold(spec, program, conn),
        }
    }

    /// Builds a sandbox for this call; its command is there before init's
    /// setup ends (the same path as a pooled one, without the wait).
    fn cold(&mut self, spec: SandboxSpec, program: PathBuf, conn: OwnedFd) {
        let started = launcher::start(&spec).and_then(|mut p| {
            if !spec.session {
                p.send_command(&program, &spec)?;
            }
            Ok(p)
        });
        match started {
            Ok(pending) => self.live.push(Live {
                stage: Stage::SettingUp {
                    pending,
                    waiting: None,
                    pooled: false,
                },
                conn: Some(conn),
            }),
            Err(e) => fail(&conn, &e),
        }
    }

    fn on_conn(&mut self, i: usize) {
        let l = &mut self.live[i];
        let Some(conn) = &l.conn else { return };
        match wire::recv::<ToLauncher>(conn.as_fd()) {
            Ok(Some((ToLauncher::Kill, _))) => l.kill_tree(),
            Ok(Some((
                ToLauncher::Launch { .. } | ToLauncher::RefreshEtc | ToLauncher::Shutdown,
                _,
            ))) => {}
            // The daemon dropped the call: end the tree, reap it later.
            Ok(None) | Err(_) => {
                l.kill_tree();
                l.conn = None;
            }
        }
    }

    fn on_event(&mut self, i: usize) {
        let l = self.live.swap_remove(i);
        let conn = l.conn;
        let (mut pending, mut waiting, pooled) = match l.stage {
            Stage::SettingUp {
                pending,
                waiting,
                pooled,
            } => (pending, waiting, pooled),
            Stage::Running(sandbox) => return on_exit(sandbox, conn),
        };
        match pending.poll_setup() {
            Ok(Setup::Ready) => {
                if let Some((program, spec)) = waiting.take().map(|w| *w) {
                    if let Err(e) = hand_over(&mut pending, &program, &spec) {
                        tracing::info!("launcher: {e}; building one for this call");
                        drop(pending);
                        if let Some(conn) = conn {
                            self.cold(spec, program, conn);
                        }
                        return;
                    }
                }
                self.live.push(Live {
                    stage: Stage::SettingUp {
                        pending,
                        waiting,
                        pooled,
                    },
                    conn,
                });
            }
            Ok(Setup::Done) => self.on_setup_done(pending.finish(), conn, pooled),
            Err(e) => match (waiting.map(|w| *w), conn) {
                // A claimed sandbox that failed before serving: build one.
                (Some((program, spec)), Some(conn)) => self.cold(spec, program, conn),
                (None, Some(conn)) => fail(&conn, &e),
                (_, None) => {}
            },
        }
    }

    /// The child exec'd the command or reported a failed step.
    fn on_setup_done(&mut self, mut sandbox: Sandbox, conn: Option<OwnedFd>, pooled: bool) {
        let Some(conn) = conn else {
            // The call is gone (its tree was killed): reap it when it exits.
            return self.live.push(Live {
                stage: Stage::Running(sandbox),
                conn: None,
            });
        };
        let (stdin, stdout, stderr) = sandbox.take_stdio();
        let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
            return;
        };
        let session = sandbox.session.take();
        let mut passed = vec![sandbox.pidfd(), stdout.as_fd(), stderr.as_fd()];
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
            pooled,
        };
        let conn = match wire::send(conn.as_fd(), &reply, &passed) {
            Ok(()) => Some(conn),
            // The call is gone already: end the sandbox, reap it on exit.
            Err(_) => {
                sandbox.kill_tree();
                None
            }
        };
        self.live.push(Live {
            stage: Stage::Running(sandbox),
            conn,
        });
    }

    fn kill_all(&mut self) {
        for l in &self.live {
            l.kill_tree();
        }
        for p in self.pool.entries() {
            p.item.kill_tree();
        }
        drop(self.pool.flush());
        // Dropping each reaps it and removes its cgroups.
        self.live.clear();
        super::cgroup::finish_removals(std::time::Duration::from_secs(2));
    }
}

/// A sandbox built ahead gets the call's command once its view of the
/// workspace is proven to be the one a cold build would make now.
fn hand_over(
    pending: &mut Pending,
    program: &std::path::Path,
    spec: &SandboxSpec,
) -> io::Result<()> {
    super::fresh::prove(pending.pid(), spec)?;
    pending.send_command(program, spec)
}

/// Init exited (its pidfd is readable): reap, answer, then clean up.
fn on_exit(mut sandbox: Sandbox, conn: Option<OwnedFd>) {
    let exit = sandbox.reap();
    if let (Some(conn), Ok(info)) = (&conn, exit) {
        let _ = wire::send(conn.as_fd(), &FromLauncher::Exited(info), &[]);
        // A Kill the daemon sent as the command ended is still queued:
        // closing over it would make the daemon's read of the exit record
        // fail with ECONNRESET.
        wire::discard_pending(conn.as_fd());
    }
    sandbox.clean_up();
}

fn fail(conn: &OwnedFd, e: &io::Error) {
    let _ = wire::send(
        conn.as_fd(),
        &FromLauncher::Failed(LaunchError::from_io(e)),
        &[],
    );
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
