//! Move: rename a file, symlink or directory within the workspace.
//!
//! Both ends are resolved without following their last component (a symlink
//! is moved, or replaced, as itself) and both need write access. Moving a
//! directory moves everything in it, so every entry below it must be
//! writable both where it is and where it would land (F13: a denied file
//! cannot be carried out under another name). The destination is never
//! replaced unless `overwrite` (`renameat2(RENAME_NOREPLACE)`).

use super::Outcome;
use super::access::{check_hardlink, precheck, require};
use super::lock::lock_paths;
use super::meta::Kind;
use super::mkdir::create_missing;
use super::oserror::os_error;
use super::path::{RelPath, display, split_last};
use super::remove::checked_tree;
use super::resolve::{Follow, open_dir, resolve, stat_in};
use crate::error::{Reason, ToolError, ToolResult};
use crate::policy::{Access, Limits, WorkspacePolicy};
use crate::proto::{MoveRequest, MoveResponse};
use rustix::fs::RenameFlags;
use rustix::io::Errno;

pub fn move_path(
    ws: &WorkspacePolicy,
    _limits: &Limits,
    req: &MoveRequest,
) -> ToolResult<Outcome<MoveResponse>> {
    let from_rel = RelPath::parse_entry_in(&ws.path, &req.from)?;
    let to_rel = RelPath::parse_entry_in(&ws.path, &req.to)?;
    precheck(ws, Access::Write, &from_rel.to_path_string())?;
    precheck(ws, Access::Write, &to_rel.to_path_string())?;

    let from = resolve(ws, &from_rel, Follow::NotLast)?;
    let from_path = from.path();
    let Some(from_meta) = from.meta else {
        return Err(os_error("move", &from_path, Errno::NOENT));
    };
    let is_dir = from_meta.kind == Kind::Dir;
    let rule = require(ws, Access::Write, &from.lexical, &from_path, is_dir)?;
    let to = resolve(ws, &to_rel, Follow::NotLast)?;
    let to_path = to.path();
    require(ws, Access::Write, &to.lexical, &to_path, is_dir)?;

    let response = |overwrote| {
        Outcome::new(
            MoveResponse {
                from: from_path.clone(),
                to: to_path.clone(),
                overwrote,
                info: None,
            },
            rule.clone(),
        )
    };
    if to_path == from_path {
        return Ok(response(false));
    }
    if is_dir && to_path.starts_with(&format!("{from_path}/")) {
        return Err(ToolError::invalid(format!(
            "cannot move `{from_path}` into itself (`{to_path}`); choose a destination outside it"
        )));
    }
    if let Some(to_meta) = &to.meta {
        if !req.overwrite {
            return Err(ToolError::new(
                Reason::AlreadyExists,
                format!("`{to_path}` already exists; pass overwrite to replace it, or choose another name"),
            )
            .with("path", &to_path));
        }
        check_hardlink(ws, to_meta, &to_path, Access::Write)?;
    }
    if is_dir {
        checked_tree(
            ws,
            &from_path,
            &from.lexical,
            Some((&to_path, &to.lexical)),
            "move",
        )?;
    }
    if !to.parent_exists() {
        if !req.create_parents {
            return Err(ToolError::new(
                Reason::NotFound,
                format!(
                    "directory `{}` does not exist; pass create_parents to create it",
                    display(split_last(&to_path).0)
                ),
            )
            .with("path", &to_path));
        }
        create_missing(
            ws,
            &to.comps[..to.comps.len() - 1],
            to.existing,
            (&to_path, false),
        )?;
    }

    let _locks = lock_paths(ws, &[&from_path, &to_path]);
    let (from_dir, from_name) = split_last(&from_path);
    let (to_dir, to_name) = split_last(&to_path);
    let from_parent = open_dir(ws, from_dir)?;
    let to_parent = open_dir(ws, to_dir)?;
    match stat_in(&from_parent, from_name) {
        Ok(now) if now.same_inode(&from_meta) => {}
        Ok(_) => {
            return Err(ToolError::new(
                Reason::Unavailable,
                format!("`{from_path}` was replaced during the call; retry"),
            )
            .with("path", &from_path));
        }
        Err(e) => return Err(os_error("move", &from_path, e)),
    }
    let overwrote = if req.overwrite {
        stat_in(&to_parent, to_name).is_ok()
    } else {
        false
    };
    let flags = if req.overwrite {
        RenameFlags::empty()
    } else {
        RenameFlags::NOREPLACE
    };
    let renamed =
        match rustix::fs::renameat_with(&from_parent, from_name, &to_parent, to_name, flags) {
            // The filesystem lacks RENAME_NOREPLACE: check, then rename (only
            // racy against writers outside this daemon).
            Err(Errno::INVAL) if !req.overwrite && !is_dir => match stat_in(&to_parent, to_name) {
                Ok(_) => Err(Errno::EXIST),
                Err(_) => rustix::fs::renameat(&from_parent, from_name, &to_parent, to_name),
            },
            other => other,
        };
    renamed.map_err(|e| match e {
        Errno::EXIST => ToolError::new(
            Reason::AlreadyExists,
            format!("`{to_path}` already exists; pass overwrite to replace it, or choose another name"),
        )
        .with("path", &to_path),
        Errno::NOTEMPTY => ToolError::new(
            Reason::DirectoryNotEmpty,
            format!("directory `{to_path}` is not empty, so it cannot be replaced; remove it first"),
        )
        .with("path", &to_path),
        Errno::XDEV => ToolError::invalid(format!(
            "`{from_path}` and `{to_path}` are on different filesystems; they cannot be moved between"
        )),
        Errno::INVAL => ToolError::invalid(format!(
            "cannot move `{from_path}` to `{to_path}` (a directory cannot move into itself)"
        )),
        Errno::NOTDIR | Errno::ISDIR => ToolError::new(
            if e == Errno::ISDIR { Reason::IsADirectory } else { Reason::NotADirectory },
            format!("cannot replace `{to_path}`: a file and a directory cannot replace each other"),
        )
        .with("path", &to_path),
        e => os_error("move", &to_path, e),
    })?;
    // Durability only; the rename has happened.
    let _ = rustix::fs::fsync(&to_parent);
    let _ = rustix::fs::fsync(&from_parent);
    Ok(response(overwrote))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::testutil::Fixture;
    use std::os::unix::fs::symlink;

    fn req(from: &str, to: &str) -> MoveRequest {
        MoveRequest {
            from: from.to_string(),
            to: to.to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn moves_and_overwrites_only_when_asked() {
        let fx = Fixture::new();
        fx.file("a.txt", "a");
        fx.file("b.txt", "b");
        let r = move_path(&fx.ws, &fx.limits, &req("a.txt", "c.txt"))
            .unwrap()
            .response;
        assert_eq!(
            (r.from.as_str(), r.to.as_str(), r.overwrote),
            ("a.txt", "c.txt", false)
        );
        let err = move_path(&fx.ws, &fx.limits, &req("c.txt", "b.txt")).unwrap_err();
        assert_eq!(err.reason, Reason::AlreadyExists);
        let mut r = req("c.txt", "b.txt");
        r.overwrite = true;
        assert!(
            move_path(&fx.ws, &fx.limits, &r)
                .unwrap()
                .response
                .overwrote
        );
        assert_eq!(fx.read("b.txt"), b"a");
        let mut r = req("b.txt", "x/y/b.txt");
        assert_eq!(
            move_path(&fx.ws, &fx.limits, &r).unwrap_err().reason,
            Reason::NotFound
        );
        r.create_parents = true;
        move_path(&fx.ws, &fx.limits, &r).unwrap();
        assert_eq!(fx.read("x/y/b.txt"), b"a");
        move_path(&fx.ws, &fx.limits, &req("x", "z")).unwrap();
        assert_eq!(fx.read("z/y/b.txt"), b"a");
        let err = move_path(&fx.ws, &fx.limits, &req("z", "z/y/inner")).unwrap_err();
        assert_eq!(err.reason, Reason::InvalidArgument);
    }

    #[test]
    fn denied_files_cannot_be_carried_out() {
        let fx = Fixture::new();
        fx.file(".env", "S=1");
        fx.file("proj/.env", "S=1");
        fx.file("proj/ok.txt", "x");
        fx.file("keys/k", "x");
        for (from, to) in [
            (".env", "env.txt"),
            ("proj/../.env", "env.txt"),
            ("proj", "proj2"),
            ("proj/ok.txt", "secrets/ok.txt"),
            ("keys", "secrets"),
        ] {
            let err = move_path(&fx.ws, &fx.limits, &req(from, to)).unwrap_err();
            assert_eq!(err.reason, Reason::PolicyDenied, "{from} -> {to}");
        }
        assert!(fx.exists(".env") && fx.exists("proj/.env") && fx.exists("keys/k"));
    }

    #[test]
    fn escapes() {
        let fx = Fixture::new();
        fx.file("a.txt", "a");
        symlink(fx.outside(""), fx.abs("out")).unwrap();
        symlink("/etc/passwd", fx.abs("abs")).unwrap();
        for (from, to, reason) in [
            ("a.txt", "../a.txt", Reason::PathOutsideWorkspace),
            ("a.txt", "/tmp/a.txt", Reason::InvalidArgument),
            ("a.txt", "out/a.txt", Reason::SymlinkEscape),
            ("out/x", "a2.txt", Reason::SymlinkEscape),
        ] {
            let err = move_path(&fx.ws, &fx.limits, &req(from, to)).unwrap_err();
            assert_eq!(err.reason, reason, "{from} -> {to}");
        }
        assert_eq!(std::fs::read_dir(fx.outside("")).unwrap().count(), 0);
        // A symlink is moved as itself.
        move_path(&fx.ws, &fx.limits, &req("abs", "abs2")).unwrap();
        assert_eq!(
            std::fs::read_link(fx.abs("abs2")).unwrap().to_str(),
            Some("/etc/passwd")
        );
    }
}
