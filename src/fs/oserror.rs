//! Turns operating-system errors into tool errors an agent can act on.

use super::path::display;
use crate::error::{Reason, ToolError};
use rustix::io::Errno;

/// Rule named when the operating system, not the policy, refused access.
pub(crate) const OS_DENIED_RULE: &str = "builtin: the operating system refused access";

/// Maps `err`, raised while doing `op` ("open", "rename", ...) on the
/// workspace-relative `path`, to a tool error.
pub(crate) fn os_error(op: &str, path: &str, err: Errno) -> ToolError {
    let shown = display(path);
    let (reason, message) = match err {
        Errno::NOENT => (
            Reason::NotFound,
            format!("`{shown}` does not exist; check the path with list_dir or glob"),
        ),
        Errno::NOTDIR => (
            Reason::NotADirectory,
            format!("a parent of `{shown}` is not a directory; check the path with list_dir"),
        ),
        Errno::ISDIR => (
            Reason::IsADirectory,
            format!("`{shown}` is a directory; use list_dir to see what it contains"),
        ),
        // With RESOLVE_NO_SYMLINKS, ELOOP means a component of a path that
        // was just resolved is now a symlink (swapped in between); EXDEV
        // means the kernel saw the path leave the root.
        Errno::LOOP | Errno::XDEV => {
            return ToolError::new(
                Reason::SymlinkEscape,
                format!(
                    "`{shown}` changed into a symlink while it was being opened; \
                     symlinks are only followed while they stay inside the workspace. Retry the call"
                ),
            )
            .with("path", path)
        }
        Errno::NAMETOOLONG => (
            Reason::InvalidArgument,
            format!("`{shown}` is too long once symlinks are resolved; use a shorter path"),
        ),
        Errno::EXIST => (
            Reason::AlreadyExists,
            format!("`{shown}` already exists; choose another name or allow overwriting"),
        ),
        Errno::NOTEMPTY => (
            Reason::DirectoryNotEmpty,
            format!("directory `{shown}` is not empty; pass recursive to remove it with its contents"),
        ),
        Errno::NXIO => (
            Reason::NotARegularFile,
            format!("`{shown}` is not a regular file"),
        ),
        Errno::FBIG => (
            Reason::TooLarge,
            format!("`{shown}` would exceed the filesystem's file size limit"),
        ),
        Errno::NOSPC | Errno::DQUOT => (
            Reason::Unavailable,
            format!("no space left to {op} `{shown}`; free some space and retry"),
        ),
        Errno::AGAIN | Errno::INTR | Errno::BUSY => (
            Reason::Unavailable,
            format!("could not {op} `{shown}` right now ({err}); retry the call"),
        ),
        Errno::ROFS => {
            return ToolError::new(
                Reason::ReadOnlyWorkspace,
                format!("`{shown}` is on a read-only filesystem; it cannot be changed"),
            )
            .with("rule", "builtin: read-only filesystem")
            .with("path", path)
        }
        Errno::ACCESS | Errno::PERM => {
            return ToolError::denied(
                OS_DENIED_RULE,
                format!("the operating system refused to {op} `{shown}` ({err}); choose another path"),
            )
            .with("path", path)
        }
        _ => (
            Reason::Internal,
            format!("could not {op} `{shown}`: {err}"),
        ),
    };
    ToolError::new(reason, message).with("path", path)
}

/// Same as [`os_error`] for a `std::io::Error` (from cap-std or std).
pub(crate) fn io_error(op: &str, path: &str, err: &std::io::Error) -> ToolError {
    match Errno::from_io_error(err) {
        Some(errno) => os_error(op, path, errno),
        None => ToolError::internal(format!("could not {op} `{}`: {err}", display(path)))
            .with("path", path),
    }
}
