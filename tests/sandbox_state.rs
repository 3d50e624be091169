//! What a command starts from, whatever the daemon runs with (P8), and that
//! no sandbox can call the daemon back (P9), against the real daemon.

#[path = "shell_common/mod.rs"]
mod shell_common;

use shell_common::*;
use std::net::TcpListener;
use std::time::Duration;

/// A free loopback port (bound, then released for the daemon to take).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Field `n` (1-based, after the command name) of /proc/<pid>/stat.
fn stat_field(pid: u32, n: usize) -> i64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(n - 3).unwrap().parse().unwrap()
}

fn set_rlimit(resource: libc::__rlimit_resource_t, value: u64) -> libc::rlimit {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on this process with live locals.
    unsafe {
        assert_eq!(libc::getrlimit(resource, &mut old), 0);
        // Only the soft limit: raising the hard one needs CAP_SYS_RESOURCE.
        let new = libc::rlimit {
            rlim_cur: value.min(old.rlim_max),
            rlim_max: old.rlim_max,
        };
        assert_eq!(libc::setrlimit(resource, &new), 0);
    }
    old
}

/// P8: a daemon started at nice -5, oom_score_adj -500, SCHED_BATCH, a
/// real-time I/O class and raised RTPRIO/NICE limits: its commands run at
/// nice 0, oom_score_adj 0, SCHED_OTHER, no real-time I/O, and the
/// documented limits.
///
/// A negative oom_score_adj needs CAP_SYS_RESOURCE, which some hosts (this
/// project's machines among them) withhold even from root; there no daemon
/// can hold one, and the test starts the daemon at +500 instead and checks
/// the other half of the rule: a command is never easier to spare than the
/// daemon (its value is the daemon's, raised to at least 0).
#[tokio::test]
async fn p8_commands_start_from_a_clean_scheduling_state() {
    require_programs(&["python3"]);
    // What the daemon inherits from this thread (nice, policy, ioprio are
    // per thread; oom_score_adj and rlimits per process), restored below.
    // SAFETY: plain syscalls on the current thread/process.
    let old_adj = std::fs::read_to_string("/proc/self/oom_score_adj").unwrap();
    unsafe {
        assert_eq!(libc::setpriority(libc::PRIO_PROCESS, 0, -5), 0);
        let p = libc::sched_param { sched_priority: 0 };
        assert_eq!(libc::sched_setscheduler(0, libc::SCHED_BATCH, &p), 0);
        // ioprio_set(WHO_PROCESS, self, class RT level 0)
        assert_eq!(libc::syscall(libc::SYS_ioprio_set, 1, 0, 1i64 << 13), 0);
    }
    let negative = std::fs::write("/proc/self/oom_score_adj", "-500").is_ok();
    if !negative {
        eprintln!("note: no CAP_SYS_RESOURCE here: the daemon starts at oom_score_adj +500");
        std::fs::write("/proc/self/oom_score_adj", "500").unwrap();
    }
    let expected_adj = if negative { "0" } else { "500" };
    let old_rt = set_rlimit(libc::RLIMIT_RTPRIO, 50);
    let old_nice = set_rlimit(libc::RLIMIT_NICE, 40);
    let d = ShellDaemon::start().await;
    // Restore this test process.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 0);
        let p = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_OTHER, &p);
        libc::syscall(libc::SYS_ioprio_set, 1, 0, 0);
        libc::setrlimit(libc::RLIMIT_RTPRIO, &old_rt);
        libc::setrlimit(libc::RLIMIT_NICE, &old_nice);
    }
    // (Lowering it back is allowed: it only returns to this process's own
    // earlier value.)
    std::fs::write("/proc/self/oom_score_adj", old_adj.trim()).unwrap();
    // The daemon really runs that way (nice is field 19 of stat).
    assert_eq!(stat_field(d.pid, 19), -5, "daemon nice");
    let daemon_adj = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", d.pid)).unwrap();
    assert_eq!(daemon_adj.trim(), if negative { "-500" } else { "500" });

    let r = d
        .py("import os, resource, ctypes\n\
             libc = ctypes.CDLL(None, use_errno=True)\n\
             print('nice', os.nice(0))\n\
             print('oom', open('/proc/self/oom_score_adj').read().strip())\n\
             print('policy', os.sched_getscheduler(0))\n\
             print('ioclass', libc.syscall(252, 1, 0) >> 13)\n\
             for n in ['RTPRIO', 'NICE', 'MEMLOCK', 'RTTIME', 'MSGQUEUE', 'SIGPENDING', 'CORE']:\n\
             \x20   print(n, *resource.getrlimit(getattr(resource, 'RLIMIT_' + n)))\n\
             try:\n\
             \x20   os.nice(-1); print('lower', 'ok')\n\
             except OSError as e:\n\
             \x20   print('lower', 'refused')\n")
        .await;
    let out = r.ok();
    let get = |k: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k} ")))
            .unwrap_or_else(|| panic!("{k} missing: {r:?}"))
            .to_string()
    };
    assert_eq!(get("nice"), "0", "{r:?}");
    assert_eq!(get("oom"), expected_adj, "{r:?}");
    assert_eq!(get("policy"), "0", "SCHED_OTHER: {r:?}");
    assert_ne!(get("ioclass"), "1", "no real-time I/O class: {r:?}");
    assert_eq!(get("RTPRIO"), "0 0");
    assert_eq!(get("NICE"), "0 0");
    let memlock: Vec<u64> = get("MEMLOCK")
        .split(' ')
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(
        memlock[0] <= 8 << 20 && memlock[1] <= 8 << 20,
        "MEMLOCK {memlock:?}"
    );
    assert_eq!(get("RTTIME"), "0 0");
    assert_eq!(get("MSGQUEUE"), "819200 819200");
    assert_eq!(get("SIGPENDING"), "16384 16384");
    assert_eq!(get("CORE"), "0 0");
    assert_eq!(get("lower"), "refused", "{r:?}");
}

/// P9: a command whose policy grants the network cannot reach the daemon's
/// TCP listener, its metrics listener or its Unix socket; another TCP
/// service on the same loopback is reachable (positive control), and the
/// daemon's listeners are up (host-side control).
#[tokio::test]
async fn p9_a_network_granted_command_cannot_call_the_daemon() {
    require_programs(&["python3"]);
    let dirs = ShellDirs::new();
    let tcp = free_port();
    let metrics = free_port();
    let policy = Policy {
        network: true,
        ..Policy::default()
    };
    let config = format!(
        "shutdown_grace_ms = 2000\nmetrics_address = \"127.0.0.1:{metrics}\"\n\
         [tcp]\naddress = \"127.0.0.1:{tcp}\"\ninsecure = true\nagent = \"other\"\n"
    );
    let d = ShellDaemon::launch_with_config(dirs, &policy, &config, Serve::new()).await;
    // An unrelated service on the host loopback.
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let other_port = other.local_addr().unwrap().port();
    other.set_nonblocking(true).unwrap();
    // Host side: the daemon's listeners accept connections.
    for port in [tcp, metrics] {
        std::net::TcpStream::connect_timeout(
            &format!("127.0.0.1:{port}").parse().unwrap(),
            Duration::from_secs(2),
        )
        .unwrap_or_else(|e| panic!("the daemon does not listen on {port}: {e}"));
    }
    let code = format!(
        "import socket\n\
         def tcp(p):\n\
         \x20   s = socket.socket(); s.settimeout(2)\n\
         \x20   try:\n\
         \x20       s.connect(('127.0.0.1', p)); return 'connected'\n\
         \x20   except OSError as e:\n\
         \x20       return 'refused:' + str(e.errno)\n\
         def unix(p):\n\
         \x20   s = socket.socket(socket.AF_UNIX)\n\
         \x20   try:\n\
         \x20       s.connect(p); return 'connected'\n\
         \x20   except OSError as e:\n\
         \x20       return 'refused:' + str(e.errno)\n\
         print('tcp', tcp({tcp}))\n\
         print('metrics', tcp({metrics}))\n\
         print('socket', unix({sock:?}))\n\
         print('other', tcp({other_port}))\n",
        sock = d.dirs.socket.display().to_string(),
    );
    let r = d.py(&code).await;
    let out = r.ok();
    let get = |k: &str| -> &str {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k} ")))
            .unwrap_or_else(|| panic!("{k} missing: {r:?}"))
    };
    assert_eq!(
        get("other"),
        "connected",
        "control: the network is granted: {r:?}"
    );
    for k in ["tcp", "metrics", "socket"] {
        assert!(get(k).starts_with("refused"), "{k}: {r:?}");
    }
    // Nothing reached the daemon as "other" over TCP.
    let records = d.audit_records();
    assert!(
        records
            .iter()
            .all(|r| r["caller"]["transport"] != "tcp-insecure"),
        "a TCP call reached the daemon: {records:?}"
    );
}
