//! The daemon's handle on the launcher process (see
//! `sandbox/launcher_process.rs`): `serve` forks it before the async
//! runtime exists and installs its control socket here.

use crate::sandbox::{self, SandboxChild, SandboxSpec};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The control socket `serve` got from forking the launcher.
static INSTALLED: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Hands the launcher's control socket to the server (once, from `main`).
pub fn install(control: OwnedFd) {
    if let Ok(mut slot) = INSTALLED.lock() {
        *slot = Some(control);
    }
}

pub struct Launcher {
    control: Arc<OwnedFd>,
    /// Set once the launcher was seen gone; it is never restarted.
    gone: AtomicBool,
}

impl Launcher {
    /// Takes the control socket `main` installed.
    pub fn connect() -> io::Result<Launcher> {
        let control = INSTALLED
            .lock()
            .map_err(|_| io::Error::other("launcher slot poisoned"))?
            .take()
            .ok_or_else(|| {
                io::Error::other(
                    "no launcher process: `agentjail serve` starts it before its async runtime",
                )
            })?;
        Ok(Launcher {
            control: Arc::new(control),
            gone: AtomicBool::new(false),
        })
    }

    /// False once the launcher process has exited (logged once).
    pub fn alive(&self) -> bool {
        if self.gone.load(Ordering::Relaxed) {
            return false;
        }
        if sandbox::launcher_alive(self.control.as_fd()) {
            return true;
        }
        if !self.gone.swap(true, Ordering::Relaxed) {
            tracing::error!(
                "the sandbox launcher process has exited: commands are refused and health is \
                 NOT_SERVING until the daemon is restarted"
            );
        }
        false
    }

    /// Tells the launcher to rebuild its /etc snapshots (policy reload).
    pub fn refresh_etc(&self) {
        if sandbox::request_etc_refresh(self.control.as_fd()).is_err() {
            self.alive();
        }
    }

    /// Builds the sandbox and starts the command in it. `pool`: the key
    /// (agent and policy version) under which a sandbox built ahead may
    /// serve it; `None` for a session.
    pub async fn spawn(&self, spec: SandboxSpec, pool: Option<String>) -> io::Result<SandboxChild> {
        if !self.alive() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                sandbox::LauncherGone,
            ));
        }
        let control = self.control.clone();
        let result =
            tokio::task::spawn_blocking(move || sandbox::launch(control.as_fd(), &spec, pool))
                .await
                .map_err(io::Error::other)?;
        if result.as_ref().is_err_and(sandbox::LauncherGone::of) {
            self.alive();
        }
        result
    }
}
