//! Stat: what a path is, and what the policy lets the agent do with it.
//!
//! Allowed when the policy allows reading or writing the path (a file only
//! writable can still be described); `readable`/`writable` say which.

use super::Outcome;
use super::access::{allows, precheck, require};
use super::meta::Kind;
use super::oserror::os_error;
use super::path::RelPath;
use super::resolve::{Follow, probe, read_link, resolve};
use crate::error::ToolResult;
use crate::policy::{Access, Limits, WorkspacePolicy};
use crate::proto::{StatRequest, StatResponse};
use rustix::fd::AsFd;

pub fn stat(
    ws: &WorkspacePolicy,
    _limits: &Limits,
    req: &StatRequest,
) -> ToolResult<Outcome<StatResponse>> {
    let rel = RelPath::parse_in(&ws.path, &req.path)?;
    precheck(ws, Access::Read, &rel.to_path_string())?;
    let follow = if req.no_follow {
        Follow::NotLast
    } else {
        Follow::Last
    };
    let res = resolve(ws, &rel, follow)?;
    let path = res.path();
    let is_dir = res.kind() == Some(Kind::Dir);
    let readable = allows(ws, Access::Read, &res.lexical, &path, is_dir);
    let writable = allows(ws, Access::Write, &res.lexical, &path, is_dir);
    let access = if readable || !writable {
        Access::Read
    } else {
        Access::Write
    };
    let rule = require(ws, access, &res.lexical, &path, is_dir)?;
    let Some(meta) = res.meta else {
        return Err(os_error("stat", &path, rustix::io::Errno::NOENT));
    };
    let symlink_target = if meta.kind == Kind::Symlink {
        let (fd, _) = probe(ws.root.as_fd(), &path).map_err(|e| os_error("stat", &path, e))?;
        read_link(&fd, &path).unwrap_or_default()
    } else {
        String::new()
    };
    Ok(Outcome::new(
        StatResponse {
            path,
            kind: meta.kind.entry_kind() as i32,
            size: meta.size,
            mode: meta.perm,
            mtime: Some(meta.mtime()),
            symlink_target,
            readable,
            writable,
            info: None,
        },
        rule,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Reason;
    use crate::fs::testutil::{Fixture, Rules};
    use crate::proto::EntryKind;
    use std::os::unix::fs::symlink;

    fn req(path: &str, no_follow: bool) -> StatRequest {
        StatRequest {
            path: path.to_string(),
            no_follow,
            ..Default::default()
        }
    }

    #[test]
    fn describes_files_dirs_and_links() {
        let fx = Fixture::new();
        fx.file("a.txt", "hello");
        symlink("a.txt", fx.abs("link")).unwrap();
        symlink("/etc/passwd", fx.abs("abs")).unwrap();
        let r = stat(&fx.ws, &fx.limits, &req("link", false))
            .unwrap()
            .response;
        assert_eq!(
            (r.path.as_str(), r.kind, r.size),
            ("a.txt", EntryKind::File as i32, 5)
        );
        assert!(r.readable && r.writable);
        assert_eq!(r.mode & 0o777, 0o644);
        let r = stat(&fx.ws, &fx.limits, &req("abs", true))
            .unwrap()
            .response;
        assert_eq!(
            (r.kind, r.symlink_target.as_str()),
            (EntryKind::Symlink as i32, "/etc/passwd")
        );
        let err = stat(&fx.ws, &fx.limits, &req("abs", false)).unwrap_err();
        assert_eq!(err.reason, Reason::SymlinkEscape);
        let r = stat(&fx.ws, &fx.limits, &req("", false)).unwrap().response;
        assert_eq!((r.path.as_str(), r.kind), ("", EntryKind::Dir as i32));
    }

    #[test]
    fn policy_flags_and_refusals() {
        let fx = Fixture::with_rules(Rules {
            read: &["**"],
            write: &["src/**"],
            ..Rules::default()
        });
        fx.file("README", "x");
        fx.file(".env", "x");
        let r = stat(&fx.ws, &fx.limits, &req("README", false))
            .unwrap()
            .response;
        assert!(r.readable && !r.writable);
        for (p, reason) in [
            (".env", Reason::PolicyDenied),
            ("missing", Reason::NotFound),
            ("../x", Reason::PathOutsideWorkspace),
        ] {
            assert_eq!(
                stat(&fx.ws, &fx.limits, &req(p, false)).unwrap_err().reason,
                reason,
                "{p}"
            );
        }
    }
}
