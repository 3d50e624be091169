//! `agentjail mcp`: the MCP server, on stdio or loopback HTTP.

use crate::config::default_socket_path;
use crate::mcp::daemon::Daemon;
use crate::mcp::server::AgentjailMcp;
use crate::mcp::transport;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

#[derive(Args)]
pub struct McpArgs {
    /// Daemon socket (default: the daemon's default for this user).
    #[arg(long, env = "AGENTJAIL_SOCKET")]
    socket: Option<PathBuf>,
    /// Serve streamable HTTP on this loopback address (e.g. 127.0.0.1:8765)
    /// at /mcp, instead of stdio.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
}

pub fn run(args: McpArgs) -> ExitCode {
    // stdout is the protocol on stdio: logs go to stderr, quiet by default.
    let filter =
        EnvFilter::try_from_env("AGENTJAIL_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    if let Some(addr) = &args.http
        && let Err(e) = transport::check_loopback(addr)
    {
        eprintln!("agentjail mcp: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("agentjail mcp: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let socket = args.socket.unwrap_or_else(default_socket_path);
    let result = runtime.block_on(async {
        let (daemon, grants) = Daemon::connect(&socket).await?;
        let handler = AgentjailMcp::new(daemon, grants);
        match args.http {
            Some(addr) => transport::serve_http(handler, addr).await,
            None => transport::serve_stdio(handler).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agentjail mcp: {e:#}");
            ExitCode::FAILURE
        }
    }
}
