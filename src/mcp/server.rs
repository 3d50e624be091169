//! The MCP handler: lists the tools the agent's grants allow and runs calls
//! through the daemon. One handler per MCP session (stdio: the process).

use super::calls;
use super::daemon::Daemon;
use super::grants::Grants;
use super::render;
use super::terminals::Terminals;
use super::tools;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use std::sync::{Arc, RwLock};

const INSTRUCTIONS: &str = "File and shell tools run by the agentjail daemon under this agent's \
policy. Paths are relative to the default workspace, /workspace/… (as commands see it), or host \
paths under a workspace root (list_allowed_directories). A refusal comes back as an error result \
naming the reason, the rule and what to do instead. exec_command, write_stdin and the process \
tools run in one sandbox that lasts for this conversation: files, background processes and \
terminals stay between calls.";

#[derive(Clone)]
pub struct AgentjailMcp {
    daemon: Daemon,
    /// As of the last tools/list (or the start): maps paths and decides
    /// what a call may offer. The daemon still decides each call.
    grants: Arc<RwLock<Grants>>,
    /// The daemon sessions the session tools use: one set per MCP session.
    terminals: Terminals,
}

impl AgentjailMcp {
    pub fn new(daemon: Daemon, grants: Grants) -> AgentjailMcp {
        AgentjailMcp {
            terminals: Terminals::new(daemon.clone()),
            daemon,
            grants: Arc::new(RwLock::new(grants)),
        }
    }

    /// The handler for a new MCP session: the same daemon and grants, its
    /// own daemon sessions.
    pub fn for_new_session(&self) -> AgentjailMcp {
        AgentjailMcp {
            terminals: Terminals::new(self.daemon.clone()),
            ..self.clone()
        }
    }

    pub fn terminals(&self) -> Terminals {
        self.terminals.clone()
    }

    fn grants(&self) -> Grants {
        self.grants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The grants as the daemon states them now, kept for the calls.
    async fn refresh(&self) -> Result<Grants, tonic::Status> {
        let fresh = self.daemon.grants().await?;
        *self.grants.write().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
        Ok(fresh)
    }

    pub fn tools(&self) -> Vec<Tool> {
        tools::definitions(&self.grants())
    }
}

impl ServerHandler for AgentjailMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("agentjail", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let grants = match self.refresh().await {
            Ok(g) => g,
            // The daemon is away: list what was granted last, and let each
            // call report the daemon's absence as a tool error.
            Err(e) => {
                tracing::warn!("WhoAmI for tools/list failed: {}", e.message());
                self.grants()
            }
        };
        Ok(ListToolsResult::with_all_items(tools::definitions(&grants)))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let Some(kind) = tools::kind_of(&request.name) else {
            return Ok(render::usage(format!(
                "there is no tool {:?}: call tools/list for the tools this agent has",
                request.name
            ))
            .into());
        };
        let grants = self.grants();
        if tools::runs_commands(kind) && !grants.may_run_commands() {
            return Ok(render::error(format!(
                "POLICY_DENIED: agent {} may run no commands (its policy has no [agents.shell] \
                 table); use the file tools, or ask for a shell grant",
                grants.agent
            ))
            .into());
        }
        // A cancelled request drops the daemon call, which ends the command
        // (the daemon kills a command whose caller went away).
        let call = calls::call(
            &self.daemon,
            &grants,
            &self.terminals,
            kind,
            request.arguments,
        );
        tokio::select! {
            result = call => Ok(result.into()),
            _ = context.ct.cancelled() => Ok(render::error("cancelled by the client".into()).into()),
        }
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools().into_iter().find(|t| t.name == name)
    }
}
