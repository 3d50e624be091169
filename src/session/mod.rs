//! Sessions: one sandbox that lives across calls (issue 13).
//!
//! A session is a sandbox the launcher builds like a Run's, whose init is
//! the session supervisor (`sandbox/session_init.rs`); commands and
//! background processes of the session are started by it, close to a bare
//! spawn, without the launcher. The daemon keeps the session's state:
//!
//! - cwd and environment are tracked here. Each command starts in the
//!   session's directory with its environment; a `shell` command runs
//!   wrapped (see [`SHELL_WRAPPER`]) so that its final directory and
//!   exported variables come back on fd 3 and become the session's. argv
//!   commands leave the state as it was.
//! - the registry of open sessions, each owned by the agent that opened it:
//!   to any other agent its id is unknown (NOT_FOUND).
//! - background processes and their bounded output (`output.rs`).

pub mod output;
pub mod ports;
pub mod process;
pub mod supervisor;

use crate::error::{Reason, ToolError};
use crate::sandbox::session_init::SpawnRequest;
use crate::sandbox::{ExitInfo, SandboxSpec, Termination};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use supervisor::{Exit, SpawnError, Spawned, Supervisor};
use tokio::sync::watch;

/// Runs a session's `shell` command (`$2`) and, however it ends, writes its
/// final directory and exported environment to the file `$1` (in the
/// session's private /tmp; the supervisor reads and removes it when the
/// shell is reaped), NUL-separated, ending with `AJ-END`. The command's
/// exit status is kept, and it sees no descriptor beyond 0, 1 and 2.
pub const SHELL_WRAPPER: &str = "__aj_state=$1; __aj_cmd=$2; shift 2; \
__aj_report() { __aj_rc=$?; ( umask 077; { printf '%s\\0' \"$PWD\"; /usr/bin/env -0; printf 'AJ-END\\0'; } > \"$__aj_state\" ) 2>/dev/null; return $__aj_rc; }; \
trap __aj_report EXIT; eval \"$__aj_cmd\"";

/// Variables the wrapper's report carries that are not the session's.
const NOT_CARRIED: &[&str] = &["PWD", "OLDPWD", "SHLVL", "_"];

/// What a session's next command starts from.
#[derive(Debug, Clone)]
pub struct Shell {
    /// Absolute, inside the sandbox.
    pub cwd: String,
    pub env: Vec<(String, String)>,
}

struct Mutable {
    shell: Shell,
    last_used: SystemTime,
    last_used_at: Instant,
    ended: Option<&'static str>,
    processes: Vec<Arc<process::Process>>,
    next_process: u64,
}

pub struct Session {
    pub id: String,
    pub agent: String,
    pub workspace: String,
    pub workspace_index: usize,
    /// The sandbox it was built from (program lookup on its PATH).
    pub spec: SandboxSpec,
    pub opened_at: SystemTime,
    pub expires_at: SystemTime,
    pub deadline: Instant,
    pub idle_timeout: Duration,
    pub memory_bytes: u64,
    pub pids: u64,
    pub max_processes: usize,
    pub sup: Arc<Supervisor>,
    /// See [`Session::oom_kills`].
    oom_file: std::sync::OnceLock<Option<String>>,
    /// The OOM kills counted when [`Session::new_oom_kill`] last looked.
    oom_seen: std::sync::atomic::AtomicU64,
    state: Mutex<Mutable>,
}

#[allow(clippy::too_many_arguments)]
impl Session {
    pub fn new(
        id: String,
        agent: String,
        workspace: String,
        workspace_index: usize,
        spec: SandboxSpec,
        shell: Shell,
        lifetime: Duration,
        idle_timeout: Duration,
        max_processes: usize,
        sup: Arc<Supervisor>,
    ) -> Session {
        let now = SystemTime::now();
        Session {
            id,
            agent,
            workspace,
            workspace_index,
            memory_bytes: spec.limits.memory_bytes.unwrap_or(0),
            pids: spec.limits.pids.unwrap_or(0),
            spec,
            opened_at: now,
            expires_at: now + lifetime,
            deadline: Instant::now() + lifetime,
            idle_timeout,
            max_processes,
            sup,
            oom_file: std::sync::OnceLock::new(),
            oom_seen: std::sync::atomic::AtomicU64::new(0),
            state: Mutex::new(Mutable {
                shell,
                last_used: now,
                last_used_at: Instant::now(),
                ended: None,
                processes: Vec::new(),
                next_process: 1,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Mutable> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A call on the session: the idle clock starts again.
    pub fn touch(&self) {
        let mut s = self.lock();
        s.last_used = SystemTime::now();
        s.last_used_at = Instant::now();
    }

    pub fn shell(&self) -> Shell {
        self.lock().shell.clone()
    }

    pub fn last_used(&self) -> SystemTime {
        self.lock().last_used
    }

    /// When the session idles out, unless a call comes first.
    pub fn idle_deadline(&self) -> Instant {
        self.lock().last_used_at + self.idle_timeout
    }

    pub fn ended(&self) -> Option<&'static str> {
        self.lock().ended
    }

    /// Ends the session (once): every process in it dies with its sandbox.
    /// Returns false when it had ended already.
    pub fn end(&self, why: &'static str) -> bool {
        {
            let mut s = self.lock();
            if s.ended.is_some() {
                return false;
            }
            s.ended = Some(why);
        }
        self.sup.kill();
        ports::remove(self);
        true
    }

    pub fn processes(&self) -> Vec<Arc<process::Process>> {
        self.lock().processes.clone()
    }

    pub fn running_processes(&self) -> usize {
        self.lock().processes.iter().filter(|p| p.running()).count()
    }

    pub fn process(&self, id: &str) -> Result<Arc<process::Process>, ToolError> {
        self.lock()
            .processes
            .iter()
            .find(|p| p.id == id)
            .cloned()
            .ok_or_else(|| {
                ToolError::new(
                    Reason::NotFound,
                    format!(
                        "session {} has no process \"{id}\"; ListProcesses shows its processes",
                        self.id
                    ),
                )
                .with("process_id", id)
            })
    }

    /// Reserves a background process slot and its id (`p1`, `p2`, ...).
    pub fn next_process_id(&self) -> Result<String, ToolError> {
        let mut s = self.lock();
        let running = s.processes.iter().filter(|p| p.running()).count();
        if running >= self.max_processes {
            return Err(ToolError::new(
                Reason::TooManyConcurrentCalls,
                format!(
                    "session {} already runs {running} background processes (the policy's \
                     limit); wait for or kill one first",
                    self.id
                ),
            )
            .with("limit", "max_processes")
            .with("max_processes", self.max_processes.to_string()));
        }
        let id = format!("p{}", s.next_process);
        s.next_process += 1;
        Ok(id)
    }

    pub fn add_process(&self, p: Arc<process::Process>) {
        self.lock().processes.push(p);
    }

    /// The program's path inside the sandbox: as given when absolute, else
    /// found on `env`'s PATH.
    pub fn resolve_program(
        &self,
        argv: &[String],
        env: &[(String, String)],
    ) -> Result<String, ToolError> {
        self.spec
            .resolve_program_for(argv, env)
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(|e| ToolError::new(Reason::NotFound, format!("{e}; nothing ran")))
    }

    /// Whether the session's cgroup has killed for memory since this was
    /// last asked (the session's cgroup is new: none before). Asked only
    /// when a command died of SIGKILL, so a command that exits normally
    /// reads no counter, before or after.
    pub fn new_oom_kill(&self) -> bool {
        let now = self.oom_kills();
        self.oom_seen
            .fetch_max(now, std::sync::atomic::Ordering::Relaxed)
            < now
    }

    /// OOM kills in the session's cgroup so far (0 when unreadable).
    fn oom_kills(&self) -> u64 {
        let Some(file) = self.oom_file.get_or_init(|| self.find_oom_file()) else {
            return 0;
        };
        std::fs::read_to_string(file)
            .ok()
            .and_then(|e| {
                e.lines()
                    .find_map(|l| l.strip_prefix("oom_kill "))
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// The file counting the session cgroup's OOM kills: cgroup v1's memory
    /// controller where the host has it, else v2's. Found once (init's
    /// cgroup does not change), read at each command.
    fn find_oom_file(&self) -> Option<String> {
        let pid = self.sup.init_pid();
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let v1 = cg
            .lines()
            .find_map(|l| l.split_once(":memory:").map(|(_, p)| p));
        match v1 {
            Some(path) => Some(format!("/sys/fs/cgroup/memory{path}/memory.oom_control")),
            None => cg
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .map(|path| format!("/sys/fs/cgroup{path}/memory.events")),
        }
    }

    /// Starts a process in the session.
    pub async fn spawn(&self, req: SpawnRequest) -> Result<Spawned, ToolError> {
        if self.ended().is_some() {
            return Err(self.gone());
        }
        self.sup.spawn(req).await.map_err(|e| match e {
            SpawnError::Gone => self.gone(),
            SpawnError::TooLarge(n) => ToolError::invalid(format!(
                "the command, its environment and directory take {n} bytes, more than a session \
                 command may ({} bytes); pass large data through stdin or a file",
                crate::sandbox::session_init::MAX_REQUEST_BYTES
            )),
            SpawnError::Failed { step, errno } => {
                let err = io::Error::from_raw_os_error(errno);
                let reason = if errno == libc::ENOENT || errno == libc::ENOTDIR {
                    Reason::NotFound
                } else {
                    Reason::Internal
                };
                ToolError::new(
                    reason,
                    format!("the session could not start the process ({step}: {err}); nothing ran"),
                )
            }
        })
    }

    fn gone(&self) -> ToolError {
        ToolError::new(
            Reason::NotFound,
            format!(
                "session {} has ended ({}); open a new one",
                self.id,
                self.ended().unwrap_or("failed")
            ),
        )
        .with("session_id", self.id.clone())
    }

    /// Takes a shell command's report as the session's new state, if it
    /// is whole and sound; otherwise the state stays as it was.
    fn apply_report(&self, report: &[u8]) {
        let Some(new) = parse_report(report, &self.spec.workspace.inside) else {
            tracing::debug!(session = %self.id, "a state report was incomplete or unsound");
            return;
        };
        self.lock().shell = new;
    }
}

/// Parses the wrapper's report: `cwd\0NAME=value\0...AJ-END\0`.
fn parse_report(report: &[u8], _workspace: &std::path::Path) -> Option<Shell> {
    let body = report.strip_suffix(b"AJ-END\0")?;
    let mut parts = body.split(|b| *b == 0);
    let cwd = std::str::from_utf8(parts.next()?).ok()?;
    if !cwd.starts_with('/') {
        return None;
    }
    let mut env = Vec::new();
    let mut bytes = 0;
    for part in parts {
        if part.is_empty() {
            continue;
        }
        let text = std::str::from_utf8(part).ok()?;
        let (name, value) = text.split_once('=')?;
        if name.is_empty() || NOT_CARRIED.contains(&name) {
            continue;
        }
        bytes += text.len();
        env.push((name.to_string(), value.to_string()));
    }
    if env.len() > crate::limits::MAX_ENV_ENTRIES.max || bytes > crate::limits::MAX_ENV_BYTES.max {
        return None;
    }
    Some(Shell {
        cwd: cwd.to_string(),
        env,
    })
}

/// The open sessions, by id.
#[derive(Default)]
pub struct Registry {
    map: Mutex<HashMap<String, Arc<Session>>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The agent's open session `id`; any other agent's, or none, is
    /// NOT_FOUND alike (an id tells nothing about another agent).
    pub fn get(&self, agent: &str, id: &str) -> Result<Arc<Session>, ToolError> {
        self.lock()
            .get(id)
            .filter(|s| s.agent == agent && s.ended().is_none())
            .cloned()
            .ok_or_else(|| {
                ToolError::new(
                    Reason::NotFound,
                    format!(
                        "no open session \"{id}\" for agent \"{agent}\"; OpenSession starts one, \
                         ListSessions shows yours"
                    ),
                )
                .with("session_id", id)
            })
    }

    pub fn insert(&self, s: Arc<Session>) {
        self.lock().insert(s.id.clone(), s);
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        self.lock().remove(id)
    }

    pub fn of_agent(&self, agent: &str) -> Vec<Arc<Session>> {
        let mut v: Vec<_> = self
            .lock()
            .values()
            .filter(|s| s.agent == agent && s.ended().is_none())
            .cloned()
            .collect();
        v.sort_by_key(|s| s.opened_at);
        v
    }

    pub fn all(&self) -> Vec<Arc<Session>> {
        self.lock().values().cloned().collect()
    }
}

/// A new session id: 128 random bits.
pub fn new_id() -> String {
    format!("s-{:032x}", rand::random::<u128>())
}

/// A command of a session run by `Run` or `Exec` (driven by
/// `shell::run::drive`).
pub struct Command {
    pub session: Arc<Session>,
    id: u64,
    pidfd: std::os::fd::OwnedFd,
    stdin: Option<File>,
    stdout: Option<File>,
    stderr: Option<File>,
    exit: watch::Receiver<Option<Exit>>,
    /// A shell command: its exit notice carries the new state.
    report: bool,
    started: Instant,
}

impl Command {
    /// Starts `argv` in `session`; a `shell` command runs in the wrapper,
    /// and its report becomes the session's state at its end.
    pub async fn start(
        session: Arc<Session>,
        program: String,
        argv: Vec<String>,
        shell: Option<String>,
        env: Vec<(String, String)>,
        cwd: String,
        stdin: bool,
    ) -> Result<Command, ToolError> {
        let started = Instant::now();
        let (argv, state_file) = match shell {
            Some(command) => {
                let file = format!("/tmp/.agentjail-state-{:016x}", rand::random::<u64>());
                let argv = vec![
                    program.clone(),
                    "-c".into(),
                    SHELL_WRAPPER.into(),
                    "agentjail-session".into(),
                    file.clone(),
                    command,
                ];
                (argv, Some(file))
            }
            None => (argv, None),
        };
        let report = state_file.is_some();
        let spawned = session
            .spawn(SpawnRequest {
                id: 0,
                program,
                argv,
                env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                cwd,
                stdin,
                tty: None,
                state_file,
            })
            .await?;
        let mut fds = spawned.fds.into_iter();
        let (Some(out), Some(err)) = (fds.next(), fds.next()) else {
            session.sup.signal(spawned.id, libc::SIGKILL);
            return Err(ToolError::internal(
                "the session's answer lacked the process's pipes",
            ));
        };
        let stdin = if stdin {
            fds.next().map(File::from)
        } else {
            None
        };
        Ok(Command {
            session,
            id: spawned.id,
            pidfd: spawned.pidfd,
            stdin,
            stdout: Some(out.into()),
            stderr: Some(err.into()),
            exit: spawned.exit,
            report,
            started,
        })
    }

    pub fn take_stdio(&mut self) -> (Option<File>, Option<File>, Option<File>) {
        (self.stdin.take(), self.stdout.take(), self.stderr.take())
    }

    /// Its pid as the daemon sees it (0 once unknowable).
    pub fn host_pid(&self) -> u32 {
        supervisor::host_pid_of(&self.pidfd).unwrap_or(0)
    }

    /// Kills the command's process group (the session lives on).
    pub fn kill_tree(&self) {
        self.session.sup.signal(self.id, libc::SIGKILL);
    }

    pub fn exit_watch(&self) -> watch::Receiver<Option<Exit>> {
        self.exit.clone()
    }

    /// Waits for the exit notice, takes a shell command's new state.
    pub async fn finish(self) -> io::Result<ExitInfo> {
        let mut rx = self.exit.clone();
        let exit = match rx.wait_for(Option::is_some).await {
            Ok(e) => e.clone().unwrap_or_else(Exit::lost),
            Err(_) => Exit::lost(),
        };
        let wall = self.started.elapsed();
        if self.report
            && let Some(state) = &exit.state
        {
            self.session.apply_report(state);
        }
        let mut info = exit_info(&exit, wall);
        info.oom_killed = matches!(info.termination, Termination::Signaled(libc::SIGKILL))
            && self.session.new_oom_kill();
        Ok(info)
    }
}

/// An exit notice as the command's `ExitInfo` (the session's cgroup is
/// shared by all its processes, so no per-command cgroup figures).
pub fn exit_info(exit: &Exit, wall: Duration) -> ExitInfo {
    let termination = match exit.status {
        Some(s) if libc::WIFEXITED(s) => Termination::Exited(libc::WEXITSTATUS(s)),
        Some(s) if libc::WIFSIGNALED(s) => Termination::Signaled(libc::WTERMSIG(s)),
        _ => Termination::Signaled(libc::SIGKILL),
    };
    ExitInfo {
        termination,
        wall,
        user_cpu: Duration::from_micros(exit.user_us),
        system_cpu: Duration::from_micros(exit.system_us),
        max_rss_bytes: exit.max_rss_kb * 1024,
        cgroup: Default::default(),
        oom_killed: false,
        timings: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_report_becomes_the_state_and_a_cut_one_does_not() {
        let r = b"/workspace/src\0FOO=bar\0PWD=/x\0SHLVL=1\0AJ-END\0";
        let s = parse_report(r, std::path::Path::new("/workspace")).unwrap();
        assert_eq!(s.cwd, "/workspace/src");
        assert_eq!(s.env, vec![("FOO".into(), "bar".into())]);
        assert!(parse_report(b"/workspace\0FOO=bar\0", std::path::Path::new("/w")).is_none());
    }
}
