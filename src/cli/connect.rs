//! Why `agentjail call` could not reach the daemon, in words: tonic says
//! only "transport error"; the I/O error under it says what to do.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A message for a failed connection to `socket`.
pub fn explain(socket: &Path, error: &(dyn std::error::Error + 'static)) -> String {
    let io = std::iter::successors(Some(error), |e| e.source())
        .find_map(|e| e.downcast_ref::<std::io::Error>());
    let shown = socket.display();
    let uid = nix::unistd::geteuid().as_raw();
    match io.map(std::io::Error::kind) {
        Some(std::io::ErrorKind::PermissionDenied) => {
            let owner = std::fs::metadata(socket)
                .map(|m| {
                    let group = nix::unistd::Group::from_gid(m.gid().into())
                        .ok()
                        .flatten()
                        .map(|g| g.name)
                        .unwrap_or_else(|| m.gid().to_string());
                    format!(" (mode {:o}, group {group})", m.mode() & 0o777)
                })
                .unwrap_or_default();
            format!(
                "permission denied: uid {uid} may not connect to {shown}{owner}. Ask for \
                 membership of the socket's group (the daemon's socket_group), or run the \
                 call as a user the daemon's socket_mode admits"
            )
        }
        Some(std::io::ErrorKind::NotFound) => format!(
            "no daemon socket at {shown}. Is `agentjail serve` running? A daemon run as \
             root listens on /run/agentjail/agentjail.sock; run as another user, on \
             $XDG_RUNTIME_DIR/agentjail.sock (else /tmp/agentjail-<uid>.sock). Point \
             --socket or AGENTJAIL_SOCKET at the one you want"
        ),
        Some(std::io::ErrorKind::ConnectionRefused) => format!(
            "nothing is listening on {shown} (a socket left by a daemon that stopped?); \
             start `agentjail serve`, or point --socket at the running daemon"
        ),
        _ => format!(
            "cannot connect to {shown}: {}; is `agentjail serve` running? (set --socket or \
             AGENTJAIL_SOCKET)",
            io.map(ToString::to_string)
                .unwrap_or_else(|| error.to_string())
        ),
    }
}
