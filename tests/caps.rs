//! Per-agent caps (escape case B10): an agent that floods blocking file
//! calls is refused past its cap with RESOURCE_EXHAUSTED, reason
//! TOO_MANY_CONCURRENT_CALLS and a retry hint, while another agent's calls
//! are served. Against the real daemon; the second agent is the TCP
//! listener's.

mod common;

use agentjail::proto::tool_sandbox_client::ToolSandboxClient;
use agentjail::proto::*;
use common::*;
use std::time::{Duration, Instant};

#[tokio::test]
async fn one_agent_flooding_blocking_calls_does_not_starve_another() {
    let dirs = Dirs::new();
    let mut policy = standard_policy(&dirs);
    policy.push_str(&format!(
        "\n[[agents]]\nname = \"other\"\nuids = [65534]\n\n[[agents.workspaces]]\nname = \"main\"\npath = \"{}\"\naccess = \"read-only\"\n",
        dirs.ro.display()
    ));
    std::fs::write(dirs.ro.join("other.txt"), "other agent's file\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = Daemon::start_with(
        dirs,
        &policy,
        &format!(
            "[limits]\nconcurrent_file_calls_per_agent = 2\n\n[tcp]\naddress = \"127.0.0.1:{port}\"\ninsecure = true\nagent = \"other\"\n"
        ),
    )
    .await;
    // A tree that takes a while to search.
    for i in 0..100 {
        let dir = d.dirs.w(&format!("t/d{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        for j in 0..100 {
            std::fs::write(
                dir.join(format!("f{j}.txt")),
                "needle in a haystack\n".repeat(20),
            )
            .unwrap();
        }
    }
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let socket = d.dirs.socket.clone();
        flood.spawn(async move {
            let mut c = agentjail::client::unix_channel(&socket)
                .await
                .map(ToolSandboxClient::new)
                .unwrap();
            c.grep(GrepRequest {
                pattern: "needle".into(),
                path: "t".into(),
                output: GrepOutput::Count as i32,
                ..Default::default()
            })
            .await
        });
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The other agent, meanwhile: served.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .expect("the TCP listener");
    let mut other = ToolSandboxClient::new(channel);
    let t = Instant::now();
    let r = other
        .read_file(ReadFileRequest {
            path: "other.txt".into(),
            ..Default::default()
        })
        .await
        .expect("the other agent is served");
    let other_took = t.elapsed();
    assert_eq!(r.into_inner().text, "other agent's file\n");

    let (mut served, mut refused) = (0, 0);
    while let Some(done) = flood.join_next().await {
        match done.unwrap() {
            Ok(_) => served += 1,
            Err(s) => {
                assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
                assert_eq!(
                    agentjail::error::reason_of(&s).as_deref(),
                    Some("TOO_MANY_CONCURRENT_CALLS")
                );
                assert_eq!(
                    error_meta(&s).get("retry_after_ms").map(String::as_str),
                    Some("200"),
                    "a retry hint"
                );
                refused += 1;
            }
        }
    }
    eprintln!("flood: {served} served, {refused} refused; the other agent waited {other_took:?}");
    assert!(served >= 2, "the flooding agent's first calls are served");
    assert!(refused >= 1, "calls past the cap are refused");
    assert!(other_took < Duration::from_secs(5), "{other_took:?}");
    // The refusals are recorded.
    let text = std::fs::read_to_string(d.dirs.state_dir.join("audit.jsonl")).unwrap();
    assert_eq!(
        text.matches("TOO_MANY_CONCURRENT_CALLS").count(),
        refused,
        "each refusal has its record"
    );
}
