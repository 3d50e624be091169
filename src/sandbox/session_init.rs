//! The session supervisor: what a session sandbox's init runs instead of a
//! command. It stays pid 1 of the sandbox, confined like any command there
//! (the same uid, Landlock, seccomp, cgroup and namespaces: it was set up by
//! `child::run_init` up to the point where a command would be forked), and
//! serves the daemon's requests on a SOCK_SEQPACKET socket (`wire.rs`
//! framing): start a process, signal one, connect to a TCP port inside.
//!
//! It is no more trusted than the commands it starts: it holds no privilege
//! they lack, and the daemon checks every answer it gets (sizes, ids, the
//! descriptors it expects). Closing the socket ends the session: init exits
//! and the kernel kills everything left in its pid namespace.
//!
//! Unlike the rest of init it allocates (serde, Vec): it is a long-lived
//! process, and the launcher it was cloned from has one helper thread only
//! (the netns pool, which a session launch does not wake).

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use serde::{Deserialize, Serialize};

use super::fast_spawn;
use super::sys;
use super::wire;

/// One datagram's body at most (`wire::recv`'s buffer, with room to spare):
/// the daemon refuses larger spawn requests before sending them.
pub const MAX_REQUEST_BYTES: usize = 60 << 10;

/// The daemon's requests.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToSupervisor {
    Spawn(SpawnRequest),
    /// Signal a process's group (it is its own session and group leader).
    Signal {
        id: u64,
        signal: i32,
    },
    /// A TCP connection to 127.0.0.1:port in the session's network.
    Connect {
        port: u16,
    },
}

/// A process to start. `env` entries are `NAME=value`.
#[derive(Debug, Serialize, Deserialize)]
pub struct SpawnRequest {
    pub id: u64,
    /// Absolute path inside the sandbox.
    pub program: String,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    /// stdin is a pipe (its write end is returned); else /dev/null.
    pub stdin: bool,
    /// Run on a new pseudo-terminal of this size (rows, cols).
    pub tty: Option<(u16, u16)>,
    /// A file the process writes its state report to (the shell wrapper,
    /// `session/mod.rs`); read, removed and returned with its exit notice.
    pub state_file: Option<String>,
}

/// The supervisor's answers and notices.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromSupervisor {
    /// fds: [pidfd, stdout (or the pty master), stderr (no tty), stdin
    /// (piped, no tty)].
    Spawned { id: u64, pid: i32 },
    /// Nothing runs. `step` names what failed.
    SpawnFailed { id: u64, step: String, errno: i32 },
    /// A process started by Spawn ended (reaped).
    Exited {
        id: u64,
        /// The raw wait status.
        status: i32,
        user_us: u64,
        system_us: u64,
        max_rss_kb: u64,
        /// The state file's content (base64), when one was asked for and
        /// left as a regular file of at most `MAX_STATE_BYTES`.
        state: Option<String>,
    },
    /// fds: [the connected socket] unless `errno` is set.
    Connected { port: u16, errno: Option<i32> },
}

/// Most bytes of a state report returned (the exit notice must fit one
/// datagram, base64 included).
pub const MAX_STATE_BYTES: usize = 40 << 10;

struct Live {
    id: u64,
    pid: libc::pid_t,
    pidfd: OwnedFd,
    state_file: Option<String>,
}

/// Serves the daemon until it closes the socket. Never returns.
pub fn serve(sock: i32, status_w: i32) -> ! {
    sys::close(status_w);
    // SAFETY: init's end of the supervisor socket, owned by nothing else.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    let mut live: Vec<Live> = Vec::new();
    // Made once for every request: the buffer a request is read into, one
    // stack (each spawn returns once its child has exec'd), /dev/null for
    // a command without stdin, and the handlers a child resets (none since
    // init's `reset_signals`).
    let mut stack =
        fast_spawn::Stack::new(fast_spawn::CHILD_STACK_BYTES).unwrap_or_else(|_| sys::exit(1));
    let mut inbox = vec![0u8; wire::MAX_BODY];
    let spawner = Spawner {
        null: open_dev_null().unwrap_or_else(|_| sys::exit(1)),
        handlers: fast_spawn::Handlers::now(),
    };
    loop {
        let mut fds = vec![pollfd(sock.as_raw_fd())];
        fds.extend(live.iter().map(|l| pollfd(l.pidfd.as_raw_fd())));
        // Orphans reparented to init have no pidfd here: a periodic wake
        // reaps them.
        // SAFETY: a valid array of pollfd of that length.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1000) };
        reap(&mut live, sock.as_fd());
        if fds[0].revents == 0 {
            continue;
        }
        match wire::recv_in::<ToSupervisor>(sock.as_fd(), &mut inbox) {
            Ok(Some((ToSupervisor::Spawn(req), _))) => {
                let id = req.id;
                match spawn(&mut stack, &spawner, &req) {
                    Ok((pid, pidfd, mut ends)) => {
                        ends.insert(0, pidfd.try_clone().unwrap_or_else(|_| sys::exit(1)));
                        let passed: Vec<BorrowedFd<'_>> = ends.iter().map(|f| f.as_fd()).collect();
                        let _ =
                            wire::send(sock.as_fd(), &FromSupervisor::Spawned { id, pid }, &passed);
                        live.push(Live {
                            id,
                            pid,
                            pidfd,
                            state_file: req.state_file.clone(),
                        });
                    }
                    Err((step, errno)) => {
                        let msg = FromSupervisor::SpawnFailed {
                            id,
                            step: step.into(),
                            errno,
                        };
                        let _ = wire::send(sock.as_fd(), &msg, &[]);
                    }
                }
            }
            Ok(Some((ToSupervisor::Signal { id, signal }, _))) => {
                if let Some(l) = live.iter().find(|l| l.id == id) {
                    // SAFETY: kill with a pid we have not reaped yet.
                    if unsafe { libc::kill(-l.pid, signal) } != 0 {
                        // SAFETY: as above.
                        unsafe { libc::kill(l.pid, signal) };
                    }
                }
            }
            Ok(Some((ToSupervisor::Connect { port }, _))) => {
                let reply = match connect_loopback(port) {
                    Ok(fd) => {
                        let msg = FromSupervisor::Connected { port, errno: None };
                        wire::send(sock.as_fd(), &msg, &[fd.as_fd()])
                    }
                    Err(errno) => {
                        let msg = FromSupervisor::Connected {
                            port,
                            errno: Some(errno),
                        };
                        wire::send(sock.as_fd(), &msg, &[])
                    }
                };
                let _ = reply;
            }
            // The daemon closed the session (or spoke nonsense): end it.
            Ok(None) | Err(_) => sys::exit(0),
        }
    }
}

fn pollfd(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Reaps every child that has ended; reports the ones the daemon started.
fn reap(live: &mut Vec<Live>, sock: BorrowedFd<'_>) {
    loop {
        let mut status = 0;
        // SAFETY: rusage is plain data.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: valid out-pointers.
        let pid = unsafe { libc::wait4(-1, &mut status, libc::WNOHANG, &mut ru) };
        if pid <= 0 {
            return;
        }
        if let Some(i) = live.iter().position(|l| l.pid == pid) {
            let l = live.swap_remove(i);
            let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
            let msg = FromSupervisor::Exited {
                id: l.id,
                status,
                user_us: us(ru.ru_utime),
                system_us: us(ru.ru_stime),
                max_rss_kb: ru.ru_maxrss as u64,
                state: l.state_file.as_deref().and_then(take_state),
            };
            let _ = wire::send(sock, &msg, &[]);
        }
    }
}

/// Reads and removes a state file: a regular file only (never follows a
/// link, never blocks on a FIFO), at most `MAX_STATE_BYTES`.
fn take_state(path: &str) -> Option<String> {
    use base64::Engine;
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let _ = std::fs::remove_file(path);
    let file = file.ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut body = Vec::new();
    file.take(MAX_STATE_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .ok()?;
    (body.len() <= MAX_STATE_BYTES).then(|| base64::engine::general_purpose::STANDARD.encode(&body))
}

type Failure = (&'static str, i32);

fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn pipe() -> Result<(OwnedFd, OwnedFd), Failure> {
    sys::pipe().map_err(|e| ("pipe", e))
}

fn cstring(s: &str) -> Result<CString, Failure> {
    CString::new(s).map_err(|_| ("argument", libc::EINVAL))
}

/// Opens a new pseudo-terminal (in the session's own devpts instance) of
/// the given size, returning its master.
fn open_pty(rows: u16, cols: u16) -> Result<OwnedFd, Failure> {
    // SAFETY: open with a constant path.
    let fd = unsafe {
        libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(("open /dev/ptmx", last_errno()));
    }
    // SAFETY: a fresh fd nothing else owns.
    let master = unsafe { OwnedFd::from_raw_fd(fd) };
    let unlock: libc::c_int = 0;
    // SAFETY: ioctls on our master with valid argument pointers.
    unsafe {
        if libc::ioctl(fd, libc::TIOCSPTLCK, &unlock) != 0 {
            return Err(("unlock pty", last_errno()));
        }
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        libc::ioctl(fd, libc::TIOCSWINSZ, &ws);
    }
    Ok(master)
}

/// TIOCGPTPEER: opens a pty's slave from its master (no path lookup).
const TIOCGPTPEER: libc::c_ulong = 0x5441;

/// What every spawn of the supervisor shares.
struct Spawner {
    /// Stdin of a command that gets none (dup'd onto its fd 0).
    null: OwnedFd,
    handlers: fast_spawn::Handlers,
}

fn open_dev_null() -> Result<OwnedFd, Failure> {
    // SAFETY: open with a constant path.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(("open /dev/null", last_errno()));
    }
    // SAFETY: a fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Starts one process. Returns its pid, pidfd and the daemon's ends.
fn spawn(
    stack: &mut fast_spawn::Stack,
    spawner: &Spawner,
    req: &SpawnRequest,
) -> Result<(libc::pid_t, OwnedFd, Vec<OwnedFd>), Failure> {
    let program = cstring(&req.program)?;
    let cwd = cstring(&req.cwd)?;
    let argv: Vec<CString> = req
        .argv
        .iter()
        .map(|a| cstring(a))
        .collect::<Result<_, _>>()?;
    let env: Vec<CString> = req
        .env
        .iter()
        .map(|a| cstring(a))
        .collect::<Result<_, _>>()?;
    let ptrs = |v: &[CString]| -> Vec<*const libc::c_char> {
        v.iter()
            .map(|s| s.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    let (argv_p, env_p) = (ptrs(&argv), ptrs(&env));

    // The child's fds [0, 1, 2] and the daemon's ends.
    let mut theirs: Vec<OwnedFd> = Vec::new();
    let mut mine: Vec<OwnedFd> = Vec::new();
    let mut mine_raw: Vec<i32> = Vec::new();
    let mut master: Option<i32> = None;
    if let Some((rows, cols)) = req.tty {
        let m = open_pty(rows, cols)?;
        master = Some(m.as_raw_fd());
        theirs.push(m);
    } else {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        theirs.push(out_r);
        theirs.push(err_r);
        // The child's 0, 1, 2; ours stay open until it has its copies.
        let stdin = if req.stdin {
            let (r, w) = pipe()?;
            theirs.push(w);
            let raw = r.as_raw_fd();
            mine.push(r);
            raw
        } else {
            spawner.null.as_raw_fd()
        };
        mine_raw.extend([stdin, out_w.as_raw_fd(), err_w.as_raw_fd()]);
        mine.extend([out_w, err_w]);
    }

    // SAFETY: `child` makes raw syscalls only, reads what was prepared above
    // and ends in execve or `Failure::fail`.
    let spawned = unsafe {
        fast_spawn::spawn(stack, 0, spawner.handlers, |failure| {
            child(master, &mine_raw, failure, &cwd, &program, &argv_p, &env_p)
        })
    }
    .map_err(|e| ("fork", e.raw_os_error().unwrap_or(libc::EIO)))?;
    drop(mine);
    match spawned {
        fast_spawn::Spawned::Running { pid, pidfd } => Ok((pid, pidfd, theirs)),
        fast_spawn::Spawned::Failed { step, errno, .. } => {
            let step = match step {
                1 => "chdir",
                2 => "exec",
                _ => "terminal",
            };
            Err((step, errno))
        }
    }
}

/// In the spawned child (sharing the supervisor's memory until exec):
/// stdio, session, cwd, exec. Raw syscalls only (no allocation).
#[allow(clippy::too_many_arguments)]
fn child(
    master: Option<i32>,
    mine: &[i32],
    failure: &fast_spawn::Failure,
    cwd: &CString,
    program: &CString,
    argv: &[*const libc::c_char],
    env: &[*const libc::c_char],
) -> ! {
    let fail = |step: u32, errno: i32| -> ! { failure.fail(step, errno) };
    // Its own session and process group: signals reach the whole group, and
    // a terminal can become its controlling one.
    if let Err(e) = sys::setsid() {
        fail(3, e);
    }
    // A source in 0..3 is first lifted above the targets, so no dup2
    // clobbers one (the supervisor's own pipes sit higher and need not).
    let mut src = [-1i32; 3];
    let mut n = 0;
    if let Some(m) = master {
        // SAFETY: ioctl on the master we own.
        let slave = unsafe {
            libc::ioctl(
                m,
                TIOCGPTPEER as _,
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            )
        };
        if slave < 0 {
            fail(3, last_errno());
        }
        // SAFETY: the slave is ours; make it the controlling terminal.
        if unsafe { libc::ioctl(slave, libc::TIOCSCTTY, 0) } != 0 {
            fail(3, last_errno());
        }
        src[..3].copy_from_slice(&[slave, slave, slave]);
        n = 3;
    } else {
        for (i, fd) in mine.iter().enumerate().take(3) {
            src[i] = *fd;
            n = i + 1;
        }
    }
    for fd in src.iter_mut().take(n).filter(|fd| **fd < 3) {
        // SAFETY: F_DUPFD_CLOEXEC on an fd we hold.
        let lifted = unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 64) };
        if lifted < 0 {
            fail(3, last_errno());
        }
        *fd = lifted;
    }
    for (target, fd) in src.iter().take(n).enumerate() {
        if let Err(e) = sys::dup2(*fd, target as i32) {
            fail(3, e);
        }
    }
    // Everything else closes at exec.
    // SAFETY: close_range with the CLOEXEC flag only marks descriptors.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            n as u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if let Err(e) = sys::chdir(cwd.as_ptr()) {
        fail(1, e);
    }
    let errno = sys::execve(program.as_ptr(), argv.as_ptr(), env.as_ptr());
    fail(2, errno)
}

/// A TCP socket connected to 127.0.0.1:port (blocking connect: loopback).
fn connect_loopback(port: u16) -> Result<OwnedFd, i32> {
    // SAFETY: socket with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: a fresh fd.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: a valid sockaddr_in of its size.
    let r = unsafe {
        libc::connect(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(last_errno());
    }
    Ok(sock)
}
