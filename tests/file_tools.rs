//! Every file RPC through the real daemon: the happy path and each error
//! reason.

mod common;

use agentjail::proto::*;
use common::*;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime};

// ---------------------------------------------------------------- WhoAmI

#[tokio::test]
async fn whoami_names_the_agent_and_its_workspaces() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    let who = ok(c.who_am_i(WhoAmIRequest {}).await);
    assert_eq!(who.agent, AGENT);
    assert_eq!(who.identified_by, "unix-peer");
    assert_eq!(who.uid, my_uid());
    assert_eq!(who.pid, std::process::id());
    let ws: Vec<_> = who
        .workspaces
        .iter()
        .map(|w| (w.name.as_str(), w.path.clone(), w.read_only))
        .collect();
    assert_eq!(
        ws,
        vec![
            ("main", d.dirs.ws.display().to_string(), false),
            ("ro", d.dirs.ro.display().to_string(), true)
        ]
    );
}

// -------------------------------------------------------------- ReadFile

fn numbered_lines(n: usize) -> String {
    (0..n).map(|i| format!("line{i}\n")).collect()
}

#[tokio::test]
async fn read_file_whole_file_reports_metadata() {
    let d = Daemon::start().await;
    let content = numbered_lines(10);
    put(&d.dirs.w("ten.txt"), &content);
    let mtime = std::fs::metadata(d.dirs.w("ten.txt")).unwrap().mtime();
    let mut c = d.client().await;
    let r = ok(c.read_file(read_req("ten.txt")).await);
    assert_eq!(r.path, "ten.txt");
    assert_eq!(r.text, content);
    assert!(!r.is_binary);
    assert!(r.data.is_empty());
    assert_eq!(r.encoding, "utf-8");
    assert_eq!(r.line_ending, LineEnding::Lf as i32);
    assert_eq!(r.total_lines, 10);
    assert_eq!(r.total_bytes, content.len() as u64);
    assert_eq!(r.sha256, sha256_hex(&content));
    assert_eq!(r.offset, 0);
    assert_eq!(r.lines_returned, 10);
    assert!(!r.truncated);
    let ts = r.mtime.expect("mtime");
    assert_eq!(ts.seconds, mtime);
}

#[tokio::test]
async fn read_file_line_window_truncates_and_gives_next_offset() {
    let d = Daemon::start().await;
    let content = numbered_lines(10);
    put(&d.dirs.w("ten.txt"), &content);
    let mut c = d.client().await;
    let r = ok(c.read_file(read_lines("ten.txt", 2, 3)).await);
    assert_eq!(r.text, "line2\nline3\nline4\n");
    assert_eq!(r.offset, 2);
    assert_eq!(r.lines_returned, 3);
    assert!(r.truncated);
    assert_eq!(r.next_offset, 5);
    assert_eq!(r.total_lines, 10);
    // sha256 is always of the whole file.
    assert_eq!(r.sha256, sha256_hex(&content));

    // Continuing from next_offset reaches the end.
    let r = ok(c.read_file(read_lines("ten.txt", 5, 100)).await);
    assert_eq!(r.text, "line5\nline6\nline7\nline8\nline9\n");
    assert_eq!(r.lines_returned, 5);
    assert!(!r.truncated);

    // Past the end: nothing, not an error.
    let r = ok(c.read_file(read_lines("ten.txt", 50, 10)).await);
    assert_eq!(r.text, "");
    assert_eq!(r.lines_returned, 0);
}

#[tokio::test]
async fn read_file_default_window_is_2000_lines() {
    let d = Daemon::start().await;
    let content = numbered_lines(2500);
    put(&d.dirs.w("long.txt"), &content);
    let mut c = d.client().await;
    let r = ok(c.read_file(read_req("long.txt")).await);
    assert_eq!(r.lines_returned, 2000);
    assert!(r.truncated);
    assert_eq!(r.next_offset, 2000);
    assert_eq!(r.total_lines, 2500);
    assert_eq!(r.text, numbered_lines(2000));
}

#[tokio::test]
async fn read_file_max_bytes_cuts_the_window_at_a_line() {
    let d = Daemon::start().await;
    // 1000 lines of 100 bytes.
    let content: String = (0..1000).map(|i| format!("{i:099}\n")).collect();
    put(&d.dirs.w("wide.txt"), &content);
    let mut c = d.client().await;
    let mut req = read_req("wide.txt");
    req.max_bytes = 1000;
    let r = ok(c.read_file(req).await);
    assert!(r.truncated);
    assert!(r.text.len() <= 1000, "returned {} bytes", r.text.len());
    assert!(r.lines_returned >= 1);
    assert_eq!(r.next_offset, r.lines_returned);
    assert_eq!(r.text, content[..r.text.len()]);
    // Continue where it stopped.
    let mut req = read_lines("wide.txt", r.next_offset, 1);
    req.max_bytes = 1000;
    let r2 = ok(c.read_file(req).await);
    assert_eq!(r2.text, format!("{:099}\n", r.next_offset));
}

#[tokio::test]
async fn read_file_is_capped_by_the_policy_max_read_bytes() {
    let d = Daemon::start().await;
    // 400 KiB of text, more than the policy's 256 KiB.
    let content: String = (0..4096).map(|i| format!("{i:099}\n")).collect();
    put(&d.dirs.w("big.txt"), &content);
    let mut c = d.client().await;
    let mut req = read_lines("big.txt", 0, 4096);
    req.max_bytes = 100 * 1024 * 1024; // asks for more than allowed
    let r = ok(c.read_file(req).await);
    assert!(r.truncated);
    assert!(r.text.len() <= 262144, "returned {} bytes", r.text.len());
    assert_eq!(r.next_offset, r.lines_returned);
    // Byte windows are capped too.
    let mut req = read_bytes("big.txt", 0, 400 * 1024);
    req.max_bytes = 100 * 1024 * 1024;
    let r = ok(c.read_file(req).await);
    assert!(content_of(&r).len() <= 262144);
    assert!(r.truncated);
}

#[tokio::test]
async fn read_file_byte_window() {
    let d = Daemon::start().await;
    let content = "0123456789abcdefghijklmnopqrstuvwxyz";
    put(&d.dirs.w("bytes.txt"), content);
    let mut c = d.client().await;
    let r = ok(c.read_file(read_bytes("bytes.txt", 5, 10)).await);
    assert_eq!(content_of(&r), b"56789abcde");
    assert_eq!(r.offset, 5);
    assert!(r.truncated);
    assert_eq!(r.next_offset, 15);
    assert_eq!(r.total_bytes, content.len() as u64);
    assert_eq!(r.sha256, sha256_hex(content));
    // Up to the end.
    let r = ok(c.read_file(read_bytes("bytes.txt", 30, 100)).await);
    assert_eq!(content_of(&r), b"uvwxyz");
    assert!(!r.truncated);
    // limit 0 means up to max_bytes.
    let mut req = read_bytes("bytes.txt", 0, 0);
    req.max_bytes = 4;
    let r = ok(c.read_file(req).await);
    assert_eq!(content_of(&r), b"0123");
    assert!(r.truncated);
    assert_eq!(r.next_offset, 4);
}

#[tokio::test]
async fn read_file_binary_comes_back_as_bytes() {
    let d = Daemon::start().await;
    let content: Vec<u8> = vec![0x89, b'P', b'N', b'G', 0, 0, 0xff, 0xfe, b'\n', 0x00, 0x80];
    put(&d.dirs.w("img.bin"), &content);
    let mut c = d.client().await;
    let r = ok(c.read_file(read_req("img.bin")).await);
    assert!(r.is_binary);
    assert_eq!(r.data, content);
    assert!(r.text.is_empty());
    assert_eq!(r.encoding, "binary");
    assert_eq!(r.total_lines, 0);
    assert_eq!(r.total_bytes, content.len() as u64);
    assert_eq!(r.sha256, sha256_hex(&content));
    // Invalid UTF-8 without NULs is binary too, not a decode error.
    put(&d.dirs.w("latin1.txt"), b"caf\xe9\n");
    let r = ok(c.read_file(read_req("latin1.txt")).await);
    assert!(r.is_binary);
    assert_eq!(r.data, &b"caf\xe9\n"[..]);
}

#[tokio::test]
async fn read_file_reports_line_endings() {
    let d = Daemon::start().await;
    put(&d.dirs.w("lf.txt"), "a\nb\n");
    put(&d.dirs.w("crlf.txt"), "a\r\nb\r\n");
    put(&d.dirs.w("mixed.txt"), "a\r\nb\nc\n");
    put(&d.dirs.w("none.txt"), "no newline at all");
    let mut c = d.client().await;
    for (file, ending, lines) in [
        ("lf.txt", LineEnding::Lf, 2),
        ("crlf.txt", LineEnding::Crlf, 2),
        ("mixed.txt", LineEnding::Mixed, 3),
        ("none.txt", LineEnding::None, 1),
    ] {
        let r = ok(c.read_file(read_req(file)).await);
        assert_eq!(r.line_ending, ending as i32, "{file}");
        assert_eq!(r.total_lines, lines, "{file}");
    }
    let r = ok(c.read_file(read_req("crlf.txt")).await);
    assert_eq!(r.text, "a\r\nb\r\n", "CRLF text comes back unchanged");
    // An empty file.
    put(&d.dirs.w("empty.txt"), "");
    let r = ok(c.read_file(read_req("empty.txt")).await);
    assert_eq!(r.text, "");
    assert_eq!(r.total_bytes, 0);
    assert_eq!(r.total_lines, 0);
    assert_eq!(r.sha256, sha256_hex(""));
}

#[tokio::test]
async fn read_file_errors() {
    let d = Daemon::start().await;
    put(&d.dirs.w("f.txt"), "x\n");
    put(&d.dirs.w(".env"), "SECRET=1\n");
    std::fs::create_dir(d.dirs.w("dir")).unwrap();
    nix::unistd::mkfifo(
        &d.dirs.w("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let mut c = d.client().await;
    assert_reason(c.read_file(read_req("missing.txt")).await, "NOT_FOUND");
    assert_reason(c.read_file(read_req("dir")).await, "IS_A_DIRECTORY");
    assert_reason(
        c.read_file(read_req("f.txt/child")).await,
        "NOT_A_DIRECTORY",
    );
    // A FIFO must be refused, not opened (which would block forever).
    let r = tokio::time::timeout(Duration::from_secs(10), c.read_file(read_req("fifo")))
        .await
        .expect("reading a FIFO hung the call");
    assert_reason(r, "NOT_A_REGULAR_FILE");
    let s = assert_reason(c.read_file(read_req(".env")).await, "POLICY_DENIED");
    let rule = error_meta(&s).get("rule").cloned().unwrap_or_default();
    assert!(
        rule.contains("**/.env"),
        "rule metadata names the deny glob: {rule:?}"
    );
    let mut req = read_req("f.txt");
    req.workspace = "nope".into();
    assert_reason(c.read_file(req).await, "UNKNOWN_WORKSPACE");
    // Positive control.
    assert_eq!(ok(c.read_file(read_req("f.txt")).await).text, "x\n");
}

#[tokio::test]
async fn read_file_in_a_named_workspace() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    let mut req = read_req("readme.txt");
    req.workspace = "ro".into();
    let r = ok(c.read_file(req).await);
    assert_eq!(r.text, "read-only content\n");
    // The default workspace is the first one: the file is not there.
    assert_reason(c.read_file(read_req("readme.txt")).await, "NOT_FOUND");
}

// ------------------------------------------------------------- WriteFile

#[tokio::test]
async fn write_file_create_only() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    let mut req = write_req("new.txt", "hello\n");
    req.mode = WriteMode::CreateOnly as i32;
    let r = ok(c.write_file(req.clone()).await);
    assert_eq!(r.path, "new.txt");
    assert!(r.created);
    assert_eq!(r.bytes_written, 6);
    assert_eq!(r.sha256, sha256_hex("hello\n"));
    assert_eq!(r.previous_sha256, "");
    assert_eq!(get(&d.dirs.w("new.txt")), "hello\n");
    req.content = b"second\n".to_vec();
    assert_reason(c.write_file(req).await, "ALREADY_EXISTS");
    assert_eq!(get(&d.dirs.w("new.txt")), "hello\n");
}

#[tokio::test]
async fn write_file_overwrite() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    let mut req = write_req("f.txt", "new\n");
    req.mode = WriteMode::Overwrite as i32;
    assert_reason(c.write_file(req.clone()).await, "NOT_FOUND");
    assert!(!exists(&d.dirs.w("f.txt")), "OVERWRITE must not create");
    put(&d.dirs.w("f.txt"), "old\n");
    let r = ok(c.write_file(req).await);
    assert!(!r.created);
    assert_eq!(r.previous_sha256, sha256_hex("old\n"));
    assert_eq!(r.sha256, sha256_hex("new\n"));
    assert_eq!(get(&d.dirs.w("f.txt")), "new\n");
}

#[tokio::test]
async fn write_file_upsert_and_unspecified() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    let r = ok(c.write_file(write_req("u.txt", "one")).await);
    assert!(r.created);
    let r = ok(c.write_file(write_req("u.txt", "two")).await);
    assert!(!r.created);
    assert_eq!(r.previous_sha256, sha256_hex("one"));
    assert_eq!(get(&d.dirs.w("u.txt")), "two");
    let mut req = write_req("v.txt", "three");
    req.mode = WriteMode::Unspecified as i32;
    assert!(ok(c.write_file(req.clone()).await).created);
    req.content = b"four".to_vec();
    assert!(!ok(c.write_file(req).await).created);
    assert_eq!(get(&d.dirs.w("v.txt")), "four");
    // Empty content is a valid file.
    ok(c.write_file(write_req("empty.txt", "")).await);
    assert_eq!(get(&d.dirs.w("empty.txt")), "");
    // Binary content round-trips.
    let bin = vec![0u8, 1, 2, 255, 254, 0];
    ok(c.write_file(write_req("bin.dat", bin.clone())).await);
    assert_eq!(std::fs::read(d.dirs.w("bin.dat")).unwrap(), bin);
}

#[tokio::test]
async fn write_file_leaves_no_temp_files() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    for i in 0..20 {
        ok(c.write_file(write_req("f.txt", format!("v{i}"))).await);
    }
    let mut req = write_req("f.txt", "x");
    req.mode = WriteMode::CreateOnly as i32;
    assert_reason(c.write_file(req).await, "ALREADY_EXISTS");
    assert_eq!(list_names(&d.dirs.ws), vec!["f.txt".to_string()]);
}

#[tokio::test]
async fn write_file_create_parents() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    assert_reason(c.write_file(write_req("a/b/c.txt", "x")).await, "NOT_FOUND");
    assert!(
        !exists(&d.dirs.w("a")),
        "no parent created without create_parents"
    );
    let mut req = write_req("a/b/c.txt", "x");
    req.create_parents = true;
    let r = ok(c.write_file(req).await);
    assert_eq!(r.path, "a/b/c.txt");
    assert_eq!(get(&d.dirs.w("a/b/c.txt")), "x");
    // A file in the way of a parent.
    put(&d.dirs.w("file"), "f");
    let mut req = write_req("file/sub/x.txt", "x");
    req.create_parents = true;
    assert_reason(c.write_file(req).await, "NOT_A_DIRECTORY");
    assert_eq!(get(&d.dirs.w("file")), "f");
}

#[tokio::test]
async fn write_file_expected_sha256() {
    let d = Daemon::start().await;
    put(&d.dirs.w("f.txt"), "v1\n");
    let mut c = d.client().await;
    let read = ok(c.read_file(read_req("f.txt")).await);
    // Someone else changes the file.
    put(&d.dirs.w("f.txt"), "v2 by someone else\n");
    let mut req = write_req("f.txt", "mine\n");
    req.expected_sha256 = read.sha256.clone();
    let s = assert_reason(c.write_file(req.clone()).await, "STALE_CONTENT");
    assert_eq!(s.code(), tonic::Code::FailedPrecondition);
    assert_eq!(get(&d.dirs.w("f.txt")), "v2 by someone else\n");
    // With the current hash it goes through.
    req.expected_sha256 = sha256_hex("v2 by someone else\n");
    ok(c.write_file(req).await);
    assert_eq!(get(&d.dirs.w("f.txt")), "mine\n");
    // expected_sha256 on a missing file cannot match.
    let mut req = write_req("missing.txt", "x");
    req.expected_sha256 = sha256_hex("anything");
    assert_reason_in(c.write_file(req).await, &["STALE_CONTENT", "NOT_FOUND"]);
    assert!(!exists(&d.dirs.w("missing.txt")));
}

#[tokio::test]
async fn write_file_keeps_an_existing_files_mode() {
    let d = Daemon::start().await;
    put(&d.dirs.w("script.sh"), "#!/bin/sh\n");
    set_mode(&d.dirs.w("script.sh"), 0o751);
    put(&d.dirs.w("private.txt"), "p");
    set_mode(&d.dirs.w("private.txt"), 0o600);
    let mut c = d.client().await;
    ok(c.write_file(write_req("script.sh", "#!/bin/sh\necho hi\n"))
        .await);
    assert_eq!(mode_of(&d.dirs.w("script.sh")), 0o751);
    ok(c.write_file(write_req("private.txt", "q")).await);
    assert_eq!(mode_of(&d.dirs.w("private.txt")), 0o600);
    ok(c.edit_file(edit_req("script.sh", "hi", "ho")).await);
    assert_eq!(mode_of(&d.dirs.w("script.sh")), 0o751);
    assert_eq!(get(&d.dirs.w("script.sh")), "#!/bin/sh\necho ho\n");
}

#[tokio::test]
async fn files_created_belong_to_the_workspace_owner() {
    require_root("chown of the workspace");
    let dirs = Dirs::new();
    nix::unistd::chown(
        &dirs.ws,
        Some(nix::unistd::Uid::from_raw(1234)),
        Some(nix::unistd::Gid::from_raw(1235)),
    )
    .unwrap();
    let policy = standard_policy(&dirs);
    let d = Daemon::start_with(dirs, &policy, "").await;
    let mut c = d.client().await;
    let owner = |rel: &str| {
        let m = std::fs::symlink_metadata(d.dirs.w(rel)).unwrap();
        (m.uid(), m.gid())
    };
    ok(c.write_file(write_req("new.txt", "x")).await);
    assert_eq!(owner("new.txt"), (1234, 1235), "WriteFile");
    let mut req = write_req("p/q/deep.txt", "x");
    req.create_parents = true;
    ok(c.write_file(req).await);
    assert_eq!(
        owner("p/q/deep.txt"),
        (1234, 1235),
        "WriteFile create_parents"
    );
    assert_eq!(owner("p"), (1234, 1235), "parent made by create_parents");
    assert_eq!(owner("p/q"), (1234, 1235), "parent made by create_parents");
    ok(c.make_dir(mkdir_req("m/n", true)).await);
    assert_eq!(owner("m"), (1234, 1235), "MakeDir");
    assert_eq!(owner("m/n"), (1234, 1235), "MakeDir");
    // Replacing an existing file keeps it the owner's too.
    ok(c.write_file(write_req("new.txt", "y")).await);
    assert_eq!(owner("new.txt"), (1234, 1235), "replaced file");
    ok(c.edit_file(edit_req("new.txt", "y", "z")).await);
    assert_eq!(owner("new.txt"), (1234, 1235), "edited file");
}

#[tokio::test]
async fn write_file_errors() {
    let d = Daemon::start().await;
    std::fs::create_dir(d.dirs.w("dir")).unwrap();
    let mut c = d.client().await;
    assert_reason(c.write_file(write_req("dir", "x")).await, "IS_A_DIRECTORY");
    assert!(std::fs::metadata(d.dirs.w("dir")).unwrap().is_dir());
    let s = assert_reason(
        c.write_file(write_req("key.pem", "x")).await,
        "POLICY_DENIED",
    );
    assert!(
        error_meta(&s)
            .get("rule")
            .is_some_and(|r| r.contains("*.pem"))
    );
    assert!(!exists(&d.dirs.w("key.pem")));
    let mut req = write_req("x.txt", "x");
    req.workspace = "nope".into();
    assert_reason(c.write_file(req).await, "UNKNOWN_WORKSPACE");
    assert!(!exists(&d.dirs.w("x.txt")));
}

// -------------------------------------------------------------- EditFile

#[tokio::test]
async fn edit_file_replaces_exactly_once_and_returns_diff() {
    let d = Daemon::start().await;
    let before = "fn main() {\n    println!(\"hello world\");\n}\n";
    let after = "fn main() {\n    println!(\"hello there\");\n}\n";
    put(&d.dirs.w("main.rs"), before);
    let mut c = d.client().await;
    let r = ok(c.edit_file(edit_req("main.rs", "world", "there")).await);
    assert!(r.applied);
    assert_eq!(r.path, "main.rs");
    assert_eq!(r.replacements, vec![1]);
    assert_eq!(r.sha256, sha256_hex(after));
    assert_eq!(r.previous_sha256, sha256_hex(before));
    assert!(
        r.diff.contains("-    println!(\"hello world\");"),
        "{}",
        r.diff
    );
    assert!(
        r.diff.contains("+    println!(\"hello there\");"),
        "{}",
        r.diff
    );
    assert!(
        r.diff.contains("@@"),
        "a unified diff has hunks: {}",
        r.diff
    );
    assert_eq!(get(&d.dirs.w("main.rs")), after);
}

#[tokio::test]
async fn edit_file_match_not_found_names_the_nearest_line() {
    let d = Daemon::start().await;
    let content = "alpha\nbeta gamma delta\nepsilon\n";
    put(&d.dirs.w("f.txt"), content);
    let mut c = d.client().await;
    let s = assert_reason(
        c.edit_file(edit_req("f.txt", "beta gama delta", "x")).await,
        "MATCH_NOT_FOUND",
    );
    let text = error_text(&s);
    assert!(
        text.contains("beta gamma delta") || numbers_in(&text).contains(&2),
        "the error shows the nearest line (2: \"beta gamma delta\"): {text}"
    );
    assert_eq!(get(&d.dirs.w("f.txt")), content);
}

#[tokio::test]
async fn edit_file_match_ambiguous_gives_count_and_lines() {
    let d = Daemon::start().await;
    let content = "x\nfoo\ny\nfoo\nz\nfoo\n";
    put(&d.dirs.w("f.txt"), content);
    let mut c = d.client().await;
    let s = assert_reason(
        c.edit_file(edit_req("f.txt", "foo", "bar")).await,
        "MATCH_AMBIGUOUS",
    );
    let nums = numbers_in(&error_text(&s));
    for n in [3, 2, 4, 6] {
        assert!(
            nums.contains(&n),
            "count 3 and lines 2, 4, 6 in the error: {}",
            error_text(&s)
        );
    }
    assert_eq!(get(&d.dirs.w("f.txt")), content);
}

#[tokio::test]
async fn edit_file_replace_all() {
    let d = Daemon::start().await;
    put(&d.dirs.w("f.txt"), "x\nfoo\ny\nfoo\nz\nfoo\n");
    let mut c = d.client().await;
    let mut req = edit_req("f.txt", "foo", "bar");
    req.edits[0].replace_all = true;
    let r = ok(c.edit_file(req).await);
    assert_eq!(r.replacements, vec![3]);
    assert_eq!(get(&d.dirs.w("f.txt")), "x\nbar\ny\nbar\nz\nbar\n");
    // replace_all with no match is still MATCH_NOT_FOUND.
    let mut req = edit_req("f.txt", "foo", "bar");
    req.edits[0].replace_all = true;
    assert_reason(c.edit_file(req).await, "MATCH_NOT_FOUND");
}

#[tokio::test]
async fn edit_file_applies_in_order_all_or_none() {
    let d = Daemon::start().await;
    let content = "one two three\n";
    put(&d.dirs.w("f.txt"), content);
    let mut c = d.client().await;
    // Second edit fails: nothing is written.
    let mut req = edit_req("f.txt", "one", "ONE");
    req.edits.push(Edit {
        old: "four".into(),
        new: "FOUR".into(),
        replace_all: false,
    });
    assert_reason(c.edit_file(req).await, "MATCH_NOT_FOUND");
    assert_eq!(get(&d.dirs.w("f.txt")), content);
    // Each edit sees the result of the previous one.
    let mut req = edit_req("f.txt", "one", "uno");
    req.edits.push(Edit {
        old: "uno two".into(),
        new: "uno dos".into(),
        replace_all: false,
    });
    let r = ok(c.edit_file(req).await);
    assert_eq!(r.replacements, vec![1, 1]);
    assert_eq!(get(&d.dirs.w("f.txt")), "uno dos three\n");
}

#[tokio::test]
async fn edit_file_dry_run_writes_nothing() {
    let d = Daemon::start().await;
    let content = "hello world\n";
    put(&d.dirs.w("f.txt"), content);
    let mtime = std::fs::metadata(d.dirs.w("f.txt"))
        .unwrap()
        .modified()
        .unwrap();
    let mut c = d.client().await;
    let mut req = edit_req("f.txt", "world", "moon");
    req.dry_run = true;
    let r = ok(c.edit_file(req).await);
    assert!(!r.applied);
    assert_eq!(r.sha256, sha256_hex("hello moon\n"));
    assert!(r.diff.contains("+hello moon"), "{}", r.diff);
    assert_eq!(get(&d.dirs.w("f.txt")), content);
    assert_eq!(
        std::fs::metadata(d.dirs.w("f.txt"))
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );
    assert_eq!(list_names(&d.dirs.ws), vec!["f.txt".to_string()]);
}

#[tokio::test]
async fn edit_file_errors() {
    let d = Daemon::start().await;
    put(&d.dirs.w("f.txt"), "v1\n");
    put(&d.dirs.w(".env"), "A=1\n");
    std::fs::create_dir(d.dirs.w("dir")).unwrap();
    let mut c = d.client().await;
    let mut req = edit_req("f.txt", "v1", "v2");
    req.expected_sha256 = sha256_hex("something else");
    assert_reason(c.edit_file(req).await, "STALE_CONTENT");
    assert_eq!(get(&d.dirs.w("f.txt")), "v1\n");
    let mut req = edit_req("f.txt", "v1", "v2");
    req.expected_sha256 = sha256_hex("v1\n");
    ok(c.edit_file(req).await);
    assert_eq!(get(&d.dirs.w("f.txt")), "v2\n");
    assert_reason(
        c.edit_file(edit_req("missing.txt", "a", "b")).await,
        "NOT_FOUND",
    );
    assert_reason(
        c.edit_file(edit_req("dir", "a", "b")).await,
        "IS_A_DIRECTORY",
    );
    assert_reason(
        c.edit_file(edit_req(".env", "A=1", "A=2")).await,
        "POLICY_DENIED",
    );
    assert_eq!(get(&d.dirs.w(".env")), "A=1\n");
    // No edits at all, or an empty `old`, is a bad request.
    let mut req = edit_req("f.txt", "", "x");
    assert_reason(c.edit_file(req.clone()).await, "INVALID_ARGUMENT");
    req.edits.clear();
    assert_reason(c.edit_file(req).await, "INVALID_ARGUMENT");
    assert_eq!(get(&d.dirs.w("f.txt")), "v2\n");
}

// --------------------------------------------------------------- ListDir

fn paths(r: &ListDirResponse) -> Vec<String> {
    r.entries.iter().map(|e| e.path.clone()).collect()
}

fn setup_tree(d: &Daemon) {
    put(&d.dirs.w("a.txt"), "aaaa");
    put(&d.dirs.w("b/c.txt"), "c");
    put(&d.dirs.w("b/d/e.txt"), "e");
    put(&d.dirs.w(".hidden"), "h");
    put(&d.dirs.w(".gitignore"), "ignored.txt\n");
    put(&d.dirs.w("ignored.txt"), "i");
}

#[tokio::test]
async fn list_dir_depth_and_kinds() {
    let d = Daemon::start().await;
    setup_tree(&d);
    symlink("a.txt", &d.dirs.w("link"));
    let mut c = d.client().await;
    let mut req = list_req("");
    req.sort = SortOrder::Name as i32;
    let r = ok(c.list_dir(req.clone()).await);
    assert_eq!(paths(&r), vec!["a.txt", "b", "ignored.txt", "link"]);
    assert!(r.next_page_token.is_empty());
    for e in &r.entries {
        assert_eq!(e.depth, 1);
        let want = match e.path.as_str() {
            "a.txt" | "ignored.txt" => EntryKind::File,
            "b" => EntryKind::Dir,
            "link" => EntryKind::Symlink,
            _ => unreachable!(),
        };
        assert_eq!(e.kind, want as i32, "{}", e.path);
        assert!(e.mtime.is_some());
    }
    assert_eq!(r.entries[0].size, 4);

    req.depth = 2;
    let r = ok(c.list_dir(req.clone()).await);
    assert_eq!(
        paths(&r),
        vec!["a.txt", "b", "b/c.txt", "b/d", "ignored.txt", "link"]
    );
    let depth_of = |p: &str| r.entries.iter().find(|e| e.path == p).unwrap().depth;
    assert_eq!(depth_of("b/c.txt"), 2);
    assert_eq!(depth_of("b"), 1);

    // A subdirectory: paths stay workspace-relative.
    let mut sub = list_req("b");
    sub.sort = SortOrder::Name as i32;
    sub.depth = 5;
    let r = ok(c.list_dir(sub).await);
    assert_eq!(paths(&r), vec!["b/c.txt", "b/d", "b/d/e.txt"]);
}

#[tokio::test]
async fn list_dir_hidden_and_gitignore() {
    let d = Daemon::start().await;
    setup_tree(&d);
    let mut c = d.client().await;
    let mut req = list_req("");
    req.sort = SortOrder::Name as i32;
    req.include_hidden = true;
    let r = ok(c.list_dir(req.clone()).await);
    assert_eq!(
        paths(&r),
        vec![".gitignore", ".hidden", "a.txt", "b", "ignored.txt"]
    );
    req.respect_gitignore = Some(true);
    let r = ok(c.list_dir(req.clone()).await);
    assert_eq!(paths(&r), vec![".gitignore", ".hidden", "a.txt", "b"]);
    req.include_hidden = false;
    let r = ok(c.list_dir(req).await);
    assert_eq!(paths(&r), vec!["a.txt", "b"]);
}

#[tokio::test]
async fn list_dir_sort_orders() {
    let d = Daemon::start().await;
    let now = SystemTime::now();
    for (name, size, age) in [("small", 1, 30), ("large", 300, 10), ("medium", 20, 20)] {
        put(&d.dirs.w(name), "x".repeat(size));
        let f = std::fs::File::options()
            .write(true)
            .open(d.dirs.w(name))
            .unwrap();
        f.set_modified(now - Duration::from_secs(age * 60)).unwrap();
    }
    let mut c = d.client().await;
    let mut req = list_req("");
    req.sort = SortOrder::Name as i32;
    assert_eq!(
        paths(&ok(c.list_dir(req.clone()).await)),
        vec!["large", "medium", "small"]
    );
    req.sort = SortOrder::Unspecified as i32;
    assert_eq!(
        paths(&ok(c.list_dir(req.clone()).await)),
        vec!["large", "medium", "small"]
    );
    req.sort = SortOrder::Size as i32;
    assert_eq!(
        paths(&ok(c.list_dir(req.clone()).await)),
        vec!["large", "medium", "small"]
    );
    req.sort = SortOrder::Mtime as i32;
    assert_eq!(
        paths(&ok(c.list_dir(req.clone()).await)),
        vec!["large", "medium", "small"]
    );
    // Make "small" newest: mtime order changes, size order does not.
    let f = std::fs::File::options()
        .write(true)
        .open(d.dirs.w("small"))
        .unwrap();
    f.set_modified(now).unwrap();
    assert_eq!(
        paths(&ok(c.list_dir(req.clone()).await)),
        vec!["small", "large", "medium"]
    );
    req.sort = SortOrder::Size as i32;
    assert_eq!(
        paths(&ok(c.list_dir(req).await)),
        vec!["large", "medium", "small"]
    );
}

#[tokio::test]
async fn list_dir_pages() {
    let d = Daemon::start().await;
    for i in 0..25 {
        put(&d.dirs.w(&format!("f{i:02}")), "x");
    }
    let mut c = d.client().await;
    let mut req = list_req("");
    req.sort = SortOrder::Name as i32;
    req.max_entries = 10;
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let r = ok(c.list_dir(req.clone()).await);
        pages += 1;
        assert!(r.entries.len() <= 10);
        all.extend(paths(&r));
        if r.next_page_token.is_empty() {
            break;
        }
        assert!(pages < 10, "paging does not end");
        req.page_token = r.next_page_token;
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..25).map(|i| format!("f{i:02}")).collect();
    assert_eq!(all, expected);
    // A garbage page token is a bad request, not a crash.
    let mut req = list_req("");
    req.page_token = "not-a-token\u{0}".into();
    assert_reason(c.list_dir(req).await, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn list_dir_errors() {
    let d = Daemon::start().await;
    put(&d.dirs.w("f.txt"), "x");
    let mut c = d.client().await;
    assert_reason(c.list_dir(list_req("missing")).await, "NOT_FOUND");
    assert_reason(c.list_dir(list_req("f.txt")).await, "NOT_A_DIRECTORY");
    let mut req = list_req("");
    req.workspace = "nope".into();
    assert_reason(c.list_dir(req).await, "UNKNOWN_WORKSPACE");
}

// ------------------------------------------------------------------ Glob

#[tokio::test]
async fn glob_matches_relative_to_path() {
    let d = Daemon::start().await;
    put(&d.dirs.w("top.rs"), "");
    put(&d.dirs.w("src/main.rs"), "");
    put(&d.dirs.w("src/lib/x.rs"), "");
    put(&d.dirs.w("src/readme.md"), "");
    put(&d.dirs.w(".hidden/h.rs"), "");
    let mut c = d.client().await;
    let mut req = glob_req("**/*.rs");
    req.sort = SortOrder::Name as i32;
    let r = ok(c.glob(req.clone()).await);
    assert_eq!(r.paths, vec!["src/lib/x.rs", "src/main.rs", "top.rs"]);
    assert!(!r.truncated);
    req.include_hidden = true;
    let r = ok(c.glob(req).await);
    assert_eq!(
        r.paths,
        vec![".hidden/h.rs", "src/lib/x.rs", "src/main.rs", "top.rs"]
    );
    // `*` does not cross `/`.
    let mut req = glob_req("*.rs");
    req.sort = SortOrder::Name as i32;
    assert_eq!(ok(c.glob(req.clone()).await).paths, vec!["top.rs"]);
    // From a subdirectory; results stay workspace-relative.
    req.path = "src".into();
    assert_eq!(ok(c.glob(req).await).paths, vec!["src/main.rs"]);
    // No match is an empty answer.
    assert!(ok(c.glob(glob_req("**/*.java")).await).paths.is_empty());
}

#[tokio::test]
async fn glob_default_sort_is_newest_first_and_max_results() {
    let d = Daemon::start().await;
    let now = SystemTime::now();
    for (i, name) in ["old.txt", "mid.txt", "new.txt"].iter().enumerate() {
        put(&d.dirs.w(name), "x");
        let f = std::fs::File::options()
            .write(true)
            .open(d.dirs.w(name))
            .unwrap();
        f.set_modified(now - Duration::from_secs((3 - i as u64) * 100))
            .unwrap();
    }
    let mut c = d.client().await;
    let r = ok(c.glob(glob_req("*.txt")).await);
    assert_eq!(r.paths, vec!["new.txt", "mid.txt", "old.txt"]);
    let mut req = glob_req("*.txt");
    req.max_results = 2;
    let r = ok(c.glob(req).await);
    assert_eq!(r.paths.len(), 2);
    assert!(r.truncated);
}

#[tokio::test]
async fn glob_gitignore_and_errors() {
    let d = Daemon::start().await;
    put(&d.dirs.w(".gitignore"), "target/\n");
    put(&d.dirs.w("target/out.rs"), "");
    put(&d.dirs.w("src.rs"), "");
    let mut c = d.client().await;
    let mut req = glob_req("**/*.rs");
    req.sort = SortOrder::Name as i32;
    assert_eq!(
        ok(c.glob(req.clone()).await).paths,
        vec!["src.rs", "target/out.rs"]
    );
    req.respect_gitignore = Some(true);
    assert_eq!(ok(c.glob(req).await).paths, vec!["src.rs"]);
    assert_reason(c.glob(glob_req("a[")).await, "INVALID_ARGUMENT");
    let mut req = glob_req("*");
    req.path = "missing".into();
    assert_reason(c.glob(req).await, "NOT_FOUND");
    let mut req = glob_req("*");
    req.workspace = "nope".into();
    assert_reason(c.glob(req).await, "UNKNOWN_WORKSPACE");
}

// ------------------------------------------------------------------ Grep

fn setup_grep(d: &Daemon) {
    put(
        &d.dirs.w("src/main.rs"),
        "fn main() {\n    let x = helper(1);\n    println!(\"{x}\");\n}\n",
    );
    put(
        &d.dirs.w("src/lib.rs"),
        "pub fn helper(n: u32) -> u32 {\n    n + 1\n}\n// TODO: a.b(\n",
    );
    put(
        &d.dirs.w("notes.md"),
        "Helper notes\nnothing else\nTODO later\n",
    );
}

#[tokio::test]
async fn grep_regex_files_mode() {
    let d = Daemon::start().await;
    setup_grep(&d);
    let mut c = d.client().await;
    let r = ok(c.grep(grep_req(r"fn \w+\(")).await);
    let mut files = r.files.clone();
    files.sort();
    assert_eq!(files, vec!["src/lib.rs", "src/main.rs"]);
    assert!(r.lines.is_empty() && r.counts.is_empty());
    assert!(!r.truncated);
    assert!(
        r.files_searched >= 3,
        "files_searched = {}",
        r.files_searched
    );
    let mut req = grep_req("helper");
    req.output = GrepOutput::Files as i32;
    let mut files = ok(c.grep(req).await).files;
    files.sort();
    assert_eq!(files, vec!["src/lib.rs", "src/main.rs"]);
}

#[tokio::test]
async fn grep_fixed_string_and_case_insensitive() {
    let d = Daemon::start().await;
    setup_grep(&d);
    let mut c = d.client().await;
    // As a regex, "a.b(" is invalid.
    assert_reason(c.grep(grep_req("a.b(")).await, "INVALID_ARGUMENT");
    let mut req = grep_req("a.b(");
    req.fixed_string = true;
    assert_eq!(ok(c.grep(req).await).files, vec!["src/lib.rs"]);
    let mut req = grep_req("HELPER");
    assert!(ok(c.grep(req.clone()).await).files.is_empty());
    req.case_insensitive = true;
    let mut files = ok(c.grep(req).await).files;
    files.sort();
    assert_eq!(files, vec!["notes.md", "src/lib.rs", "src/main.rs"]);
}

#[tokio::test]
async fn grep_glob_filter_and_path() {
    let d = Daemon::start().await;
    setup_grep(&d);
    let mut c = d.client().await;
    let mut req = grep_req("TODO");
    let mut files = ok(c.grep(req.clone()).await).files;
    files.sort();
    assert_eq!(files, vec!["notes.md", "src/lib.rs"]);
    req.glob = "*.rs".into();
    assert_eq!(ok(c.grep(req.clone()).await).files, vec!["src/lib.rs"]);
    req.glob = "*.md".into();
    assert_eq!(ok(c.grep(req.clone()).await).files, vec!["notes.md"]);
    req.glob = String::new();
    req.path = "src".into();
    assert_eq!(ok(c.grep(req.clone()).await).files, vec!["src/lib.rs"]);
    // A single file as the path.
    req.path = "notes.md".into();
    assert_eq!(ok(c.grep(req.clone()).await).files, vec!["notes.md"]);
    req.path = "missing".into();
    assert_reason(c.grep(req).await, "NOT_FOUND");
}

#[tokio::test]
async fn grep_content_mode_with_context() {
    let d = Daemon::start().await;
    setup_grep(&d);
    let mut c = d.client().await;
    let mut req = grep_req("let x");
    req.output = GrepOutput::Content as i32;
    let r = ok(c.grep(req.clone()).await);
    assert_eq!(r.lines.len(), 1);
    let l = &r.lines[0];
    assert_eq!(
        (
            l.path.as_str(),
            l.line_number,
            l.text.trim_end(),
            l.is_match
        ),
        ("src/main.rs", 2, "    let x = helper(1);", true)
    );
    req.context_before = 1;
    req.context_after = 1;
    let r = ok(c.grep(req).await);
    let got: Vec<_> = r
        .lines
        .iter()
        .map(|l| (l.line_number, l.is_match, l.text.trim_end().to_string()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, false, "fn main() {".to_string()),
            (2, true, "    let x = helper(1);".to_string()),
            (3, false, "    println!(\"{x}\");".to_string()),
        ]
    );
}

#[tokio::test]
async fn grep_count_mode_and_max_results() {
    let d = Daemon::start().await;
    let content: String = (0..50).map(|i| format!("match {i}\n")).collect();
    put(&d.dirs.w("many.txt"), &content);
    put(&d.dirs.w("two.txt"), "match\nmatch\n");
    let mut c = d.client().await;
    let mut req = grep_req("match");
    req.output = GrepOutput::Count as i32;
    let r = ok(c.grep(req).await);
    let mut counts: Vec<_> = r.counts.iter().map(|c| (c.path.clone(), c.count)).collect();
    counts.sort();
    assert_eq!(counts, vec![("many.txt".into(), 50), ("two.txt".into(), 2)]);
    let mut req = grep_req("match");
    req.output = GrepOutput::Content as i32;
    req.max_results = 10;
    let r = ok(c.grep(req).await);
    assert_eq!(r.lines.len(), 10);
    assert!(r.truncated);
    let mut req = grep_req("match");
    req.max_results = 1;
    let r = ok(c.grep(req).await);
    assert_eq!(r.files.len(), 1);
    assert!(r.truncated);
}

#[tokio::test]
async fn grep_hidden_and_gitignore() {
    let d = Daemon::start().await;
    put(&d.dirs.w(".gitignore"), "build/\n");
    put(&d.dirs.w("build/gen.txt"), "needle\n");
    put(&d.dirs.w(".hidden.txt"), "needle\n");
    put(&d.dirs.w("src.txt"), "needle\n");
    let mut c = d.client().await;
    // Default: respects .gitignore and skips hidden files, like ripgrep.
    assert_eq!(ok(c.grep(grep_req("needle")).await).files, vec!["src.txt"]);
    let mut req = grep_req("needle");
    req.respect_gitignore = Some(false);
    req.include_hidden = true;
    let mut files = ok(c.grep(req).await).files;
    files.sort();
    assert_eq!(files, vec![".hidden.txt", "build/gen.txt", "src.txt"]);
}

#[tokio::test]
async fn grep_errors() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    assert_reason(c.grep(grep_req("(unclosed")).await, "INVALID_ARGUMENT");
    let mut req = grep_req("x");
    req.glob = "a[".into();
    assert_reason(c.grep(req).await, "INVALID_ARGUMENT");
    let mut req = grep_req("x");
    req.workspace = "nope".into();
    assert_reason(c.grep(req).await, "UNKNOWN_WORKSPACE");
}

// ------------------------------------------------------------------ Stat

#[tokio::test]
async fn stat_files_dirs_and_symlinks() {
    let d = Daemon::start().await;
    put(&d.dirs.w("f.txt"), "12345");
    set_mode(&d.dirs.w("f.txt"), 0o640);
    std::fs::create_dir(d.dirs.w("dir")).unwrap();
    symlink("f.txt", &d.dirs.w("link"));
    let mut c = d.client().await;
    let r = ok(c.stat(stat_req("f.txt")).await);
    assert_eq!(r.path, "f.txt");
    assert_eq!(r.kind, EntryKind::File as i32);
    assert_eq!(r.size, 5);
    assert_eq!(r.mode, 0o640);
    assert!(r.readable && r.writable);
    let mtime = std::fs::metadata(d.dirs.w("f.txt")).unwrap().mtime();
    assert_eq!(r.mtime.unwrap().seconds, mtime);
    let r = ok(c.stat(stat_req("dir")).await);
    assert_eq!(r.kind, EntryKind::Dir as i32);
    // Following the link describes the target.
    let r = ok(c.stat(stat_req("link")).await);
    assert_eq!(r.kind, EntryKind::File as i32);
    assert_eq!(r.size, 5);
    // no_follow describes the link itself.
    let mut req = stat_req("link");
    req.no_follow = true;
    let r = ok(c.stat(req).await);
    assert_eq!(r.kind, EntryKind::Symlink as i32);
    assert_eq!(r.symlink_target, "f.txt");
    // The root itself.
    let r = ok(c.stat(stat_req(".")).await);
    assert_eq!(r.kind, EntryKind::Dir as i32);
}

#[tokio::test]
async fn stat_reports_what_the_policy_allows() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    let mut req = stat_req("readme.txt");
    req.workspace = "ro".into();
    let r = ok(c.stat(req).await);
    assert!(r.readable);
    assert!(!r.writable, "a read-only workspace is not writable");
    assert_reason(c.stat(stat_req("missing")).await, "NOT_FOUND");
    let mut req = stat_req("x");
    req.workspace = "nope".into();
    assert_reason(c.stat(req).await, "UNKNOWN_WORKSPACE");
}

// --------------------------------------------------------------- MakeDir

#[tokio::test]
async fn make_dir_with_and_without_parents() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    assert_reason(c.make_dir(mkdir_req("a/b/c", false)).await, "NOT_FOUND");
    assert!(!exists(&d.dirs.w("a")));
    let r = ok(c.make_dir(mkdir_req("a/b/c", true)).await);
    assert!(r.created);
    assert_eq!(r.path, "a/b/c");
    assert!(d.dirs.w("a/b/c").is_dir());
    let r = ok(c.make_dir(mkdir_req("a/b/c", true)).await);
    assert!(!r.created, "existing directory with parents: not an error");
    assert_reason(
        c.make_dir(mkdir_req("a/b/c", false)).await,
        "ALREADY_EXISTS",
    );
    let r = ok(c.make_dir(mkdir_req("a/single", false)).await);
    assert!(r.created);
    put(&d.dirs.w("file"), "f");
    assert_reason_in(
        c.make_dir(mkdir_req("file", true)).await,
        &["ALREADY_EXISTS", "NOT_A_DIRECTORY"],
    );
    assert_reason(
        c.make_dir(mkdir_req("file/sub", true)).await,
        "NOT_A_DIRECTORY",
    );
    assert_eq!(get(&d.dirs.w("file")), "f");
    let mut req = mkdir_req("x", true);
    req.workspace = "nope".into();
    assert_reason(c.make_dir(req).await, "UNKNOWN_WORKSPACE");
}

// ------------------------------------------------------------------ Move

#[tokio::test]
async fn move_renames_and_never_overwrites_unless_asked() {
    let d = Daemon::start().await;
    put(&d.dirs.w("a.txt"), "A");
    put(&d.dirs.w("b.txt"), "B");
    let mut c = d.client().await;
    assert_reason(c.r#move(move_req("a.txt", "b.txt")).await, "ALREADY_EXISTS");
    assert_eq!(get(&d.dirs.w("a.txt")), "A");
    assert_eq!(get(&d.dirs.w("b.txt")), "B");
    let mut req = move_req("a.txt", "b.txt");
    req.overwrite = true;
    let r = ok(c.r#move(req).await);
    assert!(r.overwrote);
    assert_eq!((r.from.as_str(), r.to.as_str()), ("a.txt", "b.txt"));
    assert!(!exists(&d.dirs.w("a.txt")));
    assert_eq!(get(&d.dirs.w("b.txt")), "A");
    let r = ok(c.r#move(move_req("b.txt", "c.txt")).await);
    assert!(!r.overwrote);
    assert_eq!(get(&d.dirs.w("c.txt")), "A");
}

#[tokio::test]
async fn move_directories_and_parents() {
    let d = Daemon::start().await;
    put(&d.dirs.w("dir/x.txt"), "x");
    let mut c = d.client().await;
    assert_reason(c.r#move(move_req("dir", "p/q/dir")).await, "NOT_FOUND");
    assert!(exists(&d.dirs.w("dir/x.txt")));
    let mut req = move_req("dir", "p/q/dir");
    req.create_parents = true;
    ok(c.r#move(req).await);
    assert_eq!(get(&d.dirs.w("p/q/dir/x.txt")), "x");
    assert!(!exists(&d.dirs.w("dir")));
    // A directory into itself.
    assert_reason_in(
        c.r#move(move_req("p", "p/q/inside")).await,
        &["INVALID_ARGUMENT"],
    );
    assert!(exists(&d.dirs.w("p/q/dir/x.txt")));
    // A file onto a non-empty directory, even with overwrite.
    put(&d.dirs.w("f"), "f");
    let mut req = move_req("f", "p");
    req.overwrite = true;
    assert_reason_in(
        c.r#move(req).await,
        &["IS_A_DIRECTORY", "DIRECTORY_NOT_EMPTY", "ALREADY_EXISTS"],
    );
    assert_eq!(get(&d.dirs.w("f")), "f");
    assert!(exists(&d.dirs.w("p/q/dir/x.txt")));
}

#[tokio::test]
async fn move_errors() {
    let d = Daemon::start().await;
    put(&d.dirs.w("a.txt"), "A");
    let mut c = d.client().await;
    assert_reason(c.r#move(move_req("missing", "x")).await, "NOT_FOUND");
    assert!(!exists(&d.dirs.w("x")));
    let mut req = move_req("a.txt", "b.txt");
    req.workspace = "nope".into();
    assert_reason(c.r#move(req).await, "UNKNOWN_WORKSPACE");
    assert_eq!(list_names(&d.dirs.ws), vec!["a.txt".to_string()]);
}

// ---------------------------------------------------------------- Remove

#[tokio::test]
async fn remove_is_recursive_only_when_asked() {
    let d = Daemon::start().await;
    put(&d.dirs.w("f.txt"), "x");
    put(&d.dirs.w("full/sub/x.txt"), "x");
    std::fs::create_dir(d.dirs.w("empty")).unwrap();
    let mut c = d.client().await;
    let r = ok(c.remove(remove_req("f.txt", false)).await);
    assert!(r.removed);
    assert!(!exists(&d.dirs.w("f.txt")));
    assert_reason(
        c.remove(remove_req("full", false)).await,
        "DIRECTORY_NOT_EMPTY",
    );
    assert_eq!(get(&d.dirs.w("full/sub/x.txt")), "x");
    ok(c.remove(remove_req("empty", false)).await);
    assert!(!exists(&d.dirs.w("empty")));
    ok(c.remove(remove_req("full", true)).await);
    assert!(!exists(&d.dirs.w("full")));
    assert_reason(c.remove(remove_req("missing", false)).await, "NOT_FOUND");
    let mut req = remove_req("missing", false);
    req.missing_ok = true;
    let r = ok(c.remove(req).await);
    assert!(!r.removed);
    let mut req = remove_req("x", false);
    req.workspace = "nope".into();
    assert_reason(c.remove(req).await, "UNKNOWN_WORKSPACE");
}

#[tokio::test]
async fn remove_never_removes_the_workspace_root() {
    let d = Daemon::start().await;
    put(&d.dirs.w("keep.txt"), "x");
    let mut c = d.client().await;
    for path in ["", ".", "./", "a/..", "/"] {
        let r = c.remove(remove_req(path, true)).await;
        assert!(r.is_err(), "Remove {path:?} recursive succeeded: {r:?}");
        assert_eq!(get(&d.dirs.w("keep.txt")), "x", "after Remove {path:?}");
    }
    assert!(d.dirs.ws.is_dir());
}

#[tokio::test]
async fn remove_a_symlink_removes_the_link_only() {
    let d = Daemon::start().await;
    put(&d.dirs.w("target/t.txt"), "t");
    symlink("target", &d.dirs.w("dirlink"));
    symlink("target/t.txt", &d.dirs.w("filelink"));
    let mut c = d.client().await;
    ok(c.remove(remove_req("filelink", false)).await);
    ok(c.remove(remove_req("dirlink", true)).await);
    assert!(!exists(&d.dirs.w("filelink")));
    assert!(!exists(&d.dirs.w("dirlink")));
    assert_eq!(get(&d.dirs.w("target/t.txt")), "t");
}

// ------------------------------------------- windows and pages (issue 12)

#[tokio::test]
async fn read_file_byte_windows_return_every_byte_once_with_the_whole_hash() {
    let d = Daemon::start().await;
    // Multi-byte characters land on window edges; over the default cap.
    let content = "wörd ✓ 0123456789 ".repeat(30_000);
    put(&d.dirs.w("big.txt"), &content);
    let whole = sha256_hex(&content);
    let mut c = d.client().await;
    let (mut got, mut at, mut windows) = (String::new(), 0u64, 0);
    loop {
        let r = ok(c
            .read_file(ReadFileRequest {
                path: "big.txt".into(),
                window: Some(read_file_request::Window::Bytes(ByteWindow {
                    offset: at,
                    limit: 100_000,
                })),
                ..Default::default()
            })
            .await);
        assert_eq!(r.offset, at, "no byte skipped");
        assert_eq!(r.sha256, whole, "window {windows}: the whole file's hash");
        assert_eq!(r.total_bytes, content.len() as u64);
        got.push_str(&r.text);
        at = r.next_offset;
        windows += 1;
        if !r.truncated {
            break;
        }
    }
    assert_eq!(got, content);
    assert!(windows > 5, "{windows} windows");
}

#[tokio::test]
async fn list_dir_pages_list_each_entry_once_while_the_directory_changes() {
    let d = Daemon::start().await;
    std::fs::create_dir_all(d.dirs.w("many")).unwrap();
    let names: Vec<String> = (0..2500).map(|i| format!("many/f{i:04}")).collect();
    for n in &names {
        put(&d.dirs.w(n), "");
    }
    let mut c = d.client().await;
    let mut req = list_req("many");
    let mut seen = Vec::new();
    for page in 0.. {
        let r = ok(c.list_dir(req.clone()).await);
        seen.extend(paths(&r));
        if r.next_page_token.is_empty() {
            break;
        }
        if page == 0 {
            // After the first page: one added, one not yet listed removed.
            put(&d.dirs.w("many/f0999a"), "");
            std::fs::remove_file(d.dirs.w("many/f2000")).unwrap();
        }
        req.page_token = r.next_page_token;
    }
    // The first page's listing, each entry exactly once and in order.
    assert_eq!(seen, names);
}
