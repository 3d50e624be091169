//! Landlock: the ruleset is created in the parent; path rules are added in
//! the child after `pivot_root`, because /tmp and /proc only exist there.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort,
    RestrictionStatus, Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetStatus,
    Scope,
};
use std::sync::{Mutex, OnceLock};

use super::mounts::DEV_NODES;
use super::report::Step;
use super::spec::SandboxSpec;
use super::sys::{self, Errno};

/// Prepared Landlock state for one launch.
#[derive(Debug)]
pub struct LandlockPlan {
    ruleset: Option<RulesetCreated>,
    /// A dup of the ruleset fd: the crate does not expose its own.
    raw: OwnedFd,
    /// (path inside the sandbox, allowed access) pairs.
    rules: Vec<(CString, u64)>,
    /// Network-granted sandboxes: the daemon-port guard, stacked as a second
    /// Landlock layer (see [`set_daemon_ports`]).
    net_guard: Option<i32>,
}

/// TCP ports the daemon itself listens on (its gRPC TCP listener, metrics).
static DAEMON_PORTS: OnceLock<Vec<u16>> = OnceLock::new();
/// The guard ruleset, built once on first use: TCP connect and bind allowed
/// on every port except the daemon's. Kept open for the daemon's lifetime.
static NET_GUARD: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Records the daemon's own TCP ports, once at start, before any launch.
/// A command whose policy grants the network may then reach every TCP port
/// except these (on any address: Landlock rules name ports, not addresses),
/// so it can never call the daemon as whatever agent a listener maps to.
/// The daemon's Unix socket is out of every sandbox's view (not mounted;
/// abstract sockets are scoped).
pub fn set_daemon_ports(ports: Vec<u16>) {
    let _ = DAEMON_PORTS.set(ports);
}

fn net_guard(abi: ABI) -> io::Result<Option<i32>> {
    let ports = DAEMON_PORTS.get().map(Vec::as_slice).unwrap_or(&[]);
    let access = AccessNet::from_all(abi);
    if ports.is_empty() {
        return Ok(None);
    }
    if access.is_empty() {
        return Err(ll_err(
            "the daemon listens on TCP and the kernel's Landlock has no TCP rules (ABI < 4): \
             a network-granted command could call the daemon; refusing",
        ));
    }
    let mut guard = NET_GUARD.lock().map_err(|_| ll_err("guard lock"))?;
    if guard.is_none() {
        let mut rs = Ruleset::default()
            .set_compatibility(CompatLevel::HardRequirement)
            .handle_access(access)
            .map_err(ll_err)?
            .create()
            .map_err(ll_err)?;
        for port in (0..=u16::MAX).filter(|p| !ports.contains(p)) {
            rs = rs.add_rule(NetPort::new(port, access)).map_err(ll_err)?;
        }
        let fd: Option<OwnedFd> = rs.into();
        *guard = fd;
    }
    Ok(guard.as_ref().map(|fd| fd.as_raw_fd()))
}

fn cpath(p: impl AsRef<Path>) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_ref().as_os_str().as_bytes())
        .map_err(|_| super::spec::invalid("path contains NUL"))
}

fn ll_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("landlock: {e}"))
}

impl LandlockPlan {
    /// `abi` is the probed kernel ABI. Every right is a hard requirement:
    /// the crate's best-effort mode would silently drop what the kernel lacks.
    pub fn build(spec: &SandboxSpec, abi: i32) -> io::Result<Self> {
        let abi = ABI::from(abi);
        let all = AccessFs::from_all(abi);
        let read_exec = AccessFs::from_read(abi);
        let read = all & (AccessFs::ReadFile | AccessFs::ReadDir);
        let dev = all
            & (AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate | AccessFs::IoctlDev);

        let mut rs = Ruleset::default()
            .set_compatibility(CompatLevel::HardRequirement)
            .handle_access(all)
            .map_err(ll_err)?;
        let net = AccessNet::from_all(abi);
        // A session's own network namespace holds only its loopback: TCP
        // there reaches nothing outside (its servers, OpenPort's relay).
        if !spec.network && !spec.session && !net.is_empty() {
            // No rule follows: every TCP bind/connect is denied. UDP is not
            // covered before ABI 8; the empty network namespace cuts it.
            rs = rs.handle_access(net).map_err(ll_err)?;
        }
        let scopes = Scope::from_all(abi);
        if !scopes.is_empty() {
            rs = rs.scope(scopes).map_err(ll_err)?;
        }
        let created = rs.create().map_err(ll_err)?;
        let raw: Option<OwnedFd> = created.try_clone()?.into();
        let raw = raw.ok_or_else(|| ll_err("kernel has no Landlock"))?;

        let bits = |f: BitFlags<AccessFs>| f.bits();
        let mut rules = vec![(cpath("/")?, bits(all & AccessFs::ReadDir))];
        for d in &spec.system_dirs {
            if d.exists() {
                rules.push((cpath(d)?, bits(read_exec)));
            }
        }
        rules.push((cpath("/etc")?, bits(read)));
        let ws = if spec.workspace.writable {
            all
        } else {
            read_exec
        };
        rules.push((cpath(&spec.workspace.inside)?, bits(ws)));
        rules.push((cpath("/tmp")?, bits(all)));
        rules.push((cpath("/proc")?, bits(read)));
        for n in DEV_NODES {
            rules.push((cpath(Path::new("/dev").join(n))?, bits(dev)));
        }
        if spec.session {
            // The session's own devpts instance (its terminals).
            rules.push((cpath("/dev/pts")?, bits(dev)));
        }
        let net_guard = if spec.network { net_guard(abi)? } else { None };
        Ok(LandlockPlan {
            ruleset: Some(created),
            raw,
            rules,
            net_guard,
        })
    }

    /// Child side: adds the path rules and enforces the ruleset on the
    /// calling thread (also sets no_new_privs). Fails unless fully enforced.
    pub fn apply(&mut self) -> Result<(), (Step, Errno)> {
        for (path, access) in &self.rules {
            let fd = sys::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC, 0)
                .map_err(|e| (Step::LandlockRule, e))?;
            let r = sys::landlock_add_path_rule(self.raw.as_raw_fd(), fd, *access);
            sys::close(fd);
            r.map_err(|e| (Step::LandlockRule, e))?;
        }
        let ruleset = self
            .ruleset
            .take()
            .ok_or((Step::LandlockRestrict, libc::EINVAL))?;
        match ruleset.restrict_self() {
            Ok(RestrictionStatus {
                ruleset: RulesetStatus::FullyEnforced,
                no_new_privs: true,
                ..
            }) => {}
            Ok(_) => return Err((Step::LandlockNotEnforced, libc::EOPNOTSUPP)),
            Err(_) => return Err((Step::LandlockRestrict, last_errno())),
        }
        // The guard is a second layer: a connection must pass both.
        if let Some(fd) = self.net_guard {
            sys::landlock_restrict_self(fd).map_err(|e| (Step::LandlockRestrict, e))?;
        }
        Ok(())
    }
}

fn last_errno() -> Errno {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EPERM)
}
