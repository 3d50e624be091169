//! ListDir: the entries below a directory, filtered, sorted and paged.
//!
//! The first page walks every visible entry up to `depth` (bounded by
//! [`MAX_SCAN_ENTRIES`]) and sorts them; the pages after it come from a
//! short-lived snapshot of that listing, found by the page token, which also
//! carries a cursor (the last entry returned) for when the snapshot is gone.
//! [`super::list_pages`] says what a listing that changes between pages
//! shows.

use super::access::{precheck, require};
use super::list_pages::{self, Cursor, Listing, Query};
use super::meta::Kind;
use super::oserror::os_error;
use super::path::{RelPath, display};
use super::resolve::{Follow, resolve};
use super::walk::{Filter, Flow, Start, WalkOptions, walk};
use super::{MAX_SCAN_ENTRIES, Outcome};
use crate::error::{Reason, ToolError, ToolResult};
use crate::policy::{Access, Limits, WorkspacePolicy};
use crate::proto::{DirEntry, ListDirRequest, ListDirResponse, SortOrder};
use std::sync::Arc;

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
    let cursor = Cursor::parse(&req.page_token)?;
    let page = match req.max_entries {
        0 => DEFAULT_MAX_ENTRIES,
        n => usize::try_from(n)
            .unwrap_or(MAX_ENTRIES_CAP)
            .min(MAX_ENTRIES_CAP),
    };
    let (start, rule) = directory_start(ws, &req.path)?;
    let query = Query {
        canonical: start.0,
        lexical: start.1,
        depth: req.depth.max(1),
        include_hidden: req.include_hidden,
        respect_gitignore: req.respect_gitignore.unwrap_or(false),
        sort,
    };
    let kept = cursor
        .as_ref()
        .and_then(|c| list_pages::find(c.id, &ws.root, &query).map(|l| (c.id, l)));
    let (mut id, listing) = match kept {
        Some(found) => found,
        None => (0, list_all(ws, &query)?),
    };
    let entries = &listing.entries;
    let from = cursor
        .as_ref()
        .map_or(0, |c| list_pages::resume_at(entries, sort, &c.after));
    let end = from.saturating_add(page).min(entries.len());
    let page_entries = entries[from..end].to_vec();
    let next_page_token = match page_entries.last() {
        Some(last) if end < entries.len() => {
            if id == 0 {
                id = list_pages::keep(&ws.root, query, listing.clone());
            }
            Cursor {
                id,
                after: last.clone(),
            }
            .encode()
        }
        _ => {
            if id != 0 {
                list_pages::forget(id);
            }
            String::new()
        }
    };
    Ok(Outcome::new(
        ListDirResponse {
            entries: page_entries,
            next_page_token,
            scan_truncated: listing.scan_truncated,
            info: None,
        },
        rule,
    ))
}

/// Walks and sorts the whole listing `query` asks for.
fn list_all(ws: &WorkspacePolicy, query: &Query) -> ToolResult<Listing> {
    let opts = WalkOptions {
        max_depth: usize::try_from(query.depth).unwrap_or(usize::MAX),
        filter: Filter::Agent {
            include_hidden: query.include_hidden,
            respect_gitignore: query.respect_gitignore,
        },
        max_entries: MAX_SCAN_ENTRIES,
    };
    let mut entries = Vec::new();
    let stats = walk(
        ws,
        &Start {
            canonical: &query.canonical,
            lexical: &query.lexical,
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
    sort_entries(&mut entries, query.sort);
    Ok(Listing {
        entries: Arc::new(entries),
        scan_truncated: stats.truncated,
    })
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

/// Orders a listing: by path (tree order), newest first or largest first,
/// ties broken by path so pages are stable.
pub(crate) fn sort_entries(entries: &mut [DirEntry], sort: SortOrder) {
    entries.sort_by(list_pages::order(sort));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::list_pages::Cursor;
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
        assert!(r.next_page_token.starts_with("c:"), "{}", r.next_page_token);
        assert!(!r.scan_truncated);
    }

    /// Pages through a listing; `between` runs after each page.
    fn all_pages(
        fx: &Fixture,
        mut r: ListDirRequest,
        mut between: impl FnMut(usize, &str),
    ) -> Vec<String> {
        let mut seen = Vec::new();
        for n in 0.. {
            let page = list_dir(&fx.ws, &fx.limits, &r).unwrap().response;
            seen.extend(page.entries.iter().map(|e| e.path.clone()));
            if page.next_page_token.is_empty() {
                break;
            }
            between(n, &page.next_page_token);
            r.page_token = page.next_page_token;
        }
        seen
    }

    fn tree(fx: &Fixture) -> Vec<String> {
        let mut all = Vec::new();
        for d in ["a", "a/b", "c"] {
            fx.dir(d);
            all.push(d.to_string());
            for i in 0..9 {
                let f = format!("{d}/f{i}");
                fx.file(&f, "x".repeat(i));
                all.push(f);
            }
        }
        all
    }

    #[test]
    fn every_entry_exactly_once_across_pages_in_every_order() {
        let fx = Fixture::new();
        let all = tree(&fx);
        for sort in [SortOrder::Name, SortOrder::Size, SortOrder::Mtime] {
            let mut r = req("");
            r.depth = 5;
            r.max_entries = 4;
            r.sort = sort as i32;
            let seen = all_pages(&fx, r.clone(), |_, _| {});
            r.max_entries = 0;
            let one = list_dir(&fx.ws, &fx.limits, &r).unwrap().response;
            assert_eq!(seen, paths(&one), "{sort:?}: pages = one listing");
            let mut sorted = seen.clone();
            sorted.sort();
            let mut want = all.clone();
            want.sort();
            assert_eq!(sorted, want, "{sort:?}");
        }
    }

    #[test]
    fn pages_come_from_the_first_pages_snapshot() {
        let fx = Fixture::new();
        let all = tree(&fx);
        let mut r = req("");
        r.depth = 5;
        r.max_entries = 5;
        // Created after the first page: not listed; removed: still listed.
        let seen = all_pages(&fx, r, |n, _| {
            if n == 0 {
                fx.file("a/new", "");
                std::fs::remove_file(fx.abs("c/f8")).unwrap();
            }
        });
        let mut want = all.clone();
        want.sort_by(|a, b| a.split('/').cmp(b.split('/')));
        assert_eq!(seen, want);
    }

    #[test]
    fn without_the_snapshot_the_next_page_resumes_after_the_cursor() {
        let fx = Fixture::new();
        tree(&fx);
        let mut r = req("");
        r.depth = 5;
        r.max_entries = 5;
        let mut removed = Vec::new();
        let seen = all_pages(&fx, r, |n, token| {
            // The snapshot gone (expired, evicted, a restart) ...
            let cursor = Cursor::parse(token).unwrap().unwrap();
            list_pages::forget(cursor.id);
            if n == 0 {
                // ... and the tree changed: the cursor's own entry removed,
                // one added before it and one after.
                std::fs::remove_file(fx.abs(&cursor.after.path)).unwrap();
                removed.push(cursor.after.path.clone());
                fx.file("a/b/0-early", "");
                fx.file("c/z-late", "");
            }
        });
        let mut unique = seen.clone();
        unique.dedup();
        assert_eq!(unique, seen, "no entry twice");
        let mut sorted = seen.clone();
        sorted.sort_by(|a, b| a.split('/').cmp(b.split('/')));
        assert_eq!(sorted, seen, "in order");
        assert!(
            seen.contains(&"c/z-late".to_string()),
            "added after the cursor: listed"
        );
        assert!(
            !seen.contains(&"a/b/0-early".to_string()),
            "added before it: not"
        );
        // Everything that existed throughout is there.
        let now = list_dir(&fx.ws, &fx.limits, &{
            let mut r = req("");
            r.depth = 5;
            r
        })
        .unwrap()
        .response;
        for p in paths(&now) {
            if p != "a/b/0-early" {
                assert!(seen.iter().any(|s| s == p), "{p} skipped");
            }
        }
        assert_eq!(removed.len(), 1);
    }
}
