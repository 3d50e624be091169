//! The daemon's side of a session's supervisor (`sandbox/session_init.rs`):
//! requests go out on its socket, one reader task sorts what comes back
//! (spawn answers, exit notices, connections) to whoever waits for it.
//!
//! The supervisor runs inside the sandbox and is trusted no more than the
//! commands there: answers are matched to our own ids, descriptors counted,
//! and a supervisor that goes away ends the session.

use crate::sandbox::SandboxChild;
use crate::sandbox::session_init::{FromSupervisor, MAX_REQUEST_BYTES, SpawnRequest, ToSupervisor};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::unix::AsyncFd;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

/// How a process of the session ended.
#[derive(Debug, Clone)]
pub struct Exit {
    /// The raw wait status; `None` when the session ended first (the
    /// process died with it).
    pub status: Option<i32>,
    pub user_us: u64,
    pub system_us: u64,
    pub max_rss_kb: u64,
    /// A shell command's state report (see `session::SHELL_WRAPPER`).
    pub state: Option<Vec<u8>>,
}

impl Exit {
    pub fn lost() -> Exit {
        Exit {
            status: None,
            user_us: 0,
            system_us: 0,
            max_rss_kb: 0,
            state: None,
        }
    }
}

/// A started process: its pid inside the session, its pidfd, and the
/// daemon's ends of its stdio.
pub struct Spawned {
    /// The supervisor's id for it (for [`Supervisor::signal`]).
    pub id: u64,
    pub pid_in_session: i32,
    /// Names the process for [`host_pid_of`] (read when asked: a Run's
    /// command never needs it).
    pub pidfd: OwnedFd,
    pub fds: Vec<OwnedFd>,
    pub exit: watch::Receiver<Option<Exit>>,
}

type SpawnReply = Result<(i32, Vec<OwnedFd>), (String, i32)>;

pub struct Supervisor {
    sock: AsyncFd<OwnedFd>,
    spawns: Mutex<HashMap<u64, oneshot::Sender<SpawnReply>>>,
    exits: Mutex<HashMap<u64, watch::Sender<Option<Exit>>>>,
    connects: Mutex<HashMap<u16, VecDeque<oneshot::Sender<io::Result<OwnedFd>>>>>,
    next: AtomicU64,
    /// Cancelled once the supervisor is gone (the session's sandbox ended).
    pub gone: CancellationToken,
    /// The launcher's handle: dropping it kills the whole tree.
    sandbox: Mutex<Option<SandboxChild>>,
}

impl Supervisor {
    /// Takes over a started session sandbox and its supervisor's socket.
    pub fn new(mut sandbox: SandboxChild) -> io::Result<std::sync::Arc<Supervisor>> {
        let sock = sandbox
            .session
            .take()
            .ok_or_else(|| io::Error::other("the launcher returned no session socket"))?;
        // Init's stdio is not the commands': nothing reads it.
        drop(sandbox.take_stdio());
        crate::sandbox::set_nonblocking(sock.as_fd())?;
        // SAFETY: the AsyncFd owns the socket, which stays open and the same
        // until it is dropped.
        let sock =
            unsafe { AsyncFd::register(sock) }.map_err(|e| io::Error::other(e.to_string()))?;
        let sup = std::sync::Arc::new(Supervisor {
            sock,
            spawns: Mutex::new(HashMap::new()),
            exits: Mutex::new(HashMap::new()),
            connects: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            gone: CancellationToken::new(),
            sandbox: Mutex::new(Some(sandbox)),
        });
        let reader = sup.clone();
        tokio::spawn(async move { reader.read_loop().await });
        Ok(sup)
    }

    /// Host pid of the session's init.
    pub fn init_pid(&self) -> i32 {
        self.sandbox
            .lock()
            .ok()
            .and_then(|s| s.as_ref().map(|s| s.pid))
            .unwrap_or(0)
    }

    /// Ends the session's whole tree now.
    pub fn kill(&self) {
        if let Ok(mut s) = self.sandbox.lock() {
            // Dropping the handle kills init and the session's cgroup.
            s.take();
        }
        self.gone.cancel();
    }

    async fn read_loop(&self) {
        let mut inbox = vec![0u8; crate::sandbox::SESSION_MAX_MESSAGE];
        loop {
            let mut guard = tokio::select! {
                g = self.sock.readable() => match g { Ok(g) => g, Err(_) => break },
                _ = self.gone.cancelled() => break,
            };
            let got = guard.try_io(|s| {
                crate::sandbox::session_recv_in::<FromSupervisor>(s.get_ref().as_fd(), &mut inbox)
            });
            match got {
                Err(_would_block) => continue,
                Ok(Ok(Some((msg, fds)))) => self.dispatch(msg, fds),
                Ok(Ok(None)) | Ok(Err(_)) => break,
            }
        }
        self.gone.cancel();
        // Whoever still waits learns the session is gone.
        if let Ok(mut spawns) = self.spawns.lock() {
            spawns.clear();
        }
        if let Ok(mut connects) = self.connects.lock() {
            connects.clear();
        }
        if let Ok(mut exits) = self.exits.lock() {
            for (_, tx) in exits.drain() {
                let _ = tx.send(Some(Exit::lost()));
            }
        }
        self.kill();
    }

    fn dispatch(&self, msg: FromSupervisor, fds: Vec<OwnedFd>) {
        match msg {
            FromSupervisor::Spawned { id, pid } => {
                if let Some(tx) = self.spawns.lock().ok().and_then(|mut m| m.remove(&id)) {
                    let _ = tx.send(Ok((pid, fds)));
                }
            }
            FromSupervisor::SpawnFailed { id, step, errno } => {
                if let Some(tx) = self.spawns.lock().ok().and_then(|mut m| m.remove(&id)) {
                    let _ = tx.send(Err((step, errno)));
                }
                if let Ok(mut exits) = self.exits.lock() {
                    exits.remove(&id);
                }
            }
            FromSupervisor::Exited {
                id,
                status,
                user_us,
                system_us,
                max_rss_kb,
                state,
            } => {
                use base64::Engine;
                let state =
                    state.and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
                if let Some(tx) = self.exits.lock().ok().and_then(|mut m| m.remove(&id)) {
                    let _ = tx.send(Some(Exit {
                        status: Some(status),
                        user_us,
                        system_us,
                        max_rss_kb,
                        state,
                    }));
                }
            }
            FromSupervisor::Connected { port, errno } => {
                let waiter = self
                    .connects
                    .lock()
                    .ok()
                    .and_then(|mut m| m.get_mut(&port).and_then(|q| q.pop_front()));
                if let Some(tx) = waiter {
                    let result = match (errno, fds.into_iter().next()) {
                        (None, Some(fd)) => Ok(fd),
                        (Some(e), _) => Err(io::Error::from_raw_os_error(e)),
                        (None, None) => Err(io::Error::other("no socket in the answer")),
                    };
                    let _ = tx.send(result);
                }
            }
        }
    }

    async fn send(&self, msg: &ToSupervisor) -> io::Result<()> {
        self.send_encoded(&serde_json::to_vec(msg)?).await
    }

    async fn send_encoded(&self, body: &[u8]) -> io::Result<()> {
        loop {
            let mut guard = self.sock.writable().await?;
            match guard
                .try_io(|s| crate::sandbox::session_send_encoded(s.get_ref().as_fd(), body, &[]))
            {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Starts a process (the request's id is assigned here).
    pub async fn spawn(&self, mut req: SpawnRequest) -> Result<Spawned, SpawnError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        req.id = id;
        // Encoded once: measured, then sent.
        let body = serde_json::to_vec(&ToSupervisor::Spawn(req))
            .map_err(|_| SpawnError::TooLarge(usize::MAX))?;
        if body.len() > MAX_REQUEST_BYTES {
            return Err(SpawnError::TooLarge(body.len()));
        }
        if self.gone.is_cancelled() {
            return Err(SpawnError::Gone);
        }
        let (tx, rx) = oneshot::channel();
        let (exit_tx, exit_rx) = watch::channel(None);
        self.spawns
            .lock()
            .map_err(|_| SpawnError::Gone)?
            .insert(id, tx);
        self.exits
            .lock()
            .map_err(|_| SpawnError::Gone)?
            .insert(id, exit_tx);
        if self.send_encoded(&body).await.is_err() {
            return Err(SpawnError::Gone);
        }
        let (pid, fds) = match rx.await {
            Ok(Ok(r)) => r,
            Ok(Err((step, errno))) => return Err(SpawnError::Failed { step, errno }),
            Err(_) => return Err(SpawnError::Gone),
        };
        let mut fds = fds.into_iter();
        let pidfd = fds.next().ok_or(SpawnError::Gone)?;
        Ok(Spawned {
            id,
            pid_in_session: pid,
            pidfd,
            fds: fds.collect(),
            exit: exit_rx,
        })
    }

    /// Signals a process's group; fire and forget (an ended process is no
    /// error). Usable from synchronous code.
    pub fn signal(&self, id: u64, signal: i32) {
        let msg = ToSupervisor::Signal { id, signal };
        let _ = crate::sandbox::session_send(self.sock.get_ref().as_fd(), &msg, &[]);
    }

    /// A TCP connection to 127.0.0.1:port inside the session.
    pub async fn connect(&self, port: u16) -> io::Result<OwnedFd> {
        let (tx, rx) = oneshot::channel();
        self.connects
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?
            .entry(port)
            .or_default()
            .push_back(tx);
        self.send(&ToSupervisor::Connect { port }).await?;
        rx.await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the session has ended"))?
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.gone.cancel();
    }
}

/// Why a process did not start.
#[derive(Debug)]
pub enum SpawnError {
    /// The session's sandbox has ended.
    Gone,
    /// The request would not fit one message.
    TooLarge(usize),
    /// A step in the supervisor failed (nothing runs).
    Failed { step: String, errno: i32 },
}

/// The pid a pidfd names, as the daemon sees it (/proc/self/fdinfo).
pub fn host_pid_of(pidfd: &OwnedFd) -> Option<u32> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|p| *p > 0)
        .map(|p| p as u32)
}
