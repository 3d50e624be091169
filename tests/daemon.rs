//! The daemon as a whole: concurrency, health, reflection, identity, signals,
//! policy loading (R2, R3), malformed requests (R1) and the CLI client.

mod common;

use agentjail::proto::tool_sandbox_client::ToolSandboxClient;
use agentjail::proto::*;
use common::*;
use std::collections::HashSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ------------------------------------------------------------ concurrency

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_leave_a_partial_or_mixed_file() {
    let d = Daemon::start().await;
    const WRITERS: usize = 2;
    const WRITES: usize = 50;
    const SIZE: usize = 200 * 1024; // fits one ReadFile (256 KiB)
    let content = |w: usize, i: usize| -> String {
        let unit = format!("writer {w} write {i:02} ");
        let mut s = unit.repeat(SIZE / unit.len() + 1);
        s.truncate(SIZE - 1);
        s.push('\n');
        s
    };
    let initial = "initial\n".to_string();
    let mut valid: HashSet<String> = HashSet::new();
    valid.insert(sha256_hex(&initial));
    for w in 0..WRITERS {
        for i in 0..WRITES {
            valid.insert(sha256_hex(content(w, i)));
        }
    }
    assert_eq!(valid.len(), WRITERS * WRITES + 1);
    put(&d.dirs.w("shared.txt"), &initial);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut c = d.client().await;
        writers.push(tokio::spawn(async move {
            for i in 0..WRITES {
                let r = c.write_file(write_req("shared.txt", content(w, i))).await;
                let r = r.unwrap_or_else(|s| panic!("writer {w} write {i}: {}", describe(&s)));
                assert_eq!(r.into_inner().sha256, sha256_hex(content(w, i)));
            }
        }));
    }
    // A reader through the daemon.
    let mut rc = d.client().await;
    let valid_r = valid.clone();
    let stop_r = stop.clone();
    let reader = tokio::spawn(async move {
        let mut reads = 0;
        while !stop_r.load(std::sync::atomic::Ordering::Relaxed) {
            let r = rc
                .read_file(read_req("shared.txt"))
                .await
                .unwrap_or_else(|s| panic!("concurrent read: {}", describe(&s)))
                .into_inner();
            assert!(!r.truncated);
            let got = sha256_hex(r.text.as_bytes());
            assert!(
                valid_r.contains(&got),
                "ReadFile saw a partial or mixed file"
            );
            assert_eq!(r.sha256, got, "sha256 and text disagree");
            reads += 1;
        }
        reads
    });
    // A reader on the host.
    let path = d.dirs.w("shared.txt");
    let valid_h = valid.clone();
    let stop_h = stop.clone();
    let host_reader = std::thread::spawn(move || {
        let mut reads = 0;
        while !stop_h.load(std::sync::atomic::Ordering::Relaxed) {
            let data = std::fs::read(&path).expect("shared.txt vanished during writes");
            assert!(
                valid_h.contains(&sha256_hex(&data)),
                "the host saw a partial or mixed file ({} bytes)",
                data.len()
            );
            reads += 1;
        }
        reads
    });
    for w in writers {
        w.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.await.unwrap();
    let host_reads = host_reader.join().unwrap();
    eprintln!("{reads} daemon reads, {host_reads} host reads during the writes");
    assert!(reads > 0 && host_reads > 0);
    let last = std::fs::read(d.dirs.w("shared.txt")).unwrap();
    let last_sha = sha256_hex(&last);
    assert!(
        last_sha == sha256_hex(content(0, WRITES - 1))
            || last_sha == sha256_hex(content(1, WRITES - 1)),
        "the final file is one writer's last write"
    );
    assert_eq!(
        list_names(&d.dirs.ws),
        vec!["shared.txt".to_string()],
        "temporary files left behind"
    );
}

// ------------------------------------------------------ health, reflection

#[tokio::test]
async fn health_check_answers_serving() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let d = Daemon::start().await;
    assert_eq!(health_status(&d.dirs.socket, "").await, Ok(1));
    assert_eq!(
        health_status(&d.dirs.socket, "agentjail.v1.ToolSandbox").await,
        Ok(1)
    );
    let mut h = HealthClient::new(d.channel().await);
    let err = h
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn reflection_lists_the_tool_sandbox_service() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let d = Daemon::start().await;
    let mut client = ServerReflectionClient::new(d.channel().await);
    let requests = vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "agentjail.v1.ToolSandbox".into(),
            )),
        },
    ];
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("reflection call")
        .into_inner();
    let first = stream.message().await.unwrap().expect("a response");
    let services: Vec<String> = match first.message_response {
        Some(MessageResponse::ListServicesResponse(l)) => {
            l.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer: {other:?}"),
    };
    assert!(
        services.contains(&"agentjail.v1.ToolSandbox".to_string()),
        "{services:?}"
    );
    assert!(
        services.contains(&"grpc.health.v1.Health".to_string()),
        "{services:?}"
    );
    let second = stream.message().await.unwrap().expect("a response");
    match second.message_response {
        Some(MessageResponse::FileDescriptorResponse(f)) => {
            assert!(!f.file_descriptor_proto.is_empty());
            let all: Vec<u8> = f.file_descriptor_proto.concat();
            assert!(
                all.windows(b"ToolSandbox".len())
                    .any(|w| w == b"ToolSandbox"),
                "descriptor names the service"
            );
        }
        other => panic!("unexpected reflection answer: {other:?}"),
    }
}

// ------------------------------------------------------------------ R2

#[tokio::test]
async fn unknown_caller_gets_permission_denied() {
    let dirs = Dirs::new();
    // The only agent is uid 4242: root (this test) is unknown.
    let policy = standard_policy(&dirs).replace(&uids_line(), "uids = [4242]");
    let d = Daemon::start_with(dirs, &policy, "").await;
    put(&d.dirs.w("a.txt"), "secret to strangers\n");
    let mut c = d.client().await;
    let s = c.who_am_i(WhoAmIRequest {}).await.unwrap_err();
    assert_eq!(s.code(), tonic::Code::PermissionDenied, "{}", describe(&s));
    assert_eq!(
        agentjail::error::reason_of(&s).as_deref(),
        Some("UNKNOWN_CALLER")
    );
    assert_reason(c.read_file(read_req("a.txt")).await, "UNKNOWN_CALLER");
    assert_reason(
        c.write_file(write_req("b.txt", "x")).await,
        "UNKNOWN_CALLER",
    );
    assert_reason(c.list_dir(list_req("")).await, "UNKNOWN_CALLER");
    assert!(!exists(&d.dirs.w("b.txt")));
    // The refusal is in the daemon's log (audited).
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(d.log().contains("UNKNOWN_CALLER"), "log:\n{}", d.log());
}

#[tokio::test]
async fn unknown_uid_via_cli_gets_unknown_caller() {
    require_root("running the client as uid 65534");
    let dirs = Dirs::new();
    // A copy of the client any uid can run, wherever the build lives.
    let client_bin = dirs.root.join("agentjail-client");
    std::fs::copy(BIN, &client_bin).unwrap();
    set_mode(&client_bin, 0o755);
    let policy = standard_policy(&dirs);
    let d = Daemon::start_with(dirs, &policy, "socket_mode = 0o666").await;
    let mode = std::fs::metadata(&d.dirs.socket)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o666);
    let run_as = |uid: Option<u32>| {
        let mut cmd = Command::new(&client_bin);
        cmd.arg("call")
            .arg("--socket")
            .arg(&d.dirs.socket)
            .arg("whoami")
            .env_remove("AGENTJAIL_SOCKET")
            .stdin(Stdio::null())
            .current_dir("/");
        if let Some(uid) = uid {
            cmd.uid(uid).gid(uid);
        }
        cmd.output().expect("run agentjail call")
    };
    let out = run_as(Some(65534));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("UNKNOWN_CALLER"), "stderr: {stderr}");
    assert!(stderr.contains("error: UNKNOWN_CALLER"), "stderr: {stderr}");
    // Positive control: root is the agent.
    let out = run_as(None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("agent: tester"), "stdout: {stdout}");
    assert!(d.log().contains("UNKNOWN_CALLER"), "the refusal is logged");
}

// ------------------------------------------------------- socket, signals

#[tokio::test]
async fn socket_is_created_with_restrictive_permissions() {
    let d = Daemon::start().await;
    let meta = std::fs::symlink_metadata(&d.dirs.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
}

#[tokio::test]
async fn socket_group_gives_the_socket_to_that_group() {
    let dirs = Dirs::new();
    let policy = standard_policy(&dirs);
    // Debian's nogroup (65534) stands in for the packaged `agentjail` group.
    let d = Daemon::start_with(dirs, &policy, "socket_group = \"nogroup\"").await;
    let meta = std::fs::symlink_metadata(&d.dirs.socket).unwrap();
    assert_eq!(meta.gid(), 65534);
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    // An unknown group is a clear refusal to start, not a world-open socket.
    let dirs = Dirs::new();
    let log = refused_start(
        &dirs,
        &standard_policy(&dirs),
        "socket_group = \"no-such-group-xyz\"\n",
    )
    .await;
    assert!(log.contains("no-such-group-xyz"), "{log}");
}

/// Starts a daemon on `policy` and `config` that must refuse to: asserts
/// that it exits with a failure and binds no socket; returns its log.
async fn refused_start(dirs: &Dirs, policy: &str, config: &str) -> String {
    dirs.write_setup(policy, config);
    let status = Serve::new()
        .until_exit(dirs, "the daemon started although it must refuse")
        .await;
    let log = std::fs::read_to_string(&dirs.log).unwrap();
    assert!(!status.success(), "log:\n{log}");
    assert!(!exists(&dirs.socket), "a socket was bound or left behind");
    log
}

#[tokio::test]
async fn sigterm_removes_the_socket_and_exits_zero() {
    let mut d = Daemon::start().await;
    assert!(exists(&d.dirs.socket));
    let mut c = d.client().await;
    ok(c.who_am_i(WhoAmIRequest {}).await);
    let status = d.stop().await;
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}; log:\n{}",
        d.log()
    );
    assert!(!exists(&d.dirs.socket), "socket file left behind");
    assert!(c.who_am_i(WhoAmIRequest {}).await.is_err());
}

#[tokio::test]
async fn a_second_daemon_does_not_steal_the_socket() {
    let mut d = Daemon::start().await;
    let status = Serve::new()
        .until_exit(&d.dirs, "the second daemon kept running")
        .await;
    assert!(!status.success());
    // It says why: the socket is in use.
    let socket = d.dirs.socket.display().to_string();
    assert!(
        d.log().matches(socket.as_str()).count() >= 2,
        "the refusal names the socket; log:\n{}",
        d.log()
    );
    d.assert_serving().await;
}

// ------------------------------------------------------------------ R3

fn valid_policy_text(ws: &std::path::Path) -> String {
    format!(
        "[[agents]]\nname = \"a\"\nuids = [5000]\n\n[[agents.workspaces]]\nname = \"w\"\npath = \"{}\"\n\n[agents.files]\ndeny = [\"**/.env\"]\n",
        ws.display()
    )
}

fn policy_check(dir: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(["policy", "check"])
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run agentjail policy check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// 1-based column of `needle` in `line`.
fn col_of(line: &str, needle: &str) -> usize {
    line.find(needle).expect("needle in line") + 1
}

#[test]
fn policy_check_reports_file_line_col() {
    let dirs = Dirs::new();
    let ws = dirs.ws.display().to_string();
    let p = &dirs.policy_dir;
    // An unknown key on line 4.
    std::fs::write(
        p.join("a-unknown.toml"),
        format!("[[agents]]\nname = \"a\"\nuids = [5000]\nbogus_key = 1\n[[agents.workspaces]]\nname = \"w\"\npath = \"{ws}\"\n"),
    )
    .unwrap();
    // A wrong type on line 3.
    let type_line = "uids = \"zero\"";
    std::fs::write(
        p.join("b-type.toml"),
        format!("[[agents]]\nname = \"b\"\n{type_line}\n[[agents.workspaces]]\nname = \"w\"\npath = \"{ws}\"\n"),
    )
    .unwrap();
    // A bad glob on line 8.
    let glob_line = "deny = [\"**/.env\", \"src/[a-\"]";
    std::fs::write(
        p.join("c-glob.toml"),
        format!("[[agents]]\nname = \"c\"\nuids = [5002]\n[[agents.workspaces]]\nname = \"w\"\npath = \"{ws}\"\n[agents.files]\n{glob_line}\n"),
    )
    .unwrap();
    let (code, stdout, stderr) = policy_check(p);
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let find = |file: &str| -> &str {
        lines
            .iter()
            .find(|l| l.contains(file))
            .copied()
            .unwrap_or_else(|| panic!("no diagnostic for {file} in:\n{stdout}"))
    };
    let unknown = find("a-unknown.toml");
    let prefix = format!("{}:4:1: ", p.join("a-unknown.toml").display());
    assert!(
        unknown.starts_with(&prefix),
        "{unknown:?} should start with {prefix:?}"
    );
    assert!(unknown.contains("bogus_key"), "{unknown}");

    let wrong = find("b-type.toml");
    let prefix = format!(
        "{}:3:{}: ",
        p.join("b-type.toml").display(),
        col_of(type_line, "\"zero\"")
    );
    assert!(
        wrong.starts_with(&prefix),
        "{wrong:?} should start with {prefix:?}"
    );

    let glob = find("c-glob.toml");
    let prefix = format!(
        "{}:8:{}: ",
        p.join("c-glob.toml").display(),
        col_of(glob_line, "\"src/[a-\"")
    );
    assert!(
        glob.starts_with(&prefix),
        "{glob:?} should start with {prefix:?}"
    );
    assert!(glob.contains("src/[a-"), "{glob}");
}

#[test]
fn policy_check_accepts_valid_dirs() {
    let dirs = Dirs::new();
    std::fs::write(dirs.policy_dir.join("ok.toml"), valid_policy_text(&dirs.ws)).unwrap();
    let (code, stdout, stderr) = policy_check(&dirs.policy_dir);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("ok"), "{stdout}");
    // The policies shipped in the repository.
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let (code, stdout, stderr) = policy_check(&shipped);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("ok"), "{stdout}");
    // An empty directory is not a valid policy.
    let empty = dirs.root.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, _, _) = policy_check(&empty);
    assert_eq!(code, 1);
}

#[tokio::test]
async fn invalid_policy_at_start_refuses_to_start() {
    let dirs = Dirs::new();
    let policy = standard_policy(&dirs).replace(
        &uids_line(),
        &format!("{}\nunknown_thing = true", uids_line()),
    );
    let log = refused_start(&dirs, &policy, "").await;
    let expected = format!("{}:4:1:", dirs.policy_dir.join("test.toml").display());
    assert!(
        log.contains(&expected),
        "log should contain {expected:?}:\n{log}"
    );
    assert!(log.contains("unknown_thing"), "{log}");
}

#[tokio::test]
async fn reload_with_an_invalid_policy_keeps_the_old_one() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    let who = ok(c.who_am_i(WhoAmIRequest {}).await);
    let old_version = who.info.unwrap().policy_version;
    // Break the policy and ask for a reload.
    let broken =
        standard_policy(&d.dirs).replace(&uids_line(), &format!("{}\nbogus = 1", uids_line()));
    std::fs::write(d.dirs.policy_dir.join("test.toml"), &broken).unwrap();
    let sighup = || send_signal(d.pid, rustix::process::Signal::HUP);
    sighup();
    let expected = format!("{}:4:1:", d.dirs.policy_dir.join("test.toml").display());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.log().contains(&expected) {
        assert!(
            Instant::now() < deadline,
            "reload error not logged:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let who = ok(c.who_am_i(WhoAmIRequest {}).await);
    assert_eq!(who.info.unwrap().policy_version, old_version);
    put(&d.dirs.w("a.txt"), "a");
    ok(c.read_file(read_req("a.txt")).await);
    // A valid new policy (the ro workspace dropped) is taken.
    let fixed = standard_policy(&d.dirs).replace(
        &format!(
            "[[agents.workspaces]]\nname = \"ro\"\npath = \"{}\"\naccess = \"read-only\"\n",
            d.dirs.ro.display()
        ),
        "",
    );
    assert_ne!(fixed, standard_policy(&d.dirs));
    std::fs::write(d.dirs.policy_dir.join("test.toml"), &fixed).unwrap();
    sighup();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let who = ok(c.who_am_i(WhoAmIRequest {}).await);
        if who.workspaces.len() == 1 {
            assert_ne!(who.info.unwrap().policy_version, old_version);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the valid policy was not loaded:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ------------------------------------------------------------------ R1

#[tokio::test]
async fn malformed_protobuf_gets_a_clear_status_and_the_daemon_keeps_serving() {
    let mut d = Daemon::start().await;
    let cases: Vec<(&str, bytes::Bytes)> = vec![
        // Garbage: an invalid wire type / truncated varint.
        ("garbage", grpc_frame(&[0xff, 0xff, 0xff, 0xff])),
        // A length-delimited field longer than the message.
        ("overlong field", grpc_frame(&[0x12, 0x7f, b'a'])),
        // path (field 2) with invalid UTF-8.
        (
            "invalid utf-8 string",
            grpc_frame(&[0x12, 0x02, 0xc3, 0x28]),
        ),
        // A frame header promising more bytes than are sent.
        ("short frame", {
            let mut v = vec![0u8, 0, 0, 0, 100];
            v.extend_from_slice(&[0x12, 0x01, b'a']);
            v.into()
        }),
        // Compressed flag without a negotiated encoding.
        ("compressed flag", {
            let mut v = grpc_frame(&[0x12, 0x01, b'a']).to_vec();
            v[0] = 1;
            v.into()
        }),
        // No message at all.
        ("empty body", bytes::Bytes::new()),
    ];
    for (name, body) in cases {
        for method in ["ReadFile", "WriteFile", "Grep"] {
            let status = tokio::time::timeout(
                Duration::from_secs(10),
                raw_unary(d.channel().await, method, full_body(body.clone())),
            )
            .await
            .unwrap_or_else(|_| panic!("{name} to {method} hung"));
            assert_ne!(
                status.code(),
                tonic::Code::Ok,
                "{name} to {method} succeeded"
            );
            assert!(
                matches!(
                    status.code(),
                    tonic::Code::InvalidArgument
                        | tonic::Code::Internal
                        | tonic::Code::Unimplemented
                ),
                "{name} to {method}: {}",
                describe(&status)
            );
            assert!(
                !status.message().is_empty(),
                "{name} to {method}: empty message"
            );
        }
    }
    assert!(
        list_names(&d.dirs.ws).is_empty(),
        "a malformed request wrote something"
    );
    // Two messages on a unary call: tonic answers the first and ignores the
    // rest; whatever it does, the answer is a status and nothing breaks.
    let mut two = grpc_frame(&[0x12, 0x01, b'a']).to_vec();
    two.extend_from_slice(&grpc_frame(&[0x12, 0x01, b'b']));
    let status = raw_unary(d.channel().await, "ReadFile", full_body(two.into())).await;
    assert!(!status.message().is_empty() || status.code() == tonic::Code::Ok);
    // A well-formed raw request works (positive control of the raw path).
    let status = raw_unary(d.channel().await, "WhoAmI", full_body(grpc_frame(&[]))).await;
    assert_eq!(status.code(), tonic::Code::Ok, "{}", describe(&status));
    // An unknown method.
    let status = raw_unary(
        d.channel().await,
        "NoSuchMethod",
        full_body(grpc_frame(&[])),
    )
    .await;
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    d.assert_serving().await;
}

#[tokio::test]
async fn unknown_enum_values_are_invalid_argument() {
    let mut d = Daemon::start().await;
    put(&d.dirs.w("a.txt"), "a\n");
    let mut c = d.client().await;
    let mut req = write_req("new.txt", "x");
    req.mode = 99;
    assert_reason(c.write_file(req).await, "INVALID_ARGUMENT");
    assert!(!exists(&d.dirs.w("new.txt")));
    let mut req = list_req("");
    req.sort = 42;
    assert_reason(c.list_dir(req).await, "INVALID_ARGUMENT");
    let mut req = glob_req("*");
    req.sort = -1;
    assert_reason(c.glob(req).await, "INVALID_ARGUMENT");
    let mut req = grep_req("a");
    req.output = 7;
    assert_reason(c.grep(req).await, "INVALID_ARGUMENT");
    d.assert_serving().await;
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_refused() {
    let dirs = Dirs::new();
    let policy = standard_policy(&dirs);
    let mut d = Daemon::start_with(dirs, &policy, "max_message_bytes = 1048576").await;
    let mut c = d.client().await;
    let s = c
        .write_file(write_req("big.bin", vec![b'a'; 2 << 20]))
        .await
        .unwrap_err();
    assert!(is_message_too_large(&s), "{}", describe(&s));
    assert!(!exists(&d.dirs.w("big.bin")));
    // Positive control: under the limit.
    ok(c.write_file(write_req("big.bin", vec![b'a'; 512 << 10]))
        .await);
    d.assert_serving().await;
}

// ------------------------------------------------------------------ TCP

#[tokio::test]
async fn insecure_tcp_listener_maps_to_its_agent() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dirs = Dirs::new();
    let policy = standard_policy(&dirs);
    let d = Daemon::start_with(
        dirs,
        &policy,
        &format!("[tcp]\naddress = \"127.0.0.1:{port}\"\ninsecure = true\nagent = \"tester\"\n"),
    )
    .await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .expect("connect over TCP");
    let mut c = ToolSandboxClient::new(channel);
    let who = ok(c.who_am_i(WhoAmIRequest {}).await);
    assert_eq!(who.identified_by, "tcp-insecure");
    put(&d.dirs.w("a.txt"), "over tcp\n");
    assert_eq!(ok(c.read_file(read_req("a.txt")).await).text, "over tcp\n");
    assert!(
        d.log().to_lowercase().contains("insecure"),
        "the insecure listener is logged"
    );
}

#[tokio::test]
async fn tcp_without_insecure_refuses_to_start() {
    let dirs = Dirs::new();
    let log = refused_start(
        &dirs,
        &standard_policy(&dirs),
        "[tcp]\naddress = \"127.0.0.1:1\"\nagent = \"tester\"\n",
    )
    .await;
    assert!(log.contains("insecure = true"), "{log}");
}

// ------------------------------------------------------------------ CLI

#[tokio::test]
async fn cli_write_then_read_round_trip() {
    let d = Daemon::start().await;
    let out = d.cli(&[
        "write-file",
        "notes/hello.txt",
        "-p",
        "--content",
        "hello from the cli\n",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created notes/hello.txt"));
    assert_eq!(get(&d.dirs.w("notes/hello.txt")), "hello from the cli\n");
    let out = d.cli(&["read-file", "notes/hello.txt"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from the cli\n");
    // From standard input.
    let mut child = Command::new(BIN)
        .arg("call")
        .arg("--socket")
        .arg(&d.dirs.socket)
        .args(["write-file", "stdin.txt"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"piped\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get(&d.dirs.w("stdin.txt")), "piped\n");
}

#[tokio::test]
async fn cli_piped_into_a_reader_that_left_ends_quietly() {
    // `agentjail call read-file notes.txt | head` with head already gone:
    // the client exits as SIGPIPE would have it (141), with no panic.
    let d = Daemon::start().await;
    std::fs::write(d.dirs.w("notes.txt"), "line\n".repeat(1000)).unwrap();
    let run = |stdout: Stdio| {
        Command::new(BIN)
            .arg("call")
            .arg("--socket")
            .arg(&d.dirs.socket)
            .args(["read-file", "notes.txt"])
            .stdout(stdout)
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    };
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = run(writer.into());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{:?}: {stderr}", out.status);
    // Control: with a reader, the file arrives whole.
    let out = run(Stdio::piped());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.len(), 5000);
}

#[tokio::test]
async fn cli_covers_every_file_tool_and_reports_errors() {
    let d = Daemon::start().await;
    put(
        &d.dirs.w("src/main.rs"),
        "fn main() {\n    println!(\"hi\");\n}\n",
    );
    let run = |args: &[&str]| {
        let out = d.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = run(&["edit-file", "src/main.rs", "--old", "hi", "--new", "hello"]);
    assert!(out.contains("+    println!(\"hello\");"), "{out}");
    assert!(get(&d.dirs.w("src/main.rs")).contains("hello"));
    assert!(
        run(&["list-dir", "--depth", "2"])
            .lines()
            .any(|l| l == "src/main.rs")
    );
    assert_eq!(run(&["glob", "**/*.rs"]).trim(), "src/main.rs");
    assert_eq!(run(&["grep", "println"]).trim(), "src/main.rs");
    assert!(run(&["grep", "-n", "println"]).contains("src/main.rs:2:"));
    assert!(run(&["stat", "src/main.rs"]).contains("file"));
    run(&["mkdir", "-p", "a/b"]);
    assert!(d.dirs.w("a/b").is_dir());
    run(&["move", "src/main.rs", "a/b/main.rs"]);
    assert!(exists(&d.dirs.w("a/b/main.rs")));
    run(&["remove", "-r", "a"]);
    assert!(!exists(&d.dirs.w("a")));
    // Errors: `error: REASON: message` on stderr, exit status 1.
    for (args, reason) in [
        (&["read-file", "missing.txt"][..], "NOT_FOUND"),
        (
            &["read-file", "../outside/secret.txt"][..],
            "PATH_OUTSIDE_WORKSPACE",
        ),
        (
            &["write-file", ".env", "--content", "x"][..],
            "POLICY_DENIED",
        ),
        (&["read-file", "-w", "nope", "x"][..], "UNKNOWN_WORKSPACE"),
    ] {
        let out = d.cli(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!("error: {reason}: ")),
            "{args:?}: {stderr}"
        );
    }
    assert!(!exists(&d.dirs.w(".env")));
    d.dirs.assert_outside_untouched();
}
