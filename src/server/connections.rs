//! The listeners' connections, kept within limits: at most
//! `connections_per_peer` at once per peer (its uid on the Unix socket, its
//! IP address on TCP; more are closed at accept, before any TLS handshake);
//! a connection that starts no call within the handshake timeout of being
//! accepted, or has no call running and starts none for the idle timeout,
//! is closed; and the daemon says (log line and metric) when its open fds
//! near RLIMIT_NOFILE. A connection's calls are counted by
//! `CountCalls` around the service, through the `Conn` each request carries.

use crate::config::LimitsConfig;
use crate::limits::FD_WARN_PERCENT;
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::Sleep;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo, UdsConnectInfo};

/// What a connection's requests carry (a request extension): the peer, and
/// the connection's call count.
#[derive(Clone, Debug)]
pub struct Conn {
    pub peer: Peer,
    pub activity: Arc<Activity>,
}

/// Who is at the other end, as the transport tells it.
#[derive(Clone, Debug)]
pub enum Peer {
    Unix(UdsConnectInfo),
    Tls(TlsConnectInfo<TcpConnectInfo>),
    Tcp(TcpConnectInfo),
}

/// A connection the limits apply to: its fd (to shut it down) and its peer.
pub trait Socket: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    fn fd(&self) -> std::os::fd::RawFd;
    fn peer(&self) -> Peer;
}

impl Socket for UnixStream {
    fn fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(self)
    }
    fn peer(&self) -> Peer {
        Peer::Unix(UdsConnectInfo {
            peer_addr: self.peer_addr().ok().map(Arc::new),
            peer_cred: self.peer_cred().ok(),
        })
    }
}

impl Socket for TcpStream {
    fn fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(self)
    }
    fn peer(&self) -> Peer {
        Peer::Tcp(self.connect_info())
    }
}

impl Socket for tokio_rustls::server::TlsStream<TcpStream> {
    fn fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(self.get_ref().0)
    }
    fn peer(&self) -> Peer {
        Peer::Tls(self.connect_info())
    }
}

/// Calls running on a connection, and when the count last changed.
#[derive(Debug)]
pub struct Activity {
    started: Instant,
    calls: AtomicUsize,
    /// ms since `started` of the last call start or end; 0 = never.
    last_change_ms: AtomicU64,
}

impl Activity {
    fn new(started: Instant) -> Activity {
        Activity {
            started,
            calls: AtomicUsize::new(0),
            last_change_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_change_ms.store(ms.max(1), Ordering::SeqCst);
    }

    /// Counts a call until the guard is dropped.
    pub fn call(self: &Arc<Self>) -> CallGuard {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.touch();
        CallGuard(self.clone())
    }

    /// When the connection is to be closed if nothing changes, or None
    /// while a call runs.
    fn close_at(&self, handshake: Duration, idle: Duration) -> Option<Instant> {
        if self.calls.load(Ordering::SeqCst) > 0 {
            return None;
        }
        Some(match self.last_change_ms.load(Ordering::SeqCst) {
            0 => self.started + handshake,
            ms => self.started + Duration::from_millis(ms) + idle,
        })
    }
}

pub struct CallGuard(Arc<Activity>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.calls.fetch_sub(1, Ordering::SeqCst);
        self.0.touch();
    }
}

/// What one peer is, for `connections_per_peer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerKey {
    Uid(u32),
    Ip(std::net::IpAddr),
}

/// Open connections per peer, at most `per_peer` each.
pub struct PeerCap {
    open: Mutex<HashMap<PeerKey, usize>>,
    per_peer: usize,
}

impl PeerCap {
    pub fn new(limits: &LimitsConfig) -> Arc<PeerCap> {
        Arc::new(PeerCap {
            open: Mutex::new(HashMap::new()),
            per_peer: limits.connections_per_peer,
        })
    }

    /// A slot for one more connection of `key`, or None (logged and
    /// counted) when it already has `per_peer` open.
    pub fn admit(self: &Arc<Self>, key: PeerKey) -> Option<PeerSlot> {
        let mut m = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(key).or_insert(0);
        if *n >= self.per_peer {
            drop(m);
            tracing::warn!(
                peer = ?key,
                limit = self.per_peer,
                "connection refused: this peer already has connections_per_peer open"
            );
            crate::metrics::connection_refused("per_peer_cap");
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            cap: self.clone(),
            key,
        })
    }
}

/// One open connection of a peer, given back when dropped.
pub struct PeerSlot {
    cap: Arc<PeerCap>,
    key: PeerKey,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut m = self.cap.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

/// An accepted connection under its timeouts.
pub struct Guarded<S> {
    stream: S,
    info: Conn,
    handshake: Duration,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    closed: bool,
    _slot: PeerSlot,
}

impl<S: Socket> Guarded<S> {
    /// `stream`, accepted at `accepted` and holding `slot`, under the
    /// timeouts of `limits`.
    pub fn new(stream: S, accepted: Instant, slot: PeerSlot, limits: &LimitsConfig) -> Self {
        let handshake = Duration::from_millis(limits.handshake_timeout_ms);
        let idle = Duration::from_millis(limits.idle_timeout_ms);
        let info = Conn {
            peer: stream.peer(),
            activity: Arc::new(Activity::new(accepted)),
        };
        Guarded {
            stream,
            info,
            handshake,
            idle,
            timer: Box::pin(tokio::time::sleep_until((accepted + handshake).into())),
            closed: false,
            _slot: slot,
        }
    }

    /// Whether the connection is due to close (and, if not, the timer set
    /// to look again).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.closed {
            return true;
        }
        loop {
            let at = self
                .info
                .activity
                .close_at(self.handshake, self.idle)
                // A call runs: look again after a while.
                .unwrap_or_else(|| Instant::now() + self.idle.min(self.handshake));
            if Instant::now() >= at {
                let which = if self.info.activity.last_change_ms.load(Ordering::SeqCst) == 0 {
                    "handshake"
                } else {
                    "idle"
                };
                tracing::info!(which, "closing a connection past its {which} timeout");
                crate::metrics::connection_timed_out(which);
                self.closed = true;
                self.stream_shutdown();
                return true;
            }
            let at = tokio::time::Instant::from_std(at);
            if self.timer.deadline() != at {
                self.timer.as_mut().reset(at);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
        }
    }

    fn stream_shutdown(&self) {
        // SAFETY: shutdown on the fd this stream owns; it stays open.
        unsafe { libc::shutdown(self.stream.fd(), libc::SHUT_RDWR) };
    }
}

impl<S: Socket> Connected for Guarded<S> {
    type ConnectInfo = Conn;
    fn connect_info(&self) -> Conn {
        self.info.clone()
    }
}

impl<S: Socket> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Pending => {
                if self.expired(cx) {
                    // End of stream: hyper closes the connection.
                    Poll::Ready(Ok(()))
                } else {
                    Poll::Pending
                }
            }
            ready => ready,
        }
    }
}

impl<S: Socket> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, data)
    }

    // h2 writes a DATA frame's header and payload in one writev when the
    // stream says it can; without these, two writes per frame.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The Unix listener's accepted connections, within the limits;
/// connections over the per-peer cap are closed here and never reach the
/// server.
pub fn guarded(
    listener: tokio::net::UnixListener,
    limits: &LimitsConfig,
) -> impl Stream<Item = io::Result<Guarded<UnixStream>>> + Send + 'static {
    let cap = PeerCap::new(limits);
    let limits = limits.clone();
    let fd_watch = FdWatch::new();
    tokio_stream::wrappers::UnixListenerStream::new(listener).filter_map(move |accepted| {
        let stream = match accepted {
            Ok(stream) => stream,
            // EMFILE and the like: logged by FdWatch's numbers, not fatal.
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                return None;
            }
        };
        fd_watch.saw(stream.fd());
        let uid = stream.peer_cred().map_or(u32::MAX, |c| c.uid());
        let slot = cap.admit(PeerKey::Uid(uid))?;
        Some(Ok(Guarded::new(stream, Instant::now(), slot, &limits)))
    })
}

/// The insecure TCP listener's accepted connections, within the limits
/// (per peer IP address).
pub fn guarded_tcp(
    listener: tokio::net::TcpListener,
    limits: &LimitsConfig,
) -> impl Stream<Item = io::Result<Guarded<TcpStream>>> + Send + 'static {
    let cap = PeerCap::new(limits);
    let limits = limits.clone();
    let fd_watch = FdWatch::new();
    tokio_stream::wrappers::TcpListenerStream::new(listener).filter_map(move |accepted| {
        let stream = match accepted {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!("TCP accept failed: {e}");
                return None;
            }
        };
        fd_watch.saw(stream.fd());
        let ip = stream.peer_addr().ok()?.ip();
        let slot = cap.admit(PeerKey::Ip(ip))?;
        let _ = stream.set_nodelay(true);
        Some(Ok(Guarded::new(stream, Instant::now(), slot, &limits)))
    })
}

/// Watches how near the daemon is to its fd limit. A new fd takes the
/// lowest free number, so an accepted socket's number is a cheap lower
/// bound of the open fds.
pub struct FdWatch {
    limit: u64,
    warned_at: Mutex<Option<Instant>>,
}

impl Default for FdWatch {
    fn default() -> FdWatch {
        FdWatch::new()
    }
}

impl FdWatch {
    pub fn new() -> FdWatch {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        FdWatch {
            limit,
            warned_at: Mutex::new(None),
        }
    }

    pub fn saw(&self, fd: i32) {
        let open = fd.max(0) as u64 + 1;
        crate::metrics::open_fds(open, self.limit);
        if open.saturating_mul(100) < self.limit.saturating_mul(FD_WARN_PERCENT) {
            return;
        }
        let mut warned = self.warned_at.lock().unwrap_or_else(|e| e.into_inner());
        if warned.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
            *warned = Some(Instant::now());
            tracing::warn!(
                open_fds = open,
                limit = self.limit,
                "the daemon is near its open-file limit: new connections and commands will \
                 fail soon; raise LimitNOFILE or lower [limits] connections_per_peer"
            );
        }
    }
}

/// Counts each call on its connection (see `Activity`) from its request
/// until its response body ends.
#[derive(Clone)]
pub struct CountCalls<S> {
    inner: S,
}

impl<S> CountCalls<S> {
    pub fn new(inner: S) -> Self {
        CountCalls { inner }
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for CountCalls<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower::Service<http::Request<tonic::body::Body>> for CountCalls<S>
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = req.extensions().get::<Conn>().map(|c| c.activity.call());
        Box::pin(async move {
            let response = inner.call(req).await?;
            Ok(match guard {
                Some(guard) => response.map(|body| {
                    tonic::body::Body::new(Counted {
                        inner: body,
                        _guard: guard,
                    })
                }),
                None => response,
            })
        })
    }
}

/// A response body that holds its call's count until it is done.
struct Counted {
    inner: tonic::body::Body,
    _guard: CallGuard,
}

impl http_body::Body for Counted {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, tonic::Status>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

use tonic::codegen::http;
