//! The TCP listener's TLS 1.3 (rustls with ring, no OpenSSL).
//!
//! The server certificate, its key and the CA that signs client
//! certificates are files named by the config. They are read at start and
//! again at every policy reload; each new connection is handshaken with the
//! material in force, and every call re-checks its client certificate
//! against the CA in force, so a reload also applies to connections that
//! are already open.

use super::connections::{FdWatch, Guarded, PeerCap, PeerKey};
use crate::config::{LimitsConfig, TlsConfig};
use anyhow::Context;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::server::danger::ClientCertVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

/// Handshaken connections waiting for the gRPC server to take them.
const ACCEPT_QUEUE: usize = 64;

/// What one load of the TLS files produced.
pub struct TlsMaterial {
    server: Arc<ServerConfig>,
    /// Present when client certificates are asked for (`client_ca`).
    client_verifier: Option<Arc<dyn ClientCertVerifier>>,
}

fn read_certs(path: &Path, what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read the {what} {} (PEM)", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "the {what} {} holds no PEM certificate",
        path.display()
    );
    Ok(certs)
}

impl TlsMaterial {
    /// Reads and checks every file; any problem is an error that names the
    /// file (the daemon does not start, or a reload is refused).
    pub fn load(cfg: &TlsConfig) -> anyhow::Result<TlsMaterial> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = read_certs(&cfg.cert, "server certificate")?;
        let key = PrivateKeyDer::from_pem_file(&cfg.key)
            .with_context(|| format!("cannot read the server key {} (PEM)", cfg.key.display()))?;
        let client_verifier = match &cfg.client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs(ca, "client CA")? {
                    roots
                        .add(cert)
                        .with_context(|| format!("bad CA certificate in {}", ca.display()))?;
                }
                let builder =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                // Without a certificate a caller may still present a token.
                let builder = if cfg.require_client_cert {
                    builder
                } else {
                    builder.allow_unauthenticated()
                };
                Some(
                    builder
                        .build()
                        .context("cannot build the client verifier")?,
                )
            }
            None => None,
        };
        let builder = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("TLS 1.3 is not available")?;
        let builder = match &client_verifier {
            Some(v) => builder.with_client_cert_verifier(v.clone()),
            None => builder.with_no_client_auth(),
        };
        let mut server = builder.with_single_cert(chain, key).with_context(|| {
            format!(
                "the server key {} does not fit the certificate {}",
                cfg.key.display(),
                cfg.cert.display()
            )
        })?;
        // gRPC clients (grpcio, grpc-go) require HTTP/2 by ALPN.
        server.alpn_protocols = vec![b"h2".to_vec()];
        Ok(TlsMaterial {
            server: Arc::new(server),
            client_verifier,
        })
    }

    /// Whether client certificates are asked for and verified.
    pub fn verifies_clients(&self) -> bool {
        self.client_verifier.is_some()
    }

    /// Re-checks a connection's certificate chain (leaf first) against the
    /// CA in force now: a reload that replaced the CA, or time that expired
    /// the certificate, refuses the next call on an open connection.
    pub fn still_accepts(&self, chain: &[CertificateDer<'static>]) -> Result<(), String> {
        let Some(verifier) = &self.client_verifier else {
            return Err("client certificates are no longer accepted".into());
        };
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err("no certificate".into());
        };
        verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Source of the material in force (the daemon state).
pub trait CurrentTls: Send + Sync + 'static {
    fn current_tls(&self) -> Option<Arc<TlsMaterial>>;
}

/// Accepts TCP connections and handshakes each in its own task, so a slow
/// or silent client holds up no one; yields only finished TLS streams,
/// under the connection limits (`super::connections`): the per-peer cap is
/// taken at accept, before the handshake, and a client that has not
/// finished its TLS handshake within `handshake_timeout_ms` is dropped, so
/// idle sockets cannot pile up.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<dyn CurrentTls>,
    limits: &LimitsConfig,
) -> ReceiverStream<std::io::Result<Guarded<TlsStream<TcpStream>>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(ACCEPT_QUEUE);
    let cap = PeerCap::new(limits);
    let limits = limits.clone();
    let handshake = Duration::from_millis(limits.handshake_timeout_ms);
    let fd_watch = FdWatch::new();
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of fds and the like: back off instead of spinning.
                    tracing::warn!("TCP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let accepted = Instant::now();
            if tx.is_closed() {
                return;
            }
            fd_watch.saw(std::os::fd::AsRawFd::as_raw_fd(&tcp));
            let Some(slot) = cap.admit(PeerKey::Ip(peer.ip())) else {
                continue;
            };
            let Some(material) = tls.current_tls() else {
                continue;
            };
            let acceptor = TlsAcceptor::from(material.server.clone());
            let tx = tx.clone();
            let limits = limits.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let guarded = Guarded::new(stream, accepted, slot, &limits);
                        let _ = tx.send(Ok(guarded)).await;
                    }
                    Ok(Err(e)) => log_refused(peer, &e.to_string()),
                    Err(_) => log_refused(peer, "no handshake within handshake_timeout_ms"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

fn log_refused(peer: SocketAddr, why: &str) {
    crate::metrics::tls_handshake_refused();
    tracing::info!(peer = %peer, "TLS handshake refused: {why}");
}

/// Names a verified client certificate carries, in the order the policy
/// matches them: DNS and URI subject alternative names, then the subject's
/// common names.
pub fn certificate_names(leaf: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) | GeneralName::URI(n) => names.push(n.to_string()),
                _ => {}
            }
        }
    }
    for cn in cert.subject().iter_common_name() {
        if let Ok(cn) = cn.as_str() {
            names.push(cn.to_string());
        }
    }
    names
}
