//! Paths as agents give them, mapped to the daemon's (workspace,
//! workspace-relative path) form: a relative path, `/workspace/…` (where
//! commands see the default workspace) or a host path beneath a workspace
//! root. The mapping is lexical only: the daemon still resolves the result
//! beneath the root and refuses `..` escapes, symlinks out and denied globs,
//! so no policy check is repeated here. Any other absolute path is passed on
//! unchanged, for the daemon to refuse with its own reason.

use super::grants::Grants;
use std::path::Path;

/// Where commands see their workspace.
pub const SANDBOX_WORKSPACE: &str = "/workspace";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Workspace name; empty means the agent's default workspace.
    pub workspace: String,
    pub path: String,
}

pub fn resolve(grants: &Grants, given: &str) -> Target {
    let in_default = |path: &str| Target {
        workspace: String::new(),
        path: path.to_string(),
    };
    let given_path = Path::new(given);
    if !given_path.is_absolute() {
        return in_default(if given == "." { "" } else { given });
    }
    if let Ok(rest) = given_path.strip_prefix(SANDBOX_WORKSPACE) {
        return in_default(&rest.to_string_lossy());
    }
    // The longest root wins, so a workspace nested in another is found.
    let beneath = grants
        .workspaces
        .iter()
        .filter_map(|w| {
            given_path
                .strip_prefix(&w.path)
                .ok()
                .map(|rest| (w, rest.to_string_lossy().into_owned()))
        })
        .max_by_key(|(w, _)| w.path.as_os_str().len());
    match beneath {
        Some((w, rest)) => Target {
            workspace: w.name.clone(),
            path: rest,
        },
        None => in_default(given),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::grants::{Commands, Workspace};
    use std::path::PathBuf;

    fn grants() -> Grants {
        let ws = |name: &str, path: &str| Workspace {
            name: name.into(),
            path: PathBuf::from(path),
            read_only: false,
        };
        Grants {
            agent: "a".into(),
            workspaces: vec![ws("main", "/srv/ws"), ws("inner", "/srv/ws/vendor")],
            commands: Commands::Unstated,
            sessions: true,
        }
    }

    fn t(ws: &str, path: &str) -> Target {
        Target {
            workspace: ws.into(),
            path: path.into(),
        }
    }

    #[test]
    fn relative_paths_stay_in_the_default_workspace() {
        assert_eq!(resolve(&grants(), "src/a.rs"), t("", "src/a.rs"));
        assert_eq!(resolve(&grants(), "."), t("", ""));
        assert_eq!(resolve(&grants(), ""), t("", ""));
    }

    #[test]
    fn sandbox_paths_map_to_the_default_workspace() {
        assert_eq!(
            resolve(&grants(), "/workspace/notes/plan.md"),
            t("", "notes/plan.md")
        );
        assert_eq!(resolve(&grants(), "/workspace"), t("", ""));
        assert_eq!(resolve(&grants(), "/workspace/"), t("", ""));
    }

    #[test]
    fn host_paths_map_to_their_workspace_the_longest_root_first() {
        assert_eq!(
            resolve(&grants(), "/srv/ws/src/a.rs"),
            t("main", "src/a.rs")
        );
        assert_eq!(resolve(&grants(), "/srv/ws"), t("main", ""));
        assert_eq!(resolve(&grants(), "/srv/ws/vendor/x"), t("inner", "x"));
    }

    #[test]
    fn lookalikes_are_not_mapped_and_escapes_are_left_for_the_daemon() {
        // Prefix siblings are other directories: passed on, refused there.
        assert_eq!(resolve(&grants(), "/workspacex/a"), t("", "/workspacex/a"));
        assert_eq!(
            resolve(&grants(), "/srv/ws-evil/f"),
            t("", "/srv/ws-evil/f")
        );
        assert_eq!(resolve(&grants(), "/etc/passwd"), t("", "/etc/passwd"));
        // `..` stays in the relative path, where the daemon refuses it.
        assert_eq!(resolve(&grants(), "/workspace/../etc"), t("", "../etc"));
        assert_eq!(resolve(&grants(), "/srv/ws/../x"), t("main", "../x"));
    }
}
