//! Who is calling: Unix peer credentials; over TCP with TLS a verified
//! client certificate or a bearer token; or the one agent of an insecure
//! (loopback) TCP listener. Mapped to an agent by the policy in force.

use super::state::State;
use super::tls::certificate_names;
use crate::error::{Reason, ToolError};
use crate::policy::remote::token_digest;
use crate::policy::{AgentPolicy, CompiledPolicy};
use std::sync::Arc;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo, UdsConnectInfo};

/// A TLS caller's client certificate, as the handshake verified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    /// DNS and URI SANs, then common names (see `tls::certificate_names`).
    pub names: Vec<String>,
    /// Leaf first; re-verified on every call against the CA in force.
    pub chain: Arc<Vec<CertificateDer<'static>>>,
}

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
    Tls {
        peer: Option<std::net::SocketAddr>,
        cert: Option<PeerCert>,
        /// sha256 of the bearer token; the token itself is never kept.
        token_sha256: Option<[u8; 32]>,
    },
}

fn unauthenticated(message: impl Into<String>) -> ToolError {
    ToolError::new(Reason::Unauthenticated, message)
}

/// The `authorization: Bearer <token>` metadata, if any.
fn bearer_token(authorization: Option<&[u8]>) -> Result<Option<[u8; 32]>, ToolError> {
    let Some(value) = authorization else {
        return Ok(None);
    };
    let value = std::str::from_utf8(value).unwrap_or("");
    let token = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty());
    match token {
        Some(token) => Ok(Some(token_digest(token))),
        None => Err(unauthenticated(
            "the `authorization` metadata must be `Bearer <token>`",
        )),
    }
}

impl Caller {
    pub fn from_request<T>(req: &tonic::Request<T>) -> Result<Caller, ToolError> {
        let authorization = req.metadata().get("authorization").map(|v| v.as_bytes());
        Self::from_extensions(req.extensions(), authorization)
    }

    /// The caller from a request's extensions (where tonic puts the
    /// connection's info) and its `authorization` header, also before the
    /// request is decoded.
    pub fn from_extensions(
        extensions: &tonic::Extensions,
        authorization: Option<&[u8]>,
    ) -> Result<Caller, ToolError> {
        // The listeners' connections carry their info in a `Conn`.
        use super::connections::Peer;
        let peer = extensions
            .get::<super::connections::Conn>()
            .map(|c| &c.peer);
        let uds = match peer {
            Some(Peer::Unix(info)) => Some(info),
            _ => extensions.get::<UdsConnectInfo>(),
        };
        let tls = match peer {
            Some(Peer::Tls(info)) => Some(info),
            _ => extensions.get::<TlsConnectInfo<TcpConnectInfo>>(),
        };
        let tcp = match peer {
            Some(Peer::Tcp(info)) => Some(info),
            _ => extensions.get::<TcpConnectInfo>(),
        };
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
        if let Some(info) = tls {
            let cert = info
                .peer_certs()
                .filter(|chain| !chain.is_empty())
                .map(|chain| PeerCert {
                    names: certificate_names(&chain[0]),
                    chain,
                });
            return Ok(Caller::Tls {
                peer: info.get_ref().remote_addr(),
                cert,
                token_sha256: bearer_token(authorization)?,
            });
        }
        if let Some(info) = tcp {
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
            Caller::Tls { peer, cert, .. } => {
                let peer = peer.map(|p| format!(" {p}")).unwrap_or_default();
                match cert {
                    Some(cert) => format!("tls{peer}, certificate {:?}", cert.names),
                    None => format!("tls{peer}"),
                }
            }
        }
    }

    /// How WhoAmI and the audit log say the caller was identified.
    pub fn identified_by(&self) -> &'static str {
        match self {
            Caller::Unix { .. } => "unix-peer",
            Caller::TcpInsecure { .. } => "tcp-insecure",
            Caller::Tls {
                token_sha256: Some(_),
                ..
            } => "tls-token",
            Caller::Tls { .. } => "tls-certificate",
        }
    }
}

/// Maps a caller to its agent under `policy` (and, for TLS callers, the
/// TLS files in force).
pub fn agent_for(
    caller: &Caller,
    policy: &CompiledPolicy,
    state: &State,
) -> Result<Arc<AgentPolicy>, ToolError> {
    let found = match caller {
        Caller::Unix { uid, .. } => policy.agent_for_uid(*uid).cloned(),
        Caller::TcpInsecure { .. } => state
            .tcp_agent()
            .and_then(|name| policy.agent(name).cloned()),
        Caller::Tls {
            cert, token_sha256, ..
        } => return tls_agent(cert.as_ref(), token_sha256.as_ref(), policy, state),
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

/// A TLS caller is named by its certificate, its token, or both (then they
/// must agree). Each is checked against what is in force now.
fn tls_agent(
    cert: Option<&PeerCert>,
    token_sha256: Option<&[u8; 32]>,
    policy: &CompiledPolicy,
    state: &State,
) -> Result<Arc<AgentPolicy>, ToolError> {
    let tls = state.tls();
    let cert = cert.filter(|_| tls.as_ref().is_some_and(|t| t.verifies_clients()));
    let by_cert = match (cert, &tls) {
        (Some(cert), Some(tls)) => {
            tls.still_accepts(&cert.chain).map_err(|e| {
                unauthenticated(format!(
                    "the client certificate is no longer accepted ({e}); the CA or the \
                     certificate changed: reconnect with a current certificate"
                ))
            })?;
            policy
                .remote
                .agent_for_cert_names(&cert.names)
                .map_err(unauthenticated)?
        }
        _ => None,
    };
    let by_token = match token_sha256 {
        Some(digest) => Some(policy.remote.agent_for_token_digest(digest).ok_or_else(|| {
            unauthenticated(
                "the bearer token matches no agent (it may have been rotated out by a policy \
                 reload); ask the operator for a current token",
            )
        })?),
        None => None,
    };
    let name = match (by_cert, by_token) {
        (Some(c), Some(t)) if c != t => {
            return Err(unauthenticated(format!(
                "the client certificate names agent \"{c}\" but the token names \"{t}\"; \
                 present one identity"
            )));
        }
        (Some(name), _) | (None, Some(name)) => name,
        (None, None) => {
            return Err(match cert {
                Some(cert) => ToolError::new(
                    Reason::UnknownCaller,
                    format!(
                        "no agent in the policy has the client certificate's names {:?}; ask \
                         the operator to add one to an agent's remote.tls_names",
                        cert.names
                    ),
                ),
                None => unauthenticated(
                    "this TLS listener needs a client certificate or an `authorization: Bearer \
                     <token>` metadata entry that the policy maps to an agent",
                ),
            });
        }
    };
    policy.agent(name).cloned().ok_or_else(|| {
        ToolError::new(
            Reason::Internal,
            format!("agent \"{name}\" named by [agents.remote] is missing"),
        )
    })
}
