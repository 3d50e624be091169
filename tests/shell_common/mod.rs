//! Harness for the shell-tool integration tests (`exec_api.rs`,
//! `escape_shell.rs`): starts the real `agentjail serve` binary with a policy
//! that grants the test process (uid 0) an `[agents.shell]` table, talks to
//! it over its Unix socket with the real tonic client, and inspects the host
//! (`/proc`, cgroups, files) to prove that nothing happened outside.
//!
//! Kept apart from `tests/common/mod.rs` (the file-tool harness) on purpose:
//! the shell tests need their own workspace ownership, policy and
//! assertions. Starting the daemon is shared with it (`tests/launch`).
//! Included with `#[path = "shell_common/mod.rs"]` so Cargo does not build
//! it as a test target of its own.
//!
//! Layout of every test directory (`ShellDirs`): the `launch::DaemonDirs`
//! layout with these files in it:
//!
//! ```text
//! <root>/                 0755
//!   ws/                   the agent's workspace "main", owned by the sandbox uid
//!   ro/readme.txt         its read-only workspace "ro" (also sandbox-owned)
//!   other-ws/secret.txt   another agent's workspace (policy names it)
//!   outside/secret.txt    host files the sandbox must never read or change
//!   policies/test.toml    the policy under test
//!   state/                --state-dir
//!   run/agentjail.sock    the socket
//!   agentjail.toml        the daemon config
//!   daemon.log            the daemon's stdout and stderr
//! ```

#![allow(dead_code)]

#[path = "../launch/mod.rs"]
mod launch;
#[path = "../required/mod.rs"]
mod required;

// Every suite uses a different part of these.
#[allow(unused_imports)]
pub use launch::{
    BIN, DaemonDirs, SANDBOX_GID, SANDBOX_UID, Serve, Server, give_to_sandbox, health_status,
    set_mode,
};

use agentjail::error::reason_of;
use agentjail::proto::tool_sandbox_client::ToolSandboxClient;
use agentjail::proto::*;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// The agent of the test policy (uid 0: the test process).
pub const AGENT: &str = "tester";
/// Content of `outside/secret.txt` and `other-ws/secret.txt`.
pub const SECRET: &str = "HOST-SECRET-7f3a9c1e";
/// Content of `ro/readme.txt`.
pub const RO_CONTENT: &str = "read-only workspace content\n";
/// Written as a comment into the policy file: must never reach a command.
pub const POLICY_CANARY: &str = "POLICY-CANARY-5d2b8e40";
/// The sandbox `PATH` of the test policy (host view of the same dirs).
pub const SANDBOX_PATH: &[&str] = &["/usr/local/bin", "/usr/bin", "/bin"];

/// Programs the suites cannot work without: missing ones fail the test.
pub const ESSENTIAL: &[&str] = &[
    "sh", "bash", "cat", "echo", "true", "false", "sleep", "id", "ls", "env", "python3", "ps",
    "kill", "ln", "mknod", "mount", "unshare", "xargs", "find", "setsid", "yes", "head", "cp",
    "seq", "touch", "pwd", "wc", "readlink", "stat", "grep", "tr", "mkfifo", "chown", "getent",
];

/// Whether we run under CI (`CI=true`): nothing may be skipped there.
pub fn under_ci() -> bool {
    required::in_ci()
}

/// Where `name` resolves on the sandbox PATH (which binds the host dirs).
pub fn on_sandbox_path(name: &str) -> Option<PathBuf> {
    SANDBOX_PATH
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Fails the test (never skips it) when a program the suite needs is not
/// installed where the sandbox can see it.
#[track_caller]
pub fn require_programs(names: &[&str]) {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| on_sandbox_path(n).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "programs needed by this test are missing from {SANDBOX_PATH:?}: {missing:?} \
         (install them; these tests fail rather than skip)"
    );
}

// ------------------------------------------------------------------ dirs

pub struct ShellDirs {
    base: DaemonDirs,
    /// `other-ws/`: another agent's workspace.
    pub other_ws: PathBuf,
}

/// The shared layout's paths (`ws`, `socket`, `log`, ...) read as `dirs.ws`.
impl Deref for ShellDirs {
    type Target = DaemonDirs;
    fn deref(&self) -> &DaemonDirs {
        &self.base
    }
}

impl ShellDirs {
    pub fn new() -> ShellDirs {
        let base = DaemonDirs::new("aj-shell-");
        let d = ShellDirs {
            other_ws: base.root.join("other-ws"),
            base,
        };
        std::fs::create_dir_all(&d.other_ws).unwrap();
        std::fs::write(d.ro.join("readme.txt"), RO_CONTENT).unwrap();
        // Owned by the sandbox user: only the policy's read-only mount, not
        // file permissions, keeps the command from writing in `ro`.
        d.give_ws_to_sandbox();
        give_to_sandbox(&d.ro);
        give_to_sandbox(&d.ro.join("readme.txt"));
        std::fs::write(d.outside.join("secret.txt"), SECRET).unwrap();
        std::fs::write(d.other_ws.join("secret.txt"), SECRET).unwrap();
        // World-readable on purpose: only the sandbox's view may hide them.
        set_mode(&d.outside.join("secret.txt"), 0o644);
        set_mode(&d.other_ws.join("secret.txt"), 0o644);
        d
    }

    /// Every file directly in `outside/`, `other-ws/`, `ro/` and the policy
    /// dir, with its content, for before/after comparisons.
    pub fn outside_snapshot(&self) -> Vec<(String, Vec<u8>)> {
        let mut v = Vec::new();
        for dir in [&self.outside, &self.other_ws, &self.ro, &self.policy_dir] {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let content = std::fs::read(e.path()).unwrap_or_default();
                v.push((e.path().display().to_string(), content));
            }
        }
        v.sort();
        v
    }

    pub fn keep(self) -> PathBuf {
        self.base.keep()
    }
}

// ---------------------------------------------------------------- policy

/// The `[agents.shell]` table of the test policy. `Policy::default()` is a
/// permissive shell (every program the suites use) with small limits.
#[derive(Clone, Debug)]
pub struct Policy {
    pub allow_shell: bool,
    pub network: bool,
    pub path: Vec<String>,
    pub env: Vec<String>,
    pub timeout_ms: u64,
    pub max_timeout_ms: u64,
    pub output_budget_bytes: u64,
    pub memory_bytes: u64,
    pub pids: u64,
    pub cpu_seconds: u64,
    pub nofile: u64,
    pub fsize_bytes: u64,
    pub cpu_percent: u64,
    /// Raw lines for `[agents.shell.requires]`.
    pub requires: Vec<String>,
    /// (program, deny_args)
    pub commands: Vec<(String, Vec<String>)>,
    /// Raw TOML appended after the tester agent (e.g. another agent).
    pub extra: String,
    /// Raw TOML lines of the tester's `[agents.files]` table.
    pub files: String,
    /// Raw TOML lines of the tester's `[agents.sessions]` table (none when
    /// empty).
    pub sessions: String,
}

/// Every program the suites run, with the usual argument rules.
pub fn standard_commands() -> Vec<(String, Vec<String>)> {
    let mut v: Vec<(String, Vec<String>)> = [
        "sh",
        "bash",
        "cat",
        "echo",
        "true",
        "false",
        "sleep",
        "id",
        "ls",
        "env",
        "python3",
        "ps",
        "kill",
        "ln",
        "mknod",
        "mount",
        "chroot",
        "unshare",
        "strace",
        "pivot_root",
        "xargs",
        "find",
        "setsid",
        "yes",
        "head",
        "cp",
        "seq",
        "touch",
        "pwd",
        "wc",
        "readlink",
        "stat",
        "grep",
        "tr",
        "sort",
        "sed",
        "mkfifo",
        "chown",
        "getent",
        "curl",
        "timeout",
        "dd",
        "printf",
        "nsenter",
    ]
    .iter()
    .map(|p| (p.to_string(), Vec::new()))
    .collect();
    v.push((
        "git".into(),
        vec!["push".into(), "--upload-pack*".into(), "--exec*".into()],
    ));
    v.push(("rm".into(), vec!["/".into(), "--no-preserve-root".into()]));
    v
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allow_shell: true,
            network: false,
            path: SANDBOX_PATH.iter().map(|s| s.to_string()).collect(),
            env: vec!["FOO".into(), "CARGO_*".into(), "AJ_*".into()],
            timeout_ms: 30_000,
            max_timeout_ms: 120_000,
            output_budget_bytes: 1024 * 1024,
            memory_bytes: 512 << 20,
            pids: 256,
            cpu_seconds: 120,
            nofile: 256,
            fsize_bytes: 256 << 20,
            cpu_percent: 100,
            requires: Vec::new(),
            commands: standard_commands(),
            extra: String::new(),
            files: String::new(),
            sessions: String::new(),
        }
    }
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

impl Policy {
    pub fn toml(&self, dirs: &ShellDirs) -> String {
        let mut t = format!(
            r#"# {POLICY_CANARY}
[[agents]]
name = "{AGENT}"
uids = [0]

[[agents.workspaces]]
name = "main"
path = "{ws}"
access = "read-write"

[[agents.workspaces]]
name = "ro"
path = "{ro}"
access = "read-only"

[agents.files]
{files}

[agents.shell]
allow_shell = {allow_shell}
network = {network}
path = {path}
uid = {SANDBOX_UID}
gid = {SANDBOX_GID}
env = {env}
timeout_ms = {timeout_ms}
max_timeout_ms = {max_timeout_ms}
output_budget_bytes = {budget}

[agents.shell.limits]
memory_bytes = {memory}
pids = {pids}
cpu_seconds = {cpu_seconds}
nofile = {nofile}
fsize_bytes = {fsize}
cpu_percent = {cpu_percent}

[agents.shell.requires]
{requires}
"#,
            ws = dirs.ws.display(),
            ro = dirs.ro.display(),
            files = self.files,
            allow_shell = self.allow_shell,
            network = self.network,
            path = toml_list(&self.path),
            env = toml_list(&self.env),
            timeout_ms = self.timeout_ms,
            max_timeout_ms = self.max_timeout_ms,
            budget = self.output_budget_bytes,
            memory = self.memory_bytes,
            pids = self.pids,
            cpu_seconds = self.cpu_seconds,
            nofile = self.nofile,
            fsize = self.fsize_bytes,
            cpu_percent = self.cpu_percent,
            requires = self.requires.join("\n"),
        );
        for (program, deny) in &self.commands {
            t.push_str(&format!(
                "\n[[agents.shell.commands]]\nprogram = {program:?}\ndeny_args = {}\n",
                toml_list(deny)
            ));
        }
        if !self.sessions.is_empty() {
            t.push_str(&format!("\n[agents.sessions]\n{}\n", self.sessions));
        }
        // Another agent owns other-ws: the tester's sandbox must not see it.
        t.push_str(&format!(
            r#"
[[agents]]
name = "other"
uids = [54321]

[[agents.workspaces]]
name = "main"
path = "{}"
"#,
            dirs.other_ws.display()
        ));
        t.push_str(&self.extra);
        t
    }
}

// ---------------------------------------------------------------- daemon

pub struct ShellDaemon {
    /// First, so the daemon is gone before its directories are.
    server: Server,
    pub dirs: ShellDirs,
    pub pid: u32,
    /// The sessions commands run in (by workspace), under
    /// [`commands_in_session`].
    sessions: tokio::sync::Mutex<BTreeMap<String, String>>,
    /// Calls in flight through `run`/`exec_events` (pooled twins).
    in_flight: std::sync::atomic::AtomicUsize,
}

/// True in the test binary `escape_shell_in_session` (the escape cases of
/// `escape_shell.rs` again): every Run and Exec the harness sends without
/// a session id then runs in a session of its daemon, opened on first use.
pub fn commands_in_session() -> bool {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .is_some_and(|n| n.starts_with("escape_shell_in_session"))
}

/// True in the pooled twins of the escape suites (`escape_shell_pooled`,
/// `escape_paths_pooled`): before each Run and Exec the harness sends a
/// warm-up call of the same shape (`/bin/true`, same workspace and stdin),
/// waits until the sandbox built ahead for it is ready, and after the call
/// checks in the audit log that a sandbox built ahead served it (when no
/// other call of the test was in flight: concurrent calls may outnumber
/// the pool).
pub fn commands_pooled() -> bool {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .is_some_and(|n| {
            n.starts_with("escape_shell_pooled") || n.starts_with("escape_paths_pooled")
        })
}

/// argv of the pooled twins' warm-up calls (left out of the record counts).
pub const WARM_UP: &[&str] = &["true", "agentjail-pool-warm-up"];

fn is_warm_up(r: &serde_json::Value) -> bool {
    r["args"]["argv"]
        .as_array()
        .is_some_and(|a| a.len() == 2 && a[1].as_str() == Some(WARM_UP[1]))
}

/// Writes the policy and an (almost empty) config file.
pub fn write_policy(dirs: &ShellDirs, policy: &Policy) {
    dirs.write_setup(&policy.toml(dirs), "shutdown_grace_ms = 2000\n");
}

impl ShellDaemon {
    /// `Policy::default()` in fresh directories.
    pub async fn start() -> ShellDaemon {
        Self::start_with(Policy::default()).await
    }

    pub async fn start_with(policy: Policy) -> ShellDaemon {
        Self::launch(ShellDirs::new(), &policy, Serve::new()).await
    }

    /// `policy` in `dirs`, the daemon started as `serve` says (extra
    /// environment, inherited fds).
    pub async fn launch(dirs: ShellDirs, policy: &Policy, serve: Serve) -> ShellDaemon {
        write_policy(&dirs, policy);
        let server = serve.start(&dirs).await;
        ShellDaemon {
            pid: server.pid,
            server,
            dirs,
            sessions: Default::default(),
            in_flight: Default::default(),
        }
    }

    /// `policy_toml` as the whole policy file, `config` as the config file.
    pub async fn launch_raw(dirs: ShellDirs, policy_toml: &str, config: &str) -> ShellDaemon {
        dirs.write_setup(policy_toml, config);
        let server = Serve::new().start(&dirs).await;
        ShellDaemon {
            pid: server.pid,
            server,
            dirs,
            sessions: Default::default(),
            in_flight: Default::default(),
        }
    }

    /// Like `launch`, with `config` as the daemon's whole config file.
    pub async fn launch_with_config(
        dirs: ShellDirs,
        policy: &Policy,
        config: &str,
        serve: Serve,
    ) -> ShellDaemon {
        dirs.write_setup(&policy.toml(&dirs), config);
        let server = serve.start(&dirs).await;
        ShellDaemon {
            pid: server.pid,
            server,
            dirs,
            sessions: Default::default(),
            in_flight: Default::default(),
        }
    }

    /// `policy` in fresh directories, with `config_extra` appended to the
    /// config file.
    pub async fn start_with_config(policy: &Policy, config_extra: &str) -> ShellDaemon {
        let dirs = ShellDirs::new();
        dirs.write_setup(
            &policy.toml(&dirs),
            &format!("shutdown_grace_ms = 2000\n{config_extra}\n"),
        );
        let server = Serve::new().start(&dirs).await;
        ShellDaemon {
            pid: server.pid,
            server,
            dirs,
            sessions: Default::default(),
            in_flight: Default::default(),
        }
    }

    pub fn log(&self) -> String {
        self.server.log()
    }

    /// A fresh client on its own connection.
    pub async fn client(&self) -> ToolSandboxClient<Channel> {
        launch::tool_client(&self.dirs.socket)
            .await
            .expect("connect to the daemon socket")
    }

    pub async fn run(&self, req: ExecRequest) -> Result<ExecResult, Status> {
        let req = self.in_session(req).await;
        let alone = self.warm_up(&req).await;
        let r = self.client().await.run(req).await.map(|r| r.into_inner());
        self.in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(r) = &r {
            self.check_pooled(alone, &r.exec_id);
        }
        r
    }

    /// Pooled twins: a call of `req`'s shape first, so that a sandbox is
    /// built ahead for `req`, ready before `req` is sent. Returns whether
    /// `req` is the only call in flight (it is always counted in, so pair
    /// with a decrement) and a warm-up ran for it.
    async fn warm_up(&self, req: &ExecRequest) -> bool {
        let alone = self
            .in_flight
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            == 0;
        if !commands_pooled() || !req.session_id.is_empty() {
            return alone;
        }
        let warm = ExecRequest {
            argv: WARM_UP.iter().map(|s| s.to_string()).collect(),
            workspace: req.workspace.clone(),
            stdin: req.stdin.clone(),
            deterministic: req.deterministic,
            ..Default::default()
        };
        // A policy that refuses the warm-up gets no sandbox built ahead.
        let warmed = self.client().await.run(warm).await.is_ok();
        if warmed && alone {
            // Built ahead: ready once its init waits for a command.
            wait_until(Duration::from_secs(10), || self.pool_ready() > 0).await;
        }
        alone && warmed
    }

    /// Pooled twins: the call `exec_id` (when it was alone) was served by
    /// a sandbox built ahead, as its audit record says.
    #[track_caller]
    fn check_pooled(&self, alone: bool, exec_id: &str) {
        if !commands_pooled() || !alone || exec_id.is_empty() {
            return;
        }
        let Some(rec) = self.outcome_record(exec_id) else {
            return;
        };
        if rec["enforced"].is_object() {
            assert_eq!(
                rec["enforced"]["pooled"], true,
                "a sandbox built ahead must serve this call: {rec}"
            );
        }
    }

    /// The audit outcome record of the call `exec_id` (not its intent).
    pub fn outcome_record(&self, exec_id: &str) -> Option<serde_json::Value> {
        self.audit_records()
            .into_iter()
            .rev()
            .find(|r| r["request_id"] == exec_id && r["phase"].is_null())
    }

    /// Whether a sandbox built ahead served the call `r`, as its outcome
    /// record says (`enforced.pooled`).
    #[track_caller]
    pub fn was_pooled(&self, r: &Ran) -> bool {
        let exec_id = &r.result.exec_id;
        let rec = self
            .outcome_record(exec_id)
            .unwrap_or_else(|| panic!("no record for {exec_id}"));
        rec["enforced"]["pooled"]
            .as_bool()
            .unwrap_or_else(|| panic!("no enforced.pooled in {rec}"))
    }

    /// Sandboxes built ahead that wait for a call (`aj-ready` inits).
    pub fn pool_ready(&self) -> usize {
        ready_inits_of(self.pid).len()
    }

    /// Waits until the daemon holds a sandbox built ahead, ready for a call.
    pub async fn await_ready(&self) {
        assert!(
            wait_until(Duration::from_secs(10), || self.pool_ready() > 0).await,
            "a sandbox should be built ahead after a call; log:\n{}",
            self.log()
        );
    }

    /// Closes the sessions [`commands_in_session`] opened.
    pub async fn close_sessions(&self) {
        let ids: Vec<String> = std::mem::take(&mut *self.sessions.lock().await)
            .into_values()
            .collect();
        for session_id in ids {
            let _ = self
                .client()
                .await
                .close_session(CloseSessionRequest { session_id })
                .await;
        }
    }

    /// `req` in this daemon's session, under [`commands_in_session`].
    pub async fn in_session(&self, mut req: ExecRequest) -> ExecRequest {
        if commands_in_session() && req.session_id.is_empty() {
            let mut sessions = self.sessions.lock().await;
            if !sessions.contains_key(&req.workspace) {
                let opened = self
                    .client()
                    .await
                    .open_session(OpenSessionRequest {
                        workspace: req.workspace.clone(),
                        ..Default::default()
                    })
                    .await
                    .unwrap_or_else(|s| panic!("OpenSession: {}", describe(&s)));
                let id = opened.into_inner().session.expect("a session").session_id;
                sessions.insert(req.workspace.clone(), id);
            }
            let id = &sessions[&req.workspace];
            req.session_id = id.clone();
        }
        req
    }

    /// Runs `req`; panics on an RPC error (a non-zero exit is not one).
    #[track_caller]
    pub fn run_ok(&self, req: ExecRequest) -> impl std::future::Future<Output = Ran> + '_ {
        let caller = std::panic::Location::caller();
        async move {
            let what = format!("{:?}{:?}", req.argv, req.shell);
            match self.run(req).await {
                Ok(r) => Ran::from(r),
                Err(s) => panic!(
                    "Run {what} failed as an RPC ({caller}): {}\nlog:\n{}",
                    describe(&s),
                    self.log()
                ),
            }
        }
    }

    /// `/bin/sh -c script`, through Run.
    pub async fn sh(&self, script: &str) -> Ran {
        self.run_ok(sh_req(script)).await
    }

    /// argv, through Run.
    pub async fn argv(&self, argv: &[&str]) -> Ran {
        self.run_ok(argv_req(argv)).await
    }

    /// `python3 -c code`, through Run.
    pub async fn py(&self, code: &str) -> Ran {
        self.run_ok(argv_req(&["python3", "-c", code])).await
    }

    /// Every event of an Exec call, in order, until the stream ends.
    pub async fn exec_events(&self, req: ExecRequest) -> Result<Vec<ExecEvent>, Status> {
        let req = self.in_session(req).await;
        let alone = self.warm_up(&req).await;
        let events = async {
            let mut stream = self.client().await.exec(req).await?.into_inner();
            let mut events = Vec::new();
            while let Some(e) = stream.message().await? {
                events.push(e);
            }
            Ok::<_, Status>(events)
        }
        .await;
        self.in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(events) = &events {
            let exec_id = events.iter().find_map(|e| match &e.event {
                Some(exec_event::Event::Started(s)) => Some(s.exec_id.clone()),
                _ => None,
            });
            self.check_pooled(alone, exec_id.as_deref().unwrap_or(""));
        }
        events
    }

    /// Asserts that the daemon process is alive and still runs commands.
    pub async fn assert_serving(&mut self) {
        if let Some(status) = self.server.exited() {
            panic!("the daemon died with {status}; log:\n{}", self.log());
        }
        let r = self.argv(&["echo", "still-serving"]).await;
        assert_eq!(r.stdout, "still-serving\n", "{r:?}");
    }

    /// The daemon's audit records (`<state>/audit.jsonl`, one JSON object
    /// per call), oldest first.
    pub fn audit_records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dirs.state_dir.join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line {l:?}: {e}")))
            .collect()
    }

    /// Shell calls the daemon allowed, i.e. launched a sandbox for,
    /// according to its audit log.
    pub fn commands_allowed(&self) -> usize {
        self.audit_records()
            .iter()
            .filter(|r| {
                matches!(r["method"].as_str(), Some("Exec" | "Run"))
                    && r["decision"].as_str() == Some("allow")
                    && !is_warm_up(r)
            })
            .count()
    }

    /// Shell calls the daemon refused, according to its audit log.
    pub fn commands_refused(&self) -> usize {
        self.audit_records()
            .iter()
            .filter(|r| {
                matches!(r["method"].as_str(), Some("Exec" | "Run"))
                    && r["decision"].as_str() != Some("allow")
                    && !is_warm_up(r)
            })
            .count()
    }

    /// Resident set size of the daemon now, and its peak, in KiB.
    pub fn rss_kib(&self) -> (u64, u64) {
        (
            self.server.status_kib("VmRSS:"),
            self.server.status_kib("VmHWM:"),
        )
    }

    /// Processes descended from the daemon (its sandboxes), as
    /// `pid state cmdline` lines.
    pub fn descendants(&self) -> Vec<String> {
        descendants_of(self.pid)
    }

    /// Per-launch cgroups of this daemon that still exist, but for those
    /// of its sandboxes built ahead (ready for a call).
    pub fn leftover_cgroups(&self) -> Vec<PathBuf> {
        self.launch_cgroups()
            .into_iter()
            .filter(|g| !holds_only_ready_inits(g))
            .collect()
    }

    /// Every per-launch cgroup of this daemon that exists, the pool's too.
    pub fn launch_cgroups(&self) -> Vec<PathBuf> {
        let prefix = format!("{}-", self.pid);
        let mut v = Vec::new();
        for h in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let base = h.path().join("agentjail");
            for e in std::fs::read_dir(&base).into_iter().flatten().flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    v.push(e.path());
                }
            }
        }
        v
    }

    /// Asserts that no process of any sandbox of this daemon is left (no
    /// orphan, no zombie) and that its per-launch cgroups are gone, allowing
    /// `grace` for the teardown to finish.
    pub async fn assert_no_leftovers(&self, grace: Duration) {
        // A session outlives its commands by design: it ends here.
        self.close_sessions().await;
        let deadline = Instant::now() + grace;
        loop {
            let procs = self.descendants();
            let cgroups = self.leftover_cgroups();
            if procs.is_empty() && cgroups.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "left behind after {grace:?}: processes {procs:#?}, cgroups {cgroups:#?}\nlog:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `signal` to the daemon and waits (at most `within`) for it to
    /// exit; returns its status.
    pub async fn kill_with(
        &mut self,
        signal: rustix::process::Signal,
        within: Duration,
    ) -> std::process::ExitStatus {
        self.server.signal(signal);
        self.server.wait_exit(within).await
    }
}

impl Drop for ShellDaemon {
    /// While a sandbox is still running (a test that failed mid-command),
    /// SIGTERM first so that the daemon ends it and removes its cgroups,
    /// which a killed daemon would leave behind; `Server` then kills it.
    fn drop(&mut self) {
        if !self.descendants().is_empty() {
            self.server.terminate_blocking(Duration::from_secs(5));
        }
    }
}

// ------------------------------------------------------------ host /proc

/// (pid, ppid, state) of every process on the host.
pub fn host_processes() -> Vec<(u32, u32, char)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        v.push((pid, ppid, state));
    }
    v
}

pub fn cmdline_of(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw)
        .replace('\0', " ")
        .trim()
        .to_string()
}

/// A sandbox built ahead, waiting for a call (its init names itself
/// `aj-ready` until a command arrives): the daemon keeps a bounded few on
/// purpose, so they are not a call's leftovers.
pub fn is_ready_init(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == "aj-ready")
}

/// A ready init the harness may leave alone: named `aj-ready` AND a child
/// of a launcher process (a command that names itself so is an init's
/// child, never the launcher's).
fn is_built_ahead(pid: u32) -> bool {
    is_ready_init(pid) && parent_of(pid).is_some_and(is_launcher)
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The ready sandboxes built ahead for the daemon `daemon`.
pub fn ready_inits_of(daemon: u32) -> Vec<u32> {
    let procs = host_processes();
    let launchers: Vec<u32> = procs
        .iter()
        .filter(|(pid, ppid, _)| *ppid == daemon && is_launcher(*pid))
        .map(|(pid, _, _)| *pid)
        .collect();
    procs
        .iter()
        .filter(|(pid, ppid, _)| launchers.contains(ppid) && is_ready_init(*pid))
        .map(|(pid, _, _)| *pid)
        .collect()
}

/// A per-launch cgroup whose only process is a ready sandbox's init.
fn holds_only_ready_inits(group: &Path) -> bool {
    let procs = std::fs::read_to_string(group.join("cgroup.procs")).unwrap_or_default();
    let pids: Vec<u32> = procs
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    !pids.is_empty() && pids.iter().all(|p| is_built_ahead(*p))
}

/// Every process below `root`, as `pid state cmdline` lines.
/// The daemon's own launcher process (its child named `aj-launcher`)
/// is part of the daemon, not a sandbox: it is walked through, not listed;
/// nor are the sandboxes it built ahead (`is_built_ahead`: its children
/// named `aj-ready`).
pub fn descendants_of(root: u32) -> Vec<String> {
    let procs = host_processes();
    let mut found = vec![root];
    let mut out = Vec::new();
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for (pid, ppid, state) in &procs {
            if *ppid == parent && !found.contains(pid) {
                found.push(*pid);
                let part_of_daemon = parent == root && is_launcher(*pid);
                let built_ahead = is_launcher(parent) && is_ready_init(*pid);
                if !(part_of_daemon || built_ahead) {
                    out.push(format!("{pid} {state} {}", cmdline_of(*pid)));
                }
            }
        }
        i += 1;
    }
    out
}

/// The daemon's launcher process (see `src/sandbox/launcher_process.rs`).
pub fn is_launcher(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|c| c.trim_end() == "aj-launcher")
}

/// Host pids whose command line contains `marker` (the test's own
/// processes, which never contain it, excluded).
pub fn host_pids_with(marker: &str) -> Vec<u32> {
    let me = std::process::id();
    host_processes()
        .into_iter()
        .map(|(pid, _, _)| pid)
        .filter(|pid| *pid != me && cmdline_of(*pid).contains(marker))
        .collect()
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes. Async, so
/// the client's connection tasks keep running meanwhile (a blocking sleep
/// would stall a current-thread runtime and hide a cancellation).
pub async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that no host process carries `marker`, allowing `grace`.
pub async fn assert_no_process_with(marker: &str, grace: Duration) {
    let ok = wait_until(grace, || host_pids_with(marker).is_empty()).await;
    assert!(
        ok,
        "processes with {marker:?} still on the host after {grace:?}: {:?}",
        host_pids_with(marker)
            .iter()
            .map(|p| format!("{p} {}", cmdline_of(*p)))
            .collect::<Vec<_>>()
    );
}

/// A marker unique to this test run, for `sleep <marker>`-style commands:
/// a number that `sleep` accepts and no other process carries.
pub fn unique_sleep(seconds: u32) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!(
        "{seconds}.{:05}{:04}1",
        std::process::id() % 100_000,
        n % 10_000
    )
}

// -------------------------------------------------------------- requests

pub fn sh_req(script: &str) -> ExecRequest {
    ExecRequest {
        shell: script.into(),
        ..Default::default()
    }
}

pub fn argv_req(argv: &[&str]) -> ExecRequest {
    ExecRequest {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

pub fn py_req(code: &str) -> ExecRequest {
    argv_req(&["python3", "-c", code])
}

/// A Run result in a form that is easy to assert on.
pub struct Ran {
    /// head + tail, lossy UTF-8.
    pub stdout: String,
    pub stderr: String,
    pub exited: ExecExited,
    pub result: ExecResult,
}

impl From<ExecResult> for Ran {
    fn from(r: ExecResult) -> Self {
        let text = |c: &Option<CapturedOutput>| {
            let c = c.clone().unwrap_or_default();
            let mut v = c.head;
            v.extend_from_slice(&c.tail);
            String::from_utf8_lossy(&v).into_owned()
        };
        Ran {
            stdout: text(&r.stdout),
            stderr: text(&r.stderr),
            exited: r.exited.clone().expect("ExecResult without exited"),
            result: r,
        }
    }
}

impl Ran {
    pub fn code(&self) -> Option<i32> {
        self.exited.exit_code
    }

    pub fn signal(&self) -> Option<i32> {
        self.exited.signal
    }

    pub fn stdout_capture(&self) -> CapturedOutput {
        self.result.stdout.clone().unwrap_or_default()
    }

    pub fn stderr_capture(&self) -> CapturedOutput {
        self.result.stderr.clone().unwrap_or_default()
    }

    /// Asserts exit code 0 and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code(), Some(0), "expected exit 0: {self:?}");
        &self.stdout
    }

    /// Lines of stdout.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

impl fmt::Debug for Ran {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.exited;
        write!(
            f,
            "Ran {{ exit_code: {:?}, signal: {:?}, timed_out: {}, idle_timed_out: {}, cancelled: {}, \
             oom_killed: {}, wall_ms: {}, cpu_ms: {}, peak_mem: {}, stdout_bytes: {}, \
             stderr_bytes: {},\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- end }}",
            e.exit_code,
            e.signal,
            e.timed_out,
            e.idle_timed_out,
            e.cancelled,
            e.oom_killed,
            e.wall_time_ms,
            e.cpu_time_ms,
            e.peak_memory_bytes,
            e.stdout_bytes,
            e.stderr_bytes,
            truncate(&self.stdout, 4000),
            truncate(&self.stderr, 4000)
        )
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        s.to_string()
    } else {
        let mut end = n;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}... ({} bytes)", &s[..end], s.len())
    }
}

// ------------------------------------------------------------ statuses

pub fn describe(s: &Status) -> String {
    format!(
        "code {:?}, reason {:?}, message {:?}, metadata {:?}",
        s.code(),
        reason_of(s),
        s.message(),
        error_meta(s)
    )
}

pub fn error_meta(s: &Status) -> BTreeMap<String, String> {
    use tonic_types::StatusExt;
    s.get_details_error_info()
        .map(|i| i.metadata.into_iter().collect())
        .unwrap_or_default()
}

/// Asserts the call failed with gRPC `code` and reason `reason`; returns
/// the status for further checks.
#[track_caller]
pub fn assert_refused<T: fmt::Debug>(r: Result<T, Status>, code: Code, reason: &str) -> Status {
    match r {
        Ok(v) => panic!("expected {code:?}/{reason}, got success: {v:?}"),
        Err(s) => {
            assert_eq!(s.code(), code, "{}", describe(&s));
            assert_eq!(reason_of(&s).as_deref(), Some(reason), "{}", describe(&s));
            assert!(!s.message().is_empty(), "empty message: {}", describe(&s));
            s
        }
    }
}

// ------------------------------------------------------------ python

/// A Python program that makes raw syscalls and prints, for each,
/// `name ret errno`. `setup` runs first (Python statements); `calls` are
/// (name, "nr, args...") with Python expressions as arguments (`b"..."` for
/// pointers to bytes).
pub fn py_syscalls<N: AsRef<str>>(setup: &str, calls: &[(N, String)]) -> String {
    let mut code = String::from(
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.syscall.restype = ctypes.c_long\n\
         def sc(name, *a):\n    ctypes.set_errno(0)\n    r = libc.syscall(*a)\n    e = ctypes.get_errno()\n    print(name, r, e, flush=True)\n",
    );
    code.push_str(setup);
    code.push('\n');
    for (name, args) in calls {
        code.push_str(&format!("sc({:?}, {args})\n", name.as_ref()));
    }
    code
}

/// Parses `name ret errno` lines into name -> (ret, errno).
pub fn parse_syscalls(out: &str) -> BTreeMap<String, (i64, i32)> {
    out.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next()?.to_string();
            let ret = f.next()?.parse().ok()?;
            let errno = f.next()?.parse().ok()?;
            Some((name, (ret, errno)))
        })
        .collect()
}

// ------------------------------------------------------------ host files

pub fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Puts a file in the workspace as the sandbox user would own it.
pub fn put_ws(dirs: &ShellDirs, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let p = dirs.w(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
        give_to_sandbox(parent);
    }
    std::fs::write(&p, content).unwrap();
    give_to_sandbox(&p);
    p
}
