//! Sandboxes built ahead (issue 12, item 2; src/sandbox/pool.rs): a pooled
//! sandbox serves one call of one agent and is destroyed; it shows the
//! workspace, its masks and /etc as they are when the command starts (a
//! host rename-and-replace made after it was built sends the call to a
//! sandbox built for it); reload, idle time and a daemon stop empty the
//! pool; the pool's bound holds under a burst. The audit records say which
//! calls were served pooled (the positive controls).

#[path = "shell_common/mod.rs"]
mod shell_common;

use shell_common::*;
use std::collections::BTreeSet;
use std::time::Duration;

/// The second agent (its own uid, same workspace and shell as the tester).
const SECOND_UID: u32 = 54322;

/// The policy with a second agent, `second`, a copy of the tester.
fn two_agents(dirs: &ShellDirs, policy: &Policy) -> String {
    let t = policy.toml(dirs);
    let end = t
        .find("\n[[agents]]\nname = \"other\"")
        .expect("the other agent");
    let second = t[..end].replace(
        &format!("name = \"{AGENT}\"\nuids = [0]"),
        &format!("name = \"second\"\nuids = [{SECOND_UID}]"),
    );
    // Its copy of the tester's table, without the canary comment line.
    let second = second.split_once('\n').map(|x| x.1).unwrap_or(&second);
    format!("{t}\n{second}")
}

/// What one call's sandbox is: its cgroup (named per sandbox, never
/// reused by a daemon; namespace inode numbers are reused once freed), its
/// pid namespace, and what it finds in /tmp from earlier calls before
/// leaving its own marker.
const IDENTITY: &str = "echo cg=$(sed -n 's|.*agentjail/||p' /proc/self/cgroup | head -1) \
     pidns=$(readlink /proc/self/ns/pid) tmp=$(ls /tmp | tr '\\n' ,); \
     touch /tmp/marker-$$-$(date +%s%N)";

fn identity(r: &Ran) -> (String, String, String) {
    let out = r.ok().trim().to_string();
    let f = |k: &str| {
        out.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .unwrap_or_else(|| panic!("{k} in {out:?}"))
            .to_string()
    };
    (f("cg="), f("pidns="), f("tmp="))
}

#[tokio::test]
async fn a_pooled_sandbox_never_serves_two_calls_or_two_agents() {
    let dirs = ShellDirs::new();
    let text = two_agents(&dirs, &Policy::default());
    let d = ShellDaemon::launch_raw(dirs, &text, "shutdown_grace_ms = 2000\n").await;
    set_mode(&d.dirs.socket, 0o666);
    let second = |script: &str| {
        use std::os::unix::process::CommandExt;
        let out = std::process::Command::new(BIN)
            .args(["call", "--socket"])
            .arg(&d.dirs.socket)
            .args(["run", "--shell", script])
            .uid(SECOND_UID)
            .gid(SECOND_UID)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the second agent's call: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let mut sandboxes = BTreeSet::new();
    let host_pidns = std::fs::read_link("/proc/self/ns/pid")
        .unwrap()
        .display()
        .to_string();
    let mut served_pooled = 0;
    for i in 0..6 {
        // The tester, waiting each time for the replacement built ahead.
        if i > 0 {
            d.await_ready().await;
        }
        let r = d.sh(IDENTITY).await;
        let (cg, pidns, tmp) = identity(&r);
        assert_eq!(tmp, "", "call {i} sees no earlier call's /tmp: {r:?}");
        assert!(
            !cg.is_empty() && sandboxes.insert(cg.clone()),
            "sandbox reused: {cg}"
        );
        assert_ne!(pidns, host_pidns, "{r:?}");
        if d.was_pooled(&r) {
            served_pooled += 1;
        }
        // The second agent, between the tester's calls.
        let out = second(IDENTITY);
        let f = |k: &str| {
            out.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .unwrap_or_else(|| panic!("{k} in {out:?}"))
                .to_string()
        };
        assert_eq!(
            f("tmp="),
            "",
            "the second agent sees no /tmp of another call"
        );
        assert!(
            sandboxes.insert(f("cg=")),
            "a sandbox shared across agents: {out}"
        );
        assert_ne!(f("pidns="), host_pidns);
    }
    // Positive control: the calls after the first WERE served pooled.
    assert!(
        served_pooled >= 5,
        "sequential calls are served by sandboxes built ahead ({served_pooled} of 6)"
    );
    // And the second agent's were too, never from the tester's pool: each
    // record names its agent, and both agents had pooled calls.
    let records = d.audit_records();
    let pooled_by = |agent: &str| {
        records
            .iter()
            .filter(|r| r["agent"] == agent && r["phase"].is_null())
            .filter(|r| r["enforced"]["pooled"] == true)
            .count()
    };
    assert!(
        pooled_by(AGENT) >= 5 && pooled_by("second") >= 4,
        "{records:#?}"
    );
    d.assert_no_leftovers(Duration::from_secs(5)).await;
}

// ------------------------------------------------------------ freshness

const OLD: &str = "POOL-OLD-SECRET-91c2";
const NEW: &str = "POOL-NEW-SECRET-3d7e";

fn deny_policy() -> Policy {
    Policy {
        files: r#"deny = ["conf/db/secret.txt", "vault/**"]"#.into(),
        ..Policy::default()
    }
}

/// The command's whole view of the workspace: each path, its type, and
/// whether it is readable or writable (content never printed).
const VIEW: &str = "cd /workspace && find . -mindepth 1 | sort | while read p; do \
     r=no; cat \"$p\" >/dev/null 2>&1 && r=yes; [ -d \"$p\" ] && ls \"$p\" >/dev/null 2>&1 && r=yes; \
     w=no; [ -w \"$p\" ] && w=yes; echo \"$p $(stat -c %F \"$p\") r=$r w=$w\"; done; \
     cat conf/db/secret.txt vault/k 2>/dev/null; cat free.txt";

fn fresh_workspace(dirs: &ShellDirs) {
    put_ws(dirs, "conf/db/secret.txt", format!("{OLD}\n"));
    put_ws(dirs, "vault/k", format!("{OLD}\n"));
    put_ws(dirs, ".git/config", "[core]\n");
    put_ws(dirs, "free.txt", "FREE\n");
}

/// A host change made after a sandbox was built ahead for the workspace:
/// the call then gets a sandbox built for it, which shows the change as a
/// cold one does; the next call is pooled again and shows the same.
async fn host_change_after_build(name: &str, change: impl FnOnce(&ShellDirs)) {
    let d = ShellDaemon::start_with(deny_policy()).await;
    fresh_workspace(&d.dirs);
    let warm = d.sh(VIEW).await;
    assert!(
        !warm.stdout.contains(OLD),
        "{name}: masked before: {warm:?}"
    );
    d.await_ready().await;

    change(&d.dirs);
    let r = d.sh(VIEW).await;
    assert!(
        !r.stdout.contains(NEW) && !r.stdout.contains(OLD),
        "{name}: the new file at a denied path is unreadable: {r:?}"
    );
    assert!(r.stdout.contains("FREE"), "{name}: control: {r:?}");
    assert!(
        !d.was_pooled(&r),
        "{name}: the stale sandbox built ahead must not serve: {r:?}\nlog:\n{}",
        d.log()
    );
    // Refused by the take-time proof (same shape: the survey found the
    // same paths), not for want of a sandbox.
    assert!(
        d.log().contains("a sandbox built ahead is stale"),
        "{name}: log:\n{}",
        d.log()
    );
    // The replacement, built after the change, serves the next call (a
    // positive control that pooling was on) with the same view as the
    // sandbox built for the call.
    d.await_ready().await;
    let again = d.sh(VIEW).await;
    assert!(d.was_pooled(&again), "{name}: pooled again: {again:?}");
    assert_eq!(
        again.stdout, r.stdout,
        "{name}: a pooled view is a cold one's"
    );
    d.assert_no_leftovers(Duration::from_secs(5)).await;
}

fn put_new(dirs: &ShellDirs, rel: &str) {
    put_ws(dirs, rel, format!("{NEW}\n"));
}

#[tokio::test]
async fn a_denied_file_renamed_away_and_replaced_stays_masked() {
    host_change_after_build("file", |dirs| {
        std::fs::rename(dirs.w("conf/db/secret.txt"), dirs.outside.join("moved")).unwrap();
        put_new(dirs, "conf/db/secret.txt");
    })
    .await;
}

#[tokio::test]
async fn a_replaced_git_dir_stays_read_only() {
    host_change_after_build("git", |dirs| {
        std::fs::rename(dirs.w(".git"), dirs.outside.join("git-old")).unwrap();
        put_ws(dirs, ".git/config", "[core]\n");
    })
    .await;
}

#[tokio::test]
async fn a_masked_directory_renamed_away_and_replaced_stays_masked() {
    host_change_after_build("vault", |dirs| {
        std::fs::rename(dirs.w("vault"), dirs.outside.join("vault-old")).unwrap();
        put_new(dirs, "vault/k");
    })
    .await;
}

#[tokio::test]
async fn a_directory_between_a_mask_and_the_root_replaced_keeps_the_mask() {
    host_change_after_build("ancestor", |dirs| {
        std::fs::rename(dirs.w("conf"), dirs.outside.join("conf-old")).unwrap();
        put_new(dirs, "conf/db/secret.txt");
    })
    .await;
}

#[tokio::test]
async fn a_replaced_git_dir_is_read_only_in_the_call() {
    // The write probe itself: `.git` of the call is read-only, a control
    // file elsewhere is writable.
    let d = ShellDaemon::start_with(deny_policy()).await;
    fresh_workspace(&d.dirs);
    d.sh("true").await;
    d.await_ready().await;
    std::fs::rename(d.dirs.w(".git"), d.dirs.outside.join("git-old")).unwrap();
    put_ws(&d.dirs, ".git/config", "[core]\n");
    let r = d
        .sh("touch /workspace/.git/x && echo git-written; touch /workspace/ok && echo ok-written")
        .await;
    assert!(!r.stdout.contains("git-written"), "{r:?}");
    assert!(r.stdout.contains("ok-written"), "control: {r:?}");
    assert!(!d.dirs.w(".git/x").exists(), "nothing written on the host");
}

// ------------------------------------------------------------ emptying

/// Sandboxes (by name) with a per-launch cgroup in any hierarchy.
fn sandboxes_with_groups(d: &ShellDaemon) -> usize {
    let names: BTreeSet<_> = d
        .launch_cgroups()
        .into_iter()
        .filter_map(|g| g.file_name().map(|n| n.to_owned()))
        .collect();
    names.len()
}

#[tokio::test]
async fn a_reload_empties_the_pool() {
    let d = ShellDaemon::start().await;
    d.sh("true").await;
    d.await_ready().await;
    let before = ready_inits_of(d.pid);
    // SAFETY: SIGHUP to the test's own daemon: a policy reload.
    unsafe { libc::kill(d.pid as i32, libc::SIGHUP) };
    assert!(
        wait_until(Duration::from_secs(5), || {
            ready_inits_of(d.pid).iter().all(|p| !before.contains(p))
        })
        .await,
        "the sandboxes built before the reload are destroyed; log:\n{}",
        d.log()
    );
    // Their cgroups too (nothing but the pool's own may remain).
    d.assert_no_leftovers(Duration::from_secs(5)).await;
    let groups_of = |pids: &[u32]| {
        d.launch_cgroups()
            .into_iter()
            .filter(|g| {
                let procs = std::fs::read_to_string(g.join("cgroup.procs")).unwrap_or_default();
                procs
                    .lines()
                    .any(|l| pids.iter().any(|p| l.trim() == p.to_string()))
            })
            .count()
    };
    assert_eq!(groups_of(&before), 0);
    // The first call after it is built for it, not taken from before.
    let r = d.sh("true").await;
    assert!(!d.was_pooled(&r), "{r:?}");
}

#[tokio::test]
async fn an_idle_pool_empties_itself() {
    let d = ShellDaemon::start_with_config(&Policy::default(), "[pool]\nidle_ms = 300\n").await;
    d.sh("true").await;
    d.await_ready().await;
    assert!(
        wait_until(Duration::from_secs(5), || d.pool_ready() == 0
            && d.launch_cgroups().is_empty())
        .await,
        "idle sandboxes built ahead are destroyed with their cgroups: {:?}",
        d.launch_cgroups()
    );
    d.assert_no_leftovers(Duration::from_secs(3)).await;
}

#[tokio::test]
async fn the_pool_bound_holds_under_a_burst() {
    let d =
        ShellDaemon::start_with_config(&Policy::default(), "[pool]\nper_agent = 2\ntotal = 3\n")
            .await;
    // Measured between bursts: a claimed sandbox also names itself
    // `aj-ready` for the instant before its command arrives.
    let mut max_seen = 0;
    for _ in 0..3 {
        let calls: Vec<_> = (0..8).map(|_| d.sh("true")).collect();
        for r in futures::future::join_all(calls).await {
            assert_eq!(r.code(), Some(0), "{r:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        max_seen = max_seen.max(d.pool_ready());
        assert!(sandboxes_with_groups(&d) <= 2, "{:?}", d.launch_cgroups());
    }
    assert!(
        max_seen <= 2,
        "at most per_agent ready sandboxes: {max_seen}"
    );
    assert!(max_seen >= 1, "control: the pool was in use");
    d.assert_no_leftovers(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_daemon_stop_leaves_no_sandbox_built_ahead() {
    let mut d = ShellDaemon::start().await;
    d.sh("true").await;
    d.await_ready().await;
    let ready = ready_inits_of(d.pid);
    assert!(!ready.is_empty());
    let groups = d.launch_cgroups();
    assert!(!groups.is_empty(), "control: the pool's groups exist");
    let status = d
        .kill_with(rustix::process::Signal::TERM, Duration::from_secs(10))
        .await;
    assert!(status.success(), "{status:?}");
    for pid in ready {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists() || !is_ready_init(pid),
            "ready sandbox {pid} outlived the daemon"
        );
    }
    let left: Vec<_> = groups.iter().filter(|g| g.exists()).collect();
    assert!(left.is_empty(), "{left:?}");
}
