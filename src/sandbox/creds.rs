//! Dropping root: empty the bounding and ambient sets, leave every
//! supplementary group, switch uid/gid, then prove no capability is left.

use super::report::Step;
use super::sys::Errno;
use super::syscall::Syscall;

#[derive(Debug, Clone, Copy)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    /// Highest capability number this kernel knows.
    pub cap_last: u32,
}

impl Creds {
    pub fn new(uid: u32, gid: u32) -> Self {
        let cap_last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40);
        Creds { uid, gid, cap_last }
    }

    /// Child side. The bounding set goes first: dropping it needs CAP_SETPCAP.
    pub fn drop_privileges(&self, s: &impl Syscall) -> Result<(), (Step, Errno)> {
        for cap in 0..=self.cap_last {
            s.prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong)
                .map_err(|e| (Step::DropCaps, e))?;
        }
        s.prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        )
        .map_err(|e| (Step::DropCaps, e))?;
        s.setgroups_empty().map_err(|e| (Step::SetIds, e))?;
        s.setresgid(self.gid).map_err(|e| (Step::SetIds, e))?;
        // A uid change from 0 clears the permitted and effective sets.
        s.setresuid(self.uid).map_err(|e| (Step::SetIds, e))?;
        match s.capget_self() {
            Ok((0, 0, 0)) => Ok(()),
            Ok(_) => Err((Step::CapsRemain, libc::EPERM)),
            Err(e) => Err((Step::CapsRemain, e)),
        }
    }
}
