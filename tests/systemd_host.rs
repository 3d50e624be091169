//! The README's "Install and run as a service", typed into a host whose PID 1
//! is systemd: install (install.sh, or the Debian package built by `cargo
//! deb`), `systemctl enable --now`, `systemctl status`, calls through the
//! socket, a policy edited, checked and reloaded, a broken policy refused
//! with the old one kept, socket activation after a stop, the audit log
//! verified. The host is this machine's own OS booted in systemd-nspawn
//! (tests/nspawn), so the daemon runs under the shipped unit's restrictions
//! for real.
//!
//! Needs root, systemd-nspawn (package systemd-container) and, for the
//! package, cargo-deb; under CI=true a missing one fails the test.

mod nspawn;
mod required;

use nspawn::{Machine, is_root, text, tool};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Under CI=true each of these fails the test when missing (see
/// tests/required); only a developer machine without them returns early.
fn can_boot() -> bool {
    is_root()
        && tool("systemd-nspawn", "systemd-container").is_some()
        && tool("nsenter", "util-linux").is_some()
}

#[test]
fn install_script_then_the_readme_service_walkthrough() {
    if !can_boot() {
        return;
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_agentjail"));
    let m = Machine::boot(
        "install-sh",
        &[(repo(), "/src/agentjail"), (bin, "/src/agentjail-bin")],
    );
    let out = m.ok("cd /src/agentjail && packaging/install.sh --binary /src/agentjail-bin");
    assert!(out.contains("agentjail is installed"), "{out}");
    assert_eq!(
        m.ok("command -v agentjail").trim(),
        "/usr/local/bin/agentjail"
    );

    // Fail closed: on a hybrid host nspawn mounts the v1 controllers
    // read-only, where the default policy's limits cannot be enforced, and
    // doctor and the service say so instead of running commands without
    // them. (A cgroup2-only host gives the machine a writable tree.)
    let read_only = m.read_only_cgroups();
    let hybrid = read_only.iter().any(|p| p == "/sys/fs/cgroup/memory");
    assert!(
        hybrid || !nspawn::in_ci(),
        "CI must see the refusal, but the machine's memory controller is not mounted \
         read-only ({read_only:?}): on a cgroup2-only host this check needs another way in"
    );
    if hybrid {
        let doctor = m.sh("agentjail doctor");
        let said = text(&doctor);
        assert_eq!(doctor.status.code(), Some(1), "{said}");
        for needle in [
            "NOT enforceable",
            "no writable cgroup memory controller",
            "/sys/fs/cgroup/memory is mounted read-only",
        ] {
            assert!(said.contains(needle), "doctor says {needle:?}:\n{said}");
        }
        let refused = m.sh("systemctl start agentjail.service");
        assert!(!refused.status.success(), "{}", text(&refused));
        m.wait_for_journal("no writable cgroup memory controller");
        m.ok("systemctl reset-failed agentjail.service");
    } else {
        eprintln!("note: the machine's cgroups are writable ({read_only:?}): no refusal to see");
    }

    m.make_cgroups_writable();

    // Fail closed: under a filter that refuses openat2 (what
    // RestrictSUIDSGID=yes does, hence left out of the unit) the daemon
    // will not start, rather than fail every file call.
    let blocked = m.sh("systemd-run --quiet --wait --pipe -p RestrictSUIDSGID=yes \
         agentjail serve --socket /run/agentjail-openat2-probe.sock");
    let said = text(&blocked);
    assert!(!blocked.status.success(), "{said}");
    assert!(
        said.contains("refusing to start: the file tools need openat2(2)")
            && said.contains("RestrictSUIDSGID"),
        "{said}"
    );
    // Control: the same daemon without that filter starts and serves.
    let who = m.ok(
        "systemd-run --quiet --unit=openat2-control \
         agentjail serve --socket /run/agentjail-openat2-probe.sock && \
         for i in $(seq 100); do test -S /run/agentjail-openat2-probe.sock && break; sleep 0.1; done; \
         agentjail call --socket /run/agentjail-openat2-probe.sock whoami; rc=$?; \
         systemctl stop openat2-control; exit $rc",
    );
    assert!(who.contains("agent: local"), "{who}");

    walkthrough(&m);
}

#[test]
fn debian_package_then_the_readme_service_walkthrough() {
    if !can_boot() {
        return;
    }
    let Some(deb) = build_deb() else {
        return;
    };
    let m = Machine::boot("deb", &[(deb.parent().unwrap(), "/src/deb")]);
    m.make_cgroups_writable();
    let name = deb.file_name().unwrap().to_string_lossy();
    m.ok(&format!(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y /src/deb/{name}"
    ));
    assert_eq!(m.ok("command -v agentjail").trim(), "/usr/bin/agentjail");
    // Enabled at install, not started: the operator reviews /etc first.
    assert_eq!(
        m.ok("systemctl is-enabled agentjail.service agentjail.socket"),
        "enabled\nenabled\n"
    );
    let active = m.sh("systemctl is-active agentjail.service");
    assert_eq!(String::from_utf8_lossy(&active.stdout).trim(), "inactive");
    assert!(m.ok("ls /etc/agentjail/policies").contains("default.toml"));

    walkthrough(&m);

    // Purging stops the service and takes its files, config included.
    m.ok("DEBIAN_FRONTEND=noninteractive apt-get purge -y agentjail");
    let gone = m.sh("systemctl is-active agentjail.service; test -e /etc/agentjail");
    assert!(!gone.status.success(), "{}", text(&gone));
    assert!(
        !m.sh("command -v agentjail").status.success(),
        "binary removed"
    );
}

/// The commands of the README's service section, in order, each checked.
fn walkthrough(m: &Machine) {
    m.ok("systemctl enable --now agentjail.socket agentjail.service");
    let status = m.ok("systemctl status agentjail --no-pager");
    assert!(status.contains("active (running)"), "{status}");
    assert!(status.contains("Status: \"serving on"), "{status}");
    assert!(status.contains("TriggeredBy:"), "{status}");
    let socket = m.ok("stat -c '%a %U:%G' /run/agentjail/agentjail.sock");
    assert_eq!(socket.trim(), "660 root:agentjail");
    let who = m.ok("agentjail call whoami");
    assert!(who.contains("agent: local"), "{who}");

    // File tools (openat2 under the unit's seccomp filters) and a command
    // in a sandbox (namespaces, cgroups, Landlock under the unit).
    m.ok("agentjail call write-file notes.txt --content 'hello from a systemd host'");
    let read = m.ok("agentjail call read-file notes.txt");
    assert!(read.contains("hello from a systemd host"), "{read}");
    let ran = m.ok("agentjail call run -- cat notes.txt");
    assert!(ran.contains("hello from a systemd host"), "{ran}");
    let ran = m.ok("agentjail call run --shell 'id -u; cat /proc/self/cgroup'");
    assert!(
        ran.starts_with("65534\n"),
        "runs as the policy's uid: {ran}"
    );
    // In cgroups of its own: under the unit's delegated cgroup2 group (so
    // systemd accounts it to agentjail.service), and, on a hybrid host, in
    // a per-call v1 memory group.
    assert!(
        ran.contains("\n0::/system.slice/agentjail.service/sandboxes/"),
        "inside the unit's delegated cgroup: {ran}"
    );
    if let Some(memory) = ran.lines().find(|l| l.contains(":memory:")) {
        assert!(
            memory.contains("/agentjail/") || memory.contains("/sandboxes/"),
            "in a call's memory cgroup: {ran}"
        );
    }
    let tree = m.ok("systemctl status agentjail --no-pager");
    assert!(
        tree.contains("─daemon\n"),
        "the daemon sits in its leaf of the unit's cgroup: {tree}"
    );
    m.ok("agentjail call write-file draft.secret --content 'not yet denied'");

    // Change a policy, check it, reload it.
    let policies = "/etc/agentjail/policies";
    m.ok(&format!(
        r#"sed -i 's|^  "\*\*/\.env",$|&\n  "**/*.secret",|' {policies}/default.toml"#
    ));
    assert!(
        m.ok(&format!("agentjail policy check {policies}"))
            .contains("ok")
    );
    m.ok("systemctl reload agentjail");
    m.wait_for_journal("policy reloaded");
    let denied = m.sh("agentjail call read-file draft.secret");
    let said = text(&denied);
    assert!(!denied.status.success(), "{said}");
    assert!(
        said.contains("POLICY_DENIED") && said.contains("**/*.secret"),
        "denied by the new rule: {said}"
    );

    // A broken policy: check says where, reload keeps the old one.
    m.ok(&format!(
        "printf '[[agents]]\\nname = 7\\n' > {policies}/zz-broken.toml"
    ));
    let check = m.sh(&format!("agentjail policy check {policies}"));
    assert!(!check.status.success(), "{}", text(&check));
    assert!(
        text(&check).contains("zz-broken.toml:2:"),
        "file:line:col: {}",
        text(&check)
    );
    m.ok("systemctl reload agentjail");
    // The directory watch may have seen the file first: either way the
    // error is logged with its place and the service keeps serving.
    m.wait_for_journal("zz-broken.toml:2:");
    m.ok("systemctl is-active agentjail.service");
    assert!(
        !m.sh("agentjail call read-file draft.secret")
            .status
            .success(),
        "the last good policy stays in force"
    );
    m.ok(&format!(
        "rm {policies}/zz-broken.toml && systemctl reload agentjail"
    ));

    // Logs are JSON in the journal.
    assert!(
        m.ok("journalctl -u agentjail -o cat --no-pager -n 1 --grep 'policy loaded'")
            .starts_with('{'),
        "JSON logs under journald"
    );

    // Stopping the service ends the commands still running in sandboxes
    // (the daemon's drain kills them after their grace period; systemd's
    // KillMode=mixed would end what is left in the unit's cgroup).
    m.ok("(agentjail call run --shell 'sleep 300' >/dev/null 2>&1 &)");
    m.ok("for i in $(seq 100); do pgrep -x sleep && exit 0; sleep 0.1; done; exit 1");
    m.ok("systemctl stop agentjail.service");
    let left = m.sh("pgrep -a -x sleep");
    assert!(!left.status.success(), "still running: {}", text(&left));

    // Socket activation: with the service stopped, a call starts it.
    let stopped = m.sh("systemctl is-active agentjail.service");
    assert_eq!(String::from_utf8_lossy(&stopped.stdout).trim(), "inactive");
    let who = m.ok("agentjail call whoami");
    assert!(who.contains("agent: local"), "{who}");
    m.ok("systemctl is-active agentjail.service");

    // Every call above is in the audit log, whose chain verifies.
    let verify = m.ok("agentjail audit verify /var/log/agentjail/audit.jsonl");
    assert!(verify.starts_with("ok:"), "{verify}");
    let denials = m.ok(
        "agentjail audit show --decision deny --method ReadFile /var/log/agentjail/audit.jsonl",
    );
    assert!(denials.contains("draft.secret"), "{denials}");
}

/// `cargo deb`, as the README says, into a target directory of its own (the
/// one `cargo test` builds in stays free). `None` outside CI when cargo-deb
/// is not installed.
fn build_deb() -> Option<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let has_deb = Command::new(&cargo)
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_deb {
        assert!(
            !nspawn::in_ci(),
            "cargo-deb is missing: CI must install the package; .ci/run installs it"
        );
        eprintln!("note: cargo-deb not found (cargo install cargo-deb); skipping this test");
        return None;
    }
    let target = Path::new(env!("CARGO_BIN_EXE_agentjail"))
        .ancestors()
        .nth(2)
        .unwrap()
        .join("systemd-host");
    let out_dir = target.join("deb");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    let deb = out_dir.join(format!("agentjail_{version}_amd64.deb"));
    let out = Command::new(&cargo)
        .args(["deb", "--locked", "--output"])
        .arg(&deb)
        .current_dir(repo())
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run cargo deb");
    assert!(out.status.success(), "cargo deb: {}", text(&out));
    assert!(deb.is_file(), "cargo deb wrote {}", deb.display());
    Some(deb)
}
