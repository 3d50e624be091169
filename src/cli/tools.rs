//! `agentjail tools`: the MCP server's tool definitions as JSON for function
//! calling (OpenAI, Anthropic or MCP's own shape), from the same table.

use crate::config::default_socket_path;
use crate::mcp::daemon::Daemon;
use crate::mcp::grants::Grants;
use crate::mcp::tools::definitions;
use crate::policy::load_dir;
use clap::{Args, ValueEnum};
use rmcp::model::Tool;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// Chat Completions `tools`: [{"type": "function", "function": {…}}].
    Openai,
    /// Messages API `tools`: [{"name", "description", "input_schema"}].
    Anthropic,
    /// MCP `tools/list` result: {"tools": […]}, with annotations.
    Mcp,
}

#[derive(Args)]
pub struct ToolsArgs {
    #[arg(long, value_enum, default_value = "mcp")]
    format: Format,
    /// Describe the tools for this agent of a policy directory, offline.
    /// Without it the daemon is asked who the caller is (WhoAmI).
    #[arg(long)]
    agent: Option<String>,
    /// Policy directory for --agent (default: /etc/agentjail/policies).
    #[arg(long, requires = "agent")]
    policy_dir: Option<PathBuf>,
    /// Daemon socket, without --agent.
    #[arg(long, env = "AGENTJAIL_SOCKET", conflicts_with = "agent")]
    socket: Option<PathBuf>,
}

pub fn run(args: ToolsArgs) -> ExitCode {
    let grants = match &args.agent {
        Some(agent) => from_policy(agent, args.policy_dir.clone()),
        None => from_daemon(args.socket.clone().unwrap_or_else(default_socket_path)),
    };
    let grants = match grants {
        Ok(g) => g,
        Err(e) => {
            eprintln!("agentjail tools: {e}");
            return ExitCode::from(2);
        }
    };
    let doc = render(&definitions(&grants), args.format);
    println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    ExitCode::SUCCESS
}

fn from_policy(agent: &str, dir: Option<PathBuf>) -> Result<Grants, String> {
    let dir = super::policy::policy_dir(dir.as_deref());
    let policy = load_dir(&dir, &super::policy::tool_options()).map_err(|e| {
        let first = e
            .diagnostics
            .first()
            .map(|d| d.to_string())
            .unwrap_or_default();
        format!(
            "{}: the policy does not load ({first}); `agentjail policy check` shows every error",
            dir.display()
        )
    })?;
    let found = policy.agents.get(agent).ok_or_else(|| {
        let mut names: Vec<&str> = policy.agents.keys().map(String::as_str).collect();
        names.sort();
        format!(
            "{}: no agent {agent:?}; its agents are: {}",
            dir.display(),
            names.join(", ")
        )
    })?;
    Ok(Grants::from_policy(found))
}

fn from_daemon(socket: PathBuf) -> Result<Grants, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime
        .block_on(Daemon::connect(&socket))
        .map(|(_, grants)| grants)
        .map_err(|e| format!("{e:#}; or describe a policy's agent offline with --agent NAME"))
}

fn render(tools: &[Tool], format: Format) -> Value {
    match format {
        Format::Mcp => json!({ "tools": tools }),
        Format::Openai => tools
            .iter()
            .map(|t| {
                json!({
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.input_schema,
                    }
                })
            })
            .collect(),
        Format::Anthropic => tools
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "description": t.description,
                    "input_schema": t.input_schema,
                })
            })
            .collect(),
    }
}
