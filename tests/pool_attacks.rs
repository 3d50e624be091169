//! Attacks on sandboxes built ahead (issue 12, item 2; src/sandbox/pool.rs,
//! command.rs, fresh.rs), tried as a careful attacker would against the
//! real daemon: what one call leaves behind (argv, environment, files,
//! processes) never reaches the pooled sandbox of the next; host changes
//! made between a sandbox's build and its use (a denied file created, a
//! denied file exchanged with an allowed one in place) never make a denied
//! file readable; a ready sandbox's init cannot be reached by another
//! sandbox's command; a killed daemon leaves no ready sandbox; a pooled
//! sandbox's /etc is the one a cold build makes for the call. Each attempt
//! asserts it failed and that nothing happened on the host, beside a
//! positive control (the call WAS served pooled, the allowed variant works).

#[path = "shell_common/mod.rs"]
mod shell_common;

use agentjail::proto::ExecRequest;
use shell_common::*;
use std::time::Duration;

/// A marker the second call can look for without carrying it in its own
/// argv (it is assembled from two halves at run time).
const MARK_A: &str = "PREVCALL";
const MARK_B: &str = "SECRET-5e71a0";

fn mark() -> String {
    format!("{MARK_A}-{MARK_B}")
}

// ------------------------------------------------- one call to the next

/// The second call looks for the first call's argv and environment in
/// init's memory and /proc (cmdline, environ, maps, mem, fds), in /tmp and
/// /dev/shm, and among the processes it can see.
const SNOOP: &str = r#"
import os, glob
mark = os.environ["AJ_HALF"] + "-" + "SECRET-5e71a0"
found = []
def scan(path):
    try:
        with open(path, "rb") as f:
            if mark.encode() in f.read(1 << 22):
                found.append(path)
        return "ok"
    except OSError as e:
        return "denied:%d" % e.errno
for name in ("cmdline", "environ", "maps", "stack", "auxv"):
    print("init-" + name, scan("/proc/1/" + name))
try:
    with open("/proc/1/mem", "rb") as f:
        f.seek(0x10000)
        f.read(4096)
    print("init-mem ok")
except OSError as e:
    print("init-mem denied:%d" % e.errno)
try:
    print("init-fds", sorted(os.listdir("/proc/1/fd")))
except OSError as e:
    print("init-fds denied:%d" % e.errno)
for p in glob.glob("/proc/[0-9]*/cmdline") + glob.glob("/proc/[0-9]*/environ"):
    if not p.startswith("/proc/1/") and not p.startswith("/proc/%d/" % os.getpid()):
        scan(p)
for d in ("/tmp", "/dev/shm", "/workspace"):
    for root, _, files in os.walk(d):
        for n in files:
            scan(os.path.join(root, n))
        if "leftover" in " ".join(files):
            found.append(root)
print("tmp", sorted(os.listdir("/tmp")), "shm", sorted(os.listdir("/dev/shm")))
print("pids", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
print("self-environ", scan("/proc/self/environ"))
print("FOUND", found)
"#;

#[tokio::test]
async fn nothing_of_an_earlier_call_reaches_the_pooled_sandbox_of_the_next() {
    let d = ShellDaemon::start().await;
    let sleeper = unique_sleep(30);
    // The first call: the marker in its argv and environment, files in
    // /tmp and /dev/shm, and a background process.
    let mut first = sh_req(&format!(
        "echo {m} > /tmp/leftover; echo {m} > /dev/shm/leftover; \
         (sleep {sleeper} &) ; echo \"$AJ_SECRET\"",
        m = mark()
    ));
    first.env.insert("AJ_SECRET".into(), mark());
    let r1 = d.run_ok(first).await;
    assert!(
        r1.ok().contains(&mark()),
        "control: the first call ran: {r1:?}"
    );
    assert_no_process_with(&sleeper, Duration::from_secs(5)).await;
    d.await_ready().await;

    let mut second = py_req(SNOOP);
    second.env.insert("AJ_HALF".into(), MARK_A.into());
    let r2 = d.run_ok(second).await;
    let out = r2.ok();
    assert!(d.was_pooled(&r2), "control: served pooled: {r2:?}");
    // Positive control: the scan finds a marker where one is (its own
    // environment holds half of it; the whole is assembled in memory).
    assert!(out.contains("self-environ ok"), "{out}");
    assert!(out.contains("FOUND []"), "the first call's traces: {out}");
    assert!(!out.contains(MARK_B), "{out}");
    for what in ["environ", "maps", "stack", "auxv", "mem", "fds"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("init-{what} denied"))),
            "init's {what} must be unreadable: {out}"
        );
    }
    assert!(out.contains("tmp [] shm []"), "{out}");
    // Init, python, nothing else.
    let pids = out.lines().find(|l| l.starts_with("pids")).unwrap();
    assert_eq!(pids.matches(',').count(), 1, "{out}");
    d.assert_no_leftovers(Duration::from_secs(5)).await;
}

// ---------------------------------------------------- host changes

const OLD: &str = "POOL-ATTACK-OLD-1b9d";
const NEW: &str = "POOL-ATTACK-NEW-77c4";

#[tokio::test]
async fn a_denied_file_created_after_the_build_stays_unreadable() {
    let d = ShellDaemon::start_with(Policy {
        files: r#"deny = ["**/.env"]"#.into(),
        ..Policy::default()
    })
    .await;
    put_ws(&d.dirs, "free.txt", "FREE\n");
    put_ws(&d.dirs, "sub/keep", "");
    let read = "cat /workspace/sub/.env /workspace/made/.env 2>&1; cat /workspace/free.txt";
    let warm = d.sh(read).await;
    assert!(warm.stdout.contains("FREE"), "{warm:?}");
    d.await_ready().await;
    // Made on the host after the sandbox was built ahead.
    let host = put_ws(&d.dirs, "sub/.env", format!("{NEW}\n"));
    let r = d.sh(read).await;
    assert!(!r.stdout.contains(NEW), "a denied file made later: {r:?}");
    assert!(r.stdout.contains("FREE"), "control: {r:?}");
    assert_eq!(std::fs::read_to_string(&host).unwrap(), format!("{NEW}\n"));

    // Made by a command of the same agent, read by the next (pooled) one.
    d.await_ready().await;
    let w = d
        .sh(&format!(
            "mkdir -p /workspace/made && echo {OLD} > /workspace/made/.env && echo wrote"
        ))
        .await;
    assert!(w.ok().contains("wrote"), "{w:?}");
    assert!(
        d.dirs.w("made/.env").exists(),
        "control: the command made it"
    );
    d.await_ready().await;
    let r = d.sh(read).await;
    assert!(
        !r.stdout.contains(OLD) && !r.stdout.contains(NEW),
        "a denied file a command made: {r:?}"
    );
    assert!(r.stdout.contains("FREE"), "control: {r:?}");
    // With the mask list settled, the next call is pooled and sees the same.
    d.await_ready().await;
    let again = d.sh(read).await;
    assert!(d.was_pooled(&again), "control: pooled again: {again:?}");
    assert_eq!(again.stdout, r.stdout);
    d.assert_no_leftovers(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_denied_file_exchanged_in_place_with_an_allowed_one_stays_masked() {
    // RENAME_EXCHANGE keeps every path (the survey finds the same masks,
    // the shape is the same): only the take-time proof can see that the
    // mask now covers the other name.
    let d = ShellDaemon::start_with(Policy {
        files: r#"deny = ["conf/secret.txt"]"#.into(),
        ..Policy::default()
    })
    .await;
    put_ws(&d.dirs, "conf/secret.txt", format!("{OLD}\n"));
    put_ws(&d.dirs, "conf/decoy.txt", format!("{NEW}\n"));
    let read =
        "cat /workspace/conf/secret.txt 2>&1; echo; echo free=$(cat /workspace/conf/decoy.txt)";
    let warm = d.sh(read).await;
    assert!(!warm.stdout.contains(OLD), "masked before: {warm:?}");
    assert!(warm.stdout.contains(NEW), "control: {warm:?}");
    d.await_ready().await;
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        d.dirs.w("conf/secret.txt"),
        rustix::fs::CWD,
        d.dirs.w("conf/decoy.txt"),
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .expect("RENAME_EXCHANGE");
    let r = d.sh(read).await;
    // NEW now sits at the denied path: it must not be read there.
    assert!(
        !r.stdout.lines().next().unwrap_or("").contains(NEW),
        "the file now at the denied path: {r:?}"
    );
    // A path rule: the old content, now at the allowed name, is readable,
    // exactly as in a sandbox built for the call.
    assert!(r.stdout.contains(&format!("free={OLD}")), "control: {r:?}");
    assert!(!d.was_pooled(&r), "the stale sandbox must not serve: {r:?}");
    assert!(
        d.log().contains("a sandbox built ahead is stale"),
        "log:\n{}",
        d.log()
    );
    d.assert_no_leftovers(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_replaced_workspace_root_is_never_served_by_a_sandbox_built_for_the_old_one() {
    // The whole workspace renamed away and a new one made at its path
    // with the same names (the survey finds the same masks): the sandbox
    // built ahead still shows the old directory, whose mounts all look
    // right; only the root's identity tells them apart.
    let d = ShellDaemon::start_with(Policy {
        files: r#"deny = ["conf/secret.txt"]"#.into(),
        ..Policy::default()
    })
    .await;
    put_ws(&d.dirs, "conf/secret.txt", format!("{OLD}\n"));
    put_ws(&d.dirs, "which.txt", "old-root\n");
    let read = "cat /workspace/conf/secret.txt 2>&1; echo; cat /workspace/which.txt; \
                echo probe > /workspace/written.txt && echo wrote";
    let warm = d.sh(read).await;
    assert!(
        warm.stdout.contains("old-root") && !warm.stdout.contains(OLD),
        "{warm:?}"
    );
    d.await_ready().await;
    let old_root = d.dirs.outside.join("ws-old");
    std::fs::rename(&d.dirs.ws, &old_root).unwrap();
    std::fs::create_dir(&d.dirs.ws).unwrap();
    d.dirs.give_ws_to_sandbox();
    put_ws(&d.dirs, "conf/secret.txt", format!("{NEW}\n"));
    put_ws(&d.dirs, "which.txt", "new-root\n");
    std::fs::remove_file(old_root.join("written.txt")).unwrap();
    let r = d.sh(read).await;
    assert!(!r.stdout.contains(NEW), "the new root's denied file: {r:?}");
    assert!(
        r.stdout.contains("new-root"),
        "the call sees the new root: {r:?}"
    );
    assert!(!d.was_pooled(&r), "the stale sandbox must not serve: {r:?}");
    assert!(
        d.log().contains("the workspace root was replaced"),
        "log:\n{}",
        d.log()
    );
    // Nothing written into the old root (now outside the workspace).
    assert!(
        d.dirs.w("written.txt").exists(),
        "control: written in the new root"
    );
    assert!(
        !old_root.join("written.txt").exists(),
        "written outside the workspace"
    );
    d.assert_no_leftovers(Duration::from_secs(5)).await;
}

// ---------------------------------------------- a ready init, from outside

#[tokio::test]
async fn another_sandboxs_command_cannot_reach_a_ready_init() {
    let d = ShellDaemon::start().await;
    // A ready sandbox for the read-only workspace (another shape: the
    // main workspace's calls never take it).
    let ro = |script: &str| ExecRequest {
        shell: script.into(),
        workspace: "ro".into(),
        ..Default::default()
    };
    d.run_ok(ro("true")).await;
    d.await_ready().await;
    let ready = ready_inits_of(d.pid);
    assert!(!ready.is_empty(), "a sandbox built ahead: {ready:?}");
    // The newest: the attacking call's own refill may take the place of
    // the key's oldest entry of another shape (an eviction, not an attack).
    let target = *ready.iter().max().unwrap();
    let sleeper = unique_sleep(30);
    // Every way to address it: its host pid (signals, /proc), all
    // processes, its pipe or area through /proc, ptrace.
    let r = d
        .sh(&format!(
            "sleep {sleeper} & own=$!; kill -9 {target} 2>&1; kill -STOP {target} 2>&1; \
             kill -9 -1 2>/dev/null; wait $own; echo own=$?; \
             ls /proc/{target} 2>&1 | head -1; \
             cat /proc/1/task/1/children 2>&1 | head -1"
        ))
        .await;
    assert!(
        r.stdout.contains("own=137"),
        "control: kill -9 -1 hit its own: {r:?}"
    );
    assert!(
        std::fs::read_to_string(format!("/proc/{target}/stat"))
            .is_ok_and(|s| s.split_whitespace().nth(2) == Some("S")),
        "the ready init is untouched (alive, not stopped): {r:?}"
    );
    assert!(is_ready_init(target), "still waiting for a call");
    // And it still serves a call of its own shape.
    let served = d.run_ok(ro("echo served")).await;
    assert!(served.ok().contains("served"), "{served:?}");
    assert!(
        d.was_pooled(&served),
        "control: the ready one served: {served:?}"
    );
    d.assert_no_leftovers(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_command_named_like_a_ready_init_does_not_outlive_its_call() {
    // The harness (and an operator's `ps`) take `aj-ready` for a sandbox
    // built ahead; a command naming itself so must still end with its call.
    let d = ShellDaemon::start().await;
    let sleeper = unique_sleep(30);
    let r = d
        .sh(&format!(
            "cp /bin/sleep /workspace/aj-ready && (setsid /workspace/aj-ready {sleeper} &) ; \
             sleep 0.2; cat /proc/*/comm | grep -c aj-ready"
        ))
        .await;
    assert_eq!(r.ok().trim(), "1", "control: it ran under that name: {r:?}");
    assert_no_process_with(&sleeper, Duration::from_secs(5)).await;
    d.assert_no_leftovers(Duration::from_secs(5)).await;
}

// --------------------------------------------------------- daemon death

#[tokio::test]
async fn a_killed_daemon_leaves_no_sandbox_built_ahead() {
    let mut d = ShellDaemon::start().await;
    d.sh("true").await;
    d.await_ready().await;
    let ready = ready_inits_of(d.pid);
    assert!(!ready.is_empty(), "control: a sandbox was built ahead");
    let status = d
        .kill_with(rustix::process::Signal::KILL, Duration::from_secs(10))
        .await;
    assert!(!status.success(), "{status:?}");
    let gone = |pid: &u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |s| s.split_whitespace().nth(2) == Some("Z"))
    };
    assert!(
        wait_until(Duration::from_secs(5), || ready.iter().all(gone)).await,
        "ready sandboxes outlived a killed daemon: {ready:?}"
    );
}

// ------------------------------------------------------------- reload

#[tokio::test]
async fn a_reload_that_changes_uid_network_and_limits_is_in_force_for_the_next_call() {
    let dirs = ShellDirs::new();
    let before = Policy::default();
    let text = before.toml(&dirs);
    let d = ShellDaemon::launch_raw(dirs, &text, "shutdown_grace_ms = 2000\n").await;
    let look = "id -u; grep -c : /proc/net/dev; ulimit -n";
    let old = d.sh(look).await;
    let old_uid = old.ok().lines().next().unwrap().to_string();
    assert_eq!(old_uid, SANDBOX_UID.to_string(), "{old:?}");
    d.await_ready().await;
    let ready = ready_inits_of(d.pid);
    // The new policy: another uid, the network granted, another limit.
    let after = Policy {
        network: true,
        nofile: 321,
        ..Policy::default()
    };
    assert_ne!(old.ok().lines().nth(2), Some("321"), "{old:?}");
    let new_text = after.toml(&d.dirs).replacen(
        &format!("uid = {SANDBOX_UID}\ngid = {SANDBOX_GID}"),
        "uid = 54403\ngid = 54403",
        1,
    );
    assert!(new_text.contains("uid = 54403") && new_text != text);
    let reloads = |d: &ShellDaemon| d.log().matches("policy reloaded").count();
    let n = reloads(&d);
    d.dirs.write_setup(&new_text, "shutdown_grace_ms = 2000\n");
    // SAFETY: SIGHUP to the test's own daemon: a policy reload.
    unsafe { libc::kill(d.pid as i32, libc::SIGHUP) };
    assert!(
        wait_until(Duration::from_secs(10), || reloads(&d) > n).await,
        "log:\n{}",
        d.log()
    );
    let r = d.sh(look).await;
    let lines: Vec<&str> = r.ok().lines().collect();
    assert_eq!(lines[0], "54403", "the new uid: {r:?}");
    assert_eq!(lines[2], "321", "the new limit: {r:?}");
    assert!(
        !d.was_pooled(&r),
        "nothing built before the reload serves: {r:?}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || ready_inits_of(d.pid)
            .iter()
            .all(|p| !ready.contains(p)))
        .await,
        "the old sandboxes are destroyed"
    );
    // Network: the host's interfaces (more than the loopback) now.
    let old_ifaces: u32 = old.ok().lines().nth(1).unwrap().trim().parse().unwrap();
    let new_ifaces: u32 = lines[1].trim().parse().unwrap();
    assert_eq!(old_ifaces, 1, "no network before: only lo: {old:?}");
    // Positive control: pooled again after the reload, with the new policy.
    d.await_ready().await;
    let again = d.sh(look).await;
    assert!(d.was_pooled(&again), "{again:?}");
    assert_eq!(again.ok(), r.ok());
    assert!(
        new_ifaces > old_ifaces,
        "granted network shows the host's interfaces: {r:?}"
    );
}

#[tokio::test]
async fn a_killed_launcher_leaves_no_sandbox_built_ahead() {
    let d = ShellDaemon::start().await;
    d.sh("true").await;
    d.await_ready().await;
    let ready = ready_inits_of(d.pid);
    assert!(!ready.is_empty(), "control: a sandbox was built ahead");
    let launcher = host_processes()
        .into_iter()
        .find(|(pid, ppid, _)| *ppid == d.pid && is_launcher(*pid))
        .map(|(pid, _, _)| pid)
        .expect("the launcher process");
    // SAFETY: SIGKILL to the test daemon's own launcher process.
    unsafe { libc::kill(launcher as i32, libc::SIGKILL) };
    let gone = |pid: &u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |s| s.split_whitespace().nth(2) == Some("Z"))
    };
    assert!(
        wait_until(Duration::from_secs(5), || ready.iter().all(gone)).await,
        "ready sandboxes outlived their launcher: {ready:?}"
    );
    // The daemon says why it runs no command now, and keeps serving.
    let r = d.client().await.run(sh_req("echo hi")).await;
    assert_refused(r, tonic::Code::Unavailable, "UNAVAILABLE");
    assert!(std::path::Path::new(&format!("/proc/{}", d.pid)).exists());
}

// ------------------------------------------------------------- /etc

#[tokio::test]
async fn a_pooled_sandbox_shows_the_etc_a_cold_one_does() {
    // A sandbox uid the host's passwd does not name: /etc/passwd then has
    // an entry of its own for it, whose home is the command's HOME.
    let dirs = ShellDirs::new();
    let text = Policy::default().toml(&dirs).replacen(
        &format!("uid = {SANDBOX_UID}\ngid = {SANDBOX_GID}"),
        "uid = 54401\ngid = 54401",
        1,
    );
    assert!(text.contains("uid = 54401"), "the test's policy: {text}");
    let d = ShellDaemon::launch_raw(dirs, &text, "shutdown_grace_ms = 2000\n").await;
    let look = "cat /etc/passwd /etc/group; echo HOME=$HOME";
    let cold = d.sh(look).await;
    assert!(
        !d.was_pooled(&cold),
        "control: the first call is built for it"
    );
    // The passwd entry's home is the command's HOME (what getpwuid says).
    let home = cold
        .ok()
        .lines()
        .last()
        .unwrap()
        .trim_start_matches("HOME=");
    assert!(
        cold.ok()
            .lines()
            .any(|l| l.starts_with("agent:") && l.split(':').nth(5) == Some(home)),
        "{cold:?}"
    );
    d.await_ready().await;
    let warm = d.sh(look).await;
    assert!(d.was_pooled(&warm), "control: served pooled: {warm:?}");
    assert_eq!(warm.ok(), cold.ok(), "a pooled /etc is a cold one's");
}

// ------------------------------------------------------------- bounds

#[tokio::test]
async fn the_pool_bound_holds_under_a_burst_of_distinct_shapes() {
    // Four shapes of one agent (two workspaces, with and without stdin),
    // over and over: whatever replaces what, the launcher never holds more
    // than the bound.
    let d =
        ShellDaemon::start_with_config(&Policy::default(), "[pool]\nper_agent = 2\ntotal = 2\n")
            .await;
    let req = |i: usize| ExecRequest {
        shell: "cat >/dev/null; echo ok".into(),
        workspace: if i % 2 == 0 { "main" } else { "ro" }.into(),
        stdin: if i % 4 < 2 {
            Vec::new()
        } else {
            b"in".to_vec()
        },
        ..Default::default()
    };
    let mut max_seen = 0;
    let mut pooled_calls = 0;
    for round in 0..3 {
        let calls: Vec<_> = (0..8).map(|i| d.run_ok(req(i + round))).collect();
        for r in futures::future::join_all(calls).await {
            assert!(r.ok().contains("ok"), "{r:?}");
            pooled_calls += usize::from(d.was_pooled(&r));
        }
        // Sampled while the replacements are built, then once they are.
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            // Sandboxes with a process in their cgroup (a finished call's
            // empty group may linger a moment: its removal is off the
            // answer's path).
            let groups = d.launch_cgroups();
            let names: std::collections::BTreeSet<_> = groups
                .iter()
                .filter(|g| {
                    std::fs::read_to_string(g.join("cgroup.procs"))
                        .is_ok_and(|p| !p.trim().is_empty())
                })
                .filter_map(|g| g.file_name())
                .collect();
            assert!(names.len() <= 2, "more sandboxes than the bound: {names:?}");
            max_seen = max_seen.max(d.pool_ready());
        }
    }
    assert!(max_seen <= 2, "{max_seen}");
    assert!(max_seen >= 1, "control: the pool was in use");
    assert!(pooled_calls >= 1, "control: some calls were served pooled");
    d.assert_no_leftovers(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_client_choosing_home_cannot_grow_the_hosts_etc_snapshots() {
    // Each /etc snapshot is a directory on the host's /run (a tmpfs: its
    // memory). A request that may set HOME must not get one per value.
    let d = ShellDaemon::start_with(Policy {
        env: vec!["HOME".into(), "AJ_*".into()],
        ..Policy::default()
    })
    .await;
    let launcher = host_processes()
        .into_iter()
        .find(|(pid, ppid, _)| *ppid == d.pid && is_launcher(*pid))
        .map(|(pid, _, _)| pid)
        .expect("the launcher process");
    let snapshots = || {
        std::fs::read_dir("/run/agentjail-sandbox")
            .map(|r| {
                r.flatten()
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(&format!("etc-{launcher}-"))
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    d.sh("true").await;
    let base = snapshots();
    assert!(base >= 1, "control: the snapshot is where the test looks");
    for i in 0..12 {
        let mut req = sh_req("echo $HOME");
        req.env.insert("HOME".into(), format!("/tmp/home-{i}"));
        let r = d.run_ok(req).await;
        assert_eq!(r.ok().trim(), format!("/tmp/home-{i}"), "control: {r:?}");
    }
    assert!(
        snapshots() <= base + 1,
        "one host /etc snapshot per HOME a client chose: {} after {base}",
        snapshots()
    );
    d.assert_no_leftovers(Duration::from_secs(5)).await;
}
