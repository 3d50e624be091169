//! The frictions a new user met (issue 11): the metrics endpoint, JSON
//! logs, `audit verify` with the README's glob, `audit show`'s options, and
//! a daemon started as non-root on the default policy.

#[path = "shell_common/mod.rs"]
mod shell_common;

use agentjail::proto::*;
use shell_common::*;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `METHOD path` over HTTP/1.0: the head (status line and headers) and body.
fn http(addr: &str, method: &str, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the metrics address");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    (head.to_lowercase(), body.to_string())
}

fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn limited() -> Policy {
    Policy {
        memory_bytes: 64 << 20,
        ..Policy::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_only_at_slash_metrics_with_build_process_and_command_endings() {
    let addr = format!("127.0.0.1:{}", free_port());
    let d =
        ShellDaemon::start_with_config(&limited(), &format!("metrics_address = \"{addr}\"")).await;
    for path in ["/", "/favicon.ico", "/metrics/x", "/metricsx"] {
        let (head, _) = http(&addr, "GET", path);
        assert!(
            head.starts_with("http/1.1 404") || head.starts_with("http/1.0 404"),
            "{path}: {head}"
        );
    }
    let (head, _) = http(&addr, "POST", "/metrics");
    assert!(head.contains(" 405"), "{head}");
    let (head, body) = http(&addr, "GET", "/metrics");
    assert!(head.contains(" 200"), "{head}");
    assert!(
        head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        body.contains(&format!("agentjail_build_info{{version=\"{version}\"}} 1")),
        "{body}"
    );
    assert!(
        sample(&body, "process_resident_memory_bytes").unwrap_or(0.0) > 0.0,
        "{body}"
    );
    assert!(
        sample(&body, "process_open_fds").unwrap_or(0.0) > 0.0,
        "{body}"
    );

    // Control: a command that ends by itself counts nowhere.
    assert_eq!(d.argv(&["true"]).await.code(), Some(0));
    let mut timed = argv_req(&["sleep", "30"]);
    timed.timeout_ms = 300;
    let r = d.run(timed).await.expect("Run with a timeout");
    assert!(r.exited.unwrap().timed_out);
    let oom = d
        .py("b = []\nwhile True: b.append(bytearray(16 << 20))")
        .await;
    assert!(oom.exited.oom_killed, "{oom:?}");
    // An Exec stream dropped once the command started.
    let mut c = d.client().await;
    let mut events = c
        .exec(argv_req(&["sleep", "30"]))
        .await
        .expect("Exec")
        .into_inner();
    let first = events.message().await.unwrap().expect("a first event");
    assert!(
        matches!(first.event, Some(exec_event::Event::Started(_))),
        "{first:?}"
    );
    drop(events);
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (_, body) = http(&addr, "GET", "/metrics");
        if sample(&body, "agentjail_command_cancellations_total").is_some()
            || Instant::now() > deadline
        {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        sample(&body, "agentjail_command_timeouts_total"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "agentjail_command_oom_kills_total"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "agentjail_command_cancellations_total"),
        Some(1.0),
        "{body}"
    );
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run agentjail");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn json_logs_carry_audit_records_as_objects() {
    let d = ShellDaemon::start_with_config(&Policy::default(), "log_format = \"json\"").await;
    let mut c = d.client().await;
    c.who_am_i(WhoAmIRequest {}).await.expect("WhoAmI");
    let deadline = Instant::now() + Duration::from_secs(5);
    let record = loop {
        let found = d
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["audit"]["method"] == "WhoAmI");
        if let Some(v) = found {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "no audit object in:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(record["audit"].is_object());
    assert_eq!(record["audit"]["agent"], AGENT);
    assert_eq!(record["level"], "INFO");
    assert!(record["timestamp"].is_string());
    // Every line is JSON, and no record hides in a message string.
    for line in d.log().lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        let message = v["message"].as_str().unwrap_or("");
        assert!(!message.contains("\"method\""), "{line}");
    }
}

#[tokio::test]
async fn audit_verify_and_show_as_the_readme_writes_them() {
    let mut d = ShellDaemon::start().await;
    let mut timed = argv_req(&["sleep", "30"]);
    timed.timeout_ms = 200;
    d.run(timed).await.expect("Run");
    assert_eq!(d.argv(&["true"]).await.code(), Some(0));
    d.run(argv_req(&["not-a-program"]))
        .await
        .expect_err("refused");
    let log = d.dirs.state_dir.join("audit.jsonl");
    assert!(d.dirs.state_dir.join("audit.jsonl.head").exists());
    // The daemon got --state-dir; the CLI reads it from a config file.
    let config = d.dirs.root.join("cli.toml");
    std::fs::write(&config, format!("state_dir = {:?}\n", d.dirs.state_dir)).unwrap();
    let config = config.display().to_string();
    // The README's glob on a fresh log matches the log and its .head.
    let glob = format!("{}*", log.display());
    let verify = |what: &str| {
        // As a shell expands it (the test's own sh).
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{BIN} audit verify {glob}"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{what}: {text}");
        assert!(text.contains("chain intact"), "{what}: {text}");
    };
    verify("fresh log");
    // Rotated, then one more record: without FILES the config's log and
    // its rotated file are verified in chain order.
    let pid = rustix::process::Pid::from_raw(d.pid as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::USR1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_dir(&d.dirs.state_dir).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(char::is_numeric)
    }) {
        assert!(Instant::now() < deadline, "no rotation");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(d.argv(&["true"]).await.code(), Some(0));
    let (code, out, err) = cli(&["audit", "verify", "--config", &config]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("chain intact"), "{out}");

    let (code, _, err) = cli(&["audit", "show", "--config", &config, "--decision", "denied"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("allow") && err.contains("deny"), "{err}");
    let (code, out, err) = cli(&["audit", "show", "--config", &config, "--decision", "deny"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("not-a-program"), "{out}");
    assert!(!out.contains("sleep"), "{out}");
    let (code, out, err) = cli(&["audit", "show", "--config", &config, "--method", "run"]);
    assert_eq!(code, 0, "{err}");
    let sleep_row = out
        .lines()
        // The command's outcome row, not its intent's (which points at it).
        .find(|l| l.contains("sleep 30") && !l.contains("intent"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(sleep_row.contains("TIMED_OUT"), "{sleep_row}");
    let true_row = out
        .lines()
        .find(|l| l.ends_with(" true") && !l.contains("intent"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(true_row.contains("exit 0"), "{true_row}");
    d.assert_serving().await;
}

#[test]
fn started_as_non_root_on_the_default_policy_it_says_it_needs_root_and_makes_nothing() {
    let home = tempfile::tempdir().unwrap();
    set_mode(home.path(), 0o777);
    let config = home.path().join("agentjail.toml");
    std::fs::write(&config, "").unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "env",
            "-i",
        ])
        .arg(format!("HOME={}", home.path().display()))
        .arg("PATH=/usr/bin:/bin")
        .arg(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv (util-linux)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("needs root"), "{err}");
    assert_eq!(
        err.matches("refusing to start").count(),
        1,
        "printed once: {err}"
    );
    let left: Vec<_> = std::fs::read_dir(home.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("agentjail.toml")],
        "nothing half-made"
    );
}

#[tokio::test]
async fn the_cli_names_a_permission_error_and_a_missing_socket() {
    let d = ShellDaemon::start().await;
    let socket = d.dirs.socket.display().to_string();
    let as_nobody = |socket: &str| {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(BIN)
            .args(["call", "--socket", socket, "whoami"])
            .stdin(Stdio::null())
            .output()
            .expect("run setpriv (util-linux)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = as_nobody(&socket);
    assert!(!ok);
    assert!(err.contains("permission denied: uid 65534"), "{err}");
    assert!(err.contains("socket_group"), "{err}");
    assert!(!err.contains("transport error"), "{err}");
    let (ok, err) = as_nobody(&format!("{socket}.missing"));
    assert!(!ok);
    assert!(err.contains("no daemon socket at"), "{err}");
    assert!(err.contains("XDG_RUNTIME_DIR"), "{err}");
    // Control: the daemon's own user reaches it.
    let (code, out, err) = cli(&["call", "--socket", &socket, "whoami"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(AGENT), "{out}");
}

#[tokio::test]
async fn programs_inside_the_workspace_run_when_the_policy_names_them() {
    let mut policy = Policy::default();
    policy
        .commands
        .push(("/workspace/tools/hello.sh".into(), Vec::new()));
    policy
        .commands
        .push(("/workspace/.venv/bin/python".into(), Vec::new()));
    let d = ShellDaemon::start_with(policy).await;
    let script = |name: &str, body: &str| {
        let path = d.dirs.ws.join("tools").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        set_mode(&path, 0o755);
    };
    script("hello.sh", "echo hello from the workspace");
    script("other.sh", "touch /workspace/other-ran");
    for (argv0, cwd) in [
        ("/workspace/tools/hello.sh", ""),
        ("tools/hello.sh", ""),
        ("./hello.sh", "tools"),
        ("/workspace/tools/../tools/hello.sh", ""),
    ] {
        let mut req = argv_req(&[argv0]);
        req.cwd = cwd.into();
        let ran: Ran = d
            .run(req)
            .await
            .unwrap_or_else(|s| panic!("{argv0}: {s:?}"))
            .into();
        assert_eq!(
            ran.stdout, "hello from the workspace\n",
            "{argv0} in {cwd:?}"
        );
    }
    // Not named by the policy: refused with the real rule, and it did not run.
    let status = d
        .run(argv_req(&["tools/other.sh"]))
        .await
        .expect_err("refused");
    assert!(
        status
            .message()
            .contains("no shell.commands entry allows \"/workspace/tools/other.sh\""),
        "{}",
        status.message()
    );
    assert!(!d.dirs.ws.join("other-ran").exists());
    let status = d
        .run(argv_req(&["/workspace/../etc/passwd"]))
        .await
        .expect_err("refused");
    assert!(
        status
            .message()
            .contains("is not a file inside the workspace"),
        "{}",
        status.message()
    );

    // The README's route to test tools without network: a virtualenv in
    // the workspace (wheels would go in with pip --no-index).
    let venv = d
        .argv(&["python3", "-m", "venv", "--without-pip", "/workspace/.venv"])
        .await;
    assert_eq!(venv.code(), Some(0), "{venv:?}");
    let inside = d
        .argv(&[
            "/workspace/.venv/bin/python",
            "-c",
            "import sys; print(sys.prefix)",
        ])
        .await;
    assert_eq!(inside.stdout, "/workspace/.venv\n", "{inside:?}");
}
