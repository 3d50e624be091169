//! `cargo bench --bench launch_rate`: how the `Run` rate scales with
//! concurrent clients (issue 12's "at 8 clients at least 2× the 1-client
//! rate"). `Run` of `/bin/true` with the full default isolation, audit on
//! (the default), at 1, 2, 8 and 32 clients, `BENCH_SECONDS` (default 3)
//! per measurement, each measured twice in alternation and the best kept;
//! with the pool (the default config) and without (`[pool] per_agent = 0`).
//!
//! `BENCH_BASELINE_BIN=/path/to/agentjail` adds a second daemon from
//! another build (e.g. the previous commit's), measured interleaved with
//! this one so that drift on a shared machine hits both alike. Must run as
//! root, like the daemon.

use common::Daemon;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut daemons = vec![
        ("this build, pooled".to_string(), Daemon::start("")),
        (
            "this build, cold".to_string(),
            Daemon::start("[pool]\nper_agent = 0\n"),
        ),
    ];
    if let Some(bin) = std::env::var_os("BENCH_BASELINE_BIN") {
        let bin = PathBuf::from(bin);
        let name = format!("baseline {}", bin.display());
        daemons.push((name, Daemon::start_bin(&bin, "", "", |_| {})));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let levels = [1usize, 2, 8, 32];
    let mut best = vec![[0f64; 4]; daemons.len()];
    for _ in 0..2 {
        for (li, clients) in levels.iter().enumerate() {
            for (di, (_, d)) in daemons.iter().enumerate() {
                let rate =
                    runtime.block_on(measure(&d.socket, *clients, Duration::from_secs(seconds)));
                best[di][li] = best[di][li].max(rate);
            }
        }
    }
    println!("Run /bin/true, runs/s (best of 2 x {seconds} s), audit on");
    println!(
        "{:<40} {:>8} {:>8} {:>8} {:>8} {:>10}",
        "daemon", "1", "2", "8", "32", "8/1"
    );
    for (di, (name, _)) in daemons.iter().enumerate() {
        let r = best[di];
        println!(
            "{name:<40} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>10.2}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[2] / r[0]
        );
    }
}

/// Runs per second that `clients` concurrent clients sustain.
async fn measure(socket: &Path, clients: usize, length: Duration) -> f64 {
    let deadline = Instant::now() + length;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let mut client = agentjail::client::connect_unix(socket)
            .await
            .expect("connect");
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                common::run_true(&mut client).await;
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("client task");
    }
    total as f64 / started.elapsed().as_secs_f64()
}
