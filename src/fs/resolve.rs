//! Symlink-aware resolution beneath a workspace root, and opening by fd.
//!
//! [`resolve`] walks a normalised path one component at a time from the
//! root's fd. Each step opens `canonical-prefix/name` with `openat2` and
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, `O_PATH | O_NOFOLLOW`, so the
//! kernel itself refuses anything outside the root and any symlink we did not
//! read ourselves. A symlink is followed only when its target is relative and
//! its `..` components never climb above the root; an absolute target, or one
//! that leaves, is `SYMLINK_ESCAPE` whether or not it dangles.
//!
//! The canonical path that comes out contains no symlinks, so the final
//! [`open_beneath`] uses the same `RESOLVE_NO_SYMLINKS` flags: a component
//! swapped for a symlink in between makes it fail with `ELOOP`, reported as
//! `SYMLINK_ESCAPE`.

use super::MAX_SYMLINK_HOPS;
use super::meta::{Kind, Meta};
use super::oserror::os_error;
use super::path::{RelPath, display};
use crate::error::{Reason, ToolError, ToolResult};
use crate::policy::WorkspacePolicy;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, openat2, readlinkat};
use rustix::io::Errno;
use std::collections::VecDeque;
use std::fs::File;
use std::sync::Arc;

/// How every path below the root is opened: never above it, never through a
/// symlink, never through a `/proc` magic link.
pub(crate) const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// Whether the last component is followed when it is a symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Follow {
    /// Act on what the symlink points to (read, write, list, stat).
    Last,
    /// Act on the symlink itself (remove, move, stat with `no_follow`).
    NotLast,
}

/// A path resolved beneath the root.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// The normalised path as requested (may go through symlinks).
    pub lexical: String,
    /// Canonical components: no symlinks, no `.`/`..`. The first `existing`
    /// of them exist; when the path itself does not exist the rest are the
    /// names still to be created.
    pub comps: Vec<String>,
    pub existing: usize,
    /// Metadata of the last component when it exists (of the symlink itself
    /// when it was not followed).
    pub meta: Option<Meta>,
}

impl Resolved {
    /// The canonical workspace-relative path (`""` for the root).
    pub(crate) fn path(&self) -> String {
        self.comps.join("/")
    }

    pub(crate) fn kind(&self) -> Option<Kind> {
        self.meta.map(|m| m.kind)
    }

    /// True when every directory above the last component exists.
    pub(crate) fn parent_exists(&self) -> bool {
        self.existing + 1 >= self.comps.len()
    }
}

/// A component still to resolve, and the symlink whose target it came from.
struct Pending {
    name: String,
    via: Option<Arc<(String, String)>>,
}

/// Resolves `rel` beneath the workspace root. See the module docs.
pub(crate) fn resolve(ws: &WorkspacePolicy, rel: &RelPath, follow: Follow) -> ToolResult<Resolved> {
    let lexical = rel.to_path_string();
    let mut pending: VecDeque<Pending> = rel
        .components()
        .iter()
        .map(|c| Pending {
            name: c.clone(),
            via: None,
        })
        .collect();
    let mut stack: Vec<String> = Vec::new();
    // Metadata of the directory or file at the top of `stack`, when known.
    let mut top: Option<Meta> = None;
    let mut hops = 0usize;

    while let Some(comp) = pending.pop_front() {
        match comp.name.as_str() {
            "" | "." => continue,
            ".." => {
                if stack.pop().is_none() {
                    return Err(leaves_workspace(&lexical, comp.via.as_deref()));
                }
                top = None;
                continue;
            }
            _ => {}
        }
        let is_last = pending.iter().all(|p| p.name.is_empty() || p.name == ".");
        let candidate = if stack.is_empty() {
            comp.name.clone()
        } else {
            format!("{}/{}", stack.join("/"), comp.name)
        };
        let (fd, meta) = match probe(ws.root.as_fd(), &candidate) {
            Ok(found) => found,
            Err(Errno::NOENT) => {
                return missing_tail(lexical, stack, comp.name, pending);
            }
            Err(e) => return Err(os_error("resolve", &candidate, e).with("requested", &lexical)),
        };
        match meta.kind {
            Kind::Symlink if !is_last || follow == Follow::Last => {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(ToolError::invalid(format!(
                        "`{}` goes through more than {MAX_SYMLINK_HOPS} symlinks (a loop?); fix the symlinks or use the real path",
                        display(&lexical)
                    ))
                    .with("path", &lexical));
                }
                let target = read_link(&fd, &candidate)?;
                if target.starts_with('/') {
                    return Err(ToolError::new(
                        Reason::SymlinkEscape,
                        format!(
                            "`{candidate}` is a symlink to the absolute path `{target}`; absolute symlinks are not followed. Use a path inside the workspace"
                        ),
                    )
                    .with("path", &lexical)
                    .with("symlink", &candidate));
                }
                let via = Arc::new((candidate, target.clone()));
                for part in target.rsplit('/') {
                    pending.push_front(Pending {
                        name: part.to_string(),
                        via: Some(via.clone()),
                    });
                }
            }
            Kind::File | Kind::Other if !is_last => {
                return Err(ToolError::new(
                    Reason::NotADirectory,
                    format!(
                        "`{candidate}` is {}, so `{}` cannot be below it; check the path with list_dir",
                        meta.kind.describe(),
                        display(&lexical)
                    ),
                )
                .with("path", &lexical));
            }
            _ => {
                stack.push(comp.name);
                top = Some(meta);
            }
        }
    }

    let meta = match top {
        Some(meta) => meta,
        // The root, or a directory reached by popping `..`: look again.
        None => {
            let path = stack.join("/");
            let found = if path.is_empty() {
                rustix::fs::fstat(ws.root.as_fd()).map(|st| Meta::from_stat(&st))
            } else {
                probe(ws.root.as_fd(), &path).map(|(_, m)| m)
            };
            found.map_err(|e| os_error("resolve", &path, e))?
        }
    };
    Ok(Resolved {
        lexical,
        existing: stack.len(),
        comps: stack,
        meta: Some(meta),
    })
}

/// The path does not exist from `missing` on: report where it would be.
fn missing_tail(
    lexical: String,
    mut comps: Vec<String>,
    missing: String,
    rest: VecDeque<Pending>,
) -> ToolResult<Resolved> {
    let existing = comps.len();
    comps.push(missing);
    for p in rest {
        match p.name.as_str() {
            "" | "." => {}
            // `missing/..` cannot be resolved by the kernel either.
            ".." => {
                return Err(ToolError::new(
                    Reason::NotFound,
                    format!(
                        "`{}` does not exist; check the path with list_dir or glob",
                        comps.join("/")
                    ),
                )
                .with("path", &lexical));
            }
            _ => comps.push(p.name),
        }
    }
    Ok(Resolved {
        lexical,
        comps,
        existing,
        meta: None,
    })
}

fn leaves_workspace(lexical: &str, via: Option<&(String, String)>) -> ToolError {
    let message = match via {
        Some((link, target)) => format!(
            "`{link}` is a symlink to `{target}`, which leaves the workspace; symlinks are only followed while they stay inside it"
        ),
        None => format!("`{}` leaves the workspace", display(lexical)),
    };
    let mut err = ToolError::new(Reason::SymlinkEscape, message).with("path", lexical);
    if let Some((link, _)) = via {
        err = err.with("symlink", link);
    }
    err
}

/// `O_PATH` handle and metadata of `path` below `dir`, not following a
/// final symlink.
pub(crate) fn probe(dir: impl AsFd, path: &str) -> Result<(OwnedFd, Meta), Errno> {
    let fd = open_beneath(dir, path, OFlags::PATH, Mode::empty())?;
    let st = rustix::fs::fstat(&fd)?;
    Ok((fd, Meta::from_stat(&st)))
}

/// Metadata of the single entry `name` in the directory `dir`, without
/// following it.
pub(crate) fn stat_in(dir: impl AsFd, name: &str) -> Result<Meta, Errno> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map(|st| Meta::from_stat(&st))
}

/// Target text of the symlink behind an `O_PATH | O_NOFOLLOW` handle.
pub(crate) fn read_link(fd: &OwnedFd, path: &str) -> ToolResult<String> {
    let target =
        readlinkat(fd, "", Vec::new()).map_err(|e| os_error("read the symlink", path, e))?;
    let target = String::from_utf8(target.into_bytes()).map_err(|_| {
        ToolError::invalid(format!(
            "symlink `{path}` has a target that is not valid UTF-8; it cannot be followed"
        ))
        .with("path", path)
    })?;
    if target.is_empty() {
        return Err(ToolError::new(
            Reason::NotFound,
            format!("symlink `{path}` has an empty target"),
        )
        .with("path", path));
    }
    Ok(target)
}

/// `openat2` of `path` (workspace-relative, `""` for `dir` itself) with the
/// flags every open in this module uses.
pub(crate) fn open_beneath(
    dir: impl AsFd,
    path: &str,
    flags: OFlags,
    mode: Mode,
) -> Result<OwnedFd, Errno> {
    let path = if path.is_empty() { "." } else { path };
    let mut flags = flags | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    // openat2, unlike open, refuses flags that mean nothing with O_PATH.
    if !flags.contains(OFlags::PATH) {
        flags |= OFlags::NOCTTY;
    }
    openat2(dir, path, flags, mode, RESOLVE)
}

/// Opens a directory beneath the root for `*at` calls and listing.
pub(crate) fn open_dir(ws: &WorkspacePolicy, path: &str) -> ToolResult<OwnedFd> {
    open_dir_in(ws.root.as_fd(), path).map_err(|e| os_error("open the directory", path, e))
}

pub(crate) fn open_dir_in(dir: impl AsFd, path: &str) -> Result<OwnedFd, Errno> {
    open_beneath(dir, path, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty())
}

/// Opens a regular file beneath the root for reading. `O_NONBLOCK` makes a
/// FIFO open return at once (then refused), so nothing can wedge the daemon.
pub(crate) fn open_regular(ws: &WorkspacePolicy, path: &str) -> ToolResult<(File, Meta)> {
    open_regular_in(ws.root.as_fd(), path).map_err(|e| match e {
        OpenError::Os(e) => os_error("open", path, e),
        OpenError::NotRegular(kind) => not_regular(path, kind),
    })
}

#[derive(Debug)]
pub(crate) enum OpenError {
    Os(Errno),
    NotRegular(Kind),
}

pub(crate) fn open_regular_in(dir: impl AsFd, path: &str) -> Result<(File, Meta), OpenError> {
    let fd = open_beneath(dir, path, OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty())
        .map_err(OpenError::Os)?;
    let meta = rustix::fs::fstat(&fd)
        .map(|st| Meta::from_stat(&st))
        .map_err(OpenError::Os)?;
    if meta.kind != Kind::File {
        return Err(OpenError::NotRegular(meta.kind));
    }
    Ok((File::from(fd), meta))
}

/// The error for a path that is a directory, FIFO, socket or device where a
/// regular file is needed.
pub(crate) fn not_regular(path: &str, kind: Kind) -> ToolError {
    let shown = display(path);
    match kind {
        Kind::Dir => ToolError::new(
            Reason::IsADirectory,
            format!("`{shown}` is a directory; use list_dir to see what it contains"),
        ),
        _ => ToolError::new(
            Reason::NotARegularFile,
            format!(
                "`{shown}` is {}; only regular files can be read or written",
                kind.describe()
            ),
        ),
    }
    .with("path", path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::testutil::Fixture;
    use std::os::unix::fs::symlink;

    fn res(fx: &Fixture, p: &str, follow: Follow) -> ToolResult<Resolved> {
        resolve(&fx.ws, &RelPath::parse(p).unwrap(), follow)
    }

    #[test]
    fn resolves_plain_paths_and_missing_tails() {
        let fx = Fixture::new();
        fx.file("a/b.txt", "x");
        let r = res(&fx, "a/./b.txt", Follow::Last).unwrap();
        assert_eq!(r.path(), "a/b.txt");
        assert_eq!(r.kind(), Some(Kind::File));
        let r = res(&fx, "a/new/deeper.txt", Follow::Last).unwrap();
        assert_eq!(r.path(), "a/new/deeper.txt");
        assert_eq!(r.existing, 1);
        assert!(!r.parent_exists());
        assert!(r.meta.is_none());
        let r = res(&fx, "", Follow::Last).unwrap();
        assert_eq!(r.path(), "");
        assert_eq!(r.kind(), Some(Kind::Dir));
    }

    #[test]
    fn follows_inside_symlinks_to_the_canonical_path() {
        let fx = Fixture::new();
        fx.file("real/f.txt", "x");
        fx.dir("deep/er");
        symlink("real", fx.abs("dirlink")).unwrap();
        symlink("../real/f.txt", fx.abs("deep/flink")).unwrap();
        symlink("../../real", fx.abs("deep/er/up")).unwrap();
        symlink("dirlink/f.txt", fx.abs("chain")).unwrap();
        for (p, want) in [
            ("dirlink/f.txt", "real/f.txt"),
            ("deep/flink", "real/f.txt"),
            ("deep/er/up/f.txt", "real/f.txt"),
            ("chain", "real/f.txt"),
        ] {
            let r = res(&fx, p, Follow::Last).unwrap();
            assert_eq!(r.path(), want, "{p}");
            assert_eq!(r.lexical, p);
        }
        let r = res(&fx, "chain", Follow::NotLast).unwrap();
        assert_eq!(r.path(), "chain");
        assert_eq!(r.kind(), Some(Kind::Symlink));
    }

    #[test]
    fn refuses_symlinks_that_leave() {
        let fx = Fixture::new();
        fx.dir("sub");
        symlink("/etc/passwd", fx.abs("abs")).unwrap();
        symlink("../../etc", fx.abs("sub/up")).unwrap();
        symlink("/nonexistent/x", fx.abs("dangling")).unwrap();
        symlink("../ws-evil/f", fx.abs("sibling")).unwrap();
        for p in ["abs", "sub/up/passwd", "dangling", "sibling", "sub/up"] {
            let err = res(&fx, p, Follow::Last).unwrap_err();
            assert_eq!(err.reason, Reason::SymlinkEscape, "{p}: {err}");
        }
        // Not following the last component describes the link itself.
        assert!(res(&fx, "abs", Follow::NotLast).is_ok());
    }

    #[test]
    fn loops_and_files_in_the_middle() {
        let fx = Fixture::new();
        symlink("b", fx.abs("a")).unwrap();
        symlink("a", fx.abs("b")).unwrap();
        fx.file("f", "x");
        let err = res(&fx, "a", Follow::Last).unwrap_err();
        assert_eq!(err.reason, Reason::InvalidArgument);
        let err = res(&fx, "f/x", Follow::Last).unwrap_err();
        assert_eq!(err.reason, Reason::NotADirectory);
    }

    #[test]
    fn open_refuses_fifos_and_swapped_symlinks() {
        let fx = Fixture::new();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            fx.abs("fifo").as_path(),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let err = open_regular(&fx.ws, "fifo").unwrap_err();
        assert_eq!(err.reason, Reason::NotARegularFile);
        fx.file("real/f", "x");
        symlink("real", fx.abs("was_dir")).unwrap();
        // A canonical path must not contain symlinks: treated as a swap.
        let err = open_regular(&fx.ws, "was_dir/f").unwrap_err();
        assert_eq!(err.reason, Reason::SymlinkEscape);
    }
}
