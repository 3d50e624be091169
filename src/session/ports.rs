//! OpenPort: a Unix socket on the host whose every connection is relayed
//! to 127.0.0.1:port inside a session (the supervisor makes the TCP
//! connection there, so the daemon never enters the session's network).
//!
//! Layout: `<socket dir>/agentjail-ports/` (root, 0711), then one directory
//! per session (the agent's uid, 0700) holding `<port>.sock` (the agent's
//! uid, 0600): only that uid (and root) can connect. Removed when the
//! session ends.
//!
//! The agent owns its session's directory, so the daemon never chmods or
//! chowns a path in it: a name there could be swapped for a symlink
//! between two calls (and CHOWN/FOWNER would then follow it anywhere).
//! The socket is bound, chmod'ed and chown'ed in `.bind/` (root, 0700),
//! then renamed into place, which replaces whatever the agent put there
//! and follows no link.

use super::Session;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

static DIR: OnceLock<PathBuf> = OnceLock::new();

/// Where port sockets go (set once at start, beside the daemon's socket).
pub fn set_dir(socket: &Path) {
    let dir = socket
        .parent()
        .unwrap_or(Path::new("/run"))
        .join("agentjail-ports");
    let _ = DIR.set(dir);
}

fn base() -> io::Result<&'static Path> {
    DIR.get()
        .map(PathBuf::as_path)
        .ok_or_else(|| io::Error::other("no directory for port sockets"))
}

/// The session's directory of port sockets.
fn session_dir(session: &Session) -> io::Result<PathBuf> {
    Ok(base()?.join(&session.id))
}

/// Creates the socket for `port` of `session`, reachable by `uid` only,
/// and relays its connections until the session ends. Returns its path.
pub fn open(session: Arc<Session>, port: u16, uid: u32, gid: u32) -> io::Result<PathBuf> {
    let base = base()?;
    std::fs::create_dir_all(base)?;
    std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o711))?;
    let dir = session_dir(&session)?;
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
    let path = dir.join(format!("{port}.sock"));
    if path.exists() {
        return Ok(path); // already relayed
    }
    let staging = base.join(".bind");
    match std::fs::create_dir(&staging) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o700))?;
    let bound = staging.join(format!("{}-{port}.sock", session.id));
    let _ = std::fs::remove_file(&bound);
    let listener = tokio::net::UnixListener::bind(&bound)?;
    let placed = std::fs::set_permissions(&bound, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::os::unix::fs::chown(&bound, Some(uid), Some(gid)))
        .and_then(|()| std::fs::rename(&bound, &path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&bound);
        return Err(e);
    }
    let gone = session.sup.gone.clone();
    tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                c = listener.accept() => match c { Ok((c, _)) => c, Err(_) => break },
                _ = gone.cancelled() => break,
            };
            let session = session.clone();
            tokio::spawn(async move {
                let Ok(fd) = session.sup.connect(port).await else {
                    return; // nothing listens there: the connection closes
                };
                let Ok(tcp) = into_tcp(fd) else { return };
                let mut conn = conn;
                let mut tcp = tcp;
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut conn, &mut tcp) => {}
                    _ = session.sup.gone.cancelled() => {}
                }
            });
        }
    });
    Ok(path)
}

fn into_tcp(fd: std::os::fd::OwnedFd) -> io::Result<tokio::net::TcpStream> {
    let std = std::net::TcpStream::from(fd);
    std.set_nonblocking(true)?;
    tokio::net::TcpStream::from_std(std)
}

/// Removes a session's port sockets (its end).
pub fn remove(session: &Session) {
    if let Ok(dir) = session_dir(session) {
        let _ = std::fs::remove_dir_all(dir);
    }
}
