//! Requests that cannot wedge the daemon (escape cases B3, B10): bytes that
//! are not a valid request get INVALID_ARGUMENT with reason
//! UNDECODABLE_REQUEST (never INTERNAL, which clients retry) and an audit
//! record naming the method, the caller and the size; an agent at its cap
//! of concurrent calls is refused with RESOURCE_EXHAUSTED and a retry hint
//! while another agent is served. Against the real daemon.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

const METHODS: &[&str] = &[
    "WhoAmI",
    "ReadFile",
    "WriteFile",
    "EditFile",
    "ListDir",
    "Glob",
    "Grep",
    "Stat",
    "MakeDir",
    "Move",
    "Remove",
    "Exec",
    "Run",
];

fn audit_records(d: &Daemon) -> Vec<Value> {
    std::fs::read_to_string(d.dirs.state_dir.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// B3: undecodable bytes to every method.
#[tokio::test]
async fn undecodable_requests_are_invalid_argument_and_recorded() {
    let mut d = Daemon::start().await;
    let cases: Vec<(&str, bytes::Bytes)> = vec![
        // An invalid wire type / truncated varint.
        ("garbage", grpc_frame(&[0xff, 0xff, 0xff, 0xff])),
        // A length-delimited field longer than the message.
        ("overlong field", grpc_frame(&[0x12, 0x7f, b'a'])),
        // A frame header promising more bytes than are sent.
        ("short frame", {
            let mut v = vec![0u8, 0, 0, 0, 100];
            v.extend_from_slice(&[0x12, 0x01, b'a']);
            v.into()
        }),
    ];
    let mut sent = 0;
    for (name, body) in &cases {
        for method in METHODS {
            let status = tokio::time::timeout(
                Duration::from_secs(10),
                raw_unary(d.channel().await, method, full_body(body.clone())),
            )
            .await
            .unwrap_or_else(|_| panic!("{name} to {method} hung"));
            sent += 1;
            assert_eq!(
                status.code(),
                tonic::Code::InvalidArgument,
                "{name} to {method}: {}",
                describe(&status)
            );
            assert_eq!(
                agentjail::error::reason_of(&status).as_deref(),
                Some("UNDECODABLE_REQUEST"),
                "{name} to {method}: {}",
                describe(&status)
            );
            assert!(
                status.metadata().get("agentjail-audit-seq").is_some(),
                "{name} to {method}: the refusal names its record"
            );
        }
    }
    assert!(list_names(&d.dirs.ws).is_empty(), "nothing was written");
    let recs = audit_records(&d);
    let refused: Vec<&Value> = recs
        .iter()
        .filter(|r| r["outcome"]["reason"] == "UNDECODABLE_REQUEST")
        .collect();
    assert_eq!(refused.len(), sent, "one record per undecodable request");
    for method in METHODS {
        let r = refused
            .iter()
            .find(|r| r["method"] == *method && r["args"]["request_bytes"] == 4)
            .unwrap_or_else(|| panic!("the garbage {method} record: {refused:#?}"));
        assert_eq!(r["caller"]["uid"], my_uid(), "{r:#}");
        assert_eq!(r["outcome"]["status"], "INVALID_ARGUMENT", "{r:#}");
    }
    // Positive control: a valid raw request succeeds, and the daemon serves.
    let status = raw_unary(d.channel().await, "WhoAmI", full_body(grpc_frame(&[]))).await;
    assert_eq!(status.code(), tonic::Code::Ok, "{}", describe(&status));
    let out = d.cli(&["whoami"]);
    assert!(out.status.success());
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_agentjail"))
        .args(["audit", "verify"])
        .arg(d.dirs.state_dir.join("audit.jsonl"))
        .output()
        .unwrap();
    assert!(verify.status.success(), "{verify:?}");
    d.assert_serving().await;
}
