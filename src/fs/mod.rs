//! The file tools: every path an agent gives is resolved beneath a workspace
//! root by file descriptor, checked against the agent's file rules, and only
//! then opened.
//!
//! Each tool is one synchronous function (the async server runs it inside
//! `tokio::task::spawn_blocking`) that takes the workspace, the agent's size
//! limits and the request, and returns the response together with the policy
//! rule that allowed the call. The `info` field of every response is left
//! `None`: the server fills it.
//!
//! How a path is handled, in order:
//! 1. `path`: the request string is validated (no NUL, not absolute, not
//!    over-long) and normalised lexically (`.`, `a/..`); a `..` that leaves
//!    the root is refused with `PATH_OUTSIDE_WORKSPACE`.
//! 2. `resolve`: the normalised path is walked component by component from
//!    the root's fd. A symlink is followed only while its target is relative
//!    and stays inside the workspace; otherwise `SYMLINK_ESCAPE`. The result
//!    is the canonical workspace-relative path, with no symlinks in it.
//! 3. `access`: the policy is checked on both the requested (lexical) path
//!    and the canonical one; both must be allowed, so a deny glob holds
//!    whatever name a file is reached through.
//! 4. The canonical path is opened with `openat2(RESOLVE_BENEATH |
//!    RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` on the root fd, so a
//!    component swapped for a symlink after step 2 makes the open fail.
//!
//! Decisions worth knowing:
//! - A write to a read-only workspace fails with `READ_ONLY_WORKSPACE` (and
//!   the read-only rule in the `rule` metadata); every other policy refusal
//!   is `POLICY_DENIED` naming its rule.
//! - Absolute symlinks are never followed, even when they point back inside
//!   the workspace (the same rule as cap-std).
//! - Files are replaced by writing a temporary file in the same directory and
//!   renaming it over the target, so the daemon never writes into an existing
//!   inode (a hardlink to an outside file is replaced, not written through).
//!   A file with several links that the workspace owner does not own is not
//!   read or replaced at all (`POLICY_DENIED`, rule
//!   `builtin: hardlink to a file the workspace owner does not own`).
//! - A directory whose whole content a deny glob covers (`secrets` for
//!   `secrets/**`) is treated as denied itself: not listed, not entered.
//! - Moving or recursively removing a directory checks every entry below
//!   it first (write access; for a move, at the old and the new path).

mod access;
mod edit;
mod file_facts;
mod glob;
mod grep;
mod ignore_files;
mod list;
mod list_pages;
mod lock;
mod meta;
mod mkdir;
mod ordered;
mod oserror;
mod owner;
mod path;
mod read;
mod remove;
mod rename;
mod resolve;
mod scan;
mod stat;
pub mod survey;
mod walk;
mod write;

#[cfg(test)]
mod escape_tests;
#[cfg(test)]
mod testutil;

use crate::policy::WorkspacePolicy;
use std::sync::Arc;

/// The lexical check and normalisation every request path goes through,
/// for a workspace whose host root is `root` (`/workspace/…` and absolute
/// host paths beneath `root` are mapped first). For the fuzz targets; the
/// tools call it themselves.
pub fn normalise_request_path(
    raw: &str,
    root: &std::path::Path,
) -> crate::error::ToolResult<String> {
    path::RelPath::parse_in(root, raw).map(|p| p.to_path_string())
}

pub use edit::edit_file;
pub use glob::glob;
pub use grep::grep;
pub use list::list_dir;
pub use mkdir::make_dir;
pub use path::{join, normalize_relative, workspace_relative};
pub use read::read_file;
pub use remove::remove;
pub use rename::move_path;
/// For the start-up probe, which must open exactly as the file tools do.
pub(crate) use resolve::open_beneath;
pub use stat::stat;
pub use write::write_file;

/// A successful tool call: the response, and the policy rule that allowed it
/// (for `CallInfo.rule` and the audit record).
#[derive(Debug, Clone)]
pub struct Outcome<T> {
    pub response: T,
    pub rule: Arc<str>,
}

impl<T> Outcome<T> {
    pub(crate) fn new(response: T, rule: Arc<str>) -> Self {
        Outcome { response, rule }
    }
}

/// Longest path accepted in a request, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest single path component accepted, in bytes (Linux `NAME_MAX`).
pub const MAX_COMPONENT_BYTES: usize = 255;
/// Most symlinks followed while resolving one path (as the kernel's limit).
pub const MAX_SYMLINK_HOPS: usize = 40;
/// Most directory entries one ListDir, Glob, Grep, recursive Remove or
/// directory Move looks at.
pub const MAX_SCAN_ENTRIES: usize = 100_000;

/// Resolves the working directory of a shell command: the canonical
/// workspace-relative path (`""` for the root) of an existing directory
/// that the agent may read. The sandbox then enters it below the workspace
/// mount, so a symlink cannot move a command's cwd outside.
pub fn resolve_dir(ws: &WorkspacePolicy, path: &str) -> crate::error::ToolResult<String> {
    use crate::error::{Reason, ToolError};
    use crate::policy::Access;
    let rel = path::RelPath::parse_in(&ws.path, path)?;
    let lexical = rel.to_path_string();
    access::precheck(ws, Access::Read, &lexical)?;
    let resolved = resolve::resolve(ws, &rel, resolve::Follow::Last)?;
    match resolved.kind() {
        Some(meta::Kind::Dir) => {}
        None => {
            return Err(ToolError::new(
                Reason::NotFound,
                format!("working directory `{lexical}` does not exist; create it with MakeDir or leave cwd empty for the workspace root"),
            )
            .with("path", lexical));
        }
        Some(_) => {
            return Err(ToolError::new(
                Reason::NotADirectory,
                format!("working directory `{lexical}` is not a directory"),
            )
            .with("path", lexical));
        }
    }
    let canonical = resolved.path();
    access::require(ws, Access::Read, &lexical, &canonical, true)?;
    Ok(canonical)
}

/// The canonical path of an existing file or directory (not a symlink) at
/// `path`, and whether it is a directory; None when there is none, or the
/// path leaves the workspace. Used to mask denied paths in the sandbox.
pub fn existing_entry(ws: &WorkspacePolicy, path: &str) -> Option<(String, bool)> {
    let rel = path::RelPath::parse_entry(path).ok()?;
    let resolved = resolve::resolve(ws, &rel, resolve::Follow::NotLast).ok()?;
    match resolved.kind()? {
        meta::Kind::Dir => Some((resolved.path(), true)),
        meta::Kind::File => Some((resolved.path(), false)),
        _ => None,
    }
}
