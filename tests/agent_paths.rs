//! Paths as agents give them: `/workspace/…` (where commands see the
//! workspace) and absolute host paths beneath the workspace root reach the
//! same file as the relative path, through every file tool and `policy
//! explain`; every other absolute path stays INVALID_ARGUMENT, and the
//! hostile forms reach nothing outside.

mod common;

use agentjail::proto::*;
use common::*;
use std::process::{Command, Stdio};

#[tokio::test]
async fn every_file_tool_accepts_the_sandbox_and_host_forms() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    let host = |rel: &str| d.dirs.ws.join(rel).display().to_string();

    let mut w = write_req("/workspace/notes/plan.md", "step one\n");
    w.create_parents = true;
    let written = ok(c.write_file(w).await);
    assert_eq!(written.path, "notes/plan.md");
    assert_eq!(get(&d.dirs.w("notes/plan.md")), "step one\n");

    let read = ok(c.read_file(read_req(&host("notes/plan.md"))).await);
    assert_eq!(
        (read.path.as_str(), read.text.as_str()),
        ("notes/plan.md", "step one\n")
    );
    ok(
        c.edit_file(edit_req("/workspace/notes/plan.md", "one", "two"))
            .await,
    );
    assert_eq!(get(&d.dirs.w("notes/plan.md")), "step two\n");
    let stat = ok(c.stat(stat_req(&host("notes"))).await);
    assert_eq!(
        (stat.path.as_str(), stat.kind),
        ("notes", EntryKind::Dir as i32)
    );
    let listed = ok(c.list_dir(list_req("/workspace/notes")).await);
    assert_eq!(listed.entries.len(), 1, "{listed:?}");
    let mut glob = glob_req("*.md");
    glob.path = "/workspace/notes".into();
    assert_eq!(
        ok(c.glob(glob).await).paths,
        vec!["notes/plan.md".to_string()]
    );
    let mut grep = grep_req("two");
    grep.path = host("notes");
    assert_eq!(
        ok(c.grep(grep).await).files,
        vec!["notes/plan.md".to_string()]
    );
    ok(c.make_dir(mkdir_req("/workspace/done", false)).await);
    ok(
        c.r#move(move_req("/workspace/notes/plan.md", &host("done/plan.md")))
            .await,
    );
    assert_eq!(get(&d.dirs.w("done/plan.md")), "step two\n");
    ok(c.remove(remove_req("/workspace/notes", false)).await);
    assert!(!exists(&d.dirs.w("notes")));
    // The root itself, in both forms, where a directory is expected.
    for root in ["/workspace".to_string(), d.dirs.ws.display().to_string()] {
        let stat = ok(c.stat(stat_req(&root)).await);
        assert_eq!(stat.kind, EntryKind::Dir as i32, "{root}");
    }
    // A named workspace maps against its own root.
    let mut ro = read_req(&d.dirs.ro.join("readme.txt").display().to_string());
    ro.workspace = "ro".into();
    assert_eq!(ok(c.read_file(ro).await).text, "read-only content\n");
    d.dirs.assert_outside_untouched();
}

#[tokio::test]
async fn hostile_absolute_forms_reach_nothing() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    put(&d.dirs.w(".env"), "TOKEN=1\n");
    put(&d.dirs.w("plain.txt"), "plain\n");
    let root = d.dirs.ws.display().to_string();
    let outside = [
        ("/workspace/../etc/passwd", "PATH_OUTSIDE_WORKSPACE"),
        ("/workspace/a/../../etc/passwd", "PATH_OUTSIDE_WORKSPACE"),
        (
            &format!("{root}/../outside/secret.txt"),
            "PATH_OUTSIDE_WORKSPACE",
        ),
        ("/workspacex/a", "INVALID_ARGUMENT"),
        ("/etc/passwd", "INVALID_ARGUMENT"),
        (&format!("{root}-evil/f.txt"), "INVALID_ARGUMENT"),
        (
            &d.dirs.o("secret.txt").display().to_string(),
            "INVALID_ARGUMENT",
        ),
        // Another workspace's root is not this workspace's.
        (
            &d.dirs.ro.join("readme.txt").display().to_string(),
            "INVALID_ARGUMENT",
        ),
    ];
    for (path, reason) in outside {
        let read = c.read_file(read_req(path)).await;
        let status = assert_reason(read, reason);
        assert!(!status.message().contains("TOP-SECRET"), "{path}");
        assert_reason(c.write_file(write_req(path, "x")).await, reason);
        assert_reason(c.stat(stat_req(path)).await, reason);
        assert_reason(c.list_dir(list_req(path)).await, reason);
    }
    let status = assert_reason(
        c.read_file(read_req("/etc/passwd")).await,
        "INVALID_ARGUMENT",
    );
    assert!(
        status.message().contains("/workspace"),
        "the message names the accepted forms: {}",
        status.message()
    );
    // Deny globs hold whatever form names the file; the control reads.
    assert_reason(
        c.read_file(read_req("/workspace/.env")).await,
        "POLICY_DENIED",
    );
    assert_reason(
        c.read_file(read_req(&format!("{root}/.env"))).await,
        "POLICY_DENIED",
    );
    assert_reason(
        c.read_file(read_req("/workspace/./x/../.env")).await,
        "POLICY_DENIED",
    );
    assert_eq!(
        ok(c.read_file(read_req("/workspace/plain.txt")).await).text,
        "plain\n"
    );
    assert!(!std::path::Path::new("/workspacex").exists());
    assert!(!exists(&d.dirs.root.join("ws-evil").join("x")));
    d.dirs.assert_outside_untouched();
}

#[test]
fn policy_explain_accepts_the_same_forms() {
    let dirs = Dirs::new();
    dirs.write_setup(&standard_policy(&dirs), "");
    let explain = |path: &str| {
        let out = Command::new(BIN)
            .args(["policy", "explain", "--dir"])
            .arg(&dirs.policy_dir)
            .args(["--agent", AGENT, "--read", path])
            .stdin(Stdio::null())
            .output()
            .expect("run agentjail");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let root = dirs.ws.display().to_string();
    for allowed in ["/workspace/src/main.rs", &format!("{root}/src/main.rs")] {
        let (code, out) = explain(allowed);
        assert_eq!(code, Some(0), "{allowed}: {out}");
        assert!(out.contains("decision: allow"), "{allowed}: {out}");
    }
    let (_, out) = explain("/workspace/.env");
    assert!(out.contains("decision: deny"), "{out}");
    for refused in [
        "/workspace/../etc/passwd",
        "/workspacex/a",
        &format!("{root}-evil/f.txt"),
    ] {
        let (code, out) = explain(refused);
        assert_ne!(code, Some(0), "{refused}: {out}");
        assert!(!out.contains("decision: allow"), "{refused}: {out}");
    }
}
