//! Stalled readers (escape case B8): Exec streams whose clients never read
//! hold their commands back (the pipe fills, the command blocks) instead of
//! being drained at full speed, and other callers stay fast. Against the
//! real daemon.

#[path = "shell_common/mod.rs"]
mod shell_common;

use agentjail::proto::tool_sandbox_client::ToolSandboxClient;
use agentjail::proto::*;
use shell_common::*;
use std::time::{Duration, Instant};

/// CPU time (user + system, in clock ticks) of the daemon so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// p50 and p99 of 500 ReadFile calls by a caller of its own.
async fn read_latencies(d: &ShellDaemon) -> (Duration, Duration) {
    let mut other = d.client().await;
    let mut took = Vec::new();
    for _ in 0..500 {
        let t = Instant::now();
        let r = other
            .read_file(ReadFileRequest {
                path: "small.txt".into(),
                ..Default::default()
            })
            .await
            .expect("ReadFile answers");
        took.push(t.elapsed());
        assert_eq!(r.into_inner().text, "small file\n");
    }
    took.sort();
    (took[took.len() / 2], took[took.len() * 99 / 100])
}

#[tokio::test]
async fn stalled_exec_streams_do_not_slow_other_callers() {
    let streams: usize = std::env::var("AJ_STALLED_STREAMS").map_or(200, |v| v.parse().unwrap());
    let d = ShellDaemon::start().await;
    std::fs::write(d.dirs.ws.join("small.txt"), "small file\n").unwrap();

    let alone = read_latencies(&d).await;

    // Positive control: a reading client gets `yes` output.
    let mut c = d.client().await;
    let mut s = c.exec(argv_req(&["yes"])).await.unwrap().into_inner();
    let mut seen = 0;
    while seen < 4096 {
        match s.message().await.unwrap().unwrap().event {
            Some(exec_event::Event::Stdout(chunk)) => seen += chunk.data.len(),
            _ => continue,
        }
    }
    drop(s);

    // 200 streams that take their first output and then never read again,
    // each on its own connection (as separate stalled clients would be).
    let marker = unique_sleep(1);
    let mut stalled = Vec::new();
    let opening = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..streams {
        let socket = d.dirs.socket.clone();
        let marker = marker.clone();
        tasks.spawn(async move {
            let mut c = agentjail::client::unix_channel(&socket)
                .await
                .map(ToolSandboxClient::new)
                .expect("connect");
            let mut s = c
                .exec(argv_req(&["yes", &marker]))
                .await
                .expect("the Exec starts")
                .into_inner();
            // It started: its first output arrives.
            loop {
                match s.message().await.expect("the stream runs") {
                    Some(ExecEvent {
                        event: Some(exec_event::Event::Stdout(chunk)),
                    }) if !chunk.data.is_empty() => break,
                    Some(_) => continue,
                    None => panic!("the stream ended before any output"),
                }
            }
            (c, s)
        });
    }
    while let Some(opened) = tasks.join_next().await {
        stalled.push(opened.unwrap());
    }
    eprintln!(
        "{streams} streams opened, each with its first output, in {:?}",
        opening.elapsed()
    );
    assert_eq!(host_pids_with(&marker).len(), streams, "every command runs");
    // What each stream sent within its budget is in flight first (the
    // clients' HTTP/2 windows take it): let that pass, then measure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hold: u64 = std::env::var("AJ_HOLD").map_or(3, |v| v.parse().unwrap());
    let mut shares = Vec::new();
    for _ in 0..hold {
        let ticks_before = cpu_ticks(d.pid);
        let window = Instant::now();
        tokio::time::sleep(Duration::from_secs(1)).await;
        shares.push(
            (cpu_ticks(d.pid) - ticks_before) as f64 / 100.0 / window.elapsed().as_secs_f64(),
        );
    }
    let cpu_share = shares.iter().sum::<f64>() / shares.len() as f64;
    let with = read_latencies(&d).await;
    eprintln!(
        "ReadFile p50/p99: {:?}/{:?} alone, {:?}/{:?} with {streams} stalled streams; \
         daemon CPU while stalled {cpu_share:.3} cores (by second: {shares:.3?})",
        alone.0, alone.1, with.0, with.1
    );
    // The stalled commands block on their pipes: the daemon's CPU stays
    // small (a margin for a loaded 2-core machine; output past a budget is
    // drained at a rate shared by all streams: 0.06-0.15 cores measured).
    assert!(
        cpu_share < 0.3,
        "daemon CPU {cpu_share:.3} cores while stalled"
    );
    // Other callers: p99 within the 50 ms, or (on a loaded machine
    // where ReadFile alone is slower) within twice ReadFile alone, measured
    // side by side.
    let allowed = Duration::from_millis(50).max(alone.1 * 2);
    assert!(with.1 <= allowed, "p99 {:?} > {allowed:?}", with.1);

    // Their clients go: each command is stopped and recorded, and the
    // records show how little was drained past the budgets: at most the
    // shared rate over the whole run (plus a second's burst and one read
    // per stream), where draining at full speed read gigabytes.
    drop(stalled);
    let elapsed = opening.elapsed();
    let outcomes = wait_for_outcomes(&d, &marker, streams).await;
    let budget = shell_common::Policy::default().output_budget_bytes;
    let past_budget: u64 = outcomes
        .iter()
        .map(|r| {
            let bytes = r["outcome"]["stdout"]["bytes"].as_u64();
            bytes
                .unwrap_or_else(|| panic!("no stdout bytes: {r:#}"))
                .saturating_sub(budget)
        })
        .sum();
    let rate = agentjail::limits::EXEC_PAST_BUDGET_BYTES_PER_SEC as f64;
    let bound = rate * (elapsed.as_secs_f64() + 1.0) + (streams * 128 * 1024) as f64;
    eprintln!("{past_budget} bytes drained past the budgets in {elapsed:?} (bound {bound:.0})");
    assert!(
        past_budget as f64 <= bound,
        "{past_budget} bytes drained > {bound:.0}"
    );
    for r in &outcomes {
        assert_eq!(r["outcome"]["status"], "CANCELLED", "{r:#}");
    }
    assert_no_process_with(&marker, Duration::from_secs(30)).await;
}

/// The outcome records of the `count` commands whose argv has `marker`.
async fn wait_for_outcomes(d: &ShellDaemon, marker: &str, count: usize) -> Vec<serde_json::Value> {
    let mut outcomes = Vec::new();
    let found = wait_until(Duration::from_secs(30), || {
        outcomes = d
            .audit_records()
            .into_iter()
            .filter(|r| r["phase"] != "intent" && r["args"].to_string().contains(marker))
            .collect();
        outcomes.len() >= count
    })
    .await;
    assert!(found, "{} of {count} outcome records", outcomes.len());
    outcomes
}

/// A client that stops reading holds its command on its pipe: the command
/// does not run on while nobody reads, and is not taken for idle meanwhile
/// (it is the daemon that stopped reading, not the command that stopped
/// writing). Once the client reads again, it gets everything and the
/// command ends by itself.
#[tokio::test]
async fn a_stalled_client_holds_its_command_on_its_pipe_without_idling_it() {
    // More than the client's HTTP/2 window takes in (and within the
    // budget): the rest can only wait on the command's pipe.
    let window = u64::from(agentjail::client::CLIENT_WINDOW_BYTES);
    let d = ShellDaemon::start_with(Policy {
        output_budget_bytes: 4 * window,
        ..Policy::default()
    })
    .await;
    let total = 3 * window;
    let mut req = sh_req(&format!("head -c {total} /dev/zero; echo done >&2"));
    req.idle_timeout_ms = 400;
    req.timeout_ms = 30_000;
    let mut client = d.client().await;
    let mut s = client.exec(req).await.unwrap().into_inner();
    let mut stdout = 0u64;
    while stdout == 0 {
        if let Some(exec_event::Event::Stdout(c)) = s.message().await.unwrap().unwrap().event {
            stdout += c.data.len() as u64;
        }
    }
    // Stalled for five idle timeouts: `head` (which would be done in
    // milliseconds) is still there, blocked writing to its pipe.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let running = d.descendants();
    assert!(
        running.iter().any(|l| l
            .splitn(3, ' ')
            .nth(2)
            .is_some_and(|c| c.starts_with("head "))),
        "head is blocked on its pipe: {running:#?}"
    );
    // Reading again: all of it, then the command's own end.
    let mut stderr = Vec::new();
    let exited = loop {
        match s.message().await.unwrap().expect("an Exited event").event {
            Some(exec_event::Event::Stdout(c)) => stdout += c.data.len() as u64,
            Some(exec_event::Event::Stderr(c)) => stderr.extend(c.data),
            Some(exec_event::Event::Exited(e)) => break e,
            _ => {}
        }
    };
    assert_eq!(stdout, total);
    assert_eq!(stderr, b"done\n");
    assert!(!exited.idle_timed_out && !exited.timed_out, "{exited:?}");
    assert_eq!(exited.exit_code, Some(0), "{exited:?}");
}

/// B7: 1,000 concurrent commands (each well within the pids and memory
/// limits) all start, hundreds running at once: a busy daemon's open fds
/// (thousands, with so many sandboxes) do not count against the sandboxes'
/// fd limit.
#[tokio::test]
async fn a_thousand_concurrent_commands_all_start() {
    let commands: usize = std::env::var("AJ_COMMANDS").map_or(1000, |v| v.parse().unwrap());
    let d = ShellDaemon::start().await;
    let marker = unique_sleep(120);
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(d.client().await);
    }
    let started = Instant::now();
    let mut launches = tokio::task::JoinSet::new();
    for i in 0..commands {
        let mut c = clients[i % clients.len()].clone();
        let marker = marker.clone();
        launches.spawn(async move { c.exec(argv_req(&["sleep", &marker])).await });
    }
    let mut streams = Vec::new();
    let mut failed = Vec::new();
    while let Some(done) = launches.join_next().await {
        match done.unwrap() {
            Ok(s) => streams.push(s),
            Err(s) => failed.push(describe(&s)),
        }
    }
    eprintln!("{commands} commands started in {:?}", started.elapsed());
    assert!(
        failed.is_empty(),
        "{} failed to start, first: {:?}",
        failed.len(),
        failed.first()
    );
    // Many run at once: more than the ~240 at which sandboxes used to fail
    // with EMFILE (the policy's 30 s timeout ends the earliest ones when
    // launching 1,000 takes longer than that on a loaded machine).
    let at_once = host_pids_with(&marker).len();
    eprintln!("{at_once} of them running at once");
    assert!(
        at_once > 250.min(commands - 1),
        "{at_once} commands running at once"
    );
    // Their clients go: every command is stopped.
    drop(streams);
    drop(clients);
    assert_no_process_with(&marker, Duration::from_secs(60)).await;
}
