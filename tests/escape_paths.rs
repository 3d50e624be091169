//! Denied paths that stay denied whatever is renamed, and git that cannot be
//! turned against the host: cases P1–P7 of shared/escape-cases.md against
//! the real daemon. Each attack is made the way an agent would (a command,
//! then file tools, in any order); each asserts the attempt failed, that
//! nothing changed on the host, and a positive control beside it. Host git
//! is run afterwards as the workspace's owner (the sandbox uid owns it) to
//! prove that nothing the agent wrote runs.

#[path = "shell_common/mod.rs"]
mod shell_common;

use agentjail::proto::*;
use shell_common::*;
use std::os::unix::process::CommandExt;
use std::path::Path;
use tonic::Code;

fn kv(out: &str) -> std::collections::BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Each probe: run `cmd` in the shell, print `name=$?`.
fn probes(cmds: &[(&str, String)]) -> String {
    cmds.iter()
        .map(|(name, cmd)| format!("{{ {cmd}\n}} >/dev/null 2>&1; echo \"{name}=$?\"\n"))
        .collect()
}

#[track_caller]
fn assert_probes(r: &Ran, failed: &[&str], succeeded: &[&str]) {
    let m = kv(&r.stdout);
    for k in failed {
        let v = m
            .get(*k)
            .unwrap_or_else(|| panic!("probe {k} printed nothing: {r:?}"));
        assert_ne!(v, "0", "{k} succeeded but must fail: {r:?}");
    }
    for k in succeeded {
        assert_eq!(
            m.get(*k).map(String::as_str),
            Some("0"),
            "control {k} must succeed: {r:?}"
        );
    }
}

/// Gives everything in the workspace to the sandbox user (its owner).
fn chown_ws(dirs: &ShellDirs) {
    let st = std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("{SANDBOX_UID}:{SANDBOX_GID}"))
        .arg(dirs.w(""))
        .status()
        .unwrap();
    assert!(st.success());
}

fn policy(files: &str) -> Policy {
    Policy {
        files: files.into(),
        ..Policy::default()
    }
}

/// The `[agents.files]` table of the shipped default policy, as written.
fn shipped_files_table() -> String {
    let text = include_str!("../policies/default.toml");
    let start = text.find("[agents.files]").expect("files table") + "[agents.files]".len();
    let rest = &text[start..];
    let end = rest.find("\n[").unwrap_or(rest.len());
    rest[..end].to_string()
}

async fn read(d: &ShellDaemon, path: &str) -> Result<ReadFileResponse, tonic::Status> {
    let mut c = d.client().await;
    c.read_file(ReadFileRequest {
        path: path.into(),
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner())
}

fn text_of(r: &ReadFileResponse) -> String {
    format!("{}{}", r.text, String::from_utf8_lossy(&r.data))
}

/// The denied content is not returned by ReadFile, Grep or ListDir under
/// any of `names` (it may still exist on the host, unread).
async fn assert_unreadable(d: &ShellDaemon, names: &[&str], secret: &str) {
    for name in names {
        if let Ok(r) = read(d, name).await {
            assert!(
                !text_of(&r).contains(secret),
                "ReadFile {name} returned the secret"
            );
        }
    }
    let mut c = d.client().await;
    let g = c
        .grep(GrepRequest {
            pattern: secret.into(),
            fixed_string: true,
            output: GrepOutput::Content as i32,
            ..Default::default()
        })
        .await;
    if let Ok(g) = g {
        let g = format!("{:?}", g.into_inner());
        assert!(!g.contains(secret), "Grep returned the secret: {g}");
    }
}

// ------------------------------------------------------------------ P1

#[tokio::test]
async fn p1_the_ancestors_of_a_mask_cannot_be_renamed_removed_or_replaced() {
    let d = ShellDaemon::start_with(policy(
        r#"deny = ["**/.env", "conf/db/secret.txt", "vault/**"]"#,
    ))
    .await;
    let secret = "P1-SECRET-4be1";
    for rel in [".env", "a/b/.env", "conf/db/secret.txt", "vault/k"] {
        put_ws(&d.dirs, rel, format!("{secret} {rel}\n"));
    }
    put_ws(&d.dirs, "a/b/ok.txt", "ok\n");
    put_ws(&d.dirs, "free/f.txt", "free\n");
    chown_ws(&d.dirs);
    let before: Vec<_> = [".env", "a/b/.env", "conf/db/secret.txt", "vault/k"]
        .iter()
        .map(|r| std::fs::read(d.dirs.w(r)).unwrap())
        .collect();
    let w = "/workspace";
    let script = probes(&[
        // Controls first (rm -rf below removes what is not pinned).
        ("read_ok", format!("cat {w}/a/b/ok.txt")),
        ("mv_a", format!("mv {w}/a {w}/a2")),
        ("mv_ab", format!("mv {w}/a/b {w}/a/b2")),
        ("rm_a", format!("rm -rf {w}/a")),
        ("rmdir_b", format!("rmdir {w}/a/b")),
        ("mv_conf", format!("mv {w}/conf {w}/c2")),
        ("mv_db", format!("mv {w}/conf/db {w}/conf/d2")),
        (
            "replace_db",
            format!("mkdir -p {w}/x/db && mv -T {w}/x/db {w}/conf/db"),
        ),
        ("mv_vault", format!("mv {w}/vault {w}/v2")),
        ("mv_env", format!("mv {w}/.env {w}/env2")),
        ("rm_env", format!("rm -f {w}/.env")),
        ("ln_env", format!("ln {w}/a/b/.env {w}/hl")),
        ("cat_env", format!("cat {w}/a/b/.env")),
        ("cat_secret", format!("cat {w}/conf/db/secret.txt")),
        ("cat_vault", format!("cat {w}/vault/k")),
        (
            "python_rename",
            format!("python3 -c 'import os; os.rename(\"{w}/a\", \"{w}/a3\")'"),
        ),
        // Controls: pinned directories are still ordinary to work in.
        ("write_in_b", format!("echo new > {w}/a/b/new.txt")),
        ("mv_free", format!("mv {w}/free {w}/free2")),
        ("mkdir_in_conf", format!("mkdir {w}/conf/other")),
    ]);
    let r = d.sh(&script).await;
    assert_probes(
        &r,
        &[
            "mv_a",
            "mv_ab",
            "rm_a",
            "rmdir_b",
            "mv_conf",
            "mv_db",
            "replace_db",
            "mv_vault",
            "mv_env",
            "rm_env",
            "ln_env",
            "cat_env",
            "cat_secret",
            "cat_vault",
            "python_rename",
        ],
        &["write_in_b", "read_ok", "mv_free", "mkdir_in_conf"],
    );
    // The host: every denied file where it was, unchanged; controls took effect.
    for (rel, content) in [".env", "a/b/.env", "conf/db/secret.txt", "vault/k"]
        .iter()
        .zip(&before)
    {
        assert_eq!(&std::fs::read(d.dirs.w(rel)).unwrap(), content, "{rel}");
    }
    assert!(!exists(&d.dirs.w("a2")) && !exists(&d.dirs.w("c2")) && !exists(&d.dirs.w("hl")));
    assert!(exists(&d.dirs.w("a/b/new.txt")) && exists(&d.dirs.w("free2/f.txt")));
    assert!(!r.stdout.contains(secret), "{r:?}");
    // Through the file tools too, under every name a command tried.
    assert_unreadable(
        &d,
        &[
            ".env",
            "a2/b/.env",
            "a/b2/.env",
            "c2/db/secret.txt",
            "v2/k",
            "env2",
            "hl",
        ],
        secret,
    )
    .await;
}

/// The issue's first attack, verbatim: `mv .git .g; mkdir .git; …` to get a
/// fresh, writable `.git` with a hook and fsmonitor.
#[tokio::test]
async fn p1_a_command_cannot_swap_git_metadata_for_its_own() {
    require_programs(&["git"]);
    let d = ShellDaemon::start_with(policy(&shipped_files_table())).await;
    let marker = d.dirs.outside.join("p1-pwned");
    owner_repo(&d.dirs);
    let script = format!(
        "cd /workspace; mv .git .g; echo mv=$?; mkdir -p .git/hooks; \
         printf '#!/bin/sh\\ntouch {m}\\n' > .git/hooks/pre-commit; \
         chmod +x .git/hooks/pre-commit; echo hook=$?; \
         git config core.fsmonitor 'touch {m}'; echo fsmonitor=$?",
        m = marker.display()
    );
    let r = d.sh(&script).await;
    let m = kv(&r.stdout);
    for k in ["mv", "hook", "fsmonitor"] {
        assert_ne!(m.get(k).map(String::as_str), Some("0"), "{k}: {r:?}");
    }
    assert!(!exists(&d.dirs.w(".g")));
    host_git_runs_nothing(&d.dirs, &marker, &["."]);
}

// ------------------------------------------------------------------ P5

#[tokio::test]
async fn p5_wildcard_deny_globs_bind_commands_under_any_name() {
    let d =
        ShellDaemon::start_with(policy(r#"deny = ["**/.env", "**/*.pem", "secrets/**"]"#)).await;
    let secret = "P5-SECRET-91ac";
    for rel in [
        "deep/er/.env",
        "certs/site.pem",
        "k.pem",
        "secrets/api/token",
    ] {
        put_ws(&d.dirs, rel, format!("{secret} {rel}\n"));
    }
    put_ws(&d.dirs, "deep/er/readme", "fine\n");
    // Another name for a denied file, made before the command (a hard link).
    std::fs::hard_link(d.dirs.w("deep/er/.env"), d.dirs.w("notes.txt")).unwrap();
    let w = "/workspace";
    let script = probes(&[
        ("cat_env", format!("cat {w}/deep/er/.env")),
        ("cat_pem", format!("cat {w}/certs/site.pem")),
        ("cat_root_pem", format!("cat {w}/k.pem")),
        ("cat_token", format!("cat {w}/secrets/api/token")),
        ("cat_link", format!("cat {w}/notes.txt")),
        ("cp_pem", format!("cp {w}/certs/site.pem {w}/copy")),
        ("ln_pem", format!("ln {w}/certs/site.pem {w}/hl")),
        ("mv_certs", format!("mv {w}/certs {w}/c2")),
        ("mv_deep", format!("mv {w}/deep {w}/d2")),
        ("grep_all", format!("grep -r {secret} {w}")),
        (
            "find_cat",
            format!("find {w} -name '*.pem' -exec cat {{}} +"),
        ),
        // Controls.
        ("cat_readme", format!("cat {w}/deep/er/readme")),
        ("write_pem_dir", format!("echo x > {w}/certs/other.txt")),
    ]);
    let r = d.sh(&script).await;
    assert_probes(
        &r,
        &[
            "cat_env",
            "cat_pem",
            "cat_root_pem",
            "cat_token",
            "cat_link",
            "cp_pem",
            "ln_pem",
            "mv_certs",
            "mv_deep",
            "grep_all",
            "find_cat",
        ],
        &["cat_readme", "write_pem_dir"],
    );
    assert!(
        !r.stdout.contains(secret) && !r.stderr.contains(secret),
        "{r:?}"
    );
    assert!(!exists(&d.dirs.w("copy")) && !exists(&d.dirs.w("c2")));
    assert!(exists(&d.dirs.w("certs/other.txt")));
    assert_unreadable(&d, &["notes.txt", "copy", "hl", "c2/site.pem"], secret).await;
}

// ------------------------------------------------------------- P2, P7

#[tokio::test]
async fn p2_p7_renames_and_links_never_give_the_file_tools_a_denied_file() {
    let d = ShellDaemon::start_with(policy(r#"deny = ["private/**", "**/.env"]"#)).await;
    let secret = "P2-SECRET-c0de";
    put_ws(&d.dirs, "private/token", format!("{secret}\n"));
    put_ws(&d.dirs, ".env", format!("{secret}\n"));
    put_ws(&d.dirs, "pub.txt", "public\n");
    let w = "/workspace";
    let script = probes(&[
        ("mv_private", format!("mv {w}/private {w}/privatex")),
        ("hardlink", format!("ln {w}/.env {w}/hl")),
        ("symlink", format!("ln -s .env {w}/sl")),
        ("symlink_dir", format!("ln -s private {w}/pl")),
        ("cat_symlink", format!("cat {w}/sl")),
        ("hardlink_pub", format!("ln {w}/pub.txt {w}/pub2.txt")),
    ]);
    let r = d.sh(&script).await;
    assert_probes(
        &r,
        &["mv_private", "hardlink", "cat_symlink"],
        &["symlink", "symlink_dir", "hardlink_pub"],
    );
    assert_unreadable(
        &d,
        &[
            "privatex/token",
            "hl",
            "sl",
            "pl/token",
            "private/token",
            ".env",
        ],
        secret,
    )
    .await;
    for name in ["sl", "pl/token"] {
        let e = read(&d, name).await.expect_err(name);
        assert_eq!(e.code(), Code::PermissionDenied, "{name}: {}", describe(&e));
    }
    // A later command sees no more than the first one did.
    let r = d
        .sh(&format!("cat {w}/sl {w}/pl/token {w}/hl 2>&1; true"))
        .await;
    assert!(!r.stdout.contains(secret), "{r:?}");

    // The identity check itself: a denied file given a new name by someone
    // the sandbox does not govern (here the host, after the command above
    // surveyed the workspace) is still refused under that name.
    std::fs::rename(d.dirs.w(".env"), d.dirs.w("renamed.txt")).unwrap();
    let e = read(&d, "renamed.txt")
        .await
        .expect_err("renamed denied file");
    assert_eq!(e.code(), Code::PermissionDenied, "{}", describe(&e));
    assert_eq!(
        error_meta(&e).get("rule").map(String::as_str),
        Some("builtin: this file is a denied file under another name"),
        "{}",
        describe(&e)
    );
    // Control: an ordinary file reads fine (once single-linked again: deny
    // globs make multi-link files unreadable).
    std::fs::remove_file(d.dirs.w("pub2.txt")).unwrap();
    assert_eq!(text_of(&read(&d, "pub.txt").await.unwrap()), "public\n");
}

// ---------------------------------------------------------- git helpers

/// `git` on the host as the workspace's owner (the sandbox uid), with a
/// home of its own and no system config, in `dir`.
fn owner_git(dirs: &ShellDirs, dir: &Path, args: &[&str]) -> std::process::Output {
    let home = dirs.root.join("owner-home");
    std::fs::create_dir_all(&home).unwrap();
    give_to_sandbox(&home);
    std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "owner")
        .env("GIT_AUTHOR_EMAIL", "owner@example.invalid")
        .env("GIT_COMMITTER_NAME", "owner")
        .env("GIT_COMMITTER_EMAIL", "owner@example.invalid")
        .uid(SANDBOX_UID)
        .gid(SANDBOX_GID)
        .output()
        .expect("run git")
}

#[track_caller]
fn owner_git_ok(dirs: &ShellDirs, dir: &Path, args: &[&str]) -> String {
    let out = owner_git(dirs, dir, args);
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A repository made by the owner in the workspace root, with one commit.
fn owner_repo(dirs: &ShellDirs) {
    put_ws(dirs, "src/lib.rs", "fn main() {}\n");
    put_ws(dirs, "README", "hello\n");
    let ws = dirs.w("");
    owner_git_ok(dirs, &ws, &["init", "-q", "-b", "main"]);
    owner_git_ok(dirs, &ws, &["add", "-A"]);
    owner_git_ok(dirs, &ws, &["commit", "-qm", "first"]);
}

/// The owner runs the usual git commands in each of `dirs_rel` (a change to
/// commit is made first, so commit hooks would run): `marker` never appears.
/// A hook the owner installs runs, proving host git does run hooks here.
#[track_caller]
fn host_git_runs_nothing(dirs: &ShellDirs, marker: &Path, dirs_rel: &[&str]) {
    let control = dirs.outside.join("owner-hook-ran");
    let hook = dirs.w(".git/hooks/post-commit");
    std::fs::write(&hook, format!("#!/bin/sh\ntouch {}\n", control.display())).unwrap();
    give_to_sandbox(&hook);
    set_mode(&hook, 0o755);
    give_to_sandbox(&dirs.outside);
    for (i, rel) in dirs_rel.iter().enumerate() {
        let dir = dirs.w(rel);
        if !dir.is_dir() {
            continue;
        }
        for args in [
            vec!["status"],
            vec!["log", "-1"],
            vec!["diff"],
            vec!["diff", "HEAD"],
        ] {
            let _ = owner_git(dirs, &dir, &args);
        }
        let note = dir.join(format!("owner-change-{i}.txt"));
        std::fs::write(&note, "change\n").unwrap();
        give_to_sandbox(&note);
        let _ = owner_git(dirs, &dir, &["add", "-A", "."]);
        let _ = owner_git(dirs, &dir, &["commit", "-qm", "owner change"]);
        assert!(
            !exists(marker),
            "host git in {rel} ran what the agent planted"
        );
    }
    assert!(
        exists(&control),
        "control: the owner's own hook did not run"
    );
    std::fs::remove_file(&control).unwrap();
    assert!(!exists(marker));
}

// ------------------------------------------------------------- P6

/// Under the shipped default policy, git's read operations work in a
/// command, and commit fails with a read-only error.
#[tokio::test]
async fn p6_git_reads_work_in_commands_and_commit_is_read_only() {
    require_programs(&["git"]);
    let d = ShellDaemon::start_with(policy(&shipped_files_table())).await;
    owner_repo(&d.dirs);
    put_ws(&d.dirs, "src/lib.rs", "fn main() { println!(\"x\"); }\n");
    let head_before = std::fs::read(d.dirs.w(".git/HEAD")).unwrap();
    let index_before = std::fs::read(d.dirs.w(".git/index")).unwrap();
    let script = probes(&[
        ("status", "git status".into()),
        ("log", "git log --oneline -1".into()),
        ("diff", "git diff --stat".into()),
        ("show", "git show --stat HEAD".into()),
        ("blame", "git blame README".into()),
        ("grep", "git grep -q hello".into()),
        ("commit", "git commit -qam change".into()),
        ("branch", "git checkout -q -b other".into()),
    ]) + "git commit -am change2 2>&1 | tail -1\n";
    let r = d.sh(&format!("cd /workspace\n{script}")).await;
    assert_probes(
        &r,
        &["commit", "branch"],
        &["status", "log", "diff", "show", "blame", "grep"],
    );
    assert!(
        r.stdout.contains("Read-only file system"),
        "commit must fail with a read-only message: {r:?}"
    );
    assert_eq!(std::fs::read(d.dirs.w(".git/HEAD")).unwrap(), head_before);
    assert_eq!(std::fs::read(d.dirs.w(".git/index")).unwrap(), index_before);
    // Also with output: the log shows the owner's commit.
    let r = d.sh("cd /workspace && git log --format=%s").await;
    assert_eq!(r.ok().trim(), "first");
}

// ------------------------------------------------------------- P3, P4

/// The file tools alone: redirects that would make git read config or
/// hooks from elsewhere are refused; writes elsewhere are not.
#[tokio::test]
async fn p3_file_tools_cannot_write_git_metadata_or_redirects() {
    require_programs(&["git"]);
    let d = ShellDaemon::start_with(policy(&shipped_files_table())).await;
    owner_repo(&d.dirs);
    // An owner-made worktree-style gitfile pointing at a directory not
    // named .git: that directory is git metadata too.
    std::fs::create_dir_all(d.dirs.w("meta/hooks")).unwrap();
    put_ws(&d.dirs, "wt/.git", "gitdir: ../meta\n");
    let mut c = d.client().await;
    let writes = [
        ".git/commondir",
        ".git/config",
        ".git/hooks/pre-commit",
        ".git/info/attributes",
        "sub/.git",
        "vendor/x/.git/config",
        "meta/hooks/pre-commit",
        "meta/commondir",
    ];
    for path in writes {
        let r = c
            .write_file(WriteFileRequest {
                path: path.into(),
                content: b"gitdir: ../gc\n".to_vec(),
                create_parents: true,
                ..Default::default()
            })
            .await;
        let e = r.expect_err(path);
        assert_eq!(e.code(), Code::PermissionDenied, "{path}: {}", describe(&e));
    }
    for (from, to) in [
        (".git", ".g"),
        ("README", ".git/hooks/post-commit"),
        ("README", "x/.git"),
    ] {
        let r = c
            .r#move(MoveRequest {
                from: from.into(),
                to: to.into(),
                ..Default::default()
            })
            .await;
        assert!(r.is_err(), "Move {from} -> {to} succeeded");
    }
    let r = c
        .make_dir(MakeDirRequest {
            path: "nested/.git".into(),
            parents: true,
            ..Default::default()
        })
        .await;
    assert!(r.is_err(), "MakeDir nested/.git succeeded");
    // Controls: the same kind of write elsewhere works, and .git is readable.
    c.write_file(WriteFileRequest {
        path: "gc/config".into(),
        content: b"[core]\n".to_vec(),
        create_parents: true,
        ..Default::default()
    })
    .await
    .expect("write outside git metadata");
    assert!(text_of(&read(&d, ".git/HEAD").await.unwrap()).contains("refs/heads/main"));
    assert!(!exists(&d.dirs.w(".git/commondir")) && !exists(&d.dirs.w("sub/.git")));
    assert!(!exists(&d.dirs.w("meta/hooks/pre-commit")));
}

/// P4: a command plants every code-running vector it can; the owner then
/// runs git on the host: nothing runs. A `.git` the command created is gone
/// when the call ends.
#[tokio::test]
async fn p4_host_git_runs_nothing_a_command_planted() {
    require_programs(&["git"]);
    let d = ShellDaemon::start_with(policy(&shipped_files_table())).await;
    owner_repo(&d.dirs);
    let m = d.dirs.outside.join("p4-pwned");
    let evil = format!("touch {}", m.display());
    let script = format!(
        r#"cd /workspace
hook() {{ mkdir -p "$1" && printf '#!/bin/sh\n{evil}\n' > "$1/$2" && chmod +x "$1/$2"; }}
probe() {{ name=$1; shift; "$@" >/dev/null 2>&1; echo "$name=$?"; }}
probe hooks hook .git/hooks pre-commit
probe fsmonitor git config core.fsmonitor '{evil}'
probe hookspath git config core.hooksPath /workspace/myhooks
probe sshcommand git config core.sshCommand '{evil}'
probe include git config include.path /workspace/inc
probe includeif git config 'includeIf.gitdir:/.path' /workspace/inc
probe commondir sh -c 'echo ../gc > .git/commondir'
probe filter git config filter.evil.clean '{evil}'
probe info_attr sh -c 'echo "* filter=evil" > .git/info/attributes'
probe rename_git mv .git .gitx
hook myhooks pre-commit; hook gc/hooks pre-commit
printf '[core]\n\tfsmonitor = {evil}\n[filter "evil"]\n\tclean = {evil}\n[diff "evil"]\n\tcommand = {evil}\n\ttextconv = {evil}\n' > inc
cp inc gitconfig-evil
echo '* filter=evil diff=evil' > .gitattributes
# nested repositories and gitfile redirects made during the call
probe nested_init git init -q sub
probe nested_config git -C sub config core.fsmonitor '{evil}'
hook sub/.git/hooks pre-commit
mkdir -p gf evilgit/hooks && cp -r sub/.git/. evilgit/ && echo 'gitdir: ../evilgit' > gf/.git
probe gitfile test -f gf/.git
mkdir -p src/.git && cp -r sub/.git/. src/.git/
probe src_nested test -d src/.git/hooks
"#
    );
    let r = d.sh(&script).await;
    assert_probes(
        &r,
        &[
            "hooks",
            "fsmonitor",
            "hookspath",
            "sshcommand",
            "include",
            "includeif",
            "commondir",
            "filter",
            "info_attr",
            "rename_git",
        ],
        // During the call the command may make repositories of its own...
        &["nested_init", "nested_config", "gitfile", "src_nested"],
    );
    // ...but they are gone when the call has ended.
    for rel in ["sub/.git", "gf/.git", "src/.git"] {
        assert!(!exists(&d.dirs.w(rel)), "{rel} outlived the call");
    }
    assert!(exists(&d.dirs.w("sub")) && exists(&d.dirs.w(".gitattributes")));
    assert!(!exists(&d.dirs.w(".git/commondir")));
    host_git_runs_nothing(&d.dirs, &m, &[".", "sub", "gf", "src", "evilgit"]);
}

/// A gitfile the owner made that redirects into the workspace: the target
/// is read-only in commands too (the owner's repository keeps its hooks).
#[tokio::test]
async fn p3_a_gitfile_redirect_target_is_read_only_in_commands() {
    require_programs(&["git"]);
    let d = ShellDaemon::start_with(policy(&shipped_files_table())).await;
    owner_repo(&d.dirs);
    let ws = d.dirs.w("");
    // A linked worktree: `wt/.git` is a gitfile into .git/worktrees/wt;
    // and a separate git dir: `sep/.git` -> ../sepmeta.
    owner_git_ok(&d.dirs, &ws, &["worktree", "add", "-q", "wt"]);
    let sep = d.dirs.w("sep");
    std::fs::create_dir_all(&sep).unwrap();
    give_to_sandbox(&sep);
    owner_git_ok(
        &d.dirs,
        &sep,
        &[
            "init",
            "-q",
            "--separate-git-dir",
            &d.dirs.w("sepmeta").display().to_string(),
        ],
    );
    // Git writes absolute gitdir paths (the host's): make them relative, as
    // a repository moved between machines has them, so git in the sandbox
    // finds them too.
    put_ws(&d.dirs, "sep/.git", "gitdir: ../sepmeta\n");
    put_ws(&d.dirs, "wt/.git", "gitdir: ../.git/worktrees/wt\n");
    let m = d.dirs.outside.join("p3-pwned");
    let script = probes(&[
        (
            "sepmeta_hook",
            format!(
                "echo 'touch {}' > /workspace/sepmeta/hooks/pre-commit",
                m.display()
            ),
        ),
        (
            "sepmeta_config",
            "git -C /workspace/sep config core.fsmonitor true".into(),
        ),
        (
            "wt_config",
            "git -C /workspace/wt config core.fsmonitor true".into(),
        ),
        ("mv_sepmeta", "mv /workspace/sepmeta /workspace/s2".into()),
        ("wt_status", "git -C /workspace/wt status".into()),
        ("sep_status", "git -C /workspace/sep status".into()),
    ]);
    let r = d.sh(&script).await;
    assert_probes(
        &r,
        &["sepmeta_hook", "sepmeta_config", "wt_config", "mv_sepmeta"],
        &["wt_status", "sep_status"],
    );
    assert!(!exists(&d.dirs.w("sepmeta/hooks/pre-commit")));
    assert!(exists(&d.dirs.w("sep/.git")) && exists(&d.dirs.w("wt/.git")));
}

/// `files.git = "read-write"`: commands commit, and the file tools may
/// write `.git` (the opt-in, with its risk).
#[tokio::test]
async fn git_read_write_opt_in_lets_commands_commit() {
    require_programs(&["git"]);
    let d = ShellDaemon::start_with(policy(r#"git = "read-write""#)).await;
    owner_repo(&d.dirs);
    put_ws(&d.dirs, "README", "changed\n");
    let r = d
        .sh("cd /workspace && git -c user.name=a -c user.email=a@b commit -qam agent && git log --format=%s -1")
        .await;
    assert_eq!(r.ok().trim(), "agent");
    let mut c = d.client().await;
    c.write_file(WriteFileRequest {
        path: ".git/info/exclude".into(),
        content: b"target\n".to_vec(),
        ..Default::default()
    })
    .await
    .expect("opt-in allows writing .git");
    let r = d
        .sh("cd /workspace && git init -q nested && test -d nested/.git")
        .await;
    assert_eq!(r.code(), Some(0), "{r:?}");
    assert!(
        exists(&d.dirs.w("nested/.git")),
        "opt-in keeps nested repositories"
    );
}
