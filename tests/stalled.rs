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

/// p50 and p99 of 200 ReadFile calls by a caller of its own.
async fn read_latencies(d: &ShellDaemon) -> (Duration, Duration) {
    let mut other = d.client().await;
    let mut took = Vec::new();
    for _ in 0..200 {
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

    // 200 streams that are opened and never read, each on its own
    // connection (as separate stalled clients would be).
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
            let s = c
                .exec(argv_req(&["yes", &marker]))
                .await
                .expect("the Exec starts");
            (c, s)
        });
    }
    while let Some(opened) = tasks.join_next().await {
        stalled.push(opened.unwrap());
    }
    eprintln!("{streams} streams opened in {:?}", opening.elapsed());
    // They run: `yes` processes on the host.
    let running = wait_until(Duration::from_secs(30), || {
        host_pids_with(&marker).len() >= streams
    })
    .await;
    assert!(
        running,
        "all {streams} commands started: {} running\n{}",
        host_pids_with(&marker).len(),
        d.log()
    );
    // The daemon's CPU while the streams are stalled, reported (not yet a
    // target this build meets: see issue 10's note): output past each
    // stream's budget is drained at a rate shared by all streams.
    let ticks_before = cpu_ticks(d.pid);
    let idle = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu_share = (cpu_ticks(d.pid) - ticks_before) as f64 / 100.0 / idle.elapsed().as_secs_f64();
    let with = read_latencies(&d).await;
    eprintln!(
        "ReadFile p50/p99: {:?}/{:?} alone, {:?}/{:?} with {streams} stalled streams; \
         daemon CPU while stalled {cpu_share:.2} cores",
        alone.0, alone.1, with.0, with.1
    );
    // The 50 ms for the median, or (on a loaded machine where
    // ReadFile alone is slower) no worse than three times ReadFile alone,
    // measured side by side; the tail is printed above.
    let allowed = Duration::from_millis(50).max(alone.0 * 3);
    assert!(with.0 <= allowed, "p50 {:?} > {allowed:?}", with.0);
    drop(stalled);
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
