//! Policy checks for the file tools.
//!
//! Every check is made on both the requested (lexical) path and the
//! canonical one, so a deny glob holds whichever name a file is reached
//! through (`./x`, `a/../x`, a symlink). A write to a read-only workspace is
//! reported as `READ_ONLY_WORKSPACE` (with the read-only rule in the `rule`
//! metadata) rather than `POLICY_DENIED`, so an agent can tell "this whole
//! workspace is read-only" from "this path is protected".

use super::meta::{Kind, Meta};
use super::path::display;
use crate::error::{Reason, ToolError, ToolResult};
use crate::policy::{Access, Decision, WorkspacePolicy};
use std::sync::Arc;

/// Rule named when a hardlinked file belongs to someone else (F9).
pub(crate) const HARDLINK_RULE: &str =
    "builtin: hardlink to a file the workspace owner does not own";
/// Rule named when a file's identity is one a deny glob matched when the
/// workspace was last surveyed (it was renamed or linked since).
pub(crate) const DENIED_IDENTITY_RULE: &str =
    "builtin: this file is a denied file under another name";
/// Rule named when a hardlinked file is read under a policy with deny globs.
pub(crate) const HARDLINK_DENY_RULE: &str =
    "builtin: a hardlinked file may be another name for a denied file";

/// Before touching the filesystem: refuse a requested path that a deny glob
/// (or a read-only workspace, for writes) already rules out, so a missing
/// denied file reads as denied, not as "not found".
pub(crate) fn precheck(ws: &WorkspacePolicy, access: Access, lexical: &str) -> ToolResult<()> {
    if access == Access::Write {
        read_only_check(ws)?;
    }
    if let Some(rule) = ws.rules.denied_by(lexical) {
        return Err(denial(access, lexical, rule));
    }
    Ok(())
}

/// Requires `access` to both `lexical` and `canonical`; returns the rule
/// that allowed the canonical path.
pub(crate) fn require(
    ws: &WorkspacePolicy,
    access: Access,
    lexical: &str,
    canonical: &str,
    is_dir: bool,
) -> ToolResult<Arc<str>> {
    if access == Access::Write {
        read_only_check(ws)?;
    }
    let decision = decide(ws, access, canonical, is_dir);
    if !decision.allowed {
        return Err(denial(access, canonical, &decision.rule).with("requested", lexical));
    }
    if lexical != canonical {
        let lexical_decision = decide(ws, access, lexical, is_dir);
        if !lexical_decision.allowed {
            return Err(denial(access, lexical, &lexical_decision.rule));
        }
    }
    Ok(decision.rule)
}

/// The policy's decision ([`crate::policy::FileRules::check`], the one
/// place it is made), then what the workspace's last survey found: writes
/// into git metadata that a gitfile or `commondir` redirects to.
fn decide(ws: &WorkspacePolicy, access: Access, path: &str, is_dir: bool) -> Decision {
    let decision = ws.rules.check(access, path, is_dir);
    if decision.allowed && access == Access::Write {
        if let Some(rule) = super::survey::git_redirect_rule(ws, path) {
            return Decision::deny(rule);
        }
    }
    decision
}

/// Whether `access` to the path is allowed, under both names.
pub(crate) fn allows(
    ws: &WorkspacePolicy,
    access: Access,
    lexical: &str,
    canonical: &str,
    is_dir: bool,
) -> bool {
    require(ws, access, lexical, canonical, is_dir).is_ok()
}

fn read_only_check(ws: &WorkspacePolicy) -> ToolResult<()> {
    if !(ws.read_only || ws.rules.is_read_only()) {
        return Ok(());
    }
    let decision = ws.rules.check(Access::Write, "", true);
    let rule = if decision.allowed {
        format!("workspace \"{}\" is read-only", ws.name)
    } else {
        decision.rule.to_string()
    };
    Err(ToolError::new(
        Reason::ReadOnlyWorkspace,
        format!(
            "workspace `{}` is read-only; nothing in it can be created, changed or removed",
            ws.name
        ),
    )
    .with("rule", rule)
    .with("workspace", &ws.name))
}

fn denial(access: Access, path: &str, rule: &str) -> ToolError {
    let verb = match access {
        Access::Read => "reading",
        Access::Write => "changing",
    };
    ToolError::denied(
        rule,
        format!(
            "policy rule `{rule}` does not allow {verb} `{}`; choose a path the policy allows",
            display(path)
        ),
    )
    .with("path", path)
}

/// F9/F10: a file with several names. Replacing one is safe (writes rename
/// a new file into place), but its content is refused:
/// - when its owner is not the workspace owner (a hardlink to a file from
///   outside), for reads and replacements alike;
/// - for reads, whenever the policy has deny globs: the file may be another
///   name for a denied one, and its other names cannot be found cheaply.
pub(crate) fn check_hardlink(
    ws: &WorkspacePolicy,
    meta: &Meta,
    path: &str,
    access: Access,
) -> ToolResult<()> {
    if access == Access::Read
        && meta.kind == Kind::File
        && super::survey::is_denied_identity(ws, meta.dev, meta.ino)
    {
        return Err(ToolError::denied(
            DENIED_IDENTITY_RULE,
            format!(
                "`{}` is a file a deny rule protected under its earlier name (it was renamed or \
                 linked since); its content is not readable under any name",
                display(path)
            ),
        )
        .with("path", path));
    }
    if meta.kind != Kind::File || meta.nlink <= 1 {
        return Ok(());
    }
    if meta.uid != ws.owner_uid {
        return Err(ToolError::denied(
            HARDLINK_RULE,
            format!(
                "`{}` is a hardlink to a file owned by uid {}, not the workspace owner; it cannot be read or replaced through the workspace",
                display(path),
                meta.uid
            ),
        )
        .with("path", path));
    }
    if access == Access::Read && ws.rules.has_deny() {
        return Err(ToolError::denied(
            HARDLINK_DENY_RULE,
            format!(
                "`{}` has {} hard links and may be another name for a file a deny rule protects; \
                 read a copy instead (e.g. `cp` it in a command), or replace it with WriteFile",
                display(path),
                meta.nlink
            ),
        )
        .with("path", path));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::testutil::{Fixture, Rules};

    #[test]
    fn both_names_must_be_allowed() {
        let fx = Fixture::new();
        assert!(require(&fx.ws, Access::Read, "a/b", "a/b", false).is_ok());
        let err = require(&fx.ws, Access::Read, "link", "x/.env", false).unwrap_err();
        assert_eq!(err.reason, Reason::PolicyDenied);
        assert_eq!(err.metadata_value("rule"), Some("test: deny[\"**/.env\"]"));
        let err = require(&fx.ws, Access::Read, "secrets/k", "public/k", false).unwrap_err();
        assert_eq!(err.reason, Reason::PolicyDenied);
        // A directory a `dir/**` deny glob empties is denied itself.
        assert!(require(&fx.ws, Access::Read, "secrets", "secrets", true).is_err());
        assert!(require(&fx.ws, Access::Read, "secrets", "secrets", false).is_ok());
        assert!(precheck(&fx.ws, Access::Read, "a/.env").is_err());
    }

    #[test]
    fn read_only_workspace_refuses_writes() {
        let fx = Fixture::with_rules(Rules {
            read_only: true,
            ..Rules::default()
        });
        let err = require(&fx.ws, Access::Write, "a", "a", false).unwrap_err();
        assert_eq!(err.reason, Reason::ReadOnlyWorkspace);
        assert!(err.metadata_value("rule").unwrap().contains("read-only"));
        assert!(require(&fx.ws, Access::Read, "a", "a", false).is_ok());
    }
}
