//! The messages between the daemon and the launcher process.
//!
//! Each is one SOCK_SEQPACKET datagram: a JSON body and, beside it, up to
//! [`MAX_FDS`] descriptors passed with SCM_RIGHTS. A sandbox spec can be
//! megabytes (argv and environment), more than a datagram may carry, so it
//! travels in a sealed memfd passed as a descriptor instead.
//!
//! The conversation, per launch:
//! - on the control socket, daemon → launcher: [`ToLauncher::Launch`] with
//!   the spec's memfd and one end of a fresh socket pair for this launch,
//!   and the pool key under which a sandbox built ahead may serve it;
//! - on that launch socket, launcher → daemon: [`FromLauncher::Started`]
//!   (fds: pidfd, stdout, stderr, stdin if piped; whether it was pooled) or
//!   [`FromLauncher::Failed`];
//!   later [`FromLauncher::Exited`] once the sandbox ended;
//! - daemon → launcher: [`ToLauncher::Kill`]; closing the launch socket
//!   also kills the sandbox (the daemon dropped the call).

use std::io::{self, IoSlice, IoSliceMut, Read, Seek, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};
use serde::{Deserialize, Serialize};

use super::launcher::{ExitInfo, Timings};
use super::report::SetupError;
use super::spec::SandboxSpec;

/// The most descriptors one message carries.
pub const MAX_FDS: usize = 6;
/// Replies are small (an exit record, an error message): the most one
/// message's body holds (a [`recv_in`] buffer of this size fits any).
pub const MAX_BODY: usize = 64 << 10;

#[derive(Debug, Serialize, Deserialize)]
pub enum ToLauncher {
    /// fds: [the spec's memfd, this launch's socket]. `pool`: the key
    /// (agent and policy version) under which a sandbox built ahead may
    /// serve this call; `None`: never (a session).
    Launch {
        #[serde(default)]
        pool: Option<String>,
    },
    /// Kill the whole tree now (init and everything in its cgroups).
    Kill,
    /// On the control socket: rebuild the /etc snapshots on next use (a
    /// policy reload; host files in `shell.etc` may have changed).
    RefreshEtc,
    /// On the control socket: the daemon is stopping; end every sandbox,
    /// remove their cgroups, exit.
    Shutdown,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum FromLauncher {
    /// The command was exec'd. fds: [pidfd of init, stdout, stderr, stdin?,
    /// session?] (session: the supervisor's socket, for a session sandbox).
    Started {
        pid: i32,
        timings: Timings,
        stdin: bool,
        #[serde(default)]
        session: bool,
        /// Served by a sandbox built ahead (the pool), not one built for it.
        #[serde(default)]
        pooled: bool,
    },
    /// Nothing runs.
    Failed(LaunchError),
    /// The sandbox ended and was cleaned up.
    Exited(ExitInfo),
}

/// Why a launch did not start, without flattening it to text.
#[derive(Debug, Serialize, Deserialize)]
pub enum LaunchError {
    /// A step of the child's setup failed (nothing ran).
    Setup(SetupError),
    /// The parent-side preparation failed (validation, pipes, cgroups).
    Io {
        errno: Option<i32>,
        kind: Kind,
        message: String,
    },
}

/// The `io::ErrorKind`s callers tell apart.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum Kind {
    InvalidInput,
    NotFound,
    PermissionDenied,
    ArgumentListTooLong,
    Unsupported,
    Other,
}

impl LaunchError {
    pub fn from_io(e: &io::Error) -> LaunchError {
        if let Some(setup) = SetupError::of(e) {
            return LaunchError::Setup(setup);
        }
        let kind = match e.kind() {
            io::ErrorKind::InvalidInput => Kind::InvalidInput,
            io::ErrorKind::NotFound => Kind::NotFound,
            io::ErrorKind::PermissionDenied => Kind::PermissionDenied,
            io::ErrorKind::ArgumentListTooLong => Kind::ArgumentListTooLong,
            io::ErrorKind::Unsupported => Kind::Unsupported,
            _ => Kind::Other,
        };
        LaunchError::Io {
            errno: e.raw_os_error(),
            kind,
            message: e.to_string(),
        }
    }

    pub fn into_io(self) -> io::Error {
        match self {
            LaunchError::Setup(s) => s.into_io(),
            LaunchError::Io {
                errno: Some(errno),
                message,
                ..
            } => io::Error::new(io::Error::from_raw_os_error(errno).kind(), message),
            LaunchError::Io { kind, message, .. } => {
                let kind = match kind {
                    Kind::InvalidInput => io::ErrorKind::InvalidInput,
                    Kind::NotFound => io::ErrorKind::NotFound,
                    Kind::PermissionDenied => io::ErrorKind::PermissionDenied,
                    Kind::ArgumentListTooLong => io::ErrorKind::ArgumentListTooLong,
                    Kind::Unsupported => io::ErrorKind::Unsupported,
                    Kind::Other => io::ErrorKind::Other,
                };
                io::Error::new(kind, message)
            }
        }
    }
}

/// A connected SEQPACKET pair, close-on-exec.
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

/// Sends one message. MSG_NOSIGNAL: a peer that went away is an error
/// (EPIPE), not a SIGPIPE.
pub fn send<T: Serialize>(sock: BorrowedFd<'_>, msg: &T, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    send_encoded(sock, &serde_json::to_vec(msg)?, fds)
}

/// Sends one message already encoded (as `send` would: JSON), for a
/// caller that measured it first.
pub fn send_encoded(sock: BorrowedFd<'_>, body: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let rights = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &rights };
    loop {
        match sendmsg::<()>(
            sock.as_raw_fd(),
            &[IoSlice::new(body)],
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one message and its descriptors (close-on-exec); `None` when
/// the peer has closed its end.
pub fn recv<T: for<'de> Deserialize<'de>>(
    sock: BorrowedFd<'_>,
) -> io::Result<Option<(T, Vec<OwnedFd>)>> {
    recv_in(sock, &mut vec![0u8; MAX_BODY])
}

/// Like [`recv`], into the caller's buffer (`MAX_BODY` bytes fit any
/// message), so that a loop reading many does not allocate one for each.
pub fn recv_in<T: for<'de> Deserialize<'de>>(
    sock: BorrowedFd<'_>,
    body: &mut [u8],
) -> io::Result<Option<(T, Vec<OwnedFd>)>> {
    let Some((n, fds)) = recv_raw(sock, body, MsgFlags::empty())? else {
        return Ok(None);
    };
    let msg = serde_json::from_slice(&body[..n])?;
    Ok(Some((msg, fds)))
}

/// One datagram into `body`: its length and descriptors, `None` at the
/// peer's close. EINTR is retried; a message larger than `body` (or with
/// more descriptors than fit) is an error, its descriptors closed.
fn recv_raw(
    sock: BorrowedFd<'_>,
    body: &mut [u8],
    flags: MsgFlags,
) -> io::Result<Option<(usize, Vec<OwnedFd>)>> {
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (n, fds, truncated) = loop {
        let mut iov = [IoSliceMut::new(body)];
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            flags | MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => {
                let mut fds = Vec::new();
                for c in m.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        // SAFETY: the kernel just installed these fds for us.
                        fds.extend(
                            raw.into_iter()
                                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                        );
                    }
                }
                let truncated = m
                    .flags
                    .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
                break (m.bytes, fds, truncated);
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    if truncated {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a launcher message was larger than its buffer",
        ));
    }
    Ok(Some((n, fds)))
}

/// Reads and drops whatever the peer sent that is still queued (a Kill
/// that crossed the exit record), without blocking. Call it before closing
/// a socket the peer may still read: closing a Unix socket with unread
/// messages makes the peer's next read fail with ECONNRESET instead of
/// returning what was sent to it.
pub fn discard_pending(sock: BorrowedFd<'_>) {
    let mut body = [0u8; 256];
    // Until nothing is queued (EAGAIN) or the peer has gone. An oversized
    // message is dropped like the others (its descriptors closed).
    loop {
        match recv_raw(sock, &mut body, MsgFlags::MSG_DONTWAIT) {
            Ok(Some(_)) => {}
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {}
            _ => return,
        }
    }
}

/// The spec, written into a memfd sealed against further change.
pub fn spec_memfd(spec: &SandboxSpec) -> io::Result<OwnedFd> {
    let body = serde_json::to_vec(spec)?;
    // SAFETY: memfd_create takes a NUL-terminated name and flags.
    let fd = unsafe {
        libc::memfd_create(
            c"agentjail-spec".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd nothing else owns.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    file.write_all(&body)?;
    let seals = libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on our own fd.
    if unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file.into())
}

/// Reads a spec back from its memfd.
pub fn read_spec(fd: OwnedFd) -> io::Result<SandboxSpec> {
    let mut file = std::fs::File::from(fd);
    file.rewind()?;
    let mut body = Vec::new();
    file.read_to_end(&mut body)?;
    Ok(serde_json::from_slice(&body)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn messages_carry_descriptors_and_eof_is_none() {
        let (a, b) = pair().unwrap();
        let (r, _w) = super::super::sys::pipe().unwrap();
        send(a.as_fd(), &ToLauncher::Kill, &[r.as_fd()]).unwrap();
        let (msg, fds) = recv::<ToLauncher>(b.as_fd()).unwrap().unwrap();
        assert!(matches!(msg, ToLauncher::Kill));
        assert_eq!(fds.len(), 1);
        drop(a);
        assert!(recv::<ToLauncher>(b.as_fd()).unwrap().is_none());
    }

    #[test]
    fn setup_errors_stay_typed_across_the_wire() {
        let e = SetupError {
            step: super::super::report::Step::Exec,
            errno: libc::ENOENT,
        };
        let wire = serde_json::to_vec(&LaunchError::from_io(&e.into_io())).unwrap();
        let back: LaunchError = serde_json::from_slice(&wire).unwrap();
        let io = back.into_io();
        assert_eq!(io.kind(), io::ErrorKind::NotFound);
        assert_eq!(SetupError::of(&io), Some(e));
    }

    #[test]
    fn other_errors_keep_their_kind() {
        let e = io::Error::new(io::ErrorKind::InvalidInput, "cwd must be absolute");
        let io = LaunchError::from_io(&e).into_io();
        assert_eq!(io.kind(), io::ErrorKind::InvalidInput);
        assert!(SetupError::of(&io).is_none());
    }
}
