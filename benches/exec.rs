//! `cargo bench --bench exec`: the cost of a sandboxed command, side by side
//! in one run.
//!
//! - `agentjail Run`: `Run` of `/bin/true` end to end over the Unix socket
//!   (audit on, the default, and off),
//!   with the full default isolation (namespaces, minimal root, cgroups,
//!   rlimits, Landlock, seccomp);
//! - `bare spawn`: the same command spawned with no isolation;
//! - `bwrap`: the same command under bubblewrap with `--ro-bind / / --dev /dev
//!   --proc /proc --tmpfs /tmp --unshare-all --die-with-parent --new-session`
//!   (installed with apt-get by the bench itself when missing).
//!
//! The three are measured in interleaved rounds so drift hits them alike.
//! `BENCH_ITERS` sets the samples per contender (default 300). Must run as
//! root, like the daemon.

use common::{Daemon, bwrap_command, ensure_bwrap, percentile, run_true, time_command};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

const ROUND: usize = 25;

fn main() {
    // `cargo bench` passes `--bench`; nothing else is expected.
    let iters: usize = std::env::var("BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    ensure_bwrap();
    // Audit on is the default; the audit-off daemon isolates the sandbox's
    // own cost from the record's fdatasync.
    let audited = Daemon::start("");
    let unaudited = Daemon::start("[audit]\nenabled = false\n");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let connect = |d: &Daemon| {
        runtime
            .block_on(agentjail::client::connect_unix(&d.socket))
            .expect("connect to the daemon")
    };
    let mut clients = [connect(&audited), connect(&unaudited)];
    let mut run_once = |which: usize| {
        let started = Instant::now();
        runtime.block_on(run_true(&mut clients[which]));
        started.elapsed()
    };
    let bare_once = || time_command(Command::new("/bin/true"));
    let bwrap_once = || time_command(bwrap_command());

    // Warm up caches, the netns pool and the cgroup hierarchy.
    for _ in 0..20 {
        run_once(0);
        run_once(1);
        bare_once();
        bwrap_once();
    }
    let (mut ours, mut ours_unaudited, mut bare, mut bwrap) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    while ours.len() < iters {
        for _ in 0..ROUND {
            ours.push(run_once(0));
        }
        for _ in 0..ROUND {
            ours_unaudited.push(run_once(1));
        }
        for _ in 0..ROUND {
            bare.push(bare_once());
        }
        for _ in 0..ROUND {
            bwrap.push(bwrap_once());
        }
    }
    let ours = Stats::of(ours);
    let ours_unaudited = Stats::of(ours_unaudited);
    let bare = Stats::of(bare);
    let bwrap = Stats::of(bwrap);
    println!("/bin/true, {iters} samples each, interleaved in rounds of {ROUND}");
    println!(
        "{:<28} {:>10} {:>10} {:>10}",
        "", "p50 ms", "p99 ms", "mean ms"
    );
    for (name, s) in [
        ("agentjail Run, audit on", &ours),
        ("agentjail Run, audit off", &ours_unaudited),
        ("bare spawn", &bare),
        ("bwrap --unshare-all", &bwrap),
    ] {
        println!(
            "{name:<28} {:>10.3} {:>10.3} {:>10.3}",
            ms(s.p50),
            ms(s.p99),
            ms(s.mean)
        );
    }
    // The targets are for the default configuration: audit on.
    let vs_bwrap = ms(ours.p50) / ms(bwrap.p50);
    let vs_bare = ms(ours.p50) / ms(bare.p50);
    println!(
        "p50 ratio agentjail/bwrap: {vs_bwrap:.2} (target <= 0.50: {})",
        verdict(vs_bwrap <= 0.5)
    );
    println!(
        "p50 ratio agentjail/bare:  {vs_bare:.2} (target <= 2.50: {})",
        verdict(vs_bare <= 2.5)
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Stats {
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Stats {
        let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
        Stats {
            p50: percentile(&mut samples, 0.5),
            p99: percentile(&mut samples, 0.99),
            mean,
        }
    }
}
