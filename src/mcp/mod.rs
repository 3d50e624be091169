//! `agentjail mcp`: an MCP server (the official Rust SDK, `rmcp`) that an
//! MCP client starts as the agent's own user. It is a plain client of the
//! daemon's socket, so the daemon identifies the agent and decides every
//! call; this layer only shapes tools, paths and answers for models.
//!
//! - `grants`: what the agent may do (from WhoAmI or a policy file);
//! - `tools`: the tool definitions, shared with `agentjail tools`;
//! - `paths`: the path forms agents give, mapped to the daemon's;
//! - `calls`: one tool call against the daemon; `render`: its answer;
//! - `terminals`: the daemon sessions and processes of one MCP session;
//! - `daemon`: the socket connection; `server`: the MCP handler;
//! - `transport`: stdio and loopback streamable HTTP.

pub mod calls;
pub mod daemon;
pub mod grants;
pub mod paths;
pub mod render;
pub mod server;
pub mod terminals;
pub mod tools;
pub mod transport;
