//! Per-process rlimits, set by init and inherited by the command. Every
//! resource gets a value, so nothing of the daemon's own limits leaks into a
//! command (a daemon with a raised RLIMIT_MEMLOCK or RLIMIT_RTPRIO does not
//! pass them on). Each is the value below, or the daemon's own hard limit
//! where that is lower (raising one needs CAP_SYS_RESOURCE). The policy sets
//! NOFILE, FSIZE and CPU; the rest:
//!
//! | resource | value | why |
//! | --- | --- | --- |
//! | CORE | 0 | no core dumps of what ran in the sandbox |
//! | RTPRIO | 0 | no real-time scheduling |
//! | RTTIME | 0 | (applies to real-time tasks only, which cannot exist) |
//! | NICE | 0 | the nice value cannot be lowered (see `sched.rs`) |
//! | MEMLOCK | 8 MiB | the kernel's default |
//! | MSGQUEUE | 800 KiB | the kernel's default |
//! | SIGPENDING | 16384 | bounded; counted per real uid |
//! | STACK | 8 MiB soft, unlimited hard | the usual default; programs may raise it |
//! | NOFILE / FSIZE / CPU unset by the caller | 1024 / unlimited / unlimited | |
//! | AS, DATA, RSS, NPROC, LOCKS | unlimited | the cgroup's memory and pids limits bound them; AS breaks Go and JVM programs, NPROC counts per uid across sandboxes |

use super::spec::Limits;
use super::sys::Errno;
use super::syscall::Syscall;

const UNLIMITED: u64 = libc::RLIM_INFINITY;

#[derive(Debug, Clone)]
pub struct RlimitPlan(Vec<(libc::c_int, u64, u64)>);

impl RlimitPlan {
    pub fn build(l: &Limits) -> Self {
        let same = |v: u64| (v, v);
        let table = [
            (libc::RLIMIT_CORE, same(0)),
            (libc::RLIMIT_NOFILE, same(l.nofile.unwrap_or(1024))),
            (libc::RLIMIT_FSIZE, same(l.fsize_bytes.unwrap_or(UNLIMITED))),
            (libc::RLIMIT_CPU, same(l.cpu_seconds.unwrap_or(UNLIMITED))),
            (libc::RLIMIT_RTPRIO, same(0)),
            (libc::RLIMIT_RTTIME, same(0)),
            (libc::RLIMIT_NICE, same(0)),
            (libc::RLIMIT_MEMLOCK, same(8 << 20)),
            (libc::RLIMIT_MSGQUEUE, same(819_200)),
            (libc::RLIMIT_SIGPENDING, same(16_384)),
            (libc::RLIMIT_STACK, (8 << 20, UNLIMITED)),
            (libc::RLIMIT_AS, same(UNLIMITED)),
            (libc::RLIMIT_DATA, same(UNLIMITED)),
            (libc::RLIMIT_RSS, same(UNLIMITED)),
            (libc::RLIMIT_NPROC, same(UNLIMITED)),
            (libc::RLIMIT_LOCKS, same(UNLIMITED)),
        ];
        RlimitPlan(
            table
                .into_iter()
                .map(|(r, (soft, hard))| (r as libc::c_int, soft, hard))
                .collect(),
        )
    }

    /// Child side. A hard limit is never raised above the daemon's own
    /// (that needs CAP_SYS_RESOURCE, which some hosts withhold even from
    /// root): each value is the lower of the table's and the daemon's.
    pub fn apply(&self, s: &impl Syscall) -> Result<(), Errno> {
        self.0.iter().try_for_each(|(r, soft, hard)| {
            let (_, current_hard) = s.prlimit_get(*r)?;
            let hard = (*hard).min(current_hard);
            s.prlimit(*r, (*soft).min(hard), hard)
        })
    }
}
