//! Validation and lexical normalisation of request paths.
//!
//! Nothing here touches the filesystem: this only turns the string an agent
//! sent into clean components, or refuses it. Symlinks are dealt with later
//! by [`super::resolve`].

use super::{MAX_COMPONENT_BYTES, MAX_PATH_BYTES};
use crate::error::{Reason, ToolError, ToolResult};
use crate::shell::WORKSPACE_MOUNT;
use std::path::Path;

/// A workspace-relative path lexically normalised (`a/./b/../c` is `a/c`);
/// None when it is absolute or climbs above the root.
pub fn normalize_relative(raw: &str) -> Option<String> {
    RelPath::parse_with(raw, None)
        .ok()
        .map(|r| r.to_path_string())
}

/// The workspace-relative form of an absolute path an agent gave: one under
/// `/workspace` (the path commands see the workspace at) or under the
/// workspace's host root as the policy names it. None for any other
/// absolute path. Lexical, whole components only: `/workspacex/a` and a
/// sibling directory sharing the root's name as a prefix are not inside.
/// A `..` in the rest is kept for the caller's usual check (it may not
/// climb above the root). The one place these forms are decided, for the
/// file tools and for `policy explain` / `policy test`.
pub fn workspace_relative(raw: &str, host_root: &Path) -> Option<String> {
    let path = Path::new(raw);
    let rest = path
        .strip_prefix(WORKSPACE_MOUNT)
        .or_else(|_| path.strip_prefix(host_root))
        .ok()?;
    // Path's components drop `.` and doubled slashes; `..` stays.
    let parts: Vec<&str> = rest
        .components()
        .map(|c| c.as_os_str().to_str().expect("a part of a str"))
        .collect();
    Some(parts.join("/"))
}

/// A workspace-relative path after lexical normalisation: no empty, `.` or
/// `..` components. No components means the workspace root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RelPath {
    comps: Vec<String>,
}

impl RelPath {
    /// Parses a path an agent gave for the workspace rooted at `root` (its
    /// host path): relative, or absolute in one of the forms
    /// [`workspace_relative`] maps. The empty string (or `.`) is the root.
    pub(crate) fn parse_in(root: &Path, raw: &str) -> ToolResult<Self> {
        Self::parse_with(raw, Some(root))
    }

    /// [`RelPath::parse_in`] for a path that must name something below the
    /// root (a file to read or write, an entry to move or remove).
    pub(crate) fn parse_entry_in(root: &Path, raw: &str) -> ToolResult<Self> {
        Self::entry(raw, Some(root))
    }

    /// Parses a workspace-relative path where the empty string (or `.`)
    /// means the root; every absolute path is refused.
    #[cfg(test)]
    pub(crate) fn parse(raw: &str) -> ToolResult<Self> {
        Self::parse_with(raw, None)
    }

    fn parse_with(raw: &str, root: Option<&Path>) -> ToolResult<Self> {
        if raw.len() > MAX_PATH_BYTES {
            return Err(ToolError::invalid(format!(
                "path is {} bytes long, more than the {MAX_PATH_BYTES}-byte limit; use a shorter path",
                raw.len()
            )));
        }
        if raw.contains('\0') {
            return Err(ToolError::invalid(format!(
                "path `{}` contains a NUL byte; remove it",
                raw.escape_debug()
            )));
        }
        let mapped;
        let relative = if raw.starts_with('/') {
            mapped = root.and_then(|root| workspace_relative(raw, root));
            match (&mapped, root) {
                (Some(rel), _) => rel.as_str(),
                (None, Some(root)) => {
                    return Err(ToolError::invalid(format!(
                        "path `{raw}` is absolute and not inside this workspace; give a path \
                         relative to the workspace root, or one under {WORKSPACE_MOUNT} (where \
                         commands see it) or under {}",
                        root.display()
                    ))
                    .with("path", raw));
                }
                (None, None) => {
                    return Err(ToolError::invalid(format!(
                        "path `{raw}` is absolute; give a path relative to the workspace root"
                    ))
                    .with("path", raw));
                }
            }
        } else {
            raw
        };
        let mut comps: Vec<String> = Vec::new();
        for comp in relative.split('/') {
            match comp {
                "" | "." => {}
                ".." => {
                    if comps.pop().is_none() {
                        return Err(ToolError::new(
                            Reason::PathOutsideWorkspace,
                            format!(
                                "path `{raw}` leaves the workspace; give a path relative to the workspace root"
                            ),
                        )
                        .with("path", raw));
                    }
                }
                name => {
                    if name.len() > MAX_COMPONENT_BYTES {
                        return Err(ToolError::invalid(format!(
                            "a component of path `{raw}` is {} bytes long, more than the {MAX_COMPONENT_BYTES}-byte limit; use a shorter name",
                            name.len()
                        ))
                        .with("path", raw));
                    }
                    comps.push(name.to_string());
                }
            }
        }
        Ok(RelPath { comps })
    }

    /// Parses a path that must name something below the root (a file to
    /// read or write, an entry to move or remove).
    pub(crate) fn parse_entry(raw: &str) -> ToolResult<Self> {
        Self::entry(raw, None)
    }

    fn entry(raw: &str, root: Option<&Path>) -> ToolResult<Self> {
        if raw.is_empty() {
            return Err(ToolError::invalid(
                "path is empty; give a path relative to the workspace root, e.g. `src/main.rs`",
            ));
        }
        let rel = Self::parse_with(raw, root)?;
        if rel.is_root() {
            return Err(ToolError::invalid(format!(
                "path `{raw}` names the workspace root itself; give a path below it"
            ))
            .with("path", raw));
        }
        Ok(rel)
    }

    pub(crate) fn components(&self) -> &[String] {
        &self.comps
    }

    pub(crate) fn is_root(&self) -> bool {
        self.comps.is_empty()
    }

    /// The `/`-joined form policy rules are matched against (`""` for root).
    pub(crate) fn to_path_string(&self) -> String {
        self.comps.join("/")
    }
}

/// Joins a workspace-relative directory path and a name below it.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Splits a non-empty workspace-relative path into its parent and last name.
pub(crate) fn split_last(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

/// `path` shown to the agent: the root is shown as `.`.
pub(crate) fn display(path: &str) -> &str {
    if path.is_empty() { "." } else { path }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &str) -> String {
        RelPath::parse(raw).unwrap().to_path_string()
    }

    #[test]
    fn absolute_forms_map_to_the_workspace_relative_path() {
        let root = Path::new("/srv/ws");
        let rel = |raw: &str| RelPath::parse_in(root, raw).map(|r| r.to_path_string());
        assert_eq!(rel("/workspace/notes/plan.md").unwrap(), "notes/plan.md");
        assert_eq!(rel("/workspace").unwrap(), "");
        assert_eq!(rel("/workspace/").unwrap(), "");
        assert_eq!(rel("//workspace/./a//b").unwrap(), "a/b");
        assert_eq!(rel("/srv/ws/src/main.rs").unwrap(), "src/main.rs");
        assert_eq!(rel("/srv/ws").unwrap(), "");
        assert_eq!(rel("/workspace/a/../b").unwrap(), "b");
        for outside in [
            "/workspace/../etc/passwd",
            "/srv/ws/../ws-evil/f",
            "/workspace/a/../../x",
        ] {
            assert_eq!(
                rel(outside).unwrap_err().reason,
                Reason::PathOutsideWorkspace,
                "{outside}"
            );
        }
        for other in [
            "/etc/passwd",
            "/workspacex/a",
            "/srv/ws-evil/f",
            "/srv/wsx",
            "/srv",
            "/",
        ] {
            assert_eq!(
                rel(other).unwrap_err().reason,
                Reason::InvalidArgument,
                "{other}"
            );
        }
        // The entry form still refuses the root itself, however named.
        assert!(RelPath::parse_entry_in(root, "/workspace").is_err());
        assert_eq!(
            RelPath::parse_entry_in(root, "/workspace/a")
                .unwrap()
                .to_path_string(),
            "a"
        );
        // Without a workspace, every absolute path is refused.
        assert!(RelPath::parse("/workspace/a").is_err());
    }

    #[test]
    fn normalises_dots_and_slashes() {
        assert_eq!(parsed(""), "");
        assert_eq!(parsed("."), "");
        assert_eq!(parsed("./a//b/"), "a/b");
        assert_eq!(parsed("a/../b"), "b");
        assert_eq!(parsed("a/b/../../c"), "c");
    }

    #[test]
    fn refuses_leaving_the_root_anywhere() {
        for raw in ["..", "../x", "a/../../x", "a/b/../../..", "x/.."] {
            let res = RelPath::parse(raw);
            if raw == "x/.." {
                assert!(res.unwrap().is_root());
                continue;
            }
            assert_eq!(
                res.unwrap_err().reason,
                Reason::PathOutsideWorkspace,
                "{raw}"
            );
        }
    }

    #[test]
    fn refuses_bad_input() {
        let long_comp = "x".repeat(256);
        let long_path = "a/".repeat(2100);
        for raw in [
            "/etc/passwd",
            "a\0b",
            long_comp.as_str(),
            long_path.as_str(),
        ] {
            let err = RelPath::parse(raw).unwrap_err();
            assert_eq!(err.reason, Reason::InvalidArgument, "{raw}");
        }
        assert!(RelPath::parse(&"x".repeat(255)).is_ok());
    }

    #[test]
    fn entry_paths_must_name_something() {
        for raw in ["", ".", "a/.."] {
            let err = RelPath::parse_entry(raw).unwrap_err();
            assert_eq!(err.reason, Reason::InvalidArgument, "{raw:?}");
        }
        assert_eq!(
            RelPath::parse_entry("a/b").unwrap().components(),
            &["a".to_string(), "b".to_string()]
        );
    }

    #[test]
    fn split_and_join() {
        assert_eq!(split_last("a/b/c"), ("a/b", "c"));
        assert_eq!(split_last("c"), ("", "c"));
        assert_eq!(join("", "x"), "x");
        assert_eq!(join("a", "x"), "a/x");
    }
}
