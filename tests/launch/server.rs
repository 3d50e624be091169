//! A running `agentjail serve`: wait until it serves or exits, signal it, and
//! on drop kill it and, when the test failed, print its log.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// How long a daemon may take to serve: generous, the machines that run the
/// suites are small and busy.
pub const START_LIMIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(20);

pub struct Server {
    child: Child,
    pub pid: u32,
    log: PathBuf,
}

impl Server {
    /// Spawns `cmd`, whose output goes to `log`.
    pub fn spawn(cmd: &mut Command, log: &Path) -> Server {
        let child = cmd.spawn().expect("spawn agentjail serve");
        Server {
            pid: child.id(),
            child,
            log: log.to_path_buf(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The exit status once the daemon has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits until health on `socket` answers SERVING; fails if the daemon
    /// exits or is not serving within `START_LIMIT`.
    pub async fn wait_serving(&mut self, socket: &Path) {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Some(status) = self.exited() {
                panic!(
                    "agentjail serve exited during start-up with {status}; log:\n{}",
                    self.log()
                );
            }
            let last = health_status(socket, "").await;
            if last == Ok(1) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "agentjail serve not serving after {START_LIMIT:?} ({last:?}); log:\n{}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    pub fn signal(&self, sig: rustix::process::Signal) {
        send_signal(self.pid, sig);
    }

    /// The exit status if the daemon ends within `limit`, `None` if it is
    /// still running then. Async, so the test's other tasks (clients with
    /// calls in flight) keep running meanwhile.
    pub async fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits (at most `limit`) for the exit status.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        match self.exit_within(limit).await {
            Some(status) => status,
            None => panic!(
                "the daemon did not exit within {limit:?}; log:\n{}",
                self.log()
            ),
        }
    }

    /// SIGTERM, then the exit status (within 15 s).
    pub async fn stop(&mut self) -> ExitStatus {
        self.signal(rustix::process::Signal::TERM);
        self.wait_exit(Duration::from_secs(15)).await
    }

    /// SIGTERM and at most `grace` to exit, blocking: for a `Drop` (which
    /// cannot await) that wants the daemon to clean up after itself.
    pub fn terminate_blocking(&mut self, grace: Duration) {
        if self.exited().is_some() {
            return;
        }
        self.signal(rustix::process::Signal::TERM);
        let deadline = Instant::now() + grace;
        while self.exited().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Resident set size (`VmRSS:`) or its peak (`VmHWM:`), in KiB.
    pub fn status_kib(&self, key: &str) -> u64 {
        let pid = self.pid;
        let status =
            std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A no-op once the child has been reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "----- daemon log ({}) -----\n{}\n----- end of daemon log -----",
                self.log.display(),
                self.log()
            );
        }
    }
}

/// Sends `sig` to process `pid`.
pub fn send_signal(pid: u32, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a valid pid");
    rustix::process::kill_process(pid, sig).expect("kill");
}

/// grpc.health.v1 Check(service) on the socket: the status number
/// (1 = SERVING) or why it could not be asked.
pub async fn health_status(socket: &Path, service: &str) -> Result<i32, String> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let channel = tokio::time::timeout(
        Duration::from_secs(2),
        agentjail::client::unix_channel(socket),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| format!("connect: {e}"))?;
    let resp = tokio::time::timeout(
        Duration::from_secs(2),
        HealthClient::new(channel).check(HealthCheckRequest {
            service: service.into(),
        }),
    )
    .await
    .map_err(|_| "health check timed out".to_string())?
    .map_err(|s| format!("health check: {s:?}"))?;
    Ok(resp.into_inner().status)
}

/// A tool client on its own connection to `socket`, with message limits
/// above anything the suites send or receive.
pub async fn tool_client(
    socket: &Path,
) -> Result<
    agentjail::proto::tool_sandbox_client::ToolSandboxClient<tonic::transport::Channel>,
    tonic::transport::Error,
> {
    let channel = agentjail::client::unix_channel(socket).await?;
    Ok(
        agentjail::proto::tool_sandbox_client::ToolSandboxClient::new(channel)
            .max_decoding_message_size(256 * 1024 * 1024)
            .max_encoding_message_size(usize::MAX),
    )
}
