//! The session calls (issue 13): open, close and list sessions; commands
//! in a session (`Run`/`Exec` with `session_id`, from `shell.rs`);
//! background processes; ports. Every call is identified, checked against
//! the agent's role (sessions run commands: they need `Run`) and audited;
//! a session's end (closed, idle, lifetime, shutdown, failed) and each
//! background process's exit get a record of their own.

use super::bounds::WithinLimits;
use super::caps::Kind;
use super::identity::{Caller, agent_for};
use super::record::{AuditArgs, EntryStart, argv as argv_arg, text};
use super::service::{ToolService, WithInfo, refusal_status, workspace_index};
use crate::audit::{self, Enforced, Redactor};
use crate::cancel::Stop;
use crate::error::{Reason, ToolError};
use crate::policy::AgentPolicy;
use crate::proto::*;
use crate::sandbox::Stdin;
use crate::session::process::Process;
use crate::session::{self, Command, Session};
use crate::shell::{self, Prepared, WORKSPACE_MOUNT};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::OwnedSemaphorePermit;
use tonic::{Request, Response, Status};

use crate::limits::{
    DEFAULT_PROCESS_BUFFER_BYTES, DEFAULT_READ_OUTPUT_BYTES, MAX_PROCESS_BUFFER_BYTES,
    MAX_READ_OUTPUT_BYTES, MAX_SESSION_WAIT_MS,
};

/// A session id in the audit record: kept whole when it has the daemon's
/// own form, else as any other text argument (redacted, bounded).
pub(super) fn session_arg(a: &mut Map<String, Value>, id: &str, red: &Redactor) -> bool {
    if id.is_empty() {
        return false;
    }
    let ours =
        id.len() == 34 && id.starts_with("s-") && id[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if ours {
        a.insert("session_id".into(), json!(id));
        false
    } else {
        text(a, "session_id", id, red)
    }
}

macro_rules! session_args {
    ($($req:ty => |$r:ident, $red:ident, $a:ident| $body:block)*) => {$(
        impl AuditArgs for $req {
            fn audit_args(&self, $red: &Redactor, $a: &mut Map<String, Value>) -> bool {
                let $r = self;
                $body
            }
        }
    )*};
}

session_args! {
    OpenSessionRequest => |r, red, a| {
        let mut names: Vec<&String> = r.env.keys().collect();
        names.sort();
        if !names.is_empty() {
            a.insert("env_names".into(), json!(names.iter().take(64).collect::<Vec<_>>()));
        }
        if let Some(l) = &r.limits {
            a.insert("limits".into(), json!({"memory_bytes": l.memory_bytes, "pids": l.pids}));
        }
        if r.idle_timeout_ms > 0 {
            a.insert("idle_timeout_ms".into(), json!(r.idle_timeout_ms));
        }
        if r.max_lifetime_ms > 0 {
            a.insert("max_lifetime_ms".into(), json!(r.max_lifetime_ms));
        }
        text(a, "workspace", &r.workspace, red) | text(a, "cwd", &r.cwd, red)
    }
    CloseSessionRequest => |r, red, a| { session_arg(a, &r.session_id, red) }
    ListSessionsRequest => |_r, _red, _a| { false }
    StartProcessRequest => |r, red, a| {
        let mut hit = session_arg(a, &r.session_id, red);
        if !r.argv.is_empty() {
            hit |= argv_arg(a, &r.argv, red);
        }
        hit |= text(a, "shell", &r.shell, red);
        hit |= text(a, "cwd", &r.cwd, red);
        let mut names: Vec<&String> = r.env.keys().collect();
        names.sort();
        if !names.is_empty() {
            a.insert("env_names".into(), json!(names.iter().take(64).collect::<Vec<_>>()));
        }
        if r.tty {
            a.insert("tty".into(), json!({"rows": r.rows, "cols": r.cols}));
        }
        hit
    }
    ReadOutputRequest => |r, red, a| {
        a.insert("process_id".into(), json!(crate::limits::clip(&r.process_id, 64)));
        a.insert("offset".into(), json!(r.offset));
        session_arg(a, &r.session_id, red)
    }
    WriteStdinRequest => |r, red, a| {
        // Size and hash, never content.
        a.insert("process_id".into(), json!(crate::limits::clip(&r.process_id, 64)));
        a.insert("stdin_bytes".into(), json!(r.data.len()));
        a.insert("stdin_sha256".into(), json!(hex::encode(Sha256::digest(&r.data))));
        if r.close {
            a.insert("close".into(), json!(true));
        }
        session_arg(a, &r.session_id, red)
    }
    SignalProcessRequest => |r, red, a| {
        a.insert("process_id".into(), json!(crate::limits::clip(&r.process_id, 64)));
        a.insert("signal".into(), json!(r.signal));
        session_arg(a, &r.session_id, red)
    }
    WaitProcessRequest => |r, red, a| {
        a.insert("process_id".into(), json!(crate::limits::clip(&r.process_id, 64)));
        session_arg(a, &r.session_id, red)
    }
    ListProcessesRequest => |r, red, a| { session_arg(a, &r.session_id, red) }
    ResizeTerminalRequest => |r, red, a| {
        a.insert("process_id".into(), json!(crate::limits::clip(&r.process_id, 64)));
        a.insert("rows".into(), json!(r.rows));
        a.insert("cols".into(), json!(r.cols));
        session_arg(a, &r.session_id, red)
    }
    OpenPortRequest => |r, red, a| {
        a.insert("port".into(), json!(r.port));
        session_arg(a, &r.session_id, red)
    }
}

/// What a session's own events (its end, a process's exit) are recorded
/// about.
struct EventArgs<'a> {
    session_id: &'a str,
    process_id: Option<&'a str>,
}

impl AuditArgs for EventArgs<'_> {
    fn audit_args(&self, red: &Redactor, a: &mut Map<String, Value>) -> bool {
        if let Some(p) = self.process_id {
            a.insert("process_id".into(), json!(p));
        }
        session_arg(a, self.session_id, red)
    }
}

macro_rules! with_info {
    ($($resp:ty),*) => {$(
        impl WithInfo for $resp {
            fn set_info(&mut self, info: CallInfo) { self.info = Some(info); }
        }
    )*};
}

/// The session a response names when its request could not (OpenSession),
/// so its record carries the id like every later one.
trait Opened {
    fn opened(&self) -> Option<&str> {
        None
    }
}

impl Opened for OpenSessionResponse {
    fn opened(&self) -> Option<&str> {
        self.session.as_ref().map(|s| s.session_id.as_str())
    }
}

macro_rules! not_opened {
    ($($resp:ty),*) => {$( impl Opened for $resp {} )*};
}

not_opened!(
    CloseSessionResponse,
    ListSessionsResponse,
    StartProcessResponse,
    ReadOutputResponse,
    WriteStdinResponse,
    SignalProcessResponse,
    WaitProcessResponse,
    ListProcessesResponse,
    ResizeTerminalResponse,
    OpenPortResponse
);

with_info!(
    OpenSessionResponse,
    CloseSessionResponse,
    ListSessionsResponse,
    StartProcessResponse,
    ReadOutputResponse,
    WriteStdinResponse,
    SignalProcessResponse,
    WaitProcessResponse,
    ListProcessesResponse,
    ResizeTerminalResponse,
    OpenPortResponse
);

/// The rule a session call is allowed by (the agent's shell table).
fn session_rule(agent: &AgentPolicy) -> String {
    format!("{}: shell (sessions)", agent.name)
}

fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

fn rel_cwd(inside: &str) -> String {
    match inside.strip_prefix(WORKSPACE_MOUNT) {
        Some("") => String::new(),
        Some(rest) if rest.starts_with('/') => rest[1..].to_string(),
        _ => inside.to_string(),
    }
}

fn info_of(s: &Session) -> SessionInfo {
    SessionInfo {
        session_id: s.id.clone(),
        workspace: s.workspace.clone(),
        cwd: rel_cwd(&s.shell().cwd),
        opened_at: Some(timestamp(s.opened_at)),
        last_used_at: Some(timestamp(s.last_used())),
        expires_at: Some(timestamp(s.expires_at)),
        idle_timeout_ms: s.idle_timeout.as_millis() as u64,
        running_processes: s.running_processes() as u32,
        limits: Some(SessionLimits {
            memory_bytes: s.memory_bytes,
            pids: s.pids,
        }),
        ended: s.ended().unwrap_or("").to_string(),
    }
}

fn exited_of(p: &Process) -> Option<ExecExited> {
    let exit = p.exit()?;
    let info = session::exit_info(&exit, p.wall());
    let (exit_code, signal) = match info.termination {
        crate::sandbox::Termination::Exited(c) => (Some(c), None),
        crate::sandbox::Termination::Signaled(s) => (None, Some(s)),
    };
    let (out, _) = p.stdout.counts();
    let (err, _) = p.stderr.counts();
    Some(ExecExited {
        exit_code,
        signal,
        wall_time_ms: info.wall.as_millis() as u64,
        cpu_time_ms: (info.user_cpu + info.system_cpu).as_millis() as u64,
        peak_memory_bytes: info.max_rss_bytes,
        stdout_bytes: out,
        stderr_bytes: err,
        ..Default::default()
    })
}

fn process_info(p: &Process) -> ProcessInfo {
    let (out, out_lost) = p.stdout.counts();
    let (err, err_lost) = p.stderr.counts();
    ProcessInfo {
        process_id: p.id.clone(),
        argv: p.argv.clone(),
        pid: p.host_pid,
        tty: p.tty,
        running: p.running(),
        exited: exited_of(p),
        started_at: Some(timestamp(p.started_at)),
        stdout_bytes: out,
        stderr_bytes: err,
        stdout_lost_bytes: out_lost,
        stderr_lost_bytes: err_lost,
    }
}

/// A requested duration within the policy's: 0 takes the policy's own.
fn capped(requested: u64, policy: u64, what: &str) -> Result<Duration, ToolError> {
    if requested > policy {
        return Err(ToolError::invalid(format!(
            "{what} of {requested} ms is above the policy's {policy} ms; ask for at most that, or \
             0 for it"
        ))
        .with("limit", what.to_string()));
    }
    Ok(Duration::from_millis(if requested == 0 {
        policy
    } else {
        requested
    }))
}

type Work<Resp> = Result<(Resp, audit::Outcome), ToolError>;

impl ToolService {
    /// Identifies the caller, checks its role, runs `work`, audits it.
    async fn session_call<Req, Resp, F, Fut>(
        &self,
        method: &'static str,
        request: Request<Req>,
        work: F,
    ) -> Result<Response<Resp>, Status>
    where
        Req: AuditArgs + WithinLimits,
        Resp: WithInfo + Opened,
        F: FnOnce(ToolService, Arc<AgentPolicy>, Req, Option<(u32, u32)>) -> Fut,
        Fut: std::future::Future<Output = Work<Resp>>,
    {
        let started = Instant::now();
        let request_id = self.state().next_request_id();
        let caller = Caller::from_request(&request);
        let peer = match &caller {
            Ok(Caller::Unix { uid, gid, .. }) => Some((*uid, *gid)),
            _ => None,
        };
        let req = request.into_inner();
        let policy = self.state().policy();
        let entry = EntryStart::new(
            &request_id,
            caller.as_ref().ok(),
            method,
            &req,
            &policy.redactor,
            &policy.version,
        );
        let agent = caller.and_then(|c| agent_for(&c, &policy, self.state()));
        let agent_name = agent.as_ref().ok().map(|a| a.name.clone());
        let result = match agent {
            Ok(agent) => match agent
                .tools
                .check(&agent.name, "Run")
                .and_then(|()| self.state().limiters.check(&agent, method))
                .and_then(|()| req.within_limits())
            {
                Ok(()) => {
                    let rule = session_rule(&agent);
                    work(self.clone(), agent, req, peer)
                        .await
                        .map(|r| (r, rule))
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let elapsed_us = started.elapsed().as_micros() as u64;
        match result {
            Ok(((mut resp, mut outcome), rule)) => {
                outcome.status = "OK".into();
                outcome.duration_us = elapsed_us;
                let name = agent_name.unwrap_or_default();
                let mut entry = entry;
                if let Some(id) = resp.opened() {
                    entry.args.insert("session_id".into(), json!(id));
                }
                let record = entry.allowed(&name, &rule, outcome);
                let audit_seq = self.audited(record, &request_id).await?;
                resp.set_info(CallInfo {
                    request_id,
                    agent: name,
                    rule,
                    audit_seq,
                    policy_version: policy.version.clone(),
                });
                Ok(Response::new(resp))
            }
            Err(err) => {
                let record =
                    entry.refused(agent_name.as_deref(), &err, elapsed_us, &policy.redactor);
                let seq = self.audited(record, &request_id).await?;
                Err(refusal_status(&err, &request_id, seq))
            }
        }
    }

    /// Records one of a session's own events.
    async fn session_event(
        &self,
        method: &'static str,
        session: &Session,
        process_id: Option<&str>,
        outcome: audit::Outcome,
    ) {
        let policy = self.state().policy();
        let request_id = self.state().next_request_id();
        let args = EventArgs {
            session_id: &session.id,
            process_id,
        };
        let entry = EntryStart::new(
            &request_id,
            None,
            method,
            &args,
            &policy.redactor,
            &policy.version,
        );
        let record = entry.allowed(&session.agent, "session", outcome);
        let _ = self.audited(record, &request_id).await;
    }

    fn session(&self, agent: &AgentPolicy, id: &str) -> Result<Arc<Session>, ToolError> {
        let s = self.state().sessions.get(&agent.name, id)?;
        s.touch();
        Ok(s)
    }

    async fn open_session_work(
        self,
        agent: Arc<AgentPolicy>,
        req: OpenSessionRequest,
    ) -> Work<OpenSessionResponse> {
        let shell_policy = shell::shell_policy(&agent)?;
        let rules = agent.sessions;
        if !rules.allowed {
            return Err(ToolError::denied(
                &format!("{}: sessions.allowed = false", agent.name),
                format!(
                    "agent \"{}\" may not open sessions (its [agents.sessions] allowed = false); \
                     run commands one by one with Run or Exec",
                    agent.name
                ),
            ));
        }
        let index = workspace_index(&agent, &req.workspace)?;
        let open = self.state().sessions.of_agent(&agent.name).len();
        if open >= rules.max_sessions {
            return Err(ToolError::new(
                Reason::TooManyConcurrentCalls,
                format!(
                    "agent \"{}\" has {open} sessions open, the most it may; close one first \
                     (ListSessions shows them)",
                    agent.name
                ),
            )
            .with("limit", "max_sessions")
            .with("max_sessions", rules.max_sessions.to_string()));
        }
        let limits = req.limits.unwrap_or_default();
        let policy_limits = &shell_policy.limits;
        let over = |asked: u64, max: u64, what: &str| -> Result<u64, ToolError> {
            match asked {
                0 => Ok(max),
                n if n > max => Err(ToolError::invalid(format!(
                    "limits.{what} = {n} is above the policy's {max}; ask for at most that"
                ))
                .with("limit", what.to_string())),
                n => Ok(n),
            }
        };
        let memory = over(
            limits.memory_bytes,
            policy_limits.memory_bytes,
            "memory_bytes",
        )?;
        let pids = over(limits.pids, policy_limits.pids, "pids")?;
        let idle = capped(
            req.idle_timeout_ms,
            rules.idle_timeout.as_millis() as u64,
            "idle_timeout_ms",
        )?;
        let lifetime = capped(
            req.max_lifetime_ms,
            rules.max_lifetime.as_millis() as u64,
            "max_lifetime_ms",
        )?;
        let ws = &agent.workspaces[index];
        let cwd_rel = crate::fs::resolve_dir(ws, &req.cwd)?;
        // A deterministic agent's session is deterministic throughout (its
        // environment and umask are fixed at open).
        let fixed = shell::determinism(&agent, false);
        let env = shell::env::build(
            shell_policy,
            WORKSPACE_MOUNT,
            &req.env,
            fixed.source_date_epoch,
        )?;
        let cwd = shell::inside(&cwd_rel);
        let (mut spec, _git_sweep) = shell::sandbox_spec(
            &agent,
            index,
            Vec::new(),
            env.clone(),
            cwd.clone(),
            Stdin::Null,
        )?;
        spec.session = true;
        spec.umask = fixed.umask;
        spec.limits.memory_bytes = Some(memory);
        spec.limits.pids = Some(pids);
        let launcher = self.state().launcher.as_ref().ok_or_else(|| {
            ToolError::new(
                Reason::Unavailable,
                "this daemon cannot sandbox commands on this host (see `agentjail doctor`)",
            )
        })?;
        self.state().audit.admit().await?;
        let child = launcher
            .spawn(spec.clone(), None)
            .await
            .map_err(super::shell::launch_error)?;
        let sup = session::supervisor::Supervisor::new(child)
            .map_err(|e| ToolError::internal(format!("the session did not start: {e}")))?;
        let session = Arc::new(Session::new(
            session::new_id(),
            agent.name.clone(),
            ws.name.clone(),
            index,
            spec,
            session::Shell {
                cwd: cwd.to_string_lossy().into_owned(),
                env,
            },
            lifetime,
            idle,
            rules.max_processes,
            sup,
        ));
        self.state().sessions.insert(session.clone());
        self.watch_session(session.clone());
        tracing::info!(session = %session.id, agent = %agent.name, "session opened");
        let outcome = audit::Outcome {
            message: Some(format!("opened session {}", session.id)),
            ..Default::default()
        };
        Ok((
            OpenSessionResponse {
                session: Some(info_of(&session)),
                info: None,
            },
            outcome,
        ))
    }

    /// Ends the session at its idle timeout, its lifetime, the daemon's
    /// stop, or when its sandbox goes; records how it ended.
    fn watch_session(&self, session: Arc<Session>) {
        let service = self.clone();
        let stopping = self.state().stopping.clone();
        self.state().calls.spawn(async move {
            let why = loop {
                let wake = session.deadline.min(session.idle_deadline());
                tokio::select! {
                    _ = tokio::time::sleep_until(wake.into()) => {
                        let now = Instant::now();
                        if now >= session.deadline {
                            break "lifetime";
                        }
                        if now >= session.idle_deadline() {
                            break "idle";
                        }
                    }
                    _ = session.sup.gone.cancelled() => break "failed",
                    _ = stopping.cancelled() => break "shutdown",
                }
            };
            let first = session.end(why);
            service.state().sessions.remove(&session.id);
            // A session closed by CloseSession has that call's record.
            if first {
                tracing::info!(session = %session.id, why, "session ended");
                let outcome = audit::Outcome {
                    reason: Some(why.to_uppercase()),
                    message: Some(format!("session {} ended: {why}", session.id)),
                    ..Default::default()
                };
                service
                    .session_event("SessionEnded", &session, None, ok(outcome))
                    .await;
            }
        });
    }

    async fn close_session_work(
        self,
        agent: Arc<AgentPolicy>,
        req: CloseSessionRequest,
    ) -> Work<CloseSessionResponse> {
        let session = self.state().sessions.get(&agent.name, &req.session_id)?;
        session.end("closed");
        self.state().sessions.remove(&session.id);
        let outcome = audit::Outcome {
            reason: Some("CLOSED".into()),
            message: Some(format!("session {} closed", session.id)),
            ..Default::default()
        };
        Ok((
            CloseSessionResponse {
                session: Some(info_of(&session)),
                info: None,
            },
            outcome,
        ))
    }

    /// A `Run`/`Exec` with a session id: decided like any command, started
    /// by the session's supervisor in its directory and environment.
    pub(super) async fn session_command(
        &self,
        agent: &Arc<AgentPolicy>,
        req: &ExecRequest,
        deadline: Option<Duration>,
        entry: &EntryStart,
        intent: &mut Option<u64>,
        stop: &Stop,
    ) -> Result<
        (
            Prepared,
            Enforced,
            crate::shell::run::Running,
            OwnedSemaphorePermit,
        ),
        ToolError,
    > {
        let session = self.session(agent, &req.session_id)?;
        let shell_policy = shell::shell_policy(agent)?;
        let ws = &agent.workspaces[session.workspace_index];
        let state = session.shell();
        let cwd_of = |rel: &str| -> Result<String, ToolError> {
            if rel.is_empty() {
                Ok(state.cwd.clone())
            } else {
                Ok(shell::inside(&crate::fs::resolve_dir(ws, rel)?)
                    .to_string_lossy()
                    .into_owned())
            }
        };
        let allowed = shell::allowed_command(shell_policy, req, || {
            let session_rel = rel_cwd(&state.cwd);
            crate::fs::resolve_dir(
                ws,
                if req.cwd.is_empty() {
                    &session_rel
                } else {
                    &req.cwd
                },
            )
        })?;
        shell::check_stdin(req)?;
        let cwd = cwd_of(&req.cwd)?;
        // The request's variables (checked against the policy) over the
        // session's.
        shell::env::build(shell_policy, WORKSPACE_MOUNT, &req.env, None)?;
        let mut env = state.env.clone();
        for (k, v) in &req.env {
            env.retain(|(name, _)| name != k);
            env.push((k.clone(), v.clone()));
        }
        let is_shell = !req.shell.is_empty();
        let program = if is_shell {
            allowed.argv[0].clone()
        } else {
            session.resolve_program(&allowed.argv, &env)?
        };
        let slot =
            self.state()
                .caps
                .admit(&agent.name, Kind::Command, agent.quota.concurrent_commands)?;
        self.state().audit.admit().await?;
        let seq = self
            .state()
            .audit
            .intent(entry.intent(&agent.name, &allowed.rule))
            .await?;
        *intent = (seq > 0).then_some(seq);
        if let Some(reason) = stop.reason() {
            return Err(crate::cancel::stopped_before_work(reason));
        }
        let command = Command::start(
            session.clone(),
            program,
            allowed.argv.clone(),
            is_shell.then(|| req.shell.clone()),
            env,
            cwd.clone(),
            !req.stdin.is_empty(),
        )
        .await?;
        let enforced = session_enforced(self, &session);
        let prepared = Prepared {
            stdin: req.stdin.clone(),
            deadlines: shell::deadlines(shell_policy, req, deadline),
            rule: allowed.rule,
            argv: allowed.argv,
            cwd: rel_cwd(&cwd),
            git_sweep: None,
        };
        Ok((
            prepared,
            enforced,
            crate::shell::run::Running::Session(command),
            slot,
        ))
    }

    /// A StartProcess with an idempotency key starts its process once: a
    /// retry with the same key and request answers the first start again
    /// (the record says so); another request under the key is refused.
    async fn start_process_keyed(
        self,
        agent: Arc<AgentPolicy>,
        req: StartProcessRequest,
    ) -> Work<StartProcessResponse> {
        use super::idempotency::{Call, Once, Stored};
        use prost::Message;
        let call = Call::new(&agent.name, "StartProcess", &req);
        let once = self.state().idempotency.once(
            call,
            || self.clone().start_process_work(agent, req),
            |(response, _): &(StartProcessResponse, audit::Outcome)| {
                let started = response
                    .process
                    .as_ref()
                    .map_or_else(String::new, |p| p.process_id.clone());
                Some(Stored {
                    response: response.encode_to_vec(),
                    request_id: format!("process {started}"),
                    rule: String::new(),
                })
            },
        );
        match once.await? {
            Once::Ran(done) => done,
            Once::Replayed(response, first) => {
                let outcome = audit::Outcome {
                    message: Some(format!(
                        "idempotent replay of the start of {}",
                        first.request_id
                    )),
                    ..Default::default()
                };
                Ok((response, outcome))
            }
        }
    }

    async fn start_process_work(
        self,
        agent: Arc<AgentPolicy>,
        req: StartProcessRequest,
    ) -> Work<StartProcessResponse> {
        let session = self.session(&agent, &req.session_id)?;
        let shell_policy = shell::shell_policy(&agent)?;
        let ws = &agent.workspaces[session.workspace_index];
        let state = session.shell();
        // Decided as a command of the same argv/shell would be.
        let as_exec = ExecRequest {
            argv: req.argv.clone(),
            shell: req.shell.clone(),
            cwd: req.cwd.clone(),
            env: req.env.clone(),
            ..Default::default()
        };
        let allowed = shell::allowed_command(shell_policy, &as_exec, || {
            let session_rel = rel_cwd(&state.cwd);
            crate::fs::resolve_dir(
                ws,
                if req.cwd.is_empty() {
                    &session_rel
                } else {
                    &req.cwd
                },
            )
        })?;
        let cwd = if req.cwd.is_empty() {
            state.cwd.clone()
        } else {
            shell::inside(&crate::fs::resolve_dir(ws, &req.cwd)?)
                .to_string_lossy()
                .into_owned()
        };
        shell::env::build(shell_policy, WORKSPACE_MOUNT, &req.env, None)?;
        let mut env = state.env.clone();
        for (k, v) in &req.env {
            env.retain(|(name, _)| name != k);
            env.push((k.clone(), v.clone()));
        }
        let tty = req.tty.then(|| {
            let rows = if req.rows == 0 {
                24
            } else {
                req.rows.min(1000)
            } as u16;
            let cols = if req.cols == 0 {
                80
            } else {
                req.cols.min(1000)
            } as u16;
            (rows, cols)
        });
        if tty.is_some() && !env.iter().any(|(k, v)| k == "TERM" && v != "dumb") {
            env.retain(|(k, _)| k != "TERM");
            env.push(("TERM".into(), "xterm".into()));
        }
        let program = if req.shell.is_empty() {
            session.resolve_program(&allowed.argv, &env)?
        } else {
            allowed.argv[0].clone()
        };
        let buffer = match req.output_buffer_bytes {
            0 => DEFAULT_PROCESS_BUFFER_BYTES,
            n => (n as usize).min(MAX_PROCESS_BUFFER_BYTES),
        };
        let id = session.next_process_id()?;
        let spawned = session
            .spawn(crate::sandbox::session_init::SpawnRequest {
                id: 0,
                program,
                argv: allowed.argv.clone(),
                env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                cwd,
                stdin: true,
                tty,
                state_file: None,
            })
            .await?;
        let process = Arc::new(
            Process::start(
                id.clone(),
                allowed.argv.clone(),
                tty.is_some(),
                spawned,
                session.sup.clone(),
                buffer,
            )
            .map_err(|e| ToolError::internal(format!("lost the process's descriptors: {e}")))?,
        );
        session.add_process(process.clone());
        self.watch_process(session.clone(), process.clone());
        let outcome = audit::Outcome {
            message: Some(format!("started process {id} (pid {})", process.host_pid)),
            ..Default::default()
        };
        Ok((
            StartProcessResponse {
                process: Some(process_info(&process)),
                info: None,
            },
            outcome,
        ))
    }

    /// Records a background process's exit.
    fn watch_process(&self, session: Arc<Session>, process: Arc<Process>) {
        let service = self.clone();
        self.state().calls.spawn(async move {
            let exit = process.wait(Duration::MAX).await;
            let Some(exit) = exit else { return };
            let info = session::exit_info(&exit, process.wall());
            let (exit_code, signal) = match info.termination {
                crate::sandbox::Termination::Exited(c) => (Some(c), None),
                crate::sandbox::Termination::Signaled(s) => (None, Some(s)),
            };
            let (out, _) = process.stdout.counts();
            let (err, _) = process.stderr.counts();
            let outcome = audit::Outcome {
                exit_code,
                signal,
                duration_us: info.wall.as_micros() as u64,
                cpu_ms: Some((info.user_cpu + info.system_cpu).as_millis() as u64),
                message: Some(format!(
                    "process {} ended; {out} bytes of stdout, {err} of stderr",
                    process.id
                )),
                ..Default::default()
            };
            service
                .session_event("ProcessExited", &session, Some(&process.id), ok(outcome))
                .await;
        });
    }
}

fn ok(mut o: audit::Outcome) -> audit::Outcome {
    o.status = "OK".into();
    o
}

fn session_enforced(service: &ToolService, s: &Session) -> Enforced {
    Enforced {
        namespaces: if s.spec.network {
            "pid,mount,ipc,uts"
        } else {
            "pid,mount,ipc,uts,net"
        },
        landlock_abi: service.state().landlock_abi,
        seccomp: true,
        network: s.spec.network,
        uid: s.spec.uid,
        gid: s.spec.gid,
        pooled: false,
    }
}

/// The gRPC handlers (called from `service.rs`).
impl ToolService {
    pub(super) async fn open_session_call(
        &self,
        r: Request<OpenSessionRequest>,
    ) -> Result<Response<OpenSessionResponse>, Status> {
        self.session_call("OpenSession", r, |s, a, req, _| s.open_session_work(a, req))
            .await
    }

    pub(super) async fn close_session_call(
        &self,
        r: Request<CloseSessionRequest>,
    ) -> Result<Response<CloseSessionResponse>, Status> {
        self.session_call("CloseSession", r, |s, a, req, _| {
            s.close_session_work(a, req)
        })
        .await
    }

    pub(super) async fn list_sessions_call(
        &self,
        r: Request<ListSessionsRequest>,
    ) -> Result<Response<ListSessionsResponse>, Status> {
        self.session_call("ListSessions", r, |s, a, _req, _| async move {
            let sessions = s.state().sessions.of_agent(&a.name);
            Ok((
                ListSessionsResponse {
                    sessions: sessions.iter().map(|x| info_of(x)).collect(),
                    info: None,
                },
                audit::Outcome::default(),
            ))
        })
        .await
    }

    pub(super) async fn start_process_call(
        &self,
        r: Request<StartProcessRequest>,
    ) -> Result<Response<StartProcessResponse>, Status> {
        self.session_call("StartProcess", r, |s, a, req, _| {
            s.start_process_keyed(a, req)
        })
        .await
    }

    pub(super) async fn read_output_call(
        &self,
        r: Request<ReadOutputRequest>,
    ) -> Result<Response<ReadOutputResponse>, Status> {
        self.session_call("ReadOutput", r, |s, a, req, _| async move {
            let session = s.session(&a, &req.session_id)?;
            let p = session.process(&req.process_id)?;
            let stream = match req.stream() {
                OutputStream::Stdout => &p.stdout,
                OutputStream::Stderr => &p.stderr,
            };
            let max = match req.max_bytes {
                0 => DEFAULT_READ_OUTPUT_BYTES,
                n => (n as usize).min(MAX_READ_OUTPUT_BYTES),
            };
            let wait = Duration::from_millis(req.wait_ms.min(MAX_SESSION_WAIT_MS));
            let chunk = stream.read_wait(req.offset, max, wait).await;
            let outcome = audit::Outcome {
                bytes: Some(chunk.data.len() as u64),
                ..Default::default()
            };
            let next = chunk.offset + chunk.data.len() as u64;
            Ok((
                ReadOutputResponse {
                    data: chunk.data,
                    offset: chunk.offset,
                    next_offset: next,
                    lost_bytes: chunk.lost,
                    eof: chunk.eof,
                    process: Some(process_info(&p)),
                    info: None,
                },
                outcome,
            ))
        })
        .await
    }

    pub(super) async fn write_stdin_call(
        &self,
        r: Request<WriteStdinRequest>,
    ) -> Result<Response<WriteStdinResponse>, Status> {
        self.session_call("WriteStdin", r, |s, a, req, _| async move {
            if req.data.len() > shell::MAX_STDIN_BYTES {
                return Err(ToolError::new(
                    Reason::TooLarge,
                    format!(
                        "at most {} bytes per write; split the data",
                        shell::MAX_STDIN_BYTES
                    ),
                ));
            }
            let session = s.session(&a, &req.session_id)?;
            let p = session.process(&req.process_id)?;
            let written = p.write_stdin(&req.data, req.close).await.map_err(|e| {
                ToolError::new(
                    Reason::NotFound,
                    format!(
                        "cannot write to process {}'s stdin ({e}); it has closed it or ended",
                        p.id
                    ),
                )
            })?;
            Ok((
                WriteStdinResponse {
                    written: written as u64,
                    info: None,
                },
                audit::Outcome {
                    bytes: Some(written as u64),
                    ..Default::default()
                },
            ))
        })
        .await
    }

    pub(super) async fn signal_process_call(
        &self,
        r: Request<SignalProcessRequest>,
    ) -> Result<Response<SignalProcessResponse>, Status> {
        self.session_call("SignalProcess", r, |s, a, req, _| async move {
            let session = s.session(&a, &req.session_id)?;
            let p = session.process(&req.process_id)?;
            let signal = if req.signal == 0 {
                libc::SIGTERM
            } else {
                req.signal
            };
            if !(1..=64).contains(&signal) {
                return Err(ToolError::invalid(format!(
                    "signal {signal} is not a signal number (1-64; 0 = SIGTERM)"
                )));
            }
            p.signal(signal);
            // Give a prompt exit a moment to show in the answer.
            p.wait(Duration::from_millis(100)).await;
            Ok((
                SignalProcessResponse {
                    process: Some(process_info(&p)),
                    info: None,
                },
                audit::Outcome {
                    signal: Some(signal),
                    ..Default::default()
                },
            ))
        })
        .await
    }

    pub(super) async fn wait_process_call(
        &self,
        r: Request<WaitProcessRequest>,
    ) -> Result<Response<WaitProcessResponse>, Status> {
        self.session_call("WaitProcess", r, |s, a, req, _| async move {
            let session = s.session(&a, &req.session_id)?;
            let p = session.process(&req.process_id)?;
            p.wait(Duration::from_millis(
                req.timeout_ms.min(MAX_SESSION_WAIT_MS),
            ))
            .await;
            Ok((
                WaitProcessResponse {
                    process: Some(process_info(&p)),
                    info: None,
                },
                audit::Outcome::default(),
            ))
        })
        .await
    }

    pub(super) async fn list_processes_call(
        &self,
        r: Request<ListProcessesRequest>,
    ) -> Result<Response<ListProcessesResponse>, Status> {
        self.session_call("ListProcesses", r, |s, a, req, _| async move {
            let session = s.session(&a, &req.session_id)?;
            let processes = session
                .processes()
                .iter()
                .map(|p| process_info(p))
                .collect();
            Ok((
                ListProcessesResponse {
                    processes,
                    info: None,
                },
                audit::Outcome::default(),
            ))
        })
        .await
    }

    pub(super) async fn resize_terminal_call(
        &self,
        r: Request<ResizeTerminalRequest>,
    ) -> Result<Response<ResizeTerminalResponse>, Status> {
        self.session_call("ResizeTerminal", r, |s, a, req, _| async move {
            let session = s.session(&a, &req.session_id)?;
            let p = session.process(&req.process_id)?;
            if req.rows == 0 || req.cols == 0 || req.rows > 1000 || req.cols > 1000 {
                return Err(ToolError::invalid("rows and cols must be 1-1000"));
            }
            p.resize(req.rows as u16, req.cols as u16)
                .map_err(|e| ToolError::invalid(format!("cannot resize: {e}")))?;
            Ok((
                ResizeTerminalResponse { info: None },
                audit::Outcome::default(),
            ))
        })
        .await
    }
}

impl ToolService {
    pub(super) async fn open_port_call(
        &self,
        r: Request<OpenPortRequest>,
    ) -> Result<Response<OpenPortResponse>, Status> {
        self.session_call("OpenPort", r, |s, a, req, peer| async move {
            let session = s.session(&a, &req.session_id)?;
            let port = u16::try_from(req.port)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    ToolError::invalid(format!("port {} is not a TCP port (1-65535)", req.port))
                })?;
            let Some((uid, gid)) = peer else {
                return Err(ToolError::new(
                    Reason::InvalidArgument,
                    "OpenPort makes a Unix socket for a local caller's uid; call it over the \
                     daemon's Unix socket",
                ));
            };
            let path = session::ports::open(session, port, uid, gid).map_err(|e| {
                ToolError::internal(format!("could not make the port's socket: {e}"))
            })?;
            let path = path.to_string_lossy().into_owned();
            Ok((
                OpenPortResponse {
                    socket_path: path.clone(),
                    info: None,
                },
                audit::Outcome {
                    resolved_path: Some(path),
                    ..Default::default()
                },
            ))
        })
        .await
    }
}
