//! The MCP server's connection to the daemon: a plain client on its Unix
//! socket, so the daemon identifies the agent by the peer credentials of the
//! process the MCP client started, as it does any caller.

use super::grants::Grants;
use crate::client::unix_channel;
use crate::proto::WhoAmIRequest;
use crate::proto::tool_sandbox_client::ToolSandboxClient;
use std::path::{Path, PathBuf};
use tonic::transport::Channel;

#[derive(Clone)]
pub struct Daemon {
    client: ToolSandboxClient<Channel>,
    socket: PathBuf,
}

impl Daemon {
    /// Connects and asks who we are, so a wrong socket or an unknown caller
    /// is reported when the server starts, not at the first tool call.
    pub async fn connect(socket: &Path) -> anyhow::Result<(Daemon, Grants)> {
        let channel = unix_channel(socket).await.map_err(|e| {
            // tonic says only "transport error"; the cause is what helps.
            let cause = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
                .last()
                .map(ToString::to_string)
                .unwrap_or_default();
            anyhow::anyhow!(
                "cannot reach the agentjail daemon at {}: {cause}. Start it (`agentjail serve`, \
                 or `systemctl start agentjail.socket`), pass --socket / AGENTJAIL_SOCKET, or \
                 on a permission error ask for the socket's group",
                socket.display()
            )
        })?;
        let daemon = Daemon {
            client: ToolSandboxClient::new(channel),
            socket: socket.to_path_buf(),
        };
        let grants = daemon.grants().await.map_err(|s| {
            anyhow::anyhow!(
                "the daemon at {} refused WhoAmI: {}",
                socket.display(),
                s.message()
            )
        })?;
        Ok((daemon, grants))
    }

    pub fn client(&self) -> ToolSandboxClient<Channel> {
        self.client.clone()
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The agent's grants as the daemon states them now.
    pub async fn grants(&self) -> Result<Grants, tonic::Status> {
        let who = self.client().who_am_i(WhoAmIRequest {}).await?.into_inner();
        Ok(Grants::from_who_am_i(&who))
    }
}
