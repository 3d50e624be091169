//! A throwaway machine with systemd as PID 1: this host's own OS booted by
//! systemd-nspawn on an overlay of its root directory, whose writes land in
//! a tmpfs and vanish with the machine. Commands run inside with nsenter, as
//! root, the way an operator types them on a real host.
//!
//! Two things differ from a host that booted systemd itself, and both are
//! set back to what such a host has:
//! - nspawn's own seccomp allow list predates Landlock (systemd 252), so the
//!   machine is booted with the three Landlock syscalls added to it;
//! - on a hybrid cgroup host nspawn mounts the v1 controllers read-only
//!   (`make_cgroups_writable` remounts them as systemd would have).

pub use crate::required::{in_ci, tool};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Root is needed to mount the overlay and boot the machine.
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        assert!(!in_ci(), "CI runs as root: the systemd host tests must run");
        eprintln!("note: not root; skipping this test");
    }
    root
}

pub fn text(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A running machine. Dropping it powers it off and removes every trace.
pub struct Machine {
    nspawn: Child,
    leader: u32,
    /// Dropped after the machine has stopped (fields drop after `drop`).
    _scratch: Scratch,
    console: PathBuf,
    _logs: tempfile::TempDir,
}

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const BOOT_LIMIT: Duration = Duration::from_secs(120);

fn run_host(cmd: &mut Command) {
    let out = cmd.output().expect("spawn a host command");
    assert!(out.status.success(), "{cmd:?}: {}", text(&out));
}

impl Machine {
    /// Boots the machine with `binds` (host path, path inside) mounted
    /// read-only, and waits until systemd says the boot has finished.
    pub fn boot(label: &str, binds: &[(&Path, &str)]) -> Machine {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "agentjail-{label}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let logs = tempfile::tempdir().unwrap();
        let base = std::env::temp_dir().join(&name);
        fs::create_dir_all(&base).unwrap();
        // Owns the mounts and groups from here on, so a failed boot leaves
        // nothing behind either.
        let mut scratch = Scratch {
            base: base.clone(),
            cgroups: Vec::new(),
        };
        run_host(
            Command::new("mount")
                .args(["-t", "tmpfs", "tmpfs"])
                .arg(&base),
        );
        for d in ["upper", "work", "root"] {
            fs::create_dir(base.join(d)).unwrap();
        }
        let opts = format!(
            "lowerdir=/,upperdir={0}/upper,workdir={0}/work",
            base.display()
        );
        run_host(
            Command::new("mount")
                .args(["-t", "overlay", "overlay", "-o", &opts])
                .arg(base.join("root")),
        );
        // A machine id of its own (systemd makes a transient one), so its
        // journal is not taken for the host's.
        let _ = fs::remove_file(base.join("root/etc/machine-id"));

        let console = logs.path().join("console.log");
        // nspawn runs the machine in the cgroup it starts in (no systemd on
        // the host to ask for a scope): a group of its own per machine, so
        // two machines never share one, and all of it goes at the end.
        scratch.cgroups = machine_cgroups(&name);
        let join = scratch
            .cgroups
            .iter()
            .map(|g| format!("echo $$ > '{}/cgroup.procs' || exit 1; ", g.display()))
            .collect::<String>();
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", &format!("{join}exec systemd-nspawn \"$@\""), "sh"]);
        cmd.arg("--directory")
            .arg(base.join("root"))
            .args([
                "--boot",
                "--machine",
                &name,
                // No systemd (and no machined) on the host: run in this
                // process's cgroup and register nowhere.
                "--register=no",
                "--keep-unit",
                "--link-journal=no",
                // Only loopback: the host's services are not the machine's.
                "--private-network",
                "--console=read-only",
                "--system-call-filter=landlock_create_ruleset landlock_add_rule \
                 landlock_restrict_self",
            ])
            .stdin(Stdio::null())
            .stdout(fs::File::create(&console).unwrap())
            .stderr(fs::File::create(logs.path().join("nspawn.err")).unwrap());
        for (host, inside) in binds {
            cmd.arg(format!("--bind-ro={}:{inside}", host.display()));
        }
        let nspawn = cmd.spawn().expect("start systemd-nspawn");
        let mut m = Machine {
            leader: 0,
            nspawn,
            _scratch: scratch,
            console,
            _logs: logs,
        };
        m.leader = m.wait_for_leader();
        m.wait_until_booted();
        m
    }

    /// The machine's PID 1, seen from the host: nspawn's child named systemd.
    fn wait_for_leader(&mut self) -> u32 {
        let parent = self.nspawn.id();
        let deadline = Instant::now() + BOOT_LIMIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.nspawn.try_wait() {
                panic!("systemd-nspawn exited ({status}):\n{}", self.logs());
            }
            for entry in fs::read_dir("/proc").unwrap().flatten() {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let stat = fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
                // "pid (comm) state ppid ..."
                let Some((comm, rest)) =
                    stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(") "))
                else {
                    continue;
                };
                let ppid = rest.split(' ').nth(1).and_then(|p| p.parse::<u32>().ok());
                if comm == "systemd" && ppid == Some(parent) {
                    return pid;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no systemd under systemd-nspawn:\n{}", self.logs());
    }

    fn wait_until_booted(&mut self) {
        let bus = PathBuf::from(format!("/proc/{}/root/run/systemd/private", self.leader));
        let deadline = Instant::now() + BOOT_LIMIT;
        while !bus.exists() {
            assert!(
                Instant::now() < deadline,
                "systemd never opened its bus:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = self.sh("systemctl is-system-running --wait || true");
        let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            state == "running" || state == "degraded",
            "the machine did not finish booting ({state}):\n{}",
            self.logs()
        );
    }

    /// Runs `script` with /bin/sh as root inside the machine, in a clean
    /// environment, and returns what it did. Panics after `limit`.
    pub fn sh_within(&self, script: &str, limit: Duration) -> Output {
        let mut child = Command::new("nsenter")
            .args(["--target", &self.leader.to_string(), "--all", "--"])
            .args(["env", "-i", &format!("PATH={PATH}"), "HOME=/root"])
            .args(["LANG=C.UTF-8", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"])
            .args(["/bin/sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nsenter");
        let drain = |mut r: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                buf
            })
        };
        let stdout = drain(Box::new(child.stdout.take().unwrap()));
        let stderr = drain(Box::new(child.stderr.take().unwrap()));
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("`{script}` ran longer than {limit:?}:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Output {
            status,
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        }
    }

    pub fn sh(&self, script: &str) -> Output {
        self.sh_within(script, Duration::from_secs(120))
    }

    /// Runs `script` and returns its standard output; panics, with the
    /// daemon's journal, unless it succeeds.
    pub fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "`{script}` failed: {}\n{}",
            text(&out),
            self.journal()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The daemon's journal inside the machine (for failure messages).
    pub fn journal(&self) -> String {
        let out = self.sh_within(
            "journalctl -u agentjail -o cat --no-pager -n 60",
            Duration::from_secs(30),
        );
        format!(
            "--- journalctl -u agentjail\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    }

    /// Waits (up to 15 s: journald writes asynchronously) until the
    /// daemon's journal holds `needle`; returns the journal.
    pub fn wait_for_journal(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let journal = self.journal();
            if journal.contains(needle) {
                return journal;
            }
            assert!(
                Instant::now() < deadline,
                "the journal never said {needle:?}:\n{journal}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn logs(&self) -> String {
        let console = fs::read_to_string(&self.console).unwrap_or_default();
        let err = fs::read_to_string(self.console.with_file_name("nspawn.err")).unwrap_or_default();
        let tail: Vec<&str> = console.lines().rev().take(40).collect();
        format!(
            "--- console (last lines)\n{}\n--- nspawn\n{err}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }

    fn cgroup_mounts(&self) -> Vec<CgroupMount> {
        cgroup_mounts(&format!("/proc/{}/mountinfo", self.leader))
    }

    /// The machine's cgroup mounts that nspawn made read-only.
    pub fn read_only_cgroups(&self) -> Vec<String> {
        self.cgroup_mounts()
            .into_iter()
            .filter(|m| m.read_only)
            .map(|m| m.point)
            .collect()
    }

    /// Remounts the machine's read-only cgroup v1 controllers read-write, as
    /// a systemd that booted the host itself mounts them.
    pub fn make_cgroups_writable(&self) {
        for m in self.cgroup_mounts() {
            if m.fstype == "cgroup" && m.read_only {
                run_host(
                    Command::new("nsenter")
                        .args(["--target", &self.leader.to_string(), "--mount", "--"])
                        .args(["mount", "-o", "remount,bind,rw", &m.point]),
                );
            }
        }
    }
}

/// One cgroup or cgroup2 line of a mountinfo file.
struct CgroupMount {
    point: String,
    fstype: String,
    /// The super options: the controllers of a v1 hierarchy.
    options: String,
    /// Mounted read-only (this mount's own flag).
    read_only: bool,
}

fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    let info = fs::read_to_string(mountinfo).unwrap();
    info.lines()
        .filter_map(|line| {
            // "id parent dev root point options [optional...] - fstype source super"
            let (pre, post) = line.split_once(" - ")?;
            let fields: Vec<&str> = pre.split(' ').collect();
            let mut post = post.split(' ');
            let fstype = post.next()?;
            let options = post.nth(1).unwrap_or("");
            matches!(fstype, "cgroup" | "cgroup2").then(|| CgroupMount {
                point: fields[4].to_string(),
                fstype: fstype.to_string(),
                options: options.to_string(),
                read_only: fields[5].split(',').any(|o| o == "ro"),
            })
        })
        .collect()
}

impl Drop for Machine {
    fn drop(&mut self) {
        // SIGTERM asks nspawn to power the machine off.
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.nspawn.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(self.nspawn.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

/// The overlay, its tmpfs and the machine's cgroups on the host.
struct Scratch {
    base: PathBuf,
    cgroups: Vec<PathBuf>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("--lazy")
            .arg(self.base.join("root"))
            .status();
        let _ = Command::new("umount")
            .arg("--lazy")
            .arg(&self.base)
            .status();
        let _ = fs::remove_dir(&self.base);
        for g in &self.cgroups {
            remove_cgroup_tree(g);
        }
    }
}

/// A new group named `name` in each writable cgroup hierarchy of the host
/// (cpuset left out: a new v1 cpuset group has no CPUs until configured).
fn machine_cgroups(name: &str) -> Vec<PathBuf> {
    cgroup_mounts("/proc/self/mountinfo")
        .into_iter()
        .filter(|m| !m.read_only && !m.options.contains("cpuset"))
        .map(|m| {
            let dir = Path::new(&m.point).join(name);
            fs::create_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            dir
        })
        .collect()
}

/// Removes a cgroup and every group below it, deepest first (a group goes
/// once its processes and children are gone).
fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    for _ in 0..100 {
        match fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => return,
        }
    }
}
