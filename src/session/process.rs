//! A session's background process: its output read into bounded streams
//! as it comes, its stdin (or terminal) kept for WriteStdin, its exit
//! awaited from the supervisor's notice.

use super::output::Stream;
use super::supervisor::{Exit, Spawned, Supervisor};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::{Mutex, watch};

/// How long a wait that saw the exit gives the output readers to reach
/// the streams' ends.
const OUTPUT_SETTLE: std::time::Duration = std::time::Duration::from_millis(250);

pub struct Process {
    pub id: String,
    pub argv: Vec<String>,
    pub tty: bool,
    pub host_pid: u32,
    pub started_at: SystemTime,
    started: Instant,
    sup_id: u64,
    sup: Arc<Supervisor>,
    pub stdout: Arc<Stream>,
    pub stderr: Arc<Stream>,
    stdin: Mutex<Option<pipe::Sender>>,
    /// The terminal's master (resize), for a tty process.
    master: Option<OwnedFd>,
    exit: watch::Receiver<Option<Exit>>,
    /// When the exit notice came.
    ended: std::sync::Mutex<Option<std::time::Duration>>,
}

/// Reads `from` into `into` until EOF (or EIO: a terminal whose last
/// process has gone).
fn pump(from: pipe::Receiver, into: Arc<Stream>) {
    tokio::spawn(async move {
        let mut from = from;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => into.push(&buf[..n]),
            }
        }
        into.close();
    });
}

impl Process {
    /// Takes over a spawned process's descriptors and starts reading it.
    pub fn start(
        id: String,
        argv: Vec<String>,
        tty: bool,
        spawned: Spawned,
        sup: Arc<Supervisor>,
        buffer: usize,
    ) -> io::Result<Process> {
        let stdout = Arc::new(Stream::new(buffer));
        let stderr = Arc::new(Stream::new(buffer));
        let mut fds = spawned.fds.into_iter();
        let missing = || io::Error::other("the session's answer lacked the process's descriptors");
        let (stdin, master) = if tty {
            let master = fds.next().ok_or_else(missing)?;
            crate::sandbox::set_nonblocking(master.as_fd())?;
            // A pty master, in non-blocking mode, read and written through
            // its own duplicates.
            let reader = pipe::Receiver::from_file_unchecked(File::from(master.try_clone()?))?;
            let writer = pipe::Sender::from_file_unchecked(File::from(master.try_clone()?))?;
            pump(reader, stdout.clone());
            stderr.close();
            (Some(writer), Some(master))
        } else {
            let out = fds.next().ok_or_else(missing)?;
            let err = fds.next().ok_or_else(missing)?;
            pump(pipe::Receiver::from_file(File::from(out))?, stdout.clone());
            pump(pipe::Receiver::from_file(File::from(err))?, stderr.clone());
            let stdin = fds
                .next()
                .map(|fd| pipe::Sender::from_file(File::from(fd)))
                .transpose()?;
            (stdin, None)
        };
        Ok(Process {
            id,
            argv,
            tty,
            host_pid: super::supervisor::host_pid_of(&spawned.pidfd).unwrap_or(0),
            started_at: SystemTime::now(),
            started: Instant::now(),
            sup_id: spawned.id,
            sup,
            stdout,
            stderr,
            stdin: Mutex::new(stdin),
            master,
            exit: spawned.exit,
            ended: std::sync::Mutex::new(None),
        })
    }

    pub fn running(&self) -> bool {
        self.exit.borrow().is_none()
    }

    pub fn exit(&self) -> Option<Exit> {
        let e = self.exit.borrow().clone();
        if e.is_some()
            && let Ok(mut ended) = self.ended.lock()
            && ended.is_none()
        {
            *ended = Some(self.started.elapsed());
        }
        e
    }

    /// Wall time from start to exit (or until now).
    pub fn wall(&self) -> std::time::Duration {
        self.ended
            .lock()
            .ok()
            .and_then(|e| *e)
            .unwrap_or_else(|| self.started.elapsed())
    }

    /// Waits up to `timeout` for the exit, and then for the output it wrote
    /// before exiting: that is still in its pipes when the notice comes, so
    /// the readers are given until both streams end (at most
    /// `OUTPUT_SETTLE` more, for a child left holding a pipe open) and the
    /// counts answered with the exit are whole.
    pub async fn wait(&self, timeout: std::time::Duration) -> Option<Exit> {
        // None: no deadline (Duration::MAX).
        let deadline = tokio::time::Instant::now().checked_add(timeout);
        let mut rx = self.exit.clone();
        let exited = rx.wait_for(Option::is_some);
        match deadline {
            Some(at) => drop(tokio::time::timeout_at(at, exited).await),
            None => drop(exited.await),
        }
        let exit = self.exit();
        if exit.is_some() {
            let settle = tokio::time::Instant::now() + OUTPUT_SETTLE;
            let settle = deadline.map_or(settle, |at| at.min(settle));
            self.stdout.closed_by(settle).await;
            self.stderr.closed_by(settle).await;
        }
        exit
    }

    pub fn signal(&self, signal: i32) {
        if self.running() {
            self.sup.signal(self.sup_id, signal);
        }
    }

    /// Writes to stdin (or the terminal); `close` ends stdin after.
    pub async fn write_stdin(&self, data: &[u8], close: bool) -> io::Result<usize> {
        let mut stdin = self.stdin.lock().await;
        let Some(w) = stdin.as_mut() else {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the process's stdin is closed",
            ));
        };
        w.write_all(data).await?;
        if close {
            if self.tty {
                // A terminal has no EOF of its own: send ^D.
                w.write_all(b"\x04").await?;
            } else {
                stdin.take();
            }
        }
        Ok(data.len())
    }

    pub fn resize(&self, rows: u16, cols: u16) -> io::Result<()> {
        let Some(m) = &self.master else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the process is not on a terminal",
            ));
        };
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ on our master with a valid winsize.
        if unsafe { libc::ioctl(m.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
