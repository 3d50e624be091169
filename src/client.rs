//! Connecting to a running daemon, for the `call` subcommand and for tests.

use crate::proto::tool_sandbox_client::ToolSandboxClient;
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use tonic::transport::{Channel, Endpoint, Uri};

/// The HTTP/2 receive window of a client's stream: a 16 MiB response (the
/// most a policy usually lets ReadFile return) without flow-control stalls.
pub const CLIENT_WINDOW_BYTES: u32 = 16 << 20;

/// The largest HTTP/2 frame the client accepts (SETTINGS_MAX_FRAME_SIZE):
/// a 1 MiB response arrives in two DATA frames, not 64 of the default
/// 16 KiB, each a write and a read on the socket.
pub const CLIENT_MAX_FRAME_BYTES: u32 = 1 << 20;

/// A channel to the daemon's Unix socket.
pub async fn unix_channel(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let socket: PathBuf = socket.to_path_buf();
    // The URI is required by the API but unused: the connector dials the socket.
    Endpoint::from_static("http://agentjail.local")
        // HTTP/2's default 64 KiB window makes a large ReadFile response
        // wait for a WINDOW_UPDATE round trip every 64 KiB (a 16 MiB read
        // ran at 75 MB/s): let a whole response be in flight.
        .initial_stream_window_size(Some(CLIENT_WINDOW_BYTES))
        .initial_connection_window_size(Some(2 * CLIENT_WINDOW_BYTES))
        .max_frame_size(Some(CLIENT_MAX_FRAME_BYTES))
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
