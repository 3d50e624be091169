//! What this kernel can enforce, for `agentjail doctor` and for refusing to
//! start (R4) rather than running commands unconfined.

use std::fmt;
use std::io;

use super::cgroup::Layout;

/// Kernel features the sandbox relies on.
#[derive(Debug, Clone)]
pub struct KernelSupport {
    /// Landlock ABI version; 0 when absent or disabled.
    pub landlock_abi: i32,
    /// seccomp filter mode with SECCOMP_RET_KILL_PROCESS.
    pub seccomp: bool,
    /// A child could be cloned into new pid, mount, ipc, uts and net namespaces.
    pub namespaces: bool,
    /// Unprivileged user namespaces are enabled (only needed rootless).
    pub user_namespaces: bool,
    pub cgroups: Layout,
    /// The daemon runs as root (needed for mounts, cgroups and uid changes).
    pub root: bool,
}

/// What a policy demands of the host.
#[derive(Debug, Clone)]
pub struct Requirements {
    pub min_landlock_abi: i32,
    pub seccomp: bool,
    pub namespaces: bool,
    pub memory_limit: bool,
    pub pids_limit: bool,
}

impl Default for Requirements {
    /// The default policy: Landlock ABI >= 3 (truncate), seccomp, namespaces,
    /// and the cgroup controllers that enforce the default limits.
    fn default() -> Self {
        Requirements {
            min_landlock_abi: 3,
            seccomp: true,
            namespaces: true,
            memory_limit: true,
            pids_limit: true,
        }
    }
}

fn landlock_abi() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
    // SAFETY: the version query takes no attributes.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    v.max(0) as i32
}

fn seccomp_available() -> bool {
    // SAFETY: PR_GET_SECCOMP has no side effects.
    let mode = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    let actions =
        std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail").unwrap_or_default();
    mode >= 0 && actions.split_whitespace().any(|a| a == "kill_process")
}

/// Really clones a child into the namespaces a launch uses: flags in
/// /proc/self/ns say little about whether creating one is permitted here.
fn clone_works(flags: libc::c_int) -> bool {
    // SAFETY: fork-like clone; the child only calls _exit.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0,
            0,
            0,
            0,
        )
    };
    if pid == 0 {
        // SAFETY: immediate exit in the child.
        unsafe { libc::_exit(0) };
    }
    if pid < 0 {
        return false;
    }
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

/// Probes the running kernel. Costs a few clones; call once at startup.
pub fn probe() -> KernelSupport {
    let ns = libc::CLONE_NEWPID
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWNET;
    let userns = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0)
        > 0;
    KernelSupport {
        landlock_abi: landlock_abi(),
        seccomp: seccomp_available(),
        namespaces: clone_works(ns),
        user_namespaces: userns,
        cgroups: Layout::host().clone(),
        // SAFETY: geteuid cannot fail.
        root: unsafe { libc::geteuid() } == 0,
    }
}

impl KernelSupport {
    fn has_controller(&self, c: &str) -> bool {
        self.cgroups.v2_has(c) || self.cgroups.v1_mount(c).is_some()
    }

    /// Every unmet requirement, as an actionable sentence.
    pub fn unmet(&self, req: &Requirements) -> Vec<String> {
        let mut out = Vec::new();
        if !self.root {
            out.push(
                "the sandbox launcher must run as root (mounts, cgroups, uid changes)".to_string(),
            );
        }
        if self.landlock_abi < req.min_landlock_abi {
            out.push(format!(
                "Landlock ABI {} < required {}: boot a kernel >= 6.2 with lsm=...,landlock",
                self.landlock_abi, req.min_landlock_abi
            ));
        }
        if req.seccomp && !self.seccomp {
            out.push(
                "seccomp filters with kill_process are unavailable (CONFIG_SECCOMP_FILTER)"
                    .to_string(),
            );
        }
        if req.namespaces && !self.namespaces {
            out.push(
                "cannot create pid/mount/ipc/uts/net namespaces (container without CAP_SYS_ADMIN?)"
                    .to_string(),
            );
        }
        if req.memory_limit && !self.has_controller("memory") {
            out.push("no cgroup memory controller (v1 mount or delegated v2)".to_string());
        }
        if req.pids_limit && !self.has_controller("pids") {
            out.push("no cgroup pids controller (v1 mount or delegated v2)".to_string());
        }
        out
    }

    /// Fails closed unless every requirement is met.
    pub fn check(&self, req: &Requirements) -> io::Result<()> {
        let unmet = self.unmet(req);
        if unmet.is_empty() {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("host cannot enforce the policy: {}", unmet.join("; ")),
        ))
    }

    /// The floor below which `spawn` refuses to launch at all.
    pub(crate) fn require_for_launch(&self) -> io::Result<()> {
        let floor = Requirements {
            min_landlock_abi: 1,
            memory_limit: false,
            pids_limit: false,
            ..Requirements::default()
        };
        self.check(&floor)
    }
}

impl fmt::Display for KernelSupport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yn = |b: bool| if b { "yes" } else { "NO" };
        writeln!(f, "running as root:        {}", yn(self.root))?;
        let scopes = if self.landlock_abi >= 6 {
            ", signal + abstract-socket scoping"
        } else {
            ""
        };
        let net = if self.landlock_abi >= 4 {
            ", TCP bind/connect"
        } else {
            ""
        };
        writeln!(
            f,
            "landlock:               ABI {} (filesystem{net}{scopes})",
            self.landlock_abi
        )?;
        writeln!(f, "seccomp:                {}", yn(self.seccomp))?;
        writeln!(
            f,
            "namespaces:             {} (pid, mount, ipc, uts, net)",
            yn(self.namespaces)
        )?;
        writeln!(
            f,
            "user namespaces:        {} (not needed as root)",
            yn(self.user_namespaces)
        )?;
        for c in ["memory", "pids", "cpu"] {
            let how = if self.cgroups.v2_has(c) {
                "cgroup v2".to_string()
            } else if let Some(m) = self.cgroups.v1_mount(c) {
                format!("cgroup v1 at {}", m.display())
            } else {
                "NONE".to_string()
            };
            writeln!(f, "cgroup {c:<16}{how}")?;
        }
        let kill = self
            .cgroups
            .v2
            .as_ref()
            .map(|p| format!("cgroup2 at {} (cgroup.kill)", p.display()));
        write!(
            f,
            "tree kill:              pid namespace + {}",
            kill.unwrap_or_else(|| "v1 pid list".into())
        )
    }
}
