//! What the agent may do, as far as the MCP layer needs to know: its
//! workspaces and whether (and which) commands it may run. The tool list and
//! descriptions are built from this, never from guesses.
//!
//! Two sources: the daemon's `WhoAmI` answer (what `agentjail mcp` uses: the
//! daemon decides who the caller is), and a policy file's agent (what
//! `agentjail tools --agent NAME` uses offline). A daemon whose `WhoAmI`
//! carries no `capabilities` (an older build) leaves commands
//! [`Commands::Unstated`].

use crate::policy::compile::AgentPolicy;
use crate::proto::WhoAmIResponse;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
pub struct Grants {
    pub agent: String,
    /// In the policy's order: the first is the default workspace.
    pub workspaces: Vec<Workspace>,
    pub commands: Commands,
    /// Whether the agent may open sessions (`[agents.sessions] allowed`);
    /// WhoAmI does not say, so from the daemon it is true and the daemon
    /// refuses each call of an agent without them.
    pub sessions: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    pub name: String,
    /// The workspace root on the host.
    pub path: PathBuf,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Commands {
    /// The source does not say (an older daemon's `WhoAmI`): `run_command` is offered
    /// and the daemon decides each call, naming the rule when it refuses.
    Unstated,
    /// The agent may run no command: no `run_command` tool.
    None,
    /// The agent may run these programs; `shell` allows command strings.
    Allowed {
        programs: Vec<String>,
        shell: bool,
        network: bool,
    },
}

impl Grants {
    pub fn from_who_am_i(who: &WhoAmIResponse) -> Grants {
        Grants {
            agent: who.agent.clone(),
            workspaces: who
                .workspaces
                .iter()
                .map(|w| Workspace {
                    name: w.name.clone(),
                    path: PathBuf::from(&w.path),
                    read_only: w.read_only,
                })
                .collect(),
            commands: match who.capabilities.as_ref().and_then(|c| c.commands.as_ref()) {
                None => Commands::Unstated,
                Some(c) if !c.allowed => Commands::None,
                Some(c) => Commands::Allowed {
                    programs: c.programs.iter().map(|p| p.program.clone()).collect(),
                    shell: c.shell,
                    network: c.network,
                },
            },
            sessions: true,
        }
    }

    pub fn from_policy(agent: &AgentPolicy) -> Grants {
        Grants {
            agent: agent.name.clone(),
            workspaces: agent
                .workspace_rules
                .iter()
                .map(|w| Workspace {
                    name: w.name.clone(),
                    path: w.path.clone(),
                    read_only: w.read_only,
                })
                .collect(),
            commands: match &agent.shell {
                None => Commands::None,
                Some(shell) => Commands::Allowed {
                    programs: shell.commands.iter().map(|c| c.program.clone()).collect(),
                    shell: shell.allow_shell,
                    network: shell.network,
                },
            },
            sessions: agent.sessions.allowed,
        }
    }

    /// Whether `run_command` is offered at all.
    pub fn may_run_commands(&self) -> bool {
        self.commands != Commands::None
    }

    /// Whether `run_command` takes a command string (else argv only).
    pub fn may_use_a_shell(&self) -> bool {
        match &self.commands {
            Commands::Unstated => true,
            Commands::None => false,
            Commands::Allowed { shell, .. } => *shell,
        }
    }

    pub fn any_writable(&self) -> bool {
        self.workspaces.iter().any(|w| !w.read_only)
    }
}
