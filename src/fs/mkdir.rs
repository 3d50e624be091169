//! MakeDir, and the parent creation WriteFile and Move share.
//!
//! Every directory created is checked on its own (write allowed by the
//! policy, made with `mkdirat` in a parent opened beneath the root) and
//! given to the workspace owner.

use super::Outcome;
use super::access::{precheck, require, require_parent};
use super::meta::Kind;
use super::oserror::os_error;
use super::owner::give_to_owner;
use super::path::{RelPath, display, split_last};
use super::resolve::{Follow, open_dir, open_dir_in, resolve, stat_in};
use crate::error::{Reason, ToolError, ToolResult};
use crate::policy::{Access, Limits, WorkspacePolicy};
use crate::proto::{MakeDirRequest, MakeDirResponse};
use rustix::fs::Mode;
use rustix::io::Errno;

const NEW_DIR_MODE: u32 = 0o755;

pub fn make_dir(
    ws: &WorkspacePolicy,
    _limits: &Limits,
    req: &MakeDirRequest,
) -> ToolResult<Outcome<MakeDirResponse>> {
    let rel = RelPath::parse_entry_in(&ws.path, &req.path)?;
    precheck(ws, Access::Write, &rel.to_path_string())?;
    let res = resolve(ws, &rel, Follow::Last)?;
    let path = res.path();
    let rule = require(ws, Access::Write, &res.lexical, &path, true)?;
    match res.kind() {
        Some(Kind::Dir) if req.parents => {
            return Ok(Outcome::new(
                MakeDirResponse {
                    path,
                    created: false,
                    info: None,
                },
                rule,
            ));
        }
        Some(kind) => {
            let what = if kind == Kind::Dir {
                "a directory".to_string()
            } else {
                kind.describe().to_string()
            };
            return Err(ToolError::new(
                Reason::AlreadyExists,
                format!(
                    "`{}` already exists and is {what}; pass parents to accept an existing directory",
                    display(&path)
                ),
            )
            .with("path", &path));
        }
        None => {}
    }
    if !res.parent_exists() && !req.parents {
        return Err(ToolError::new(
            Reason::NotFound,
            format!(
                "directory `{}` does not exist; pass parents to create it too",
                display(split_last(&path).0)
            ),
        )
        .with("path", &path));
    }
    create_missing(ws, &res.comps, res.existing, (&res.path(), true))?;
    Ok(Outcome::new(
        MakeDirResponse {
            path,
            created: true,
            info: None,
        },
        rule,
    ))
}

/// Creates the directories `comps[existing..]` (canonical components whose
/// first `existing` exist), one level at a time.
/// Creates the missing directories `comps[existing..]`, on the way to
/// `target` (the file or directory the call is about).
pub(crate) fn create_missing(
    ws: &WorkspacePolicy,
    comps: &[String],
    existing: usize,
    target: (&str, bool),
) -> ToolResult<()> {
    for depth in existing..comps.len() {
        let path = comps[..=depth].join("/");
        require_parent(ws, &path, target.0, target.1)?;
        let (parent_path, name) = split_last(&path);
        let parent = open_dir(ws, parent_path)?;
        match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(NEW_DIR_MODE)) {
            Ok(()) => {}
            // Created meanwhile by someone else: fine if it is a directory.
            Err(Errno::EXIST) if matches!(stat_in(&parent, name), Ok(m) if m.kind == Kind::Dir) => {
                continue;
            }
            Err(e) => return Err(os_error("create the directory", &path, e)),
        }
        let dir =
            open_dir_in(&parent, name).map_err(|e| os_error("open the directory", &path, e))?;
        give_to_owner(ws, &dir, &path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::testutil::{Fixture, Rules};
    use std::os::unix::fs::symlink;

    fn req(path: &str, parents: bool) -> MakeDirRequest {
        MakeDirRequest {
            path: path.to_string(),
            parents,
            ..Default::default()
        }
    }

    #[test]
    fn creates_directories() {
        let fx = Fixture::new();
        let r = make_dir(&fx.ws, &fx.limits, &req("a", false))
            .unwrap()
            .response;
        assert!(r.created);
        assert_eq!(
            make_dir(&fx.ws, &fx.limits, &req("a", false))
                .unwrap_err()
                .reason,
            Reason::AlreadyExists
        );
        let r = make_dir(&fx.ws, &fx.limits, &req("a", true))
            .unwrap()
            .response;
        assert!(!r.created);
        assert_eq!(
            make_dir(&fx.ws, &fx.limits, &req("b/c/d", false))
                .unwrap_err()
                .reason,
            Reason::NotFound
        );
        make_dir(&fx.ws, &fx.limits, &req("b/c/d", true)).unwrap();
        assert!(fx.abs("b/c/d").is_dir());
        fx.file("f", "x");
        assert_eq!(
            make_dir(&fx.ws, &fx.limits, &req("f", true))
                .unwrap_err()
                .reason,
            Reason::AlreadyExists
        );
    }

    #[test]
    fn refuses_escapes_and_denied_dirs() {
        let fx = Fixture::new();
        symlink(fx.outside(""), fx.abs("out")).unwrap();
        symlink("../outside", fx.abs("rel_out")).unwrap();
        for (p, reason) in [
            ("out/x", Reason::SymlinkEscape),
            ("rel_out/x", Reason::SymlinkEscape),
            ("secrets/x", Reason::PolicyDenied),
            ("../x", Reason::PathOutsideWorkspace),
        ] {
            let err = make_dir(&fx.ws, &fx.limits, &req(p, true)).unwrap_err();
            assert_eq!(err.reason, reason, "{p}");
        }
        assert_eq!(std::fs::read_dir(fx.outside("")).unwrap().count(), 0);
        let fx = Fixture::with_rules(Rules {
            write: &["src/**"],
            ..Rules::default()
        });
        // `src` itself is not matched by `src/**`, but creating it on the
        // way to the allowed `src/a` is allowed; `other` is not.
        make_dir(&fx.ws, &fx.limits, &req("src/a", true)).unwrap();
        assert!(fx.exists("src/a"));
        let err = make_dir(&fx.ws, &fx.limits, &req("other/a", true)).unwrap_err();
        assert_eq!(err.reason, Reason::PolicyDenied);
        assert!(!fx.exists("other"));
    }
}
