//! The capabilities the gRPC daemon keeps once the launcher process is
//! forked (README, "Privileges"). Everything that builds sandboxes (mounts,
//! namespaces, pivot_root, set*id, mknod, cgroup setup) runs in the
//! launcher, which keeps the full set; the daemon, which parses HTTP/2,
//! protobuf, TOML and regexes from callers, keeps only what its own work
//! needs and drops the rest from its effective, permitted, inheritable,
//! ambient and bounding sets before any other thread exists (capabilities
//! are per thread; every later thread inherits the reduced sets).
//!
//! Kept, and why:
//! - `CAP_DAC_OVERRIDE`: the file tools read, write, create and search in
//!   workspaces owned by other uids (the agents'), whatever their modes;
//! - `CAP_CHOWN`: files the daemon creates are given to the workspace owner
//!   (`fs/owner.rs`), and the socket to its configured group;
//! - `CAP_FOWNER`: the mode of a written file is set after it was given
//!   away (`fs/write.rs`), and renames in sticky directories;
//! - `CAP_KILL`: a sandbox's init runs as the sandbox uid, and the daemon
//!   kills it through its pidfd (timeouts, cancelled calls); the start-up
//!   sweep kills what dead daemons left in their cgroups;
//! - `CAP_NET_BIND_SERVICE`: only when a configured TCP listener or the
//!   metrics endpoint uses a port below 1024.
//!
//! Everything else goes, notably `CAP_SYS_ADMIN`, `CAP_SETUID`/`SETGID`,
//! `CAP_SETPCAP` (after the bounding set is cut), `CAP_MKNOD`,
//! `CAP_SYS_PTRACE`, `CAP_DAC_READ_SEARCH` (`open_by_handle_at`; the file
//! tools do not need it beside `CAP_DAC_OVERRIDE`) and `CAP_FSETID`.

use rustix::thread::{self, CapabilitySet, CapabilitySets};
use std::io;

/// What the daemon keeps, given the TCP ports it will listen on.
pub fn kept(tcp_ports: &[u16]) -> CapabilitySet {
    let mut keep = CapabilitySet::DAC_OVERRIDE
        | CapabilitySet::CHOWN
        | CapabilitySet::FOWNER
        | CapabilitySet::KILL;
    if tcp_ports.iter().any(|p| *p != 0 && *p < 1024) {
        keep |= CapabilitySet::NET_BIND_SERVICE;
    }
    keep
}

/// Drops every capability but `keep` from the calling thread, for good.
/// Call it while the process is single-threaded. A process without
/// capabilities (not root) has nothing to drop.
pub fn drop_all_but(keep: CapabilitySet) -> io::Result<()> {
    let now = thread::capabilities(None)?;
    if now.permitted.is_empty() {
        return Ok(());
    }
    // The bounding set first: cutting it needs CAP_SETPCAP, dropped below.
    if now.effective.contains(CapabilitySet::SETPCAP) {
        let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(40)
            .min(63);
        for cap in 0..=last {
            let one = CapabilitySet::from_bits_retain(1 << cap);
            if keep.contains(one) || !thread::capability_is_in_bounding_set(one).unwrap_or(false) {
                continue;
            }
            thread::remove_capability_from_bounding_set(one)?;
        }
    }
    thread::clear_ambient_capability_set()?;
    let left = keep & now.permitted;
    thread::set_capabilities(
        None,
        CapabilitySets {
            effective: left,
            permitted: left,
            inheritable: CapabilitySet::empty(),
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_set_is_the_documented_one() {
        let base = CapabilitySet::DAC_OVERRIDE
            | CapabilitySet::CHOWN
            | CapabilitySet::FOWNER
            | CapabilitySet::KILL;
        assert_eq!(kept(&[]), base);
        assert_eq!(kept(&[8443, 9100]), base, "high ports need nothing");
        assert_eq!(kept(&[443]), base | CapabilitySet::NET_BIND_SERVICE);
        assert!(!kept(&[443]).contains(CapabilitySet::SYS_ADMIN));
    }
}
