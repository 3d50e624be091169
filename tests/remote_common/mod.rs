//! Shared by the remote-caller suites (`remote_auth.rs`, `roles.rs`): a
//! test PKI made with rcgen, a daemon whose TCP listener serves TLS, and
//! TLS clients with a certificate or a bearer token. Included with
//! `#[path = "remote_common/mod.rs"]` after `mod common;`.

#![allow(dead_code)]

use crate::common::*;
use agentjail::proto::tool_sandbox_client::ToolSandboxClient;
use agentjail::proto::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tonic::Request;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// The agent remote callers are mapped to.
pub const WORKER: &str = "worker";

// ------------------------------------------------------------------ PKI

pub struct Ca {
    pub issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        Ca {
            issuer: CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn sign(
        &self,
        sans: &[&str],
        cn: &str,
        purpose: ExtendedKeyUsagePurpose,
    ) -> CertificateParams {
        let mut p =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![purpose];
        p
    }

    pub fn issue(&self, p: CertificateParams) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    pub fn server(&self) -> Leaf {
        self.issue(self.sign(
            &["localhost", "127.0.0.1"],
            "agentjail",
            ExtendedKeyUsagePurpose::ServerAuth,
        ))
    }

    pub fn client(&self, sans: &[&str], cn: &str) -> Leaf {
        self.issue(self.sign(sans, cn, ExtendedKeyUsagePurpose::ClientAuth))
    }

    pub fn expired_client(&self, sans: &[&str], cn: &str) -> Leaf {
        let mut p = self.sign(sans, cn, ExtendedKeyUsagePurpose::ClientAuth);
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        self.issue(p)
    }
}

// ----------------------------------------------------------- the daemon

pub struct Remote {
    pub d: Daemon,
    pub port: u16,
    /// Verifies the daemon's server certificate.
    pub server_ca: String,
    pub tls_dir: PathBuf,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn token_digest(token: &str) -> String {
    sha256_hex(token)
}

/// The standard policy plus agent `worker`, named by `remote` (the body of
/// its `[agents.remote]` table).
pub fn policy(dirs: &Dirs, remote: &str) -> String {
    format!(
        "{}\n[[agents]]\nname = \"{WORKER}\"\n\n[agents.remote]\n{remote}\n\n\
         [[agents.workspaces]]\nname = \"main\"\npath = \"{}\"\n",
        standard_policy(dirs),
        dirs.ws.display()
    )
}

pub fn remote_names(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    format!("tls_names = [{}]", quoted.join(", "))
}

pub fn remote_tokens(tokens: &[&str]) -> String {
    let quoted: Vec<String> = tokens
        .iter()
        .map(|t| format!("{:?}", token_digest(t)))
        .collect();
    format!("token_sha256 = [{}]", quoted.join(", "))
}

impl Remote {
    /// A daemon whose TCP listener serves TLS with a server certificate
    /// from `server_ca`, and verifies client certificates against
    /// `client_ca` when given.
    pub async fn start(server_ca: &Ca, client_ca: Option<&Ca>, remote: &str) -> Remote {
        Remote::start_with(server_ca, client_ca, |dirs| policy(dirs, remote)).await
    }

    /// As `start`, with the whole policy made by `policy`.
    pub async fn start_with(
        server_ca: &Ca,
        client_ca: Option<&Ca>,
        policy: impl FnOnce(&Dirs) -> String,
    ) -> Remote {
        Remote::start_with_config(server_ca, client_ca, policy, "").await
    }

    /// As `start_with`, with `config_extra` in the daemon config.
    pub async fn start_with_config(
        server_ca: &Ca,
        client_ca: Option<&Ca>,
        policy: impl FnOnce(&Dirs) -> String,
        config_extra: &str,
    ) -> Remote {
        let dirs = Dirs::new();
        let tls_dir = dirs.root.join("tls");
        std::fs::create_dir_all(&tls_dir).unwrap();
        let server = server_ca.server();
        std::fs::write(tls_dir.join("server.crt"), &server.cert).unwrap();
        std::fs::write(tls_dir.join("server.key"), &server.key).unwrap();
        let mut tls = format!(
            "[tcp.tls]\ncert = \"{0}/server.crt\"\nkey = \"{0}/server.key\"\n",
            tls_dir.display()
        );
        if let Some(ca) = client_ca {
            std::fs::write(tls_dir.join("clients-ca.crt"), ca.pem()).unwrap();
            tls.push_str(&format!(
                "client_ca = \"{}/clients-ca.crt\"\n",
                tls_dir.display()
            ));
        }
        let port = free_port();
        let policy = policy(&dirs);
        let d = Daemon::start_with(
            dirs,
            &policy,
            &format!("{config_extra}\n[tcp]\naddress = \"127.0.0.1:{port}\"\n{tls}"),
        )
        .await;
        Remote {
            d,
            port,
            server_ca: server_ca.pem(),
            tls_dir,
        }
    }

    /// A new TLS connection, with `identity` as client certificate.
    pub async fn connect(&self, identity: Option<&Leaf>) -> Result<Channel, String> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.server_ca))
            .domain_name("localhost");
        if let Some(leaf) = identity {
            tls = tls.identity(Identity::from_pem(&leaf.cert, &leaf.key));
        }
        Endpoint::from_shared(format!("https://127.0.0.1:{}", self.port))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| format!("connect: {e:?}"))
    }

    /// Replaces the policy and reloads (SIGHUP); returns once the new
    /// version is in force.
    pub async fn reload(&self, remote: &str) {
        let before = self.version().await;
        std::fs::write(
            self.d.dirs.policy_dir.join("test.toml"),
            policy(&self.d.dirs, remote),
        )
        .unwrap();
        send_signal(self.d.pid, rustix::process::Signal::HUP);
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.version().await == before {
            assert!(
                Instant::now() < deadline,
                "the reload did not happen; log:\n{}",
                self.d.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn version(&self) -> String {
        let mut c = self.d.client().await;
        ok(c.who_am_i(WhoAmIRequest {}).await)
            .info
            .unwrap()
            .policy_version
    }
}

pub fn reason_of_status(s: &tonic::Status) -> String {
    agentjail::error::reason_of(s).unwrap_or_default()
}

pub fn with_token<T>(msg: T, token: Option<&str>) -> Request<T> {
    let mut req = Request::new(msg);
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    req
}

pub async fn who(channel: &Channel, token: Option<&str>) -> Result<WhoAmIResponse, tonic::Status> {
    ToolSandboxClient::new(channel.clone())
        .who_am_i(with_token(WhoAmIRequest {}, token))
        .await
        .map(|r| r.into_inner())
}
