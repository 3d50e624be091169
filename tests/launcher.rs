//! The sandbox launcher is a process of its own (src/sandbox/launcher_process.rs):
//! sandboxes are its children, not the daemon's, and when it dies the daemon
//! fails closed (commands refused with UNAVAILABLE, health NOT_SERVING)
//! while its file tools keep serving.

#[path = "shell_common/mod.rs"]
mod shell_common;

use agentjail::proto::ReadFileRequest;
use shell_common::*;
use std::time::{Duration, Instant};

/// The daemon's launcher process: its one child named `aj-launcher`.
fn launcher_of(daemon: u32) -> u32 {
    let found: Vec<u32> = host_processes()
        .into_iter()
        .filter(|(pid, ppid, _)| *ppid == daemon && is_launcher(*pid))
        .map(|(pid, _, _)| pid)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one launcher process under the daemon: {found:?}"
    );
    found[0]
}

fn ppid_of(pid: u32) -> u32 {
    host_processes()
        .into_iter()
        .find(|(p, _, _)| *p == pid)
        .map(|(_, ppid, _)| ppid)
        .unwrap_or(0)
}

#[tokio::test]
async fn sandboxes_are_built_by_the_launcher_process_not_the_daemon() {
    let d = ShellDaemon::start().await;
    let launcher = launcher_of(d.pid);
    let marker = unique_sleep(30);
    let mut req = sh_req(&format!("sleep {marker}"));
    req.timeout_ms = 10_000;
    let run = d.run(req);
    let check = async {
        assert!(
            wait_until(Duration::from_secs(5), || !host_pids_with(&marker)
                .is_empty())
            .await,
            "the command should be running"
        );
        // sleep's parent is the sandbox's sh or init; init's parent is the launcher.
        let sleep = host_pids_with(&marker)[0];
        let mut p = ppid_of(sleep);
        while p != 0 && p != launcher && p != d.pid {
            p = ppid_of(p);
        }
        assert_eq!(
            p, launcher,
            "the sandbox descends from the launcher process"
        );
        for pid in host_pids_with(&marker) {
            // SAFETY: killing the test's own sleep to end the call early.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    };
    let (r, ()) = tokio::join!(run, check);
    r.expect("the call ends once its command is killed");
    d.assert_no_leftovers(Duration::from_secs(3)).await;
}

#[tokio::test]
async fn a_dead_launcher_fails_closed_and_the_daemon_keeps_serving() {
    let d = ShellDaemon::start().await;
    // Control: commands run while the launcher lives.
    let ok = d.sh("echo alive").await;
    assert_eq!(ok.stdout, "alive\n", "{ok:?}");
    assert_eq!(health_status(&d.dirs.socket, "").await, Ok(1));

    let launcher = launcher_of(d.pid);
    // SAFETY: killing the daemon's launcher child, found above.
    assert_eq!(unsafe { libc::kill(launcher as i32, libc::SIGKILL) }, 0);

    let deadline = Instant::now() + Duration::from_secs(3);
    let mut health = health_status(&d.dirs.socket, "").await;
    while health != Ok(2) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        health = health_status(&d.dirs.socket, "").await;
    }
    assert_eq!(
        health,
        Ok(2),
        "health is NOT_SERVING once the launcher is gone"
    );

    let s = d
        .run(sh_req("touch /workspace/ran-after-launcher-death"))
        .await
        .expect_err("no command may run without the launcher");
    assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
    assert!(
        s.message().contains("launcher"),
        "says why: {}",
        s.message()
    );
    assert!(
        !d.dirs.w("ran-after-launcher-death").exists(),
        "nothing ran on the host"
    );

    // The daemon itself keeps serving its file tools.
    std::fs::write(d.dirs.w("still.txt"), "here\n").unwrap();
    let mut c = d.client().await;
    let read = c
        .read_file(ReadFileRequest {
            path: "still.txt".into(),
            ..Default::default()
        })
        .await
        .expect("file tools still work")
        .into_inner();
    assert_eq!(read.text, "here\n");
}

/// The cgroup2 group under which this host's per-call groups are made
/// (the one `CLONE_INTO_CGROUP` clones into), with its freezer.
fn sandboxes_v2_parent() -> std::path::PathBuf {
    let found = [
        "/sys/fs/cgroup/unified/agentjail",
        "/sys/fs/cgroup/agentjail",
    ]
    .into_iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.join("cgroup.freeze").exists());
    match found {
        Some(p) => p,
        None => {
            assert!(!under_ci(), "CI needs a cgroup2 group with cgroup.freeze");
            panic!("no cgroup2 freezer for the sandboxes on this host")
        }
    }
}

/// Thaws a cgroup2 group when dropped, so a failing test never leaves
/// sandboxes (this daemon's or another's) frozen.
struct Frozen(std::path::PathBuf);

impl Frozen {
    fn freeze(dir: &std::path::Path) -> Frozen {
        std::fs::write(dir.join("cgroup.freeze"), "1").expect("freeze");
        Frozen(dir.to_path_buf())
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("cgroup.freeze"), "0");
    }
}

fn frozen(dir: &std::path::Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.events"))
        .unwrap_or_default()
        .lines()
        .any(|l| l == "frozen 1")
}

fn procs_in(dir: &std::path::Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The launcher never waits on a child's setup: a call whose sandbox is
/// stuck in its setup (frozen by the cgroup2 freezer before its first
/// step) does not delay another call, which starts, runs and answers while
/// the first is still setting up; the first then completes once thawed.
#[tokio::test]
async fn a_stalled_setup_does_not_delay_another_call() {
    // Without sandboxes built ahead: the groups found below must be A's
    // setup, not a ready sandbox of the pool (which A might not take).
    let d = ShellDaemon::start_with_config(&Policy::default(), "[pool]\nper_agent = 0\n").await;
    let parent = sandboxes_v2_parent();
    // Control: commands run.
    assert_eq!(d.sh("echo warm").await.stdout, "warm\n");

    // Freeze the parent so that A's init is frozen the moment it is born in
    // (or joins) its group, before any setup step; then freeze A's own
    // group and thaw the parent, so that only A stays stuck.
    let thaw_parent = Frozen::freeze(&parent);
    let mut a_req = sh_req("echo A-ran");
    a_req.timeout_ms = 20_000;
    let a = d.run_ok(a_req);
    tokio::pin!(a);
    let prefix = format!("{}-", d.pid);
    let mut a_group = None;
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            tokio::select! {
                r = &mut a => panic!("A answered while its setup was frozen: {r:?}"),
                _ = tokio::time::sleep(Duration::from_millis(2)) => {}
            }
            let groups: Vec<_> = std::fs::read_dir(&parent)
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .filter(|p| !procs_in(p).is_empty())
                .collect();
            if let Some(g) = groups.into_iter().next() {
                a_group = Some(g);
                return;
            }
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "A's sandbox should have started (a process in its group)"
    );
    let a_group = a_group.unwrap();
    let thaw_a = Frozen::freeze(&a_group);
    drop(thaw_parent);
    assert!(
        wait_until(Duration::from_secs(5), || frozen(&a_group)).await,
        "A's group should be frozen with its init in it"
    );
    let a_init = procs_in(&a_group);
    assert!(!a_init.is_empty(), "A started: its init is in its group");

    // B is launched, set up, run and answered while A is stuck.
    let b = tokio::select! {
        r = &mut a => panic!("A answered while frozen: {r:?}"),
        b = tokio::time::timeout(Duration::from_secs(10), d.sh("echo B-ran")) => {
            b.expect("B must not wait for A's setup")
        }
    };
    assert_eq!(b.stdout, "B-ran\n", "{b:?}");
    assert!(
        frozen(&a_group),
        "A was still stuck in its setup when B answered"
    );
    assert_eq!(procs_in(&a_group), a_init, "A had not moved on");

    drop(thaw_a);
    let a = tokio::time::timeout(Duration::from_secs(10), a)
        .await
        .expect("A answers once thawed");
    assert_eq!(a.stdout, "A-ran\n", "{a:?}");
    d.assert_no_leftovers(Duration::from_secs(3)).await;
}

/// A step that fails in the child reaches the caller as that step and its
/// errno (typed across the launcher socket), nothing runs, and the daemon
/// keeps serving. pids = 1: init fills the pids limit, so forking the
/// command fails with EAGAIN.
#[tokio::test]
async fn a_failed_setup_step_is_reported_typed_and_nothing_runs() {
    let policy = Policy {
        pids: 1,
        ..Policy::default()
    };
    let d = ShellDaemon::start_with(policy).await;
    let s = d
        .run(sh_req("touch /workspace/ran-despite-failed-setup"))
        .await
        .expect_err("the command cannot be forked under pids = 1");
    assert_eq!(s.code(), tonic::Code::Internal, "{s:?}");
    assert!(
        s.message().contains("step ForkCommand") && s.message().contains("nothing ran"),
        "names the failed step: {}",
        s.message()
    );
    assert!(
        !d.dirs.w("ran-despite-failed-setup").exists(),
        "nothing ran on the host"
    );
    d.assert_no_leftovers(Duration::from_secs(3)).await;
    // The launcher keeps serving: the next call gets the same typed answer.
    let again = d.run(sh_req("true")).await.expect_err("still pids = 1");
    assert!(again.message().contains("step ForkCommand"), "{again:?}");
}

/// Several calls at once all finish, each with its own output: the
/// launcher interleaves their setups and exits.
#[tokio::test]
async fn concurrent_calls_each_get_their_own_answer() {
    let d = ShellDaemon::start().await;
    let (a, b, c, e) = tokio::join!(
        d.sh("echo call-0"),
        d.sh("echo call-1"),
        d.sh("echo call-2"),
        d.sh("echo call-3"),
    );
    for (i, r) in [a, b, c, e].into_iter().enumerate() {
        assert_eq!(r.stdout, format!("call-{i}\n"), "{r:?}");
    }
    d.assert_no_leftovers(Duration::from_secs(3)).await;
}

/// A capability set line (`CapEff`, `CapBnd`, ...) of `/proc/<path>/status`.
fn cap_set(status_dir: &std::path::Path, field: &str) -> u64 {
    let status = std::fs::read_to_string(status_dir.join("status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {}", status_dir.display()));
    u64::from_str_radix(line.trim(), 16).unwrap()
}

/// After the fork, the gRPC daemon keeps only the capabilities its own work
/// needs (README, "Privileges"), in every thread and in its bounding set,
/// while the launcher keeps what builds sandboxes; and the daemon still
/// does that work: it writes into a workspace owned by the sandbox user
/// (giving the file to its owner) and ends a command by timeout.
#[tokio::test]
async fn the_daemon_drops_what_only_the_launcher_needs() {
    const CHOWN: u64 = 1 << 0;
    const DAC_OVERRIDE: u64 = 1 << 1;
    const FOWNER: u64 = 1 << 3;
    const KILL: u64 = 1 << 5;
    const SYS_ADMIN: u64 = 1 << 21;
    let kept = CHOWN | DAC_OVERRIDE | FOWNER | KILL;
    let d = ShellDaemon::start().await;
    // Control: this test runs with every capability, as the daemon started.
    let ours = cap_set(std::path::Path::new("/proc/self"), "CapEff");
    assert!(ours & SYS_ADMIN != 0, "the test must run as full root");

    let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{}/task", d.pid))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(tasks.len() > 1, "the daemon's threads are all checked");
    for t in &tasks {
        for field in ["CapEff", "CapPrm", "CapBnd"] {
            assert_eq!(
                cap_set(t, field),
                kept,
                "{field} of daemon thread {}",
                t.display()
            );
        }
        assert_eq!(cap_set(t, "CapInh"), 0);
        assert_eq!(cap_set(t, "CapAmb"), 0);
    }
    let launcher = std::path::PathBuf::from(format!("/proc/{}", launcher_of(d.pid)));
    assert!(
        cap_set(&launcher, "CapEff") & SYS_ADMIN != 0,
        "the launcher keeps what builds sandboxes"
    );

    // The daemon's own work still works with what it kept.
    let mut c = d.client().await;
    c.write_file(agentjail::proto::WriteFileRequest {
        path: "by-daemon.txt".into(),
        content: b"written\n".to_vec(),
        ..Default::default()
    })
    .await
    .expect("WriteFile into the sandbox user's workspace");
    let written = d.dirs.w("by-daemon.txt");
    assert_eq!(std::fs::read(&written).unwrap(), b"written\n");
    let ws_owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&d.dirs.ws).unwrap());
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&written).unwrap()),
        ws_owner,
        "given to the workspace owner (CAP_CHOWN)"
    );
    let marker = unique_sleep(30);
    let mut req = sh_req(&format!("sleep {marker}"));
    req.timeout_ms = 300;
    let started = Instant::now();
    let r = d.run(req).await.expect("a timed-out call still answers");
    assert!(started.elapsed() < Duration::from_secs(10), "{r:?}");
    assert_no_process_with(&marker, Duration::from_secs(3)).await;
    d.assert_no_leftovers(Duration::from_secs(3)).await;
}
