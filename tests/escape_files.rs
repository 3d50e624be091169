//! Confinement of the file tools: cases F1-F15 of shared/escape-cases.md.
//!
//! Each test asserts that the attempt failed with the right reason AND that
//! nothing happened on the host (sentinels in `outside/` and `ws-evil/`
//! unchanged, nothing created there, no outside content returned), with a
//! positive control beside it so a test cannot pass because everything is
//! broken.

mod common;

use agentjail::proto::*;
use common::*;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

type Client = agentjail::proto::tool_sandbox_client::ToolSandboxClient<Channel>;

/// Asserts no response text or data contains the outside secret.
fn assert_no_secret(what: &str, r: &ReadFileResponse) {
    let content = content_of(r);
    assert!(
        !String::from_utf8_lossy(&content).contains(SECRET.trim_end()),
        "{what}: outside content came back"
    );
}

/// Tries every tool on `path` and asserts each is refused with one of
/// `reasons`, then that nothing outside changed.
async fn every_tool_refuses(d: &Daemon, c: &mut Client, path: &str, reasons: &[&str]) {
    let ctx = |tool: &str| format!("{tool} {path:?}");
    let r = c.read_file(read_req(path)).await;
    if let Ok(resp) = &r {
        assert_no_secret(&ctx("ReadFile"), resp.get_ref());
    }
    assert_reason_in(r, reasons);
    assert_reason_in(c.read_file(read_bytes(path, 0, 100)).await, reasons);
    assert_reason_in(c.write_file(write_req(path, "PWNED")).await, reasons);
    let mut req = write_req(path, "PWNED");
    req.create_parents = true;
    assert_reason_in(c.write_file(req).await, reasons);
    let mut req = write_req(path, "PWNED");
    req.mode = WriteMode::Overwrite as i32;
    assert_reason_in(c.write_file(req).await, reasons);
    assert_reason_in(c.edit_file(edit_req(path, "TOP", "PWNED")).await, reasons);
    assert_reason_in(c.list_dir(list_req(path)).await, reasons);
    let mut req = grep_req("TOP");
    req.path = path.into();
    assert_reason_in(c.grep(req).await, reasons);
    let mut req = glob_req("*");
    req.path = path.into();
    assert_reason_in(c.glob(req).await, reasons);
    assert_reason_in(c.stat(stat_req(path)).await, reasons);
    assert_reason_in(c.make_dir(mkdir_req(path, true)).await, reasons);
    assert_reason_in(c.remove(remove_req(path, true)).await, reasons);
    assert_reason_in(c.r#move(move_req(path, "stolen.txt")).await, reasons);
    assert!(!exists(&d.dirs.w("stolen.txt")), "{}", ctx("Move"));
    put(&d.dirs.w("mine.txt"), "mine");
    let mut req = move_req("mine.txt", path);
    req.overwrite = true;
    assert_reason_in(c.r#move(req).await, reasons);
    assert_eq!(get(&d.dirs.w("mine.txt")), "mine", "{}", ctx("Move to"));
    d.dirs.assert_outside_untouched();
}

// ---------------------------------------------------------------------- F1

#[tokio::test]
async fn f1_dotdot_traversal_is_refused_at_start_middle_and_end() {
    let d = Daemon::start().await;
    put(&d.dirs.w("a.txt"), "inside\n");
    put(&d.dirs.w("sub/b.txt"), "inside b\n");
    let mut c = d.client().await;
    for path in [
        "../outside/secret.txt",
        "..",
        "../",
        "sub/../../outside/secret.txt",
        "sub/../..",
        "sub/..//../outside/secret.txt",
        "./../outside/secret.txt",
        "sub/x/../../../outside/secret.txt",
        "../ws/a.txt",
        "../ws-evil/f.txt",
        "sub/../../ws-evil",
    ] {
        every_tool_refuses(&d, &mut c, path, &["PATH_OUTSIDE_WORKSPACE"]).await;
    }
    // `..` in a Move's destination.
    assert_reason(
        c.r#move(move_req("a.txt", "../outside/a.txt")).await,
        "PATH_OUTSIDE_WORKSPACE",
    );
    assert_reason(
        c.r#move(move_req("a.txt", "sub/../../a.txt")).await,
        "PATH_OUTSIDE_WORKSPACE",
    );
    assert_eq!(get(&d.dirs.w("a.txt")), "inside\n");
    assert!(!exists(&d.dirs.root.join("a.txt")));
    d.dirs.assert_outside_untouched();

    // Positive controls: `..` that stays inside is fine.
    assert_eq!(
        ok(c.read_file(read_req("sub/../a.txt")).await).text,
        "inside\n"
    );
    assert_eq!(
        ok(c.read_file(read_req("sub/./b.txt")).await).text,
        "inside b\n"
    );
    assert_eq!(ok(c.read_file(read_req("./a.txt")).await).text, "inside\n");
    let r = ok(c.list_dir(list_req("sub/..")).await);
    assert!(r.entries.iter().any(|e| e.path == "a.txt"));
    ok(c.write_file(write_req("sub/../new.txt", "n")).await);
    assert_eq!(get(&d.dirs.w("new.txt")), "n");
}

// ---------------------------------------------------------------------- F2

#[tokio::test]
async fn f2_absolute_paths_are_refused() {
    let d = Daemon::start().await;
    put(&d.dirs.w("a.txt"), "inside\n");
    let mut c = d.client().await;
    let outside_abs = d.dirs.o("secret.txt").display().to_string();
    let outside_new = d.dirs.o("new.txt").display().to_string();
    let climbing = format!("{}/../outside/secret.txt", d.dirs.ws.display());
    // Absolute paths under the workspace root or /workspace name the
    // workspace itself (tests/agent_paths.rs); everything else is refused.
    for path in [
        "/etc/passwd",
        "/",
        "//etc/passwd",
        "/workspace/../outside/secret.txt",
        climbing.as_str(),
        outside_abs.as_str(),
        outside_new.as_str(),
    ] {
        every_tool_refuses(
            &d,
            &mut c,
            path,
            &["INVALID_ARGUMENT", "PATH_OUTSIDE_WORKSPACE"],
        )
        .await;
    }
    assert_reason_in(
        c.r#move(move_req("a.txt", &outside_new)).await,
        &["INVALID_ARGUMENT", "PATH_OUTSIDE_WORKSPACE"],
    );
    assert_eq!(get(&d.dirs.w("a.txt")), "inside\n");
    // Glob patterns cannot be absolute or climb out either.
    for pattern in ["/etc/*", "../outside/*", "../**", "/**/secret.txt"] {
        let r = c.glob(glob_req(pattern)).await;
        match r {
            Ok(resp) => {
                let resp = resp.into_inner();
                assert!(
                    resp.paths.is_empty(),
                    "glob {pattern:?} returned outside paths: {:?}",
                    resp.paths
                );
            }
            Err(s) => assert!(
                matches!(
                    agentjail::error::reason_of(&s).as_deref(),
                    Some("INVALID_ARGUMENT" | "PATH_OUTSIDE_WORKSPACE")
                ),
                "glob {pattern:?}: {}",
                describe(&s)
            ),
        }
    }
    d.dirs.assert_outside_untouched();
    assert!(
        std::fs::read_to_string("/etc/passwd")
            .unwrap()
            .contains("root")
    );
    // Positive control.
    assert_eq!(ok(c.read_file(read_req("a.txt")).await).text, "inside\n");
}

// ---------------------------------------------------------------------- F3

#[tokio::test]
async fn f3_prefix_sibling_is_outside() {
    let d = Daemon::start().await;
    put(&d.dirs.w("f.txt"), "real ws\n");
    // A relative symlink to the sibling, which a string-prefix check on the
    // resolved path would accept.
    symlink("../ws-evil/f.txt", &d.dirs.w("to-sibling"));
    symlink("../ws-evil", &d.dirs.w("sibling-dir"));
    let abs_link = d.dirs.sibling.join("f.txt");
    symlink(&abs_link, &d.dirs.w("abs-to-sibling"));
    let mut c = d.client().await;
    every_tool_refuses(&d, &mut c, "../ws-evil/f.txt", &["PATH_OUTSIDE_WORKSPACE"]).await;
    let sibling_abs = abs_link.display().to_string();
    every_tool_refuses(
        &d,
        &mut c,
        &sibling_abs,
        &["INVALID_ARGUMENT", "PATH_OUTSIDE_WORKSPACE"],
    )
    .await;
    for path in ["to-sibling", "abs-to-sibling", "sibling-dir/f.txt"] {
        let r = c.read_file(read_req(path)).await;
        assert_reason(r, "SYMLINK_ESCAPE");
        assert_reason(
            c.write_file(write_req(path, "PWNED")).await,
            "SYMLINK_ESCAPE",
        );
    }
    assert_reason(c.list_dir(list_req("sibling-dir")).await, "SYMLINK_ESCAPE");
    d.dirs.assert_outside_untouched();
    // Positive control: the real workspace's f.txt.
    assert_eq!(ok(c.read_file(read_req("f.txt")).await).text, "real ws\n");
}

// ---------------------------------------------------------------------- F4

#[tokio::test]
async fn f4_symlink_to_an_outside_file_is_refused_by_every_tool() {
    let d = Daemon::start().await;
    put(&d.dirs.w("a.txt"), "inside\n");
    symlink(d.dirs.o("secret.txt"), &d.dirs.w("abs-link"));
    symlink("../outside/secret.txt", &d.dirs.w("rel-link"));
    symlink("a.txt", &d.dirs.w("good-link"));
    let mut c = d.client().await;
    for link in ["abs-link", "rel-link"] {
        let r = c.read_file(read_req(link)).await;
        if let Ok(resp) = &r {
            assert_no_secret(link, resp.get_ref());
        }
        assert_reason(r, "SYMLINK_ESCAPE");
        assert_reason(c.read_file(read_bytes(link, 0, 10)).await, "SYMLINK_ESCAPE");
        assert_reason(
            c.write_file(write_req(link, "PWNED")).await,
            "SYMLINK_ESCAPE",
        );
        let mut req = write_req(link, "PWNED");
        req.mode = WriteMode::Overwrite as i32;
        assert_reason(c.write_file(req).await, "SYMLINK_ESCAPE");
        assert_reason(
            c.edit_file(edit_req(link, "TOP", "PWNED")).await,
            "SYMLINK_ESCAPE",
        );
        let mut req = grep_req("TOP");
        req.path = link.into();
        assert_reason(c.grep(req).await, "SYMLINK_ESCAPE");
        assert_reason(c.stat(stat_req(link)).await, "SYMLINK_ESCAPE");
        d.dirs.assert_outside_untouched();
        // The link itself is still there, still a link.
        assert!(
            std::fs::symlink_metadata(d.dirs.w(link))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // Describing the link itself does not follow it.
        let mut req = stat_req(link);
        req.no_follow = true;
        let r = ok(c.stat(req).await);
        assert_eq!(r.kind, EntryKind::Symlink as i32);
    }
    // Moving the link itself around inside the workspace does not touch the
    // outside file; using it afterwards is still refused.
    let r = c.r#move(move_req("rel-link", "renamed-link")).await;
    if r.is_ok() {
        assert_reason(
            c.read_file(read_req("renamed-link")).await,
            "SYMLINK_ESCAPE",
        );
    }
    d.dirs.assert_outside_untouched();
    // Positive control: a relative symlink that stays inside.
    let r = ok(c.read_file(read_req("good-link")).await);
    assert_eq!(r.text, "inside\n");
    assert_eq!(r.path, "a.txt", "the resolved path is reported");
    ok(c.write_file(write_req("good-link", "via link\n")).await);
    assert_eq!(get(&d.dirs.w("a.txt")), "via link\n");
}

#[tokio::test]
async fn f4_symlink_to_an_outside_dir_is_refused_by_every_tool() {
    let d = Daemon::start().await;
    put(&d.dirs.w("a.txt"), "inside\n");
    symlink(&d.dirs.outside, &d.dirs.w("abs-dir"));
    symlink("../outside", &d.dirs.w("rel-dir"));
    let mut c = d.client().await;
    for link in ["abs-dir", "rel-dir"] {
        assert_reason(c.list_dir(list_req(link)).await, "SYMLINK_ESCAPE");
        let mut req = grep_req("TOP");
        req.path = link.into();
        assert_reason(c.grep(req).await, "SYMLINK_ESCAPE");
        let mut req = glob_req("*");
        req.path = link.into();
        assert_reason(c.glob(req).await, "SYMLINK_ESCAPE");
        assert_reason(c.stat(stat_req(link)).await, "SYMLINK_ESCAPE");
        every_tool_refuses(
            &d,
            &mut c,
            &format!("{link}/secret.txt"),
            &["SYMLINK_ESCAPE"],
        )
        .await;
        every_tool_refuses(&d, &mut c, &format!("{link}/new.txt"), &["SYMLINK_ESCAPE"]).await;
        every_tool_refuses(&d, &mut c, &format!("{link}/sub"), &["SYMLINK_ESCAPE"]).await;
        // Moving a workspace file out through the link.
        assert_reason(
            c.r#move(move_req("a.txt", &format!("{link}/a.txt"))).await,
            "SYMLINK_ESCAPE",
        );
        assert_eq!(get(&d.dirs.w("a.txt")), "inside\n");
        // Recursive remove of the link must not delete the outside tree.
        let _ = c.remove(remove_req(link, true)).await;
        d.dirs.assert_outside_untouched();
        if !exists(&d.dirs.w(link)) {
            // It removed the link itself: put it back for the next round.
            symlink(
                if link == "abs-dir" {
                    d.dirs.outside.clone()
                } else {
                    "../outside".into()
                },
                &d.dirs.w(link),
            );
        }
    }
    assert!(!exists(&d.dirs.o("a.txt")));
    assert_eq!(ok(c.read_file(read_req("a.txt")).await).text, "inside\n");
}

// ---------------------------------------------------------------------- F5

#[tokio::test]
async fn f5_symlinked_dir_in_the_middle_of_a_path() {
    let d = Daemon::start().await;
    put(&d.dirs.w("real/inner/file.txt"), "inside\n");
    std::fs::create_dir_all(d.dirs.w("deep/er")).unwrap();
    symlink("../../../outside", &d.dirs.w("deep/er/mid"));
    symlink("../real", &d.dirs.w("deep/good"));
    let mut c = d.client().await;
    for path in [
        "deep/er/mid/secret.txt",
        "deep/er/mid/sub/deep-secret.txt",
        "deep/er/mid/sub/new.txt",
        "deep/er/mid/newdir/new.txt",
        "deep/er/mid/../mid/secret.txt",
    ] {
        every_tool_refuses(&d, &mut c, path, &["SYMLINK_ESCAPE"]).await;
    }
    assert!(!exists(&d.dirs.o("newdir")));
    // Positive control: a symlinked dir that stays inside.
    let r = ok(c.read_file(read_req("deep/good/inner/file.txt")).await);
    assert_eq!(r.text, "inside\n");
    assert_eq!(r.path, "real/inner/file.txt");
    let mut req = write_req("deep/good/inner/new/x.txt", "x");
    req.create_parents = true;
    ok(c.write_file(req).await);
    assert_eq!(get(&d.dirs.w("real/inner/new/x.txt")), "x");
    d.dirs.assert_outside_untouched();
}

// ---------------------------------------------------------------------- F6

#[tokio::test]
async fn f6_dangling_symlink_as_write_target_creates_nothing_outside() {
    let d = Daemon::start().await;
    let target_abs = d.dirs.o("created-by-daemon.txt");
    symlink(&target_abs, &d.dirs.w("dangling-abs"));
    symlink(
        "../outside/created-by-daemon.txt",
        &d.dirs.w("dangling-rel"),
    );
    symlink("../outside/newdir/x.txt", &d.dirs.w("dangling-deep"));
    symlink("../outside/newdir", &d.dirs.w("dangling-dir"));
    let mut c = d.client().await;
    for link in ["dangling-abs", "dangling-rel", "dangling-deep"] {
        for mode in [
            WriteMode::Upsert,
            WriteMode::CreateOnly,
            WriteMode::Overwrite,
            WriteMode::Unspecified,
        ] {
            let mut req = write_req(link, "PWNED");
            req.mode = mode as i32;
            req.create_parents = true;
            let r = c.write_file(req).await;
            assert!(r.is_err(), "WriteFile {link} {mode:?} succeeded");
            assert!(
                !exists(&target_abs),
                "{link} {mode:?}: outside file created"
            );
            assert!(
                !exists(&d.dirs.o("newdir")),
                "{link} {mode:?}: outside dir created"
            );
        }
        let mut req = write_req(link, "PWNED");
        req.mode = WriteMode::CreateOnly as i32;
        assert_reason_in(
            c.write_file(req).await,
            &["SYMLINK_ESCAPE", "ALREADY_EXISTS"],
        );
        assert_reason(
            c.write_file(write_req(link, "PWNED")).await,
            "SYMLINK_ESCAPE",
        );
        assert_reason_in(
            c.edit_file(edit_req(link, "a", "b")).await,
            &["SYMLINK_ESCAPE", "NOT_FOUND"],
        );
        let _ = c.make_dir(mkdir_req(link, true)).await;
        put(&d.dirs.w("mine.txt"), "mine");
        let mut req = move_req("mine.txt", link);
        req.overwrite = true;
        let _ = c.r#move(req).await;
        assert!(!exists(&target_abs));
    }
    let mut req = write_req("dangling-dir/x.txt", "PWNED");
    req.create_parents = true;
    assert_reason(c.write_file(req).await, "SYMLINK_ESCAPE");
    assert_reason(
        c.make_dir(mkdir_req("dangling-dir/a/b", true)).await,
        "SYMLINK_ESCAPE",
    );
    let _ = c.make_dir(mkdir_req("dangling-dir", true)).await;
    assert!(!exists(&target_abs));
    assert!(!exists(&d.dirs.o("newdir")));
    d.dirs.assert_outside_untouched();
    // Positive control: a plain new file.
    let mut req = write_req("fresh.txt", "ok");
    req.mode = WriteMode::CreateOnly as i32;
    ok(c.write_file(req).await);
    assert_eq!(get(&d.dirs.w("fresh.txt")), "ok");
}

// ---------------------------------------------------------------------- F7

#[tokio::test]
async fn f7_symlink_chain_that_leaves_and_reenters() {
    let d = Daemon::start().await;
    put(&d.dirs.w("a.txt"), "inside\n");
    // ws/c1 -> ../outside/hop, and outside/hop -> ../ws/a.txt: the chain ends
    // inside but passes outside.
    symlink("../ws/a.txt", &d.dirs.o("hop"));
    d.dirs.add_outside_symlink("hop");
    symlink("../outside/hop", &d.dirs.w("c1"));
    // A link that climbs out and back by name.
    symlink("../ws/a.txt", &d.dirs.w("c2"));
    // A chain through an outside dir link back into the workspace.
    symlink("../ws", &d.dirs.o("ws-again"));
    d.dirs.add_outside_symlink("ws-again");
    symlink("../outside/ws-again/a.txt", &d.dirs.w("c3"));
    // A chain that stays inside: l1 -> l2 -> sub/l3 -> ../a.txt.
    symlink("l2", &d.dirs.w("l1"));
    symlink("sub/l3", &d.dirs.w("l2"));
    std::fs::create_dir(d.dirs.w("sub")).unwrap();
    symlink("../a.txt", &d.dirs.w("sub/l3"));
    // A loop.
    symlink("loop2", &d.dirs.w("loop1"));
    symlink("loop1", &d.dirs.w("loop2"));
    let mut c = d.client().await;
    for link in ["c1", "c2", "c3"] {
        assert_reason(c.read_file(read_req(link)).await, "SYMLINK_ESCAPE");
        assert_reason(
            c.write_file(write_req(link, "PWNED")).await,
            "SYMLINK_ESCAPE",
        );
        assert_reason(
            c.edit_file(edit_req(link, "inside", "PWNED")).await,
            "SYMLINK_ESCAPE",
        );
        assert_reason(c.stat(stat_req(link)).await, "SYMLINK_ESCAPE");
    }
    assert_eq!(get(&d.dirs.w("a.txt")), "inside\n");
    // A loop is an error, not a hang or a crash.
    let r = tokio::time::timeout(Duration::from_secs(10), c.read_file(read_req("loop1")))
        .await
        .expect("symlink loop hung");
    assert!(r.is_err(), "reading a symlink loop succeeded");
    assert!(
        c.write_file(write_req("loop1", "x")).await.is_err(),
        "writing through a loop"
    );
    d.dirs.assert_outside_untouched();
    // Positive control: the inside chain works.
    let r = ok(c.read_file(read_req("l1")).await);
    assert_eq!(r.text, "inside\n");
    assert_eq!(r.path, "a.txt");
}

// ---------------------------------------------------------------------- F8

#[tokio::test]
async fn f8_component_swapped_for_a_symlink_between_calls() {
    let d = Daemon::start().await;
    put(&d.dirs.w("d/f.txt"), "INSIDE\n");
    let mut c = d.client().await;
    // First call: a real directory.
    assert_eq!(ok(c.read_file(read_req("d/f.txt")).await).text, "INSIDE\n");
    assert!(
        ok(c.list_dir(list_req("d")).await)
            .entries
            .iter()
            .any(|e| e.path == "d/f.txt")
    );
    // Swap the directory for a symlink to outside/ (which holds f.txt too).
    std::fs::rename(d.dirs.w("d"), d.dirs.w("d.bak")).unwrap();
    symlink("../outside", &d.dirs.w("d"));
    let r = c.read_file(read_req("d/f.txt")).await;
    if let Ok(resp) = &r {
        assert_no_secret("after swap", resp.get_ref());
    }
    assert_reason(r, "SYMLINK_ESCAPE");
    assert_reason(
        c.write_file(write_req("d/f.txt", "PWNED")).await,
        "SYMLINK_ESCAPE",
    );
    assert_reason(
        c.edit_file(edit_req("d/f.txt", "TOP", "PWNED")).await,
        "SYMLINK_ESCAPE",
    );
    assert_reason(c.list_dir(list_req("d")).await, "SYMLINK_ESCAPE");
    assert_reason(
        c.remove(remove_req("d/f.txt", false)).await,
        "SYMLINK_ESCAPE",
    );
    d.dirs.assert_outside_untouched();
    // Swap back: works again (positive control).
    std::fs::remove_file(d.dirs.w("d")).unwrap();
    std::fs::rename(d.dirs.w("d.bak"), d.dirs.w("d")).unwrap();
    assert_eq!(ok(c.read_file(read_req("d/f.txt")).await).text, "INSIDE\n");
}

/// Flips `ws/race` between a real directory and a symlink to `outside/`
/// with atomic RENAME_EXCHANGE until `stop`.
fn swapper(
    d: &Dirs,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    let race = d.w("race");
    let spare = d.w("spare");
    std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            rustix::fs::renameat_with(
                rustix::fs::CWD,
                &race,
                rustix::fs::CWD,
                &spare,
                rustix::fs::RenameFlags::EXCHANGE,
            )
            .expect("renameat2(RENAME_EXCHANGE)");
            n += 1;
            std::thread::sleep(Duration::from_micros(50));
        }
        n
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f8_component_swapped_during_calls_never_reaches_outside() {
    let d = Daemon::start().await;
    put(&d.dirs.w("race/f.txt"), "INSIDE\n");
    // outside/f.txt holds the secret.
    symlink("../outside", &d.dirs.w("spare"));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = swapper(&d.dirs, stop.clone());
    let mut c = d.client().await;
    let deadline = Instant::now() + Duration::from_secs(3);
    let (mut read_ok, mut read_err, mut write_ok, mut list_ok) = (0, 0, 0, 0);
    let mut i = 0u64;
    while Instant::now() < deadline {
        i += 1;
        match c.read_file(read_req("race/f.txt")).await {
            Ok(r) => {
                let r = r.into_inner();
                assert_eq!(r.text, "INSIDE\n", "a racing read returned other content");
                read_ok += 1;
            }
            Err(s) => {
                read_err += 1;
                let reason = agentjail::error::reason_of(&s);
                assert!(
                    matches!(
                        reason.as_deref(),
                        Some("SYMLINK_ESCAPE" | "NOT_FOUND" | "NOT_A_DIRECTORY")
                    ),
                    "unexpected error while racing: {}",
                    describe(&s)
                );
            }
        }
        let mut req = grep_req("TOP");
        req.path = "race".into();
        if let Ok(r) = c.grep(req).await {
            assert!(
                r.into_inner().files.is_empty(),
                "grep found outside content"
            );
        }
        if let Ok(r) = c.list_dir(list_req("race")).await {
            list_ok += 1;
            for e in r.into_inner().entries {
                assert!(
                    !e.path.contains(OUTSIDE_ONLY_NAME) && !e.path.contains("secret"),
                    "a racing listing showed an outside name: {}",
                    e.path
                );
            }
        }
        if c.write_file(write_req(&format!("race/w{}.txt", i % 4), "RACE"))
            .await
            .is_ok()
        {
            write_ok += 1;
        }
        // Moves and mkdirs into the flipping directory.
        put(&d.dirs.w("tomove.txt"), "MOVED");
        let mut req = move_req("tomove.txt", "race/moved.txt");
        req.overwrite = true;
        let _ = c.r#move(req).await;
        let _ = c.make_dir(mkdir_req("race/newdir/sub", true)).await;
        for n in 0..4 {
            assert!(
                !exists(&d.dirs.o(&format!("w{n}.txt"))),
                "a racing write landed outside"
            );
        }
        assert!(
            !exists(&d.dirs.o("moved.txt")),
            "a racing move landed outside"
        );
        assert!(
            !exists(&d.dirs.o("newdir")),
            "a racing mkdir landed outside"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let flips = flipper.join().unwrap();
    eprintln!(
        "race: {flips} flips, reads ok {read_ok} err {read_err}, writes ok {write_ok}, lists ok {list_ok}"
    );
    assert!(flips > 100, "the swapper did not run");
    assert!(
        read_ok > 0,
        "no read ever succeeded: the race test proves nothing"
    );
    d.dirs.assert_outside_untouched();
    // The daemon still serves.
    let mut d = d;
    d.assert_serving().await;
}

// ---------------------------------------------------------------------- F9

#[tokio::test]
async fn f9_hardlink_to_an_outside_file_is_not_written_through_or_read() {
    require_root("a file owned by another user");
    let dirs = Dirs::new();
    // An outside file owned by another user, with a hardlink in the workspace.
    let target = dirs.o("victim.txt");
    dirs.add_outside("victim.txt", "VICTIM OWNED BY ANOTHER USER\n");
    set_mode(&target, 0o600);
    nix::unistd::chown(
        &target,
        Some(nix::unistd::Uid::from_raw(4321)),
        Some(nix::unistd::Gid::from_raw(4321)),
    )
    .unwrap();
    std::fs::hard_link(&target, dirs.w("hl.txt")).unwrap();
    std::fs::hard_link(&target, dirs.w("hl2.txt")).unwrap();
    std::fs::hard_link(&target, dirs.w("hl3.txt")).unwrap();
    let policy = standard_policy(&dirs);
    let d = Daemon::start_with(dirs, &policy, "").await;
    let victim = || get(&d.dirs.o("victim.txt"));
    let victim_meta = std::fs::metadata(&target).unwrap();
    let mut c = d.client().await;

    // Reading it must not return the other user's file.
    let r = c.read_file(read_req("hl.txt")).await;
    if let Ok(resp) = &r {
        assert!(
            !resp.get_ref().text.contains("VICTIM"),
            "ReadFile returned the outside file through a hardlink"
        );
    }
    assert_reason(r, "POLICY_DENIED");
    let mut req = grep_req("VICTIM");
    req.include_hidden = true;
    req.output = GrepOutput::Content as i32;
    let g = ok(c.grep(req).await);
    assert!(
        g.lines.is_empty() && g.files.is_empty(),
        "grep read the hardlinked file: {g:?}"
    );

    // Writing and editing must not write through it.
    let _ = c.write_file(write_req("hl.txt", "PWNED\n")).await;
    assert_eq!(
        victim(),
        "VICTIM OWNED BY ANOTHER USER\n",
        "WriteFile wrote through"
    );
    let mut req = write_req("hl2.txt", "PWNED\n");
    req.mode = WriteMode::Overwrite as i32;
    let _ = c.write_file(req).await;
    assert_eq!(
        victim(),
        "VICTIM OWNED BY ANOTHER USER\n",
        "OVERWRITE wrote through"
    );
    let _ = c.edit_file(edit_req("hl3.txt", "VICTIM", "PWNED")).await;
    assert_eq!(
        victim(),
        "VICTIM OWNED BY ANOTHER USER\n",
        "EditFile wrote through"
    );
    let after = std::fs::metadata(&target).unwrap();
    assert_eq!(after.uid(), 4321);
    assert_eq!(after.mode() & 0o7777, 0o600);
    assert_eq!(after.mtime(), victim_meta.mtime());
    d.dirs.assert_outside_untouched();

    // Positive control: a workspace file with one name reads fine. Once it
    // has a second name it may alias a denied file, and this policy has
    // deny globs, so its content is refused (see the F10 hardlink test).
    put(&d.dirs.w("a.txt"), "inside\n");
    assert_eq!(ok(c.read_file(read_req("a.txt")).await).text, "inside\n");
    std::fs::hard_link(d.dirs.w("a.txt"), d.dirs.w("a-link.txt")).unwrap();
    assert_reason(c.read_file(read_req("a-link.txt")).await, "POLICY_DENIED");
}

// --------------------------------------------------------------------- F10

#[tokio::test]
async fn f10_deny_globs_hold_under_every_name() {
    let d = Daemon::start().await;
    put(&d.dirs.w(".env"), "SECRET_TOKEN=1\n");
    put(&d.dirs.w("sub/.env"), "SUB_TOKEN=1\n");
    put(&d.dirs.w("certs/server.pem"), "PEM\n");
    put(&d.dirs.w(".git/hooks/pre-commit"), "#!/bin/sh\n");
    put(&d.dirs.w(".git/HEAD"), "ref: refs/heads/main\n");
    put(&d.dirs.w("a.txt"), "allowed\n");
    symlink(".env", &d.dirs.w("innocent.txt"));
    symlink("certs/server.pem", &d.dirs.w("cert-link"));
    symlink(".git/hooks", &d.dirs.w("hooks"));
    symlink("sub", &d.dirs.w("sublink"));
    let mut c = d.client().await;
    for path in [
        ".env",
        "./.env",
        ".//.env",
        "sub/../.env",
        "sub/./.env",
        "sub/.env",
        "sublink/.env",
        "./sub/../sub/.env",
        "certs/server.pem",
        "certs/../certs/server.pem",
        ".git/hooks/pre-commit",
        "./.git/hooks/pre-commit",
        ".git/../.git/hooks/pre-commit",
        "hooks/pre-commit",
    ] {
        let r = c.read_file(read_req(path)).await;
        let s = assert_reason(r, "POLICY_DENIED");
        assert!(
            error_meta(&s).get("rule").is_some_and(|r| !r.is_empty()),
            "a denial names its rule: {}",
            describe(&s)
        );
        assert_reason(
            c.write_file(write_req(path, "PWNED")).await,
            "POLICY_DENIED",
        );
        assert_reason(
            c.edit_file(edit_req(path, "=1", "=2")).await,
            "POLICY_DENIED",
        );
        assert_reason(c.r#move(move_req(path, "exfil.txt")).await, "POLICY_DENIED");
        assert_reason(c.remove(remove_req(path, false)).await, "POLICY_DENIED");
        assert_reason(c.stat(stat_req(path)).await, "POLICY_DENIED");
        assert!(!exists(&d.dirs.w("exfil.txt")), "{path}");
    }
    // Through a symlink whose own name is allowed: the target decides.
    for path in ["innocent.txt", "cert-link"] {
        let s = assert_reason(c.read_file(read_req(path)).await, "POLICY_DENIED");
        assert!(error_meta(&s).contains_key("rule"));
        assert_reason(
            c.write_file(write_req(path, "PWNED")).await,
            "POLICY_DENIED",
        );
        assert_reason(
            c.edit_file(edit_req(path, "=1", "=2")).await,
            "POLICY_DENIED",
        );
        let mut req = grep_req(".");
        req.path = path.into();
        assert_reason(c.grep(req).await, "POLICY_DENIED");
    }
    // Creating denied names, directly or through another name.
    for path in [
        "new.pem",
        "sub/new.env/../x.pem",
        ".git/hooks/post-commit",
        "./.git/hooks/post-commit",
        "hooks/post-commit",
        "sublink/.env.d/../.env",
        "deep/dir/.env",
    ] {
        let mut req = write_req(path, "PWNED");
        req.create_parents = true;
        assert_reason(c.write_file(req).await, "POLICY_DENIED");
    }
    assert!(!exists(&d.dirs.w("new.pem")));
    assert!(!exists(&d.dirs.w("sub/x.pem")));
    assert!(!exists(&d.dirs.w(".git/hooks/post-commit")));
    assert!(
        !exists(&d.dirs.w("deep")),
        "parents created for a denied file"
    );
    // Planting a hook by moving an allowed file onto a denied name.
    assert_reason(
        c.r#move(move_req("a.txt", ".git/hooks/post-merge")).await,
        "POLICY_DENIED",
    );
    assert_reason(
        c.r#move(move_req("a.txt", "key.pem")).await,
        "POLICY_DENIED",
    );
    assert_reason(
        c.make_dir(mkdir_req(".git/hooks/sub", true)).await,
        "POLICY_DENIED",
    );
    // Nothing changed.
    assert_eq!(get(&d.dirs.w(".env")), "SECRET_TOKEN=1\n");
    assert_eq!(get(&d.dirs.w("sub/.env")), "SUB_TOKEN=1\n");
    assert_eq!(get(&d.dirs.w("certs/server.pem")), "PEM\n");
    assert_eq!(
        list_names(&d.dirs.w(".git/hooks")),
        vec!["pre-commit".to_string()]
    );
    assert_eq!(get(&d.dirs.w("a.txt")), "allowed\n");
    // Positive controls.
    assert_eq!(ok(c.read_file(read_req("./a.txt")).await).text, "allowed\n");
    assert_eq!(
        ok(c.read_file(read_req("sub/../a.txt")).await).text,
        "allowed\n"
    );
    assert_eq!(
        ok(c.read_file(read_req(".git/HEAD")).await).text,
        "ref: refs/heads/main\n"
    );
    ok(c.write_file(write_req("sub/env.txt", "fine")).await);
}

#[tokio::test]
async fn f10_deny_globs_hold_through_a_hardlink() {
    let d = Daemon::start().await;
    put(&d.dirs.w(".env"), "SECRET_TOKEN=1\n");
    put(&d.dirs.w("plain.txt"), "plain\n");
    std::fs::hard_link(d.dirs.w(".env"), d.dirs.w("innocent.txt")).unwrap();
    let mut c = d.client().await;
    let s = assert_reason(c.read_file(read_req("innocent.txt")).await, "POLICY_DENIED");
    assert!(
        error_meta(&s)
            .get("rule")
            .is_some_and(|r| r.contains("hardlink")),
        "{}",
        describe(&s)
    );
    assert_reason(
        c.edit_file(edit_req("innocent.txt", "=1", "=2")).await,
        "POLICY_DENIED",
    );
    let mut req = grep_req("SECRET");
    req.output = GrepOutput::Content as i32;
    let found = ok(c.grep(req).await);
    assert!(
        found.lines.is_empty() && found.files.is_empty(),
        "{found:?}"
    );
    // Nothing changed, and a file with one name reads as usual.
    assert_eq!(get(&d.dirs.w(".env")), "SECRET_TOKEN=1\n");
    assert_eq!(get(&d.dirs.w("innocent.txt")), "SECRET_TOKEN=1\n");
    assert_eq!(ok(c.read_file(read_req("plain.txt")).await).text, "plain\n");
}

// --------------------------------------------------------------------- F11

#[tokio::test]
async fn f11_nul_empty_and_overlong_paths_are_invalid() {
    let d = Daemon::start().await;
    put(&d.dirs.w("a.txt"), "inside\n");
    let mut c = d.client().await;
    let long_path = "a/".repeat(2100) + "f"; // > PATH_MAX (4096)
    let long_component = "x".repeat(300); // > NAME_MAX (255)
    let long_in_dir = format!("sub/{}", "y".repeat(256));
    for path in [
        "a.txt\0",
        "a\0.txt",
        "\0",
        "sub/\0/../a.txt",
        long_path.as_str(),
        long_component.as_str(),
        long_in_dir.as_str(),
    ] {
        let shown: String = path.chars().take(40).collect();
        assert_reason(c.read_file(read_req(path)).await, "INVALID_ARGUMENT");
        let mut req = write_req(path, "x");
        req.create_parents = true;
        assert_reason(c.write_file(req).await, "INVALID_ARGUMENT");
        assert_reason(
            c.edit_file(edit_req(path, "a", "b")).await,
            "INVALID_ARGUMENT",
        );
        assert_reason(c.stat(stat_req(path)).await, "INVALID_ARGUMENT");
        assert_reason(c.make_dir(mkdir_req(path, true)).await, "INVALID_ARGUMENT");
        assert_reason(c.remove(remove_req(path, true)).await, "INVALID_ARGUMENT");
        assert_reason(c.r#move(move_req("a.txt", path)).await, "INVALID_ARGUMENT");
        assert_reason(c.list_dir(list_req(path)).await, "INVALID_ARGUMENT");
        let mut req = grep_req("x");
        req.path = path.into();
        assert_reason(c.grep(req).await, "INVALID_ARGUMENT");
        assert_eq!(
            list_names(&d.dirs.ws),
            vec!["a.txt".to_string()],
            "something was created for {shown:?}"
        );
    }
    // An empty path names no file.
    assert_reason(c.read_file(read_req("")).await, "INVALID_ARGUMENT");
    assert_reason(c.write_file(write_req("", "x")).await, "INVALID_ARGUMENT");
    assert_reason(
        c.edit_file(edit_req("", "a", "b")).await,
        "INVALID_ARGUMENT",
    );
    assert_reason(c.r#move(move_req("", "x")).await, "INVALID_ARGUMENT");
    assert_reason(c.r#move(move_req("a.txt", "")).await, "INVALID_ARGUMENT");
    // NUL in a glob or grep pattern is refused or harmless, never a crash.
    let _ = c.glob(glob_req("*\0")).await;
    let _ = c.grep(grep_req("a\0")).await;
    assert_eq!(get(&d.dirs.w("a.txt")), "inside\n");
    // Positive control: a long but valid name.
    let name = "n".repeat(255);
    ok(c.write_file(write_req(&name, "long name")).await);
    assert_eq!(ok(c.read_file(read_req(&name)).await).text, "long name");
    let mut d = d;
    d.assert_serving().await;
}

#[tokio::test]
async fn f11_invalid_utf8_names_on_disk_do_not_break_listing() {
    let d = Daemon::start().await;
    put(&d.dirs.w("good.txt"), "needle\n");
    let bad = std::ffi::OsStr::from_bytes(b"bad-\xff\xfe-name.txt");
    put(&d.dirs.ws.join(bad), "needle\n");
    let bad_dir = std::ffi::OsStr::from_bytes(b"dir-\xc3\x28");
    put(&d.dirs.ws.join(bad_dir).join("inner.txt"), "needle\n");
    put(&d.dirs.w("name\nwith-newline.txt"), "needle\n");
    let mut c = d.client().await;
    let mut req = list_req("");
    req.depth = 3;
    req.sort = SortOrder::Name as i32;
    let r = ok(c.list_dir(req).await);
    let names: Vec<_> = r.entries.iter().map(|e| e.path.clone()).collect();
    assert!(names.contains(&"good.txt".to_string()), "{names:?}");
    let r = ok(c.grep(grep_req("needle")).await);
    assert!(r.files.contains(&"good.txt".to_string()), "{:?}", r.files);
    let r = ok(c.glob(glob_req("**/*.txt")).await);
    assert!(r.paths.contains(&"good.txt".to_string()), "{:?}", r.paths);
    // Whatever name the listing showed for the bad entry, using it must
    // not reach another file.
    for n in names.iter().filter(|n| n.starts_with("bad-")) {
        if let Ok(r) = c.read_file(read_req(n)).await {
            assert_eq!(r.into_inner().text, "needle\n");
        }
    }
    let mut d = d;
    d.assert_serving().await;
}

// --------------------------------------------------------------------- F12

#[tokio::test]
async fn f12_read_only_workspace_refuses_every_write() {
    let d = Daemon::start().await;
    put(&d.dirs.ro.join("dir/x.txt"), "x\n");
    let mut c = d.client().await;
    let ro = |mut r: WriteFileRequest| {
        r.workspace = "ro".into();
        r
    };
    let reasons = &["READ_ONLY_WORKSPACE", "POLICY_DENIED"];
    assert_reason_in(
        c.write_file(ro(write_req("readme.txt", "PWNED"))).await,
        reasons,
    );
    assert_reason_in(
        c.write_file(ro(write_req("new.txt", "PWNED"))).await,
        reasons,
    );
    let mut req = ro(write_req("a/b/new.txt", "PWNED"));
    req.create_parents = true;
    assert_reason_in(c.write_file(req).await, reasons);
    let mut req = edit_req("readme.txt", "content", "PWNED");
    req.workspace = "ro".into();
    assert_reason_in(c.edit_file(req).await, reasons);
    let mut req = mkdir_req("newdir", true);
    req.workspace = "ro".into();
    assert_reason_in(c.make_dir(req).await, reasons);
    let mut req = move_req("readme.txt", "moved.txt");
    req.workspace = "ro".into();
    assert_reason_in(c.r#move(req).await, reasons);
    let mut req = remove_req("readme.txt", false);
    req.workspace = "ro".into();
    assert_reason_in(c.remove(req).await, reasons);
    let mut req = remove_req("dir", true);
    req.workspace = "ro".into();
    assert_reason_in(c.remove(req).await, reasons);
    let mut names = list_names(&d.dirs.ro);
    names.sort();
    assert_eq!(names, vec!["dir".to_string(), "readme.txt".to_string()]);
    assert_eq!(get(&d.dirs.ro.join("readme.txt")), "read-only content\n");
    assert_eq!(get(&d.dirs.ro.join("dir/x.txt")), "x\n");
    // Positive control: reading works, and writing the rw workspace works.
    let mut req = read_req("dir/x.txt");
    req.workspace = "ro".into();
    assert_eq!(ok(c.read_file(req).await).text, "x\n");
    ok(c.write_file(write_req("new.txt", "rw")).await);
    assert_eq!(get(&d.dirs.w("new.txt")), "rw");
}

#[tokio::test]
async fn f12_write_allowlist_refuses_files_outside_it() {
    let dirs = Dirs::new();
    put(&dirs.w("README.md"), "readme\n");
    put(&dirs.w("src/lib.rs"), "lib\n");
    put(&dirs.w("secret/data.txt"), "data\n");
    let policy = policy_with(
        &dirs,
        r#"read = ["src/**", "*.md"]"#,
        r#"write = ["src/**"]"#,
    );
    let d = Daemon::start_with(dirs, &policy, "").await;
    let mut c = d.client().await;
    let s = assert_reason(
        c.write_file(write_req("README.md", "PWNED")).await,
        "POLICY_DENIED",
    );
    assert!(error_meta(&s).contains_key("rule"));
    assert_reason(
        c.write_file(write_req("new.txt", "x")).await,
        "POLICY_DENIED",
    );
    assert_reason(
        c.edit_file(edit_req("README.md", "readme", "x")).await,
        "POLICY_DENIED",
    );
    assert_reason(
        c.make_dir(mkdir_req("newdir/x", true)).await,
        "POLICY_DENIED",
    );
    assert_reason(
        c.r#move(move_req("src/lib.rs", "lib.rs")).await,
        "POLICY_DENIED",
    );
    assert_reason(
        c.remove(remove_req("README.md", false)).await,
        "POLICY_DENIED",
    );
    // Reads outside the read allowlist.
    assert_reason(
        c.read_file(read_req("secret/data.txt")).await,
        "POLICY_DENIED",
    );
    let r = ok(c.grep(grep_req("data")).await);
    assert!(
        r.files.is_empty(),
        "grep read a file outside the read allowlist: {:?}",
        r.files
    );
    assert_eq!(get(&d.dirs.w("README.md")), "readme\n");
    assert!(!exists(&d.dirs.w("new.txt")));
    assert!(!exists(&d.dirs.w("newdir")));
    assert!(!exists(&d.dirs.w("lib.rs")));
    // Positive controls.
    assert_eq!(
        ok(c.read_file(read_req("README.md")).await).text,
        "readme\n"
    );
    ok(c.write_file(write_req("src/new.rs", "new")).await);
    ok(c.edit_file(edit_req("src/lib.rs", "lib", "LIB")).await);
    assert_eq!(get(&d.dirs.w("src/lib.rs")), "LIB\n");
}

// --------------------------------------------------------------------- F13

#[tokio::test]
async fn f13_move_out_of_the_workspace_is_refused() {
    let d = Daemon::start().await;
    put(&d.dirs.w("a.txt"), "inside\n");
    put(&d.dirs.w("dir/b.txt"), "b\n");
    symlink("../outside", &d.dirs.w("out"));
    let mut c = d.client().await;
    let abs = d.dirs.o("a.txt").display().to_string();
    for (from, to, reasons) in [
        ("a.txt", "../outside/a.txt", &["PATH_OUTSIDE_WORKSPACE"][..]),
        ("a.txt", "../a.txt", &["PATH_OUTSIDE_WORKSPACE"][..]),
        ("dir", "../outside/dir", &["PATH_OUTSIDE_WORKSPACE"][..]),
        (
            "a.txt",
            abs.as_str(),
            &["INVALID_ARGUMENT", "PATH_OUTSIDE_WORKSPACE"][..],
        ),
        ("a.txt", "out/a.txt", &["SYMLINK_ESCAPE"][..]),
        ("dir", "out/dir", &["SYMLINK_ESCAPE"][..]),
        ("a.txt", "out/secret.txt", &["SYMLINK_ESCAPE"][..]),
        (
            "../outside/secret.txt",
            "stolen.txt",
            &["PATH_OUTSIDE_WORKSPACE"][..],
        ),
        ("out/secret.txt", "stolen.txt", &["SYMLINK_ESCAPE"][..]),
        ("out/sub", "stolen-dir", &["SYMLINK_ESCAPE"][..]),
    ] {
        for overwrite in [false, true] {
            let mut req = move_req(from, to);
            req.overwrite = overwrite;
            req.create_parents = true;
            assert_reason_in(c.r#move(req).await, reasons);
        }
    }
    assert_eq!(get(&d.dirs.w("a.txt")), "inside\n");
    assert_eq!(get(&d.dirs.w("dir/b.txt")), "b\n");
    assert!(!exists(&d.dirs.w("stolen.txt")));
    assert!(!exists(&d.dirs.w("stolen-dir")));
    assert!(!exists(&d.dirs.root.join("a.txt")));
    d.dirs.assert_outside_untouched();
    // Positive control: a move inside.
    ok(c.r#move(move_req("a.txt", "dir/a.txt")).await);
    assert_eq!(get(&d.dirs.w("dir/a.txt")), "inside\n");
}

#[tokio::test]
async fn f13_move_a_denied_file_to_an_allowed_name_is_refused() {
    let d = Daemon::start().await;
    put(&d.dirs.w(".env"), "TOKEN=1\n");
    put(&d.dirs.w("conf/.env"), "TOKEN=2\n");
    put(&d.dirs.w("tls/key.pem"), "KEY\n");
    put(&d.dirs.w(".git/hooks/pre-commit"), "#!/bin/sh\nHOOK\n");
    put(&d.dirs.w(".git/HEAD"), "ref\n");
    let mut c = d.client().await;
    for (from, to) in [
        (".env", "env.txt"),
        ("./.env", "public/env.txt"),
        ("tls/key.pem", "key.txt"),
        (".git/hooks/pre-commit", "hook.sh"),
    ] {
        let mut req = move_req(from, to);
        req.create_parents = true;
        assert_reason(c.r#move(req).await, "POLICY_DENIED");
        assert!(!exists(&d.dirs.w(to)), "{from} -> {to}");
    }
    // Moving a directory that holds denied files must not make them
    // readable under the new name.
    for (from, to, inner) in [
        (".git/hooks", "unhooked", "unhooked/pre-commit"),
        (".git", "git2", "git2/hooks/pre-commit"),
        ("conf", "conf2", "conf2/.env"),
        ("tls", "tls2", "tls2/key.pem"),
    ] {
        let r = c.r#move(move_req(from, to)).await;
        if r.is_ok() {
            let read = c.read_file(read_req(inner)).await;
            assert!(
                read.is_err(),
                "after moving {from} -> {to}, {inner} became readable"
            );
        } else {
            assert_reason(r, "POLICY_DENIED");
        }
    }
    let env_still_there = exists(&d.dirs.w(".env"));
    assert!(env_still_there);
    assert_eq!(get(&d.dirs.w(".env")), "TOKEN=1\n");
    // Positive control.
    put(&d.dirs.w("plain.txt"), "p");
    ok(c.r#move(move_req("plain.txt", "plain2.txt")).await);
}

#[tokio::test]
async fn f13_moving_a_directory_cannot_plant_files_under_denied_names() {
    let d = Daemon::start().await;
    put(&d.dirs.w("g/hooks/pre-commit"), "#!/bin/sh\nevil\n");
    put(&d.dirs.w("h/pre-commit"), "#!/bin/sh\nevil\n");
    put(&d.dirs.w("e/.env"), "");
    std::fs::remove_file(d.dirs.w("e/.env")).unwrap();
    put(&d.dirs.w("e/x.pem.txt"), "not a pem\n");
    put(&d.dirs.w("a.txt"), "A\n");
    let mut c = d.client().await;
    // .git does not exist yet: moving g there would create .git/hooks/*.
    assert_reason(c.r#move(move_req("g", ".git")).await, "POLICY_DENIED");
    std::fs::create_dir(d.dirs.w(".git")).unwrap();
    assert_reason(c.r#move(move_req("h", ".git/hooks")).await, "POLICY_DENIED");
    assert_reason(c.r#move(move_req("a.txt", ".env")).await, "POLICY_DENIED");
    assert_reason(c.r#move(move_req("a.txt", "e/.env")).await, "POLICY_DENIED");
    assert_reason(
        c.r#move(move_req("a.txt", "e/key.pem")).await,
        "POLICY_DENIED",
    );
    assert!(!exists(&d.dirs.w(".git/hooks")));
    assert!(!exists(&d.dirs.w(".env")));
    assert!(!exists(&d.dirs.w("e/.env")));
    assert_eq!(list_names(&d.dirs.w(".git")), Vec::<String>::new());
    assert_eq!(get(&d.dirs.w("g/hooks/pre-commit")), "#!/bin/sh\nevil\n");
    // Positive control: the same directories move to allowed names.
    ok(c.r#move(move_req("g", "g2")).await);
    // (Anything under .git is git metadata, read-only by default.)
    assert_reason(
        c.r#move(move_req("h", ".git/not-hooks")).await,
        "POLICY_DENIED",
    );
    ok(c.r#move(move_req("h", "g2/not-hooks")).await);
    assert_eq!(
        get(&d.dirs.w("g2/not-hooks/pre-commit")),
        "#!/bin/sh\nevil\n"
    );
}

// --------------------------------------------------------------------- F14

#[tokio::test]
async fn f14_listings_never_show_outside_or_denied_names() {
    let d = Daemon::start().await;
    put(
        &d.dirs.w("visible.txt"),
        "TOP-SECRET-OUTSIDE-CONTENT copy inside\n",
    );
    put(&d.dirs.w(".env"), "TOP-SECRET-OUTSIDE-CONTENT in env\n");
    put(
        &d.dirs.w("sub/key.pem"),
        "TOP-SECRET-OUTSIDE-CONTENT in pem\n",
    );
    put(
        &d.dirs.w(".git/hooks/pre-commit"),
        "TOP-SECRET-OUTSIDE-CONTENT in hook\n",
    );
    symlink("../outside", &d.dirs.w("linkdir"));
    symlink(&d.dirs.outside, &d.dirs.w("abslinkdir"));
    symlink("../outside/secret.txt", &d.dirs.w("linkfile"));
    symlink("..", &d.dirs.w("parent"));
    std::fs::create_dir(d.dirs.w("nested")).unwrap();
    symlink("../../outside/sub", &d.dirs.w("nested/deeplink"));
    let mut c = d.client().await;
    let forbidden = |p: &str| {
        p.contains(OUTSIDE_ONLY_NAME)
            || p.contains("secret.txt")
            || p.contains("deep-secret")
            || p.ends_with(".env")
            || p.ends_with(".pem")
            || p.contains("hooks/")
            || p.contains("ws-evil")
    };
    for hidden in [false, true] {
        for gitignore in [Some(false), Some(true), None] {
            let mut req = list_req("");
            req.depth = 10;
            req.include_hidden = hidden;
            req.respect_gitignore = gitignore;
            req.max_entries = 10_000;
            let r = ok(c.list_dir(req).await);
            let names: Vec<_> = r.entries.iter().map(|e| e.path.clone()).collect();
            assert!(names.contains(&"visible.txt".to_string()), "{names:?}");
            for n in &names {
                assert!(!forbidden(n), "ListDir showed {n}");
            }
            let mut req = glob_req("**/*");
            req.include_hidden = hidden;
            req.respect_gitignore = gitignore;
            req.max_results = 10_000;
            let r = ok(c.glob(req).await);
            assert!(
                r.paths.contains(&"visible.txt".to_string()),
                "{:?}",
                r.paths
            );
            for p in &r.paths {
                assert!(!forbidden(p), "Glob showed {p}");
            }
            for pattern in [
                "**/secret.txt",
                "linkdir/*",
                "**/*.pem",
                "**/.env",
                "parent/**",
            ] {
                let mut req = glob_req(pattern);
                req.include_hidden = hidden;
                req.respect_gitignore = gitignore;
                if let Ok(r) = c.glob(req).await {
                    let r = r.into_inner();
                    for p in &r.paths {
                        assert!(!forbidden(p), "Glob {pattern} showed {p}");
                    }
                }
            }
            for output in [GrepOutput::Files, GrepOutput::Content, GrepOutput::Count] {
                let mut req = grep_req("TOP-SECRET");
                req.include_hidden = hidden;
                req.respect_gitignore = gitignore;
                req.output = output as i32;
                let r = ok(c.grep(req).await);
                let mut seen: Vec<String> = r.files.clone();
                seen.extend(r.lines.iter().map(|l| l.path.clone()));
                seen.extend(r.counts.iter().map(|c| c.path.clone()));
                assert!(
                    seen.iter().any(|p| p == "visible.txt"),
                    "{output:?}: {seen:?}"
                );
                for p in &seen {
                    assert!(
                        !forbidden(p) && !p.starts_with("linkfile"),
                        "Grep showed {p}"
                    );
                }
                for l in &r.lines {
                    assert_eq!(l.path, "visible.txt", "Grep content from {}", l.path);
                }
            }
        }
    }
    // A symlink to outside is listed as a link: nothing of its target (size,
    // kind) shows.
    let mut req = list_req("");
    req.sort = SortOrder::Name as i32;
    let r = ok(c.list_dir(req).await);
    let link = r
        .entries
        .iter()
        .find(|e| e.path == "linkfile")
        .expect("linkfile listed");
    assert_eq!(link.kind, EntryKind::Symlink as i32);
    assert_ne!(
        link.size,
        SECRET.len() as u64,
        "the outside file's size leaked"
    );
    // Through a symlinked directory: refused.
    for dir in ["linkdir", "abslinkdir", "nested/deeplink", "parent"] {
        assert_reason(c.list_dir(list_req(dir)).await, "SYMLINK_ESCAPE");
        let mut req = grep_req("TOP");
        req.path = dir.into();
        assert_reason(c.grep(req).await, "SYMLINK_ESCAPE");
        let mut req = glob_req("**/*");
        req.path = dir.into();
        assert_reason(c.glob(req).await, "SYMLINK_ESCAPE");
    }
    // A denied directory cannot be listed or searched directly.
    let mut req = list_req(".git/hooks");
    req.include_hidden = true;
    match c.list_dir(req).await {
        Ok(r) => assert!(r.into_inner().entries.is_empty(), "listed denied hooks"),
        Err(s) => assert_eq!(
            agentjail::error::reason_of(&s).as_deref(),
            Some("POLICY_DENIED"),
            "{}",
            describe(&s)
        ),
    }
    let mut req = grep_req("TOP");
    req.path = ".env".into();
    req.include_hidden = true;
    assert_reason(c.grep(req).await, "POLICY_DENIED");
    d.dirs.assert_outside_untouched();
}

// --------------------------------------------------------------------- F15

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f15_one_gib_write_is_refused_without_buffering() {
    use bytes::Bytes;
    use http_body::Frame;
    let mut d = Daemon::start().await;
    let rss_before = d.rss_kib();
    // WriteFileRequest { path: "huge.bin" (field 2), content (field 3): 1 GiB }
    // streamed lazily in 1 MiB chunks.
    const GIB: u64 = 1 << 30;
    let mut msg = vec![0x12, 8];
    msg.extend_from_slice(b"huge.bin");
    msg.push(0x1a);
    msg.extend(varint(GIB));
    let total = msg.len() as u64 + GIB;
    let mut head = vec![0u8];
    head.extend_from_slice(&(total as u32).to_be_bytes());
    head.extend_from_slice(&msg);
    let chunk = Bytes::from(vec![b'x'; 1 << 20]);
    let frames = std::iter::once(Bytes::from(head))
        .chain(std::iter::repeat_n(chunk, 1024))
        .map(|b| Ok::<_, std::convert::Infallible>(Frame::data(b)));
    let body = tonic::body::Body::new(http_body_util::StreamBody::new(tokio_stream::iter(frames)));
    let started = Instant::now();
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        raw_unary(d.channel().await, "WriteFile", body),
    )
    .await
    .expect("the 1 GiB write hung");
    let elapsed = started.elapsed();
    // Refused by tonic's message limit (tonic 0.14 says OUT_OF_RANGE where
    // the gRPC spec says RESOURCE_EXHAUSTED) or by the policy (TOO_LARGE).
    let reason = agentjail::error::reason_of(&status);
    assert!(
        (is_message_too_large(&status) && reason.is_none())
            || (status.code() == tonic::Code::ResourceExhausted
                && reason.as_deref() == Some("TOO_LARGE")),
        "1 GiB write: {}",
        describe(&status)
    );
    assert!(!exists(&d.dirs.w("huge.bin")), "the huge file was created");
    let rss_after = d.peak_rss_kib();
    eprintln!(
        "1 GiB write refused in {elapsed:?}; RSS before {rss_before} KiB, peak {rss_after} KiB"
    );
    assert!(rss_after < 300 * 1024, "daemon peak RSS {rss_after} KiB");
    d.assert_serving().await;
    // Positive control: a small write over the same path works.
    let mut c = d.client().await;
    ok(c.write_file(write_req("huge.bin", "small")).await);
}

#[tokio::test]
async fn f15_write_over_max_write_bytes_is_too_large() {
    let mut d = Daemon::start().await;
    let mut c = d.client().await;
    let content = vec![b'z'; 20 << 20]; // 20 MiB > 16 MiB policy limit < 32 MiB message limit
    let s = assert_reason(
        c.write_file(write_req("big.bin", content)).await,
        "TOO_LARGE",
    );
    assert!(
        s.message().contains("16"),
        "the message states the limit (16 MiB): {}",
        s.message()
    );
    assert!(!exists(&d.dirs.w("big.bin")));
    assert!(list_names(&d.dirs.ws).is_empty(), "temp file left behind");
    // Exactly at the limit is fine (positive control).
    let content = vec![b'z'; 16 << 20];
    ok(c.write_file(write_req("big.bin", content)).await);
    assert_eq!(
        std::fs::metadata(d.dirs.w("big.bin")).unwrap().len(),
        16 << 20
    );
    d.assert_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f15_sparse_ten_gib_file_reads_are_bounded() {
    let mut d = Daemon::start().await;
    let f = std::fs::File::create(d.dirs.w("sparse.bin")).unwrap();
    f.set_len(10 << 30).unwrap();
    drop(f);
    put(&d.dirs.w("small.txt"), "needle\n");
    let mut c = d.client().await;
    let started = Instant::now();
    let r = ok(c.read_file(read_bytes("sparse.bin", 5 << 30, 0)).await);
    let data = content_of(&r);
    assert!(!data.is_empty());
    assert!(data.len() <= 262144, "returned {} bytes", data.len());
    assert!(data.iter().all(|b| *b == 0));
    assert!(r.truncated);
    assert_eq!(r.next_offset, (5 << 30) + data.len() as u64);
    assert_eq!(r.total_bytes, 10 << 30);
    let mut req = read_bytes("sparse.bin", 0, 10 << 30);
    req.max_bytes = 1 << 30;
    let r = ok(c.read_file(req).await);
    assert!(content_of(&r).len() <= 262144);
    eprintln!("byte-window reads took {:?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "byte-window reads took {:?}",
        started.elapsed()
    );

    // A line-window read of it: a clear error or a bounded answer, quickly.
    let started = Instant::now();
    match c.read_file(read_req("sparse.bin")).await {
        Ok(r) => assert!(content_of(r.get_ref()).len() <= 262144),
        Err(s) => assert_eq!(
            agentjail::error::reason_of(&s).as_deref(),
            Some("TOO_LARGE"),
            "{}",
            describe(&s)
        ),
    }
    // Editing it is refused: it is over max_file_bytes.
    assert_reason(
        c.edit_file(edit_req("sparse.bin", "a", "b")).await,
        "TOO_LARGE",
    );
    // Grep skips it (or reports it) but answers.
    let r = ok(c.grep(grep_req("needle")).await);
    assert_eq!(r.files, vec!["small.txt"]);
    let r = ok(c.stat(stat_req("sparse.bin")).await);
    assert_eq!(r.size, 10 << 30);
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(10),
        "whole-file calls took {elapsed:?}"
    );
    let peak = d.peak_rss_kib();
    eprintln!("sparse: whole-file calls took {elapsed:?}, peak RSS {peak} KiB");
    assert!(peak < 300 * 1024, "daemon peak RSS {peak} KiB");
    d.assert_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f15_hundred_thousand_entries_list_with_paging_and_bounded_memory() {
    let mut d = Daemon::start().await;
    let many = d.dirs.w("many");
    std::fs::create_dir(&many).unwrap();
    const N: usize = 100_000;
    for i in 0..N {
        std::fs::File::create(many.join(format!("file-{i:06}.txt"))).unwrap();
    }
    put(&d.dirs.w("other.txt"), "x");
    let mut c = d.client().await;
    let started = Instant::now();
    // The default page is bounded.
    let r = ok(c.list_dir(list_req("many")).await);
    assert!(
        r.entries.len() <= 1000,
        "default page had {} entries",
        r.entries.len()
    );
    assert!(
        !r.next_page_token.is_empty() || r.scan_truncated,
        "100,000 entries in one answer without truncation"
    );
    // Asking for everything at once is still bounded by the message size.
    let mut req = list_req("many");
    req.max_entries = u32::MAX;
    match c.list_dir(req).await {
        Ok(r) => {
            let r = r.into_inner();
            assert!(r.entries.len() == N || !r.next_page_token.is_empty() || r.scan_truncated);
        }
        Err(s) => assert_eq!(
            agentjail::error::reason_of(&s).as_deref(),
            Some("INVALID_ARGUMENT"),
            "{}",
            describe(&s)
        ),
    }
    eprintln!("100k: first calls took {:?}", started.elapsed());
    // Paging in name order reaches every entry once, or says the scan was cut.
    let mut req = list_req("many");
    req.sort = SortOrder::Name as i32;
    req.max_entries = 20_000;
    let mut seen = std::collections::HashSet::new();
    let mut pages = 0;
    let mut scan_truncated = false;
    loop {
        let r = ok(c.list_dir(req.clone()).await);
        pages += 1;
        scan_truncated |= r.scan_truncated;
        for e in &r.entries {
            assert!(seen.insert(e.path.clone()), "{} listed twice", e.path);
            assert!(e.path.starts_with("many/file-"));
        }
        if r.next_page_token.is_empty() {
            break;
        }
        assert!(pages <= 200, "paging does not end");
        req.page_token = r.next_page_token;
    }
    assert!(
        seen.len() == N || scan_truncated,
        "paging reached {} of {N} entries without scan_truncated",
        seen.len()
    );
    eprintln!("100k: paging done at {:?}", started.elapsed());
    // Glob and Grep over it answer with truncation.
    let r = ok(c.glob(glob_req("many/*.txt")).await);
    assert!(r.paths.len() <= 1000);
    assert!(r.truncated);
    let mut req = grep_req("x");
    req.output = GrepOutput::Files as i32;
    let r = ok(c.grep(req).await);
    assert!(
        r.files == vec!["other.txt"] || (r.files.is_empty() && r.truncated),
        "grep over 100k files: {:?} truncated {}",
        r.files,
        r.truncated
    );
    let elapsed = started.elapsed();
    let peak = d.peak_rss_kib();
    eprintln!(
        "100k: {pages} pages, {} entries, {elapsed:?}, peak RSS {peak} KiB",
        seen.len()
    );
    assert!(peak < 300 * 1024, "daemon peak RSS {peak} KiB");
    assert!(
        elapsed < Duration::from_secs(60),
        "listing took {elapsed:?}"
    );
    d.assert_serving().await;
}

// ------------------------------------------------------- beyond the floor

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_files_are_never_opened_or_followed() {
    require_root("mknod of a character device");
    let mut d = Daemon::start().await;
    put(&d.dirs.w("plain.txt"), "needle\n");
    nix::unistd::mkfifo(
        &d.dirs.w("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o666),
    )
    .unwrap();
    // A character device like /dev/zero: reading it never ends.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        d.dirs.w("zero"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 5),
    )
    .unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(d.dirs.w("sock")).unwrap();
    // Magic links through /proc.
    symlink("/proc/self/root/etc/passwd", &d.dirs.w("magic"));
    symlink("/proc/self/cwd", &d.dirs.w("magic-dir"));
    let mut c = d.client().await;
    let limit = Duration::from_secs(10);
    macro_rules! timed {
        ($what:expr, $call:expr) => {
            tokio::time::timeout(limit, $call)
                .await
                .unwrap_or_else(|_| panic!("{} hung", $what))
        };
    }
    for name in ["fifo", "zero", "sock"] {
        assert_reason(
            timed!(name, c.read_file(read_req(name))),
            "NOT_A_REGULAR_FILE",
        );
        assert_reason(
            timed!(name, c.read_file(read_bytes(name, 0, 10))),
            "NOT_A_REGULAR_FILE",
        );
        assert_reason(
            timed!(name, c.edit_file(edit_req(name, "a", "b"))),
            "NOT_A_REGULAR_FILE",
        );
        // Writing over one either refuses or replaces the node with a
        // regular file; it never opens it for writing.
        let r = timed!(name, c.write_file(write_req(name, "x")));
        if let Err(s) = r {
            assert_eq!(
                agentjail::error::reason_of(&s).as_deref(),
                Some("NOT_A_REGULAR_FILE"),
                "{name}: {}",
                describe(&s)
            );
        }
        let mut req = grep_req("needle");
        req.path = name.into();
        let _ = timed!(name, c.grep(req));
    }
    // Grep, Glob and ListDir over the whole workspace skip them quickly.
    let r = ok(timed!("grep", c.grep(grep_req("needle"))));
    assert_eq!(r.files, vec!["plain.txt"]);
    let mut req = grep_req("needle");
    req.output = GrepOutput::Count as i32;
    ok(timed!("grep count", c.grep(req)));
    ok(timed!("glob", c.glob(glob_req("**/*"))));
    let mut req = list_req("");
    req.sort = SortOrder::Name as i32;
    ok(timed!("list", c.list_dir(req)));
    for link in ["magic", "magic-dir"] {
        assert_reason(timed!(link, c.read_file(read_req(link))), "SYMLINK_ESCAPE");
        assert_reason(
            timed!(link, c.write_file(write_req(link, "PWNED"))),
            "SYMLINK_ESCAPE",
        );
        assert_reason(timed!(link, c.list_dir(list_req(link))), "SYMLINK_ESCAPE");
    }
    assert!(!exists(&std::env::current_dir().unwrap().join("PWNED")));
    d.assert_serving().await;
}

#[tokio::test]
async fn extreme_numbers_do_not_crash_the_daemon() {
    let mut d = Daemon::start().await;
    put(&d.dirs.w("f.txt"), "one\ntwo\nthree\n");
    put(&d.dirs.w("a/b/c/d.txt"), "deep\n");
    symlink(".", &d.dirs.w("self"));
    let mut c = d.client().await;
    // Each answers OK or INVALID_ARGUMENT, never INTERNAL (an overflow panic).
    let check = |what: &str, r: Result<(), tonic::Status>| {
        if let Err(s) = r {
            assert_eq!(
                agentjail::error::reason_of(&s).as_deref(),
                Some("INVALID_ARGUMENT"),
                "{what}: {}",
                describe(&s)
            );
        }
    };
    for (offset, limit) in [
        (u64::MAX, u64::MAX),
        (0, u64::MAX),
        (u64::MAX, 1),
        (3, u64::MAX),
    ] {
        let mut req = read_lines("f.txt", offset, limit);
        req.max_bytes = u64::MAX;
        let r = c.read_file(req).await.map(|_| ());
        check(&format!("lines {offset} {limit}"), r);
        let mut req = read_bytes("f.txt", offset, limit);
        req.max_bytes = u64::MAX;
        let r = c.read_file(req).await.map(|_| ());
        check(&format!("bytes {offset} {limit}"), r);
    }
    let mut req = list_req("");
    req.depth = u32::MAX;
    req.max_entries = u32::MAX;
    req.include_hidden = true;
    let r = ok(c.list_dir(req).await);
    assert!(r.entries.iter().any(|e| e.path == "a/b/c/d.txt"));
    assert!(
        !r.entries.iter().any(|e| e.path.starts_with("self/")),
        "ListDir followed a symlink loop"
    );
    let mut req = grep_req("e");
    req.context_before = u32::MAX;
    req.context_after = u32::MAX;
    req.max_results = u32::MAX;
    req.output = GrepOutput::Content as i32;
    check("grep", c.grep(req).await.map(|_| ()));
    let mut req = glob_req("**/*");
    req.max_results = u32::MAX;
    let r = ok(c.glob(req).await);
    assert!(
        !r.paths.iter().any(|p| p.starts_with("self/")),
        "Glob followed a loop"
    );
    d.assert_serving().await;
}
