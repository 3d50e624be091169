//! `cargo bench --bench session`: a command in a session against a bare
//! spawn, side by side in one run (issue 13: target <= 1.3x).
//!
//! - `Run in a session`: `Run` of `/bin/true` with a `session_id`, end to
//!   end over the Unix socket (audit on, the default, and off): the
//!   session's supervisor spawns it (`sandbox/fast_spawn.rs`) and it
//!   execs, no sandbox is built;
//! - `Run, own sandbox`: the same without a session (a sandbox per call);
//! - `bare spawn`: `/bin/true` spawned by this process with no isolation.
//!
//! Interleaved in rounds so drift hits them alike. `BENCH_ITERS` sets the
//! samples per contender (default 300). Must run as root, like the daemon.

use agentjail::proto::{ExecRequest, ListSessionsRequest, OpenSessionRequest};
use common::Daemon;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

const ROUND: usize = 25;

fn main() {
    let iters: usize = std::env::var("BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let audited = Daemon::start("");
    let unaudited = Daemon::start("[audit]\nenabled = false\n");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut clients = [&audited, &unaudited].map(|d| {
        runtime
            .block_on(agentjail::client::connect_unix(&d.socket))
            .expect("connect to the daemon")
    });
    let sessions: Vec<String> = clients
        .iter_mut()
        .map(|c| {
            runtime
                .block_on(c.open_session(OpenSessionRequest::default()))
                .expect("OpenSession")
                .into_inner()
                .session
                .expect("a session")
                .session_id
        })
        .collect();
    // One timed call of contender `which` (an index into `NAMES`).
    let mut once = |which: usize| -> Duration {
        let started = Instant::now();
        if which == FLOOR {
            runtime
                .block_on(clients[1].list_sessions(ListSessionsRequest::default()))
                .expect("ListSessions");
            return started.elapsed();
        }
        if which == BARE {
            let mut c = Command::new("/bin/true");
            c.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let started = Instant::now();
            assert!(c.status().expect("spawn").success());
            return started.elapsed();
        }
        let (daemon, in_session) = [(0, true), (1, true), (0, false)][which];
        let request = ExecRequest {
            argv: vec!["/bin/true".into()],
            session_id: if in_session {
                sessions[daemon].clone()
            } else {
                String::new()
            },
            ..Default::default()
        };
        let started = Instant::now();
        let result = runtime
            .block_on(clients[daemon].run(request))
            .expect("Run /bin/true")
            .into_inner();
        assert_eq!(result.exited.and_then(|e| e.exit_code), Some(0));
        started.elapsed()
    };
    // For a profiler (`perf record -a -g`): only session commands, audit
    // off, this many, and no report.
    if let Some(n) = std::env::var("BENCH_PROFILE_SESSION")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let mut s: Vec<Duration> = (0..n).map(|_| once(SESSION_UNAUDITED)).collect();
        println!("session audit off p50 {:.3} ms", p50_ms(&mut s));
        let log = unaudited.socket.parent().unwrap().join("daemon.log");
        print!("{}", std::fs::read_to_string(log).unwrap_or_default());
        return;
    }
    for _ in 0..20 {
        for which in 0..NAMES.len() {
            once(which);
        }
    }
    let mut samples: [Vec<Duration>; NAMES.len()] = Default::default();
    while samples[0].len() < iters {
        for (which, s) in samples.iter_mut().enumerate() {
            for _ in 0..ROUND {
                s.push(once(which));
            }
        }
    }
    let p50: Vec<f64> = samples.iter_mut().map(|s| p50_ms(s)).collect();
    println!("/bin/true, {iters} samples each, interleaved in rounds of {ROUND}");
    for (name, v) in NAMES.iter().zip(&p50) {
        println!("{name:<34} p50 {v:>8.3} ms");
    }
    let ratio = p50[SESSION_UNAUDITED] / p50[BARE];
    println!(
        "p50 ratio session (audit off) / bare spawn: {ratio:.2} (target <= 1.30: {})",
        if ratio <= 1.3 { "met" } else { "NOT met" }
    );
    println!(
        "p50 ratio session (audit on) / bare spawn: {:.2}",
        p50[0] / p50[BARE]
    );
    println!(
        "p50 ratio session / own sandbox (audit on): {:.2}",
        p50[0] / p50[2]
    );
}

/// The contenders, in the order of a round.
const NAMES: [&str; 5] = [
    "Run in a session, audit on",
    "Run in a session, audit off",
    "Run, own sandbox, audit on",
    "gRPC floor (ListSessions)",
    "bare spawn",
];
const SESSION_UNAUDITED: usize = 1;
const FLOOR: usize = 3;
const BARE: usize = 4;

fn p50_ms(samples: &mut [Duration]) -> f64 {
    common::percentile(samples, 0.5).as_secs_f64() * 1000.0
}
