//! Safe retries: a mutating call with an `idempotency_key` is done once; a
//! retry with the same key and request gets the first answer again, a
//! different request under the same key is refused, and a failed call
//! leaves its key free.

mod common;

use agentjail::proto::*;
use common::*;

fn keyed_write(path: &str, content: &str, key: &str) -> WriteFileRequest {
    WriteFileRequest {
        idempotency_key: key.into(),
        ..write_req(path, content)
    }
}

#[tokio::test]
async fn a_retry_replays_the_first_answer_without_redoing_the_work() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    let first = ok(c.write_file(keyed_write("a.txt", "first\n", "key-1")).await);
    assert!(first.created);
    let first_id = first.info.as_ref().unwrap().request_id.clone();
    // Someone changes the file; a retry must not write it again.
    put(&d.dirs.w("a.txt"), "changed on the host\n");
    let again = ok(c.write_file(keyed_write("a.txt", "first\n", "key-1")).await);
    assert_eq!(get(&d.dirs.w("a.txt")), "changed on the host\n");
    assert_eq!(again.sha256, first.sha256);
    assert_eq!(again.created, first.created);
    let info = again.info.unwrap();
    assert_ne!(info.request_id, first_id, "a replay is a call of its own");
    assert!(
        info.rule
            .contains(&format!("idempotent replay of request {first_id}")),
        "{}",
        info.rule
    );
    // Positive control: without a key the write happens again.
    ok(c.write_file(write_req("a.txt", "first\n")).await);
    assert_eq!(get(&d.dirs.w("a.txt")), "first\n");

    // Remove: the retry answers OK where a second removal would not.
    put(&d.dirs.w("gone.txt"), "x\n");
    let rm = RemoveRequest {
        idempotency_key: "key-rm".into(),
        ..remove_req("gone.txt", false)
    };
    ok(c.remove(rm.clone()).await);
    ok(c.remove(rm).await);
    assert_reason(c.remove(remove_req("gone.txt", false)).await, "NOT_FOUND");

    // Replays are in the audit log.
    let audit = std::fs::read_to_string(d.dirs.state_dir.join("audit.jsonl")).unwrap();
    assert_eq!(audit.matches("idempotent replay").count(), 2, "{audit}");
}

#[tokio::test]
async fn the_same_key_with_another_request_is_refused() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    ok(c.write_file(keyed_write("b.txt", "one\n", "key-2")).await);
    let s = assert_reason(
        c.write_file(keyed_write("b.txt", "two\n", "key-2")).await,
        "IDEMPOTENCY_KEY_REUSED",
    );
    assert_eq!(s.code(), tonic::Code::FailedPrecondition);
    assert!(s.message().contains("new key"), "{}", s.message());
    assert_eq!(
        get(&d.dirs.w("b.txt")),
        "one\n",
        "the second write happened"
    );
    // Keys are per method: the same key on MakeDir is a new call.
    let mk = MakeDirRequest {
        idempotency_key: "key-2".into(),
        ..mkdir_req("newdir", false)
    };
    ok(c.make_dir(mk).await);
    assert!(exists(&d.dirs.w("newdir")));
}

#[tokio::test]
async fn a_failed_call_leaves_its_key_free() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    let mv = MoveRequest {
        idempotency_key: "key-3".into(),
        ..move_req("src.txt", "dst.txt")
    };
    assert_reason(c.r#move(mv.clone()).await, "NOT_FOUND");
    put(&d.dirs.w("src.txt"), "x\n");
    ok(c.r#move(mv).await);
    assert!(exists(&d.dirs.w("dst.txt")) && !exists(&d.dirs.w("src.txt")));
    // An over-long key is refused before any work.
    let edit = EditFileRequest {
        idempotency_key: "k".repeat(200),
        ..edit_req("dst.txt", "x", "y")
    };
    assert_reason(c.edit_file(edit).await, "INVALID_ARGUMENT");
    assert_eq!(get(&d.dirs.w("dst.txt")), "x\n");
}

#[tokio::test]
async fn a_run_retry_does_not_run_the_command_again() {
    require_root("commands run in the sandbox");
    let dirs = Dirs::new();
    dirs.give_ws_to_sandbox();
    let policy = format!(
        "{}\n[agents.shell]\nuid = 65534\ngid = 65534\n\n[[agents.shell.commands]]\nprogram = \"sh\"\n",
        standard_policy(&dirs)
    );
    let d = Daemon::start_with(dirs, &policy, "").await;
    let mut c = d.client().await;
    let run = |script: &str| ExecRequest {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        idempotency_key: "run-key".into(),
        ..Default::default()
    };
    let script = "echo ran >> count.txt; wc -l < count.txt";
    let first = c.run(run(script)).await.unwrap().into_inner();
    let out =
        |r: &ExecResult| String::from_utf8_lossy(&r.stdout.as_ref().unwrap().head).to_string();
    assert_eq!(out(&first).trim(), "1");
    let again = c.run(run(script)).await.unwrap().into_inner();
    assert_eq!(out(&again), out(&first));
    assert_eq!(
        get(&d.dirs.w("count.txt")),
        "ran\n",
        "the command ran twice"
    );
    let rule = again.exited.unwrap().info.unwrap().rule;
    assert!(rule.contains("idempotent replay of request"), "{rule}");
    let s = c.run(run("echo other >> count.txt")).await.unwrap_err();
    assert_eq!(
        s.code(),
        tonic::Code::FailedPrecondition,
        "{}",
        describe(&s)
    );
    assert_eq!(get(&d.dirs.w("count.txt")), "ran\n");
    // Positive control: without a key it runs again.
    let mut plain = run(script);
    plain.idempotency_key.clear();
    let third = c.run(plain).await.unwrap().into_inner();
    assert_eq!(out(&third).trim(), "2");
}

#[tokio::test]
async fn a_replayed_run_still_passes_the_rate_limit() {
    require_root("commands run in the sandbox");
    let dirs = Dirs::new();
    dirs.give_ws_to_sandbox();
    let policy = format!(
        "{}\n[agents.rate_limits]\ncommand_per_second = 1\n\n[agents.shell]\nuid = 65534\ngid = \
         65534\n\n[[agents.shell.commands]]\nprogram = \"sh\"\n",
        standard_policy(&dirs)
    );
    let d = Daemon::start_with(dirs, &policy, "").await;
    let mut c = d.client().await;
    let run = ExecRequest {
        argv: vec!["sh".into(), "-c".into(), "echo ran >> count.txt".into()],
        idempotency_key: "rate-key".into(),
        ..Default::default()
    };
    c.run(run.clone())
        .await
        .unwrap_or_else(|s| panic!("{}", describe(&s)));
    // A replay does no work but is a call: one passes (whenever the first
    // run's admission has been refilled), the next one straight after is
    // over the rate (replays take milliseconds; the rate is 1 per second).
    let again = loop {
        match c.run(run.clone()).await {
            Ok(r) => break r.into_inner(),
            Err(s) => {
                assert_eq!(
                    agentjail::error::reason_of(&s).as_deref(),
                    Some("RATE_LIMITED"),
                    "{}",
                    describe(&s)
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    };
    let rule = again.exited.unwrap().info.unwrap().rule;
    assert!(rule.contains("idempotent replay of request"), "{rule}");
    let s = assert_reason(c.run(run).await, "RATE_LIMITED");
    assert!(
        tonic_types::StatusExt::get_details_retry_info(&s).is_some(),
        "{}",
        describe(&s)
    );
    assert_eq!(get(&d.dirs.w("count.txt")), "ran\n", "ran once");
}
