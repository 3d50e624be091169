//! A durable record of every call whatever the client does (escape cases
//! B1, B2, B4, B5, B9): cancelled and timed-out calls are recorded with what
//! was done, commands and mutating file calls leave an intent before they
//! act, a daemon killed mid-command leaves that intent (reported by `audit
//! verify` as unfinished, not as corruption), and oversized requests are
//! refused before work with small records. Against the real daemon.

#[path = "shell_common/mod.rs"]
mod shell_common;

use agentjail::error::reason_of;
use agentjail::proto::*;
use serde_json::Value;
use shell_common::*;
use std::time::{Duration, Instant};
use tonic::Request;

/// The records of `request_id` (intent first when there is one), waiting
/// until an outcome record is there.
async fn records_of(
    d: &ShellDaemon,
    find: impl Fn(&Value) -> bool,
    what: &str,
) -> (Option<Value>, Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let recs = d.audit_records();
        if let Some(outcome) = recs.iter().find(|r| r["phase"] != "intent" && find(r)) {
            let intent = outcome["intent"]
                .as_u64()
                .and_then(|seq| recs.iter().find(|r| r["seq"] == seq).cloned());
            if let Some(i) = &intent {
                assert_eq!(i["phase"], "intent", "{i:#}");
                assert_eq!(i["request_id"], outcome["request_id"], "{i:#}");
            }
            return (intent, outcome.clone());
        }
        assert!(
            Instant::now() < deadline,
            "no outcome record for {what}; records: {recs:#?}\nlog:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn verify_log(d: &ShellDaemon) -> (bool, String) {
    let out = std::process::Command::new(BIN)
        .args(["audit", "verify"])
        .arg(d.dirs.state_dir.join("audit.jsonl"))
        .output()
        .expect("run audit verify");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn with_timeout<T>(msg: T, timeout: Duration) -> Request<T> {
    let mut r = Request::new(msg);
    r.set_timeout(timeout);
    r
}

fn shell_of(marker: &str) -> impl Fn(&Value) -> bool + '_ {
    move |r: &Value| {
        r["args"]["shell"]
            .as_str()
            .is_some_and(|s| s.contains(marker))
    }
}

/// B1: a Run whose deadline passes is stopped, and its record says so and
/// what had been done; a Run the client cancels likewise; an Exec whose
/// client drops the stream likewise. Control: a Run left alone is OK.
#[tokio::test]
async fn cancelled_and_timed_out_commands_are_stopped_and_recorded() {
    let d = ShellDaemon::start().await;

    // Control: an undisturbed Run has an intent, then an OK outcome.
    let ran = d.sh("echo control-run").await;
    assert_eq!(ran.stdout, "control-run\n");
    let (intent, outcome) = records_of(&d, shell_of("control-run"), "control").await;
    assert!(intent.is_some(), "a command has an intent record");
    assert_eq!(outcome["outcome"]["status"], "OK", "{outcome:#}");

    // Deadline: the command started (its file is on the host), was stopped.
    let sleep = unique_sleep(30);
    let script = format!("touch deadline-ran.txt; sleep {sleep}");
    let mut c = d.client().await;
    let started = Instant::now();
    let err = c
        .run(with_timeout(sh_req(&script), Duration::from_millis(1500)))
        .await
        .expect_err("the deadline passes first");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        matches!(
            err.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{err:?}"
    );
    assert!(
        d.dirs.ws.join("deadline-ran.txt").exists(),
        "it had started"
    );
    let (intent, outcome) = records_of(&d, shell_of("deadline-ran"), "the deadline Run").await;
    assert!(intent.is_some(), "{outcome:#}");
    assert_eq!(
        outcome["outcome"]["status"], "DEADLINE_EXCEEDED",
        "{outcome:#}"
    );
    assert_eq!(outcome["outcome"]["cancelled"], true, "{outcome:#}");
    assert_no_process_with(&sleep, Duration::from_secs(5)).await;

    // Cancel: the client drops the call once the command has started.
    let sleep = unique_sleep(30);
    let script = format!("touch cancel-ran.txt; sleep {sleep}");
    let mut c = d.client().await;
    let call = tokio::spawn(async move { c.run(sh_req(&script)).await });
    let marker = d.dirs.ws.join("cancel-ran.txt");
    assert!(
        wait_until(Duration::from_secs(10), || marker.exists()).await,
        "the command started"
    );
    call.abort();
    let (intent, outcome) = records_of(&d, shell_of("cancel-ran"), "the cancelled Run").await;
    assert!(intent.is_some());
    assert_eq!(outcome["outcome"]["status"], "CANCELLED", "{outcome:#}");
    assert_no_process_with(&sleep, Duration::from_secs(5)).await;

    // Exec: the stream is dropped after Started.
    let sleep = unique_sleep(30);
    let script = format!("touch exec-ran.txt; sleep {sleep}");
    let mut c = d.client().await;
    let mut stream = c.exec(sh_req(&script)).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert!(matches!(first.event, Some(exec_event::Event::Started(_))));
    let marker = d.dirs.ws.join("exec-ran.txt");
    assert!(wait_until(Duration::from_secs(10), || marker.exists()).await);
    drop(stream);
    drop(c);
    let (intent, outcome) = records_of(&d, shell_of("exec-ran"), "the dropped Exec").await;
    assert!(intent.is_some());
    assert_eq!(outcome["outcome"]["status"], "CANCELLED", "{outcome:#}");
    assert_no_process_with(&sleep, Duration::from_secs(5)).await;

    let (ok, out) = verify_log(&d);
    assert!(ok, "{out}");
    assert!(
        !out.contains("unfinished"),
        "every intent has its outcome: {out}"
    );
}

/// B1: a recursive Remove of a large tree cut by a 40 ms deadline: the
/// client gets an error, and the one outcome record (after its intent) says
/// whether the work was stopped and how much had been removed, matching
/// what is left on disk.
#[tokio::test]
async fn a_remove_cut_by_its_deadline_is_recorded_with_what_was_done() {
    let d = ShellDaemon::start().await;
    let tree = d.dirs.ws.join("tree");
    for i in 0..200 {
        let dir = tree.join(format!("d{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        for j in 0..100 {
            std::fs::write(dir.join(format!("f{j}")), "x").unwrap();
        }
    }
    let mut c = d.client().await;
    let req = RemoveRequest {
        path: "tree".into(),
        recursive: true,
        ..Default::default()
    };
    let err = c
        .remove(with_timeout(req, Duration::from_millis(40)))
        .await
        .expect_err("20,000 entries take longer than 40 ms");
    assert!(
        matches!(
            err.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{err:?}"
    );
    let (intent, outcome) = records_of(
        &d,
        |r| r["method"] == "Remove" && r["args"]["path"] == "tree",
        "the Remove",
    )
    .await;
    assert!(intent.is_some(), "a Remove has an intent: {outcome:#}");
    let o = &outcome["outcome"];
    assert_eq!(o["status"], "DEADLINE_EXCEEDED", "{outcome:#}");
    let message = o["message"].as_str().unwrap_or("");
    if tree.exists() {
        // Stopped part-way: the record says how far it got, and that is
        // what the disk shows.
        assert!(
            message.contains("had been removed") || message.contains("nothing was done"),
            "{outcome:#}"
        );
        let left = walkdir_count(&tree);
        match o["message"].as_str().and_then(removed_count) {
            Some(removed) => assert_eq!(left + removed, 20_200, "{outcome:#}"),
            None => assert_eq!(left, 20_200, "nothing removed: {outcome:#}"),
        }
    } else {
        assert!(message.contains("work was done"), "{outcome:#}");
    }
    // Control: the same call without a deadline completes and is OK.
    let rest = RemoveRequest {
        path: "tree".into(),
        recursive: true,
        ..Default::default()
    };
    if tree.exists() {
        c.remove(rest).await.expect("the rest is removed");
    }
    assert!(!tree.exists());
    let (ok, out) = verify_log(&d);
    assert!(ok && !out.contains("unfinished"), "{out}");
}

/// Entries below `dir`.
fn walkdir_count(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        n += 1;
        if e.file_type().unwrap().is_dir() {
            n += walkdir_count(&e.path());
        }
    }
    n
}

/// N of "(N of the M entries below ... had been removed)".
fn removed_count(message: &str) -> Option<usize> {
    let at = message.find(" of the ")?;
    message[..at].rsplit('(').next()?.trim().parse().ok()
}

/// B2, B11: kill -9 of the daemon while a command runs: the log holds the
/// command's intent, and `audit verify` passes, reporting the intent as
/// unfinished (a crash), not as corruption; the next daemon sweeps the
/// dead one's cgroups.
#[tokio::test]
async fn kill_9_during_a_command_leaves_its_intent() {
    let mut d = ShellDaemon::start().await;
    let sleep = unique_sleep(30);
    let script = format!("touch killed-ran.txt; sleep {sleep}");
    let mut c = d.client().await;
    let call = tokio::spawn(async move { c.run(sh_req(&script)).await });
    let marker = d.dirs.ws.join("killed-ran.txt");
    assert!(
        wait_until(Duration::from_secs(10), || marker.exists()).await,
        "the command started"
    );
    // The whole service dies at once (systemd's SIGKILL of the unit, the
    // OOM killer): the launcher first, so it cannot see the daemon go and
    // clean up after it (it does that when only the daemon dies).
    let launchers: Vec<u32> = host_processes()
        .into_iter()
        .filter(|(pid, ppid, _)| *ppid == d.pid && is_launcher(*pid))
        .map(|(pid, _, _)| pid)
        .collect();
    assert_eq!(launchers.len(), 1, "the daemon has its launcher");
    // Stopped first so that the daemon cannot react to the launcher's end
    // (and write the outcome) before its own SIGKILL.
    // SAFETY: signals to the daemon and its launcher child, alive just now.
    unsafe {
        assert_eq!(libc::kill(d.pid as libc::pid_t, libc::SIGSTOP), 0);
        assert_eq!(libc::kill(launchers[0] as libc::pid_t, libc::SIGKILL), 0);
    }
    d.kill_with(rustix::process::Signal::KILL, Duration::from_secs(5))
        .await;
    let _ = call.await;
    let recs = d.audit_records();
    let intents: Vec<&Value> = recs
        .iter()
        .filter(|r| r["phase"] == "intent" && shell_of("killed-ran")(r))
        .collect();
    assert_eq!(intents.len(), 1, "{recs:#?}");
    assert!(
        !recs
            .iter()
            .any(|r| r["intent"] == intents[0]["seq"] && r["phase"] != "intent"),
        "no outcome: the daemon died first"
    );
    let (ok, out) = verify_log(&d);
    assert!(ok, "a crash is not corruption: {out}");
    assert!(
        out.contains("unfinished") && out.contains("Run"),
        "verify names the unfinished intent: {out}"
    );
    // The sandbox died with the daemon's pid namespace child.
    assert_no_process_with(&sleep, Duration::from_secs(10)).await;

    // B11: the killed daemon left its per-call cgroups (control); the next
    // daemon to start removes them and says how many.
    let left = d.leftover_cgroups();
    assert!(!left.is_empty(), "kill -9 skips the teardown");
    let next = ShellDaemon::start().await;
    for dir in &left {
        assert!(!dir.exists(), "{} was swept", dir.display());
    }
    // The count is logged (it may be 0 here when a daemon of a test running
    // beside this one swept them first).
    let log = next.log();
    assert!(
        log.contains("removed the per-call cgroups of dead daemons swept="),
        "the sweep is logged:\n{log}"
    );
}

/// B9: a `grpc-timeout` past gRPC's 8 digits (2^60 hours) is capped, not
/// wrapped to zero: the command runs to its end.
#[tokio::test]
async fn an_absurd_grpc_timeout_is_capped_not_wrapped() {
    let d = ShellDaemon::start().await;
    let mut c = d.client().await;
    for value in ["1152921504606846976H", "99999999H"] {
        let mut req = Request::new(sh_req("sleep 0.3; echo survived"));
        req.metadata_mut()
            .insert("grpc-timeout", value.parse().unwrap());
        let r = c.run(req).await.expect("runs").into_inner();
        let exited = r.exited.unwrap();
        assert!(
            !exited.timed_out && !exited.cancelled,
            "{value}: {exited:?}"
        );
        assert_eq!(exited.exit_code, Some(0), "{value}");
        assert_eq!(
            String::from_utf8_lossy(&r.stdout.unwrap().head),
            "survived\n"
        );
    }
}

/// B4, B5: 30 MiB of argv, a 30 MiB Glob pattern, 200,000 edits and a
/// pathological Grep regex are refused before any work with a reason naming
/// the limit; each record stays under 64 KiB; no status is over 8 KiB; the
/// daemon keeps serving. Control: a normal Glob answers.
#[tokio::test]
async fn oversized_requests_are_refused_before_work_with_small_records() {
    let mut d = ShellDaemon::start().await;
    let mut c = d.client().await;
    let big = "A".repeat(30 << 20);

    let s = c
        .run(argv_req(&["touch", "never-ran.txt", &big]))
        .await
        .expect_err("refused");
    assert_eq!(reason_of(&s).as_deref(), Some("LIMIT_EXCEEDED"), "{s:?}");
    assert!(s.message().contains("max_argv_bytes"), "{}", s.message());
    assert!(s.message().len() + s.details().len() < 8192);
    assert!(!d.dirs.ws.join("never-ran.txt").exists());
    let many: Vec<String> = vec![String::new(); 1_000_000];
    let s = c
        .run(ExecRequest {
            argv: many,
            ..Default::default()
        })
        .await
        .expect_err("refused");
    assert!(s.message().contains("max_argv_entries"), "{}", s.message());

    let s = c
        .glob(GlobRequest {
            pattern: big.clone(),
            ..Default::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(reason_of(&s).as_deref(), Some("LIMIT_EXCEEDED"));
    assert!(s.message().contains("max_pattern_bytes"));
    assert!(s.message().len() + s.details().len() < 8192);
    std::fs::write(d.dirs.ws.join("e.txt"), "x\n").unwrap();
    let s = c
        .edit_file(EditFileRequest {
            path: "e.txt".into(),
            edits: vec![
                Edit {
                    old: "x".into(),
                    new: "y".into(),
                    replace_all: false,
                };
                200_000
            ],
            ..Default::default()
        })
        .await
        .expect_err("refused");
    assert!(s.message().contains("max_edits"), "{}", s.message());
    assert_eq!(
        std::fs::read_to_string(d.dirs.ws.join("e.txt")).unwrap(),
        "x\n"
    );

    // A regex whose compiled form is huge: a clear error, not a core busy.
    std::fs::write(d.dirs.ws.join("big.txt"), "a".repeat(2 << 20)).unwrap();
    let started = Instant::now();
    let s = c
        .grep(GrepRequest {
            pattern: "a{1000}{1000}".into(),
            ..Default::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(s.message().len() + s.details().len() < 8192, "{s:?}");

    // Control: a normal Glob answers.
    let found = c
        .glob(GlobRequest {
            pattern: "*.txt".into(),
            ..Default::default()
        })
        .await
        .expect("a normal glob answers")
        .into_inner();
    assert!(found.paths.iter().any(|p| p == "e.txt"), "{found:?}");

    let text = std::fs::read_to_string(d.dirs.state_dir.join("audit.jsonl")).unwrap();
    for line in text.lines() {
        assert!(line.len() < 64 << 10, "a record of {} bytes", line.len());
    }
    let recs = d.audit_records();
    let argv_rec = recs
        .iter()
        .find(|r| r["outcome"]["reason"] == "LIMIT_EXCEEDED" && r["method"] == "Run")
        .expect("the refused Run is recorded");
    assert_eq!(
        argv_rec["args"]["argv_bytes"],
        ("touch".len() + "never-ran.txt".len() + big.len()) as u64,
        "{argv_rec:#}"
    );
    assert!(argv_rec["args"]["argv_sha256"].is_string());
    // A million empty argv entries are counted on the wire and refused
    // before they are decoded: recorded with the request's size.
    let counted = recs
        .iter()
        .find(|r| {
            r["method"] == "Run"
                && r["outcome"]["reason"] == "LIMIT_EXCEEDED"
                && r["args"]["request_bytes"]
                    .as_u64()
                    .is_some_and(|n| n >= 1_000_000)
        })
        .expect("the million-entry Run is recorded with its size");
    assert!(
        counted["outcome"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("before decoding")),
        "{counted:#}"
    );
    let log = d.log();
    assert!(
        log.lines().all(|l| l.len() < 64 << 10),
        "the daemon's log has compact lines"
    );
    d.assert_serving().await;
}

/// A mutating file call, set up on disk and looked at afterwards.
#[derive(Clone, Copy, Debug)]
enum Mutation {
    Write,
    Edit,
    MakeDir,
    Move,
    Remove,
    RemoveTree,
}

/// What the disk shows a call did.
#[derive(Debug, PartialEq)]
enum Effect {
    Untouched,
    Done,
    /// Entries of a tree removed before the call was stopped.
    Partial(usize),
}

const EDIT_TOKENS: usize = 300;
const TREE_ENTRIES: usize = 2_020;
const WRITE_BYTES: usize = 512 << 10;

impl Mutation {
    const ALL: [Mutation; 6] = [
        Mutation::Write,
        Mutation::Edit,
        Mutation::MakeDir,
        Mutation::Move,
        Mutation::Remove,
        Mutation::RemoveTree,
    ];

    fn method(self) -> &'static str {
        match self {
            Mutation::Write => "WriteFile",
            Mutation::Edit => "EditFile",
            Mutation::MakeDir => "MakeDir",
            Mutation::Move => "Move",
            Mutation::Remove | Mutation::RemoveTree => "Remove",
        }
    }

    /// What must be on disk before the call `name`.
    fn prepare(self, ws: &std::path::Path, name: &str) {
        match self {
            Mutation::Write | Mutation::MakeDir => {}
            Mutation::Edit => std::fs::write(ws.join(name), edit_text(false)).unwrap(),
            Mutation::Move | Mutation::Remove => std::fs::write(ws.join(name), "x").unwrap(),
            Mutation::RemoveTree => {
                for i in 0..20 {
                    let dir = ws.join(name).join(format!("d{i}"));
                    std::fs::create_dir_all(&dir).unwrap();
                    for j in 0..100 {
                        std::fs::write(dir.join(format!("f{j}")), "x").unwrap();
                    }
                }
            }
        }
    }

    /// Sends the call `name` as `req` shapes it (a deadline, or none).
    async fn send(
        self,
        c: &mut agentjail::proto::tool_sandbox_client::ToolSandboxClient<tonic::transport::Channel>,
        name: &str,
        deadline: Option<Duration>,
    ) -> Result<(), tonic::Status> {
        fn shaped<T>(msg: T, deadline: Option<Duration>) -> Request<T> {
            match deadline {
                Some(d) => with_timeout(msg, d),
                None => Request::new(msg),
            }
        }
        let path = name.to_string();
        match self {
            Mutation::Write => {
                let req = WriteFileRequest {
                    path,
                    content: vec![b'w'; WRITE_BYTES],
                    ..Default::default()
                };
                c.write_file(shaped(req, deadline)).await.map(drop)
            }
            Mutation::Edit => {
                let edits = (0..EDIT_TOKENS)
                    .map(|i| Edit {
                        old: format!("<tok{i}>"),
                        new: format!("<TOK{i}>"),
                        ..Default::default()
                    })
                    .collect();
                let req = EditFileRequest {
                    path,
                    edits,
                    ..Default::default()
                };
                c.edit_file(shaped(req, deadline)).await.map(drop)
            }
            Mutation::MakeDir => {
                let req = MakeDirRequest {
                    path: format!("{path}/a/b/c"),
                    parents: true,
                    ..Default::default()
                };
                c.make_dir(shaped(req, deadline)).await.map(drop)
            }
            Mutation::Move => {
                let req = MoveRequest {
                    from: path.clone(),
                    to: format!("{path}.moved"),
                    ..Default::default()
                };
                c.r#move(shaped(req, deadline)).await.map(drop)
            }
            Mutation::Remove | Mutation::RemoveTree => {
                let req = RemoveRequest {
                    path,
                    recursive: matches!(self, Mutation::RemoveTree),
                    ..Default::default()
                };
                c.remove(shaped(req, deadline)).await.map(drop)
            }
        }
    }

    /// What the disk shows the call `name` did.
    fn effect(self, ws: &std::path::Path, name: &str) -> Effect {
        let at = ws.join(name);
        match self {
            Mutation::Write => match std::fs::metadata(&at) {
                Err(_) => Effect::Untouched,
                Ok(m) if m.len() == WRITE_BYTES as u64 => Effect::Done,
                Ok(m) => panic!("{name}: a half-written file of {} bytes", m.len()),
            },
            Mutation::Edit => {
                let text = std::fs::read_to_string(&at).unwrap();
                if text == edit_text(false) {
                    Effect::Untouched
                } else {
                    assert!(text == edit_text(true), "{name}: a half-edited file");
                    Effect::Done
                }
            }
            Mutation::MakeDir => match (at.exists(), at.join("a/b/c").is_dir()) {
                (false, _) => Effect::Untouched,
                (true, true) => Effect::Done,
                (true, false) => panic!("{name}: a part of the directories made"),
            },
            Mutation::Move => match (at.exists(), ws.join(format!("{name}.moved")).exists()) {
                (true, false) => Effect::Untouched,
                (false, true) => Effect::Done,
                both => panic!("{name}: from/to exist: {both:?}"),
            },
            Mutation::Remove => match at.exists() {
                true => Effect::Untouched,
                false => Effect::Done,
            },
            Mutation::RemoveTree => match at.exists() {
                false => Effect::Done,
                true => match TREE_ENTRIES - walkdir_count(&at) {
                    0 => Effect::Untouched,
                    removed => Effect::Partial(removed),
                },
            },
        }
    }
}

/// A file with `EDIT_TOKENS` tokens spread through 1 MiB, so that each edit
/// has a scan to do; edited, every token is upper-cased.
fn edit_text(edited: bool) -> String {
    let filler = "y".repeat((1 << 20) / EDIT_TOKENS);
    (0..EDIT_TOKENS)
        .map(|i| match edited {
            false => format!("<tok{i}>{filler}\n"),
            true => format!("<TOK{i}>{filler}\n"),
        })
        .collect()
}

/// What an outcome record says the call did.
fn claimed(outcome: &Value) -> Effect {
    let o = &outcome["outcome"];
    let message = o["message"].as_str().unwrap_or("");
    match o["status"].as_str() {
        Some("OK") => Effect::Done,
        Some("CANCELLED" | "DEADLINE_EXCEEDED") => {
            if message.contains("work was done") {
                Effect::Done
            } else if message.contains("nothing was done")
                || message.contains("nothing had been removed")
                || message.contains("was not changed")
            {
                Effect::Untouched
            } else if let Some(n) = removed_count(message) {
                if n == 0 {
                    Effect::Untouched
                } else {
                    Effect::Partial(n)
                }
            } else {
                panic!("a stopped call's record must say what was done: {outcome:#}")
            }
        }
        _ => panic!("an unexpected outcome: {outcome:#}"),
    }
}

/// B1 for every mutating file call: each is cut by its deadline, or by its
/// client cancelling, at a range of moments (before it reached the daemon,
/// during its intent, mid-work, after its work). Whatever the moment, every
/// effect on disk is matched by a record saying so, a record that says
/// nothing was done matches an untouched disk, and `audit verify` passes
/// with every intent answered. Calls whose work cannot stop midway (a
/// write, a mkdir, a rename) complete and say so, or never start. Control:
/// each call left alone is OK.
#[tokio::test]
async fn every_mutating_file_call_cut_by_cancel_or_deadline_is_recorded_as_what_it_did() {
    let d = ShellDaemon::start().await;
    let ws = d.dirs.ws.clone();
    let mut c = d.client().await;
    let moments_ms = [1u64, 2, 4, 8, 16, 40];
    let mut calls = Vec::new();
    for kind in Mutation::ALL {
        // Control.
        let name = format!("control-{kind:?}").to_lowercase();
        kind.prepare(&ws, &name);
        kind.send(&mut c, &name, None)
            .await
            .expect("an undisturbed call");
        assert_eq!(kind.effect(&ws, &name), Effect::Done, "{name}");
        calls.push((kind, name, true));
        for (i, ms) in moments_ms.iter().enumerate() {
            let moment = Duration::from_millis(*ms);
            let name = format!("deadline-{kind:?}-{i}").to_lowercase();
            kind.prepare(&ws, &name);
            let _ = kind.send(&mut c, &name, Some(moment)).await;
            calls.push((kind, name, false));

            let name = format!("cancel-{kind:?}-{i}").to_lowercase();
            kind.prepare(&ws, &name);
            let mut cc = c.clone();
            let sent = name.clone();
            let call = tokio::spawn(async move { kind.send(&mut cc, &sent, None).await });
            tokio::time::sleep(moment).await;
            call.abort();
            let _ = call.await;
            calls.push((kind, name, false));
        }
    }
    // The cut calls' work goes on (or stops) on its own: wait until every
    // intent has its outcome.
    let settled = wait_until(Duration::from_secs(30), || {
        let (ok, out) = verify_log(&d);
        ok && !out.contains("unfinished")
    })
    .await;
    let (ok, out) = verify_log(&d);
    assert!(settled && ok, "audit verify: {out}");

    let recs = d.audit_records();
    let mut cut = 0;
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for (kind, name, control) in &calls {
        let ours: Vec<&Value> = recs
            .iter()
            .filter(|r| {
                let path = r["args"]["path"].as_str().unwrap_or("");
                r["method"] == kind.method()
                    && (path == name
                        || path.starts_with(&format!("{name}/"))
                        || r["args"]["from"] == name.as_str())
            })
            .collect();
        let outcomes: Vec<&&Value> = ours.iter().filter(|r| r["phase"] != "intent").collect();
        let intents = ours.len() - outcomes.len();
        let effect = kind.effect(&ws, name);
        match outcomes.as_slice() {
            // It never reached the daemon: nothing happened.
            [] => {
                *seen.entry(format!("{kind:?}: no record")).or_default() += 1;
                assert_eq!(intents, 0, "{name}: an intent without an outcome");
                assert_eq!(
                    effect,
                    Effect::Untouched,
                    "{name}: an effect with no record"
                );
                cut += 1;
            }
            [outcome] => {
                let status = outcome["outcome"]["status"].as_str().unwrap_or("?");
                *seen
                    .entry(format!("{kind:?}: {status} {:?}", claimed(outcome)))
                    .or_default() += 1;
                if *control {
                    assert_eq!(outcome["outcome"]["status"], "OK", "{outcome:#}");
                }
                if outcome["outcome"]["status"] != "OK" {
                    cut += 1;
                }
                assert_eq!(
                    claimed(outcome),
                    effect,
                    "{name}: the record and the disk disagree: {outcome:#}"
                );
                if effect != Effect::Untouched {
                    assert_eq!(intents, 1, "{name}: an effect without an intent");
                    assert!(outcome["intent"].as_u64().is_some(), "{outcome:#}");
                }
            }
            many => panic!("{name}: {} outcome records: {many:#?}", many.len()),
        }
    }
    eprintln!(
        "{} calls, {cut} of them cut before they finished: {seen:#?}",
        calls.len()
    );
    assert!(cut > 0, "the deadlines and cancels cut no call at all");
}

/// B4 for the environment and Grep (the argv, Glob and edits cases are
/// above): a 30 MiB env value, 100,000 env entries, a 30 MiB Grep pattern
/// and a 30 MiB Grep glob filter are each refused before any work, naming
/// the limit, with a small answer and a small record, and the daemon's
/// memory stays bounded. Control: a command with a small env runs.
#[tokio::test]
async fn a_30_mib_env_or_grep_pattern_is_refused_before_work_with_memory_bounded() {
    let mut d = ShellDaemon::start().await;
    let mut c = d.client().await;
    let ran = d.argv(&["touch", "env-control.txt"]).await;
    assert_eq!(ran.exited.exit_code, Some(0), "{ran:?}");
    assert!(d.dirs.ws.join("env-control.txt").exists());
    let (base, _) = d.rss_kib();
    let big = "A".repeat(30 << 20);

    let mut huge_value = argv_req(&["touch", "env-never-ran.txt"]);
    huge_value.env.insert("BIG".into(), big.clone());
    let mut many = argv_req(&["touch", "env-never-ran.txt"]);
    many.env = (0..100_000)
        .map(|i| (format!("V{i}"), String::new()))
        .collect();
    for (what, req) in [("a 30 MiB value", huge_value), ("100,000 entries", many)] {
        let s = c.run(req).await.expect_err("refused");
        assert_eq!(
            reason_of(&s).as_deref(),
            Some("LIMIT_EXCEEDED"),
            "{what}: {s:?}"
        );
        assert!(s.message().contains("max_env_"), "{what}: {}", s.message());
        assert!(s.message().len() + s.details().len() < 8192, "{what}");
    }
    assert!(
        !d.dirs.ws.join("env-never-ran.txt").exists(),
        "no command ran"
    );

    let pattern = GrepRequest {
        pattern: big.clone(),
        ..Default::default()
    };
    let glob = GrepRequest {
        pattern: "x".into(),
        glob: big.clone(),
        ..Default::default()
    };
    for (what, req) in [("pattern", pattern), ("glob filter", glob)] {
        let s = c.grep(req).await.expect_err("refused");
        assert_eq!(
            reason_of(&s).as_deref(),
            Some("LIMIT_EXCEEDED"),
            "{what}: {s:?}"
        );
        assert!(
            s.message().contains("max_pattern_bytes"),
            "{what}: {}",
            s.message()
        );
        assert!(s.message().len() + s.details().len() < 8192, "{what}");
    }

    let (_, peak) = d.rss_kib();
    eprintln!("daemon RSS {base} KiB before, peak {peak} KiB after four 30 MiB requests");
    assert!(
        peak < base + 256 * 1024,
        "peak RSS {peak} KiB from {base} KiB: requests amplify"
    );
    let text = std::fs::read_to_string(d.dirs.state_dir.join("audit.jsonl")).unwrap();
    for line in text.lines() {
        assert!(line.len() < 64 << 10, "a record of {} bytes", line.len());
    }
    let refused = d
        .audit_records()
        .into_iter()
        .filter(|r| r["outcome"]["reason"] == "LIMIT_EXCEEDED")
        .count();
    assert_eq!(refused, 4, "each refusal is recorded");
    d.assert_serving().await;
}
