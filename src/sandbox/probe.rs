//! What this kernel can enforce, for `agentjail doctor` and for refusing to
//! start (R4) rather than running commands unconfined.

use std::fmt;
use std::io;

use super::cgroup_layout::Layout;
use std::sync::OnceLock;

/// Kernel features the sandbox relies on.
#[derive(Debug, Clone)]
pub struct KernelSupport {
    /// Landlock ABI version; 0 when absent, disabled or blocked.
    pub landlock_abi: i32,
    /// Why the Landlock version query failed (an errno), when it did.
    pub landlock_errno: Option<i32>,
    /// Why `openat2(2)` with `RESOLVE_BENEATH` failed (an errno), when it
    /// did. The file tools resolve every path with it.
    pub openat2_errno: Option<i32>,
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

/// The Landlock ABI version, or the errno that says why there is none.
fn landlock_abi() -> Result<i32, i32> {
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
    if v < 0 {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(v as i32)
    }
}

/// Opens `/` beneath itself the way the file tools open every path: a
/// seccomp filter that cannot inspect `openat2`'s flags (systemd's
/// `RestrictSUIDSGID=`, some container runtimes) refuses it outright.
fn openat2_works() -> Result<(), i32> {
    use rustix::fs::{Mode, OFlags};
    let root = rustix::fs::open("/", OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| e.raw_os_error())?;
    crate::fs::open_beneath(&root, "", OFlags::PATH, Mode::empty())
        .map(drop)
        .map_err(|e| e.raw_os_error())
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
    let landlock = landlock_abi();
    KernelSupport {
        landlock_abi: landlock.unwrap_or(0),
        landlock_errno: landlock.err(),
        openat2_errno: openat2_works().err(),
        seccomp: seccomp_available(),
        namespaces: clone_works(ns),
        user_namespaces: userns,
        cgroups: Layout::host().clone(),
        // SAFETY: geteuid cannot fail.
        root: unsafe { libc::geteuid() } == 0,
    }
}

/// The probe `serve` takes before the daemon drops the privileges that
/// only the launcher keeps (src/privileges.rs).
static AT_START: OnceLock<KernelSupport> = OnceLock::new();

/// `serve`, while it still holds every privilege (right after forking the
/// launcher, before dropping its capabilities): probes and remembers.
pub fn probe_at_start() -> KernelSupport {
    let k = probe();
    let _ = AT_START.set(k.clone());
    k
}

/// The daemon's probe, at start and on every reload: fresh, except for
/// what only a privileged process can test (namespaces, by a real clone),
/// which keeps the answer of [`probe_at_start`]: the daemon no longer holds
/// `CAP_SYS_ADMIN`, its launcher does. Without a start probe, a plain probe.
pub fn daemon_probe() -> KernelSupport {
    let mut k = probe();
    if let Some(start) = AT_START.get() {
        k.namespaces = start.namespaces;
    }
    k
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
                "Landlock ABI {} < required {}: {}",
                self.landlock_abi,
                req.min_landlock_abi,
                self.landlock_advice()
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
        for (wanted, c) in [(req.memory_limit, "memory"), (req.pids_limit, "pids")] {
            if wanted && !self.has_controller(c) {
                let note = match (
                    self.cgroups.read_only_mount(c),
                    &self.cgroups.delegation_error,
                ) {
                    (Some(p), _) => format!(
                        "; {} is mounted read-only (by a container runtime?): the daemon \
                         must be able to create cgroups there",
                        p.display()
                    ),
                    (None, Some(e)) => format!("; in the cgroup systemd delegated: {e}"),
                    (None, None) => String::new(),
                };
                out.push(format!(
                    "no writable cgroup {c} controller (v1 mount or delegated v2){note}"
                ));
            }
        }
        out
    }

    /// What to do about a missing or old Landlock, from the errno of the
    /// version query.
    fn landlock_advice(&self) -> &'static str {
        match self.landlock_errno {
            Some(libc::ENOSYS) => {
                "this kernel has no Landlock (boot a kernel >= 6.2), or a container \
                 runtime's seccomp profile answers ENOSYS for syscalls it does not know"
            }
            Some(libc::EOPNOTSUPP) => {
                "Landlock is built in but off; add landlock to the kernel's lsm= boot parameter"
            }
            Some(_) => {
                "a seccomp filter of the container or service manager this daemon runs under \
                 refuses the Landlock syscalls (systemd-nspawn: --system-call-filter=\
                 'landlock_create_ruleset landlock_add_rule landlock_restrict_self')"
            }
            None => "boot a kernel >= 6.2",
        }
    }

    /// Why the file tools cannot run here, if they cannot: every path is
    /// opened with `openat2(2)` and `RESOLVE_BENEATH`, with no fallback.
    pub fn file_tools_unmet(&self) -> Option<String> {
        let errno = self.openat2_errno?;
        let why = match errno {
            libc::ENOSYS => {
                "a kernel older than 5.6, or a seccomp filter that refuses openat2 because it \
                 cannot inspect its flags (systemd's RestrictSUIDSGID=yes does: remove it from \
                 the unit)"
            }
            libc::EPERM | libc::EACCES => {
                "a seccomp filter or security module refuses it (a container runtime's profile?)"
            }
            _ => "an unexpected error",
        };
        Some(format!(
            "the file tools need openat2(2) with RESOLVE_BENEATH, which fails here with {}: {why}",
            io::Error::from_raw_os_error(errno)
        ))
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
        match self.landlock_errno {
            Some(e) => writeln!(
                f,
                "landlock:               NO ({})",
                io::Error::from_raw_os_error(e)
            )?,
            None => writeln!(
                f,
                "landlock:               ABI {} (filesystem{net}{scopes})",
                self.landlock_abi
            )?,
        }
        match self.openat2_errno {
            Some(e) => writeln!(
                f,
                "openat2 beneath:        NO ({}; the file tools cannot run)",
                io::Error::from_raw_os_error(e)
            )?,
            None => writeln!(f, "openat2 beneath:        yes (file tools)")?,
        }
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
            writeln!(f, "cgroup {c:<17}{how}")?;
        }
        if let Some(d) = &self.cgroups.delegated {
            writeln!(
                f,
                "cgroup delegated:       {} (per-call groups in sandboxes/)",
                d.v2.display()
            )?;
        }
        for (p, _) in &self.cgroups.read_only {
            writeln!(f, "cgroup read-only:       {} (not used)", p.display())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn host_with(landlock_errno: Option<i32>, openat2_errno: Option<i32>) -> KernelSupport {
        KernelSupport {
            landlock_abi: if landlock_errno.is_some() { 0 } else { 7 },
            landlock_errno,
            openat2_errno,
            seccomp: true,
            namespaces: true,
            user_namespaces: true,
            cgroups: Layout::default(),
            root: true,
        }
    }

    #[test]
    fn a_missing_landlock_is_explained_by_its_errno() {
        let req = Requirements {
            memory_limit: false,
            pids_limit: false,
            ..Requirements::default()
        };
        for (errno, advice) in [
            (libc::ENOSYS, "this kernel has no Landlock"),
            (libc::EOPNOTSUPP, "lsm="),
            (libc::EPERM, "seccomp filter"),
        ] {
            let unmet = host_with(Some(errno), None).unmet(&req);
            assert_eq!(unmet.len(), 1, "{unmet:?}");
            assert!(unmet[0].contains(advice), "{errno}: {unmet:?}");
        }
        assert!(host_with(None, None).unmet(&req).is_empty());
    }

    #[test]
    fn a_refused_openat2_stops_the_file_tools() {
        let why = host_with(None, Some(libc::ENOSYS))
            .file_tools_unmet()
            .expect("refused");
        assert!(why.contains("RestrictSUIDSGID"), "{why}");
        assert!(host_with(None, None).file_tools_unmet().is_none());
    }

    #[test]
    fn this_host_opens_beneath_with_openat2() {
        // The file tools' own mechanism, probed for real.
        assert_eq!(openat2_works(), Ok(()));
    }
}
