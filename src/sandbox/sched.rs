//! The scheduling state a command starts from, whatever the daemon's: set
//! by init before the privilege drop (lowering a nice value or an
//! oom_score_adj needs the privilege the drop removes), and inherited by the
//! command. A command is never scheduled ahead of, nor harder to kill than,
//! the daemon or an ordinary process:
//!
//! - nice: the daemon's, but at least 0;
//! - oom_score_adj: the daemon's, but at least 0;
//! - policy SCHED_OTHER (priority 0), leaving a real-time or other class;
//! - I/O priority: none set (the default, derived from nice).
//!
//! `RLIMIT_NICE` and `RLIMIT_RTPRIO` (see `rlimits.rs`) keep the command from
//! raising any of it again.

use super::sys::{self, Errno};

#[derive(Debug, Clone)]
pub struct SchedPlan {
    nice: i32,
    /// The decimal text written to /proc/self/oom_score_adj.
    oom_score_adj: Vec<u8>,
}

/// Where init writes its OOM score adjustment (the host /proc is still
/// mounted when this runs: before the mounts).
const OOM_SCORE_ADJ: &core::ffi::CStr = c"/proc/self/oom_score_adj";
const IOPRIO_WHO_PROCESS: libc::c_long = 1;

impl SchedPlan {
    /// Parent side: the daemon's own values, raised to at least 0.
    pub fn build() -> Self {
        let nice = rustix::process::getpriority_process(None)
            .unwrap_or(0)
            .max(0);
        let adj = std::fs::read_to_string("/proc/self/oom_score_adj")
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .unwrap_or(0)
            .max(0);
        SchedPlan {
            nice,
            oom_score_adj: adj.to_string().into_bytes(),
        }
    }

    /// Child side, before the mounts (for /proc) and the privilege drop.
    pub fn apply(&self) -> Result<(), Errno> {
        let param = libc::sched_param { sched_priority: 0 };
        sys::check(unsafe {
            // SAFETY: a plain syscall with a pointer to a live local.
            libc::syscall(
                libc::SYS_sched_setscheduler,
                0,
                libc::SCHED_OTHER,
                &param as *const libc::sched_param,
            )
        })?;
        // SAFETY: plain syscalls on this process.
        sys::check(unsafe {
            libc::syscall(
                libc::SYS_setpriority,
                libc::PRIO_PROCESS,
                0,
                self.nice as libc::c_long,
            )
        })?;
        // Class NONE, level 0: the default I/O priority.
        sys::check(unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, 0) })?;
        let fd = sys::open(OOM_SCORE_ADJ.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC, 0)?;
        let r = sys::write_all(fd, &self.oom_score_adj);
        sys::close(fd);
        r
    }
}
