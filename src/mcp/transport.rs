//! Serving the handler: over stdio (the MCP client started us) or over
//! streamable HTTP on a loopback address only. HTTP carries no credentials
//! of its own, so anyone who can reach the port acts as this agent: a
//! non-loopback address is refused, and the SDK's Host check (loopback
//! names only) stops DNS-rebinding pages in a browser.

use super::server::AgentjailMcp;
use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

/// The path the HTTP endpoint is served at.
pub const HTTP_PATH: &str = "/mcp";

pub async fn serve_stdio(handler: AgentjailMcp) -> anyhow::Result<()> {
    let terminals = handler.terminals();
    let running = handler
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| anyhow::anyhow!("MCP handshake on stdio failed: {e}"))?;
    let ended = running.waiting().await;
    // The conversation is over: its sessions and their processes go too.
    terminals.close_all().await;
    ended?;
    Ok(())
}

/// Refuses an address other hosts could reach.
pub fn check_loopback(addr: &SocketAddr) -> anyhow::Result<()> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        anyhow::bail!(
            "--http {addr}: only a loopback address is served (127.0.0.1:PORT or [::1]:PORT), \
             since every request acts as this agent without further credentials"
        )
    }
}

pub async fn serve_http(handler: AgentjailMcp, addr: SocketAddr) -> anyhow::Result<()> {
    check_loopback(&addr)?;
    let stop = CancellationToken::new();
    let service: StreamableHttpService<AgentjailMcp, LocalSessionManager> =
        StreamableHttpService::new(
            move || Ok(handler.for_new_session()),
            Default::default(),
            StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token()),
        );
    let router = axum::Router::new().nest_service(HTTP_PATH, service);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    // Printed once the port is open, so a caller that asked for port 0 can
    // read the real one.
    eprintln!("agentjail mcp: serving MCP on http://{bound}{HTTP_PATH}");
    let shutdown = {
        let stop = stop.clone();
        async move {
            stop_signal().await;
            stop.cancel();
        }
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
