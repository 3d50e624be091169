//! ListDir: the entries below a directory, filtered, sorted and paged.
//!
//! The walk collects every visible entry up to `depth` (bounded by
//! [`MAX_SCAN_ENTRIES`]), sorts them, and returns one page. The page token
//! is `o:<offset>` into that sorted listing; a listing that changes between
//! pages may repeat or skip entries.

use super::access::{precheck, require};
use super::meta::Kind;
use super::oserror::os_error;
use super::path::{RelPath, display};
use super::resolve::{Follow, resolve};
use super::walk::{Filter, Flow, Start, WalkOptions, walk};
use super::{MAX_SCAN_ENTRIES, Outcome};
use crate::error::{Reason, ToolError, ToolResult};
use crate::policy::{Access, Limits, WorkspacePolicy};
use crate::proto::{DirEntry, ListDirRequest, ListDirResponse, SortOrder};
use std::cmp::Ordering;

pub const DEFAULT_MAX_ENTRIES: usize = 1000;
pub const MAX_ENTRIES_CAP: usize = 10_000;

pub fn list_dir(
    ws: &WorkspacePolicy,
    _limits: &Limits,
    req: &ListDirRequest,
) -> ToolResult<Outcome<ListDirResponse>> {
    let sort = SortOrder::try_from(req.sort).map_err(|_| {
        ToolError::invalid(format!(
            "unknown sort order {}; use NAME, MTIME or SIZE",
            req.sort
        ))
    })?;
    let offset = parse_page_token(&req.page_token)?;
    let page = match req.max_entries {
        0 => DEFAULT_MAX_ENTRIES,
        n => usize::try_from(n)
            .unwrap_or(MAX_ENTRIES_CAP)
            .min(MAX_ENTRIES_CAP),
    };
    let (start, rule) = directory_start(ws, &req.path)?;

    let opts = WalkOptions {
        max_depth: usize::try_from(req.depth.max(1)).unwrap_or(usize::MAX),
        filter: Filter::Agent {
            include_hidden: req.include_hidden,
            respect_gitignore: req.respect_gitignore.unwrap_or(false),
        },
        max_entries: MAX_SCAN_ENTRIES,
    };
    let mut entries = Vec::new();
    let stats = walk(
        ws,
        &Start {
            canonical: &start.0,
            lexical: &start.1,
        },
        &opts,
        |e| {
            let meta = e.meta();
            entries.push(DirEntry {
                path: e.path.to_string(),
                kind: e.kind.entry_kind() as i32,
                size: meta.map_or(0, |m| if e.kind == Kind::Dir { 0 } else { m.size }),
                mtime: meta.map(|m| m.mtime()),
                depth: e.depth,
            });
            Ok(Flow::Continue)
        },
    )?;
    sort_entries(&mut entries, sort);
    let total = entries.len();
    let end = offset.saturating_add(page).min(total);
    let page_entries: Vec<DirEntry> = if offset < total {
        entries.drain(offset..end).collect()
    } else {
        Vec::new()
    };
    let next_page_token = if end < total {
        format!("o:{end}")
    } else {
        String::new()
    };
    Ok(Outcome::new(
        ListDirResponse {
            entries: page_entries,
            next_page_token,
            scan_truncated: stats.truncated,
            info: None,
        },
        rule,
    ))
}

/// Resolves the directory a listing, glob or grep starts from: its
/// (canonical, lexical) paths and the rule that allows reading it.
pub(crate) fn directory_start(
    ws: &WorkspacePolicy,
    raw: &str,
) -> ToolResult<((String, String), std::sync::Arc<str>)> {
    let rel = RelPath::parse_in(&ws.path, raw)?;
    precheck(ws, Access::Read, &rel.to_path_string())?;
    let res = resolve(ws, &rel, Follow::Last)?;
    let path = res.path();
    let rule = require(ws, Access::Read, &res.lexical, &path, true)?;
    match res.kind() {
        Some(Kind::Dir) => Ok(((path, res.lexical), rule)),
        Some(kind) => Err(ToolError::new(
            Reason::NotADirectory,
            format!(
                "`{}` is {}, not a directory; use read_file or stat for it",
                display(&path),
                kind.describe()
            ),
        )
        .with("path", &path)),
        None => Err(os_error("list", &path, rustix::io::Errno::NOENT)),
    }
}

fn parse_page_token(token: &str) -> ToolResult<usize> {
    if token.is_empty() {
        return Ok(0);
    }
    token
        .strip_prefix("o:")
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or_else(|| {
            ToolError::invalid(format!(
                "page_token `{}` is not one this daemon issued; pass next_page_token from the previous response, or nothing",
                token.escape_debug()
            ))
        })
}

/// Orders a listing: by path (tree order), newest first or largest first,
/// ties broken by path so pages are stable.
pub(crate) fn sort_entries(entries: &mut [DirEntry], sort: SortOrder) {
    let by_path = |a: &DirEntry, b: &DirEntry| a.path.split('/').cmp(b.path.split('/'));
    match sort {
        SortOrder::Unspecified | SortOrder::Name => entries.sort_by(by_path),
        SortOrder::Mtime => {
            entries.sort_by(|a, b| mtime_key(b).cmp(&mtime_key(a)).then_with(|| by_path(a, b)))
        }
        SortOrder::Size => entries.sort_by(|a, b| match b.size.cmp(&a.size) {
            Ordering::Equal => by_path(a, b),
            other => other,
        }),
    }
}

fn mtime_key(e: &DirEntry) -> (i64, i32) {
    e.mtime
        .as_ref()
        .map_or((i64::MIN, 0), |t| (t.seconds, t.nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::testutil::Fixture;
    use crate::proto::EntryKind;
    use std::os::unix::fs::symlink;

    fn req(path: &str) -> ListDirRequest {
        ListDirRequest {
            path: path.to_string(),
            ..Default::default()
        }
    }

    fn paths(r: &ListDirResponse) -> Vec<&str> {
        r.entries.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn lists_sorted_and_filtered() {
        let fx = Fixture::new();
        fx.file("b.txt", "12345");
        fx.file("a/x.txt", "1");
        fx.file(".env", "S=1");
        fx.file(".hidden", "");
        symlink("/etc", fx.abs("etc_link")).unwrap();
        let r = list_dir(&fx.ws, &fx.limits, &req("")).unwrap();
        assert_eq!(&*r.rule, "test: directories are traversable");
        let r = r.response;
        assert_eq!(paths(&r), ["a", "b.txt", "etc_link"]);
        assert_eq!(r.entries[2].kind, EntryKind::Symlink as i32);
        assert_eq!(r.entries[1].size, 5);

        let mut deep = req("");
        deep.depth = 2;
        deep.include_hidden = true;
        deep.sort = SortOrder::Size as i32;
        let r = list_dir(&fx.ws, &fx.limits, &deep).unwrap().response;
        assert_eq!(r.entries[0].path, "b.txt");
        assert!(paths(&r).contains(&"a/x.txt"));
        assert!(paths(&r).contains(&".hidden"));
        assert!(!paths(&r).contains(&".env"));
    }

    #[test]
    fn pages() {
        let fx = Fixture::new();
        for i in 0..5 {
            fx.file(&format!("f{i}"), "");
        }
        let mut r = req("");
        r.max_entries = 2;
        let mut seen = Vec::new();
        loop {
            let page = list_dir(&fx.ws, &fx.limits, &r).unwrap().response;
            seen.extend(page.entries.iter().map(|e| e.path.clone()));
            if page.next_page_token.is_empty() {
                break;
            }
            r.page_token = page.next_page_token;
        }
        assert_eq!(seen, ["f0", "f1", "f2", "f3", "f4"]);
        r.page_token = "garbage".into();
        assert_eq!(
            list_dir(&fx.ws, &fx.limits, &r).unwrap_err().reason,
            Reason::InvalidArgument
        );
    }

    #[test]
    fn refusals() {
        let fx = Fixture::new();
        fx.file("f", "");
        fx.file("secrets/a", "");
        symlink(fx.outside(""), fx.abs("out")).unwrap();
        for (p, reason) in [
            ("f", Reason::NotADirectory),
            ("missing", Reason::NotFound),
            ("secrets", Reason::PolicyDenied),
            ("out", Reason::SymlinkEscape),
            ("..", Reason::PathOutsideWorkspace),
        ] {
            let err = list_dir(&fx.ws, &fx.limits, &req(p)).unwrap_err();
            assert_eq!(err.reason, reason, "{p}");
        }
    }

    #[test]
    fn a_huge_directory_is_truncated_not_fatal() {
        let fx = Fixture::new();
        fx.dir("big");
        let dir = fx.abs("big");
        // Enough to pass the default page, fast to create.
        for i in 0..1500 {
            std::fs::File::create(dir.join(format!("{i:05}"))).unwrap();
        }
        let r = list_dir(&fx.ws, &fx.limits, &req("big")).unwrap().response;
        assert_eq!(r.entries.len(), DEFAULT_MAX_ENTRIES);
        assert_eq!(r.next_page_token, "o:1000");
        assert!(!r.scan_truncated);
    }
}
