//! The `agentjail.v1.ToolSandbox` service: identify the caller, pick the
//! policy in force, run the tool off the async threads, answer with the rule
//! that allowed it or a status that says why not.

use super::identity::{Caller, agent_for};
use super::state::State;
use crate::error::{Reason, ToolError, ToolResult};
use crate::fs::{self, Outcome};
use crate::policy::{AgentPolicy, Limits, WorkspacePolicy};
use crate::proto::tool_sandbox_server::ToolSandbox;
use crate::proto::*;
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Response, Status};

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
}

/// A response that carries `CallInfo`.
pub trait WithInfo {
    fn set_info(&mut self, info: CallInfo);
}

macro_rules! file_messages {
    ($($req:ty => $resp:ty, |$r:ident| $target:expr;)*) => {$(
        impl WorkspaceRequest for $req {
            fn workspace(&self) -> &str { &self.workspace }
            fn target(&self) -> String { let $r = self; $target }
        }
        impl WithInfo for $resp {
            fn set_info(&mut self, info: CallInfo) { self.info = Some(info); }
        }
    )*};
}

file_messages! {
    ReadFileRequest => ReadFileResponse, |r| r.path.clone();
    WriteFileRequest => WriteFileResponse, |r| r.path.clone();
    EditFileRequest => EditFileResponse, |r| r.path.clone();
    ListDirRequest => ListDirResponse, |r| r.path.clone();
    GlobRequest => GlobResponse, |r| format!("{} in {:?}", r.pattern, r.path);
    GrepRequest => GrepResponse, |r| format!("{:?} in {:?}", r.pattern, r.path);
    StatRequest => StatResponse, |r| r.path.clone();
    MakeDirRequest => MakeDirResponse, |r| r.path.clone();
    MoveRequest => MoveResponse, |r| format!("{} -> {}", r.from, r.to);
    RemoveRequest => RemoveResponse, |r| r.path.clone();
}

type FileTool<Req, Resp> = fn(&WorkspacePolicy, &Limits, &Req) -> ToolResult<Outcome<Resp>>;

impl ToolService {
    /// Runs one file tool for the caller of `request`.
    async fn file_call<Req, Resp>(
        &self,
        method: &'static str,
        request: Request<Req>,
        tool: FileTool<Req, Resp>,
    ) -> Result<Response<Resp>, Status>
    where
        Req: WorkspaceRequest,
        Resp: WithInfo + Send + 'static,
    {
        let started = Instant::now();
        let request_id = self.state.next_request_id();
        let caller = Caller::from_request(&request);
        let req = request.into_inner();
        let target = req.target();
        // The policy is taken once: the call finishes under it even if a
        // reload swaps in another meanwhile.
        let policy = self.state.policy();
        let result = async {
            let caller = caller?;
            let agent = agent_for(&caller, &policy, self.state.tcp_agent())?;
            let index = workspace_index(&agent, req.workspace())?;
            let worker_agent = agent.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                let ws = &worker_agent.workspaces[index];
                tool(ws, &worker_agent.limits, &req)
            })
            .await
            .map_err(|e| ToolError::internal(format!("the tool failed unexpectedly: {e}")))??;
            Ok::<_, ToolError>((agent, outcome))
        }
        .await;
        let elapsed_us = started.elapsed().as_micros() as u64;
        match result {
            Ok((agent, Outcome { mut response, rule })) => {
                tracing::info!(
                    request_id = %request_id, method, agent = %agent.name, target = %target,
                    decision = "allow", rule = %rule, elapsed_us, "call"
                );
                response.set_info(CallInfo {
                    request_id: request_id.clone(),
                    agent: agent.name.clone(),
                    rule: rule.to_string(),
                    audit_seq: 0,
                    policy_version: policy.version.clone(),
                });
                let mut response = Response::new(response);
                insert_request_id(response.metadata_mut(), &request_id);
                Ok(response)
            }
            Err(err) => {
                tracing::info!(
                    request_id = %request_id, method, target = %target,
                    decision = if err.reason == Reason::PolicyDenied { "deny" } else { "error" },
                    reason = %err.reason, rule = err.metadata_value("rule").unwrap_or(""),
                    elapsed_us, "call refused: {}", err.message
                );
                let mut status = err.to_status();
                insert_request_id(status.metadata_mut(), &request_id);
                Err(status)
            }
        }
    }
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
        let request_id = self.state.next_request_id();
        let policy = self.state.policy();
        let caller = Caller::from_request(&request)?;
        let agent = agent_for(&caller, &policy, self.state.tcp_agent()).map_err(|e| {
            tracing::info!(request_id = %request_id, method = "WhoAmI", decision = "deny",
                reason = %e.reason, "call refused: {}", e.message);
            e.to_status()
        })?;
        let (identified_by, uid, gid, pid) = match caller {
            Caller::Unix { uid, gid, pid } => ("unix-peer", uid, gid, pid.unwrap_or(0) as u32),
            Caller::TcpInsecure { .. } => ("tcp-insecure", 0, 0, 0),
        };
        Ok(Response::new(WhoAmIResponse {
            agent: agent.name.clone(),
            identified_by: identified_by.into(),
            uid,
            gid,
            pid,
            workspaces: agent
                .workspaces
                .iter()
                .map(|w| WorkspaceInfo {
                    name: w.name.clone(),
                    path: w.path.display().to_string(),
                    read_only: w.read_only,
                })
                .collect(),
            info: Some(CallInfo {
                request_id,
                agent: agent.name.clone(),
                rule: format!("{}: identified by {identified_by}", agent.name),
                audit_seq: 0,
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
}
