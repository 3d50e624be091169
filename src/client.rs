//! Connecting to a running daemon, for the `call` subcommand and for tests.

use crate::proto::tool_sandbox_client::ToolSandboxClient;
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use tonic::transport::{Channel, Endpoint, Uri};

/// A channel to the daemon's Unix socket.
pub async fn unix_channel(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let socket: PathBuf = socket.to_path_buf();
    // The URI is required by the API but unused: the connector dials the socket.
    Endpoint::from_static("http://agentjail.local")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
}

/// A `ToolSandbox` client on the daemon's Unix socket.
pub async fn connect_unix(
    socket: &Path,
) -> Result<ToolSandboxClient<Channel>, tonic::transport::Error> {
    Ok(ToolSandboxClient::new(unix_channel(socket).await?))
}
