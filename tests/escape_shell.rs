//! The shell escape suite: cases S1–S25 and R4 of shared/escape-cases.md,
//! each against the real daemon over its Unix socket. Every case asserts
//! that the attempt failed, that nothing happened on the host (no file
//! created, changed or read outside; no process left behind), and runs a
//! positive control beside it, so that it cannot pass because everything
//! is broken. Runs as root; a missing mechanism or program fails the case,
//! it is never skipped.

#[path = "shell_common/mod.rs"]
mod shell_common;

use agentjail::proto::*;
use shell_common::*;
use std::io::ErrorKind;
use std::net::{IpAddr, TcpListener, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};
use tonic::Code;

/// A tag unique to this test run, for host file names.
fn tag() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "aj-esc-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Lines `key=value` printed by a probe script, as a map.
fn kv(out: &str) -> std::collections::BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[track_caller]
fn assert_failed(map: &std::collections::BTreeMap<String, String>, keys: &[&str], ctx: &Ran) {
    for k in keys {
        let v = map
            .get(*k)
            .unwrap_or_else(|| panic!("probe {k} printed nothing: {ctx:?}"));
        assert_ne!(v, "0", "{k} succeeded but must fail: {ctx:?}");
    }
}

#[track_caller]
fn assert_succeeded(map: &std::collections::BTreeMap<String, String>, keys: &[&str], ctx: &Ran) {
    for k in keys {
        assert_eq!(
            map.get(*k).map(String::as_str),
            Some("0"),
            "control {k} must succeed: {ctx:?}"
        );
    }
}

/// Each probe: run `cmd` in the shell (output discarded), print `name=$?`.
/// The braces keep the probe's own redirections its own.
fn probes(cmds: &[(&str, String)]) -> String {
    cmds.iter()
        .map(|(name, cmd)| format!("{{ {cmd}\n}} >/dev/null 2>&1; echo \"{name}=$?\"\n"))
        .collect()
}

/// Like `probes`, but the output stays in the result, so that a leak of
/// what was read would show.
fn probes_showing(cmds: &[(&str, String)]) -> String {
    cmds.iter()
        .map(|(name, cmd)| format!("{{ {cmd}\n}} 2>&1; rc=$?; echo; echo \"{name}=$rc\"\n"))
        .collect()
}

/// Syscall results that must be exactly `errno`, each with a return of -1.
#[track_caller]
fn assert_errno(out: &Ran, names: &[&str], errno: i32) {
    let got = parse_syscalls(&out.stdout);
    for n in names {
        let (ret, e) = got
            .get(*n)
            .copied()
            .unwrap_or_else(|| panic!("no result for {n}: {out:?}"));
        assert_eq!(
            (ret, e),
            (-1, errno),
            "{n} must fail with errno {errno}: {out:?}"
        );
    }
}

// ---------------------------------------------------------------- S1

#[tokio::test]
async fn s1_writes_outside_the_writable_roots_fail() {
    require_programs(&["sh"]);
    let d = ShellDaemon::start().await;
    let t = tag();
    let before = d.dirs.outside_snapshot();
    let passwd_before = std::fs::read("/etc/passwd").unwrap();
    let host_outside = d.dirs.outside.join(format!("{t}-new"));
    let script = probes(&[
        ("etc", format!("echo x > /etc/{t}")),
        ("etc_passwd", "echo x >> /etc/passwd".into()),
        ("usr", format!("echo x > /usr/{t}")),
        ("root", format!("echo x > /{t}")),
        ("dev", format!("echo x > /dev/{t}")),
        ("proc", format!("echo x > /proc/{t}")),
        (
            "outside_path",
            format!("echo x > {}", host_outside.display()),
        ),
        ("tmp", format!("echo x > /tmp/host-file-{t}")),
        ("ws", format!("echo x > /workspace/{t}")),
    ]);
    let r = d.sh(&script).await;
    let m = kv(&r.stdout);
    assert_failed(
        &m,
        &[
            "etc",
            "etc_passwd",
            "usr",
            "root",
            "dev",
            "proc",
            "outside_path",
        ],
        &r,
    );
    // Controls: the workspace and the private /tmp are writable.
    assert_succeeded(&m, &["ws", "tmp"], &r);
    assert_eq!(std::fs::read_to_string(d.dirs.w(&t)).unwrap(), "x\n");
    assert_eq!(std::fs::metadata(d.dirs.w(&t)).unwrap().uid(), SANDBOX_UID);
    // Nothing on the host.
    for p in [
        format!("/etc/{t}"),
        format!("/usr/{t}"),
        format!("/{t}"),
        format!("/dev/{t}"),
        format!("/tmp/host-file-{t}"),
    ] {
        assert!(!exists(Path::new(&p)), "{p} appeared on the host");
    }
    assert!(!exists(&host_outside));
    assert_eq!(
        std::fs::read("/etc/passwd").unwrap(),
        passwd_before,
        "host /etc/passwd changed"
    );
    assert_eq!(d.dirs.outside_snapshot(), before);
}

#[tokio::test]
async fn s1_a_read_only_workspace_cannot_be_written() {
    let d = ShellDaemon::start().await;
    let mut req = sh_req(&probes(&[
        ("overwrite", "echo x > /workspace/readme.txt".into()),
        ("create", "echo x > /workspace/new.txt".into()),
        ("chmod", "chmod 777 /workspace/readme.txt".into()),
        ("read", "cat /workspace/readme.txt".into()),
    ]));
    req.workspace = "ro".into();
    let r = d.run_ok(req).await;
    let m = kv(&r.stdout);
    assert_failed(&m, &["overwrite", "create", "chmod"], &r);
    assert_succeeded(&m, &["read"], &r);
    assert_eq!(
        std::fs::read_to_string(d.dirs.ro.join("readme.txt")).unwrap(),
        RO_CONTENT
    );
    assert!(!exists(&d.dirs.ro.join("new.txt")));
    assert_eq!(
        std::fs::metadata(d.dirs.ro.join("readme.txt"))
            .unwrap()
            .mode()
            & 0o777,
        0o644
    );
}

#[tokio::test]
async fn s1_the_hosts_dev_null_behind_stdin_cannot_be_changed() {
    // Without stdin, fd 0 is the host's /dev/null, opened by the daemon: the
    // command holds a host inode and must not be able to change it.
    let null = std::fs::metadata("/dev/null").unwrap();
    assert_eq!(
        (null.uid(), null.gid()),
        (0, 0),
        "precondition: the host's /dev/null is already not root's (a daemon built before the \
         fix in sandbox/launcher.rs gave it away?); restore it with `chown root:root /dev/null`"
    );
    let d = ShellDaemon::start().await;
    put_ws(&d.dirs, "mine", "x");
    let code = r#"
import os
def t(name, f):
    try:
        f(); print(name + "=0")
    except OSError as e:
        print(name + "=" + str(e.errno))
t("fchmod_stdin", lambda: os.fchmod(0, 0o666))
t("chmod_proc_fd", lambda: os.chmod("/proc/self/fd/0", 0o666))
st = os.fstat(0)
# Setting explicit times needs ownership; these are the current ones.
t("utime_proc_fd", lambda: os.utime("/proc/self/fd/0", ns=(st.st_atime_ns, st.st_mtime_ns)))
t("fchmod_own", lambda: os.chmod("/workspace/mine", 0o640))
"#;
    let r = d.py(code).await;
    let m = kv(&r.stdout);
    assert_failed(&m, &["fchmod_stdin", "chmod_proc_fd", "utime_proc_fd"], &r);
    assert_succeeded(&m, &["fchmod_own"], &r);
    let null = std::fs::metadata("/dev/null").unwrap();
    assert_eq!(
        (null.uid(), null.gid(), null.mode() & 0o7777),
        (0, 0, 0o666),
        "the host's /dev/null must stay root's, mode 0666"
    );
}

// ---------------------------------------------------------------- S2

#[tokio::test]
async fn s2_host_secrets_are_unreadable() {
    let dirs = ShellDirs::new();
    let d = ShellDaemon::launch(
        dirs,
        &Policy::default(),
        Serve::new().env("AGENTJAIL_TEST_SECRET", SECRET),
    )
    .await;
    put_ws(&d.dirs, "mine.txt", "my own file\n");
    let dd = &d.dirs;
    let script = probes_showing(&[
        ("shadow", "cat /etc/shadow".into()),
        ("gshadow", "cat /etc/gshadow".into()),
        ("sudoers", "cat /etc/sudoers".into()),
        ("ssl_private", "ls /etc/ssl/private".into()),
        ("root_dir", "ls /root".into()),
        ("root_ssh", "cat /root/.ssh/id_rsa".into()),
        ("home", "ls /home/*".into()),
        (
            "other_agent_ws",
            format!("cat {}/secret.txt", dd.other_ws.display()),
        ),
        (
            "outside",
            format!("cat {}/secret.txt", dd.outside.display()),
        ),
        (
            "policy_file",
            format!("cat {}/test.toml", dd.policy_dir.display()),
        ),
        ("config", format!("cat {}", dd.config.display())),
        ("etc_agentjail", "ls /etc/agentjail".into()),
        ("proc1_environ", "cat /proc/1/environ".into()),
        ("daemon_log", format!("cat {}", dd.log.display())),
        // Controls: allowed reads work.
        ("passwd", "cat /etc/passwd".into()),
        ("own_file", "cat /workspace/mine.txt".into()),
    ]);
    let r = d.sh(&format!("{script}echo ---; ls /etc")).await;
    let m = kv(&r.stdout);
    assert_failed(
        &m,
        &[
            "shadow",
            "gshadow",
            "sudoers",
            "ssl_private",
            "root_dir",
            "root_ssh",
            "home",
            "other_agent_ws",
            "outside",
            "policy_file",
            "config",
            "etc_agentjail",
            "proc1_environ",
            "daemon_log",
        ],
        &r,
    );
    assert_succeeded(&m, &["passwd", "own_file"], &r);
    assert!(r.stdout.contains("my own file\n"), "{r:?}");
    let all = format!("{}{}", r.stdout, r.stderr);
    for secret in [SECRET, POLICY_CANARY] {
        assert!(!all.contains(secret), "{secret} leaked: {r:?}");
    }
    // The sandbox's /etc holds only the allowed entries.
    let etc = r.stdout.rsplit_once("---\n").unwrap().1;
    for name in ["shadow", "gshadow", "sudoers", "agentjail"] {
        assert!(
            !etc.lines().any(|l| l == name),
            "/etc/{name} is visible: {r:?}"
        );
    }
    // Its passwd is generated: no host account beyond root and nobody.
    let r = d.argv(&["cat", "/etc/passwd"]).await;
    let users: Vec<&str> = r
        .stdout
        .lines()
        .filter_map(|l| l.split(':').next())
        .collect();
    assert!(
        users
            .iter()
            .all(|u| ["root", "nobody", "agent"].contains(u)),
        "{r:?}"
    );
    // The secret really is in the daemon's environment (the case is real).
    let environ = std::fs::read(format!("/proc/{}/environ", d.pid)).unwrap();
    assert!(String::from_utf8_lossy(&environ).contains(SECRET));
}

// ---------------------------------------------------------------- S3

#[tokio::test]
async fn s3_a_symlink_to_etc_does_not_let_anyone_write_there() {
    let d = ShellDaemon::start().await;
    let t = tag();
    let before = d.dirs.outside_snapshot();
    let script = probes(&[
        ("mk_etc_link", "ln -s /etc /workspace/etc-link".into()),
        ("write_etc", format!("echo x > /workspace/etc-link/{t}")),
        (
            "mk_out_link",
            format!("ln -s {} /workspace/out-link", d.dirs.outside.display()),
        ),
        ("write_out", format!("echo x > /workspace/out-link/{t}")),
        (
            "write_out_existing",
            "echo x > /workspace/out-link/secret.txt".into(),
        ),
        // Controls: symlinks themselves work, inside the sandbox's view.
        ("mk_tmp_link", "ln -s /tmp /workspace/tmp-link".into()),
        ("write_tmp", "echo ok > /workspace/tmp-link/via-link".into()),
        ("read_tmp", "test \"$(cat /tmp/via-link)\" = ok".into()),
        ("mk_sub", "mkdir /workspace/sub".into()),
        ("mk_in_link", "ln -s sub /workspace/in-link".into()),
        ("write_in", "echo y > /workspace/in-link/f".into()),
    ]);
    let r = d.sh(&script).await;
    let m = kv(&r.stdout);
    assert_succeeded(
        &m,
        &[
            "mk_etc_link",
            "mk_out_link",
            "mk_tmp_link",
            "write_tmp",
            "read_tmp",
            "mk_sub",
            "mk_in_link",
            "write_in",
        ],
        &r,
    );
    assert_failed(&m, &["write_etc", "write_out", "write_out_existing"], &r);
    assert!(!exists(&Path::new("/etc").join(&t)), "/etc/{t} on the host");
    assert!(!exists(Path::new("/tmp/via-link")));
    assert_eq!(std::fs::read_to_string(d.dirs.w("sub/f")).unwrap(), "y\n");
    assert_eq!(d.dirs.outside_snapshot(), before);

    // The planted links stay in the workspace for the file tools, which
    // run as root in the daemon: they must not follow them out either.
    let mut c = d.client().await;
    for path in ["etc-link/passwd", "out-link/secret.txt"] {
        let r = c
            .read_file(ReadFileRequest {
                path: path.into(),
                ..Default::default()
            })
            .await;
        let s = r.expect_err(path);
        assert_eq!(s.code(), Code::PermissionDenied, "{path}: {}", describe(&s));
        assert!(!s.message().contains(SECRET));
    }
    for path in [format!("etc-link/{t}-fs"), format!("out-link/{t}-fs")] {
        let r = c
            .write_file(WriteFileRequest {
                path: path.clone(),
                content: b"pwned".to_vec(),
                ..Default::default()
            })
            .await;
        assert!(r.is_err(), "WriteFile through {path} succeeded");
    }
    assert!(!exists(&Path::new("/etc").join(format!("{t}-fs"))));
    assert_eq!(d.dirs.outside_snapshot(), before);
    // Control: the in-workspace link is fine for the file tools too.
    let r = c
        .read_file(ReadFileRequest {
            path: "in-link/f".into(),
            ..Default::default()
        })
        .await
        .expect("read through an in-workspace link");
    assert_eq!(r.into_inner().text, "y\n");
}

// ---------------------------------------------------------------- S4

#[tokio::test]
async fn s4_hardlinks_to_host_files_cannot_be_made() {
    let d = ShellDaemon::start().await;
    let script = probes(&[
        ("passwd", "ln /etc/passwd /workspace/pw".into()),
        ("binary", "ln /usr/bin/id /workspace/id-hard".into()),
        (
            "outside",
            format!("ln {}/secret.txt /workspace/s", d.dirs.outside.display()),
        ),
        // Control: a hardlink inside the workspace works.
        ("mk_a", "echo a > /workspace/a".into()),
        ("inside", "ln /workspace/a /workspace/b".into()),
    ]);
    let r = d.sh(&script).await;
    let m = kv(&r.stdout);
    assert_failed(&m, &["passwd", "binary", "outside"], &r);
    assert_succeeded(&m, &["mk_a", "inside"], &r);
    for name in ["pw", "id-hard", "s"] {
        assert!(!exists(&d.dirs.w(name)), "{name} appeared in the workspace");
    }
    let (a, b) = (
        std::fs::metadata(d.dirs.w("a")).unwrap(),
        std::fs::metadata(d.dirs.w("b")).unwrap(),
    );
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
    // /etc/passwd on the host still has its single name.
    assert_eq!(std::fs::metadata("/etc/passwd").unwrap().nlink(), 1);
}

// ---------------------------------------------------------------- S5

fn mount_count_on(path: &Path) -> usize {
    let p = path.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&p))
        .count()
}

#[tokio::test]
async fn s5_mknod_mount_chroot_and_pivot_root_fail() {
    require_programs(&["mknod", "mount", "mkfifo"]);
    let d = ShellDaemon::start().await;
    let mounts_before = mount_count_on(&d.dirs.ws);
    let script = probes(&[
        ("mknod_ws", "mknod /workspace/null c 1 3".into()),
        ("mknod_tmp", "mknod /tmp/null c 1 3".into()),
        ("mknod_blk", "mknod /tmp/sda b 8 0".into()),
        ("mount_tmpfs", "mount -t tmpfs none /tmp".into()),
        ("mount_bind", "mount --bind /workspace /tmp".into()),
        ("mount_proc", "mount -t proc proc /tmp".into()),
        ("chroot", "/usr/sbin/chroot /tmp /bin/true".into()),
        ("pivot_root", "/usr/sbin/pivot_root /tmp /tmp".into()),
        ("umount_proc", "umount -l /proc".into()),
        // Control: a FIFO is not a device and may be made.
        ("mkfifo", "mkfifo /workspace/fifo".into()),
    ]);
    let r = d.sh(&script).await;
    let m = kv(&r.stdout);
    assert_failed(
        &m,
        &[
            "mknod_ws",
            "mknod_tmp",
            "mknod_blk",
            "mount_tmpfs",
            "mount_bind",
            "mount_proc",
            "chroot",
            "pivot_root",
            "umount_proc",
        ],
        &r,
    );
    assert_succeeded(&m, &["mkfifo"], &r);
    // The same, as raw syscalls: each refused with EPERM.
    let code = py_syscalls(
        "",
        &[
            (
                "mknod",
                format!("{}, b'/tmp/null', 0o20666, 0x103", libc::SYS_mknod),
            ),
            (
                "mount",
                format!("{}, b'none', b'/tmp', b'tmpfs', 0, 0", libc::SYS_mount),
            ),
            ("umount2", format!("{}, b'/proc', 2", libc::SYS_umount2)),
            ("chroot", format!("{}, b'/tmp'", libc::SYS_chroot)),
            (
                "pivot_root",
                format!("{}, b'/tmp', b'/tmp'", libc::SYS_pivot_root),
            ),
            ("fsopen", format!("{}, b'tmpfs', 0", libc::SYS_fsopen)),
            (
                "open_tree",
                format!("{}, -100, b'/workspace', 1", libc::SYS_open_tree),
            ),
            ("getpid", format!("{}", libc::SYS_getpid)),
        ],
    );
    let r = d.py(&code).await;
    assert_errno(
        &r,
        &[
            "mknod",
            "mount",
            "umount2",
            "chroot",
            "pivot_root",
            "fsopen",
            "open_tree",
        ],
        libc::EPERM,
    );
    let pid = parse_syscalls(&r.stdout)["getpid"].0;
    assert!(pid > 1, "control syscall through the same probe: {r:?}");
    // Nothing on the host: no device node, no new mount.
    assert!(!exists(&d.dirs.w("null")));
    let fifo = std::fs::symlink_metadata(d.dirs.w("fifo")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&fifo.file_type()));
    for e in std::fs::read_dir(&d.dirs.ws).unwrap().flatten() {
        let ft = e.file_type().unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(!ft.is_char_device() && !ft.is_block_device(), "{e:?}");
    }
    assert_eq!(mount_count_on(&d.dirs.ws), mounts_before);
}

// ---------------------------------------------------------------- S6, S7

#[tokio::test]
async fn s6_a_setuid_binary_in_the_workspace_does_not_raise_privileges() {
    require_programs(&["id", "stat"]);
    let d = ShellDaemon::start().await;
    let suid = d.dirs.w("id-suid");
    std::fs::copy("/usr/bin/id", &suid).unwrap();
    std::os::unix::fs::chown(&suid, Some(0), Some(0)).unwrap();
    set_mode(&suid, 0o4755);
    // Control on the host: run as the sandbox uid outside the sandbox, the
    // copy really does make its caller root.
    let host = std::process::Command::new(&suid)
        .arg("-u")
        .uid(SANDBOX_UID)
        .gid(SANDBOX_GID)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&host.stdout),
        "0\n",
        "the planted binary must be a working setuid-root program: {host:?}"
    );
    let r = d
        .sh(
            "stat -c '%a %u' /workspace/id-suid; /workspace/id-suid -u; /workspace/id-suid -g; \
             /workspace/id-suid; grep NoNewPrivs /proc/self/status",
        )
        .await;
    assert_eq!(
        r.lines(),
        vec![
            "4755 0",
            "65534",
            "65534",
            "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)",
            "NoNewPrivs:\t1"
        ],
        "the setuid bit is there and has no effect: {r:?}"
    );
    // The host's own setuid-root programs (mount) gain nothing either: the
    // system dirs are mounted nosuid, and no_new_privs is set.
    let r = d
        .sh("mount -t tmpfs none /workspace 2>&1; echo mount=$?; \
             grep -E '^Uid:' /proc/self/status")
        .await;
    assert!(!r.stdout.contains("mount=0"), "{r:?}");
    assert!(
        r.stdout.contains("Uid:\t65534\t65534\t65534\t65534"),
        "{r:?}"
    );
}

#[tokio::test]
async fn s6_commands_cannot_leave_setuid_or_setgid_files_for_the_host() {
    // Inside, the workspace is nosuid; on the host it is not. A setuid file
    // a command leaves there would run as the sandbox uid for any host user.
    require_programs(&["chmod", "stat", "python3"]);
    let d = ShellDaemon::start().await;
    let script = "\
        touch /workspace/plain; \
        chmod 0755 /workspace/plain; echo control=$?; \
        chmod u+s /workspace/plain; echo chmod_suid=$?; \
        chmod g+s /workspace/plain; echo chmod_sgid=$?; \
        python3 -c 'import os; os.close(os.open(\"/workspace/made\", os.O_CREAT|os.O_WRONLY, 0o4755))'; \
        echo open_suid=$?; \
        python3 -c 'import os; os.close(os.open(\"/workspace/made2\", os.O_CREAT|os.O_WRONLY, 0o755))'; \
        echo open_control=$?; \
        python3 -c 'import os; os.mknod(\"/workspace/node\", 0o2644)'; echo mknod_sgid=$?; \
        python3 -c 'import os; os.mknod(\"/workspace/node2\", 0o644)'; echo mknod_control=$?; \
        stat -c '%a %n' /workspace/plain";
    let r = d.sh(script).await;
    let map = kv(&r.stdout);
    assert_succeeded(&map, &["control", "open_control", "mknod_control"], &r);
    assert_failed(
        &map,
        &["chmod_suid", "chmod_sgid", "open_suid", "mknod_sgid"],
        &r,
    );
    assert!(r.stdout.contains("755 /workspace/plain"), "{r:?}");
    // On the host: the files are there, and none carries either bit.
    for name in ["plain", "made", "node", "made2", "node2"] {
        let p = d.dirs.w(name);
        if let Ok(meta) = std::fs::metadata(&p) {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode();
            assert_eq!(mode & 0o6000, 0, "{name} has mode {mode:o}: {r:?}");
        }
    }
    for name in ["plain", "made2", "node2"] {
        assert!(d.dirs.w(name).exists(), "control {name} exists: {r:?}");
    }
}

#[tokio::test]
async fn s7_no_capability_is_left() {
    let d = ShellDaemon::start().await;
    put_ws(&d.dirs, "mine", "x");
    let r = d
        .sh("grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb):' /proc/self/status")
        .await;
    let want = "CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n\
                CapEff:\t0000000000000000\nCapBnd:\t0000000000000000\n\
                CapAmb:\t0000000000000000\n";
    assert_eq!(r.stdout, want, "{r:?}");
    // What capabilities would allow fails; the unprivileged variant works.
    let code = r#"
import os
def t(name, f):
    try:
        f(); print(name + "=0")
    except OSError as e:
        print(name + "=" + str(e.errno))
t("chown_root", lambda: os.chown("/workspace/mine", 0, 0))
t("setuid_root", lambda: os.setuid(0))
t("setgroups", lambda: os.setgroups([0]))
t("sethostname", lambda: __import__("socket").sethostname("evil"))
t("chroot", lambda: os.chroot("/tmp"))
t("chown_self", lambda: os.chown("/workspace/mine", 65534, 65534))
t("setuid_self", lambda: os.setuid(65534))
"#;
    let r = d.py(code).await;
    let m = kv(&r.stdout);
    assert_failed(
        &m,
        &[
            "chown_root",
            "setuid_root",
            "setgroups",
            "sethostname",
            "chroot",
        ],
        &r,
    );
    assert_succeeded(&m, &["chown_self", "setuid_self"], &r);
    let meta = std::fs::metadata(d.dirs.w("mine")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (SANDBOX_UID, SANDBOX_GID));
}

// ---------------------------------------------------------------- S8

#[tokio::test]
async fn s8_ptrace_and_process_vm_access_are_denied() {
    let d = ShellDaemon::start().await;
    if let Some(strace) = on_sandbox_path("strace") {
        let r = d
            .sh(&format!("{} -f /bin/true; echo rc=$?", strace.display()))
            .await;
        assert!(!r.stdout.contains("rc=0"), "strace worked: {r:?}");
        assert!(
            r.stderr.contains("Operation not permitted"),
            "strace fails on ptrace: {r:?}"
        );
    } else {
        eprintln!("strace not installed: the ptrace probes below use ctypes only");
    }
    let setup = r#"
import ctypes, time
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
src = ctypes.create_string_buffer(b"secret", 16)
dst = ctypes.create_string_buffer(16)
liov = iovec(ctypes.cast(dst, ctypes.c_void_p), 6)
riov = iovec(ctypes.cast(src, ctypes.c_void_p), 6)
child = os.fork()
if child == 0:
    time.sleep(30)
    os._exit(0)
time.sleep(0.1)
pidfd = libc.syscall(PIDFD_OPEN, child, 0)
print("pidfd_open", pidfd, 0)
print("child_visible", 1 if os.path.exists("/proc/%d/status" % child) else 0, 0)
"#;
    let calls: Vec<(&str, String)> = vec![
        ("traceme", format!("{}, 0, 0, 0, 0", libc::SYS_ptrace)),
        ("attach", format!("{}, 16, child, 0, 0", libc::SYS_ptrace)),
        (
            "seize",
            format!("{}, 0x4206, child, 0, 0", libc::SYS_ptrace),
        ),
        (
            "vm_readv_self",
            format!(
                "{}, os.getpid(), ctypes.byref(liov), 1, ctypes.byref(riov), 1, 0",
                libc::SYS_process_vm_readv
            ),
        ),
        (
            "vm_readv_child",
            format!(
                "{}, child, ctypes.byref(liov), 1, ctypes.byref(riov), 1, 0",
                libc::SYS_process_vm_readv
            ),
        ),
        (
            "vm_writev_child",
            format!(
                "{}, child, ctypes.byref(riov), 1, ctypes.byref(liov), 1, 0",
                libc::SYS_process_vm_writev
            ),
        ),
        (
            "pidfd_getfd",
            format!("{}, pidfd, 0, 0", libc::SYS_pidfd_getfd),
        ),
        (
            "kcmp",
            format!("{}, os.getpid(), child, 0, 0, 0", libc::SYS_kcmp),
        ),
        // Control: signalling one's own child works.
        ("kill0_child", format!("{}, child, 0", libc::SYS_kill)),
        ("kill_child", format!("{}, child, 9", libc::SYS_kill)),
    ];
    let setup = setup.replace("PIDFD_OPEN", &libc::SYS_pidfd_open.to_string());
    let code = py_syscalls(&setup, &calls) + "print('copied', int(dst.raw[:6] == b'secret'), 0)\n";
    let r = d.py(&code).await;
    assert_errno(
        &r,
        &[
            "traceme",
            "attach",
            "seize",
            "vm_readv_self",
            "vm_readv_child",
            "vm_writev_child",
            "pidfd_getfd",
            "kcmp",
        ],
        libc::EPERM,
    );
    let got = parse_syscalls(&r.stdout);
    assert_eq!(got["kill0_child"], (0, 0), "{r:?}");
    assert_eq!(got["child_visible"].0, 1, "{r:?}");
    assert!(got["pidfd_open"].0 >= 0, "{r:?}");
    assert_eq!(got["copied"].0, 0, "no memory was copied: {r:?}");
    d.assert_no_leftovers(Duration::from_secs(3)).await;
}

// ---------------------------------------------------------------- S9

#[tokio::test]
async fn s9_namespaces_cannot_be_created_or_entered_and_clone3_is_enosys() {
    require_programs(&["unshare", "python3"]);
    let d = ShellDaemon::start().await;
    let r = d
        .sh(&probes(&[
            ("unshare_U", "unshare -U true".into()),
            ("unshare_r", "unshare -r true".into()),
            ("unshare_n", "unshare -n true".into()),
            ("unshare_m", "unshare -m true".into()),
            ("unshare_p", "unshare -pf true".into()),
            ("nsenter", "nsenter -t 1 -n true".into()),
            ("control", "true".into()),
        ]))
        .await;
    let m = kv(&r.stdout);
    assert_failed(
        &m,
        &[
            "unshare_U",
            "unshare_r",
            "unshare_n",
            "unshare_m",
            "unshare_p",
            "nsenter",
        ],
        &r,
    );
    assert_succeeded(&m, &["control"], &r);

    let setup = "netns = os.open('/proc/self/ns/net', os.O_RDONLY)\n\
                 mntns = os.open('/proc/self/ns/mnt', os.O_RDONLY)";
    let sigchld = libc::SIGCHLD;
    let calls = vec![
        (
            "unshare_user",
            format!("{}, {}", libc::SYS_unshare, libc::CLONE_NEWUSER),
        ),
        (
            "unshare_net",
            format!("{}, {}", libc::SYS_unshare, libc::CLONE_NEWNET),
        ),
        (
            "unshare_ns",
            format!("{}, {}", libc::SYS_unshare, libc::CLONE_NEWNS),
        ),
        (
            "unshare_pid",
            format!("{}, {}", libc::SYS_unshare, libc::CLONE_NEWPID),
        ),
        (
            "clone_user",
            format!(
                "{}, {} | {sigchld}, 0, 0, 0, 0",
                libc::SYS_clone,
                libc::CLONE_NEWUSER
            ),
        ),
        (
            "clone_pid",
            format!(
                "{}, {} | {sigchld}, 0, 0, 0, 0",
                libc::SYS_clone,
                libc::CLONE_NEWPID
            ),
        ),
        (
            "clone_net",
            format!(
                "{}, {} | {sigchld}, 0, 0, 0, 0",
                libc::SYS_clone,
                libc::CLONE_NEWNET
            ),
        ),
        ("setns_net", format!("{}, netns, 0", libc::SYS_setns)),
        ("setns_mnt", format!("{}, mntns, 0", libc::SYS_setns)),
        ("clone3", format!("{}, 0, 0", libc::SYS_clone3)),
    ];
    let code = py_syscalls(setup, &calls)
        + "import threading\n\
           out = []\n\
           th = threading.Thread(target=lambda: out.append(1)); th.start(); th.join()\n\
           print('thread', len(out), 0)\n\
           pid = os.fork()\n\
           if pid == 0: os._exit(3)\n\
           print('fork', os.waitpid(pid, 0)[1] >> 8, 0)\n";
    let r = d.py(&code).await;
    assert_errno(
        &r,
        &[
            "unshare_user",
            "unshare_net",
            "unshare_ns",
            "unshare_pid",
            "clone_user",
            "clone_pid",
            "clone_net",
            "setns_net",
            "setns_mnt",
        ],
        libc::EPERM,
    );
    assert_errno(&r, &["clone3"], libc::ENOSYS);
    // Controls: plain fork (clone without namespace flags) and threads work.
    let got = parse_syscalls(&r.stdout);
    assert_eq!(got.get("fork"), Some(&(3, 0)), "{r:?}");
    assert_eq!(got.get("thread"), Some(&(1, 0)), "{r:?}");
}

// ---------------------------------------------------------------- S10, S11

#[tokio::test]
async fn s10_io_uring_is_denied() {
    let d = ShellDaemon::start().await;
    let setup = "params = ctypes.create_string_buffer(120)";
    let calls = vec![
        (
            "io_uring_setup",
            format!("{}, 8, params", libc::SYS_io_uring_setup),
        ),
        (
            "io_uring_enter",
            format!("{}, 0, 1, 0, 0, 0, 0", libc::SYS_io_uring_enter),
        ),
        (
            "io_uring_register",
            format!("{}, 0, 0, 0, 0", libc::SYS_io_uring_register),
        ),
        // Control: other event interfaces work.
        ("epoll_create1", format!("{}, 0", libc::SYS_epoll_create1)),
        ("eventfd2", format!("{}, 0, 0", libc::SYS_eventfd2)),
    ];
    let r = d.py(&py_syscalls(setup, &calls)).await;
    assert_errno(
        &r,
        &["io_uring_setup", "io_uring_enter", "io_uring_register"],
        libc::EPERM,
    );
    let got = parse_syscalls(&r.stdout);
    assert!(
        got["epoll_create1"].0 >= 3 && got["eventfd2"].0 >= 3,
        "{r:?}"
    );
}

#[tokio::test]
async fn s11_kernel_attack_surface_syscalls_are_denied() {
    let d = ShellDaemon::start().await;
    let setup = "attr = ctypes.create_string_buffer(128)\n\
                 ctypes.memmove(attr, (1).to_bytes(4, 'little') + (128).to_bytes(4, 'little'), 8)";
    let calls = vec![
        ("bpf_map", format!("{}, 0, attr, 72", libc::SYS_bpf)),
        ("bpf_prog", format!("{}, 5, attr, 128", libc::SYS_bpf)),
        (
            "perf_event_open",
            format!("{}, attr, 0, -1, -1, 0", libc::SYS_perf_event_open),
        ),
        ("userfaultfd", format!("{}, 0", libc::SYS_userfaultfd)),
        ("keyctl", format!("{}, 0, -3, 0", libc::SYS_keyctl)),
        (
            "add_key",
            format!("{}, b'user', b'k', b'v', 1, -3", libc::SYS_add_key),
        ),
        (
            "request_key",
            format!("{}, b'user', b'k', 0, -3", libc::SYS_request_key),
        ),
        (
            "init_module",
            format!("{}, attr, 8, b''", libc::SYS_init_module),
        ),
        (
            "finit_module",
            format!("{}, 0, b'', 0", libc::SYS_finit_module),
        ),
        (
            "delete_module",
            format!("{}, b'loop', 0", libc::SYS_delete_module),
        ),
        (
            "kexec_load",
            format!("{}, 0, 0, 0, 0", libc::SYS_kexec_load),
        ),
        (
            "kexec_file_load",
            format!("{}, 0, 0, 0, b'', 0", libc::SYS_kexec_file_load),
        ),
        // Controls through the same probe.
        (
            "memfd_create",
            format!("{}, b'x', 0", libc::SYS_memfd_create),
        ),
        ("getuid", format!("{}", libc::SYS_getuid)),
    ];
    let r = d.py(&py_syscalls(setup, &calls)).await;
    assert_errno(
        &r,
        &[
            "bpf_map",
            "bpf_prog",
            "perf_event_open",
            "userfaultfd",
            "keyctl",
            "add_key",
            "request_key",
            "init_module",
            "finit_module",
            "delete_module",
            "kexec_load",
            "kexec_file_load",
        ],
        libc::EPERM,
    );
    let got = parse_syscalls(&r.stdout);
    assert!(got["memfd_create"].0 >= 3, "{r:?}");
    assert_eq!(got["getuid"].0, SANDBOX_UID as i64, "{r:?}");
    // The filter is the one that said no.
    let r = d
        .sh("grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status")
        .await;
    assert_eq!(r.stdout, "NoNewPrivs:\t1\nSeccomp:\t2\n", "{r:?}");
}

// ---------------------------------------------------------------- S12

#[tokio::test]
async fn s12_no_terminal_and_no_tiocsti_or_tioclinux() {
    let d = ShellDaemon::start().await;
    let setup = "rfd, wfd = os.pipe()";
    let mut calls: Vec<(String, String)> = Vec::new();
    for fd in ["0", "1", "2", "rfd"] {
        calls.push((
            format!("tiocsti_{fd}"),
            format!("{}, {fd}, {}, b'x'", libc::SYS_ioctl, libc::TIOCSTI),
        ));
        calls.push((
            format!("tioclinux_{fd}"),
            format!("{}, {fd}, {}, b'\\x0c'", libc::SYS_ioctl, libc::TIOCLINUX),
        ));
    }
    let names: Vec<String> = calls.iter().map(|(n, _)| n.clone()).collect();
    let mut code = py_syscalls(setup, &calls);
    code.push_str(
        "import fcntl, termios, array\n\
         os.write(wfd, b'abc')\n\
         buf = array.array('i', [0])\n\
         fcntl.ioctl(rfd, termios.FIONREAD, buf)\n\
         print('fionread', buf[0], 0)\n\
         try:\n    os.open('/dev/tty', os.O_RDWR); print('dev_tty', 0, 0)\n\
         except OSError as e: print('dev_tty', -1, e.errno)\n\
         try:\n    os.open('/dev/ptmx', os.O_RDWR); print('ptmx', 0, 0)\n\
         except OSError as e: print('ptmx', -1, e.errno)\n\
         print('tty_nr', open('/proc/self/stat').read().rsplit(')', 1)[1].split()[4], 0)\n\
         print('isatty', int(any(os.isatty(f) for f in (0, 1, 2))), 0)\n",
    );
    let r = d.py(&code).await;
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_errno(&r, &name_refs, libc::EPERM);
    let got = parse_syscalls(&r.stdout);
    assert_eq!(got["fionread"], (3, 0), "control ioctl works: {r:?}");
    assert_eq!(got["dev_tty"].0, -1, "{r:?}");
    // A session has terminals of its own (its own devpts instance, where
    // the ioctls above stay refused: tests/sessions.rs); a sandbox has none.
    if !commands_in_session() {
        assert_eq!(got["ptmx"].0, -1, "{r:?}");
    }
    assert_eq!(got["tty_nr"].0, 0, "no controlling terminal: {r:?}");
    assert_eq!(got["isatty"].0, 0, "{r:?}");
    // The command leads no session a terminal could attach to: setsid ran
    // (in a session, each command leads its own, without a terminal).
    let r = d
        .py("import os; print(os.getsid(0) != os.getpid(), os.getsid(0))")
        .await;
    if commands_in_session() {
        assert!(r.stdout.starts_with("False "), "its own session: {r:?}");
    } else {
        assert_eq!(r.stdout, "True 1\n", "session of the sandbox's init: {r:?}");
    }
}

// ---------------------------------------------------------------- S13

/// A non-loopback address of this host.
fn host_ip() -> IpAddr {
    if let Ok(s) = UdpSocket::bind("0.0.0.0:0")
        && s.connect("192.0.2.254:9").is_ok()
        && let Ok(a) = s.local_addr()
        && !a.ip().is_loopback()
        && !a.ip().is_unspecified()
    {
        return a.ip();
    }
    let trie = std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
    let lines: Vec<&str> = trie.lines().collect();
    for w in lines.windows(2) {
        if w[1].contains("/32 host LOCAL") {
            let ip = w[0]
                .trim()
                .trim_start_matches(|c: char| !c.is_ascii_digit());
            if let Ok(ip) = ip.parse::<IpAddr>()
                && !ip.is_loopback()
            {
                return ip;
            }
        }
    }
    panic!("this host has no non-loopback IPv4 address to test against")
}

/// A TCP and a UDP socket on the host, on every address, that count what
/// reaches them.
struct HostListeners {
    tcp: TcpListener,
    udp: UdpSocket,
}

impl HostListeners {
    fn new() -> Self {
        let tcp = TcpListener::bind("0.0.0.0:0").unwrap();
        tcp.set_nonblocking(true).unwrap();
        let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
        udp.set_nonblocking(true).unwrap();
        HostListeners { tcp, udp }
    }
    fn tcp_port(&self) -> u16 {
        self.tcp.local_addr().unwrap().port()
    }
    fn udp_port(&self) -> u16 {
        self.udp.local_addr().unwrap().port()
    }
    fn tcp_connections(&self) -> usize {
        let mut n = 0;
        loop {
            match self.tcp.accept() {
                Ok(_) => n += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return n,
                Err(e) => panic!("accept: {e}"),
            }
        }
    }
    fn udp_datagrams(&self) -> usize {
        let mut n = 0;
        let mut buf = [0u8; 64];
        loop {
            match self.udp.recv_from(&mut buf) {
                Ok(_) => n += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return n,
                Err(e) => panic!("recv: {e}"),
            }
        }
    }
}

fn network_probe(host: IpAddr, tcp: u16, udp: u16) -> String {
    format!(
        r#"
import socket
def t(name, f):
    try:
        f(); print(name + "=0")
    except OSError as e:
        print(name + "=" + str(e.errno))
def tcp(h):
    s = socket.create_connection((h, {tcp}), timeout=3); s.sendall(b"x"); s.close()
def udp(h):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b"x", (h, {udp}))
t("py_tcp_lo", lambda: tcp("127.0.0.1"))
t("py_tcp_host", lambda: tcp("{host}"))
t("py_udp_lo", lambda: udp("127.0.0.1"))
t("py_udp_host", lambda: udp("{host}"))
t("py_dns", lambda: socket.getaddrinfo("example.com", 80))
t("py_ping_raw", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).sendto(b"\x08\0\xf7\xff\0\0\0\0", ("127.0.0.1", 0)))
t("py_ping_dgram", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP).sendto(b"\x08\0\xf7\xff\0\0\0\0", ("127.0.0.1", 0)))
# (if_nameindex needs netlink, which seccomp refuses: read /proc instead.)
print("ifaces=" + ",".join(sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:])))
"#
    )
}

#[tokio::test]
async fn s13_no_network_without_a_grant() {
    require_programs(&["bash", "python3", "getent"]);
    let l = HostListeners::new();
    let (tp, up, host) = (l.tcp_port(), l.udp_port(), host_ip());
    let d = ShellDaemon::start().await;
    let mut cmds = vec![
        (
            "bash_tcp_lo",
            format!("bash -c 'echo x > /dev/tcp/127.0.0.1/{tp}'"),
        ),
        (
            "bash_tcp_host",
            format!("bash -c 'echo x > /dev/tcp/{host}/{tp}'"),
        ),
        (
            "bash_udp_lo",
            format!("bash -c 'echo x > /dev/udp/127.0.0.1/{up}'"),
        ),
        (
            "bash_udp_host",
            format!("bash -c 'echo x > /dev/udp/{host}/{up}'"),
        ),
        ("getent_dns", "getent hosts example.com".into()),
        ("getent_dns_ip", "getent ahosts one.one.one.one".into()),
    ];
    if on_sandbox_path("curl").is_some() {
        cmds.push((
            "curl_lo",
            format!("curl -sS --max-time 3 http://127.0.0.1:{tp}/"),
        ));
        cmds.push((
            "curl_host",
            format!("curl -sS --max-time 3 http://{host}:{tp}/"),
        ));
    }
    // A session's loopback is up (its servers listen there) and its own:
    // a datagram sent to it is sent, and reaches nothing on the host (the
    // listeners' counts below). Everything else fails in both.
    let own_loopback = |n: &&str| !(commands_in_session() && n.ends_with("_udp_lo"));
    let names: Vec<&str> = cmds.iter().map(|(n, _)| *n).filter(own_loopback).collect();
    let t0 = Instant::now();
    let r = d.sh(&probes(&cmds)).await;
    assert_failed(&kv(&r.stdout), &names, &r);
    let r2 = d.py(&network_probe(host, tp, up)).await;
    let m = kv(&r2.stdout);
    let py_names: Vec<&str> = [
        "py_tcp_lo",
        "py_tcp_host",
        "py_udp_lo",
        "py_udp_host",
        "py_dns",
        "py_ping_raw",
        "py_ping_dgram",
    ]
    .into_iter()
    .filter(|n| own_loopback(n))
    .collect();
    assert_failed(&m, &py_names, &r2);
    assert_eq!(
        m.get("ifaces").map(String::as_str),
        Some("lo"),
        "only a loopback interface: {r2:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    // Nothing reached the host.
    assert_eq!(l.tcp_connections(), 0, "a TCP connection reached the host");
    assert_eq!(l.udp_datagrams(), 0, "a UDP datagram reached the host");
}

#[tokio::test]
async fn s13_control_network_granted_reaches_the_host_listener() {
    let l = HostListeners::new();
    let (tp, up, host) = (l.tcp_port(), l.udp_port(), host_ip());
    let d = ShellDaemon::start_with(Policy {
        network: true,
        ..Policy::default()
    })
    .await;
    let r = d
        .sh(&probes(&[
            (
                "bash_tcp_lo",
                format!("bash -c 'echo x > /dev/tcp/127.0.0.1/{tp}'"),
            ),
            (
                "bash_tcp_host",
                format!("bash -c 'echo x > /dev/tcp/{host}/{tp}'"),
            ),
        ]))
        .await;
    assert_succeeded(&kv(&r.stdout), &["bash_tcp_lo", "bash_tcp_host"], &r);
    let r2 = d.py(&network_probe(host, tp, up)).await;
    let m = kv(&r2.stdout);
    assert_succeeded(
        &m,
        &["py_tcp_lo", "py_tcp_host", "py_udp_lo", "py_udp_host"],
        &r2,
    );
    // Raw sockets still need a capability the sandbox never has.
    assert_failed(&m, &["py_ping_raw"], &r2);
    // Every connection and datagram reached the host's sockets.
    assert_eq!(l.tcp_connections(), 4, "bash and python, loopback and host");
    assert_eq!(l.udp_datagrams(), 2, "python, loopback and host");
}

// ---------------------------------------------------------------- S14

#[tokio::test]
async fn s14_netlink_packet_and_vsock_sockets_are_denied() {
    let d = ShellDaemon::start().await;
    let s = libc::SYS_socket;
    let calls = vec![
        ("netlink_route", format!("{s}, {}, 3, 0", libc::AF_NETLINK)),
        ("netlink_audit", format!("{s}, {}, 3, 9", libc::AF_NETLINK)),
        ("netlink_dgram", format!("{s}, {}, 2, 0", libc::AF_NETLINK)),
        ("packet_raw", format!("{s}, {}, 3, 0", libc::AF_PACKET)),
        ("packet_dgram", format!("{s}, {}, 2, 0", libc::AF_PACKET)),
        ("vsock_stream", format!("{s}, {}, 1, 0", libc::AF_VSOCK)),
        ("vsock_dgram", format!("{s}, {}, 2, 0", libc::AF_VSOCK)),
        // Controls.
        ("unix_stream", format!("{s}, {}, 1, 0", libc::AF_UNIX)),
        ("inet_stream", format!("{s}, {}, 1, 0", libc::AF_INET)),
    ];
    let mut code = py_syscalls("", &calls);
    code.push_str(
        "import socket\n\
         a, b = socket.socketpair(socket.AF_UNIX)\n\
         a.sendall(b'ping'); print('unix_pair', len(b.recv(4)), 0)\n",
    );
    let r = d.py(&code).await;
    assert_errno(
        &r,
        &[
            "netlink_route",
            "netlink_audit",
            "netlink_dgram",
            "packet_raw",
            "packet_dgram",
            "vsock_stream",
            "vsock_dgram",
        ],
        libc::EPERM,
    );
    let got = parse_syscalls(&r.stdout);
    assert!(
        got["unix_stream"].0 >= 3 && got["inet_stream"].0 >= 3,
        "{r:?}"
    );
    assert_eq!(got["unix_pair"], (4, 0), "{r:?}");
}

/// Connects to the abstract Unix socket `name` from the sandbox, and (as
/// control) to one the command itself listens on.
fn abstract_probe(name: &str) -> String {
    format!(
        r#"
import socket
def t(label, f):
    try:
        f(); print(label + "=0")
    except OSError as e:
        print(label + "=" + str(e.errno))
def host():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect("\0{name}")
def own():
    l = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); l.bind("\0{name}-own"); l.listen(1)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect("\0{name}-own")
t("host_abstract", host)
t("own_abstract", own)
"#
    )
}

#[tokio::test]
async fn s14_the_hosts_abstract_unix_sockets_are_unreachable_even_with_network() {
    use std::os::linux::net::SocketAddrExt;
    let name = tag();
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    // Control on the host: the socket accepts connections.
    let probe = std::os::unix::net::UnixStream::connect_addr(&addr).unwrap();
    assert!(listener.accept().is_ok());
    drop(probe);
    for network in [false, true] {
        let d = ShellDaemon::start_with(Policy {
            network,
            ..Policy::default()
        })
        .await;
        let r = d.py(&abstract_probe(&name)).await;
        let m = kv(&r.stdout);
        assert_failed(&m, &["host_abstract"], &r);
        assert_succeeded(&m, &["own_abstract"], &r);
        assert!(
            matches!(listener.accept(), Err(e) if e.kind() == ErrorKind::WouldBlock),
            "network={network}: a sandbox reached the host's abstract socket"
        );
    }
}

// ---------------------------------------------------------------- S15

#[tokio::test]
async fn s15_host_processes_are_invisible_and_cannot_be_signalled() {
    require_programs(&["ps", "kill"]);
    let d = ShellDaemon::start().await;
    // A host process of the very uid the sandbox runs as.
    let marker = unique_sleep(1000);
    let mut host_child = std::process::Command::new("sleep")
        .arg(&marker)
        .uid(SANDBOX_UID)
        .gid(SANDBOX_GID)
        .spawn()
        .unwrap();
    let hp = host_child.id();
    let me = std::process::id();
    let script = format!(
        "ps -eo pid=,args=; echo ---; ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '; echo; \
         kill -9 {hp} 2>/dev/null; echo kill_host=$?\n\
         kill -0 {me} 2>/dev/null; echo kill_test=$?\n\
         kill -0 {} 2>/dev/null; echo kill_daemon=$?\n\
         sleep 5 & kill $! ; echo kill_own=$?",
        d.pid
    );
    let r = d.sh(&script).await;
    let (ps, rest) = r.stdout.split_once("---\n").expect("ps output");
    assert!(!ps.contains(&marker), "a host process is visible: {r:?}");
    let ps_pids: Vec<u32> = ps
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(
        !ps_pids.is_empty() && ps_pids.len() < 10 && ps_pids.iter().all(|p| *p < 100),
        "only the sandbox's few processes: {r:?}"
    );
    assert!(ps_pids.contains(&1), "the sandbox's init is pid 1: {r:?}");
    let proc_pids: Vec<u32> = rest
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert!(
        !proc_pids.contains(&hp) && !proc_pids.contains(&me) && !proc_pids.contains(&d.pid),
        "{r:?}"
    );
    let m = kv(rest);
    assert_failed(&m, &["kill_host", "kill_test", "kill_daemon"], &r);
    assert_succeeded(&m, &["kill_own"], &r);
    // The host process is untouched.
    assert!(
        host_child.try_wait().unwrap().is_none(),
        "the host process was killed from inside the sandbox"
    );
    host_child.kill().unwrap();
    host_child.wait().unwrap();
}

#[tokio::test]
async fn s15_the_command_cannot_take_down_the_sandboxs_init() {
    // init (pid 1 inside) reaps and reports; signals from inside the
    // namespace to it are dropped, /proc/1 is closed to the command.
    let d = ShellDaemon::start().await;
    let r = d
        .sh(
            "for s in KILL TERM STOP INT HUP SEGV; do kill -$s 1 2>/dev/null; done; \
             sleep 0.2; echo still-here; exit 3",
        )
        .await;
    assert_eq!(r.stdout, "still-here\n", "{r:?}");
    assert_eq!((r.code(), r.signal()), (Some(3), None), "{r:?}");
    d.assert_no_leftovers(Duration::from_secs(3)).await;
}

// ---------------------------------------------------------------- S16

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s16_a_fork_bomb_hits_the_pids_limit_and_the_daemon_keeps_serving() {
    let mut d = ShellDaemon::start_with(Policy {
        pids: 48,
        ..Policy::default()
    })
    .await;
    let bomb = r#"
import os, time
n = fails = 0
errnos = set()
t = time.time()
while time.time() - t < 2.5:
    try:
        pid = os.fork()
    except OSError as e:
        fails += 1; errnos.add(e.errno); time.sleep(0.001); continue
    if pid == 0:
        time.sleep(1000); os._exit(0)
    n += 1
print(n, fails, sorted(errnos))
"#;
    let marker = unique_sleep(1000);
    let classic = format!("b() {{ b | b & }}; b; sleep {marker}");
    let mut classic_req = sh_req(&classic);
    classic_req.timeout_ms = 3000;

    let t0 = Instant::now();
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let t = Instant::now();
        let r = d.argv(&["echo", "alive"]).await;
        (r, t.elapsed())
    };
    let (r_bomb, r_classic, (r_alive, alive_took)) =
        tokio::join!(d.py(bomb), d.run_ok(classic_req), meanwhile);

    // The bomb was stopped by the pids limit: forks failed with EAGAIN.
    let f: Vec<&str> = r_bomb.stdout.split_whitespace().collect();
    assert!(f.len() >= 3, "{r_bomb:?}");
    let (forked, failed): (u32, u32) = (f[0].parse().unwrap(), f[1].parse().unwrap());
    assert!((10..48).contains(&forked), "forked {forked}: {r_bomb:?}");
    assert!(failed > 0, "{r_bomb:?}");
    assert!(r_bomb.stdout.contains("[11]"), "EAGAIN: {r_bomb:?}");
    // The classic bomb ran until its timeout (or died out) and was reaped.
    assert!(
        r_classic.exited.timed_out || r_classic.code().is_some(),
        "{r_classic:?}"
    );
    // Meanwhile another call was served promptly.
    assert_eq!(r_alive.stdout, "alive\n");
    assert!(alive_took < Duration::from_secs(5), "{alive_took:?}");
    assert!(t0.elapsed() < Duration::from_secs(20));
    assert_no_process_with(&marker, Duration::from_secs(3)).await;
    d.assert_no_leftovers(Duration::from_secs(5)).await;
    d.assert_serving().await;
}

// ---------------------------------------------------------------- S17

#[tokio::test]
async fn s17_a_memory_bomb_is_killed_by_the_memory_limit_and_reported() {
    let mut d = ShellDaemon::start_with(Policy {
        memory_bytes: 64 << 20,
        ..Policy::default()
    })
    .await;
    // Control: well under the limit.
    let r = d
        .py("b = bytearray(b'\\x01') * (16 << 20)\nprint('ok', len(b))")
        .await;
    assert_eq!(r.stdout, format!("ok {}\n", 16 << 20), "{r:?}");
    assert!(!r.exited.oom_killed);
    let t0 = Instant::now();
    let r = d
        .py("x = []\nwhile True: x.append(bytearray(b'\\x01') * (8 << 20))")
        .await;
    assert!(r.exited.oom_killed, "{r:?}");
    assert_eq!(r.signal(), Some(libc::SIGKILL), "{r:?}");
    assert!(!r.exited.timed_out);
    assert!(
        r.exited.peak_memory_bytes >= 32 << 20 && r.exited.peak_memory_bytes <= 80 << 20,
        "peak {}: {r:?}",
        r.exited.peak_memory_bytes
    );
    assert!(t0.elapsed() < Duration::from_secs(20));
    d.assert_no_leftovers(Duration::from_secs(3)).await;
    d.assert_serving().await;
}

// ---------------------------------------------------------------- S18

#[tokio::test]
async fn s18_disk_fill_is_stopped_by_the_file_size_limit() {
    let d = ShellDaemon::start_with(Policy {
        fsize_bytes: 1 << 20,
        ..Policy::default()
    })
    .await;
    let r = d
        .sh(&probes(&[
            ("big", "head -c 3000000 /dev/zero > /workspace/big".into()),
            ("big_tmp", "head -c 3000000 /dev/zero > /tmp/big".into()),
            (
                "small",
                "head -c 500000 /dev/zero > /workspace/small".into(),
            ),
        ]))
        .await;
    let m = kv(&r.stdout);
    assert_failed(&m, &["big", "big_tmp"], &r);
    assert_succeeded(&m, &["small"], &r);
    let big = std::fs::metadata(d.dirs.w("big")).unwrap().len();
    assert!(big <= 1 << 20, "big is {big} bytes");
    assert_eq!(std::fs::metadata(d.dirs.w("small")).unwrap().len(), 500_000);
    // Python ignores SIGXFSZ: it sees EFBIG.
    let r = d
        .py("import errno\ntry:\n    open('/workspace/py', 'wb').write(b'x' * (2 << 20)); print('wrote')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])")
        .await;
    assert_eq!(r.stdout, "EFBIG\n", "{r:?}");
    assert!(std::fs::metadata(d.dirs.w("py")).unwrap().len() <= 1 << 20);
}

// ---------------------------------------------------------------- S19

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s19_an_output_flood_keeps_daemon_memory_bounded_and_head_and_tail() {
    require_programs(&["yes", "head"]);
    let d = ShellDaemon::start().await;
    // Warm up (first launch, first connection), then take the baseline.
    d.argv(&["true"]).await;
    let (baseline, _) = d.rss_kib();

    let flood = 200_000_000u64;
    let end = "THE-END-OF-THE-FLOOD";
    let mut req = sh_req(&format!("yes | head -c {flood}; printf '{end}'"));
    req.output_budget_bytes = 64 * 1024;
    req.timeout_ms = 120_000;
    let r = d.run_ok(req).await;
    assert!(!r.exited.timed_out, "{r:?}");
    let out = r.stdout_capture();
    assert_eq!(out.total_bytes, flood + end.len() as u64, "{r:?}");
    assert_eq!(out.head.len(), 32 * 1024);
    assert_eq!(out.tail.len(), 32 * 1024);
    assert!(out.head.starts_with(b"y\ny\ny\n"));
    assert!(
        out.tail.ends_with(format!("y\ny\n{end}").as_bytes()),
        "the tail survives: {:?}",
        String::from_utf8_lossy(&out.tail[out.tail.len() - 40..])
    );
    assert_eq!(out.omitted_bytes, out.total_bytes - 64 * 1024);
    assert!(r.exited.stdout_truncated);
    assert_eq!(r.exited.stdout_bytes, out.total_bytes);

    // `yes` until the timeout: still head and tail, the rest counted.
    let mut req = argv_req(&["yes", "flood-line"]);
    req.output_budget_bytes = 64 * 1024;
    req.timeout_ms = 1000;
    let r = d.run_ok(req).await;
    assert!(r.exited.timed_out, "{r:?}");
    let out = r.stdout_capture();
    assert!(out.total_bytes > 1 << 20, "{} bytes", out.total_bytes);
    assert_eq!(out.head.len() + out.tail.len(), 64 * 1024);
    assert!(out.head.starts_with(b"flood-line\nflood-line\n"));
    assert_eq!(out.omitted_bytes, out.total_bytes - 64 * 1024);
    assert_eq!(r.exited.stdout_bytes, out.total_bytes);

    // Exec streams the budget and counts the rest.
    let mut req = sh_req("yes | head -c 64000000");
    req.output_budget_bytes = 64 * 1024;
    let events = d.exec_events(req).await.unwrap();
    let streamed: usize = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(exec_event::Event::Stdout(c)) => Some(c.data.len()),
            _ => None,
        })
        .sum();
    let Some(exec_event::Event::Exited(x)) = events.last().and_then(|e| e.event.clone()) else {
        panic!("no Exited")
    };
    assert_eq!(streamed, 64 * 1024);
    assert_eq!(x.stdout_bytes, 64_000_000);
    assert!(x.stdout_truncated);

    // ~270 MB went through the daemon; it kept at most a few budgets.
    let (rss, peak) = d.rss_kib();
    assert!(
        peak < baseline + 64 * 1024 && peak < 200 * 1024,
        "daemon peak RSS {peak} KiB (baseline {baseline} KiB, now {rss} KiB)"
    );
    d.assert_no_leftovers(Duration::from_secs(3)).await;
}

// ---------------------------------------------------------------- S20

#[tokio::test]
async fn s20_background_children_do_not_outlive_the_call() {
    let d = ShellDaemon::start().await;
    let m: Vec<String> = (0..6).map(|_| unique_sleep(1000)).collect();
    let script = format!(
        "sleep {} & setsid sleep {} & (sleep {} &); (setsid sh -c 'sleep {} & exit' &); \
         nohup sleep {} >/dev/null 2>&1 & \
         python3 -c 'import os,time\nif os.fork() == 0:\n  os.setsid()\n  if os.fork() == 0: time.sleep({})\n  os._exit(0)\n'; \
         sleep 1; echo started",
        m[0], m[1], m[2], m[3], m[4], m[5]
    );
    let t0 = Instant::now();
    let mut req = sh_req(&script);
    req.timeout_ms = 20_000;
    // Control: they do run while the call is in flight.
    let running = async {
        let ok = wait_until(Duration::from_secs(3), || {
            m.iter().all(|x| !host_pids_with(x).is_empty())
        })
        .await;
        assert!(ok, "every background process should start");
    };
    let (r, ()) = tokio::join!(d.run_ok(req), running);
    assert_eq!(r.stdout, "started\n", "{r:?}");
    assert_eq!(r.code(), Some(0));
    assert!(!r.exited.timed_out, "returns when the command exits: {r:?}");
    assert!(t0.elapsed() < Duration::from_secs(6), "{:?}", t0.elapsed());
    // In a session, background processes are meant to outlive the command
    // (that is what a session is for): they die with the session instead.
    d.close_sessions().await;
    for x in &m {
        assert_no_process_with(x, Duration::from_secs(2)).await;
    }
    d.assert_no_leftovers(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn s20_a_timeout_kills_the_whole_tree_and_leaves_no_zombie() {
    let d = ShellDaemon::start().await;
    let m: Vec<String> = (0..3).map(|_| unique_sleep(1000)).collect();
    // Children that exit at once and are never waited for (zombies until
    // init reaps them), plus a tree that outlives the timeout.
    let script = format!(
        "python3 -c 'import os\nfor i in range(5):\n  if os.fork() == 0: os._exit(0)\nimport time; time.sleep(1000)' & \
         sleep {} & setsid sleep {} & sleep {}",
        m[0], m[1], m[2]
    );
    let mut req = sh_req(&script);
    req.timeout_ms = 700;
    // (In a session, opened before the clock starts.)
    let req = d.in_session(req).await;
    let t0 = Instant::now();
    let r = d.run_ok(req).await;
    assert!(r.exited.timed_out, "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(4));
    // In a session a timeout kills the command's process group; what left
    // it (setsid) lives until the session ends.
    d.close_sessions().await;
    for x in &m {
        assert_no_process_with(x, Duration::from_secs(2)).await;
    }
    // No process (zombie or not) under the daemon, no cgroup left.
    d.assert_no_leftovers(Duration::from_secs(2)).await;
    let zombies: Vec<u32> = host_processes()
        .into_iter()
        .filter(|(_, ppid, state)| *ppid == d.pid && *state == 'Z')
        .map(|(pid, _, _)| pid)
        .collect();
    assert!(zombies.is_empty(), "zombies of the daemon: {zombies:?}");
}

// ---------------------------------------------------------------- S21, S22

fn secret_env() -> Vec<(String, String)> {
    [
        ("AGENTJAIL_TEST_SECRET", SECRET),
        ("GITHUB_TOKEN", "ghp_TOKEN-4b1d7e"),
        ("AWS_SECRET_ACCESS_KEY", "AWS-KEY-9c2e11"),
        ("NOTIFY_SOCKET", "/run/systemd/notify-aj-9f1c"),
        ("LISTEN_FDS", "1"),
        ("LISTEN_PID", "424242"),
        ("LISTEN_FDNAMES", "aj-listen-name-77"),
        ("SSH_AUTH_SOCK", "/tmp/ssh-aj-agent-5e"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A daemon with secrets in its environment and two host files open as
/// inherited fds 3 and 4.
async fn leaky_daemon() -> ShellDaemon {
    let dirs = ShellDirs::new();
    let mut serve = Serve::new();
    for (k, v) in secret_env() {
        serve = serve.env(k, v);
    }
    for file in [&dirs.outside, &dirs.other_ws] {
        serve = serve.fd(std::fs::File::open(file.join("secret.txt")).unwrap());
    }
    let d = ShellDaemon::launch(dirs, &Policy::default(), serve).await;
    // The case is real: the daemon does hold them.
    let environ =
        String::from_utf8_lossy(&std::fs::read(format!("/proc/{}/environ", d.pid)).unwrap())
            .into_owned();
    for (k, v) in secret_env() {
        assert!(environ.contains(&format!("{k}={v}")), "daemon lacks {k}");
    }
    let fd3 = std::fs::read_link(format!("/proc/{}/fd/3", d.pid)).unwrap();
    assert_eq!(fd3, d.dirs.outside.join("secret.txt"));
    d
}

#[tokio::test]
async fn s21_the_daemons_environment_is_not_visible_to_commands() {
    let d = leaky_daemon().await;
    let mut req = argv_req(&["env"]);
    req.env.insert("FOO".into(), "visible-control".into());
    let r = d.run_ok(req).await;
    assert!(r.stdout.contains("FOO=visible-control\n"), "{r:?}");
    let mut all = format!("{}{}", r.stdout, r.stderr);
    let r = d
        .sh("tr '\\0' '\\n' < /proc/self/environ; tr '\\0' '\\n' < /proc/1/environ; \
             tr '\\0' ' ' < /proc/1/cmdline; echo; \
             for p in /proc/[0-9]*; do cat $p/environ $p/cmdline 2>/dev/null | tr '\\0' '\\n'; done; \
             python3 -c 'import os; print(dict(os.environ))'")
        .await;
    all.push_str(&r.stdout);
    all.push_str(&r.stderr);
    for (k, v) in secret_env() {
        // (LISTEN_FDS=1: too short a value to look for.)
        assert!(
            v.len() < 4 || !all.contains(&v),
            "{k}'s value reached the command: {all}"
        );
        assert!(
            !all.contains(&format!("{k}=")),
            "{k} reached the command: {all}"
        );
    }
    assert!(
        !all.contains("--policy-dir"),
        "the daemon's argv is readable through init: {all}"
    );
}

#[tokio::test]
async fn s22_only_fds_0_1_2_are_open_in_the_command() {
    let d = leaky_daemon().await;
    // (No pipeline: a shell holds pipe fds while it forks one.)
    let r = d.sh("ls /proc/$$/fd").await;
    assert_eq!(r.stdout, "0\n1\n2\n", "{r:?}");
    let r = d
        .py("import os\nopen_fds = []\nfor fd in range(4096):\n    try:\n        os.fstat(fd); open_fds.append(fd)\n    except OSError: pass\nprint(open_fds)")
        .await;
    assert_eq!(r.stdout, "[0, 1, 2]\n", "{r:?}");
    let r = d
        .sh("cat /proc/self/fd/3 /proc/self/fd/4 /dev/fd/3; echo rc=$?; cat <&3; cat <&4")
        .await;
    assert!(
        !r.stdout.contains(SECRET) && !r.stderr.contains(SECRET),
        "{r:?}"
    );
    assert!(!r.stdout.contains("rc=0"), "{r:?}");
    // Control: the listing does show an fd the command opens itself.
    let r = d.sh("exec 5</dev/null; ls /proc/$$/fd").await;
    assert_eq!(r.stdout, "0\n1\n2\n5\n", "{r:?}");
}

// ---------------------------------------------------------------- S23

#[tokio::test]
async fn s23_proc_self_exe_and_fd_tricks_do_not_reach_host_files() {
    let d = leaky_daemon().await;
    let core_pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let script = probes_showing(&[
        ("p1_environ", "cat /proc/1/environ".into()),
        ("p1_root", "ls /proc/1/root/".into()),
        ("p1_root_shadow", "cat /proc/1/root/etc/shadow".into()),
        ("p1_cwd", "ls /proc/1/cwd/".into()),
        ("p1_fd", "ls /proc/1/fd/".into()),
        ("p1_fd3", "cat /proc/1/fd/3".into()),
        ("p1_exe", "cat /proc/1/exe".into()),
        ("p1_exe_link", "readlink /proc/1/exe".into()),
        ("p1_mem", "head -c 16 /proc/1/mem".into()),
        ("p1_maps", "cat /proc/1/maps".into()),
        ("self_root_shadow", "cat /proc/self/root/etc/shadow".into()),
        (
            "self_root_up",
            "cat /proc/self/root/../../../etc/shadow".into(),
        ),
        (
            "core_pattern",
            "echo '|/workspace/pwn' > /proc/sys/kernel/core_pattern".into(),
        ),
        ("sysrq_trigger", "echo h > /proc/sysrq-trigger".into()),
        ("sys", "ls /sys/kernel".into()),
        ("kcore", "head -c 16 /proc/kcore".into()),
        // Controls: the magic links work, inside the sandbox's view.
        (
            "self_exe",
            "test \"$(readlink /proc/self/exe)\" = /usr/bin/readlink".into(),
        ),
        ("self_root", "test -d /proc/self/root/workspace".into()),
        ("self_fd1", "echo via-proc-fd > /proc/self/fd/1".into()),
        ("dev_stdout", "echo via-dev-stdout > /dev/stdout".into()),
    ]);
    let r = d.sh(&format!("{script}readlink /proc/self/exe")).await;
    let m = kv(&r.stdout);
    assert_failed(
        &m,
        &[
            "p1_environ",
            "p1_root",
            "p1_root_shadow",
            "p1_cwd",
            "p1_fd",
            "p1_fd3",
            "p1_exe",
            "p1_exe_link",
            "p1_mem",
            "p1_maps",
            "self_root_shadow",
            "self_root_up",
            "core_pattern",
            "sysrq_trigger",
            "sys",
            "kcore",
        ],
        &r,
    );
    assert_succeeded(&m, &["self_exe", "self_root", "self_fd1", "dev_stdout"], &r);
    assert!(r.stdout.ends_with("/usr/bin/readlink\n"), "{r:?}");
    assert!(!r.stdout.contains(SECRET) && !r.stderr.contains(SECRET));
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        core_pattern
    );
}

// ---------------------------------------------------------------- S24

#[tokio::test]
async fn s24_argument_injection_cannot_turn_an_allowed_command_into_a_denied_one() {
    require_programs(&["git", "rm", "echo"]);
    let d = ShellDaemon::start().await;
    put_ws(&d.dirs, "victim", "keep me\n");
    let denied: &[&[&str]] = &[
        &["-rf", "/"],
        &["--", "git", "push"],
        &["--help"],
        &["git", "push"],
        &["git", "-c", "x.y=z", "push", "origin"],
        &["git", "--", "push"],
        &["git", "--git-dir=/workspace/.git", "push"],
        &[
            "git",
            "--upload-pack=touch /workspace/pwned",
            "ls-remote",
            "x",
        ],
        &["git", "--exec-path=/workspace"],
        &["/usr/local/bin/../bin/git", "push"],
        &["rm", "-rf", "/"],
        &["rm", "-rf", "--", "/"],
        &["rm", "-rf", "--no-preserve-root", "/"],
        &["rm", "--no-preserve-root", "-rf", "/workspace/victim"],
    ];
    for argv in denied {
        let s = assert_refused(
            d.run(argv_req(argv)).await,
            Code::PermissionDenied,
            "POLICY_DENIED",
        );
        assert!(
            error_meta(&s).contains_key("rule"),
            "{argv:?}: {}",
            describe(&s)
        );
    }
    assert_eq!(d.commands_allowed(), 0, "nothing may start");
    assert_eq!(
        d.commands_refused(),
        denied.len(),
        "each refusal is audited"
    );
    assert_eq!(
        std::fs::read_to_string(d.dirs.w("victim")).unwrap(),
        "keep me\n"
    );
    assert!(!exists(&d.dirs.w("pwned")));
    // argv is never interpreted by a shell.
    let r = d
        .argv(&[
            "echo",
            "$(touch /workspace/injected)",
            ";",
            "touch",
            "/workspace/injected2",
            "`id`",
        ])
        .await;
    assert_eq!(
        r.stdout,
        "$(touch /workspace/injected) ; touch /workspace/injected2 `id`\n"
    );
    assert!(!exists(&d.dirs.w("injected")) && !exists(&d.dirs.w("injected2")));
    // Controls: the allowed variants run.
    let r = d.argv(&["git", "--version"]).await;
    assert!(r.stdout.starts_with("git version"), "{r:?}");
    let r = d.argv(&["rm", "-f", "--", "/workspace/victim"]).await;
    assert_eq!(r.code(), Some(0), "{r:?}");
    assert!(!exists(&d.dirs.w("victim")));
}

// ---------------------------------------------------------------- S25

#[tokio::test]
async fn s25_a_denied_command_through_an_allowed_one_is_still_confined() {
    require_programs(&["env", "xargs", "find", "python3", "sh", "touch"]);
    let l = HostListeners::new();
    let tp = l.tcp_port();
    let t = tag();
    // No shell, no touch, no cat, no bash: only launchers.
    let mut policy = Policy {
        allow_shell: false,
        ..Policy::default()
    };
    policy
        .commands
        .retain(|(p, _)| ["env", "xargs", "find", "python3", "echo"].contains(&p.as_str()));
    let d = ShellDaemon::start_with(policy).await;
    let before = d.dirs.outside_snapshot();
    // The command gate refuses touch itself ...
    assert_refused(
        d.run(argv_req(&["touch", "/workspace/x"])).await,
        Code::PermissionDenied,
        "POLICY_DENIED",
    );
    // ... but the launchers reach it. The OS sandbox is what holds.
    let etc = format!("/etc/{t}");
    let attempts: Vec<(Vec<String>, Vec<u8>)> = vec![
        (
            vec!["env".into(), "touch".into(), etc.clone() + "-env"],
            vec![],
        ),
        (
            vec!["env".into(), "cat".into(), "/etc/shadow".into()],
            vec![],
        ),
        (
            vec![
                "env".into(),
                "bash".into(),
                "-c".into(),
                format!("echo x > /dev/tcp/127.0.0.1/{tp}"),
            ],
            vec![],
        ),
        (
            vec!["xargs".into(), "touch".into()],
            format!("{etc}-xargs /usr/{t}-xargs").into_bytes(),
        ),
        (
            vec![
                "find".into(),
                "/workspace".into(),
                "-maxdepth".into(),
                "0".into(),
                "-exec".into(),
                "sh".into(),
                "-c".into(),
                format!("echo x > {etc}-find || exit 1; cat /etc/shadow"),
                "sh".into(),
                "{}".into(),
                "+".into(),
            ],
            vec![],
        ),
        (
            vec![
                "python3".into(),
                "-c".into(),
                format!("open('{etc}-py', 'w')"),
            ],
            vec![],
        ),
        (
            vec![
                "python3".into(),
                "-c".into(),
                format!("import socket; socket.create_connection(('127.0.0.1', {tp}), timeout=3)"),
            ],
            vec![],
        ),
        (
            vec![
                "python3".into(),
                "-c".into(),
                format!("open('{}/secret.txt').read()", d.dirs.outside.display()),
            ],
            vec![],
        ),
    ];
    for (argv, stdin) in &attempts {
        let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
        let mut req = argv_req(&argv_ref);
        req.stdin = stdin.clone();
        let r = d.run_ok(req).await;
        assert_ne!(r.code(), Some(0), "{argv:?} succeeded: {r:?}");
        assert!(!r.stdout.contains(SECRET), "{r:?}");
    }
    for suffix in ["-env", "-xargs", "-find", "-py"] {
        assert!(
            !exists(Path::new(&format!("{etc}{suffix}"))),
            "{etc}{suffix}"
        );
    }
    assert!(!exists(Path::new(&format!("/usr/{t}-xargs"))));
    assert_eq!(l.tcp_connections(), 0);
    assert_eq!(d.dirs.outside_snapshot(), before);

    // Controls: the same routes work inside the workspace.
    let controls: Vec<(Vec<&str>, &[u8])> = vec![
        (vec!["env", "touch", "/workspace/via-env"], b""),
        (vec!["xargs", "touch"], b"/workspace/via-xargs"),
        (
            vec![
                "find",
                "/workspace",
                "-maxdepth",
                "0",
                "-exec",
                "sh",
                "-c",
                "echo x > /workspace/via-find",
                "sh",
                "{}",
                "+",
            ],
            b"",
        ),
        (
            vec!["python3", "-c", "open('/workspace/via-py', 'w').write('x')"],
            b"",
        ),
    ];
    for (argv, stdin) in controls {
        let mut req = argv_req(&argv);
        req.stdin = stdin.to_vec();
        let r = d.run_ok(req).await;
        assert_eq!(r.code(), Some(0), "{argv:?}: {r:?}");
    }
    for name in ["via-env", "via-xargs", "via-find", "via-py"] {
        assert!(exists(&d.dirs.w(name)), "{name}");
    }
}

// ------------------------------------------------ shell + file tools

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_swapping_a_file_for_a_fifo_never_hangs_the_file_tools() {
    // The file tools run in the daemon; a command may race them by
    // replacing a regular file with a FIFO (an open would block forever).
    let d = ShellDaemon::start().await;
    let swapper = r#"
import os, time
os.chdir("/workspace")
t = time.time()
while time.time() - t < 3:
    open("reg.tmp", "w").write("x")
    os.rename("reg.tmp", "swap")
    try: os.unlink("fifo.tmp")
    except OSError: pass
    os.mkfifo("fifo.tmp")
    os.rename("fifo.tmp", "swap")
print("swapped")
"#;
    let readers = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let mut c = d.client().await;
        let (mut ok, mut refused) = (0, 0);
        for _ in 0..40 {
            let call = c.read_file(ReadFileRequest {
                path: "swap".into(),
                ..Default::default()
            });
            match tokio::time::timeout(Duration::from_secs(5), call).await {
                Err(_) => panic!("ReadFile hung on a file swapped for a FIFO"),
                Ok(Ok(_)) => ok += 1,
                Ok(Err(_)) => refused += 1,
            }
        }
        (ok, refused)
    };
    let (r, (ok, refused)) = tokio::join!(d.py(swapper), readers);
    assert_eq!(r.stdout, "swapped\n", "{r:?}");
    assert_eq!(ok + refused, 40);
    d.assert_no_leftovers(Duration::from_secs(3)).await;
}

// ---------------------------------------------------------------- R4

fn doctor(dirs: &ShellDirs) -> std::process::Output {
    std::process::Command::new(BIN)
        .arg("doctor")
        .arg("--config")
        .arg(&dirs.config)
        .arg("--policy-dir")
        .arg(&dirs.policy_dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[tokio::test]
async fn r4_a_policy_the_host_cannot_enforce_is_refused_at_start() {
    let dirs = ShellDirs::new();
    let policy = Policy {
        requires: vec!["landlock_abi = 99".into()],
        ..Policy::default()
    };
    write_policy(&dirs, &policy);
    let status = Serve::new()
        .until_exit(&dirs, "serve kept running with an unenforceable policy")
        .await;
    let log = std::fs::read_to_string(&dirs.log).unwrap();
    assert!(!status.success(), "{status}: {log}");
    for needle in [
        "refusing to start",
        "Landlock ABI",
        "99",
        AGENT,
        "shell.requires",
    ] {
        assert!(log.contains(needle), "the error names {needle:?}:\n{log}");
    }
    assert!(!dirs.socket.exists(), "nothing may be served");

    // doctor says what is enforced, and that this policy is not.
    let o = doctor(&dirs);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    for needle in [
        "landlock",
        "seccomp",
        "namespaces",
        "cgroup memory",
        "cgroup pids",
        "NOT enforceable",
        "required 99",
    ] {
        assert!(out.contains(needle), "doctor prints {needle:?}:\n{out}");
    }

    // Control: a policy within the host's means.
    write_policy(&dirs, &Policy::default());
    let o = doctor(&dirs);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(out.contains("every requirement is met"), "{out}");
    let mut d = ShellDaemon::launch(dirs, &Policy::default(), Serve::new()).await;
    d.assert_serving().await;
}

#[tokio::test]
async fn r4_this_host_meets_the_default_requirements() {
    // Under CI every mechanism must be present: a missing one fails here
    // (the daemon would refuse to start), never skips.
    let dirs = ShellDirs::new();
    write_policy(
        &dirs,
        &Policy {
            requires: vec![
                "landlock_abi = 3".into(),
                "seccomp = true".into(),
                "namespaces = true".into(),
                "cgroups = true".into(),
            ],
            ..Policy::default()
        },
    );
    let o = doctor(&dirs);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "this host cannot enforce the default requirements:\n{out}"
    );
    let line = |key: &str| {
        out.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("doctor prints {key}:\n{out}"))
            .to_string()
    };
    for key in ["running as root:", "seccomp:", "namespaces:"] {
        assert!(line(key).contains("yes"), "{key}\n{out}");
    }
    for key in ["cgroup memory", "cgroup pids"] {
        assert!(!line(key).contains("NONE"), "{key}\n{out}");
    }
    let abi: u32 = line("landlock:")
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("landlock ABI in {out}"));
    assert!(abi >= 3, "{out}");
}

// ------------------------------------------------------- deny globs in commands

#[tokio::test]
async fn deny_globs_that_name_paths_mask_them_inside_the_sandbox() {
    let policy = Policy {
        files: "deny = [\"**/.env\", \".git/hooks/**\", \".git/config\"]".into(),
        ..Policy::default()
    };
    let d = ShellDaemon::start_with(policy).await;
    for (rel, content) in [
        (".env", "ROOT_SECRET=1\n"),
        (".git/hooks/pre-commit", "#!/bin/sh\n"),
        (".git/config", "[core]\n"),
        ("ok.txt", "fine\n"),
    ] {
        let path = d.dirs.w(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
    }
    let _ = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(d.dirs.w(""))
        .status();
    let script = probes(&[
        ("read_env", "cat /workspace/.env".into()),
        ("write_env", "echo PWNED > /workspace/.env".into()),
        ("read_config", "cat /workspace/.git/config".into()),
        (
            "plant_hook",
            "echo evil > /workspace/.git/hooks/post-commit".into(),
        ),
        (
            "list_hooks",
            "test -e /workspace/.git/hooks/pre-commit".into(),
        ),
        // Controls: the rest of the workspace is as usual.
        ("read_ok", "test \"$(cat /workspace/ok.txt)\" = fine".into()),
        ("write_new", "echo new > /workspace/new.txt".into()),
        ("git_dir", "ls /workspace/.git".into()),
    ]);
    let r = d.sh(&script).await;
    let m = kv(&r.stdout);
    assert_failed(
        &m,
        &[
            "read_env",
            "write_env",
            "read_config",
            "plant_hook",
            "list_hooks",
        ],
        &r,
    );
    assert_succeeded(&m, &["read_ok", "write_new", "git_dir"], &r);
    // Nothing happened on the host.
    assert_eq!(
        std::fs::read_to_string(d.dirs.w(".env")).unwrap(),
        "ROOT_SECRET=1\n"
    );
    assert!(!d.dirs.w(".git/hooks/post-commit").exists());
    assert_eq!(
        std::fs::read_to_string(d.dirs.w("new.txt")).unwrap(),
        "new\n"
    );
}
