//! The `agentjail.v1.ToolSandbox` service: identify the caller, pick the
//! policy in force, run the tool off the async threads, answer with the rule
//! that allowed it or a status that says why not.

use super::caps::Kind;
use super::idempotency::{Call, Idempotent, Once, Stored};
use super::identity::{Caller, agent_for};
use super::record::{AuditArgs, AuditOutcome, EntryStart};
use super::state::State;
use crate::audit;
use crate::cancel::Stop;
use crate::error::{Reason, ToolError, ToolResult};
use crate::fs::{self, Outcome};
use crate::policy::{AgentPolicy, Limits, WorkspacePolicy};
use crate::proto::tool_sandbox_server::ToolSandbox;
use crate::proto::*;
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct ToolService {
    state: Arc<State>,
}

impl ToolService {
    pub fn new(state: Arc<State>) -> Self {
        ToolService { state }
    }

    pub(super) fn state(&self) -> &State {
        &self.state
    }
}

/// A request that names a workspace.
pub trait WorkspaceRequest: Send + Sync + 'static {
    fn workspace(&self) -> &str;
    /// A short description for the log line.
    fn target(&self) -> String;
    /// Whether the call may change the workspace (it gets an intent record).
    fn mutates(&self) -> bool;
}

/// A response that carries `CallInfo`.
pub trait WithInfo {
    fn set_info(&mut self, info: CallInfo);
}

macro_rules! file_messages {
    ($($req:ty => $resp:ty, |$r:ident| $target:expr, mutates: $mutates:expr;)*) => {$(
        impl WorkspaceRequest for $req {
            fn workspace(&self) -> &str { &self.workspace }
            fn target(&self) -> String { let $r = self; $target }
            fn mutates(&self) -> bool { let $r = self; let _ = $r; $mutates }
        }
        impl WithInfo for $resp {
            fn set_info(&mut self, info: CallInfo) { self.info = Some(info); }
        }
    )*};
}

file_messages! {
    ReadFileRequest => ReadFileResponse, |r| r.path.clone(), mutates: false;
    WriteFileRequest => WriteFileResponse, |r| r.path.clone(), mutates: true;
    EditFileRequest => EditFileResponse, |r| r.path.clone(), mutates: !r.dry_run;
    ListDirRequest => ListDirResponse, |r| r.path.clone(), mutates: false;
    GlobRequest => GlobResponse, |r| format!("{} in {:?}", r.pattern, r.path), mutates: false;
    GrepRequest => GrepResponse, |r| format!("{:?} in {:?}", r.pattern, r.path), mutates: false;
    StatRequest => StatResponse, |r| r.path.clone(), mutates: false;
    MakeDirRequest => MakeDirResponse, |r| r.path.clone(), mutates: true;
    MoveRequest => MoveResponse, |r| format!("{} -> {}", r.from, r.to), mutates: true;
    RemoveRequest => RemoveResponse, |r| r.path.clone(), mutates: true;
}

macro_rules! idempotent {
    (keyed: $($keyed:ty),*; plain: $($plain:ty),*) => {
        $(impl Idempotent for $keyed {
            fn idempotency_key(&self) -> &str { &self.idempotency_key }
        })*
        $(impl Idempotent for $plain {})*
    };
}

idempotent! {
    keyed: WriteFileRequest, EditFileRequest, MakeDirRequest, MoveRequest, RemoveRequest;
    plain: ReadFileRequest, ListDirRequest, GlobRequest, GrepRequest, StatRequest
}

/// What a file call counts against its agent's `budgets.write_bytes`: the
/// bytes a WriteFile writes and the text an EditFile inserts. MakeDir,
/// Move and Remove write no content and are not counted.
pub trait Budgeted<Resp> {
    /// Bytes that must fit in the budget before the call runs (known up
    /// front for WriteFile; EditFile's inserted text at least once).
    fn write_need(&self) -> Option<u64> {
        None
    }
    /// Bytes the call wrote, from its answer.
    fn written(&self, _response: &Resp) -> u64 {
        0
    }

    fn check_budget(
        &self,
        budgets: &super::budget::Budgets,
        agent: &AgentPolicy,
    ) -> Result<(), ToolError> {
        match self.write_need() {
            Some(bytes) => budgets.check_write(agent, bytes),
            None => Ok(()),
        }
    }
}

impl Budgeted<WriteFileResponse> for WriteFileRequest {
    fn write_need(&self) -> Option<u64> {
        Some(self.content.len() as u64)
    }
    fn written(&self, response: &WriteFileResponse) -> u64 {
        response.bytes_written
    }
}

impl Budgeted<EditFileResponse> for EditFileRequest {
    fn write_need(&self) -> Option<u64> {
        (!self.dry_run).then(|| self.edits.iter().map(|e| e.new.len() as u64).sum())
    }
    fn written(&self, response: &EditFileResponse) -> u64 {
        if !response.applied {
            return 0;
        }
        self.edits
            .iter()
            .zip(&response.replacements)
            .map(|(e, n)| e.new.len() as u64 * u64::from(*n))
            .sum()
    }
}

macro_rules! not_budgeted {
    ($($req:ty => $resp:ty),*) => { $(impl Budgeted<$resp> for $req {})* };
}

not_budgeted! {
    ReadFileRequest => ReadFileResponse, ListDirRequest => ListDirResponse,
    GlobRequest => GlobResponse, GrepRequest => GrepResponse, StatRequest => StatResponse,
    MakeDirRequest => MakeDirResponse, MoveRequest => MoveResponse,
    RemoveRequest => RemoveResponse
}

/// Determinism mode for the file tools: listings are in name order
/// already (ListDir's default, Grep's walk); Glob's default order is
/// newest first, which depends on when files were written, so a
/// deterministic agent's Glob without an order is in name order.
pub trait Deterministic {
    fn make_deterministic(&mut self) {}
}

impl Deterministic for GlobRequest {
    fn make_deterministic(&mut self) {
        if self.sort == SortOrder::Unspecified as i32 {
            self.sort = SortOrder::Name as i32;
        }
    }
}

macro_rules! already_deterministic {
    ($($req:ty),*) => { $(impl Deterministic for $req {})* };
}

already_deterministic! {
    ReadFileRequest, WriteFileRequest, EditFileRequest, ListDirRequest, GrepRequest,
    StatRequest, MakeDirRequest, MoveRequest, RemoveRequest
}

type FileTool<Req, Resp> = fn(&WorkspacePolicy, &Limits, &Req) -> ToolResult<Outcome<Resp>>;

impl ToolService {
    /// Runs one file tool for the caller of `request`, and audits it. The
    /// work runs on its own task: a client that cancels or whose deadline
    /// passes still gets its record (see `call`).
    async fn file_call<Req, Resp>(
        &self,
        method: &'static str,
        request: Request<Req>,
        tool: FileTool<Req, Resp>,
    ) -> Result<Response<Resp>, Status>
    where
        Req: WorkspaceRequest
            + AuditArgs
            + super::bounds::WithinLimits
            + Idempotent
            + Budgeted<Resp>
            + Deterministic
            + prost::Message,
        Resp: WithInfo + AuditOutcome + prost::Message + Default + Send + 'static,
    {
        let service = self.clone();
        let deadline = super::call::deadline(&request);
        super::call::detached(self.state.tasks(), deadline, move |stop| async move {
            service.file_work(method, request, tool, stop).await
        })
        .await
    }

    async fn file_work<Req, Resp>(
        &self,
        method: &'static str,
        request: Request<Req>,
        tool: FileTool<Req, Resp>,
        stop: Stop,
    ) -> Result<Response<Resp>, Status>
    where
        Req: WorkspaceRequest
            + AuditArgs
            + super::bounds::WithinLimits
            + Idempotent
            + Budgeted<Resp>
            + Deterministic
            + prost::Message,
        Resp: WithInfo + AuditOutcome + prost::Message + Default + Send + 'static,
    {
        let started = Instant::now();
        let _in_flight = crate::metrics::InFlight::start();
        let request_id = self.state.next_request_id();
        let caller = Caller::from_request(&request);
        let req = request.into_inner();
        // The policy is taken once: the call finishes under it even if a
        // reload swaps in another meanwhile.
        let policy = self.state.policy();
        let entry = EntryStart::new(
            &request_id,
            caller.as_ref().ok(),
            method,
            &req,
            &policy.redactor,
            &policy.version,
        );
        let agent = caller.and_then(|c| agent_for(&c, &policy, &self.state));
        let mut intent = None;
        // The role and the rate limit are checked before any work.
        let result = match &agent {
            Ok(agent) => match agent
                .tools
                .check(&agent.name, method)
                .and_then(|()| self.state.limiters.check(agent, method))
            {
                Ok(()) => {
                    let mut req = req;
                    if agent.deterministic {
                        req.make_deterministic();
                    }
                    self.run_once(agent, req, tool, &entry, &mut intent, &stop)
                        .await
                }
                Err(refused) => Err(refused),
            },
            Err(e) => Err(e.clone()),
        };
        let agent_name = agent.as_ref().ok().map(|a| a.name.clone());
        let elapsed_us = started.elapsed().as_micros() as u64;
        // The client may have gone while the tool ran: the work is done,
        // and the record says the answer went nowhere.
        let gone = stop.reason();
        match result {
            Ok(Outcome { mut response, rule }) => {
                let mut outcome = audit::Outcome {
                    status: "OK".into(),
                    duration_us: elapsed_us,
                    ..Default::default()
                };
                response.audit_outcome(&mut outcome);
                if let Some(reason) = gone {
                    outcome.status = super::record::code_name(reason.code()).into();
                    outcome.reason = Some(reason.as_str().into());
                    outcome.message = Some(
                        "the client went away (or its deadline passed) as the call ended: the \
                         work was done, the answer was not delivered"
                            .into(),
                    );
                }
                let agent_name = agent_name.unwrap_or_default();
                let mut record = entry.allowed(&agent_name, &rule, outcome);
                record.intent = intent;
                let audit_seq = self.audited(record, &request_id).await?;
                response.set_info(CallInfo {
                    request_id: request_id.clone(),
                    agent: agent_name,
                    rule: rule.to_string(),
                    audit_seq,
                    policy_version: policy.version.clone(),
                });
                let mut response = Response::new(response);
                insert_request_id(response.metadata_mut(), &request_id);
                Ok(response)
            }
            Err(err) => {
                let mut record =
                    entry.refused(agent_name.as_deref(), &err, elapsed_us, &policy.redactor);
                record.intent = intent;
                let seq = self.audited(record, &request_id).await?;
                Err(refusal_status(&err, &request_id, seq))
            }
        }
    }

    /// Runs the tool, or, for a retry with the same idempotency key and
    /// request, answers the first success again without running it.
    async fn run_once<Req, Resp>(
        &self,
        agent: &Arc<AgentPolicy>,
        req: Req,
        tool: FileTool<Req, Resp>,
        entry: &EntryStart,
        intent: &mut Option<u64>,
        stop: &Stop,
    ) -> ToolResult<Outcome<Resp>>
    where
        Req: WorkspaceRequest
            + super::bounds::WithinLimits
            + Idempotent
            + Budgeted<Resp>
            + prost::Message,
        Resp: prost::Message + Default + Send + 'static,
    {
        let call = Call::new(&agent.name, entry.method, &req);
        let once = self.state.idempotency.once(
            call,
            || self.run_tool(agent, req, tool, entry, intent, stop),
            |outcome: &Outcome<Resp>| {
                Some(Stored {
                    response: outcome.response.encode_to_vec(),
                    request_id: entry.request_id.clone(),
                    rule: outcome.rule.to_string(),
                })
            },
        );
        match once.await? {
            Once::Ran(outcome) => outcome,
            Once::Replayed(response, first) => {
                Ok(Outcome::new(response, Arc::from(first.replay_rule())))
            }
        }
    }

    /// Admits the call (within the limits, the agent under its cap, the
    /// audit log writable), makes its intent durable if it may change the
    /// workspace, and runs the tool off the async threads with `stop` in
    /// force. A panic in the tool (or a library under it) is caught here.
    async fn run_tool<Req, Resp>(
        &self,
        agent: &Arc<AgentPolicy>,
        req: Req,
        tool: FileTool<Req, Resp>,
        entry: &EntryStart,
        intent: &mut Option<u64>,
        stop: &Stop,
    ) -> ToolResult<Outcome<Resp>>
    where
        Req: WorkspaceRequest + super::bounds::WithinLimits + Budgeted<Resp>,
        Resp: Send + 'static,
    {
        req.within_limits()?;
        let index = workspace_index(agent, req.workspace())?;
        let _slot = self.state.caps.admit(
            &agent.name,
            Kind::FileCall,
            agent.quota.concurrent_file_calls,
        )?;
        req.check_budget(&self.state.budgets, agent)?;
        self.state.audit.admit().await?;
        if req.mutates() {
            let seq = self
                .state
                .audit
                .intent(entry.intent(&agent.name, ""))
                .await?;
            *intent = (seq > 0).then_some(seq);
        }
        if let Some(reason) = stop.reason() {
            return Err(crate::cancel::stopped_before_work(reason));
        }
        let worker = agent.clone();
        let stop = stop.clone();
        let (req, outcome) = tokio::task::spawn_blocking(move || {
            crate::cancel::with_stop(stop, || {
                let ws = &worker.workspaces[index];
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    tool(ws, &worker.limits, &req)
                }))
                .unwrap_or_else(|panic| Err(tool_panicked(panic)));
                (req, outcome)
            })
        })
        .await
        .map_err(|_| {
            ToolError::internal("the tool failed unexpectedly; the daemon is still serving")
        })?;
        let outcome = outcome?;
        let written = req.written(&outcome.response);
        self.state
            .budgets
            .charge(agent, super::budget::Kind::WriteBytes, written);
        Ok(outcome)
    }

    /// Writes a call's record; the call may answer only once it is durable.
    pub(super) async fn audited(
        &self,
        entry: audit::Entry,
        request_id: &str,
    ) -> Result<u64, Status> {
        let started = Instant::now();
        let (method, decision) = (entry.method, entry.decision);
        let agent = entry.agent.clone().unwrap_or_default();
        let work = std::time::Duration::from_micros(entry.outcome.duration_us);
        let appended = self.state.audit.append(entry).await;
        crate::metrics::call_finished(method, &agent, decision, work + started.elapsed());
        match appended {
            Ok(seq) => Ok(seq.unwrap_or(0)),
            Err(e) => {
                let mut status = e.to_status();
                insert_request_id(status.metadata_mut(), request_id);
                Err(status)
            }
        }
    }
}

/// The error for a tool that panicked: the panic's text goes to the
/// daemon's log (cut short: it may quote a huge input), not to the caller.
fn tool_panicked(panic: Box<dyn std::any::Any + Send>) -> ToolError {
    let text = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(
        panic = %crate::limits::clip(text, 1024),
        "a file tool panicked; the call is refused and the daemon goes on"
    );
    ToolError::internal(
        "the tool failed unexpectedly on this input and did nothing more; the daemon is still \
         serving. Simplify the request (a shorter pattern or path) and retry",
    )
}

/// A refusal's status, carrying the request id and its audit record's
/// sequence number (`agentjail-audit-seq`), so it can be joined to the log.
pub(super) fn refusal_status(err: &ToolError, request_id: &str, audit_seq: u64) -> Status {
    let mut status = err.to_status();
    insert_request_id(status.metadata_mut(), request_id);
    if audit_seq > 0 {
        if let Ok(value) = audit_seq.to_string().parse() {
            status.metadata_mut().insert("agentjail-audit-seq", value);
        }
    }
    status
}

fn insert_request_id(metadata: &mut tonic::metadata::MetadataMap, request_id: &str) {
    if let Ok(value) = request_id.parse() {
        metadata.insert("agentjail-request-id", value);
    }
}

pub(super) fn workspace_index(agent: &AgentPolicy, name: &str) -> Result<usize, ToolError> {
    let found = if name.is_empty() {
        (!agent.workspaces.is_empty()).then_some(0)
    } else {
        agent.workspaces.iter().position(|w| w.name == name)
    };
    found.ok_or_else(|| {
        let known: Vec<&str> = agent.workspaces.iter().map(|w| w.name.as_str()).collect();
        ToolError::new(
            Reason::UnknownWorkspace,
            format!(
                "agent \"{}\" has no workspace \"{name}\"; use one of {known:?} or leave it empty for the first",
                agent.name
            ),
        )
        .with("workspace", name)
    })
}

#[tonic::async_trait]
impl ToolSandbox for ToolService {
    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIResponse>, Status> {
        let started = Instant::now();
        let request_id = self.state.next_request_id();
        let policy = self.state.policy();
        let caller = Caller::from_request(&request);
        let entry = EntryStart::new(
            &request_id,
            caller.as_ref().ok(),
            "WhoAmI",
            request.get_ref(),
            &policy.redactor,
            &policy.version,
        );
        let found =
            caller.and_then(|c| agent_for(&c, &policy, &self.state).map(|agent| (c, agent)));
        let (caller, agent) = match found {
            Ok(found) => found,
            Err(e) => {
                let elapsed_us = started.elapsed().as_micros() as u64;
                let record = entry.refused(None, &e, elapsed_us, &policy.redactor);
                let seq = self.audited(record, &request_id).await?;
                return Err(refusal_status(&e, &request_id, seq));
            }
        };
        let identified_by = caller.identified_by();
        let (uid, gid, pid) = match caller {
            Caller::Unix { uid, gid, pid } => (uid, gid, pid.unwrap_or(0) as u32),
            Caller::TcpInsecure { .. } | Caller::Tls { .. } => (0, 0, 0),
        };
        let rule = format!("{}: identified by {identified_by}", agent.name);
        let outcome = audit::Outcome {
            status: "OK".into(),
            duration_us: started.elapsed().as_micros() as u64,
            ..Default::default()
        };
        let audit_seq = self
            .audited(entry.allowed(&agent.name, &rule, outcome), &request_id)
            .await?;
        Ok(Response::new(WhoAmIResponse {
            agent: agent.name.clone(),
            identified_by: identified_by.into(),
            uid,
            gid,
            pid,
            workspaces: super::discovery::workspaces(&agent),
            capabilities: Some(super::discovery::capabilities(&agent, &self.state.caps)),
            usage: Some(super::discovery::usage(
                &agent,
                &self.state.caps,
                &self.state.budgets,
            )),
            info: Some(CallInfo {
                request_id,
                agent: agent.name.clone(),
                rule,
                audit_seq,
                policy_version: policy.version.clone(),
            }),
        }))
    }

    async fn read_file(
        &self,
        r: Request<ReadFileRequest>,
    ) -> Result<Response<ReadFileResponse>, Status> {
        self.file_call("ReadFile", r, fs::read_file).await
    }

    async fn write_file(
        &self,
        r: Request<WriteFileRequest>,
    ) -> Result<Response<WriteFileResponse>, Status> {
        self.file_call("WriteFile", r, fs::write_file).await
    }

    async fn edit_file(
        &self,
        r: Request<EditFileRequest>,
    ) -> Result<Response<EditFileResponse>, Status> {
        self.file_call("EditFile", r, fs::edit_file).await
    }

    async fn list_dir(
        &self,
        r: Request<ListDirRequest>,
    ) -> Result<Response<ListDirResponse>, Status> {
        self.file_call("ListDir", r, fs::list_dir).await
    }

    async fn glob(&self, r: Request<GlobRequest>) -> Result<Response<GlobResponse>, Status> {
        self.file_call("Glob", r, fs::glob).await
    }

    async fn grep(&self, r: Request<GrepRequest>) -> Result<Response<GrepResponse>, Status> {
        self.file_call("Grep", r, fs::grep).await
    }

    async fn stat(&self, r: Request<StatRequest>) -> Result<Response<StatResponse>, Status> {
        self.file_call("Stat", r, fs::stat).await
    }

    async fn make_dir(
        &self,
        r: Request<MakeDirRequest>,
    ) -> Result<Response<MakeDirResponse>, Status> {
        self.file_call("MakeDir", r, fs::make_dir).await
    }

    async fn r#move(&self, r: Request<MoveRequest>) -> Result<Response<MoveResponse>, Status> {
        self.file_call("Move", r, fs::move_path).await
    }

    async fn remove(&self, r: Request<RemoveRequest>) -> Result<Response<RemoveResponse>, Status> {
        self.file_call("Remove", r, fs::remove).await
    }

    type ExecStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<ExecEvent, Status>> + Send>>;

    async fn exec(&self, r: Request<ExecRequest>) -> Result<Response<Self::ExecStream>, Status> {
        let events = self.exec_call(r).await?;
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(events),
        )))
    }

    async fn run(&self, r: Request<ExecRequest>) -> Result<Response<ExecResult>, Status> {
        Ok(Response::new(self.run_call(r).await?))
    }
    async fn open_session(
        &self,
        r: Request<OpenSessionRequest>,
    ) -> Result<Response<OpenSessionResponse>, Status> {
        self.open_session_call(r).await
    }

    async fn close_session(
        &self,
        r: Request<CloseSessionRequest>,
    ) -> Result<Response<CloseSessionResponse>, Status> {
        self.close_session_call(r).await
    }

    async fn list_sessions(
        &self,
        r: Request<ListSessionsRequest>,
    ) -> Result<Response<ListSessionsResponse>, Status> {
        self.list_sessions_call(r).await
    }

    async fn start_process(
        &self,
        r: Request<StartProcessRequest>,
    ) -> Result<Response<StartProcessResponse>, Status> {
        self.start_process_call(r).await
    }

    async fn read_output(
        &self,
        r: Request<ReadOutputRequest>,
    ) -> Result<Response<ReadOutputResponse>, Status> {
        self.read_output_call(r).await
    }

    async fn write_stdin(
        &self,
        r: Request<WriteStdinRequest>,
    ) -> Result<Response<WriteStdinResponse>, Status> {
        self.write_stdin_call(r).await
    }

    async fn signal_process(
        &self,
        r: Request<SignalProcessRequest>,
    ) -> Result<Response<SignalProcessResponse>, Status> {
        self.signal_process_call(r).await
    }

    async fn wait_process(
        &self,
        r: Request<WaitProcessRequest>,
    ) -> Result<Response<WaitProcessResponse>, Status> {
        self.wait_process_call(r).await
    }

    async fn list_processes(
        &self,
        r: Request<ListProcessesRequest>,
    ) -> Result<Response<ListProcessesResponse>, Status> {
        self.list_processes_call(r).await
    }

    async fn resize_terminal(
        &self,
        r: Request<ResizeTerminalRequest>,
    ) -> Result<Response<ResizeTerminalResponse>, Status> {
        self.resize_terminal_call(r).await
    }

    async fn open_port(
        &self,
        r: Request<OpenPortRequest>,
    ) -> Result<Response<OpenPortResponse>, Status> {
        self.open_port_call(r).await
    }
}
