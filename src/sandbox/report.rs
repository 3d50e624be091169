//! The child's two messages to the parent, as fixed 8-byte records on pipes:
//! a setup failure (step + errno) and, from init, the command's final status.

use std::fmt;
use std::io;

use super::sys::{self, Errno};

/// Each setup step the child can fail at, in execution order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[repr(u32)]
pub enum Step {
    Stdio = 1,
    Session,
    NetNs,
    Hostname,
    MountPrivate,
    MountRoot,
    MountMkdir,
    MountSymlink,
    MountBind,
    MountTmp,
    MountProc,
    MountWrite,
    PivotRoot,
    RemountRootRo,
    CloseFds,
    CgroupJoin,
    Rlimit,
    Sched,
    DropCaps,
    SetIds,
    CapsRemain,
    Cwd,
    LandlockRule,
    LandlockRestrict,
    LandlockNotEnforced,
    Seccomp,
    ForkCommand,
    Exec,
}

const STEPS: [Step; 28] = [
    Step::Stdio,
    Step::Session,
    Step::NetNs,
    Step::Hostname,
    Step::MountPrivate,
    Step::MountRoot,
    Step::MountMkdir,
    Step::MountSymlink,
    Step::MountBind,
    Step::MountTmp,
    Step::MountProc,
    Step::MountWrite,
    Step::PivotRoot,
    Step::RemountRootRo,
    Step::CloseFds,
    Step::CgroupJoin,
    Step::Rlimit,
    Step::Sched,
    Step::DropCaps,
    Step::SetIds,
    Step::CapsRemain,
    Step::Cwd,
    Step::LandlockRule,
    Step::LandlockRestrict,
    Step::LandlockNotEnforced,
    Step::Seccomp,
    Step::ForkCommand,
    Step::Exec,
];

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A setup failure as the parent sees it: the step and its errno, typed, so
/// callers decide on them (find it with [`SetupError::of`]), never on text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SetupError {
    pub step: Step,
    pub errno: Errno,
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let os = io::Error::from_raw_os_error(self.errno);
        write!(f, "sandbox setup failed at step {}: {os}", self.step)
    }
}

impl std::error::Error for SetupError {}

impl SetupError {
    /// Wrapped in an `io::Error` whose kind is the errno's (exec failures
    /// keep NotFound or PermissionDenied), with `self` as its inner error.
    pub fn into_io(self) -> io::Error {
        io::Error::new(io::Error::from_raw_os_error(self.errno).kind(), self)
    }

    /// The setup failure inside `e`, if that is what `e` is.
    pub fn of(e: &io::Error) -> Option<SetupError> {
        e.get_ref()?.downcast_ref::<SetupError>().copied()
    }
}

/// Child side: sends the failure and exits. Never allocates.
pub fn fail(fd: i32, step: Step, errno: Errno) -> ! {
    let mut rec = [0u8; 8];
    rec[..4].copy_from_slice(&(step as u32).to_ne_bytes());
    rec[4..].copy_from_slice(&errno.to_ne_bytes());
    let _ = sys::write_all(fd, &rec);
    sys::exit(127)
}

/// Init's "setup done, waiting for the command" record on the setup pipe
/// (no step has this number).
pub const READY: [u8; 8] = [0xff; 8];

/// Parent side: an empty read (EOF) means every step succeeded and the
/// command was exec'd.
pub fn decode_failure(rec: &[u8]) -> Option<SetupError> {
    let rec: &[u8; 8] = rec.try_into().ok()?;
    let step = u32::from_ne_bytes(rec[..4].try_into().ok()?);
    let errno = i32::from_ne_bytes(rec[4..].try_into().ok()?);
    let step = STEPS.into_iter().find(|s| *s as u32 == step)?;
    Some(SetupError { step, errno })
}

/// How the command ended, as init saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Termination {
    Exited(i32),
    Signaled(i32),
}

pub fn encode_status(wait_status: i32) -> [u8; 8] {
    let (kind, value) = if libc::WIFSIGNALED(wait_status) {
        (1u32, libc::WTERMSIG(wait_status))
    } else {
        (0u32, libc::WEXITSTATUS(wait_status))
    };
    let mut rec = [0u8; 8];
    rec[..4].copy_from_slice(&kind.to_ne_bytes());
    rec[4..].copy_from_slice(&value.to_ne_bytes());
    rec
}

pub fn decode_status(rec: &[u8]) -> Option<Termination> {
    let rec: &[u8; 8] = rec.try_into().ok()?;
    let value = i32::from_ne_bytes(rec[4..].try_into().ok()?);
    match u32::from_ne_bytes(rec[..4].try_into().ok()?) {
        0 => Some(Termination::Exited(value)),
        1 => Some(Termination::Signaled(value)),
        _ => None,
    }
}
