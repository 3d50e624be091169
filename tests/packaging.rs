//! The service packaging (packaging/): the systemd units verify, the
//! sysusers.d and tmpfiles.d entries apply, the default config is one the
//! daemon accepts and agrees with the units, install.sh puts every file in
//! its place without overwriting a config, and the `cargo deb` metadata lists
//! files that exist.
//!
//! systemd-analyze, systemd-sysusers and systemd-tmpfiles come with the
//! `systemd` package. Without them a test is skipped with a note, except
//! under CI=true, where it fails: CI must check the units.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod required;
use required::in_ci;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A systemd tool by name (package `systemd`); see `required::tool`.
fn systemd_tool(name: &str) -> Option<PathBuf> {
    required::tool(name, "systemd")
}

fn output_text(out: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// `Key=value` lines of a unit file (comments and sections dropped), in order.
fn unit_values(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

fn unit_value(text: &str, key: &str) -> String {
    let v = unit_values(text, key);
    assert_eq!(v.len(), 1, "expected exactly one {key}= line, found {v:?}");
    v.into_iter().next().unwrap()
}

// ------------------------------------------------------------- the units

/// Copies both units into a temporary directory, the service's ExecStart
/// pointed at the binary this build made (verify insists that it exists).
fn units_for_verify(dir: &Path) -> (PathBuf, PathBuf) {
    let service = read("packaging/systemd/agentjail.service");
    let exec = unit_value(&service, "ExecStart");
    assert_eq!(exec, "/usr/bin/agentjail serve", "the packaged ExecStart");
    let service = service.replace(
        "ExecStart=/usr/bin/agentjail ",
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_agentjail")),
    );
    let s = dir.join("agentjail.service");
    let k = dir.join("agentjail.socket");
    fs::write(&s, service).unwrap();
    fs::copy(repo().join("packaging/systemd/agentjail.socket"), &k).unwrap();
    (s, k)
}

#[test]
fn systemd_analyze_verify_accepts_the_units() {
    let Some(analyze) = systemd_tool("systemd-analyze") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (service, socket) = units_for_verify(dir.path());
    let out = Command::new(&analyze)
        .args(["verify", "--man=no"])
        .arg(&socket)
        .arg(&service)
        .output()
        .expect("run systemd-analyze");
    let text = output_text(&out);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed\n{text}"
    );
    // Unknown keys and unparsable values are only warnings: any line about
    // our units is a failure. (Warnings about the host's own units are not
    // ours to fix.)
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ours: Vec<&str> = all.lines().filter(|l| l.contains("agentjail")).collect();
    assert!(
        ours.is_empty(),
        "systemd-analyze verify warned:\n{}",
        ours.join("\n")
    );
}

#[test]
fn the_service_stays_hardened() {
    // A regression guard: systemd's own exposure score (0 = locked down,
    // 10 = unprotected) for the unit as shipped: 4.3 with systemd 252. A
    // removed directive raises it. --threshold counts tenths: 50 = 5.0.
    let Some(analyze) = systemd_tool("systemd-analyze") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (service, _) = units_for_verify(dir.path());
    let out = Command::new(&analyze)
        .args(["security", "--offline=yes", "--threshold=50", "--no-pager"])
        .arg(&service)
        .output()
        .expect("run systemd-analyze security");
    assert!(
        out.status.success(),
        "exposure above 5.0 (or analyze failed)\n{}",
        output_text(&out)
    );
}

#[test]
fn the_service_is_written_for_the_daemon() {
    let s = read("packaging/systemd/agentjail.service");
    for (key, want) in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Restart", "on-failure"),
        ("Delegate", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "read-only"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("StateDirectory", "agentjail"),
        ("LogsDirectory", "agentjail"),
        ("ConfigurationDirectory", "agentjail"),
        ("RuntimeDirectoryPreserve", "yes"),
    ] {
        assert_eq!(unit_value(&s, key), want, "{key}=");
    }
    assert!(!unit_value(&s, "WatchdogSec").is_empty());
    let runtime: Vec<String> = unit_value(&s, "RuntimeDirectory")
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(runtime, ["agentjail", "agentjail-sandbox"]);
    // The sandbox's staging and /etc snapshots live there.
    assert!(read("src/sandbox/mounts.rs").contains("\"/run/agentjail-sandbox/root\""));
    // Socket activation stays optional: ordering only.
    assert!(
        unit_values(&s, "After")
            .iter()
            .any(|v| v == "agentjail.socket")
    );
    for key in ["Requires", "Wants", "BindsTo", "Requisite"] {
        assert!(
            unit_values(&s, key).is_empty(),
            "{key}= would make the socket mandatory"
        );
    }
    // The cgroup tree must stay writable.
    for key in ["ProtectControlGroups", "PrivateDevices", "ProtectHostname"] {
        assert!(
            unit_values(&s, key).is_empty(),
            "{key}= breaks sandbox setup"
        );
    }
    // Its filter refuses openat2(2), which every file tool call needs
    // (tests/systemd_host.rs shows it under a real systemd).
    assert!(
        unit_values(&s, "RestrictSUIDSGID").is_empty(),
        "RestrictSUIDSGID= breaks the file tools"
    );
    // Stopping gives in-flight calls their grace period.
    let stop: u64 = unit_value(&s, "TimeoutStopSec")
        .trim_end_matches('s')
        .parse()
        .unwrap();
    let config = agentjail::config::Config::default();
    assert!(
        stop * 1000 > config.shutdown_grace_ms,
        "TimeoutStopSec too short"
    );
}

#[test]
fn sysusers_and_tmpfiles_entries_apply() {
    let (Some(sysusers), Some(tmpfiles)) = (
        systemd_tool("systemd-sysusers"),
        systemd_tool("systemd-tmpfiles"),
    ) else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    fs::create_dir(root.path().join("etc")).unwrap();
    let out = Command::new(sysusers)
        .arg(format!("--root={}", root.path().display()))
        .arg(repo().join("packaging/sysusers.d/agentjail.conf"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "systemd-sysusers\n{}",
        output_text(&out)
    );
    let group = fs::read_to_string(root.path().join("etc/group")).unwrap();
    let passwd = fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    assert!(
        group.lines().any(|l| l.starts_with("agentjail:")),
        "{group}"
    );
    let sandbox = passwd
        .lines()
        .find(|l| l.starts_with("agentjail-sandbox:"))
        .unwrap_or_else(|| panic!("no agentjail-sandbox user:\n{passwd}"));
    let fields: Vec<&str> = sandbox.split(':').collect();
    let uid: u32 = fields[2].parse().unwrap();
    assert!(uid != 0 && uid < 1000, "a system uid: {sandbox}");
    assert_eq!(fields[6], "/usr/sbin/nologin");

    // Changing ownership needs root; the modes are what matters here.
    if !nix::unistd::geteuid().is_root() {
        assert!(
            !in_ci(),
            "CI runs as root: systemd-tmpfiles --create must be checked"
        );
        eprintln!("note: not root; systemd-tmpfiles --create not checked");
        return;
    }
    let out = Command::new(tmpfiles)
        .arg(format!("--root={}", root.path().display()))
        .arg("--create")
        .arg(repo().join("packaging/tmpfiles.d/agentjail.conf"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "systemd-tmpfiles\n{}",
        output_text(&out)
    );
    for (dir, want) in [
        ("var/lib/agentjail", 0o755),
        ("var/lib/agentjail/workspaces", 0o750),
        ("var/log/agentjail", 0o750),
    ] {
        assert_eq!(mode(&root.path().join(dir)), want, "{dir}");
    }
}

// -------------------------------------------------- config against units

#[test]
fn the_default_config_is_valid_and_matches_the_units() {
    use agentjail::config::{Config, PolicySource};
    let path = repo().join("packaging/agentjail.toml");
    let c = Config::from_file(&path).unwrap_or_else(|e| panic!("{e:#}"));
    c.validate().unwrap();
    assert_eq!(
        c.policy_source(),
        PolicySource::Dir("/etc/agentjail/policies".into())
    );
    assert_eq!(c.state_path(), Path::new("/var/lib/agentjail"));
    assert_eq!(c.audit_path(), Path::new("/var/log/agentjail/audit.jsonl"));
    assert!(c.audit.enabled && !c.audit.fail_open);
    assert!(
        c.tcp.is_none() && c.metrics_address.is_none(),
        "off by default"
    );

    let service = read("packaging/systemd/agentjail.service");
    let socket = read("packaging/systemd/agentjail.socket");
    // The socket unit and the daemon's own socket are the same.
    let sock = c.socket_path();
    assert_eq!(sock, Path::new("/run/agentjail/agentjail.sock"));
    assert_eq!(unit_value(&socket, "ListenStream"), sock.to_str().unwrap());
    assert_eq!(
        u32::from_str_radix(&unit_value(&socket, "SocketMode"), 8).unwrap(),
        c.socket_mode
    );
    assert_eq!(unit_value(&socket, "SocketGroup"), "agentjail");
    assert_eq!(
        c.socket_group.as_deref(),
        Some("agentjail"),
        "a self-bound socket goes to the same group as the socket unit's"
    );
    // /run/<RuntimeDirectory>, /var/lib/<StateDirectory>, /var/log/<LogsDirectory>.
    assert_eq!(sock.parent().unwrap(), Path::new("/run/agentjail"));
    assert_eq!(
        c.state_path(),
        Path::new("/var/lib").join(unit_value(&service, "StateDirectory"))
    );
    assert_eq!(
        c.audit_path().parent().unwrap(),
        Path::new("/var/log").join(unit_value(&service, "LogsDirectory"))
    );
    // The shipped policy keeps its workspaces under the state_dir, which the
    // unit makes writable and tmpfiles.d creates.
    let policy = read("policies/default.toml");
    assert!(policy.contains("path = \"${STATE_DIRECTORY}/workspaces/"));
    assert!(read("packaging/tmpfiles.d/agentjail.conf").contains("/var/lib/agentjail/workspaces"));
}

// ------------------------------------------------------------- install.sh

/// Files install.sh puts under DESTDIR for a prefix, with their modes.
fn expected_install(prefix: &str, unitdir: &str, libdir: &str) -> BTreeMap<String, u32> {
    let p = prefix.trim_start_matches('/');
    let u = unitdir.trim_start_matches('/');
    let l = libdir.trim_start_matches('/');
    [
        (format!("{p}/bin/agentjail"), 0o755),
        (format!("{u}/agentjail.service"), 0o644),
        (format!("{u}/agentjail.socket"), 0o644),
        (format!("{l}/sysusers.d/agentjail.conf"), 0o644),
        (format!("{l}/tmpfiles.d/agentjail.conf"), 0o644),
        (format!("{p}/share/agentjail/agentjail.toml"), 0o644),
        (format!("{p}/share/agentjail/policies/default.toml"), 0o644),
        (format!("{p}/share/doc/agentjail/README.md"), 0o644),
        (format!("{p}/share/doc/agentjail/packaging.md"), 0o644),
        ("etc/agentjail/agentjail.toml".to_string(), 0o644),
        ("etc/agentjail/policies/default.toml".to_string(), 0o644),
    ]
    .into_iter()
    .collect()
}

/// Every regular file under `root`, relative, with its mode.
fn files_under(root: &Path) -> BTreeMap<String, u32> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, u32>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, mode(&p));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn install_sh(destdir: &Path, args: &[&str]) -> String {
    let out = Command::new("sh")
        .arg(repo().join("packaging/install.sh"))
        .args(["--binary", env!("CARGO_BIN_EXE_agentjail")])
        .args(args)
        .env("DESTDIR", destdir)
        .output()
        .expect("run install.sh");
    let text = output_text(&out);
    assert!(out.status.success(), "install.sh failed\n{text}");
    text
}

#[test]
fn install_sh_puts_every_file_in_place() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path();
    let log = install_sh(d, &[]);
    assert!(
        log.contains("not creating users"),
        "DESTDIR touches nothing else\n{log}"
    );

    let want = expected_install(
        "/usr/local",
        "/usr/local/lib/systemd/system",
        "/usr/local/lib",
    );
    assert_eq!(files_under(d), want, "installed files and modes\n{log}");
    for dir in ["etc/agentjail", "etc/agentjail/policies", "usr/local/bin"] {
        assert_eq!(mode(&d.join(dir)), 0o755, "{dir}");
    }
    assert_eq!(
        fs::read(d.join("usr/local/bin/agentjail")).unwrap(),
        fs::read(env!("CARGO_BIN_EXE_agentjail")).unwrap()
    );
    for (installed, source) in [
        ("etc/agentjail/agentjail.toml", "packaging/agentjail.toml"),
        (
            "etc/agentjail/policies/default.toml",
            "policies/default.toml",
        ),
        (
            "usr/local/lib/sysusers.d/agentjail.conf",
            "packaging/sysusers.d/agentjail.conf",
        ),
        (
            "usr/local/lib/tmpfiles.d/agentjail.conf",
            "packaging/tmpfiles.d/agentjail.conf",
        ),
    ] {
        assert_eq!(
            fs::read_to_string(d.join(installed)).unwrap(),
            read(source),
            "{installed}"
        );
    }
    // The units run the binary, and point at the documentation, under the
    // prefix; nothing else changes.
    let service =
        fs::read_to_string(d.join("usr/local/lib/systemd/system/agentjail.service")).unwrap();
    assert_eq!(
        unit_value(&service, "ExecStart"),
        "/usr/local/bin/agentjail serve"
    );
    for unit in ["agentjail.service", "agentjail.socket"] {
        let installed =
            fs::read_to_string(d.join("usr/local/lib/systemd/system").join(unit)).unwrap();
        assert_eq!(
            installed
                .replace("/usr/local/bin/agentjail", "/usr/bin/agentjail")
                .replace("/usr/local/share/doc/agentjail", "/usr/share/doc/agentjail"),
            read(&format!("packaging/systemd/{unit}")),
            "{unit}"
        );
    }

    // A second run keeps the operator's config and policies.
    let mine = "# mine\nsocket = \"/run/agentjail/other.sock\"\n";
    fs::write(d.join("etc/agentjail/agentjail.toml"), mine).unwrap();
    fs::remove_file(d.join("etc/agentjail/policies/default.toml")).unwrap();
    fs::write(d.join("etc/agentjail/policies/coder.toml"), "# coder\n").unwrap();
    let log = install_sh(d, &[]);
    assert_eq!(
        fs::read_to_string(d.join("etc/agentjail/agentjail.toml")).unwrap(),
        mine
    );
    assert!(
        !d.join("etc/agentjail/policies/default.toml").exists(),
        "the default policy must not join the operator's policies\n{log}"
    );
    assert_eq!(
        fs::read_to_string(d.join("etc/agentjail/policies/coder.toml")).unwrap(),
        "# coder\n"
    );
    assert!(log.contains("agentjail.toml exists: kept"), "{log}");
    // An edited default policy is kept too.
    fs::write(d.join("etc/agentjail/policies/default.toml"), "# edited\n").unwrap();
    install_sh(d, &[]);
    assert_eq!(
        fs::read_to_string(d.join("etc/agentjail/policies/default.toml")).unwrap(),
        "# edited\n"
    );
}

#[test]
fn install_sh_outside_usr_puts_units_where_systemd_looks() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path();
    install_sh(d, &["--prefix", "/opt/agentjail"]);
    let want = expected_install("/opt/agentjail", "/etc/systemd/system", "/etc");
    assert_eq!(files_under(d), want);
    let service = fs::read_to_string(d.join("etc/systemd/system/agentjail.service")).unwrap();
    assert_eq!(
        unit_value(&service, "ExecStart"),
        "/opt/agentjail/bin/agentjail serve"
    );

    let out = Command::new("sh")
        .arg(repo().join("packaging/install.sh"))
        .args(["--prefix", "relative/dir"])
        .env("DESTDIR", d)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a relative prefix is refused");
}

#[test]
fn shell_scripts_pass_shellcheck() {
    // .ci/run installs shellcheck; only a developer machine may lack it.
    let Ok(out) = Command::new("shellcheck")
        .arg(repo().join("packaging/install.sh"))
        .arg(repo().join("packaging/debian/postinst"))
        .output()
    else {
        assert!(!in_ci(), "shellcheck is missing: .ci/run must install it");
        eprintln!("note: shellcheck not installed; the scripts were not checked");
        return;
    };
    assert!(out.status.success(), "shellcheck\n{}", output_text(&out));
}

// ------------------------------------------------------ cargo deb metadata

#[test]
fn deb_metadata_lists_every_packaged_file() {
    let manifest: toml::Table = read("Cargo.toml").parse().unwrap();
    let deb = manifest["package"]["metadata"]["deb"]
        .as_table()
        .expect("[package.metadata.deb]");
    let bin = manifest["bin"][0]["name"].as_str().unwrap();

    // assets: [source, destination, mode]; a destination ending in / is a
    // directory that keeps the source's file name.
    let mut installed: BTreeMap<String, (String, u32)> = BTreeMap::new();
    for a in deb["assets"].as_array().unwrap() {
        let a: Vec<&str> = a
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let [src, dst, m] = a[..] else {
            panic!("asset {a:?} is not [source, destination, mode]")
        };
        if let Some(built) = src.strip_prefix("target/release/") {
            assert_eq!(built, bin, "the only built asset is the binary");
        } else {
            assert!(
                repo().join(src).is_file(),
                "asset source {src} does not exist"
            );
        }
        let name = Path::new(src).file_name().unwrap().to_str().unwrap();
        let dst = if dst.ends_with('/') {
            format!("{dst}{name}")
        } else {
            dst.to_string()
        };
        let m = u32::from_str_radix(m, 8).unwrap();
        assert!(
            installed
                .insert(dst.clone(), (src.to_string(), m))
                .is_none(),
            "{dst} twice"
        );
    }

    // The unit files come from unit-scripts: cargo-deb installs them in the
    // systemd unit directory (usr/lib/systemd/system since cargo-deb 3) and
    // generates the enable and restart steps.
    let units = deb["systemd-units"].as_table().expect("systemd-units");
    let unit_dir = units["unit-scripts"].as_str().unwrap();
    assert_eq!(units["enable"].as_bool(), Some(true));
    let found: BTreeSet<String> = fs::read_dir(repo().join(unit_dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let want: BTreeSet<String> = ["agentjail.service", "agentjail.socket"]
        .map(String::from)
        .into();
    assert_eq!(
        found, want,
        "files in {unit_dir}: named <package>.<unit type>"
    );
    assert_eq!(manifest["package"]["name"].as_str(), Some("agentjail"));
    for unit in &want {
        installed.insert(
            format!("<unit dir>/{unit}"),
            (format!("{}/{unit}", unit_dir.trim_end_matches('/')), 0o644),
        );
    }

    let expect: BTreeMap<&str, (&str, u32)> = [
        ("usr/bin/agentjail", ("target/release/agentjail", 0o755)),
        (
            "<unit dir>/agentjail.service",
            ("packaging/systemd/agentjail.service", 0o644),
        ),
        (
            "<unit dir>/agentjail.socket",
            ("packaging/systemd/agentjail.socket", 0o644),
        ),
        (
            "usr/lib/sysusers.d/agentjail.conf",
            ("packaging/sysusers.d/agentjail.conf", 0o644),
        ),
        (
            "usr/lib/tmpfiles.d/agentjail.conf",
            ("packaging/tmpfiles.d/agentjail.conf", 0o644),
        ),
        (
            "etc/agentjail/agentjail.toml",
            ("packaging/agentjail.toml", 0o644),
        ),
        (
            "etc/agentjail/policies/default.toml",
            ("policies/default.toml", 0o644),
        ),
        ("usr/share/doc/agentjail/README.md", ("README.md", 0o644)),
        (
            "usr/share/doc/agentjail/packaging.md",
            ("packaging/README.md", 0o644),
        ),
    ]
    .into_iter()
    .collect();
    let got: BTreeMap<&str, (&str, u32)> = installed
        .iter()
        .map(|(d, (s, m))| (d.as_str(), (s.as_str(), *m)))
        .collect();
    assert_eq!(got, expect);

    // Everything in /etc is a conffile, and nothing else.
    let conf: BTreeSet<&str> = deb["conf-files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let etc: BTreeSet<String> = expect
        .keys()
        .filter(|d| d.starts_with("etc/"))
        .map(|d| format!("/{d}"))
        .collect();
    assert_eq!(conf, etc.iter().map(String::as_str).collect());

    // The maintainer script creates the users and directories by the names
    // the files are installed under, and leaves room for the generated steps.
    let scripts = repo().join(deb["maintainer-scripts"].as_str().unwrap());
    let postinst = scripts.join("postinst");
    assert!(mode(&postinst) & 0o111 != 0, "postinst is executable");
    let text = fs::read_to_string(&postinst).unwrap();
    assert!(text.contains("#DEBHELPER#"));
    assert!(text.contains("systemd-sysusers agentjail.conf"));
    assert!(text.contains("systemd-tmpfiles --create agentjail.conf"));
    let depends = deb["depends"].as_str().unwrap();
    assert!(
        depends.contains("systemd-sysusers"),
        "postinst needs it: {depends}"
    );

    // And every file packaging/ ships is in the package.
    for f in [
        "packaging/agentjail.toml",
        "packaging/sysusers.d/agentjail.conf",
        "packaging/tmpfiles.d/agentjail.conf",
        "packaging/systemd/agentjail.service",
        "packaging/systemd/agentjail.socket",
    ] {
        assert!(expect.values().any(|(s, _)| *s == f), "{f} is not packaged");
    }
}
