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
    assert_eq!(records_with(&d, "OpenSession", &id).len(), 1);
    assert!(records_with(&d, "Run", &id).len() >= 5);
    assert_eq!(records_with(&d, "CloseSession", &id).len(), 1);
    // `audit show --session` tells that story, and only it.
    let out = std::process::Command::new(BIN)
        .args(["audit", "show", "--json", "--session", &id])
        .arg(d.dirs.state_dir.join("audit.jsonl"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let story: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let methods: Vec<&str> = story
        .iter()
        .map(|r| r["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods.first(), Some(&"OpenSession"), "{methods:?}");
    assert!(methods.contains(&"CloseSession"), "{methods:?}");
    // The Run after the close was refused, and that is recorded too.
    let last = story.last().unwrap();
    assert_eq!(last["method"], "Run");
    assert_eq!(last["outcome"]["status"], "NOT_FOUND", "{last}");
    assert!(
        methods.iter().filter(|m| **m == "Run").count() >= 5,
        "{methods:?}"
    );
    // The Run without a session is not part of it.
    assert!(story.iter().all(|r| r["args"]["session_id"] == id.as_str()));
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

async fn wait_for_http(d: &ShellDaemon, id: &str, port: u16) {
    let probe =
        format!("import urllib.request as u; print(u.urlopen('http://127.0.0.1:{port}/').status)");
    for _ in 0..100 {
        if argv_in(d, id, &["python3", "-c", &probe])
            .await
            .stdout
            .trim()
            == "200"
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the session's server on {port} never answered\n{}", d.log());
}

#[tokio::test]
async fn a_background_server_answers_the_session_and_the_host_through_its_port_socket() {
    use std::io::{Read, Write};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let d = ShellDaemon::start().await;
    let id = open_default(&d).await;
    std::fs::write(d.dirs.ws.join("index.html"), "SERVED-FROM-SESSION\n").unwrap();
    let mut c = d.client().await;
    let server = start(
        &mut c,
        &id,
        StartProcessRequest {
            argv: vec![
                "python3".into(),
                "-m".into(),
                "http.server".into(),
                "8766".into(),
                "--bind".into(),
                "127.0.0.1".into(),
            ],
            ..Default::default()
        },
    )
    .await;
    // Another command of the same session reaches it.
    wait_for_http(&d, &id, 8766).await;
    // The host reaches it through the port's Unix socket.
    let path = c
        .open_port(OpenPortRequest {
            session_id: id.clone(),
            port: 8766,
        })
        .await
        .unwrap_or_else(|s| panic!("OpenPort: {}", describe(&s)))
        .into_inner()
        .socket_path;
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{path}");
    assert_eq!(meta.uid(), 0, "owned by the caller's uid");
    let dir = std::path::Path::new(&path).parent().unwrap();
    assert_eq!(
        std::fs::metadata(dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let body = tokio::task::spawn_blocking({
        let path = path.clone();
        move || {
            let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
            s.write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        }
    })
    .await
    .unwrap();
    assert!(body.starts_with("HTTP/1.0 200"), "{body}");
    assert!(body.contains("SERVED-FROM-SESSION"), "{body}");
    // Its log is readable.
    let log = read_until(&mut c, &id, &server.process_id, "GET /index.html").await;
    let err = c
        .read_output(ReadOutputRequest {
            session_id: id.clone(),
            process_id: server.process_id.clone(),
            stream: OutputStream::Stderr as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let all = format!("{log}{}", String::from_utf8_lossy(&err.data));
    assert!(all.contains("GET /index.html"), "{all}");
    // Closing the session removes the socket.
    c.close_session(CloseSessionRequest {
        session_id: id.clone(),
    })
    .await
    .unwrap();
    assert!(!std::path::Path::new(&path).exists());
}

#[tokio::test]
async fn a_terminal_process_has_a_tty_and_a_repl_prompt_is_answered() {
    let d = ShellDaemon::start().await;
    let id = open_default(&d).await;
    let mut c = d.client().await;
    let tty = start(
        &mut c,
        &id,
        StartProcessRequest {
            shell: "tty; stty size".into(),
            tty: true,
            rows: 33,
            cols: 101,
            ..Default::default()
        },
    )
    .await;
    let out = read_until(&mut c, &id, &tty.process_id, "101").await;
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert!(out.contains("33 101"), "{out:?}");
    // Without a terminal, `tty` says so (the control).
    let r = sh_in(&d, &id, "tty").await;
    assert_ne!(r.code(), Some(0), "{r:?}");

    let repl = start(
        &mut c,
        &id,
        StartProcessRequest {
            argv: vec!["python3".into(), "-i".into(), "-q".into()],
            tty: true,
            ..Default::default()
        },
    )
    .await;
    let prompt = read_until(&mut c, &id, &repl.process_id, ">>> ").await;
    assert!(prompt.contains(">>> "), "{prompt:?}");
    c.write_stdin(WriteStdinRequest {
        session_id: id.clone(),
        process_id: repl.process_id.clone(),
        data: b"print(6 * 7)\n".to_vec(),
        close: false,
    })
    .await
    .unwrap();
    let answer = read_until(&mut c, &id, &repl.process_id, "42").await;
    assert!(answer.contains("42"), "{answer:?}");

    // The sandbox's seccomp rules hold on the session's terminal: TIOCSTI
    // (typing into the terminal's input) is refused.
    let sti = start(
        &mut c,
        &id,
        StartProcessRequest {
            argv: vec![
                "python3".into(),
                "-c".into(),
                "import fcntl, termios\ntry:\n    fcntl.ioctl(0, termios.TIOCSTI, b'X')\n    print('INJECTED')\nexcept OSError as e:\n    print('REFUSED', e.errno)\n".into(),
            ],
            tty: true,
            ..Default::default()
        },
    )
    .await;
    let out = read_until(&mut c, &id, &sti.process_id, "\n").await;
    assert!(out.contains("REFUSED 1"), "{out:?}");
    assert!(!out.contains("INJECTED"), "{out:?}");
}

async fn wait_session_gone(d: &ShellDaemon, id: &str, within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        let listed = d
            .client()
            .await
            .list_sessions(ListSessionsRequest {})
            .await
            .unwrap()
            .into_inner();
        if !listed.sessions.iter().any(|s| s.session_id == id) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn ended_reason(d: &ShellDaemon, id: &str) -> Option<String> {
    records_with(d, "SessionEnded", id)
        .first()
        .and_then(|r| r["outcome"]["reason"].as_str().map(String::from))
}

#[tokio::test]
async fn an_idle_session_ends_with_its_processes_and_is_recorded() {
    let d = ShellDaemon::start().await;
    let id = open(
        &d,
        OpenSessionRequest {
            idle_timeout_ms: 1500,
            ..Default::default()
        },
    )
    .await
    .session_id;
    let marker = unique_sleep(120);
    let mut c = d.client().await;
    start(
        &mut c,
        &id,
        StartProcessRequest {
            shell: format!("sleep {marker}"),
            ..Default::default()
        },
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(5), || !host_pids_with(&marker)
            .is_empty())
        .await,
        "the background process runs"
    );
    assert!(wait_session_gone(&d, &id, Duration::from_secs(10)).await);
    assert_no_process_with(&marker, Duration::from_secs(5)).await;
    assert!(
        wait_until(Duration::from_secs(5), || ended_reason(&d, &id).is_some()).await,
        "an end record"
    );
    assert_eq!(ended_reason(&d, &id).as_deref(), Some("IDLE"));
    let mut req = sh_req("true");
    req.session_id = id.clone();
    assert_eq!(d.run(req).await.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn a_session_ends_at_its_lifetime_even_while_in_use() {
    let d = ShellDaemon::start().await;
    let id = open(
        &d,
        OpenSessionRequest {
            max_lifetime_ms: 2500,
            ..Default::default()
        },
    )
    .await
    .session_id;
    let marker = unique_sleep(120);
    let mut c = d.client().await;
    start(
        &mut c,
        &id,
        StartProcessRequest {
            shell: format!("sleep {marker}"),
            ..Default::default()
        },
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(5), || !host_pids_with(&marker)
            .is_empty())
        .await
    );
    // Calls keep it from idling; the lifetime ends it anyway.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut ended = false;
    while std::time::Instant::now() < deadline {
        let r = c
            .list_processes(ListProcessesRequest {
                session_id: id.clone(),
            })
            .await;
        if r.is_err() {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ended, "the session ended");
    assert_no_process_with(&marker, Duration::from_secs(5)).await;
    assert!(wait_until(Duration::from_secs(5), || ended_reason(&d, &id).is_some()).await);
    assert_eq!(ended_reason(&d, &id).as_deref(), Some("LIFETIME"));
}

#[tokio::test]
async fn stopping_the_daemon_ends_every_session_with_records() {
    let mut d = ShellDaemon::start().await;
    let a = open_default(&d).await;
    let b = open_default(&d).await;
    let marker = unique_sleep(120);
    let mut c = d.client().await;
    for id in [&a, &b] {
        start(
            &mut c,
            id,
            StartProcessRequest {
                shell: format!("sleep {marker}"),
                ..Default::default()
            },
        )
        .await;
    }
    assert!(
        wait_until(Duration::from_secs(5), || host_pids_with(&marker).len()
            >= 2)
        .await,
        "both sessions' processes run"
    );
    drop(c);
    let status = d
        .kill_with(rustix::process::Signal::TERM, Duration::from_secs(20))
        .await;
    assert!(status.success(), "{status:?}\n{}", d.log());
    assert_no_process_with(&marker, Duration::from_secs(5)).await;
    for id in [&a, &b] {
        assert_eq!(ended_reason(&d, id).as_deref(), Some("SHUTDOWN"), "{id}");
    }
}

#[tokio::test]
async fn a_fork_bomb_starves_only_its_own_session() {
    let d = ShellDaemon::start().await;
    let bombed = open(
        &d,
        OpenSessionRequest {
            limits: Some(SessionLimits {
                memory_bytes: 0,
                pids: 48,
            }),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(bombed.limits.unwrap().pids, 48);
    let calm = open_default(&d).await;
    let marker = format!("bomb-{}", std::process::id());
    let mut c = d.client().await;
    start(
        &mut c,
        &bombed.session_id,
        StartProcessRequest {
            argv: vec![
                "python3".into(),
                "-c".into(),
                format!(
                    "import os, time\n# {marker}\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)\n"
                ),
            ],
            ..Default::default()
        },
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(10), || host_pids_with(&marker).len()
            >= 40)
        .await,
        "the bomb forks up to its session's limit"
    );
    // The other session runs at once, and the bomb stays under its limit.
    let t = std::time::Instant::now();
    assert_eq!(sh_in(&d, &calm, "echo fine").await.ok().trim(), "fine");
    assert!(t.elapsed() < Duration::from_secs(10));
    let count = host_pids_with(&marker).len();
    assert!(count <= 48, "{count} processes of the bomb");
    // Closing its session ends the bomb.
    c.close_session(CloseSessionRequest {
        session_id: bombed.session_id.clone(),
    })
    .await
    .unwrap();
    assert_no_process_with(&marker, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn the_cli_opens_runs_starts_lists_writes_kills_and_closes() {
    let d = ShellDaemon::start().await;
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .arg("call")
            .arg("--socket")
            .arg(&d.dirs.socket)
            .arg("session")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, id, err) = cli(&["open"]);
    assert_eq!(code, Some(0), "{err}");
    let id = id.trim().to_string();
    assert!(id.starts_with("s-"), "{id}");
    let (code, _, err) = cli(&["run", &id, "--shell", "mkdir -p d && cd d && export AJ_X=7"]);
    assert_eq!(code, Some(0), "{err}");
    let (_, out, _) = cli(&["run", &id, "--shell", "echo $PWD $AJ_X"]);
    assert_eq!(out.trim(), "/workspace/d 7");
    let (code, p, err) = cli(&["start", &id, "--", "cat"]);
    assert_eq!(code, Some(0), "{err}");
    let p = p.trim().to_string();
    let (_, out, _) = cli(&["write", &id, &p, "--data", "via cli\n"]);
    assert_eq!(out.trim(), "wrote 8 bytes");
    let (_, out, _) = cli(&["read", &id, &p, "--wait-ms", "3000"]);
    assert_eq!(out, "via cli\n");
    let (_, out, _) = cli(&["ps", &id]);
    assert!(
        out.contains(&format!("{p}\t")) && out.contains("running\t/usr/bin/cat"),
        "{out}"
    );
    let (_, out, _) = cli(&["kill", &id, &p, "-s", "9"]);
    assert!(out.contains(&p), "{out}");
    let (_, out, _) = cli(&["ps", &id]);
    assert!(out.contains("signal 9"), "{out}");
    let (code, out, _) = cli(&["close", &id]);
    assert_eq!(code, Some(0));
    assert_eq!(out.trim(), format!("closed {id}"));
    let (code, _, err) = cli(&["run", &id, "--", "true"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("NOT_FOUND"), "{err}");
}

#[tokio::test]
async fn the_policy_decides_whether_and_how_many_and_how_long() {
    let d = ShellDaemon::start_with(Policy {
        sessions: "max_sessions = 1\nmax_processes = 1\nidle_timeout_ms = 60000\n".into(),
        ..Policy::default()
    })
    .await;
    let mut c = d.client().await;
    // Above the policy's idle timeout: refused, with what to do.
    let err = c
        .open_session(OpenSessionRequest {
            idle_timeout_ms: 120_000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", describe(&err));
    let s = open(&d, OpenSessionRequest::default()).await;
    assert_eq!(s.idle_timeout_ms, 60_000, "the policy's default");
    let err = c
        .open_session(OpenSessionRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", describe(&err));
    assert_eq!(error_meta(&err)["max_sessions"], "1");
    let sleep = StartProcessRequest {
        argv: vec!["sleep".into(), "30".into()],
        ..Default::default()
    };
    start(&mut c, &s.session_id, sleep.clone()).await;
    let mut second = sleep.clone();
    second.session_id = s.session_id.clone();
    let err = c.start_process(second).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", describe(&err));
    // `policy explain --session` says the same.
    let out = std::process::Command::new(BIN)
        .args(["policy", "explain", "--agent", AGENT, "--session", "--dir"])
        .arg(&d.dirs.policy_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("at most 1 sessions open"), "{text}");
    assert!(text.contains("1m"), "{text}");

    let off = ShellDaemon::start_with(Policy {
        sessions: "allowed = false\n".into(),
        ..Policy::default()
    })
    .await;
    let err = off
        .client()
        .await
        .open_session(OpenSessionRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{}", describe(&err));
    // Control: commands still run for it.
    assert_eq!(off.sh("echo runs").await.ok().trim(), "runs");
}

/// A StartProcess retried with its idempotency key starts one process: the
/// retry answers the first start (and is recorded as a replay); the same
/// key on another request is refused. Control: without a key, two starts
/// are two processes.
#[tokio::test]
async fn a_keyed_start_process_starts_once() {
    let d = ShellDaemon::start().await;
    let id = open_default(&d).await;
    let mut c = d.client().await;
    let keyed = StartProcessRequest {
        argv: vec!["sleep".into(), "30".into()],
        idempotency_key: "start-once".into(),
        ..Default::default()
    };
    let first = start(&mut c, &id, keyed.clone()).await;
    let again = start(&mut c, &id, keyed.clone()).await;
    assert_eq!(first.process_id, again.process_id);
    assert_eq!(first.pid, again.pid);
    let listed = |c: &mut ToolSandboxClient<Channel>| {
        let mut c = c.clone();
        let id = id.clone();
        async move {
            c.list_processes(ListProcessesRequest { session_id: id })
                .await
                .unwrap()
                .into_inner()
                .processes
        }
    };
    assert_eq!(
        listed(&mut c).await.len(),
        1,
        "one process for two keyed starts"
    );
    let starts = records_with(&d, "StartProcess", &id);
    assert_eq!(starts.len(), 2, "{starts:#?}");
    assert!(
        starts[1]["outcome"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("idempotent replay")),
        "{starts:#?}"
    );
    // Another request under the same key.
    let mut other = keyed.clone();
    other.session_id = id.clone();
    other.argv = vec!["sleep".into(), "31".into()];
    let err = c.start_process(other).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", describe(&err));
    assert_eq!(
        agentjail::error::reason_of(&err).as_deref(),
        Some("IDEMPOTENCY_KEY_REUSED")
    );
    // Control: unkeyed starts are each a process.
    let mut plain = keyed;
    plain.idempotency_key.clear();
    start(&mut c, &id, plain.clone()).await;
    start(&mut c, &id, plain).await;
    assert_eq!(listed(&mut c).await.len(), 3);
}

/// The agent owns its session's port directory, so a name it plants there
/// must not steer the daemon: a symlink at the next port's socket name is
/// replaced by the socket (the daemon, which keeps CHOWN and FOWNER,
/// neither chmods nor chowns through it, and creates nothing at its
/// target). Control: the first port's socket is made as usual.
#[tokio::test]
async fn a_link_planted_in_the_port_directory_is_replaced_not_followed() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let d = ShellDaemon::start().await;
    let id = open_default(&d).await;
    let mut c = d.client().await;
    let open_port = |port: u32| {
        let mut c = c.clone();
        let id = id.clone();
        async move {
            c.open_port(OpenPortRequest {
                session_id: id,
                port,
            })
            .await
            .map(|r| r.into_inner().socket_path)
        }
    };
    let first = open_port(8771).await.expect("OpenPort");
    assert!(
        std::fs::symlink_metadata(&first)
            .unwrap()
            .file_type()
            .is_socket()
    );
    let dir = std::path::Path::new(&first).parent().unwrap().to_path_buf();
    let victim = d.dirs.ws.join("victim");
    std::os::unix::fs::symlink(&victim, dir.join("8772.sock")).unwrap();
    let second = open_port(8772)
        .await
        .unwrap_or_else(|s| panic!("OpenPort over a planted link: {}", describe(&s)));
    assert_eq!(second, dir.join("8772.sock").to_string_lossy());
    let meta = std::fs::symlink_metadata(&second).unwrap();
    assert!(meta.file_type().is_socket(), "{meta:?}");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(
        std::fs::symlink_metadata(&victim).is_err(),
        "nothing was made at the link's target"
    );
    let _ = c
        .close_session(CloseSessionRequest { session_id: id })
        .await;
}
