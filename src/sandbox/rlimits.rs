//! Per-process rlimits, set by init and inherited by the command.
//! RLIMIT_NPROC and RLIMIT_AS are deliberately absent: NPROC counts per uid
//! across sandboxes, AS breaks Go and JVM programs; the cgroup covers both.

use super::spec::Limits;
use super::sys::{self, Errno};

#[derive(Debug, Clone)]
pub struct RlimitPlan(Vec<(libc::c_int, u64)>);

impl RlimitPlan {
    pub fn build(l: &Limits) -> Self {
        let mut v = vec![(libc::RLIMIT_CORE as libc::c_int, 0)];
        let opt = [
            (libc::RLIMIT_NOFILE, l.nofile),
            (libc::RLIMIT_FSIZE, l.fsize_bytes),
            (libc::RLIMIT_CPU, l.cpu_seconds),
        ];
        v.extend(
            opt.into_iter()
                .filter_map(|(r, x)| Some((r as libc::c_int, x?))),
        );
        RlimitPlan(v)
    }

    /// Child side; hard and soft limits are equal so the command cannot raise them.
    pub fn apply(&self) -> Result<(), Errno> {
        self.0.iter().try_for_each(|(r, v)| sys::prlimit(*r, *v))
    }
}
