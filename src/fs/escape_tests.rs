//! The file-tool escape cases (F1-F15 in escape-cases.md), across tools.
//! Each refusal is checked together with "nothing happened outside", and
//! most have an allowed twin beside them.

use super::testutil::{Fixture, Rules, is_root};
use super::*;
use crate::error::{Reason, ToolError};
use crate::proto::*;
use std::os::unix::fs::symlink;

fn read(fx: &Fixture, path: &str) -> Result<ReadFileResponse, ToolError> {
    let req = ReadFileRequest {
        path: path.into(),
        ..Default::default()
    };
    read_file(&fx.ws, &fx.limits, &req).map(|o| o.response)
}

fn write(fx: &Fixture, path: &str, content: &str) -> Result<WriteFileResponse, ToolError> {
    let req = WriteFileRequest {
        path: path.into(),
        content: content.as_bytes().to_vec(),
        ..Default::default()
    };
    write_file(&fx.ws, &fx.limits, &req).map(|o| o.response)
}

fn edit(fx: &Fixture, path: &str) -> Result<EditFileResponse, ToolError> {
    let req = EditFileRequest {
        path: path.into(),
        edits: vec![Edit {
            old: "secret".into(),
            new: "pwned".into(),
            replace_all: true,
        }],
        ..Default::default()
    };
    edit_file(&fx.ws, &fx.limits, &req).map(|o| o.response)
}

fn list(fx: &Fixture, path: &str) -> Result<Vec<String>, ToolError> {
    let req = ListDirRequest {
        path: path.into(),
        depth: 10,
        include_hidden: true,
        ..Default::default()
    };
    list_dir(&fx.ws, &fx.limits, &req)
        .map(|o| o.response.entries.into_iter().map(|e| e.path).collect())
}

fn grep_files(fx: &Fixture, path: &str) -> Result<Vec<String>, ToolError> {
    let req = GrepRequest {
        pattern: "secret".into(),
        path: path.into(),
        include_hidden: true,
        respect_gitignore: Some(false),
        ..Default::default()
    };
    grep(&fx.ws, &fx.limits, &req).map(|o| o.response.files)
}

fn stat_of(fx: &Fixture, path: &str) -> Result<StatResponse, ToolError> {
    let req = StatRequest {
        path: path.into(),
        ..Default::default()
    };
    stat(&fx.ws, &fx.limits, &req).map(|o| o.response)
}

fn reason<T: std::fmt::Debug>(r: Result<T, ToolError>) -> Reason {
    r.expect_err("expected a refusal").reason
}

/// A workspace with an outside secret and the usual symlinks pointing at it.
fn hostile() -> Fixture {
    let fx = Fixture::new();
    std::fs::write(fx.outside("secret.txt"), "secret outside\n").unwrap();
    std::fs::create_dir(fx.tmp.path().join("ws-evil")).unwrap();
    std::fs::write(fx.tmp.path().join("ws-evil/f"), "secret sibling\n").unwrap();
    fx.file("inside.txt", "secret inside\n");
    fx.dir("sub");
    symlink(fx.outside("secret.txt"), fx.abs("abs_link")).unwrap();
    symlink("../outside/secret.txt", fx.abs("rel_link")).unwrap();
    symlink("../../outside", fx.abs("sub/dir_link")).unwrap();
    symlink("../ws-evil/f", fx.abs("sibling_link")).unwrap();
    symlink("../ws/inside.txt", fx.abs("reenter_link")).unwrap();
    symlink("inside.txt", fx.abs("good_link")).unwrap();
    fx
}

fn outside_untouched(fx: &Fixture) {
    assert_eq!(
        std::fs::read_to_string(fx.outside("secret.txt")).unwrap(),
        "secret outside\n"
    );
    let names: Vec<_> = std::fs::read_dir(fx.outside("")).unwrap().collect();
    assert_eq!(names.len(), 1, "nothing created outside");
    assert_eq!(
        std::fs::read_to_string(fx.tmp.path().join("ws-evil/f")).unwrap(),
        "secret sibling\n"
    );
}

#[test]
fn f1_f2_f3_traversal_absolute_and_sibling_prefix() {
    let fx = hostile();
    for p in [
        "../outside/secret.txt",
        "sub/../../outside/secret.txt",
        "sub/..",
        "../ws-evil/f",
    ] {
        let r = reason(read(&fx, p));
        assert!(
            matches!(r, Reason::PathOutsideWorkspace | Reason::InvalidArgument),
            "{p}: {r}"
        );
        let w = reason(write(&fx, p, "x"));
        assert!(
            matches!(w, Reason::PathOutsideWorkspace | Reason::InvalidArgument),
            "{p}: {w}"
        );
    }
    assert_eq!(reason(list(&fx, "sub/../..")), Reason::PathOutsideWorkspace);
    let abs = fx.outside("secret.txt").to_string_lossy().into_owned();
    assert_eq!(reason(read(&fx, &abs)), Reason::InvalidArgument);
    assert_eq!(reason(write(&fx, &abs, "x")), Reason::InvalidArgument);
    assert_eq!(reason(read(&fx, "sibling_link")), Reason::SymlinkEscape);
    // Control: the same shapes that stay inside work.
    assert_eq!(
        read(&fx, "sub/../inside.txt").unwrap().text,
        "secret inside\n"
    );
    outside_untouched(&fx);
}

#[test]
fn f4_f5_symlinks_out_refused_by_every_tool() {
    let fx = hostile();
    for p in ["abs_link", "rel_link", "sub/dir_link/secret.txt"] {
        assert_eq!(reason(read(&fx, p)), Reason::SymlinkEscape, "read {p}");
        assert_eq!(
            reason(write(&fx, p, "x")),
            Reason::SymlinkEscape,
            "write {p}"
        );
        assert_eq!(reason(edit(&fx, p)), Reason::SymlinkEscape, "edit {p}");
        assert_eq!(reason(stat_of(&fx, p)), Reason::SymlinkEscape, "stat {p}");
        assert_eq!(
            reason(grep_files(&fx, p)),
            Reason::SymlinkEscape,
            "grep {p}"
        );
        let mv = MoveRequest {
            from: p.into(),
            to: "moved".into(),
            ..Default::default()
        };
        if p.contains('/') {
            assert_eq!(
                reason(move_path(&fx.ws, &fx.limits, &mv).map(|o| o.response)),
                Reason::SymlinkEscape
            );
        }
        let mv_in = MoveRequest {
            from: "inside.txt".into(),
            to: format!("{p}/x"),
            ..Default::default()
        };
        assert!(
            move_path(&fx.ws, &fx.limits, &mv_in).is_err(),
            "move into {p}"
        );
    }
    assert_eq!(reason(list(&fx, "sub/dir_link")), Reason::SymlinkEscape);
    // Listing and grepping the whole workspace show the links, not through them.
    let all = list(&fx, "").unwrap();
    assert!(all.contains(&"sub/dir_link".to_string()));
    assert!(!all.iter().any(|p| p.starts_with("sub/dir_link/")));
    assert_eq!(grep_files(&fx, "").unwrap(), ["inside.txt"]);
    // Control: a symlink that stays inside works.
    assert_eq!(read(&fx, "good_link").unwrap().path, "inside.txt");
    outside_untouched(&fx);
}

#[test]
fn f6_dangling_symlink_write_creates_nothing_outside() {
    let fx = hostile();
    symlink(fx.outside("new.txt"), fx.abs("dangling_abs")).unwrap();
    symlink("../outside/new.txt", fx.abs("dangling_rel")).unwrap();
    symlink("sub/new.txt", fx.abs("dangling_in")).unwrap();
    for p in ["dangling_abs", "dangling_rel"] {
        assert_eq!(reason(write(&fx, p, "x")), Reason::SymlinkEscape, "{p}");
        let mut req = WriteFileRequest {
            path: format!("{p}/x"),
            create_parents: true,
            ..Default::default()
        };
        req.content = b"x".to_vec();
        assert_eq!(
            reason(write_file(&fx.ws, &fx.limits, &req)),
            Reason::SymlinkEscape
        );
        let mk = MakeDirRequest {
            path: p.into(),
            parents: true,
            ..Default::default()
        };
        assert!(make_dir(&fx.ws, &fx.limits, &mk).is_err());
    }
    outside_untouched(&fx);
    // Control: a dangling link inside creates its target inside.
    let r = write(&fx, "dangling_in", "ok").unwrap();
    assert_eq!(r.path, "sub/new.txt");
    assert_eq!(fx.read("sub/new.txt"), b"ok");
}

#[test]
fn f7_chain_that_leaves_and_reenters() {
    let fx = hostile();
    symlink("reenter_link", fx.abs("chain")).unwrap();
    for p in ["reenter_link", "chain"] {
        assert_eq!(reason(read(&fx, p)), Reason::SymlinkEscape, "{p}");
        assert_eq!(reason(write(&fx, p, "x")), Reason::SymlinkEscape, "{p}");
    }
    assert_eq!(fx.read("inside.txt"), b"secret inside\n");
}

#[test]
fn f8_component_swapped_during_calls() {
    let fx = hostile();
    fx.dir("swap");
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let fx = &fx;
        let stop = &stop;
        s.spawn(move || {
            // Flip `swap` between a real directory and a link to outside.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::rename(fx.abs("swap"), fx.abs("swap_real"));
                let _ = symlink(fx.outside(""), fx.abs("swap"));
                let _ = std::fs::remove_file(fx.abs("swap"));
                let _ = std::fs::rename(fx.abs("swap_real"), fx.abs("swap"));
            }
        });
        for _ in 0..300 {
            let _ = write(fx, "swap/secret.txt", "pwned");
            let _ = write(fx, "swap/fresh.txt", "pwned");
            if let Ok(r) = read(fx, "swap/secret.txt") {
                assert_ne!(r.text, "secret outside\n", "read through a swapped link");
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    outside_untouched(&fx);
}

#[test]
fn f9_hardlink_to_a_file_owned_by_someone_else() {
    if !is_root() {
        return;
    }
    let fx = hostile();
    let outside = fx.outside("secret.txt");
    std::os::unix::fs::chown(&outside, Some(12345), Some(12345)).unwrap();
    std::fs::hard_link(&outside, fx.abs("hard")).unwrap();
    let err = read(&fx, "hard").unwrap_err();
    assert_eq!(err.reason, Reason::PolicyDenied);
    assert_eq!(err.metadata_value("rule"), Some(access::HARDLINK_RULE));
    assert_eq!(reason(write(&fx, "hard", "pwned")), Reason::PolicyDenied);
    assert_eq!(reason(edit(&fx, "hard")), Reason::PolicyDenied);
    assert!(grep_files(&fx, "").unwrap().iter().all(|p| p != "hard"));
    outside_untouched(&fx);

    // Control: a hardlink the workspace owner owns is replaced, never
    // written through.
    std::os::unix::fs::chown(&outside, Some(fx.ws.owner_uid), Some(fx.ws.owner_gid)).unwrap();
    write(&fx, "hard", "new content").unwrap();
    assert_eq!(fx.read("hard"), b"new content");
    outside_untouched(&fx);
}

#[test]
fn f10_deny_globs_hold_under_other_names() {
    let fx = hostile();
    fx.file(".env", "secret env\n");
    fx.file("cfg/key.pem", "secret key\n");
    fx.file(".git/hooks/pre-commit", "secret hook\n");
    symlink(".env", fx.abs("env_link")).unwrap();
    symlink("cfg", fx.abs("cfg_link")).unwrap();
    symlink(".git/hooks", fx.abs("hooks")).unwrap();
    for p in [
        ".env",
        "./.env",
        "sub/../.env",
        "env_link",
        "cfg_link/key.pem",
        "cfg/./key.pem",
        "hooks/pre-commit",
        ".git/hooks/../hooks/pre-commit",
    ] {
        assert_eq!(reason(read(&fx, p)), Reason::PolicyDenied, "read {p}");
        assert_eq!(
            reason(write(&fx, p, "x")),
            Reason::PolicyDenied,
            "write {p}"
        );
        assert_eq!(reason(stat_of(&fx, p)), Reason::PolicyDenied, "stat {p}");
        assert_eq!(reason(edit(&fx, p)), Reason::PolicyDenied, "edit {p}");
    }
    assert_eq!(reason(list(&fx, "hooks")), Reason::PolicyDenied);
    assert_eq!(fx.read(".env"), b"secret env\n");
    // Control: the symlinked directory's other files are fine.
    fx.file("cfg/ok.toml", "fine");
    assert_eq!(read(&fx, "cfg_link/ok.toml").unwrap().text, "fine");
}

#[test]
fn f11_bad_names() {
    use std::os::unix::ffi::OsStrExt;
    let fx = hostile();
    let long_path = "a/".repeat(2049);
    let long_name = "n".repeat(256);
    for p in ["", "a\0b", long_path.as_str(), long_name.as_str()] {
        assert_eq!(reason(read(&fx, p)), Reason::InvalidArgument, "{:.20}", p);
        assert_eq!(
            reason(write(&fx, p, "x")),
            Reason::InvalidArgument,
            "{:.20}",
            p
        );
    }
    // A name that is not UTF-8 is skipped by listings, never a crash.
    let bad = std::ffi::OsStr::from_bytes(b"bad\xffname");
    std::fs::write(fx.abs("sub").join(bad), "secret").unwrap();
    let listed = list(&fx, "sub").unwrap();
    assert!(!listed.iter().any(|p| p.contains("bad")));
    assert!(grep_files(&fx, "sub").unwrap().is_empty());
}

#[test]
fn f12_read_only_root_and_read_only_globs() {
    let fx = Fixture::with_rules(Rules {
        read_only: true,
        ..Rules::default()
    });
    fx.file("a.txt", "x");
    assert_eq!(reason(write(&fx, "b.txt", "x")), Reason::ReadOnlyWorkspace);
    assert_eq!(reason(write(&fx, "a.txt", "y")), Reason::ReadOnlyWorkspace);
    let mk = MakeDirRequest {
        path: "d".into(),
        ..Default::default()
    };
    assert_eq!(
        reason(make_dir(&fx.ws, &fx.limits, &mk)),
        Reason::ReadOnlyWorkspace
    );
    let rm = RemoveRequest {
        path: "a.txt".into(),
        ..Default::default()
    };
    assert_eq!(
        reason(remove(&fx.ws, &fx.limits, &rm)),
        Reason::ReadOnlyWorkspace
    );
    assert_eq!(read(&fx, "a.txt").unwrap().text, "x");
    assert_eq!(fx.names(""), ["a.txt"]);

    let fx = Fixture::with_rules(Rules {
        read: &["**"],
        write: &[],
        ..Rules::default()
    });
    assert_eq!(reason(write(&fx, "new.txt", "x")), Reason::PolicyDenied);
    assert!(!fx.exists("new.txt"));
}

#[test]
fn f14_listings_never_show_outside_or_denied_names() {
    let fx = hostile();
    fx.file(".env", "secret");
    fx.file("secrets/api.txt", "secret");
    fx.file("a/b/c.pem", "secret");
    let names = list(&fx, "").unwrap();
    for bad in [
        ".env",
        "secrets",
        "secrets/api.txt",
        "a/b/c.pem",
        "sub/dir_link/secret.txt",
    ] {
        assert!(!names.contains(&bad.to_string()), "{bad} listed");
    }
    let g = GlobRequest {
        pattern: "**/*".into(),
        include_hidden: true,
        ..Default::default()
    };
    let globbed = glob(&fx.ws, &fx.limits, &g).unwrap().response.paths;
    assert!(
        globbed
            .iter()
            .all(|p| !p.contains(".env") && !p.contains("secrets") && !p.ends_with(".pem"))
    );
    assert!(globbed.iter().all(|p| !p.starts_with("sub/dir_link/")));
    assert_eq!(grep_files(&fx, "").unwrap(), ["inside.txt"]);
}

#[test]
fn special_files_never_wedge_the_daemon() {
    let fx = hostile();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        fx.abs("sub/fifo").as_path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    assert_eq!(reason(read(&fx, "sub/fifo")), Reason::NotARegularFile);
    assert_eq!(reason(write(&fx, "sub/fifo", "x")), Reason::NotARegularFile);
    assert_eq!(reason(edit(&fx, "sub/fifo")), Reason::NotARegularFile);
    // Listed as OTHER, skipped by grep (which would block reading it).
    assert!(list(&fx, "sub").unwrap().contains(&"sub/fifo".to_string()));
    assert!(grep_files(&fx, "sub").unwrap().is_empty());
    let s = stat_of(&fx, "sub/fifo").unwrap();
    assert_eq!(s.kind, EntryKind::Other as i32);
}

#[test]
fn f15_hundred_thousand_entries_are_truncated() {
    let fx = Fixture::new();
    fx.dir("big");
    for i in 0..(MAX_SCAN_ENTRIES + 10) {
        std::fs::File::create(fx.abs("big").join(i.to_string())).unwrap();
    }
    let req = ListDirRequest {
        path: "big".into(),
        ..Default::default()
    };
    let r = list_dir(&fx.ws, &fx.limits, &req).unwrap().response;
    assert!(r.scan_truncated);
    assert_eq!(r.entries.len(), 1000);
}
