//! Remove: a file, a symlink (never what it points to), an empty directory,
//! or with `recursive` a directory and everything below it.
//!
//! A recursive removal first walks the whole tree and checks that every
//! entry may be written (so nothing under a deny glob is touched), then
//! removes exactly the entries it checked, deepest first. Anything created
//! in the tree meanwhile makes the removal stop with DIRECTORY_NOT_EMPTY
//! rather than go unchecked.

use super::access::{precheck, require};
use super::lock::lock_paths;
use super::meta::{Kind, Meta};
use super::oserror::os_error;
use super::path::{RelPath, display, join, split_last};
use super::resolve::{Follow, Resolved, open_dir, resolve, stat_in};
use super::walk::{Filter, Flow, Start, WalkOptions, walk};
use super::{MAX_SCAN_ENTRIES, Outcome};
use crate::error::{Reason, ToolError, ToolResult};
use crate::policy::{Access, Limits, WorkspacePolicy};
use crate::proto::{RemoveRequest, RemoveResponse};
use rustix::fd::OwnedFd;
use rustix::fs::AtFlags;
use rustix::io::Errno;
use std::sync::Arc;

pub fn remove(
    ws: &WorkspacePolicy,
    _limits: &Limits,
    req: &RemoveRequest,
) -> ToolResult<Outcome<RemoveResponse>> {
    let rel = RelPath::parse_in(&ws.path, &req.path)?;
    if rel.is_root() {
        return Err(ToolError::invalid(format!(
            "path `{}` names the workspace root, which cannot be removed; name an entry below it",
            req.path
        )));
    }
    precheck(ws, Access::Write, &rel.to_path_string())?;
    let res = resolve(ws, &rel, Follow::NotLast)?;
    let path = res.path();
    let is_dir = res.kind() == Some(Kind::Dir);
    let rule = require(ws, Access::Write, &res.lexical, &path, is_dir)?;
    let Some(meta) = res.meta else {
        return missing(&path, req.missing_ok, rule);
    };
    let _locks = lock_paths(ws, &[&path]);
    if is_dir && req.recursive {
        remove_contents(ws, &res, &path)?;
    }
    let (parent_path, name) = split_last(&path);
    let parent = open_dir(ws, parent_path)?;
    match stat_in(&parent, name) {
        Ok(now) if now.same_inode(&meta) => {}
        Ok(_) => return Err(changed(&path)),
        Err(Errno::NOENT) => return missing(&path, req.missing_ok, rule),
        Err(e) => return Err(os_error("remove", &path, e)),
    }
    unlink(&parent, name, &meta).map_err(|e| os_error("remove", &path, e))?;
    Ok(Outcome::new(
        RemoveResponse {
            path,
            removed: true,
            info: None,
        },
        rule,
    ))
}

fn missing(path: &str, missing_ok: bool, rule: Arc<str>) -> ToolResult<Outcome<RemoveResponse>> {
    if !missing_ok {
        return Err(os_error("remove", path, Errno::NOENT));
    }
    Ok(Outcome::new(
        RemoveResponse {
            path: path.to_string(),
            removed: false,
            info: None,
        },
        rule,
    ))
}

fn changed(path: &str) -> ToolError {
    ToolError::new(
        Reason::Unavailable,
        format!("`{path}` was replaced during the call; retry"),
    )
    .with("path", path)
}

fn unlink(parent: &OwnedFd, name: &str, meta: &Meta) -> Result<(), Errno> {
    let flags = if meta.kind == Kind::Dir {
        AtFlags::REMOVEDIR
    } else {
        AtFlags::empty()
    };
    rustix::fs::unlinkat(parent, name, flags)
}

/// Checks every entry below the directory `path`, then removes them.
fn remove_contents(ws: &WorkspacePolicy, res: &Resolved, path: &str) -> ToolResult<()> {
    let entries = checked_tree(ws, path, &res.lexical, None, "remove").map_err(|mut e| {
        if matches!(e.reason, Reason::Cancelled | Reason::DeadlineExceeded) {
            e.message = format!(
                "{} (while checking the tree: nothing had been removed)",
                e.message
            );
            e = e.with("removed", "0");
        }
        e
    })?;
    // Breadth-first order reversed: every entry goes before its parent.
    let mut parent: Option<(String, OwnedFd)> = None;
    for (removed, (entry, is_dir)) in entries.iter().rev().enumerate() {
        if let Err(mut stopped) = crate::cancel::check() {
            // What was done goes into the record.
            stopped.message = format!(
                "{} ({removed} of the {} entries below `{}` had been removed)",
                stopped.message,
                entries.len(),
                display(path)
            );
            return Err(stopped
                .with("removed", removed.to_string())
                .with("entries", entries.len().to_string()));
        }
        let (dir_path, name) = split_last(entry);
        let fd = match parent.take() {
            Some((p, fd)) if p == dir_path => (p, fd),
            _ => (dir_path.to_string(), open_dir(ws, dir_path)?),
        };
        let flags = if *is_dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        match rustix::fs::unlinkat(&fd.1, name, flags) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(Errno::NOTEMPTY) => {
                return Err(ToolError::new(
                    Reason::DirectoryNotEmpty,
                    format!(
                        "`{entry}` gained new entries while `{}` was being removed; nothing unchecked was removed. Retry the call",
                        display(path)
                    ),
                )
                .with("path", entry.as_str()))
            }
            Err(e) => return Err(os_error("remove", entry, e)),
        }
        parent = Some(fd);
    }
    Ok(())
}

/// Walks everything below the directory `path` and requires write access to
/// each entry (and, when moving, to where it would land under `to`).
/// Returns the entries, parents before children, with whether each is a
/// directory.
pub(crate) fn checked_tree(
    ws: &WorkspacePolicy,
    path: &str,
    lexical: &str,
    to: Option<(&str, &str)>,
    verb: &str,
) -> ToolResult<Vec<(String, bool)>> {
    let mut entries = Vec::new();
    let opts = WalkOptions {
        max_depth: usize::MAX,
        filter: Filter::Everything,
        max_entries: MAX_SCAN_ENTRIES,
    };
    let start = Start {
        canonical: path,
        lexical,
    };
    let stats = walk(ws, &start, &opts, |e| {
        let is_dir = e.kind == Kind::Dir;
        let mut names = vec![(join(lexical, e.rel), e.path.to_string())];
        if let Some((to_canonical, to_lexical)) = to {
            names.push((join(to_lexical, e.rel), join(to_canonical, e.rel)));
        }
        for (lexical, canonical) in names {
            if let Err(mut err) = require(ws, Access::Write, &lexical, &canonical, is_dir) {
                err.message = format!(
                    "cannot {verb} `{}` because of `{canonical}` inside it: {}",
                    display(path),
                    err.message
                );
                return Err(err.with("entry", canonical));
            }
        }
        entries.push((e.path.to_string(), is_dir));
        Ok(Flow::Continue)
    })?;
    if stats.truncated {
        return Err(ToolError::new(
            Reason::TooLarge,
            format!(
                "`{}` holds more than {MAX_SCAN_ENTRIES} entries; {verb} its subdirectories one at a time",
                display(path)
            ),
        )
        .with("path", path));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::testutil::Fixture;
    use std::os::unix::fs::symlink;

    fn req(path: &str, recursive: bool, missing_ok: bool) -> RemoveRequest {
        RemoveRequest {
            path: path.to_string(),
            recursive,
            missing_ok,
            ..Default::default()
        }
    }

    #[test]
    fn removes_files_dirs_and_links() {
        let fx = Fixture::new();
        fx.file("f", "x");
        fx.dir("empty");
        fx.file("tree/a/b", "x");
        fx.file("tree/c", "x");
        std::fs::write(fx.outside("keep"), "x").unwrap();
        symlink(fx.outside("keep"), fx.abs("link")).unwrap();
        symlink(fx.outside(""), fx.abs("tree/outdir")).unwrap();
        for p in ["f", "empty", "link"] {
            assert!(
                remove(&fx.ws, &fx.limits, &req(p, false, false))
                    .unwrap()
                    .response
                    .removed
            );
        }
        assert!(fx.outside("keep").exists(), "link removed, not its target");
        let err = remove(&fx.ws, &fx.limits, &req("tree", false, false)).unwrap_err();
        assert_eq!(err.reason, Reason::DirectoryNotEmpty);
        remove(&fx.ws, &fx.limits, &req("tree", true, false)).unwrap();
        assert!(!fx.exists("tree"));
        assert!(fx.outside("keep").exists(), "not followed out of the tree");
        assert_eq!(fx.names(""), Vec::<String>::new());
        let r = remove(&fx.ws, &fx.limits, &req("gone", false, true))
            .unwrap()
            .response;
        assert!(!r.removed);
        let err = remove(&fx.ws, &fx.limits, &req("gone", false, false)).unwrap_err();
        assert_eq!(err.reason, Reason::NotFound);
    }

    #[test]
    fn refusals() {
        let fx = Fixture::new();
        fx.file("proj/src/main.rs", "x");
        fx.file("proj/.env", "x");
        fx.file(".env", "x");
        for (p, reason) in [
            ("", Reason::InvalidArgument),
            ("a/..", Reason::InvalidArgument),
            (".env", Reason::PolicyDenied),
            ("proj/../.env", Reason::PolicyDenied),
            ("../x", Reason::PathOutsideWorkspace),
        ] {
            let err = remove(&fx.ws, &fx.limits, &req(p, true, false)).unwrap_err();
            assert_eq!(err.reason, reason, "{p}");
        }
        let err = remove(&fx.ws, &fx.limits, &req("proj", true, false)).unwrap_err();
        assert_eq!(err.reason, Reason::PolicyDenied);
        assert_eq!(err.metadata_value("entry"), Some("proj/.env"));
        assert!(fx.exists("proj/src/main.rs"), "nothing removed");
    }
}
