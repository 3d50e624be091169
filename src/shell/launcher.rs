//! The launcher thread: the one long-lived, synchronous place where
//! sandboxes are cloned. Kept off the tokio threads because the child's
//! parent-death signal fires when the *thread* that cloned it exits, and
//! tokio's blocking threads exit when idle.

use crate::sandbox::{self, SandboxChild, SandboxSpec};
use std::io;
use std::sync::Mutex;
use std::sync::mpsc;
use tokio::sync::oneshot;

type Job = (SandboxSpec, oneshot::Sender<io::Result<SandboxChild>>);

pub struct Launcher {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl Launcher {
    /// Starts the launcher thread; it lives as long as the daemon.
    pub fn start() -> io::Result<Launcher> {
        // Before the first call: under systemd this moves the daemon into a
        // leaf of its delegated cgroup, which `systemctl status` shows.
        sandbox::prepare_cgroups();
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("agentjail-launcher".into())
            .spawn(move || {
                for (spec, reply) in rx {
                    let _ = reply.send(sandbox::spawn(&spec));
                }
            })?;
        Ok(Launcher {
            jobs: Mutex::new(tx),
        })
    }

    /// Builds the sandbox and starts the command in it.
    pub async fn spawn(&self, spec: SandboxSpec) -> io::Result<SandboxChild> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .lock()
            .map_err(|_| io::Error::other("launcher lock poisoned"))?
            .send((spec, reply))
            .map_err(|_| io::Error::other("the launcher thread has stopped"))?;
        answer
            .await
            .map_err(|_| io::Error::other("the launcher thread dropped the request"))?
    }
}
