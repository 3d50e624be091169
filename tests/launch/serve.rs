//! The `agentjail serve` command line for a `DaemonDirs`, and the options
//! some tests add to it.

use super::{BIN, DaemonDirs, START_LIMIT, Server};
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};

/// How to start a daemon beyond its directories: `Serve::new()` is the plain
/// daemon every suite uses.
#[derive(Default)]
pub struct Serve {
    /// Set (`Some`) or removed (`None`), after the defaults.
    env: Vec<(OsString, Option<OsString>)>,
    /// Handed over as fds 3, 4, ... in this order.
    fds: Vec<OwnedFd>,
    socket_activation: bool,
}

/// The most fds `Serve::fd` hands over (the lifting below uses a fixed array:
/// no allocation between fork and exec).
const MAX_FDS: usize = 8;

impl Serve {
    pub fn new() -> Serve {
        Serve::default()
    }

    /// Sets `key` in the daemon's environment.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Serve {
        self.env.push((key.into(), Some(value.into())));
        self
    }

    /// Keeps `key` of the test's own environment from the daemon.
    pub fn env_remove(mut self, key: impl Into<OsString>) -> Serve {
        self.env.push((key.into(), None));
        self
    }

    /// Leaves `fd` open in the daemon as the next of fds 3, 4, ...: what a
    /// careless parent, or systemd, passes down.
    pub fn fd(mut self, fd: impl Into<OwnedFd>) -> Serve {
        self.fds.push(fd.into());
        assert!(self.fds.len() <= MAX_FDS, "at most {MAX_FDS} inherited fds");
        self
    }

    /// systemd socket activation: the fds are announced as `LISTEN_FDS`, and
    /// `LISTEN_PID` is the daemon's own pid, which only a shell that sets it
    /// and then execs the daemon (same pid) can know beforehand.
    pub fn socket_activation(mut self) -> Serve {
        self.socket_activation = true;
        self
    }

    /// The command, with stdin from /dev/null and its output appended to
    /// `dirs.log`.
    fn command(self, dirs: &DaemonDirs) -> Command {
        let mut cmd = if self.socket_activation {
            let mut sh = Command::new("/bin/sh");
            sh.arg("-c")
                .arg("LISTEN_PID=$$; export LISTEN_PID; exec \"$@\"")
                .arg("sh")
                .arg(BIN);
            sh.env("LISTEN_FDS", self.fds.len().to_string())
                .env_remove("LISTEN_PID")
                .env_remove("LISTEN_FDNAMES")
                .env_remove("NOTIFY_SOCKET");
            sh
        } else {
            Command::new(BIN)
        };
        cmd.arg("serve")
            .arg("--config")
            .arg(&dirs.config)
            .arg("--socket")
            .arg(&dirs.socket)
            .arg("--policy-dir")
            .arg(&dirs.policy_dir)
            .arg("--state-dir")
            .arg(&dirs.state_dir)
            .env("AGENTJAIL_LOG", "info")
            .env_remove("AGENTJAIL_SOCKET")
            .stdin(Stdio::null());
        for (key, value) in &self.env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&dirs.log)
            .unwrap();
        cmd.stdout(log.try_clone().unwrap()).stderr(log);
        if !self.fds.is_empty() {
            pass_fds(&mut cmd, self.fds);
        }
        cmd
    }

    /// Spawns the daemon; the handle kills it on drop.
    pub fn spawn(self, dirs: &DaemonDirs) -> Server {
        Server::spawn(&mut self.command(dirs), &dirs.log)
    }

    /// Spawns the daemon and waits until it serves on `dirs.socket`.
    pub async fn start(self, dirs: &DaemonDirs) -> Server {
        let mut server = self.spawn(dirs);
        server.wait_serving(&dirs.socket).await;
        server
    }

    /// Runs a daemon that must refuse to start (a bad policy or config, a
    /// socket in use) until it exits; fails with `what` if it still runs
    /// after `START_LIMIT`.
    pub async fn until_exit(self, dirs: &DaemonDirs, what: &str) -> ExitStatus {
        let mut server = self.spawn(dirs);
        match server.exit_within(START_LIMIT).await {
            Some(status) => status,
            None => panic!("{what}; log:\n{}", server.log()),
        }
    }
}

/// Makes `fds` the child's fds 3, 4, ... The command owns them, so they
/// stay open until it is dropped (after the spawn).
fn pass_fds(cmd: &mut Command, fds: Vec<OwnedFd>) {
    // SAFETY: only async-signal-safe fcntl/dup2 calls between fork and exec,
    // no allocation. The sources are first lifted above the targets, so no
    // dup2 clobbers one still needed; dup2 onto another fd clears
    // FD_CLOEXEC, so the daemon inherits them.
    unsafe {
        cmd.pre_exec(move || {
            let mut lifted = [-1i32; MAX_FDS];
            for (i, fd) in fds.iter().enumerate() {
                lifted[i] = libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100);
                if lifted[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, fd) in lifted.iter().take(fds.len()).enumerate() {
                if libc::dup2(*fd, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}
