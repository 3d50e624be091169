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
