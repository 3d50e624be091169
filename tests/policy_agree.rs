//! The policy tools and the daemon agree, and a policy cannot silently lock
//! everyone out: cases P10–P12 of shared/escape-cases.md, and `write =
//! ["src/**"]` with `create_parents`, against the real daemon.

#[path = "shell_common/mod.rs"]
mod shell_common;

use agentjail::proto::*;
use shell_common::*;
use std::time::{Duration, Instant};
use tonic::Code;

/// The `[agents.files]` table of the shipped default policy, as written.
fn shipped_files_table() -> String {
    let text = include_str!("../policies/default.toml");
    let start = text.find("[agents.files]").expect("files table") + "[agents.files]".len();
    let rest = &text[start..];
    let end = rest.find("\n[").unwrap_or(rest.len());
    rest[..end].to_string()
}

/// `policy explain` on the daemon's own policy directory: allowed?
fn explain(d: &ShellDaemon, flag: &str, path: &str) -> bool {
    let out = std::process::Command::new(BIN)
        .args(["policy", "explain", "--dir"])
        .arg(&d.dirs.policy_dir)
        .args(["--agent", AGENT, flag, path])
        .output()
        .unwrap();
    match out.status.code() {
        Some(0) => true,
        Some(1) => false,
        other => panic!("explain {flag} {path}: {other:?} {out:?}"),
    }
}

async fn policy_version(d: &ShellDaemon) -> String {
    let r = d
        .client()
        .await
        .list_dir(ListDirRequest::default())
        .await
        .expect("ListDir of the root");
    r.into_inner().info.unwrap().policy_version
}

/// P12: for every path the shipped policy has an opinion about (and a
/// directory a `dir/**` deny empties), `policy explain` and the daemon's
/// file tools decide the same.
#[tokio::test]
async fn p12_policy_explain_and_the_daemon_decide_the_same() {
    let files = format!(
        "{}\n",
        shipped_files_table().replace("deny = [", "deny = [\n  \"vault/**\",")
    );
    let d = ShellDaemon::start_with(Policy {
        files,
        ..Policy::default()
    })
    .await;
    for rel in [
        ".env",
        "sub/.env.local",
        "certs/a.pem",
        "k.key",
        "home/.ssh/id_ed25519",
        ".git/HEAD",
        ".git/config",
        ".git/hooks/pre-commit.sample",
        "vault/token",
        "src/main.rs",
        "docs/env.md",
    ] {
        put_ws(&d.dirs, rel, "x\n");
    }
    let mut c = d.client().await;
    let reads = [
        ".env",
        "sub/.env.local",
        "certs/a.pem",
        "k.key",
        "home/.ssh/id_ed25519",
        ".git/HEAD",
        ".git/config",
        ".git/hooks/pre-commit.sample",
        "vault/token",
        "src/main.rs",
        "docs/env.md",
    ];
    let mut compared = 0;
    for path in reads {
        let daemon = c
            .read_file(ReadFileRequest {
                path: path.into(),
                ..Default::default()
            })
            .await;
        assert_eq!(
            daemon.is_ok(),
            explain(&d, "--read", path),
            "read {path}: daemon {daemon:?}"
        );
        compared += 1;
    }
    for dir in [".git/hooks/", "vault/", "src/", ".git/", "home/.ssh/"] {
        let daemon = c
            .list_dir(ListDirRequest {
                path: dir.trim_end_matches('/').into(),
                ..Default::default()
            })
            .await;
        assert_eq!(
            daemon.is_ok(),
            explain(&d, "--read", dir),
            "list {dir}: daemon {daemon:?}"
        );
        compared += 1;
    }
    for path in [
        ".env",
        ".git/config",
        ".git/hooks/pre-commit",
        "vendor/x/.git",
        "vault/new",
        "newdir/a.py",
        "src/b.rs",
    ] {
        let daemon = c
            .write_file(WriteFileRequest {
                path: path.into(),
                content: b"y\n".to_vec(),
                create_parents: true,
                ..Default::default()
            })
            .await;
        assert_eq!(
            daemon.is_ok(),
            explain(&d, "--write", path),
            "write {path}: daemon {daemon:?}"
        );
        compared += 1;
    }
    assert_eq!(compared, 23);
    // The case that disagreed before: a directory a deny glob empties.
    assert!(!explain(&d, "--read", "vault/"));
}

/// `write = ["src/**"]`: `WriteFile src/a.py` with `create_parents`
/// creates `src/`, as `policy explain` says; a directory outside the write
/// globs is still refused, and so is one a deny glob names.
#[tokio::test]
async fn create_parents_makes_the_directories_an_allowed_write_needs() {
    let d = ShellDaemon::start_with(Policy {
        files: "write = [\"src/**\"]\ndeny = [\"src/secret/**\"]".into(),
        ..Policy::default()
    })
    .await;
    let mut c = d.client().await;
    let write = |path: &str| WriteFileRequest {
        path: path.into(),
        content: b"print(1)\n".to_vec(),
        create_parents: true,
        ..Default::default()
    };
    c.write_file(write("src/a.py"))
        .await
        .expect("src/ created for src/a.py");
    c.write_file(write("src/pkg/deep/b.py"))
        .await
        .expect("nested parents");
    assert_eq!(
        std::fs::read_to_string(d.dirs.w("src/pkg/deep/b.py")).unwrap(),
        "print(1)\n"
    );
    assert!(explain(&d, "--write", "src/a.py"));
    for path in ["other/a.py", "src/secret/k.py"] {
        let e = c.write_file(write(path)).await.expect_err(path);
        assert_eq!(e.code(), Code::PermissionDenied, "{path}: {}", describe(&e));
        assert!(!explain(&d, "--write", path), "{path}");
    }
    assert!(!exists(&d.dirs.w("other")) && !exists(&d.dirs.w("src/secret")));
}

/// P10 at start: an empty policy file, or one cut short before its first
/// table, is refused: the daemon does not start, and says why.
#[tokio::test]
async fn p10_an_empty_or_truncated_policy_is_refused_at_start() {
    for (what, text) in [
        ("empty", ""),
        ("truncated", "# The default policy: one local\n"),
    ] {
        let dirs = ShellDirs::new();
        dirs.write_setup(text, "shutdown_grace_ms = 2000\n");
        let status = Serve::new()
            .until_exit(
                &dirs,
                &format!("a daemon with an {what} policy kept running"),
            )
            .await;
        assert_eq!(status.code(), Some(1), "{what}");
        let log = std::fs::read_to_string(&dirs.log).unwrap();
        assert!(log.contains("defines no agents"), "{what}: {log}");
        // `policy check` says the same.
        let out = std::process::Command::new(BIN)
            .args(["policy", "check"])
            .arg(&dirs.policy_dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{what}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("defines no agents")
                || String::from_utf8_lossy(&out.stderr).contains("defines no agents"),
            "{out:?}"
        );
    }
    // Control: the same directories with a real policy start.
    let d = ShellDaemon::start().await;
    d.sh("true").await.ok();
}

/// P10 at reload: an editor truncates the file (the watch sees it), and a
/// SIGHUP follows: both refused, the old policy keeps serving.
#[tokio::test]
async fn p10_an_empty_policy_is_refused_at_reload_and_the_old_one_stays() {
    let d = ShellDaemon::start().await;
    let v1 = policy_version(&d).await;
    let file = d.dirs.policy_dir.join("test.toml");
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, "").unwrap();
    wait_for_log(&d, "defines no agents", 1).await;
    // SAFETY: signalling the daemon this test started.
    unsafe { libc::kill(d.pid as i32, libc::SIGHUP) };
    wait_for_log(&d, "defines no agents", 2).await;
    assert_eq!(
        policy_version(&d).await,
        v1,
        "the old policy stays in force"
    );
    d.sh("true").await.ok();
    // Control: a good save is taken again.
    std::fs::write(&file, format!("{good}\n# v2\n")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while policy_version(&d).await == v1 {
        assert!(
            Instant::now() < deadline,
            "a good policy was not reloaded: {}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_log(d: &ShellDaemon, text: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.log().matches(text).count() < n {
        assert!(
            Instant::now() < deadline,
            "{text:?} x{n} not logged: {}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// P11: saves and SIGHUPs racing each other: once they stop, the policy in
/// force is the last one saved, never an older one.
#[tokio::test]
async fn p11_racing_reloads_never_leave_an_older_policy_in_force() {
    let d = ShellDaemon::start().await;
    let file = d.dirs.policy_dir.join("test.toml");
    let base = std::fs::read_to_string(&file).unwrap();
    let rounds = 12;
    for i in 0..rounds {
        put_ws(&d.dirs, &format!("gen-{i}"), "x\n");
    }
    for i in 0..rounds {
        // The newest policy denies gen-<i>; each save is a rename, as
        // editors do, and a SIGHUP lands in the middle of the watch's work.
        let text = base.replacen(
            "[agents.files]\n",
            &format!("[agents.files]\ndeny = [\"gen-{i}\"]\n"),
            1,
        );
        let tmp = d.dirs.policy_dir.join(format!(".test.toml.{i}"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        // SAFETY: signalling the daemon this test started.
        unsafe { libc::kill(d.pid as i32, libc::SIGHUP) };
        tokio::time::sleep(Duration::from_millis(40 * (i % 4))).await;
    }
    let last = rounds - 1;
    let mut c = d.client().await;
    let denied = |r: &Result<tonic::Response<ReadFileResponse>, tonic::Status>| matches!(r, Err(s) if s.code() == Code::PermissionDenied);
    // Let the watch's debounce and every queued reload finish...
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = c
            .read_file(ReadFileRequest {
                path: format!("gen-{last}"),
                ..Default::default()
            })
            .await;
        if denied(&r) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the last policy never took effect: {}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...then it must stay the last one: no older read is swapped in.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 0..rounds {
        let r = c
            .read_file(ReadFileRequest {
                path: format!("gen-{i}"),
                ..Default::default()
            })
            .await;
        assert_eq!(denied(&r), i == last, "gen-{i}: {r:?}\n{}", d.log());
    }
}
