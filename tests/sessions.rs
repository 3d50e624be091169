//! Sessions (issue 13): one sandbox that lives across calls. Every test
//! starts the real daemon and talks to it over its socket.

#[path = "shell_common/mod.rs"]
mod shell_common;

use agentjail::proto::tool_sandbox_client::ToolSandboxClient;
use agentjail::proto::*;
use shell_common::*;
use std::time::Duration;
use tonic::Code;
use tonic::transport::Channel;

async fn open(d: &ShellDaemon, req: OpenSessionRequest) -> SessionInfo {
    d.client()
        .await
        .open_session(req)
        .await
        .unwrap_or_else(|s| panic!("OpenSession: {}\n{}", describe(&s), d.log()))
        .into_inner()
        .session
        .expect("a session")
}

async fn open_default(d: &ShellDaemon) -> String {
    open(d, OpenSessionRequest::default()).await.session_id
}

/// `script` through Run in session `id`.
async fn sh_in(d: &ShellDaemon, id: &str, script: &str) -> Ran {
    let mut req = sh_req(script);
    req.session_id = id.into();
    d.run_ok(req).await
}

async fn argv_in(d: &ShellDaemon, id: &str, argv: &[&str]) -> Ran {
    let mut req = argv_req(argv);
    req.session_id = id.into();
    d.run_ok(req).await
}

async fn start(
    c: &mut ToolSandboxClient<Channel>,
    id: &str,
    req: StartProcessRequest,
) -> ProcessInfo {
    let mut req = req;
    req.session_id = id.into();
    c.start_process(req)
        .await
        .unwrap_or_else(|s| panic!("StartProcess: {}", describe(&s)))
        .into_inner()
        .process
        .expect("a process")
}

/// Reads `process`'s stdout until `want` shows up (or 10 s pass).
async fn read_until(
    c: &mut ToolSandboxClient<Channel>,
    id: &str,
    process: &str,
    want: &str,
) -> String {
    let mut got = Vec::new();
    let mut offset = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let r = c
            .read_output(ReadOutputRequest {
                session_id: id.into(),
                process_id: process.into(),
                offset,
                wait_ms: 1000,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("ReadOutput: {}", describe(&s)))
            .into_inner();
        got.extend_from_slice(&r.data);
        offset = r.next_offset;
        if String::from_utf8_lossy(&got).contains(want) || r.eof {
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn records_with(d: &ShellDaemon, method: &str, session: &str) -> Vec<serde_json::Value> {
    d.audit_records()
        .into_iter()
        .filter(|r| r["method"] == method && r["args"]["session_id"] == session)
        .collect()
}

#[tokio::test]
async fn cwd_and_exported_variables_carry_over_and_argv_commands_see_them() {
    let d = ShellDaemon::start().await;
    let id = open_default(&d).await;
    sh_in(
        &d,
        &id,
        "mkdir -p sub/deeper && cd sub && export AJ_COLOR=blue",
    )
    .await
    .ok();
    let r = sh_in(&d, &id, "pwd; echo \"$AJ_COLOR\"").await;
    assert_eq!(r.lines(), vec!["/workspace/sub", "blue"], "{r:?}");
    // An argv command starts in the session's directory and environment...
    let r = argv_in(&d, &id, &["sh", "-c", "pwd; echo $AJ_COLOR; cd deeper"]).await;
    assert_eq!(r.lines(), vec!["/workspace/sub", "blue"], "{r:?}");
    // ...and leaves the state as it was (only shell commands change it).
    let r = sh_in(&d, &id, "pwd").await;
    assert_eq!(r.ok().trim(), "/workspace/sub");
    // A shell command that fails still reports where it ended.
    let r = sh_in(&d, &id, "cd deeper; unset AJ_COLOR; exit 3").await;
    assert_eq!(r.code(), Some(3), "{r:?}");
    let r = sh_in(&d, &id, "pwd; echo \"[$AJ_COLOR]\"").await;
    assert_eq!(r.lines(), vec!["/workspace/sub/deeper", "[]"], "{r:?}");
    let listed = d
        .client()
        .await
        .list_sessions(ListSessionsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.sessions.len(), 1);
    assert_eq!(listed.sessions[0].cwd, "sub/deeper");
    // A Run without the session id is a fresh sandbox, as before.
    assert_eq!(d.sh("pwd").await.ok().trim(), "/workspace");

    let closed = d
        .client()
        .await
        .close_session(CloseSessionRequest {
            session_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(closed.session.unwrap().ended, "closed");
    let mut req = sh_req("true");
    req.session_id = id.clone();
    let err = d.run(req).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{}", describe(&err));
    // The story is in the audit log.
    let opened: Vec<_> = d
        .audit_records()
        .into_iter()
        .filter(|r| r["method"] == "OpenSession")
        .collect();
    assert_eq!(opened.len(), 1);
    assert!(
        opened[0]["outcome"]["message"]
            .as_str()
            .unwrap()
            .contains(&id)
    );
    assert!(records_with(&d, "Run", &id).len() >= 5);
    assert_eq!(records_with(&d, "CloseSession", &id).len(), 1);
}

#[tokio::test]
async fn another_agent_cannot_see_or_use_a_session() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = ShellDaemon::start_with_config(
        &Policy::default(),
        &format!("[tcp]\naddress = \"127.0.0.1:{port}\"\ninsecure = true\nagent = \"other\"\n"),
    )
    .await;
    let id = open_default(&d).await;
    let mut c = d.client().await;
    let p = start(
        &mut c,
        &id,
        StartProcessRequest {
            argv: vec!["sleep".into(), "60".into()],
            ..Default::default()
        },
    )
    .await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .expect("the TCP listener");
    let mut other = ToolSandboxClient::new(channel);
    let who = other.who_am_i(WhoAmIRequest {}).await.unwrap().into_inner();
    assert_eq!(who.agent, "other");
    assert!(
        other
            .list_sessions(ListSessionsRequest {})
            .await
            .unwrap()
            .into_inner()
            .sessions
            .is_empty()
    );
    let mut run = sh_req("echo pwned > /workspace/pwned");
    run.session_id = id.clone();
    let errs = vec![
        other.run(run).await.unwrap_err(),
        other
            .list_processes(ListProcessesRequest {
                session_id: id.clone(),
            })
            .await
            .unwrap_err(),
        other
            .signal_process(SignalProcessRequest {
                session_id: id.clone(),
                process_id: p.process_id.clone(),
                signal: 9,
            })
            .await
            .unwrap_err(),
        other
            .close_session(CloseSessionRequest {
                session_id: id.clone(),
            })
            .await
            .unwrap_err(),
    ];
    for e in &errs {
        assert_eq!(e.code(), Code::NotFound, "{}", describe(e));
    }
    // Nothing happened: no file, the process still runs, the session is open.
    assert!(!d.dirs.ws.join("pwned").exists());
    let ps = c
        .list_processes(ListProcessesRequest {
            session_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ps.processes[0].running, "{ps:?}");
    assert_eq!(sh_in(&d, &id, "echo still").await.ok().trim(), "still");
}

#[tokio::test]
async fn two_sessions_share_no_tmp_processes_or_network() {
    let d = ShellDaemon::start().await;
    let a = open_default(&d).await;
    let b = open_default(&d).await;
    let mut c = d.client().await;
    sh_in(&d, &a, "echo mine > /tmp/a-file").await.ok();
    assert_eq!(sh_in(&d, &a, "cat /tmp/a-file").await.ok().trim(), "mine");
    let r = sh_in(&d, &b, "test -e /tmp/a-file && echo seen || echo absent").await;
    assert_eq!(r.ok().trim(), "absent");
    let marker = unique_sleep(60);
    start(
        &mut c,
        &a,
        StartProcessRequest {
            shell: format!("sleep {marker}"),
            ..Default::default()
        },
    )
    .await;
    let server = start(
        &mut c,
        &a,
        StartProcessRequest {
            argv: vec![
                "python3".into(),
                "-m".into(),
                "http.server".into(),
                "8765".into(),
            ],
            ..Default::default()
        },
    )
    .await;
    let probe = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8765/').status)";
    // Wait until a's server answers in a.
    let mut answered = false;
    for _ in 0..50 {
        let r = argv_in(&d, &a, &["python3", "-c", probe]).await;
        if r.stdout.trim() == "200" {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "a's server answers in a");
    let r = argv_in(&d, &b, &["python3", "-c", probe]).await;
    assert_ne!(r.code(), Some(0), "b reaches a's server: {r:?}");
    let r = sh_in(&d, &b, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '").await;
    assert!(!r.stdout.contains(&marker), "b sees a's process: {r:?}");
    let r = sh_in(&d, &a, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '").await;
    assert!(r.stdout.contains(&marker), "a sees its own process: {r:?}");
    let _ = server;
}

#[tokio::test]
async fn stdin_round_trip_and_exit_status() {
    let d = ShellDaemon::start().await;
    let id = open_default(&d).await;
    let mut c = d.client().await;
    let p = start(
        &mut c,
        &id,
        StartProcessRequest {
            argv: vec!["cat".into()],
            ..Default::default()
        },
    )
    .await;
    assert!(p.running);
    let w = c
        .write_stdin(WriteStdinRequest {
            session_id: id.clone(),
            process_id: p.process_id.clone(),
            data: b"hello round trip\n".to_vec(),
            close: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(w.written, 17);
    let out = read_until(&mut c, &id, &p.process_id, "hello round trip").await;
    assert_eq!(out, "hello round trip\n");
    c.write_stdin(WriteStdinRequest {
        session_id: id.clone(),
        process_id: p.process_id.clone(),
        data: Vec::new(),
        close: true,
    })
    .await
    .unwrap();
    let waited = c
        .wait_process(WaitProcessRequest {
            session_id: id.clone(),
            process_id: p.process_id.clone(),
            timeout_ms: 10_000,
        })
        .await
        .unwrap()
        .into_inner()
        .process
        .unwrap();
    assert!(!waited.running);
    assert_eq!(waited.exited.unwrap().exit_code, Some(0));
    // stdin writes are recorded by size and hash, never content.
    let writes = records_with(&d, "WriteStdin", &id);
    assert_eq!(writes[0]["args"]["stdin_bytes"], 17);
    assert!(
        !serde_json::to_string(&d.audit_records())
            .unwrap()
            .contains("hello round trip")
    );
    let exits = records_with(&d, "ProcessExited", &id);
    assert_eq!(exits.len(), 1, "{exits:?}");
}
