//! The shell-tool API against the real daemon: `Exec` event order and
//! streaming, `Run`'s head-plus-tail budget, stdin, cwd, env filtering,
//! timeouts, idle timeouts, cancellation, exit codes and signals, rusage
//! figures, command-policy refusals, and the workspace the file tools and
//! the shell share. Runs as root (the daemon needs it); every case starts
//! its own daemon.

#[path = "shell_common/mod.rs"]
mod shell_common;

use agentjail::proto::exec_event::Event;
use agentjail::proto::*;
use shell_common::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tonic::Code;

fn stdout_of(events: &[ExecEvent]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Stdout(c)) => Some(c.data.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn stderr_of(events: &[ExecEvent]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Stderr(c)) => Some(c.data.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn exited_of(events: &[ExecEvent]) -> ExecExited {
    match events.last().and_then(|e| e.event.clone()) {
        Some(Event::Exited(x)) => x,
        other => panic!("the last event is not Exited: {other:?}"),
    }
}

/// Commands the daemon started (allowed shell calls in its audit log).
fn started_commands(d: &ShellDaemon) -> usize {
    d.commands_allowed()
}

#[test]
fn the_programs_the_suites_need_are_installed() {
    // A missing program fails here with a clear list (never a skip).
    require_programs(ESSENTIAL);
}

// ------------------------------------------------------------ streaming

#[tokio::test]
async fn exec_streams_started_first_then_chunks_then_exited_last() {
    require_programs(&["sh", "sleep"]);
    let d = ShellDaemon::start().await;
    let mut stream = d
        .client()
        .await
        .exec(sh_req(
            "echo out1; echo err1 >&2; sleep 0.3; echo out2; echo err2 >&2",
        ))
        .await
        .expect("Exec")
        .into_inner();

    // The first event is Started, and its pid is the sandbox's init, live
    // on the host and pid 1 in its own namespace.
    let first = stream.message().await.unwrap().expect("a first event");
    let Some(Event::Started(started)) = first.event.clone() else {
        panic!("first event is not Started: {first:?}");
    };
    assert!(started.pid > 0, "{started:?}");
    assert!(!started.exec_id.is_empty(), "{started:?}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", started.pid))
        .expect("the Started pid is a live host process");
    let nspid = status
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .expect("NSpid line");
    let nspid: Vec<&str> = nspid.split_whitespace().skip(1).collect();
    assert_eq!(
        nspid,
        vec![started.pid.to_string().as_str(), "1"],
        "the Started pid is pid 1 of a new pid namespace"
    );

    let mut events = vec![first];
    while let Some(e) = stream.message().await.unwrap() {
        events.push(e);
    }
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e.event {
            Some(Event::Started(_)) => "started",
            Some(Event::Stdout(_)) => "stdout",
            Some(Event::Stderr(_)) => "stderr",
            Some(Event::Exited(_)) => "exited",
            None => "none",
        })
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "started").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "exited").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"exited"), "{kinds:?}");
    assert!(!kinds.contains(&"none"), "{kinds:?}");
    assert_eq!(stdout_of(&events), b"out1\nout2\n");
    assert_eq!(stderr_of(&events), b"err1\nerr2\n");
    let exited = exited_of(&events);
    assert_eq!(exited.exit_code, Some(0), "{exited:?}");
    assert_eq!(exited.signal, None);
    assert_eq!((exited.stdout_bytes, exited.stderr_bytes), (10, 10));
    assert!(!exited.stdout_truncated && !exited.stderr_truncated);
    assert!(!exited.timed_out && !exited.idle_timed_out && !exited.cancelled);
    let info = exited.info.expect("Exited carries CallInfo");
    assert_eq!(info.agent, AGENT);
    assert_eq!(info.request_id, started.exec_id, "one id for the call");
    assert!(
        info.rule.contains("shell.allow_shell"),
        "a shell request is allowed by the allow_shell rule: {info:?}"
    );
    d.assert_no_leftovers(Duration::from_secs(3)).await;
}

#[tokio::test]
async fn exec_output_arrives_while_the_command_still_runs() {
    let d = ShellDaemon::start().await;
    let t0 = Instant::now();
    let mut stream = d
        .client()
        .await
        .exec(sh_req("echo early; sleep 2; echo late"))
        .await
        .unwrap()
        .into_inner();
    let mut early_at = None;
    let mut exited_at = None;
    let mut out = Vec::new();
    while let Some(e) = stream.message().await.unwrap() {
        match e.event {
            Some(Event::Stdout(c)) => {
                if early_at.is_none() {
                    early_at = Some(t0.elapsed());
                }
                out.extend(c.data);
            }
            Some(Event::Exited(_)) => exited_at = Some(t0.elapsed()),
            _ => {}
        }
    }
    let (early, exited) = (early_at.unwrap(), exited_at.unwrap());
    assert_eq!(out, b"early\nlate\n");
    assert!(
        exited >= early + Duration::from_millis(1000),
        "the first chunk ({early:?}) must be streamed before the command ends ({exited:?})"
    );
}

#[tokio::test]
async fn stdout_and_stderr_are_kept_apart() {
    let d = ShellDaemon::start().await;
    let script =
        "echo to-out; echo to-err >&2; printf 'no-newline-out'; printf 'no-newline-err' >&2";
    let r = d.sh(script).await;
    assert_eq!(r.stdout, "to-out\nno-newline-out", "{r:?}");
    assert_eq!(r.stderr, "to-err\nno-newline-err", "{r:?}");
    assert_eq!(r.exited.stdout_bytes, 21);
    assert_eq!(r.exited.stderr_bytes, 21);

    let events = d.exec_events(sh_req(script)).await.unwrap();
    assert_eq!(stdout_of(&events), b"to-out\nno-newline-out");
    assert_eq!(stderr_of(&events), b"to-err\nno-newline-err");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_each_get_their_own_output_and_sandbox() {
    let d = ShellDaemon::start().await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..12 {
        let socket = d.dirs.socket.clone();
        set.spawn(async move {
            let tail = if i % 2 == 0 {
                "cat; exit 0".to_string()
            } else {
                format!("exit {i}")
            };
            let mut req = sh_req(&format!(
                "echo out-{i}; echo err-{i} >&2; sleep 0.3; \
                 echo $(cat /proc/sys/kernel/hostname) $$; {tail}"
            ));
            if i % 2 == 0 {
                req.stdin = format!("in-{i}").into_bytes();
            }
            let mut c = agentjail::client::connect_unix(&socket).await.unwrap();
            (i, Ran::from(c.run(req).await.expect("Run").into_inner()))
        });
    }
    while let Some(joined) = set.join_next().await {
        let (i, r) = joined.unwrap();
        let (code, stdin) = if i % 2 == 0 {
            (0, format!("in-{i}"))
        } else {
            (i, String::new())
        };
        assert_eq!(r.code(), Some(code), "call {i}: {r:?}");
        // The shell is pid 2 (init is 1) in every sandbox: one pid
        // namespace each, and each call sees only its own stdin and output.
        assert_eq!(
            r.stdout,
            format!("out-{i}\nagentjail 2\n{stdin}"),
            "call {i}: {r:?}"
        );
        assert_eq!(r.stderr, format!("err-{i}\n"), "call {i}: {r:?}");
    }
    d.assert_no_leftovers(Duration::from_secs(3)).await;
}

// --------------------------------------------------------------- budget

/// `seq 1 N` followed by a distinctive last line.
fn seq_output(n: u32, tail: &str) -> Vec<u8> {
    let mut v: Vec<u8> = (1..=n)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    v.extend_from_slice(tail.as_bytes());
    v
}

#[tokio::test]
async fn run_keeps_head_and_tail_within_the_budget_and_counts_the_rest() {
    require_programs(&["seq"]);
    let d = ShellDaemon::start().await;
    let tail_line = "error: THE-DISTINCTIVE-LAST-LINE at the end of a long build\n";
    let expected = seq_output(100_000, tail_line);
    let mut req = sh_req(&format!(
        "seq 1 100000; printf '%s\\n' '{}'; echo to-err >&2",
        tail_line.trim_end()
    ));
    req.output_budget_bytes = 1000;
    let r = d.run_ok(req).await;
    assert_eq!(r.code(), Some(0), "{r:?}");
    let out = r.stdout_capture();
    assert_eq!(out.total_bytes, expected.len() as u64);
    assert_eq!(out.head, expected[..500], "the first half of the budget");
    assert_eq!(
        out.tail,
        expected[expected.len() - 500..],
        "the last half of the budget"
    );
    assert!(
        String::from_utf8_lossy(&out.tail).ends_with(tail_line),
        "the error at the end survives"
    );
    assert_eq!(out.omitted_bytes, expected.len() as u64 - 1000);
    assert_eq!(r.exited.stdout_bytes, expected.len() as u64);
    assert!(r.exited.stdout_truncated);
    // stderr has its own budget and fits in it.
    let err = r.stderr_capture();
    assert_eq!(
        (err.head.as_slice(), err.omitted_bytes),
        (&b"to-err\n"[..], 0)
    );
    assert!(err.tail.is_empty());
    assert_eq!(err.total_bytes, 7);
    assert!(!r.exited.stderr_truncated);
}

#[tokio::test]
async fn run_keeps_small_output_whole() {
    let d = ShellDaemon::start().await;
    let mut req = sh_req("seq 1 10");
    req.output_budget_bytes = 1000;
    let r = d.run_ok(req).await;
    let out = r.stdout_capture();
    assert_eq!(out.head, seq_output(10, ""));
    assert!(out.tail.is_empty());
    assert_eq!((out.omitted_bytes, out.total_bytes), (0, 21));
    assert!(!r.exited.stdout_truncated);
}

#[tokio::test]
async fn the_policy_budget_caps_the_requested_one() {
    let d = ShellDaemon::start_with(Policy {
        output_budget_bytes: 4096,
        ..Policy::default()
    })
    .await;
    let expected = seq_output(20_000, "");
    // 0 means the policy default; a larger request is capped by it.
    for asked in [0, 10 << 20] {
        let mut req = sh_req("seq 1 20000");
        req.output_budget_bytes = asked;
        let r = d.run_ok(req).await;
        let out = r.stdout_capture();
        assert_eq!(out.head.len() + out.tail.len(), 4096, "asked {asked}");
        assert_eq!(out.head, expected[..2048]);
        assert_eq!(out.tail, expected[expected.len() - 2048..]);
        assert_eq!(out.omitted_bytes, expected.len() as u64 - 4096);
        assert_eq!(out.total_bytes, expected.len() as u64);
    }
}

#[tokio::test]
async fn exec_streams_up_to_the_budget_and_counts_the_rest() {
    let d = ShellDaemon::start().await;
    let expected = seq_output(50_000, "");
    let mut req = sh_req("seq 1 50000");
    req.output_budget_bytes = 3000;
    let events = d.exec_events(req).await.unwrap();
    let streamed = stdout_of(&events);
    assert_eq!(
        streamed,
        expected[..3000],
        "the first budget bytes, in order"
    );
    let exited = exited_of(&events);
    assert_eq!(
        exited.stdout_bytes,
        expected.len() as u64,
        "the rest is counted"
    );
    assert!(exited.stdout_truncated);
    assert_eq!(exited.exit_code, Some(0));
}

// ---------------------------------------------------------------- stdin

#[tokio::test]
async fn stdin_bytes_reach_the_command() {
    let d = ShellDaemon::start().await;
    let data: Vec<u8> = b"line 1\nbinary \x00\xff\x01 bytes\nno final newline".to_vec();
    let mut req = argv_req(&["cat"]);
    req.stdin = data.clone();
    let r = d.run_ok(req).await;
    assert_eq!(r.code(), Some(0));
    let out = r.stdout_capture();
    assert_eq!(out.head, data, "stdin comes back byte for byte");

    // Bigger than a pipe buffer: all of it arrives, then EOF.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut req = sh_req("wc -c");
    req.stdin = big;
    let r = d.run_ok(req).await;
    assert_eq!(r.stdout.trim(), "3000000", "{r:?}");
}

#[tokio::test]
async fn without_stdin_the_command_reads_dev_null() {
    let d = ShellDaemon::start().await;
    let t0 = Instant::now();
    let mut req = sh_req("cat; echo \"eof rc=$?\"; readlink /proc/self/fd/0");
    req.timeout_ms = 20_000;
    let r = d.run_ok(req).await;
    assert_eq!(r.stdout, "eof rc=0\n/dev/null\n", "{r:?}");
    assert!(!r.exited.timed_out);
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "cat must see EOF at once, took {:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn without_stdin_dev_stdin_reads_as_empty() {
    // Tools read `/dev/stdin` (or `-`) by name: without stdin bytes that
    // must be an empty /dev/null too, not an error.
    let d = ShellDaemon::start().await;
    let r = d
        .sh("cat /dev/stdin; echo \"cat=$?\"; read x < /dev/stdin; echo \"read=$?\"")
        .await;
    assert_eq!(r.stdout, "cat=0\nread=1\n", "{r:?}");
    // With stdin bytes, /dev/stdin is the pipe.
    let mut req = sh_req("cat /dev/stdin");
    req.stdin = b"piped\n".to_vec();
    let r = d.run_ok(req).await;
    assert_eq!(r.stdout, "piped\n", "{r:?}");
}

#[tokio::test]
async fn oversized_stdin_is_refused_before_anything_runs() {
    let d = ShellDaemon::start().await;
    let mut req = argv_req(&["touch", "/workspace/never"]);
    req.stdin = vec![b'x'; (16 << 20) + 1];
    assert_refused(d.run(req).await, Code::ResourceExhausted, "TOO_LARGE");
    assert!(!exists(&d.dirs.w("never")));
    assert_eq!(started_commands(&d), 0);
    // Control: 16 MiB exactly is accepted and arrives whole.
    let mut req = sh_req("wc -c");
    req.stdin = vec![b'x'; 16 << 20];
    assert_eq!(d.run_ok(req).await.stdout.trim(), (16u64 << 20).to_string());
}

#[tokio::test]
async fn stdin_the_command_never_reads_does_not_hold_up_the_call() {
    let d = ShellDaemon::start().await;
    let t0 = Instant::now();
    let mut req = argv_req(&["true"]);
    req.stdin = vec![b'x'; 8 << 20];
    req.timeout_ms = 20_000;
    let r = d.run_ok(req).await;
    assert_eq!(r.code(), Some(0), "{r:?}");
    assert!(!r.exited.timed_out);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    d.assert_no_leftovers(Duration::from_secs(3)).await;
}

// ------------------------------------------------------------------ cwd

#[tokio::test]
async fn cwd_is_a_directory_inside_the_workspace() {
    let d = ShellDaemon::start().await;
    put_ws(&d.dirs, "sub/dir/here.txt", "x");
    let r = d.sh("pwd").await;
    assert_eq!(
        r.stdout, "/workspace\n",
        "default cwd is the workspace root"
    );
    let mut req = argv_req(&["pwd"]);
    req.cwd = "sub/dir".into();
    let r = d.run_ok(req).await;
    assert_eq!(r.stdout, "/workspace/sub/dir\n");
    let mut req = argv_req(&["ls"]);
    req.cwd = "./sub/../sub/dir/".into();
    let r = d.run_ok(req).await;
    assert_eq!(r.stdout, "here.txt\n", "{r:?}");
}

#[tokio::test]
async fn cwd_outside_the_workspace_is_refused_and_nothing_runs() {
    let d = ShellDaemon::start().await;
    std::os::unix::fs::symlink("/etc", d.dirs.w("etc-link")).unwrap();
    for (cwd, code, reason) in [
        ("../x", Code::InvalidArgument, "PATH_OUTSIDE_WORKSPACE"),
        (
            "sub/../../x",
            Code::InvalidArgument,
            "PATH_OUTSIDE_WORKSPACE",
        ),
        ("..", Code::InvalidArgument, "PATH_OUTSIDE_WORKSPACE"),
        ("etc-link", Code::PermissionDenied, "SYMLINK_ESCAPE"),
    ] {
        let mut req = argv_req(&["touch", "/tmp/never", "/workspace/never"]);
        req.cwd = cwd.into();
        assert_refused(d.run(req).await, code, reason);
    }
    // An absolute cwd is refused too (whichever of the two reasons).
    let mut req = argv_req(&["touch", "/workspace/never"]);
    req.cwd = "/etc".into();
    let s = d.run(req).await.expect_err("absolute cwd");
    assert_eq!(s.code(), Code::InvalidArgument, "{}", describe(&s));
    assert!(!exists(&d.dirs.w("never")), "nothing may run");
    assert_eq!(started_commands(&d), 0, "nothing was started");
}

#[tokio::test]
async fn missing_cwd_is_not_found_and_nothing_runs() {
    let d = ShellDaemon::start().await;
    put_ws(&d.dirs, "a-file", "x");
    let mut req = argv_req(&["touch", "/workspace/never"]);
    req.cwd = "no/such/dir".into();
    let s = assert_refused(d.run(req).await, Code::NotFound, "NOT_FOUND");
    assert!(s.message().contains("no/such/dir"), "{}", describe(&s));
    let mut req = argv_req(&["touch", "/workspace/never"]);
    req.cwd = "a-file".into();
    assert_refused(d.run(req).await, Code::InvalidArgument, "NOT_A_DIRECTORY");
    assert!(!exists(&d.dirs.w("never")));
    assert_eq!(started_commands(&d), 0);
}

// ------------------------------------------------------------------ env

fn env_map(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn malformed_env_names_are_invalid_and_nothing_runs() {
    let d = ShellDaemon::start().await;
    // Names the env globs allow (FOO, CARGO_*) but that are not names.
    for (name, value) in [
        ("CARGO_A=LD_PRELOAD", "/x"),
        ("CARGO_\0X", "v"),
        ("FOO", "nul\0inside"),
    ] {
        let mut req = argv_req(&["touch", "/workspace/never"]);
        req.env.insert(name.into(), value.into());
        let s = d.run(req).await.expect_err(name);
        assert_eq!(
            s.code(),
            Code::InvalidArgument,
            "{name:?}: {}",
            describe(&s)
        );
    }
    assert!(!exists(&d.dirs.w("never")));
    assert_eq!(started_commands(&d), 0);
}

#[tokio::test]
async fn allowed_env_names_pass_through_others_are_denied_by_name() {
    let d = ShellDaemon::start().await;
    let mut req = argv_req(&["env"]);
    req.env.insert("FOO".into(), "bar baz".into());
    req.env
        .insert("CARGO_HOME".into(), "/workspace/.cargo".into());
    let r = d.run_ok(req).await;
    let env = env_map(r.ok());
    assert_eq!(env.get("FOO").map(String::as_str), Some("bar baz"));
    assert_eq!(
        env.get("CARGO_HOME").map(String::as_str),
        Some("/workspace/.cargo"),
        "a glob (CARGO_*) allows the name"
    );

    for name in ["SECRET_TOKEN", "PATH", "LD_PRELOAD", "FOOX"] {
        let mut req = argv_req(&["touch", "/workspace/never"]);
        req.env.insert("FOO".into(), "ok".into());
        req.env.insert(name.into(), "x".into());
        let s = assert_refused(d.run(req).await, Code::PermissionDenied, "POLICY_DENIED");
        assert!(
            s.message().contains(name),
            "the refusal names {name}: {}",
            describe(&s)
        );
        assert_eq!(error_meta(&s).get("env").map(String::as_str), Some(name));
        assert!(
            error_meta(&s)
                .get("rule")
                .is_some_and(|r| r.contains("shell.env")),
            "{}",
            describe(&s)
        );
    }
    assert!(!exists(&d.dirs.w("never")), "nothing may run");
    assert_eq!(started_commands(&d), 1, "only the allowed call started");
}

#[tokio::test]
async fn commands_get_the_fixed_non_interactive_environment() {
    let d = ShellDaemon::start_with(Policy {
        path: vec!["/usr/bin".into(), "/bin".into()],
        ..Policy::default()
    })
    .await;
    let r = d.argv(&["env"]).await;
    let env = env_map(r.ok());
    let required = [
        ("PATH", "/usr/bin:/bin"),
        ("HOME", "/workspace"),
        ("LANG", "C.UTF-8"),
        ("TZ", "UTC"),
        ("PAGER", "cat"),
        ("GIT_TERMINAL_PROMPT", "0"),
        ("GIT_EDITOR", "true"),
        ("DEBIAN_FRONTEND", "noninteractive"),
        ("CI", "1"),
    ];
    for (k, v) in required {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k} in {env:#?}");
    }
    // Nothing else, beyond these harmless non-interactive settings.
    let extras = ["GIT_PAGER", "EDITOR", "TERM"];
    for k in env.keys() {
        assert!(
            required.iter().any(|(r, _)| r == k) || extras.contains(&k.as_str()),
            "unexpected variable {k} in {env:#?}"
        );
    }
    // HOME is usable: inside the writable workspace.
    let r = d.sh("touch \"$HOME/.probe\" && echo home-ok").await;
    assert_eq!(r.stdout, "home-ok\n", "{r:?}");
    assert!(exists(&d.dirs.w(".probe")));
}

// ------------------------------------------------------------- timeouts

#[tokio::test]
async fn timeout_kills_the_command_promptly_and_leaves_nothing() {
    let d = ShellDaemon::start().await;
    let marker = unique_sleep(30);
    let mut req = sh_req(&format!("echo before; sleep {marker}; echo after"));
    req.timeout_ms = 500;
    let t0 = Instant::now();
    let r = d.run_ok(req).await;
    let took = t0.elapsed();
    assert!(r.exited.timed_out, "{r:?}");
    assert!(!r.exited.idle_timed_out && !r.exited.cancelled);
    assert_eq!(r.exited.exit_code, None, "{r:?}");
    assert_eq!(r.exited.signal, Some(libc::SIGKILL), "{r:?}");
    assert_eq!(r.stdout, "before\n", "output until the kill is kept");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(4),
        "returned after {took:?}"
    );
    assert!(
        (450..4000).contains(&r.exited.wall_time_ms),
        "wall {}",
        r.exited.wall_time_ms
    );
    assert_no_process_with(&marker, Duration::from_secs(2)).await;
    d.assert_no_leftovers(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn the_timeout_defaults_to_and_is_capped_by_the_policy() {
    let d = ShellDaemon::start_with(Policy {
        timeout_ms: 1000,
        max_timeout_ms: 5000,
        ..Policy::default()
    })
    .await;
    // (asked, lower and upper bound of the call's duration in ms). The gap
    // between default and cap leaves room for a loaded 2-core machine.
    for (asked, lo, hi) in [(0u64, 900u64, 4900u64), (3_600_000, 4900, 10000)] {
        let marker = unique_sleep(60);
        let mut req = argv_req(&["sleep", &marker]);
        req.timeout_ms = asked;
        let t0 = Instant::now();
        let r = d.run_ok(req).await;
        let took = t0.elapsed().as_millis() as u64;
        assert!(r.exited.timed_out, "asked {asked}: {r:?}");
        assert!(
            (lo..hi).contains(&took),
            "asked {asked}ms: ended after {took}ms, expected {lo}..{hi}"
        );
        assert_no_process_with(&marker, Duration::from_secs(2)).await;
    }
    // A shorter request than the default is honoured.
    let mut req = argv_req(&["sleep", "10"]);
    req.timeout_ms = 200;
    let t0 = Instant::now();
    let r = d.run_ok(req).await;
    assert!(r.exited.timed_out, "{r:?}");
    assert!(
        t0.elapsed() < Duration::from_millis(1200),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn a_stalled_exec_client_cannot_stretch_the_command_past_its_timeout() {
    // The client opens an Exec stream and stops reading it. Once the
    // stream's buffers are full, the command must still be killed at its
    // timeout: the policy's limit is not the client's to extend.
    let d = ShellDaemon::start_with(Policy {
        output_budget_bytes: 16 << 20,
        ..Policy::default()
    })
    .await;
    let marker = unique_sleep(1000);
    let mut req = sh_req(&format!("head -c 8000000 /dev/zero; sleep {marker}"));
    req.timeout_ms = 1500;
    let mut client = d.client().await;
    let stream = client.exec(req).await.unwrap().into_inner();
    // Control: the command got going.
    assert!(
        wait_until(Duration::from_secs(3), || !d.descendants().is_empty()).await,
        "the command should be running"
    );
    let gone = wait_until(Duration::from_secs(5), || {
        host_pids_with(&marker).is_empty() && d.descendants().is_empty()
    })
    .await;
    let left = d.descendants();
    drop(stream);
    assert!(
        gone,
        "5 s after a 1.5 s timeout, with the client not reading, still running: {left:#?}"
    );
}

#[tokio::test]
async fn idle_timeout_kills_a_silent_command() {
    let d = ShellDaemon::start().await;
    let marker = unique_sleep(30);
    let mut req = sh_req(&format!("echo start; sleep {marker}"));
    req.idle_timeout_ms = 600;
    req.timeout_ms = 20_000;
    let t0 = Instant::now();
    let r = d.run_ok(req).await;
    assert!(r.exited.idle_timed_out, "{r:?}");
    assert!(!r.exited.timed_out, "{r:?}");
    assert_eq!(r.stdout, "start\n");
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    assert_no_process_with(&marker, Duration::from_secs(2)).await;
    d.assert_no_leftovers(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn idle_timeout_spares_a_command_that_keeps_printing() {
    let d = ShellDaemon::start().await;
    // 1.6 s in all, never silent for more than 0.2 s (stderr counts too).
    let mut req =
        sh_req("for i in 1 2 3 4 5 6 7 8; do echo $i; sleep 0.1; echo e >&2; sleep 0.1; done");
    req.idle_timeout_ms = 700;
    let r = d.run_ok(req).await;
    assert_eq!(r.code(), Some(0), "{r:?}");
    assert!(!r.exited.idle_timed_out && !r.exited.timed_out);
    assert!(r.exited.wall_time_ms >= 1500, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 8);
}

// --------------------------------------------------------- cancellation

#[tokio::test]
async fn dropping_an_exec_stream_kills_the_process_tree() {
    let d = ShellDaemon::start().await;
    let (m1, m2) = (unique_sleep(1000), unique_sleep(1000));
    let mut client = d.client().await;
    let mut stream = client
        .exec(sh_req(&format!("sleep {m1} & echo ready; sleep {m2}")))
        .await
        .unwrap()
        .into_inner();
    loop {
        let e = stream.message().await.unwrap().expect("stream ended early");
        if matches!(&e.event, Some(Event::Stdout(c)) if c.data.starts_with(b"ready")) {
            break;
        }
    }
    // Control: the tree is running on the host right now.
    assert!(
        wait_until(Duration::from_secs(2), || !host_pids_with(&m1).is_empty()
            && !host_pids_with(&m2).is_empty())
        .await,
        "the command's processes should be running"
    );
    drop(stream);
    drop(client);
    assert_no_process_with(&m1, Duration::from_secs(3)).await;
    assert_no_process_with(&m2, Duration::from_secs(3)).await;
    d.assert_no_leftovers(Duration::from_secs(3)).await;
    assert!(
        wait_until(Duration::from_secs(3), || {
            d.audit_records()
                .iter()
                .any(|r| r["outcome"]["cancelled"] == serde_json::Value::Bool(true))
        })
        .await,
        "the daemon records the call as cancelled; audit: {:#?}",
        d.audit_records()
    );
}

#[tokio::test]
async fn abandoning_a_run_call_kills_the_process_tree() {
    let d = ShellDaemon::start().await;
    let marker = unique_sleep(1000);
    let mut client = d.client().await;
    let call = client.run(sh_req(&format!("sleep {marker}")));
    let r = tokio::time::timeout(Duration::from_millis(800), call).await;
    assert!(r.is_err(), "the call should still be running: {r:?}");
    // The abandoned call's future is gone; the command must follow.
    assert_no_process_with(&marker, Duration::from_secs(3)).await;
    d.assert_no_leftovers(Duration::from_secs(3)).await;
    drop(client);
}

#[tokio::test]
async fn the_calls_grpc_deadline_bounds_the_command() {
    let d = ShellDaemon::start().await;
    let marker = unique_sleep(1000);
    let mut req = tonic::Request::new(sh_req(&format!("sleep {marker}")));
    req.set_timeout(Duration::from_millis(700));
    let t0 = Instant::now();
    let r = d.client().await.run(req).await;
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    match r {
        Ok(res) => assert!(res.into_inner().exited.unwrap().timed_out),
        Err(s) => assert!(
            matches!(s.code(), Code::DeadlineExceeded | Code::Cancelled),
            "{}",
            describe(&s)
        ),
    }
    assert_no_process_with(&marker, Duration::from_secs(3)).await;
    d.assert_no_leftovers(Duration::from_secs(3)).await;
}

/// Starts `sleep <marker>` (plus a background one) through Exec and waits
/// until both run on the host; returns the open stream.
async fn start_sleepers(d: &ShellDaemon, m1: &str, m2: &str) -> tonic::Streaming<ExecEvent> {
    let mut stream = d
        .client()
        .await
        .exec(sh_req(&format!("setsid sleep {m1} & sleep {m2}")))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert!(matches!(first.event, Some(Event::Started(_))), "{first:?}");
    assert!(
        wait_until(Duration::from_secs(3), || !host_pids_with(m1).is_empty()
            && !host_pids_with(m2).is_empty())
        .await,
        "the command's processes should be running"
    );
    stream
}

#[tokio::test]
async fn sigkill_of_the_daemon_takes_its_commands_with_it() {
    let mut d = ShellDaemon::start().await;
    let (m1, m2) = (unique_sleep(1000), unique_sleep(1000));
    let stream = start_sleepers(&d, &m1, &m2).await;
    d.kill_with(rustix::process::Signal::KILL, Duration::from_secs(5))
        .await;
    drop(stream);
    assert_no_process_with(&m1, Duration::from_secs(3)).await;
    assert_no_process_with(&m2, Duration::from_secs(3)).await;
    // The dead daemon could not remove its per-launch cgroups: tidy up.
    for dir in d.leftover_cgroups() {
        let _ = std::fs::remove_dir(dir);
    }
}

#[tokio::test]
async fn sigterm_of_the_daemon_cuts_running_commands_after_the_grace_period() {
    let mut d = ShellDaemon::start().await;
    let (m1, m2) = (unique_sleep(1000), unique_sleep(1000));
    let stream = start_sleepers(&d, &m1, &m2).await;
    let t0 = Instant::now();
    let status = d
        .kill_with(rustix::process::Signal::TERM, Duration::from_secs(10))
        .await;
    assert!(status.success(), "clean exit after SIGTERM: {status}");
    assert!(
        t0.elapsed() < Duration::from_secs(6),
        "grace is 2 s: {:?}",
        t0.elapsed()
    );
    drop(stream);
    assert_no_process_with(&m1, Duration::from_secs(3)).await;
    assert_no_process_with(&m2, Duration::from_secs(3)).await;
    let left = d.leftover_cgroups();
    for dir in &left {
        let _ = std::fs::remove_dir(dir);
    }
    assert!(
        left.is_empty(),
        "a clean shutdown removes its cgroups: {left:?}"
    );
}

// ------------------------------------------------- exit codes, signals

#[tokio::test]
async fn exit_codes_and_signals_are_reported() {
    let d = ShellDaemon::start().await;
    let cases: Vec<(ExecRequest, Option<i32>, Option<i32>)> = vec![
        (sh_req("exit 7"), Some(7), None),
        (argv_req(&["false"]), Some(1), None),
        (py_req("import os; os._exit(255)"), Some(255), None),
        (sh_req("kill -TERM $$"), None, Some(libc::SIGTERM)),
        (sh_req("kill -KILL $$"), None, Some(libc::SIGKILL)),
        (
            py_req("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"),
            None,
            Some(libc::SIGSEGV),
        ),
    ];
    for (req, code, signal) in cases {
        let what = format!("{:?}{}", req.argv, req.shell);
        let r = d.run_ok(req).await;
        assert_eq!((r.code(), r.signal()), (code, signal), "{what}: {r:?}");
        let e = &r.exited;
        assert!(
            !e.timed_out && !e.idle_timed_out && !e.cancelled && !e.oom_killed,
            "{what}: an ordinary end: {r:?}"
        );
    }
}

#[tokio::test]
async fn a_non_zero_exit_is_a_result_not_an_rpc_error() {
    let d = ShellDaemon::start().await;
    let r = d
        .run(sh_req("echo partial; echo oops >&2; exit 3"))
        .await
        .expect("a failing command is still a successful call");
    let r = Ran::from(r);
    assert_eq!(r.code(), Some(3));
    assert_eq!(
        (r.stdout.as_str(), r.stderr.as_str()),
        ("partial\n", "oops\n")
    );
    let events = d
        .exec_events(sh_req("exit 42"))
        .await
        .expect("the Exec stream ends normally");
    assert_eq!(exited_of(&events).exit_code, Some(42));
}

// --------------------------------------------------------------- rusage

#[tokio::test]
async fn rusage_figures_are_reported() {
    let d = ShellDaemon::start().await;
    // A busy loop until 0.5 s of CPU: whatever the load, that much CPU.
    let r = d
        .py("import time\nwhile time.process_time() < 0.5: pass")
        .await;
    assert_eq!(r.code(), Some(0), "{r:?}");
    let e = &r.exited;
    assert!(e.cpu_time_ms >= 500, "busy loop cpu_time_ms: {r:?}");
    assert!(e.wall_time_ms >= 500 && e.wall_time_ms < 15_000, "{r:?}");
    assert!(e.cpu_time_ms <= e.wall_time_ms + 100, "one thread: {r:?}");
    assert!(e.peak_memory_bytes > 1 << 20, "{r:?}");

    // A sleeper: wall time, almost no CPU.
    let r = d.argv(&["sleep", "0.5"]).await;
    let e = &r.exited;
    assert!(e.wall_time_ms >= 500 && e.wall_time_ms < 5000, "{r:?}");
    assert!(e.cpu_time_ms < 200, "{r:?}");
    assert!(e.peak_memory_bytes > 0, "{r:?}");

    // Memory really touched shows in the peak.
    let r = d
        .py("b = bytearray(b'\\x01') * (96 << 20)\nprint(len(b))")
        .await;
    assert_eq!(r.stdout, format!("{}\n", 96 << 20), "{r:?}");
    assert!(r.exited.peak_memory_bytes >= 96 << 20, "{r:?}");
    assert!(r.exited.peak_memory_bytes < 512 << 20, "{r:?}");
}

// ------------------------------------------------------ command policy

#[tokio::test]
async fn a_denied_argument_is_permission_denied_naming_the_rule_and_nothing_starts() {
    let mut policy = Policy::default();
    policy
        .commands
        .push(("touch".into(), vec!["forbidden*".into()]));
    policy
        .commands
        .retain(|(p, d)| p != "touch" || !d.is_empty());
    let d = ShellDaemon::start_with(policy).await;
    let s = assert_refused(
        d.run(argv_req(&["touch", "ok-file", "forbidden-file"]))
            .await,
        Code::PermissionDenied,
        "POLICY_DENIED",
    );
    let rule = error_meta(&s).get("rule").cloned().unwrap_or_default();
    assert!(
        rule.contains("deny_args") && rule.contains("forbidden*"),
        "the rule is named: {}",
        describe(&s)
    );
    assert!(s.message().contains("forbidden*"), "{}", describe(&s));
    assert!(!exists(&d.dirs.w("ok-file")) && !exists(&d.dirs.w("forbidden-file")));

    let s = assert_refused(
        d.run(argv_req(&["git", "push", "origin", "main"])).await,
        Code::PermissionDenied,
        "POLICY_DENIED",
    );
    assert!(
        error_meta(&s)
            .get("rule")
            .is_some_and(|r| r.contains("\"push\"")),
        "{}",
        describe(&s)
    );
    assert_eq!(started_commands(&d), 0, "nothing was started");

    // Control: the same program with allowed arguments runs.
    let r = d.argv(&["touch", "ok-file"]).await;
    assert_eq!(r.code(), Some(0), "{r:?}");
    assert!(exists(&d.dirs.w("ok-file")));
    let info = r.exited.info.as_ref().unwrap();
    assert!(info.rule.contains("shell.commands \"touch\""), "{info:?}");
}

#[tokio::test]
async fn a_program_not_in_the_command_list_is_denied_and_nothing_starts() {
    let mut policy = Policy::default();
    policy.commands.retain(|(p, _)| p != "touch");
    let d = ShellDaemon::start_with(policy).await;
    for argv in [
        vec!["touch", "/workspace/never"],
        vec!["/usr/bin/touch", "/workspace/never"],
        vec!["no-such-program-anywhere"],
        vec!["./touch"],
        vec![""],
    ] {
        let s = assert_refused(
            d.run(argv_req(&argv)).await,
            Code::PermissionDenied,
            "POLICY_DENIED",
        );
        assert!(
            error_meta(&s).contains_key("rule"),
            "{argv:?}: {}",
            describe(&s)
        );
    }
    let s = d.run(argv_req(&["touch", "x"])).await.unwrap_err();
    assert!(
        error_meta(&s)["rule"].contains("no shell.commands entry allows"),
        "{}",
        describe(&s)
    );
    assert!(!exists(&d.dirs.w("never")));
    assert_eq!(started_commands(&d), 0);
    // Control: a listed program runs.
    assert_eq!(d.argv(&["echo", "listed"]).await.stdout, "listed\n");
}

#[tokio::test]
async fn a_shell_request_is_denied_where_allow_shell_is_false() {
    let d = ShellDaemon::start_with(Policy {
        allow_shell: false,
        ..Policy::default()
    })
    .await;
    let s = assert_refused(
        d.run(sh_req("touch /workspace/never")).await,
        Code::PermissionDenied,
        "POLICY_DENIED",
    );
    assert!(
        error_meta(&s)
            .get("rule")
            .is_some_and(|r| r.contains("allow_shell")),
        "{}",
        describe(&s)
    );
    let s = d
        .exec_events(sh_req("touch /workspace/never"))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied, "{}", describe(&s));
    assert!(!exists(&d.dirs.w("never")));
    assert_eq!(started_commands(&d), 0);
    // Control: argv requests still run.
    assert_eq!(d.argv(&["echo", "argv-ok"]).await.stdout, "argv-ok\n");
}

#[tokio::test]
async fn argv_and_shell_together_or_neither_is_invalid_argument() {
    let d = ShellDaemon::start().await;
    let both = ExecRequest {
        argv: vec!["touch".into(), "/workspace/never".into()],
        shell: "touch /workspace/never".into(),
        ..Default::default()
    };
    assert_refused(
        d.run(both.clone()).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let s = d.exec_events(both).await.unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument, "{}", describe(&s));
    assert_refused(
        d.run(ExecRequest::default()).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert!(!exists(&d.dirs.w("never")));
    assert_eq!(started_commands(&d), 0);
}

#[tokio::test]
async fn nul_bytes_in_argv_or_shell_are_invalid_argument() {
    let d = ShellDaemon::start().await;
    for req in [
        argv_req(&["touch", "/workspace/never\0x"]),
        argv_req(&["touch\0", "/workspace/never"]),
        sh_req("touch /workspace/never\0"),
    ] {
        let s = d.run(req).await.expect_err("NUL");
        assert_eq!(s.code(), Code::InvalidArgument, "{}", describe(&s));
    }
    assert!(!exists(&d.dirs.w("never")));
    assert_eq!(started_commands(&d), 0);
}

#[tokio::test]
async fn an_argument_too_long_for_execve_is_a_client_error_not_internal() {
    // One argument over the kernel's MAX_ARG_STRLEN (128 KiB): execve fails
    // with E2BIG. That is the request's fault, and nothing ran.
    let d = ShellDaemon::start().await;
    let big = "a".repeat(200_000);
    let s = d.run(argv_req(&["echo", &big])).await.expect_err("E2BIG");
    assert!(
        matches!(s.code(), Code::InvalidArgument | Code::ResourceExhausted),
        "{}",
        describe(&s)
    );
    d.assert_no_leftovers(Duration::from_secs(3)).await;
    // Control: a long but acceptable argument runs.
    let ok = "a".repeat(100_000);
    let r = d.argv(&["echo", &ok]).await;
    assert_eq!(r.stdout.len(), 100_001, "{r:?}");
}

#[tokio::test]
async fn cli_run_streams_output_and_exits_with_the_commands_status() {
    let d = ShellDaemon::start().await;
    let cli = |args: &[&str]| {
        std::process::Command::new(BIN)
            .arg("call")
            .arg("--socket")
            .arg(&d.dirs.socket)
            .args(args)
            .env_remove("AGENTJAIL_SOCKET")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let o = cli(&["run", "--shell", "echo hi; echo err >&2; exit 5"]);
    assert_eq!(o.status.code(), Some(5), "{o:?}");
    assert_eq!(o.stdout, b"hi\n");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("err\n"),
        "{o:?}"
    );
    let o = cli(&["run", "--", "sh", "-c", "echo $0 $1", "a", "b"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(o.stdout, b"a b\n");
    let o = cli(&["run", "--", "git", "push"]);
    assert_ne!(o.status.code(), Some(0), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("push"),
        "the refusal names the rule: {o:?}"
    );
}

// -------------------------------------------- file tools and shell agree

#[tokio::test]
async fn a_file_written_by_write_file_is_edited_by_a_command_and_read_back() {
    let d = ShellDaemon::start().await;
    let mut c = d.client().await;
    c.write_file(WriteFileRequest {
        path: "shared/notes.txt".into(),
        content: b"line one\n".to_vec(),
        mode: WriteMode::CreateOnly as i32,
        create_parents: true,
        ..Default::default()
    })
    .await
    .expect("WriteFile");
    let r = d.argv(&["cat", "shared/notes.txt"]).await;
    assert_eq!(r.stdout, "line one\n", "{r:?}");
    // sed -i replaces the file by rename: the directory must be writable
    // by the sandbox user too.
    let r = d
        .sh("echo 'line two' >> shared/notes.txt && sed -i 's/one/ONE/' shared/notes.txt && echo done")
        .await;
    assert_eq!(r.stdout, "done\n", "{r:?}");
    let read = c
        .read_file(ReadFileRequest {
            path: "shared/notes.txt".into(),
            ..Default::default()
        })
        .await
        .expect("ReadFile")
        .into_inner();
    assert_eq!(read.text, "line ONE\nline two\n");
    assert_eq!(
        std::fs::read_to_string(d.dirs.w("shared/notes.txt")).unwrap(),
        "line ONE\nline two\n"
    );
}

#[tokio::test]
async fn a_file_created_by_a_command_is_read_and_edited_by_the_file_tools() {
    let d = ShellDaemon::start().await;
    let mut c = d.client().await;
    let r = d
        .sh("mkdir -p out && printf 'alpha\\nbeta\\n' > out/made.txt && echo ok")
        .await;
    assert_eq!(r.stdout, "ok\n", "{r:?}");
    let read = c
        .read_file(ReadFileRequest {
            path: "out/made.txt".into(),
            ..Default::default()
        })
        .await
        .expect("ReadFile")
        .into_inner();
    assert_eq!(read.text, "alpha\nbeta\n");
    let edit = c
        .edit_file(EditFileRequest {
            path: "out/made.txt".into(),
            edits: vec![Edit {
                old: "beta".into(),
                new: "gamma".into(),
                replace_all: false,
            }],
            ..Default::default()
        })
        .await
        .expect("EditFile")
        .into_inner();
    assert!(edit.applied);
    let r = d
        .sh("cat out/made.txt && echo delta >> out/made.txt && echo appended")
        .await;
    assert_eq!(
        r.stdout, "alpha\ngamma\nappended\n",
        "the command sees the edit, and may still write: {r:?}"
    );
    let read = c
        .read_file(ReadFileRequest {
            path: "out/made.txt".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.text, "alpha\ngamma\ndelta\n");
    // A file the daemon creates belongs to the workspace owner, so the
    // sandbox user can replace it.
    c.write_file(WriteFileRequest {
        path: "out/by-daemon.txt".into(),
        content: b"v1\n".to_vec(),
        ..Default::default()
    })
    .await
    .unwrap();
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(d.dirs.w("out/by-daemon.txt")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (SANDBOX_UID, SANDBOX_GID));
    let r = d
        .sh("echo v2 > out/by-daemon.txt && cat out/by-daemon.txt")
        .await;
    assert_eq!(r.stdout, "v2\n", "{r:?}");
}
