//! Remote callers over TCP + TLS 1.3: client certificates (mTLS) and bearer
//! tokens, mapped to agents by the policy; both reload with the policy.
//! Certificates are made here with rcgen; clients are tonic's and stock
//! grpcio's.

mod common;
#[path = "remote_common/mod.rs"]
mod remote_common;

use agentjail::proto::tool_sandbox_client::ToolSandboxClient;
use agentjail::proto::*;
use common::*;
use prost::Message;
use remote_common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};

const WORKER_SAN: &str = "worker-1.agents.test";
const WORKER_CN: &str = "worker-cn-only";

/// Tries to create `name` in the workspace over `channel`.
async fn write(channel: &Channel, token: Option<&str>, name: &str) -> Result<(), tonic::Status> {
    ToolSandboxClient::new(channel.clone())
        .write_file(with_token(write_req(name, "remote write\n"), token))
        .await
        .map(|_| ())
}

/// A connection that must not get through: the handshake fails, or the
/// first call does; and a write attempted over it leaves no file.
async fn assert_refused_connection(r: &Remote, identity: &Leaf, file: &str, what: &str) {
    if let Ok(channel) = r.connect(Some(identity)).await {
        let w = who(&channel, None).await;
        assert!(w.is_err(), "{what}: the call was answered: {w:?}");
        assert!(write(&channel, None, file).await.is_err(), "{what}");
    }
    assert!(!exists(&r.d.dirs.w(file)), "{what}: the write happened");
}

// ---------------------------------------------------------------- mTLS

#[tokio::test]
async fn mtls_names_the_agent_and_refuses_missing_foreign_and_expired_certificates() {
    let ca = Ca::new("agentjail test CA");
    let other_ca = Ca::new("some other CA");
    let r = Remote::start(&ca, Some(&ca), &remote_names(&[WORKER_SAN, WORKER_CN])).await;

    // Positive control: a certificate from the CA, named in the policy by
    // its DNS SAN.
    let good = ca.client(&[WORKER_SAN], "ignored-cn");
    let channel = r.connect(Some(&good)).await.unwrap();
    let w = who(&channel, None).await.unwrap();
    assert_eq!(w.agent, WORKER);
    assert_eq!(w.identified_by, "tls-certificate");
    write(&channel, None, "by-cert.txt").await.unwrap();
    assert_eq!(get(&r.d.dirs.w("by-cert.txt")), "remote write\n");

    // Named by its common name when it has no SAN the policy knows.
    let cn_only = ca.client(&[], WORKER_CN);
    let channel = r.connect(Some(&cn_only)).await.unwrap();
    assert_eq!(who(&channel, None).await.unwrap().agent, WORKER);

    // No certificate (and no token): UNAUTHENTICATED, nothing written.
    let channel = r.connect(None).await.unwrap();
    let s = who(&channel, None).await.unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated, "{}", describe(&s));
    assert_eq!(reason_of_status(&s), "UNAUTHENTICATED");
    assert!(
        s.message().contains("client certificate"),
        "{}",
        s.message()
    );
    let s = write(&channel, None, "no-cert.txt").await.unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
    assert!(!exists(&r.d.dirs.w("no-cert.txt")));

    // Signed by another CA, or expired: refused at the handshake.
    let foreign = other_ca.client(&[WORKER_SAN], WORKER_CN);
    assert_refused_connection(&r, &foreign, "foreign.txt", "another CA").await;
    let expired = ca.expired_client(&[WORKER_SAN], WORKER_CN);
    assert_refused_connection(&r, &expired, "expired.txt", "expired").await;

    // A valid certificate whose names the policy does not know.
    let stranger = ca.client(&["stranger.agents.test"], "stranger");
    let channel = r.connect(Some(&stranger)).await.unwrap();
    let s = who(&channel, None).await.unwrap_err();
    assert_eq!(reason_of_status(&s), "UNKNOWN_CALLER", "{}", describe(&s));
    assert!(s.message().contains("stranger"), "{}", s.message());
    assert!(write(&channel, None, "stranger.txt").await.is_err());
    assert!(!exists(&r.d.dirs.w("stranger.txt")));

    // Plain HTTP/2 to the TLS port gets nowhere.
    let plain = Endpoint::from_shared(format!("http://127.0.0.1:{}", r.port))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await;
    if let Ok(plain) = plain {
        assert!(who(&plain, None).await.is_err());
    }

    // The refusals are audited with what the caller presented.
    let audit = std::fs::read_to_string(r.d.dirs.state_dir.join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"transport\":\"tls\""), "{audit}");
    assert!(audit.contains("stranger.agents.test"), "{audit}");
    assert!(r.d.log().contains("TLS handshake refused"), "{}", r.d.log());
}

#[tokio::test]
async fn a_reload_removes_a_certificate_name_and_replaces_the_client_ca() {
    let ca = Ca::new("agentjail test CA");
    let next_ca = Ca::new("the next CA");
    let r = Remote::start(&ca, Some(&ca), &remote_names(&[WORKER_SAN])).await;
    let good = ca.client(&[WORKER_SAN], "w");
    let channel = r.connect(Some(&good)).await.unwrap();
    assert_eq!(who(&channel, None).await.unwrap().agent, WORKER);

    // The name goes: refused on the open connection and on a new one.
    r.reload(&remote_names(&["someone-else.agents.test"])).await;
    let s = who(&channel, None).await.unwrap_err();
    assert_eq!(reason_of_status(&s), "UNKNOWN_CALLER", "{}", describe(&s));
    let fresh = r.connect(Some(&good)).await.unwrap();
    assert_eq!(
        reason_of_status(&who(&fresh, None).await.unwrap_err()),
        "UNKNOWN_CALLER"
    );
    assert!(write(&channel, None, "after-removal.txt").await.is_err());
    assert!(!exists(&r.d.dirs.w("after-removal.txt")));

    // The name comes back, and the client CA file is replaced: the old
    // CA's certificate is refused even on its open connection.
    r.reload(&remote_names(&[WORKER_SAN])).await;
    assert_eq!(who(&channel, None).await.unwrap().agent, WORKER);
    std::fs::write(r.tls_dir.join("clients-ca.crt"), next_ca.pem()).unwrap();
    r.reload(&format!("{}\n# CA rotated", remote_names(&[WORKER_SAN])))
        .await;
    let s = who(&channel, None).await.unwrap_err();
    assert_eq!(reason_of_status(&s), "UNAUTHENTICATED", "{}", describe(&s));
    assert!(
        s.message().contains("no longer accepted"),
        "{}",
        s.message()
    );
    assert_refused_connection(&r, &good, "old-ca.txt", "old CA after reload").await;
    // Positive control: a certificate from the new CA.
    let renewed = next_ca.client(&[WORKER_SAN], "w");
    let channel = r.connect(Some(&renewed)).await.unwrap();
    assert_eq!(who(&channel, None).await.unwrap().agent, WORKER);
    write(&channel, None, "new-ca.txt").await.unwrap();
    assert!(exists(&r.d.dirs.w("new-ca.txt")));
}

#[tokio::test]
async fn a_reload_with_unreadable_tls_files_keeps_the_old_ones() {
    let ca = Ca::new("agentjail test CA");
    let r = Remote::start(&ca, Some(&ca), &remote_names(&[WORKER_SAN])).await;
    let before = r.version().await;
    std::fs::write(r.tls_dir.join("clients-ca.crt"), "not a certificate\n").unwrap();
    std::fs::write(
        r.d.dirs.policy_dir.join("test.toml"),
        policy(
            &r.d.dirs,
            &format!("{}\n# edited", remote_names(&[WORKER_SAN])),
        ),
    )
    .unwrap();
    send_signal(r.d.pid, rustix::process::Signal::HUP);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !r.d.log().contains("the TLS files") {
        assert!(
            Instant::now() < deadline,
            "no refusal logged:\n{}",
            r.d.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(r.version().await, before, "the policy was swapped anyway");
    let good = ca.client(&[WORKER_SAN], "w");
    let channel = r.connect(Some(&good)).await.unwrap();
    assert_eq!(who(&channel, None).await.unwrap().agent, WORKER);
}

// --------------------------------------------------------------- tokens

#[tokio::test]
async fn tokens_are_accepted_refused_and_rotated_by_reload() {
    let ca = Ca::new("agentjail test CA");
    let old = "aj-token-old-5b1f0c7e9d2a48b3a6c1";
    let new = "aj-token-new-83e2d94f10ab4c6e9f27";
    // No client CA: this listener takes tokens only.
    let r = Remote::start(&ca, None, &remote_tokens(&[old])).await;
    let channel = r.connect(None).await.unwrap();

    let w = who(&channel, Some(old)).await.unwrap();
    assert_eq!(w.agent, WORKER);
    assert_eq!(w.identified_by, "tls-token");
    write(&channel, Some(old), "by-token.txt").await.unwrap();
    assert!(exists(&r.d.dirs.w("by-token.txt")));

    for (token, what) in [
        (Some("aj-token-wrong"), "a wrong token"),
        (None, "no token"),
    ] {
        let s = write(&channel, token, "refused.txt").await.unwrap_err();
        assert_eq!(s.code(), Code::Unauthenticated, "{what}: {}", describe(&s));
        assert_eq!(reason_of_status(&s), "UNAUTHENTICATED", "{what}");
    }
    let mut req = Request::new(WhoAmIRequest {});
    req.metadata_mut()
        .insert("authorization", format!("Basic {old}").parse().unwrap());
    let s = ToolSandboxClient::new(channel.clone())
        .who_am_i(req)
        .await
        .unwrap_err();
    assert!(s.message().contains("Bearer"), "{}", describe(&s));
    assert!(!exists(&r.d.dirs.w("refused.txt")));

    // Rotation: both tokens during the switch, then only the new one.
    r.reload(&remote_tokens(&[old, new])).await;
    assert_eq!(who(&channel, Some(old)).await.unwrap().agent, WORKER);
    assert_eq!(who(&channel, Some(new)).await.unwrap().agent, WORKER);
    r.reload(&remote_tokens(&[new])).await;
    let s = write(&channel, Some(old), "rotated-out.txt")
        .await
        .unwrap_err();
    assert_eq!(reason_of_status(&s), "UNAUTHENTICATED", "{}", describe(&s));
    assert!(!exists(&r.d.dirs.w("rotated-out.txt")));
    write(&channel, Some(new), "rotated-in.txt").await.unwrap();
    assert!(exists(&r.d.dirs.w("rotated-in.txt")));

    // A token never reaches the audit log or the daemon's log.
    let audit = std::fs::read_to_string(r.d.dirs.state_dir.join("audit.jsonl")).unwrap();
    let log = r.d.log();
    for token in [old, new] {
        assert!(!audit.contains(token), "token in the audit log");
        assert!(!log.contains(token), "token in the daemon log");
    }
    assert!(audit.contains("token sha256:"), "{audit}");
}

#[tokio::test]
async fn a_raw_token_in_the_policy_is_refused_with_its_position() {
    let dirs = Dirs::new();
    let p = policy(&dirs, "token_sha256 = [\"my-secret-token\"]");
    std::fs::write(dirs.policy_dir.join("test.toml"), &p).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["policy", "check"])
        .arg(&dirs.policy_dir)
        .output()
        .unwrap();
    let stderr =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("test.toml:"), "{stderr}");
    assert!(stderr.contains("64 hex digits"), "{stderr}");
}

// --------------------------------------------------------------- grpcio

const GRPCIO_CLIENT: &str = r#"
import json, socket, ssl, sys
import grpc
port, ca, cert, key = sys.argv[1:5]
read = lambda p: open(p, "rb").read()
out = {}
opts = [("grpc.ssl_target_name_override", "localhost")]
def who(creds):
    ch = grpc.secure_channel(f"127.0.0.1:{port}", creds, options=opts)
    try:
        return "ok", ch.unary_unary("/agentjail.v1.ToolSandbox/WhoAmI")(b"", timeout=10).hex()
    except grpc.RpcError as e:
        return e.code().name, dict(e.trailing_metadata() or ()).get("agentjail-reason", "")
    finally:
        ch.close()
out["with_cert"] = who(grpc.ssl_channel_credentials(read(ca), read(key), read(cert)))
out["without_cert"] = who(grpc.ssl_channel_credentials(read(ca)))
def handshake(version):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    ctx.minimum_version = ctx.maximum_version = version
    ctx.set_alpn_protocols(["h2"])
    try:
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port))), server_hostname="localhost") as s:
            return [s.version(), s.selected_alpn_protocol()]
    except (ssl.SSLError, OSError) as e:
        return ["refused", str(e)]
out["tls13"] = handshake(ssl.TLSVersion.TLSv1_3)
out["tls12"] = handshake(ssl.TLSVersion.TLSv1_2)
print(json.dumps(out))
"#;

fn write_pem(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

#[tokio::test]
async fn a_stock_grpcio_secure_channel_with_a_client_certificate_works() {
    let ca = Ca::new("agentjail test CA");
    let r = Remote::start(&ca, Some(&ca), &remote_names(&[WORKER_SAN])).await;
    let leaf = ca.client(&[WORKER_SAN], "w");
    let ca_path = write_pem(&r.tls_dir, "py-ca.crt", &ca.pem());
    let cert = write_pem(&r.tls_dir, "py-client.crt", &leaf.cert);
    let key = write_pem(&r.tls_dir, "py-client.key", &leaf.key);
    // The daemon is another process: blocking this thread holds up nothing.
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(GRPCIO_CLIENT)
        .arg(r.port.to_string())
        .args([&ca_path, &cert, &key])
        .output()
        .expect("python3 runs (CI installs it with grpcio)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the grpcio client failed (is grpcio installed? `pip install grpcio`):\n{}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(result["with_cert"][0], "ok", "{result}");
    let bytes = hex::decode(result["with_cert"][1].as_str().unwrap()).unwrap();
    let w = WhoAmIResponse::decode(bytes.as_slice()).unwrap();
    assert_eq!(w.agent, WORKER);
    assert_eq!(w.identified_by, "tls-certificate");
    assert_eq!(result["without_cert"][0], "UNAUTHENTICATED", "{result}");
    assert_eq!(result["without_cert"][1], "UNAUTHENTICATED", "{result}");
    // TLS 1.3 with HTTP/2 by ALPN; TLS 1.2 is refused.
    assert_eq!(result["tls13"][0], "TLSv1.3", "{result}");
    assert_eq!(result["tls13"][1], "h2", "{result}");
    assert_eq!(result["tls12"][0], "refused", "{result}");
}

// --------------------------------------------------------- configuration

#[tokio::test]
async fn an_insecure_listener_off_loopback_refuses_to_start() {
    let dirs = Dirs::new();
    dirs.write_setup(
        &standard_policy(&dirs),
        "[tcp]\naddress = \"0.0.0.0:1\"\ninsecure = true\nagent = \"tester\"\n",
    );
    let status = Serve::new()
        .until_exit(&dirs, "the daemon started although it must refuse")
        .await;
    let log = std::fs::read_to_string(&dirs.log).unwrap();
    assert!(!status.success(), "{log}");
    assert!(log.contains("loopback"), "{log}");
    assert!(!exists(&dirs.socket));
}

// ----------------------------------------------------- connection limits

/// B6 on the TLS listener: the per-peer cap is taken at accept, before any
/// TLS handshake, so sockets that never handshake cannot pile up; they are
/// closed by `handshake_timeout_ms`, and the peer is then served again.
/// Control: the worker is served before.
#[tokio::test]
async fn tls_connections_are_held_to_the_per_peer_cap_before_their_handshake() {
    use std::io::Read;
    let ca = Ca::new("agentjail test CA");
    let r = Remote::start_with_config(
        &ca,
        Some(&ca),
        |dirs| policy(dirs, &remote_names(&[WORKER_SAN])),
        "[limits]\nconnections_per_peer = 5\nhandshake_timeout_ms = 1500\n",
    )
    .await;
    let worker = ca.client(&[WORKER_SAN], WORKER_CN);
    let channel = r.connect(Some(&worker)).await.unwrap();
    assert_eq!(who(&channel, None).await.unwrap().agent, WORKER);
    drop(channel);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Five sockets that never start their TLS handshake fill the peer's cap.
    let mut silent: Vec<std::net::TcpStream> = (0..5)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", r.port)).unwrap())
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let over = r.connect(Some(&worker)).await;
    let answered = match &over {
        Ok(channel) => who(channel, None).await.is_ok(),
        Err(_) => false,
    };
    assert!(!answered, "a connection over the cap is closed at accept");
    drop(over);
    // The silent ones are closed by the handshake timeout.
    let started = Instant::now();
    let mut closed = 0;
    for s in &mut silent {
        let left = Duration::from_secs(5).saturating_sub(started.elapsed());
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => closed += 1,
            _ => {}
        }
    }
    assert_eq!(closed, 5, "sockets that never handshake are closed");
    let log = r.d.log();
    assert!(log.contains("connections_per_peer"), "{log}");
    assert!(log.contains("no handshake within"), "{log}");
    // Their slots are given back: the worker is served again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let channel = r.connect(Some(&worker)).await.unwrap();
    assert_eq!(who(&channel, None).await.unwrap().agent, WORKER);
}
