//! Running agentjail as a service: hot reload under load (SIGHUP, an invalid
//! policy, an editor's rename-save picked up by the directory watch), the
//! systemd notify and socket-activation protocols, the Prometheus metrics
//! endpoint, health while draining, and the log formats.
//!
//! Every test drives the real `agentjail serve` binary. Tests that run
//! commands need root (the sandbox user owns the workspace); they fail
//! rather than skip without it.

mod common;

use agentjail::proto::*;
use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::Status;

// ------------------------------------------------------------- helpers

/// An `[agents.shell]` table for the tester agent of `standard_policy`:
/// `sleep` and `true` by argv, nothing else.
const SHELL_TABLE: &str = r#"
[agents.shell]
timeout_ms = 30000

[[agents.shell.commands]]
program = "sleep"

[[agents.shell.commands]]
program = "true"
"#;

/// The standard policy plus a shell for `sleep` and `true`; hands the
/// workspace to the sandbox user so commands can run in it.
fn shell_policy(d: &Dirs) -> String {
    require_root("running commands in the sandbox");
    d.give_ws_to_sandbox();
    format!("{}{SHELL_TABLE}", standard_policy(d))
}

/// `policy` with `extra` globs added to the tester's `files.deny`.
fn with_denies(policy: &str, extra: &[&str]) -> String {
    const DENY: &str = r#"deny = ["**/.env", "**/*.pem", ".git/hooks/**"]"#;
    assert!(policy.contains(DENY), "the standard deny line moved");
    let mut globs = vec![
        "\"**/.env\"".to_string(),
        "\"**/*.pem\"".into(),
        "\".git/hooks/**\"".into(),
    ];
    globs.extend(extra.iter().map(|g| format!("{g:?}")));
    policy.replace(DENY, &format!("deny = [{}]", globs.join(", ")))
}

/// `policy` with an unknown key on line 4 (after the `uids` line): invalid,
/// and the loader must say `test.toml:4:1`.
fn broken(policy: &str) -> String {
    let line = uids_line();
    let out = policy.replacen(&line, &format!("{line}\nbogus_key = 1"), 1);
    assert_eq!(
        out.lines().nth(3),
        Some("bogus_key = 1"),
        "the broken key must be on line 4"
    );
    out
}

fn run_req(argv: &[&str]) -> ExecRequest {
    ExecRequest {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// The request id the daemon put on a refusal.
fn request_id_of(s: &Status) -> String {
    s.metadata()
        .get("agentjail-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn rule_of(s: &Status) -> String {
    error_meta(s).get("rule").cloned().unwrap_or_default()
}

async fn policy_version(
    c: &mut agentjail::proto::tool_sandbox_client::ToolSandboxClient<tonic::transport::Channel>,
) -> String {
    let who = ok(c.who_am_i(WhoAmIRequest {}).await);
    who.info.unwrap().policy_version
}

/// Polls WhoAmI until the policy version differs from `old`.
async fn wait_version_change(d: &Daemon, old: &str, what: &str) -> String {
    let mut c = d.client().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = policy_version(&mut c).await;
        if v != old {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the policy version stayed {old} for 10 s; log:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `text` occurs at least `n` times in the daemon's log.
async fn wait_log_count(log: &dyn Fn() -> String, text: &str, n: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let l = log();
        if l.matches(text).count() >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {text:?} not logged {n} time(s) within 10 s; log:\n{l}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every record of the audit log, parsed.
fn audit_records(path: &Path) -> Vec<Value> {
    get(path)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line {l:?}: {e}")))
        .collect()
}

/// Fresh directories with the standard policy and the config of
/// `Daemon::start`, for the tests that start the daemon their own way.
fn standard_setup() -> Dirs {
    let dirs = Dirs::new();
    dirs.write_setup(&standard_policy(&dirs), "shutdown_grace_ms = 2000\n");
    dirs
}

// ------------------------------------------------- reload under load

/// What one call of the load saw.
#[derive(Debug, Clone)]
struct Obs {
    worker: usize,
    op: &'static str,
    /// Index of the call within its worker.
    n: usize,
    request_id: String,
    /// `Ok(policy_version)` or `Err(rule)` for a policy denial.
    result: Result<String, String>,
}

/// A call that failed for any reason other than an expected denial.
#[derive(Debug)]
#[allow(dead_code)] // read through Debug
struct Failure {
    worker: usize,
    op: &'static str,
    at: Duration,
    what: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_under_load_swaps_atomically_and_never_fails_calls_in_flight() {
    let dirs = Dirs::new();
    let v1_text = shell_policy(&dirs);
    // Content for the load: many files for a slow-ish Grep, a file the next
    // policy denies, one the last policy denies.
    for i in 0..40 {
        put(
            &dirs.w(&format!("data/f{i}.txt")),
            format!("line {i}\nneedle {i}\n"),
        );
    }
    let filler = "lorem ipsum dolor sit amet\n".repeat(200);
    for i in 0..1500 {
        put(
            &dirs.w(&format!("many/d{}/m{i}.txt", i % 30)),
            format!("{filler}needle {i}\n"),
        );
    }
    std::fs::create_dir_all(dirs.w("out")).unwrap();
    put(&dirs.w("blocked/secret.txt"), "blocked soon\n");
    put(&dirs.w("late/x.txt"), "blocked last\n");
    let d = Daemon::start_with(dirs, &v1_text, "").await;
    let policy_file = d.dirs.policy_dir.join("test.toml");
    let mut c = d.client().await;
    let v1 = policy_version(&mut c).await;
    assert!(!v1.is_empty());
    ok(c.read_file(read_req("blocked/secret.txt")).await);

    // ---- the load
    let stop = Arc::new(AtomicBool::new(false));
    let obs: Arc<Mutex<Vec<Obs>>> = Arc::default();
    let failures: Arc<Mutex<Vec<Failure>>> = Arc::default();
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..8usize {
        let mut c = d.client().await;
        let (stop, obs, failures) = (stop.clone(), obs.clone(), failures.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0usize;
            let record = |op: &'static str, n: usize, r: Result<(String, String), Status>| match r {
                Ok((version, request_id)) => obs.lock().unwrap().push(Obs {
                    worker,
                    op,
                    n,
                    request_id,
                    result: Ok(version),
                }),
                Err(s) => {
                    let expected_glob = match op {
                        "ReadBlocked" => Some("blocked/**"),
                        "ReadLate" => Some("late/**"),
                        _ => None,
                    };
                    let denied = reason_of_status(&s).as_deref() == Some("POLICY_DENIED");
                    let rule = rule_of(&s);
                    if denied && expected_glob.is_some_and(|g| rule.contains(g)) {
                        obs.lock().unwrap().push(Obs {
                            worker,
                            op,
                            n,
                            request_id: request_id_of(&s),
                            result: Err(rule),
                        });
                    } else {
                        failures.lock().unwrap().push(Failure {
                            worker,
                            op,
                            at: t0.elapsed(),
                            what: describe(&s),
                        });
                    }
                }
            };
            let info = |i: Option<CallInfo>| {
                let i = i.expect("a success carries CallInfo");
                (i.policy_version, i.request_id)
            };
            while !stop.load(Ordering::Relaxed) {
                match worker {
                    // Commands in flight across every swap.
                    5 | 7 => {
                        let r = c.run(run_req(&["sleep", "0.4"])).await.map(|r| {
                            let e = r.into_inner().exited.expect("ExecResult.exited");
                            assert_eq!(e.exit_code, Some(0), "sleep exited badly: {e:?}");
                            info(e.info)
                        });
                        record("Run", n, r);
                    }
                    // A Grep over 1500 files in flight across every swap.
                    6 => {
                        let mut req = grep_req("needle 1499");
                        req.path = "many".into();
                        let r = c.grep(req).await.map(|r| {
                            let r = r.into_inner();
                            assert_eq!(r.files_searched, 1500, "{r:?}");
                            assert_eq!(r.files.len(), 1, "{r:?}");
                            info(r.info)
                        });
                        record("GrepMany", n, r);
                    }
                    _ => {
                        let i = n % 40;
                        let r = c
                            .read_file(read_req(&format!("data/f{i}.txt")))
                            .await
                            .map(|r| {
                                let r = r.into_inner();
                                assert_eq!(r.text, format!("line {i}\nneedle {i}\n"));
                                info(r.info)
                            });
                        record("Read", n, r);
                        let content = format!("worker {worker} call {n}\n");
                        let r = c
                            .write_file(write_req(&format!("out/w{worker}.txt"), content.clone()))
                            .await
                            .map(|r| info(r.into_inner().info));
                        record("Write", n, r);
                        let mut req = grep_req("needle");
                        req.path = "data".into();
                        let r = c.grep(req).await.map(|r| {
                            let r = r.into_inner();
                            assert_eq!(r.files.len(), 40, "{r:?}");
                            info(r.info)
                        });
                        record("Grep", n, r);
                        let r = c
                            .read_file(read_req("blocked/secret.txt"))
                            .await
                            .map(|r| info(r.into_inner().info));
                        record("ReadBlocked", n, r);
                        let r = c
                            .read_file(read_req("late/x.txt"))
                            .await
                            .map(|r| info(r.into_inner().info));
                        record("ReadLate", n, r);
                    }
                }
                n += 1;
            }
        }));
    }
    // Every worker answered under the first policy before it changes.
    let all_workers_saw = |version: &str| {
        let obs = obs.lock().unwrap();
        (0..8).all(|w| {
            obs.iter()
                .any(|o| o.worker == w && o.result.as_deref() == Ok(version))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !all_workers_saw(&v1) {
        assert!(Instant::now() < deadline, "the load did not get going");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // ---- (a) valid -> valid by SIGHUP: a new deny glob
    let v2_text = with_denies(&v1_text, &["blocked/**"]);
    std::fs::write(&policy_file, &v2_text).unwrap();
    send_signal(d.pid, rustix::process::Signal::HUP);
    let v2 = wait_version_change(&d, &v1, "valid -> valid by SIGHUP").await;
    let s = assert_reason(
        c.read_file(read_req("blocked/secret.txt")).await,
        "POLICY_DENIED",
    );
    assert!(
        rule_of(&s).contains("blocked/**"),
        "the denial names the new rule: {}",
        describe(&s)
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(policy_version(&mut c).await, v2);

    // ---- (b) valid -> invalid by SIGHUP: the old policy stays
    let bad_at = format!("{}:4:1", policy_file.display());
    let before = d.log().matches(&bad_at).count();
    std::fs::write(&policy_file, broken(&v2_text)).unwrap();
    send_signal(d.pid, rustix::process::Signal::HUP);
    let log = || d.log();
    wait_log_count(&log, &bad_at, before + 1, "invalid policy on SIGHUP").await;
    // The directory watch reloads (and refuses) the same broken file too.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        d.log().contains("the old policy stays in force"),
        "{}",
        d.log()
    );
    let bad_line = d
        .log()
        .lines()
        .find(|l| l.contains(&bad_at))
        .unwrap()
        .to_string();
    assert!(bad_line.contains("bogus_key"), "{bad_line}");
    assert_eq!(
        policy_version(&mut c).await,
        v2,
        "an invalid policy must not change the version"
    );
    let s = assert_reason(
        c.read_file(read_req("blocked/secret.txt")).await,
        "POLICY_DENIED",
    );
    assert!(rule_of(&s).contains("blocked/**"), "{}", describe(&s));
    ok(c.read_file(read_req("late/x.txt")).await);

    // ---- (c) an editor's rename-save, no SIGHUP: the watch reloads
    let v3_text = with_denies(&v1_text, &["blocked/**", "late/**"]);
    let changed_before = d.log().matches("policy directory changed").count();
    let tmp = d.dirs.policy_dir.join(".test.toml.swp-tmp");
    std::fs::write(&tmp, &v3_text).unwrap();
    std::fs::rename(&tmp, &policy_file).unwrap();
    let v3 = wait_version_change(&d, &v2, "rename-save without SIGHUP").await;
    assert!(
        d.log().matches("policy directory changed").count() > changed_before,
        "the reload came from the directory watch; log:\n{}",
        d.log()
    );
    let s = assert_reason(c.read_file(read_req("late/x.txt")).await, "POLICY_DENIED");
    assert!(rule_of(&s).contains("late/**"), "{}", describe(&s));
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(policy_version(&mut c).await, v3);

    // ---- stop the load
    // ... and under the last one before the load stops.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !all_workers_saw(&v3) {
        assert!(
            Instant::now() < deadline,
            "not every worker made a call under the last policy within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("a load worker panicked");
    }
    let failures = std::mem::take(&mut *failures.lock().unwrap());
    assert!(
        failures.is_empty(),
        "calls failed during reloads (only denials by the new rules are expected); \
         v1={v1} v2={v2} v3={v3}: {failures:#?}"
    );
    let obs = std::mem::take(&mut *obs.lock().unwrap());

    // ---- versions
    let versions = [v1.clone(), v2.clone(), v3.clone()];
    assert_eq!(
        versions.iter().collect::<HashSet<_>>().len(),
        3,
        "each swap gives a new policy_version: {versions:?}"
    );
    let rank = |v: &str| {
        versions
            .iter()
            .position(|x| x == v)
            .unwrap_or_else(|| panic!("unknown policy_version {v:?} (known: {versions:?})"))
    };
    // The audit log: one record per call, with the policy that decided it.
    let audit: HashMap<String, Value> = audit_records(&d.dirs.state_dir.join("audit.jsonl"))
        .into_iter()
        .map(|r| (r["request_id"].as_str().unwrap().to_string(), r))
        .collect();
    for r in audit.values() {
        rank(r["policy_version"].as_str().unwrap());
    }
    let mut per_version_calls: BTreeMap<usize, usize> = BTreeMap::new();
    let mut per_worker: BTreeMap<usize, Vec<(usize, usize, &'static str)>> = BTreeMap::new();
    for o in &obs {
        let rec = audit
            .get(&o.request_id)
            .unwrap_or_else(|| panic!("no audit record for {o:?}"));
        let audited_version = rec["policy_version"].as_str().unwrap();
        let version_rank = rank(audited_version);
        match &o.result {
            Ok(v) => {
                assert_eq!(
                    v, audited_version,
                    "CallInfo and audit disagree: {o:?} {rec}"
                );
                assert_eq!(rec["decision"], "allow", "{rec}");
                // Allowed reads of a path a later policy denies happened
                // under an earlier policy.
                match o.op {
                    "ReadBlocked" => assert_eq!(version_rank, 0, "{o:?} allowed under {v}"),
                    "ReadLate" => assert!(version_rank < 2, "{o:?} allowed under {v}"),
                    _ => {}
                }
            }
            Err(rule) => {
                assert_eq!(rec["decision"], "deny", "{rec}");
                assert_eq!(rec["rule"].as_str().unwrap(), rule, "{rec}");
                match o.op {
                    "ReadBlocked" => {
                        assert!(version_rank >= 1, "{o:?} denied under {audited_version}")
                    }
                    "ReadLate" => {
                        assert_eq!(version_rank, 2, "{o:?} denied under {audited_version}")
                    }
                    _ => unreachable!(),
                }
            }
        }
        *per_version_calls.entry(version_rank).or_default() += 1;
        per_worker
            .entry(o.worker)
            .or_default()
            .push((o.n, version_rank, o.op));
    }
    // Each worker's calls are sequential: once it saw a policy, it never
    // goes back to an older one.
    for (worker, seen) in &per_worker {
        for pair in seen.windows(2) {
            assert!(
                pair[0].1 <= pair[1].1,
                "worker {worker} went back to an older policy: {pair:?}"
            );
        }
        let ranks: HashSet<usize> = seen.iter().map(|s| s.1).collect();
        assert!(
            ranks.contains(&0) && ranks.contains(&2),
            "worker {worker} did not run under the first and the last policy: {ranks:?}"
        );
    }
    assert_eq!(per_worker.len(), 8, "every worker made calls");
    // Commands decided under one policy finished after calls under the
    // next had been answered: they were in flight across a swap, and they
    // still succeeded under the policy they started with.
    let seq_of = |o: &Obs| audit[&o.request_id]["seq"].as_u64().unwrap();
    let first_seq_under = |rank: usize| {
        obs.iter()
            .filter(|o| o.result.as_ref().is_ok_and(|v| versions[rank] == *v))
            .map(seq_of)
            .min()
    };
    let straddling = obs
        .iter()
        .filter(|o| o.op == "Run")
        .filter(|o| {
            let r = rank(o.result.as_ref().unwrap());
            r < 2 && first_seq_under(r + 1).is_some_and(|first| seq_of(o) > first)
        })
        .count();
    assert!(straddling > 0, "no command was in flight across a swap");
    for (rank, version) in versions.iter().enumerate() {
        assert!(
            per_version_calls.get(&rank).copied().unwrap_or(0) >= 10,
            "too few calls under {version}: {per_version_calls:?}"
        );
    }
    let runs = obs.iter().filter(|o| o.op == "Run").count();
    assert!(runs >= 5, "only {runs} commands ran during the reloads");
    // The swap reached the audit records of calls made after it.
    let after_denials = obs
        .iter()
        .filter(|o| o.op == "ReadLate" && o.result.is_err())
        .count();
    assert!(
        after_denials > 0,
        "no worker hit the last policy's new deny"
    );
    let mut d = d;
    d.assert_serving().await;
    d.dirs.assert_outside_untouched();
}

fn reason_of_status(s: &Status) -> Option<String> {
    agentjail::error::reason_of(s)
}

#[tokio::test]
async fn sighup_reloads_even_with_the_directory_watch_off() {
    let dirs = Dirs::new();
    let v1_text = standard_policy(&dirs);
    let d = Daemon::start_with(dirs, &v1_text, "watch_policy_dir = false").await;
    put(&d.dirs.w("blocked/a.txt"), "a\n");
    let mut c = d.client().await;
    let v1 = policy_version(&mut c).await;
    let policy_file = d.dirs.policy_dir.join("test.toml");
    // A rename-save is not noticed with the watch off...
    let v2_text = with_denies(&v1_text, &["blocked/**"]);
    let tmp = d.dirs.policy_dir.join(".test.toml.tmp");
    std::fs::write(&tmp, &v2_text).unwrap();
    std::fs::rename(&tmp, &policy_file).unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        policy_version(&mut c).await,
        v1,
        "reloaded with the watch off"
    );
    ok(c.read_file(read_req("blocked/a.txt")).await);
    // ... SIGHUP reloads it.
    send_signal(d.pid, rustix::process::Signal::HUP);
    let v2 = wait_version_change(&d, &v1, "SIGHUP").await;
    assert_ne!(v1, v2);
    let s = assert_reason(
        c.read_file(read_req("blocked/a.txt")).await,
        "POLICY_DENIED",
    );
    assert!(rule_of(&s).contains("blocked/**"), "{}", describe(&s));
    // Reloading the same text again keeps the version: it hashes the sources.
    send_signal(d.pid, rustix::process::Signal::HUP);
    let log = || d.log();
    wait_log_count(&log, "policy reloaded", 2, "second SIGHUP").await;
    assert_eq!(policy_version(&mut c).await, v2);
    assert!(
        !d.log().contains("policy directory changed"),
        "the watch ran although watch_policy_dir = false"
    );
}

// ------------------------------------------------------------- systemd

/// Datagrams from the daemon's sd_notify, with the time they arrived.
struct Notifications {
    sock: tokio::net::UnixDatagram,
    seen: Vec<(Instant, String)>,
}

impl Notifications {
    fn bind(path: &Path) -> Notifications {
        Notifications {
            sock: tokio::net::UnixDatagram::bind(path).expect("bind the notify socket"),
            seen: Vec::new(),
        }
    }

    /// Drops the datagrams already queued.
    fn drain(&mut self) {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = self.sock.try_recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            self.seen.push((Instant::now(), msg));
        }
    }

    /// Receives until a datagram contains `line` as one of its lines;
    /// returns that datagram.
    async fn until(&mut self, line: &str, limit: Duration, p: &Server) -> String {
        let deadline = Instant::now() + limit;
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.sock.recv(&mut buf)).await {
                Ok(Ok(n)) => {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    self.seen.push((Instant::now(), msg.clone()));
                    if msg.lines().any(|l| l == line) {
                        return msg;
                    }
                }
                Ok(Err(e)) => panic!("notify socket: {e}"),
                Err(_) => panic!(
                    "no {line:?} within {limit:?}; received so far: {:?}; log:\n{}",
                    self.seen.iter().map(|s| &s.1).collect::<Vec<_>>(),
                    p.log()
                ),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_notify_ready_reloading_watchdog_and_stopping() {
    let dirs = standard_setup();
    let notify_path = dirs.root.join("notify.sock");
    let mut notes = Notifications::bind(&notify_path);
    let mut p = Serve::new()
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .spawn(&dirs);

    // READY=1 with a STATUS, and only once the socket answers.
    let ready = notes.until("READY=1", Duration::from_secs(15), &p).await;
    assert!(
        ready
            .lines()
            .any(|l| l.starts_with("STATUS=") && l.len() > 7),
        "READY=1 without a STATUS=: {ready:?}"
    );
    assert_eq!(
        health_status(&dirs.socket, "").await,
        Ok(1),
        "READY=1 was sent before the socket served"
    );
    let mut c = agentjail::client::connect_unix(&dirs.socket).await.unwrap();
    ok(c.who_am_i(WhoAmIRequest {}).await);

    // The watchdog: interval 200 ms, pinged at half of it. Pings queued so
    // far are dropped first, then those of one second are counted.
    notes.drain();
    let before = notes.seen.len();
    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < Duration::from_secs(1) {
        notes
            .until("WATCHDOG=1", Duration::from_millis(600), &p)
            .await;
        pings += 1;
    }
    assert!(pings >= 5, "only {pings} WATCHDOG=1 in a second");
    assert!(
        notes.seen[before..]
            .iter()
            .all(|(_, m)| m == "WATCHDOG=1\n"),
        "unexpected notifications while idle: {:?}",
        &notes.seen[before..]
    );

    // SIGHUP: RELOADING=1 (with MONOTONIC_USEC), then READY=1 again.
    let before = notes.seen.len();
    p.signal(rustix::process::Signal::HUP);
    let reloading = notes
        .until("RELOADING=1", Duration::from_secs(10), &p)
        .await;
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "RELOADING=1 without MONOTONIC_USEC (systemd's Type=notify-reload needs it): {reloading:?}"
    );
    let again = notes.until("READY=1", Duration::from_secs(10), &p).await;
    assert!(again.lines().any(|l| l.starts_with("STATUS=")), "{again:?}");
    let reload_msgs: Vec<&String> = notes.seen[before..]
        .iter()
        .map(|s| &s.1)
        .filter(|m| !m.lines().all(|l| l == "WATCHDOG=1"))
        .collect();
    assert_eq!(
        reload_msgs.len(),
        2,
        "RELOADING then READY, nothing else: {reload_msgs:?}"
    );

    // SIGTERM: STOPPING=1, then a clean exit.
    p.signal(rustix::process::Signal::TERM);
    notes.until("STOPPING=1", Duration::from_secs(10), &p).await;
    let status = p.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0), "log:\n{}", p.log());
}

/// The daemon started the way systemd does for a socket unit: `listener` as
/// fd 3, LISTEN_FDS=1 and LISTEN_PID its own pid.
fn socket_activated(dirs: &Dirs, listener: std::os::unix::net::UnixListener) -> Server {
    Serve::new().fd(listener).socket_activation().spawn(dirs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_activation_serves_on_the_passed_socket_and_leaves_it_to_systemd() {
    use std::os::unix::fs::FileTypeExt;
    let dirs = standard_setup();
    put(&dirs.w("a.txt"), "activated\n");
    let activated = dirs.root.join("run").join("activated.sock");
    let listener = std::os::unix::net::UnixListener::bind(&activated).unwrap();
    // A client that connects before the daemon even runs is queued by the
    // kernel and served once the daemon starts: nothing is lost.
    let early = std::os::unix::net::UnixStream::connect(&activated).unwrap();
    drop(early);
    let early_socket = activated.clone();
    let early_call = tokio::spawn(tokio::time::timeout(Duration::from_secs(20), async move {
        let channel = agentjail::client::unix_channel(&early_socket)
            .await
            .unwrap();
        let mut c = agentjail::proto::tool_sandbox_client::ToolSandboxClient::new(channel);
        c.who_am_i(WhoAmIRequest {}).await
    }));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut p = socket_activated(&dirs, listener);

    p.wait_serving(&activated).await;
    let early = early_call.await.unwrap().expect("the early call timed out");
    assert_eq!(early.expect("the early call").into_inner().agent, AGENT);
    assert!(
        p.log().contains("socket activation"),
        "the daemon did not say it took the passed socket:\n{}",
        p.log()
    );
    assert!(
        !exists(&dirs.socket),
        "the --socket path was created although systemd passed a socket"
    );
    let mut c = agentjail::proto::tool_sandbox_client::ToolSandboxClient::new(
        agentjail::client::unix_channel(&activated).await.unwrap(),
    );
    let who = ok(c.who_am_i(WhoAmIRequest {}).await);
    assert_eq!(
        who.pid,
        std::process::id(),
        "peer credentials work on the passed socket"
    );
    let r = ok(c.read_file(read_req("a.txt")).await);
    assert_eq!(r.text, "activated\n");
    ok(c.write_file(write_req("b.txt", "via activation\n")).await);
    assert_eq!(get(&dirs.w("b.txt")), "via activation\n");
    assert_reason(c.read_file(read_req(".env")).await, "POLICY_DENIED");

    p.signal(rustix::process::Signal::TERM);
    let status = p.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0), "log:\n{}", p.log());
    let meta = std::fs::symlink_metadata(&activated)
        .expect("the daemon removed the socket file systemd owns");
    assert!(meta.file_type().is_socket());
    assert!(!exists(&dirs.socket));
}

#[tokio::test]
async fn a_socket_for_another_pid_is_ignored() {
    // LISTEN_PID of another process: the daemon binds its own socket, as
    // sd_listen_fds(3) requires.
    let dirs = standard_setup();
    let mut p = Serve::new()
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", "1")
        .spawn(&dirs);
    p.wait_serving(&dirs.socket).await;
    assert!(!p.log().contains("socket activation"), "{}", p.log());
    p.signal(rustix::process::Signal::TERM);
    assert_eq!(p.wait_exit(Duration::from_secs(15)).await.code(), Some(0));
    assert!(!exists(&dirs.socket), "its own socket is removed at exit");
}

#[tokio::test]
async fn socket_activation_with_a_wrong_fd_refuses_to_start() {
    // fd 3 is a regular file, not a listening Unix socket: refuse.
    let dirs = standard_setup();
    let file = std::fs::File::open(dirs.policy_dir.join("test.toml")).unwrap();
    let mut p = Serve::new().fd(file).socket_activation().spawn(&dirs);
    let status = p.wait_exit(Duration::from_secs(15)).await;
    assert!(!status.success(), "started on a regular file as its socket");
    assert!(p.log().contains("not a Unix stream socket"), "{}", p.log());
    assert!(!exists(&dirs.socket));
}

// ------------------------------------------------------------- metrics

/// A free TCP port on 127.0.0.1 (free when this returns).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` over HTTP/1.0: the status line and the body.
fn http_get(addr: &str, path: &str) -> std::io::Result<(String, String)> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    Ok((
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    ))
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("name value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').expect("closing brace");
                let mut labels = BTreeMap::new();
                for pair in inner.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                    labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
                (name.to_string(), labels)
            }
            None => (series.to_string(), BTreeMap::new()),
        };
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|e| panic!("value in {line:?}: {e}")),
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// The value of the sample `name` whose labels include `labels`.
fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// The metrics text, or why it could not be fetched.
fn metrics_text(addr: &str) -> String {
    let (status, body) = http_get(addr, "/metrics").unwrap_or_else(|e| panic!("GET /metrics: {e}"));
    assert!(status.contains(" 200"), "GET /metrics: {status}\n{body}");
    body
}

/// Inodes of the TCP sockets in LISTEN state (this network namespace).
fn tcp_listen_inodes() -> HashMap<u64, String> {
    let mut out = HashMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[3] == "0A" {
                out.insert(f[9].parse().unwrap(), f[1].to_string());
            }
        }
    }
    out
}

/// The local addresses (hex, as in /proc/net/tcp) of the TCP sockets
/// `pid` listens on.
fn tcp_listeners_of(pid: u32) -> Vec<String> {
    let listening = tcp_listen_inodes();
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let Ok(target) = std::fs::read_link(e.path()) else {
            continue;
        };
        let t = target.to_string_lossy();
        if let Some(inode) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
            if let Some(addr) = listening.get(&inode.parse().unwrap()) {
                out.push(addr.clone());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_serves_the_documented_metrics() {
    let dirs = Dirs::new();
    let policy = shell_policy(&dirs);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    // The watch is off so that each SIGHUP is exactly one reload.
    let d = Daemon::start_with(
        dirs,
        &policy,
        &format!("metrics_address = \"{addr}\"\nwatch_policy_dir = false"),
    )
    .await;
    let listeners = tcp_listeners_of(d.pid);
    assert_eq!(
        listeners,
        vec![format!("0100007F:{port:04X}")],
        "the daemon listens on the metrics address only"
    );
    put(&d.dirs.w("a.txt"), "hello\n");
    put(&d.dirs.w(".env"), "SECRET=1\n");
    let mut c = d.client().await;
    for _ in 0..3 {
        ok(c.read_file(read_req("a.txt")).await);
    }
    ok(c.write_file(write_req("b.txt", "b\n")).await);
    assert_reason(c.read_file(read_req(".env")).await, "POLICY_DENIED");
    assert_reason(c.read_file(read_req("missing.txt")).await, "NOT_FOUND");
    let r = c
        .run(run_req(&["true"]))
        .await
        .expect("Run true")
        .into_inner();
    assert_eq!(r.exited.unwrap().exit_code, Some(0));

    // While a command runs, it is in flight.
    let mut c2 = d.client().await;
    let slow = tokio::spawn(async move { c2.run(run_req(&["sleep", "1.5"])).await });
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = parse_metrics(&metrics_text(&addr));
        if sample(&m, "agentjail_calls_in_flight", &[]).unwrap_or(0.0) >= 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "calls_in_flight never reached 1");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = slow.await.unwrap().expect("Run sleep").into_inner();
    assert_eq!(r.exited.unwrap().exit_code, Some(0));

    // A good reload, then a bad one.
    send_signal(d.pid, rustix::process::Signal::HUP);
    let log = || d.log();
    wait_log_count(&log, "policy reloaded", 1, "good reload").await;
    std::fs::write(d.dirs.policy_dir.join("test.toml"), broken(&policy)).unwrap();
    send_signal(d.pid, rustix::process::Signal::HUP);
    wait_log_count(&log, "the old policy stays in force", 1, "bad reload").await;

    let text = metrics_text(&addr);
    let m = parse_metrics(&text);
    let ctx = || format!("metrics:\n{text}");
    // Calls by method, agent and decision.
    let calls = |method: &str, decision: &str| {
        sample(
            &m,
            "agentjail_calls_total",
            &[("method", method), ("agent", AGENT), ("decision", decision)],
        )
    };
    assert_eq!(calls("ReadFile", "allow"), Some(3.0), "{}", ctx());
    assert_eq!(calls("WriteFile", "allow"), Some(1.0), "{}", ctx());
    assert_eq!(calls("ReadFile", "deny"), Some(1.0), "{}", ctx());
    assert_eq!(calls("ReadFile", "error"), Some(1.0), "{}", ctx());
    assert!(calls("Run", "allow").unwrap_or(0.0) >= 2.0, "{}", ctx());
    assert!(
        text.contains("# TYPE agentjail_calls_total counter"),
        "{}",
        ctx()
    );
    // Latency histograms.
    assert!(
        text.contains("# TYPE agentjail_call_duration_seconds histogram"),
        "{}",
        ctx()
    );
    assert_eq!(
        sample(
            &m,
            "agentjail_call_duration_seconds_count",
            &[("method", "ReadFile")]
        ),
        Some(5.0),
        "{}",
        ctx()
    );
    assert_eq!(
        sample(
            &m,
            "agentjail_call_duration_seconds_bucket",
            &[("method", "ReadFile"), ("le", "+Inf")]
        ),
        Some(5.0),
        "{}",
        ctx()
    );
    assert!(
        sample(
            &m,
            "agentjail_call_duration_seconds_sum",
            &[("method", "Run")]
        )
        .unwrap_or(0.0)
            >= 1.4,
        "the 1.5 s command is in the latency: {}",
        ctx()
    );
    // In flight: back to zero.
    assert_eq!(
        sample(&m, "agentjail_calls_in_flight", &[]),
        Some(0.0),
        "{}",
        ctx()
    );
    // Sandbox setup time, one per command.
    assert!(
        text.contains("# TYPE agentjail_sandbox_setup_seconds histogram"),
        "{}",
        ctx()
    );
    assert_eq!(
        sample(&m, "agentjail_sandbox_setup_seconds_count", &[]),
        Some(2.0),
        "{}",
        ctx()
    );
    // Each command counted as served by a sandbox built ahead or not.
    let pool =
        |result| sample(&m, "agentjail_sandbox_pool_total", &[("result", result)]).unwrap_or(0.0);
    assert_eq!(pool("hit") + pool("miss"), 2.0, "{}", ctx());
    assert!(
        pool("miss") >= 1.0,
        "the first command's was built for it: {}",
        ctx()
    );
    // Audit write latency and queue depth.
    assert!(
        text.contains("# TYPE agentjail_audit_write_seconds histogram"),
        "{}",
        ctx()
    );
    assert!(
        sample(&m, "agentjail_audit_write_seconds_count", &[]).unwrap_or(0.0) >= 8.0,
        "one audit write per call: {}",
        ctx()
    );
    assert!(
        text.contains("# TYPE agentjail_audit_queue_depth gauge"),
        "{}",
        ctx()
    );
    assert_eq!(
        sample(&m, "agentjail_audit_queue_depth", &[]),
        Some(0.0),
        "{}",
        ctx()
    );
    // Reloads and their failures.
    assert_eq!(
        sample(&m, "agentjail_policy_reloads_total", &[("result", "ok")]),
        Some(1.0),
        "{}",
        ctx()
    );
    assert_eq!(
        sample(
            &m,
            "agentjail_policy_reloads_total",
            &[("result", "failed")]
        ),
        Some(1.0),
        "{}",
        ctx()
    );
    // Every metric has its HELP text.
    for name in [
        "agentjail_calls_total",
        "agentjail_call_duration_seconds",
        "agentjail_calls_in_flight",
        "agentjail_sandbox_setup_seconds",
        "agentjail_sandbox_pool_total",
        "agentjail_audit_write_seconds",
        "agentjail_audit_queue_depth",
        "agentjail_policy_reloads_total",
    ] {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no HELP for {name}: {}",
            ctx()
        );
    }
}

#[tokio::test]
async fn metrics_are_off_by_default() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    ok(c.who_am_i(WhoAmIRequest {}).await);
    assert_eq!(
        tcp_listeners_of(d.pid),
        Vec::<String>::new(),
        "a TCP listener without metrics_address"
    );
    assert!(!d.log().contains("metrics served"), "{}", d.log());
}

// ------------------------------------------------------ health, logging

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_not_serving_while_draining() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let dirs = Dirs::new();
    let policy = shell_policy(&dirs);
    dirs.write_setup(&policy, "shutdown_grace_ms = 30000\n");
    let mut p = Serve::new().spawn(&dirs);
    p.wait_serving(&dirs.socket).await;
    let socket = dirs.socket.clone();
    assert_eq!(
        health_status(&socket, "agentjail.v1.ToolSandbox").await,
        Ok(1)
    );

    // A watcher of the overall health, on its own connection.
    let mut watch = HealthClient::new(agentjail::client::unix_channel(&socket).await.unwrap())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("Health.Watch")
        .into_inner();
    let first = watch.message().await.unwrap().expect("a first status");
    assert_eq!(first.status, 1, "SERVING before the stop");

    // A long call in flight, then SIGTERM.
    let mut c = agentjail::client::connect_unix(&socket).await.unwrap();
    let long = tokio::spawn(async move {
        let t = Instant::now();
        let r = c.run(run_req(&["sleep", "2"])).await;
        (r, t.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped_at = Instant::now();
    p.signal(rustix::process::Signal::TERM);

    // The watcher is told NOT_SERVING.
    let next = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("no health change within 5 s of SIGTERM")
        .expect("the watch stream failed")
        .expect("the watch stream ended without NOT_SERVING");
    assert_eq!(next.status, 2, "NOT_SERVING while draining");
    drop(watch);
    // New callers see NOT_SERVING or are refused, never SERVING.
    let mut probes = 0;
    while !long.is_finished() {
        let h = health_status(&socket, "").await;
        assert_ne!(h, Ok(1), "SERVING while draining");
        probes += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(probes > 0);
    // The call in flight finished normally.
    let (r, took) = long.await.unwrap();
    let r = r.unwrap_or_else(|s| panic!("the call in flight was cut: {}", describe(&s)));
    assert_eq!(r.into_inner().exited.unwrap().exit_code, Some(0));
    assert!(took >= Duration::from_millis(1900));
    // Drained: the daemon exits well before the grace period.
    let status = p.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "log:\n{}", p.log());
    assert!(
        stopped_at.elapsed() < Duration::from_secs(10),
        "the daemon waited for the grace period"
    );
    assert!(!exists(&dirs.socket));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_never_says_serving_before_the_tool_service_is_up() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    const TS: &str = "agentjail.v1.ToolSandbox";
    // Socket activation lets clients connect before the daemon runs, so
    // their checks arrive while it is starting.
    for round in 0..3 {
        let dirs = standard_setup();
        let activated = dirs.root.join("run").join("activated.sock");
        let listener = std::os::unix::net::UnixListener::bind(&activated).unwrap();
        let mut probes = Vec::new();
        for _ in 0..12 {
            let socket = activated.clone();
            probes.push(tokio::spawn(tokio::time::timeout(
                Duration::from_secs(20),
                async move {
                    let channel = agentjail::client::unix_channel(&socket).await.unwrap();
                    let mut h = HealthClient::new(channel);
                    let mut seen = Vec::new();
                    loop {
                        let all = h
                            .check(HealthCheckRequest {
                                service: String::new(),
                            })
                            .await;
                        let all = all.expect("Check(\"\")").into_inner().status;
                        let ts = h.check(HealthCheckRequest { service: TS.into() }).await;
                        let ts = ts.expect("Check(ToolSandbox)").into_inner().status;
                        seen.push((all, ts));
                        if all == 1 && ts == 1 {
                            return seen;
                        }
                    }
                },
            )));
        }
        let mut p = socket_activated(&dirs, listener);
        let mut seen = Vec::new();
        for probe in probes {
            seen.extend(probe.await.unwrap().expect("a health probe timed out"));
        }
        // The overall status "" SERVING means the whole server is up: the
        // tool service cannot be NOT_SERVING after it.
        assert!(
            !seen.contains(&(1, 2)),
            "round {round}: Check(\"\") said SERVING, then Check({TS}) NOT_SERVING, while \
             starting: {seen:?}"
        );
        p.signal(rustix::process::Signal::TERM);
        assert_eq!(p.wait_exit(Duration::from_secs(15)).await.code(), Some(0));
    }
}

/// Starts a daemon with `env` and `config`, makes a call, stops it; returns
/// its log.
async fn log_of_a_run(config: &str, env: &[(&str, &str)]) -> String {
    let dirs = Dirs::new();
    dirs.write_setup(&standard_policy(&dirs), config);
    let mut serve = Serve::new().env_remove("JOURNAL_STREAM");
    for (k, v) in env {
        serve = serve.env(k, v);
    }
    let mut p = serve.spawn(&dirs);
    p.wait_serving(&dirs.socket).await;
    let mut c = agentjail::client::connect_unix(&dirs.socket).await.unwrap();
    ok(c.who_am_i(WhoAmIRequest {}).await);
    p.signal(rustix::process::Signal::TERM);
    assert_eq!(p.wait_exit(Duration::from_secs(15)).await.code(), Some(0));
    p.log()
}

#[tokio::test]
async fn logs_are_json_under_the_journal_and_text_when_configured() {
    let json_lines = |log: &str| -> Vec<serde_json::Map<String, Value>> {
        log.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| match serde_json::from_str::<Value>(l) {
                Ok(Value::Object(o)) => o,
                other => panic!("not a JSON object: {l:?} ({other:?})\nlog:\n{log}"),
            })
            .collect()
    };
    // auto + JOURNAL_STREAM (what systemd sets): JSON.
    let log = log_of_a_run("", &[("JOURNAL_STREAM", "8:123456")]).await;
    let lines = json_lines(&log);
    assert!(lines.len() >= 3, "{log}");
    for l in &lines {
        assert!(
            l.contains_key("level") && l.contains_key("timestamp"),
            "{l:?}"
        );
    }
    let serving = lines
        .iter()
        .find(|l| l.get("message").and_then(Value::as_str) == Some("serving"))
        .unwrap_or_else(|| panic!("no \"serving\" event: {log}"));
    assert_eq!(serving["level"], "INFO");
    assert!(
        serving.contains_key("socket"),
        "fields are top-level keys: {serving:?}"
    );
    // log_format = "json" without the journal: JSON.
    let log = log_of_a_run("log_format = \"json\"\n", &[]).await;
    assert!(json_lines(&log).len() >= 3);
    // log_format = "text" even under the journal: not JSON.
    for log in [
        log_of_a_run("log_format = \"text\"\n", &[("JOURNAL_STREAM", "8:123456")]).await,
        // auto, no journal, not a terminal: text.
        log_of_a_run("", &[]).await,
    ] {
        let text_lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(text_lines.len() >= 3, "{log}");
        for l in &text_lines {
            assert!(
                serde_json::from_str::<Value>(l).is_err(),
                "a JSON line in a text log: {l:?}"
            );
            assert!(
                !l.contains('\u{1b}'),
                "colour codes when not on a terminal: {l:?}"
            );
        }
        assert!(
            text_lines
                .iter()
                .any(|l| l.contains("INFO") && l.contains("serving")),
            "{log}"
        );
    }
}
