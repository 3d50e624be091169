//! Who is calling: Unix peer credentials, or the one agent of an insecure
//! TCP listener. Mapped to an agent by the policy in force.

use crate::error::{Reason, ToolError};
use crate::policy::{AgentPolicy, CompiledPolicy};
use std::sync::Arc;
use tonic::transport::server::{TcpConnectInfo, UdsConnectInfo};

/// The caller as the transport saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Unix {
        uid: u32,
        gid: u32,
        pid: Option<i32>,
    },
    TcpInsecure {
        peer: Option<std::net::SocketAddr>,
    },
}

impl Caller {
    pub fn from_request<T>(req: &tonic::Request<T>) -> Result<Caller, ToolError> {
        Self::from_extensions(req.extensions())
    }

    /// The caller from a request's extensions (where tonic puts the
    /// connection's info), also before the request is decoded.
    pub fn from_extensions(extensions: &tonic::Extensions) -> Result<Caller, ToolError> {
        // The Unix listener's connections carry their info in a `Conn`.
        let uds = extensions
            .get::<super::connections::Conn>()
            .map(|c| &c.uds)
            .or_else(|| extensions.get::<UdsConnectInfo>());
        if let Some(info) = uds {
            return match info.peer_cred {
                Some(cred) => Ok(Caller::Unix {
                    uid: cred.uid(),
                    gid: cred.gid(),
                    pid: cred.pid(),
                }),
                None => Err(ToolError::new(
                    Reason::UnknownCaller,
                    "the daemon could not read the peer credentials of this connection",
                )),
            };
        }
        if let Some(info) = extensions.get::<TcpConnectInfo>() {
            return Ok(Caller::TcpInsecure {
                peer: info.remote_addr(),
            });
        }
        Err(ToolError::new(
            Reason::UnknownCaller,
            "the transport did not identify the caller",
        ))
    }

    pub fn describe(&self) -> String {
        match self {
            Caller::Unix { uid, pid, .. } => match pid {
                Some(pid) => format!("uid {uid} pid {pid}"),
                None => format!("uid {uid}"),
            },
            Caller::TcpInsecure { peer } => match peer {
                Some(p) => format!("tcp {p}"),
                None => "tcp".into(),
            },
        }
    }
}

/// Maps a caller to its agent under `policy`.
pub fn agent_for(
    caller: &Caller,
    policy: &CompiledPolicy,
    tcp_agent: Option<&str>,
) -> Result<Arc<AgentPolicy>, ToolError> {
    let found = match caller {
        Caller::Unix { uid, .. } => policy.agent_for_uid(*uid).cloned(),
        Caller::TcpInsecure { .. } => tcp_agent.and_then(|name| policy.agent(name).cloned()),
    };
    found.ok_or_else(|| {
        ToolError::new(
            Reason::UnknownCaller,
            format!(
                "no agent in the policy matches this caller ({}); ask the operator to map it \
                 with `uids`, `users` or `daemon_user` in a policy file",
                caller.describe()
            ),
        )
    })
}
