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

use agentjail::proto::{ExecRequest, OpenSessionRequest};
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
    let mut run_once = |which: usize, in_session: bool| {
        let request = ExecRequest {
            argv: vec!["/bin/true".into()],
            session_id: if in_session {
                sessions[which].clone()
            } else {
                String::new()
            },
            ..Default::default()
        };
        let started = Instant::now();
        let result = runtime
            .block_on(clients[which].run(request))
            .expect("Run /bin/true")
            .into_inner();
        assert_eq!(result.exited.and_then(|e| e.exit_code), Some(0));
        started.elapsed()
    };
    let bare_once = || {
        let mut c = Command::new("/bin/true");
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let started = Instant::now();
        assert!(c.status().expect("spawn").success());
        started.elapsed()
    };
    for _ in 0..20 {
        run_once(0, true);
        run_once(1, true);
        run_once(0, false);
        bare_once();
    }
    let mut samples: [Vec<Duration>; 4] = Default::default();
    while samples[0].len() < iters {
        for _ in 0..ROUND {
            samples[0].push(run_once(0, true));
        }
        for _ in 0..ROUND {
            samples[1].push(run_once(1, true));
        }
        for _ in 0..ROUND {
            samples[2].push(run_once(0, false));
        }
        for _ in 0..ROUND {
            samples[3].push(bare_once());
        }
    }
    let p50: Vec<f64> = samples.iter_mut().map(|s| p50_ms(s)).collect();
    println!("/bin/true, {iters} samples each, interleaved in rounds of {ROUND}");
    for (name, v) in [
        "Run in a session, audit on",
        "Run in a session, audit off",
        "Run, own sandbox, audit on",
        "bare spawn",
    ]
    .iter()
    .zip(&p50)
    {
        println!("{name:<30} p50 {v:>8.3} ms");
    }
    let ratio = p50[1] / p50[3];
    println!(
        "p50 ratio session (audit off) / bare spawn: {ratio:.2} (target <= 1.30: {})",
        if ratio <= 1.3 { "met" } else { "NOT met" }
    );
    println!(
        "p50 ratio session / own sandbox (audit on): {:.2}",
        p50[0] / p50[2]
    );
}

fn p50_ms(samples: &mut [Duration]) -> f64 {
    common::percentile(samples, 0.5).as_secs_f64() * 1000.0
}
