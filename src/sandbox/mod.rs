//! Runs one shell command per call in a kernel-enforced sandbox.
//!
//! Synchronous and self-contained (no dependency on the daemon). It runs in
//! a launcher process of its own (`launcher_process.rs`), forked by `serve`
//! before the async runtime exists; the daemon talks to it over a
//! SOCK_SEQPACKET socket (`wire.rs`, `remote.rs`).
//!
//! Setup order (parent, then the cloned child; see `child.rs`):
//!
//! - parent: validate the spec, resolve argv[0] on the sandbox PATH, create
//!   pipes (chowned to the sandbox uid) and the per-call cgroups with their
//!   limits, build the mount plan (with the cached /etc snapshot),
//!   create the Landlock ruleset, fetch the compiled seccomp program, build
//!   argv/envp as C strings, take a pre-made network namespace;
//! - `clone3(NEWPID|NEWNS|NEWIPC|NEWUTS[|NEWNET], CLONE_PIDFD,
//!   CLONE_INTO_CGROUP)` (`clone.rs`; plain `clone` where refused): the
//!   child is pid 1, born in its cgroup2 group;
//! - child (`child::setup`, every privileged call through `syscall.rs`):
//!   reset signals, setsid, pdeathsig, non-dumpable, stdio onto 0-2,
//!   setns(net), hostname, mounts + pivot_root, join the cgroups it was not
//!   born in, rlimits, drop
//!   to uid/gid (caps verified empty), Landlock (+no_new_privs),
//!   close inherited fds, seccomp; then init reports ready and waits for its
//!   command (`command.rs`: at once for a cold launch, when a call takes it
//!   for a sandbox built ahead, `pool.rs`, after `fresh.rs` proved its view
//!   current), enters the command's cwd, forks the command, which execs;
//!   init reaps and reports the command's status on a pipe, then exits
//!   (killing any leftover process of the namespace).

mod cgroup;
mod cgroup_layout;
mod child;
mod clone;
mod command;
mod creds;
pub mod etc;
pub mod fast_spawn;
mod fresh;
mod landlock;
mod launcher;
pub mod launcher_process;
mod mounts;
pub mod netns;
pub mod pool;
mod probe;
mod remote;
mod report;
mod rlimits;
mod sched;
mod seccomp;
pub mod session_init;
mod spec;
mod sys;
mod syscall;
mod wire;

pub use cgroup::{CgroupStats, finish_removals, sweep_dead as sweep_dead_cgroups};
pub use cgroup_layout::prepare as prepare_cgroups;
pub use landlock::set_daemon_ports;
pub use launcher::{ExitInfo, Timings};
pub use probe::{KernelSupport, Requirements, daemon_probe, probe, probe_at_start};
pub use remote::{LauncherGone, SandboxChild, launch, launcher_alive, request_etc_refresh};
pub use report::{SetupError, Step, Termination};
pub use spec::{DEFAULT_ETC, DEFAULT_SYSTEM_DIRS, Limits, SandboxSpec, Stdin, Workspace};
pub use wire::{
    MAX_BODY as SESSION_MAX_MESSAGE, recv_in as session_recv_in, send as session_send,
    send_encoded as session_send_encoded,
};

/// Makes `fd` non-blocking (see `sys::set_nonblocking`), for the daemon's
/// async readers and writers.
pub fn set_nonblocking(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
    sys::set_nonblocking(fd).map_err(std::io::Error::from_raw_os_error)
}
