//! systemd integration: socket activation (LISTEN_FDS), readiness and
//! reload notifications (NOTIFY_SOCKET) and watchdog pings. Each is a no-op
//! when the daemon was not started by systemd.

use anyhow::Context;
use sd_notify::NotifyState;
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixListener;

/// The listening Unix socket systemd passed (the first of LISTEN_FDS), if
/// the daemon was socket-activated.
pub fn activated_listener() -> anyhow::Result<Option<UnixListener>> {
    let mut fds = sd_notify::listen_fds().context("invalid LISTEN_FDS / LISTEN_PID")?;
    let Some(fd) = fds.next() else {
        return Ok(None);
    };
    if fds.len() > 0 {
        tracing::warn!("systemd passed more than one socket; using the first");
    }
    // Refuse anything but a listening Unix stream socket: serving on a
    // wrong fd would be worse than not starting.
    let is_unix_stream = {
        let mut ty: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt with a correctly sized out-parameter.
        let ok = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_TYPE,
                (&mut ty as *mut libc::c_int).cast(),
                &mut len,
            )
        } == 0;
        let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut alen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: getsockname with a correctly sized out-parameter.
        let named = unsafe {
            libc::getsockname(
                fd,
                (&mut addr as *mut libc::sockaddr_storage).cast(),
                &mut alen,
            )
        } == 0;
        ok && named && ty == libc::SOCK_STREAM && addr.ss_family as i32 == libc::AF_UNIX
    };
    anyhow::ensure!(
        is_unix_stream,
        "the socket systemd passed (fd {fd}) is not a Unix stream socket; use ListenStream= with a path"
    );
    // SAFETY: systemd handed this fd to this process (LISTEN_PID matched);
    // nothing else owns it.
    let listener = unsafe { UnixListener::from_raw_fd(fd) };
    listener.set_nonblocking(true)?;
    Ok(Some(listener))
}

fn send(state: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!("cannot notify systemd: {e}");
    }
}

/// Startup is finished: the socket is listening and the policy loaded.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub fn reloaded(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("draining in-flight calls"),
    ]);
}

/// Pings the watchdog at half its interval, while the runtime is alive to
/// do it (a wedged runtime stops the pings and systemd restarts us).
pub fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let interval = sd_notify::watchdog_enabled()? / 2;
    tracing::info!(
        interval_ms = interval.as_millis() as u64,
        "systemd watchdog on"
    );
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    }))
}
