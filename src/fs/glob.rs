//! Glob: paths below a directory matching a pattern, with the same
//! filtering as ListDir. The pattern is matched against the path relative to
//! the search directory, with the policy's glob syntax (`*` does not cross
//! `/`, `**` does).

use super::list::{directory_start, sort_entries};
use super::walk::{Filter, Flow, Start, WalkOptions, walk};
use super::{MAX_SCAN_ENTRIES, Outcome};
use crate::error::{ToolError, ToolResult};
use crate::policy::compile::compile_glob;
use crate::policy::{Limits, WorkspacePolicy};
use crate::proto::{DirEntry, GlobRequest, GlobResponse, SortOrder};

pub const DEFAULT_MAX_RESULTS: usize = 1000;
pub const MAX_RESULTS_CAP: usize = 10_000;

pub fn glob(
    ws: &WorkspacePolicy,
    _limits: &Limits,
    req: &GlobRequest,
) -> ToolResult<Outcome<GlobResponse>> {
    let matcher = compile_pattern(&req.pattern)?;
    let sort = match SortOrder::try_from(req.sort) {
        Ok(SortOrder::Unspecified) => SortOrder::Mtime,
        Ok(SortOrder::Name) => SortOrder::Name,
        Ok(SortOrder::Mtime) => SortOrder::Mtime,
        _ => {
            return Err(ToolError::invalid(format!(
                "sort order {} is not supported by glob; use MTIME (newest first) or NAME",
                req.sort
            )));
        }
    };
    let max = match req.max_results {
        0 => DEFAULT_MAX_RESULTS,
        n => usize::try_from(n)
            .unwrap_or(MAX_RESULTS_CAP)
            .min(MAX_RESULTS_CAP),
    };
    let ((canonical, lexical), rule) = directory_start(ws, &req.path)?;
    let opts = WalkOptions {
        max_depth: pattern_depth(&req.pattern),
        filter: Filter::Agent {
            include_hidden: req.include_hidden,
            respect_gitignore: req.respect_gitignore.unwrap_or(false),
        },
        max_entries: MAX_SCAN_ENTRIES,
    };
    let mut found = Vec::new();
    let stats = walk(
        ws,
        &Start {
            canonical: &canonical,
            lexical: &lexical,
        },
        &opts,
        |e| {
            if matcher.is_match(e.rel) {
                found.push(DirEntry {
                    path: e.path.to_string(),
                    mtime: if sort == SortOrder::Mtime {
                        e.meta().map(|m| m.mtime())
                    } else {
                        None
                    },
                    ..Default::default()
                });
            }
            Ok(Flow::Continue)
        },
    )?;
    sort_entries(&mut found, sort);
    let truncated = found.len() > max || stats.truncated;
    found.truncate(max);
    Ok(Outcome::new(
        GlobResponse {
            paths: found.into_iter().map(|e| e.path).collect(),
            truncated,
            info: None,
        },
        rule,
    ))
}

fn compile_pattern(pattern: &str) -> ToolResult<globset::GlobMatcher> {
    if pattern.is_empty() {
        return Err(ToolError::invalid(
            "pattern is empty; give a glob such as `**/*.rs`",
        ));
    }
    if pattern.starts_with('/') || pattern.split('/').any(|c| c == "..") {
        return Err(ToolError::invalid(format!(
            "pattern `{pattern}` must be relative to `path` and must not contain `..`; set `path` to choose where to search"
        )));
    }
    compile_glob(pattern)
        .map(|g| g.compile_matcher())
        .map_err(|e| ToolError::invalid(format!("pattern `{pattern}` is not a valid glob: {e}")))
}

/// How deep a pattern can reach: unlimited with `**`, otherwise at most one
/// level per `/` plus one (an upper bound, also for `{a,b/c}`).
fn pattern_depth(pattern: &str) -> usize {
    if pattern.contains("**") {
        usize::MAX
    } else {
        pattern.matches('/').count() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Reason;
    use crate::fs::testutil::Fixture;
    use std::os::unix::fs::symlink;

    fn req(pattern: &str, path: &str) -> GlobRequest {
        GlobRequest {
            pattern: pattern.to_string(),
            path: path.to_string(),
            sort: SortOrder::Name as i32,
            ..Default::default()
        }
    }

    #[test]
    fn matches_relative_to_the_search_path() {
        let fx = Fixture::new();
        fx.file("src/a.rs", "");
        fx.file("src/m/b.rs", "");
        fx.file("src/m/c.txt", "");
        fx.file("src/.env.rs", "");
        fx.file("src/key.pem", "");
        symlink(fx.outside(""), fx.abs("src/out")).unwrap();
        let r = glob(&fx.ws, &fx.limits, &req("**/*.rs", "src"))
            .unwrap()
            .response;
        assert_eq!(r.paths, ["src/a.rs", "src/m/b.rs"]);
        let r = glob(&fx.ws, &fx.limits, &req("*.rs", "src"))
            .unwrap()
            .response;
        assert_eq!(r.paths, ["src/a.rs"]);
        let r = glob(&fx.ws, &fx.limits, &req("src/*", ""))
            .unwrap()
            .response;
        assert_eq!(r.paths, ["src/a.rs", "src/m", "src/out"]);
        let r = glob(&fx.ws, &fx.limits, &req("**/*.pem", ""))
            .unwrap()
            .response;
        assert!(r.paths.is_empty());
    }

    #[test]
    fn newest_first_and_truncation() {
        let fx = Fixture::new();
        fx.file("old.txt", "");
        fx.file("new.txt", "");
        let old = std::fs::File::options()
            .write(true)
            .open(fx.abs("old.txt"))
            .unwrap();
        old.set_modified(std::time::UNIX_EPOCH).unwrap();
        let mut r = req("*.txt", "");
        r.sort = 0;
        let out = glob(&fx.ws, &fx.limits, &r).unwrap().response;
        assert_eq!(out.paths, ["new.txt", "old.txt"]);
        r.max_results = 1;
        let out = glob(&fx.ws, &fx.limits, &r).unwrap().response;
        assert_eq!((out.paths.len(), out.truncated), (1, true));
    }

    #[test]
    fn bad_patterns() {
        let fx = Fixture::new();
        for p in ["", "/etc/*", "../*", "a[", "{a"] {
            let err = glob(&fx.ws, &fx.limits, &req(p, "")).unwrap_err();
            assert_eq!(err.reason, Reason::InvalidArgument, "{p}");
        }
    }
}
