//! `cargo bench --bench masking`: what pinning denied paths costs a command.
//!
//! Before each command the daemon surveys the workspace (one walk by fd,
//! see `src/fs/survey.rs`) and the sandbox mounts a mask on every deny match
//! and pins every directory above it. Side by side, in interleaved rounds:
//!
//! - `Run /bin/true` end to end in an empty workspace;
//! - the same in a 10,000-file workspace (100 directories) with 100 files a
//!   deny glob (`**/*.pem`) matches, and a git repository's `.git`;
//! - the same in a 50,000-file workspace with the same 100 matches (how the
//!   cost grows with files);
//! - and, in process, the survey alone for each workspace.
//!
//! `BENCH_ITERS` sets the samples per contender (default 100). Must run as
//! root, like the daemon.

use agentjail::policy::{LoadOptions, load_dir};
use agentjail::proto::ExecRequest;
use common::{Daemon, percentile};
use std::path::Path;
use std::time::{Duration, Instant};

mod common;

const ROUND: usize = 10;
const DENY: &str = "deny = [\"**/*.pem\"]";

/// `files` files in 100 directories, 100 of them `*.pem`, and a small `.git`.
fn fill(ws: &Path, files: usize) {
    let per_dir = files / 100;
    for d in 0..100 {
        let dir = ws.join(format!("pkg{d:03}/src"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..per_dir {
            let name = if f == 0 {
                format!("key{d}.pem")
            } else {
                format!("m{f}.rs")
            };
            std::fs::write(dir.join(name), b"x").unwrap();
        }
    }
    for p in [".git/objects/ab", ".git/refs/heads", ".git/hooks"] {
        std::fs::create_dir_all(ws.join(p)).unwrap();
    }
    std::fs::write(ws.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::write(ws.join(".git/config"), "[core]\n").unwrap();
}

fn chown_all(ws: &Path) {
    let ok = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(ws)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "chown the workspace");
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let iters: usize = std::env::var("BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let daemons = [
        ("empty workspace", Daemon::start_with("", DENY, |_| {})),
        (
            "10,000 files, 100 matches",
            Daemon::start_with("", DENY, |ws| fill(ws, 10_000)),
        ),
        (
            "50,000 files, 100 matches",
            Daemon::start_with("", DENY, |ws| fill(ws, 50_000)),
        ),
    ];
    for (_, d) in &daemons {
        chown_all(&d.workspace);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut clients: Vec<_> = daemons
        .iter()
        .map(|(_, d)| {
            runtime
                .block_on(agentjail::client::connect_unix(&d.socket))
                .expect("connect")
        })
        .collect();
    let request = ExecRequest {
        argv: vec!["/bin/true".into()],
        ..Default::default()
    };
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); daemons.len()];
    // Warm up, then interleave rounds so drift hits every contender alike.
    for c in clients.iter_mut() {
        runtime
            .block_on(c.run(request.clone()))
            .expect("warm-up Run");
    }
    while samples[0].len() < iters {
        for (i, c) in clients.iter_mut().enumerate() {
            for _ in 0..ROUND {
                let t = Instant::now();
                let r = runtime
                    .block_on(c.run(request.clone()))
                    .expect("Run /bin/true")
                    .into_inner();
                assert_eq!(r.exited.and_then(|e| e.exit_code), Some(0));
                samples[i].push(t.elapsed());
            }
        }
    }
    // The survey alone, in process, with the daemon's own code.
    let mut survey_samples: Vec<Vec<Duration>> = vec![Vec::new(); daemons.len()];
    let mut found = Vec::new();
    for (i, (_, d)) in daemons.iter().enumerate() {
        let policy_dir = d.workspace.parent().unwrap().join("policies");
        let policy = load_dir(
            &policy_dir,
            &LoadOptions {
                state_dir: d.workspace.parent().unwrap().join("state"),
                open_workspaces: true,
            },
        )
        .expect("the bench policy loads");
        let ws = &policy.agent("bench").expect("agent").workspaces[0];
        for _ in 0..iters.min(50) {
            let t = Instant::now();
            let s = agentjail::fs::survey::survey(ws).expect("survey");
            survey_samples[i].push(t.elapsed());
            found = vec![s.entries, s.denied.len(), s.git.len()];
        }
        println!(
            "{:<28} survey reads {} entries, masks {}, git {}",
            daemons[i].0, found[0], found[1], found[2]
        );
    }
    println!(
        "\n{:<28} {:>12} {:>12} {:>14} {:>14}",
        "Run /bin/true", "p50", "p90", "survey p50", "survey p90"
    );
    for (i, (name, _)) in daemons.iter().enumerate() {
        println!(
            "{:<28} {:>12} {:>12} {:>14} {:>14}",
            name,
            ms(percentile(&mut samples[i], 0.5)),
            ms(percentile(&mut samples[i], 0.9)),
            ms(percentile(&mut survey_samples[i], 0.5)),
            ms(percentile(&mut survey_samples[i], 0.9)),
        );
    }
    let base = percentile(&mut samples[0], 0.5);
    let ten = percentile(&mut samples[1], 0.5);
    println!(
        "\nmasking cost per call (10,000 files, 100 matches): {} at p50 over the empty workspace",
        ms(ten.saturating_sub(base))
    );
}
