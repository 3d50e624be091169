//! Stock gRPC clients over the Unix socket with no options: grpcio (sync
//! and aio) sends the percent-encoded socket path as `:authority`, which
//! h2 alone would reset; reflection v1alpha for grpcio-reflection. And the
//! other side of the shim: a request that breaks HTTP/2's header rules is
//! still refused by h2.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// A header field: name, value.
type Field<'a> = (&'a [u8], &'a [u8]);

const GRPCIO_AUTHORITY: &[u8] = b"unix:%2Frun%2Fagentjail%2Fagentjail.sock";

/// Generates the Python stubs from proto/ as a grpcio user would.
fn python_stubs(dir: &Path) {
    let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    let out = Command::new("python3")
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(&proto)
        .arg(format!("--python_out={}", dir.display()))
        .arg(format!("--grpc_python_out={}", dir.display()))
        .arg(proto.join("agentjail/v1/agentjail.proto"))
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "grpc_tools.protoc failed (.ci/run installs grpcio-tools with pip): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn grpcio_sync_aio_and_reflection_work_without_channel_options() {
    let mut d = Daemon::start().await;
    let stubs = d.dirs.root.join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    python_stubs(&stubs);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/stock_grpcio.py");
    let socket = d.dirs.socket.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .arg(&socket)
            .arg(&stubs)
            .output()
            .expect("run python3")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the grpcio client failed:\n{stdout}\n{}\ndaemon log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    let checks: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let check = |name: &str| {
        checks
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no {name} check in {stdout}"))
            .clone()
    };
    let sync = check("sync");
    assert_eq!(sync["agent"], AGENT);
    assert_eq!(sync["again"], AGENT);
    assert_eq!(check("aio")["agents"], serde_json::json!(vec![AGENT; 5]));
    let reflection = check("reflection");
    let services = reflection["services"].as_array().unwrap();
    assert!(
        services.iter().any(|s| s == "agentjail.v1.ToolSandbox"),
        "{reflection}"
    );
    assert_eq!(reflection["file"], "agentjail/v1/agentjail.proto");
    d.assert_serving().await;
}

/// One request over a raw HTTP/2 connection; returns the first frame the
/// daemon sends on stream 1 (type, payload), or a GOAWAY (type, error code).
async fn raw_request(socket: &Path, extra: &[Field<'_>]) -> (u8, Vec<u8>) {
    let mut fields: Vec<Field> = vec![
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/agentjail.v1.ToolSandbox/WhoAmI"),
        (b":authority", GRPCIO_AUTHORITY),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
    ];
    fields.extend_from_slice(extra);
    let mut encoder = httlib_hpack::Encoder::with_dynamic_size(4096);
    let mut block = Vec::new();
    for (name, value) in fields {
        let flags = httlib_hpack::Encoder::BEST_FORMAT | httlib_hpack::Encoder::HUFFMAN_VALUE;
        encoder
            .encode((name.to_vec(), value.to_vec(), flags), &mut block)
            .unwrap();
    }
    let mut bytes = PREFACE.to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // empty SETTINGS
    let len = block.len() as u32;
    bytes.extend_from_slice(&len.to_be_bytes()[1..]);
    bytes.extend_from_slice(&[1, 0x4, 0, 0, 0, 1]); // HEADERS, END_HEADERS, stream 1
    bytes.extend_from_slice(&block);
    // An empty WhoAmIRequest message, ending the stream.
    bytes.extend_from_slice(&[0, 0, 5, 0, 0x1, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
    let mut conn = tokio::net::UnixStream::connect(socket).await.unwrap();
    conn.write_all(&bytes).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut header = [0u8; 9];
            conn.read_exact(&mut header).await.expect("a frame");
            let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
            let mut payload = vec![0u8; len];
            conn.read_exact(&mut payload).await.expect("its payload");
            let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
            if stream == 1 {
                return (header[3], payload);
            }
            if header[3] == GOAWAY {
                // Last stream id, then the error code.
                return (GOAWAY, payload[4..8].to_vec());
            }
        }
    })
    .await
    .expect("the daemon answered stream 1")
}

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const GOAWAY: u8 = 0x7;
const PROTOCOL_ERROR: [u8; 4] = [0, 0, 0, 1];

#[tokio::test]
async fn h2_still_refuses_requests_that_break_the_header_rules() {
    let mut d = Daemon::start().await;
    // Control: grpcio's authority, otherwise well-formed: answered.
    let (kind, _) = raw_request(&d.dirs.socket, &[]).await;
    assert_eq!(kind, HEADERS, "a well-formed request gets response headers");
    let broken: [(&str, &[Field]); 4] = [
        ("an upper-case header name", &[(b"X-Upper", b"1")]),
        (
            "a connection-specific header",
            &[(b"connection", b"keep-alive")],
        ),
        ("a second :path", &[(b":path", b"/other")]),
        (
            "a pseudo-header after a regular one",
            &[(b":status", b"200")],
        ),
    ];
    for (what, extra) in broken {
        // h2 resets the stream, or (for names it cannot parse) the connection.
        let (kind, payload) = raw_request(&d.dirs.socket, extra).await;
        assert!(
            kind == RST_STREAM || kind == GOAWAY,
            "{what}: refused, not answered (frame type {kind})"
        );
        assert_eq!(payload, PROTOCOL_ERROR, "{what}: as a protocol error");
    }
    d.assert_serving().await;
}
