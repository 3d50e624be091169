//! `cargo bench --bench audit`: what durable audit costs. Throughput of
//! `ReadFile` (a small file) and `Run` (`/bin/true`) at 1 and 32 concurrent
//! clients, against two daemons side by side: one with the audit log file
//! on (every answer waits for its record's fdatasync, shared by a group
//! commit) and one with it off. `BENCH_SECONDS` sets each measurement's
//! length (default 3). Must run as root, like the daemon.

use agentjail::proto::{LineWindow, ReadFileRequest, read_file_request};
use common::Daemon;
use std::path::Path;
use std::time::{Duration, Instant};

mod common;

#[derive(Clone, Copy, PartialEq)]
enum Call {
    ReadFile,
    Run,
}

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let on = Daemon::start("");
    let off = Daemon::start("[audit]\nenabled = false\n");
    for d in [&on, &off] {
        std::fs::write(d.workspace.join("small.txt"), "hello\n".repeat(100)).unwrap();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "throughput, {seconds} s per measurement, audit file on (durable, group commit) vs off"
    );
    println!(
        "{:<10} {:>8} {:>14} {:>14} {:>10}",
        "call", "clients", "audit on /s", "audit off /s", "on/off"
    );
    for call in [Call::ReadFile, Call::Run] {
        for clients in [1usize, 32] {
            // Alternate the two daemons twice each and keep the best of
            // each, so drift on a shared machine hits both alike.
            let mut best = [0f64; 2];
            for _ in 0..2 {
                for (i, d) in [&on, &off].into_iter().enumerate() {
                    let rate = runtime.block_on(measure(
                        &d.socket,
                        call,
                        clients,
                        Duration::from_secs(seconds),
                    ));
                    best[i] = best[i].max(rate);
                }
            }
            let name = if call == Call::ReadFile {
                "ReadFile"
            } else {
                "Run"
            };
            println!(
                "{name:<10} {clients:>8} {:>14.0} {:>14.0} {:>10.2}",
                best[0],
                best[1],
                best[0] / best[1]
            );
        }
    }
}

/// Calls per second that `clients` concurrent clients sustain.
async fn measure(socket: &Path, call: Call, clients: usize, length: Duration) -> f64 {
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
                match call {
                    Call::ReadFile => {
                        client
                            .read_file(ReadFileRequest {
                                path: "small.txt".into(),
                                window: Some(read_file_request::Window::Lines(LineWindow {
                                    offset: 0,
                                    limit: 0,
                                })),
                                ..Default::default()
                            })
                            .await
                            .expect("ReadFile");
                    }
                    Call::Run => common::run_true(&mut client).await,
                }
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
