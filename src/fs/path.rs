//! Validation and lexical normalisation of request paths.
//!
//! Nothing here touches the filesystem: this only turns the string an agent
//! sent into clean components, or refuses it. Symlinks are dealt with later
//! by [`super::resolve`].

use super::{MAX_COMPONENT_BYTES, MAX_PATH_BYTES};
use crate::error::{Reason, ToolError, ToolResult};

/// A workspace-relative path after lexical normalisation: no empty, `.` or
/// `..` components. No components means the workspace root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RelPath {
    comps: Vec<String>,
}

impl RelPath {
    /// Parses a path where the empty string (or `.`) means the root.
    pub(crate) fn parse(raw: &str) -> ToolResult<Self> {
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
        if raw.starts_with('/') {
            return Err(ToolError::invalid(format!(
                "path `{raw}` is absolute; give a path relative to the workspace root"
            ))
            .with("path", raw));
        }
        let mut comps: Vec<String> = Vec::new();
        for comp in raw.split('/') {
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
        if raw.is_empty() {
            return Err(ToolError::invalid(
                "path is empty; give a path relative to the workspace root, e.g. `src/main.rs`",
            ));
        }
        let rel = Self::parse(raw)?;
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
pub(crate) fn join(dir: &str, name: &str) -> String {
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
