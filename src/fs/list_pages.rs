//! ListDir's pages: a cursor in the listing's own order, and a short-lived
//! snapshot of the sorted listing, so a page after the first costs what it
//! returns instead of a new walk and sort of the whole directory.
//!
//! The page token names the snapshot and the last entry returned (its sort
//! key and path: the order is total, ties broken by path). Consistency:
//! - while the snapshot lives (at most [`TTL`] since its last page, at most
//!   [`MAX_LISTINGS`] listings and [`MAX_CACHED_ENTRIES`] entries in all,
//!   dropped once its last page is served), pages come from it: every entry
//!   it holds is returned exactly once, in order; entries created since the
//!   first page are not listed and removed ones still are (with the
//!   metadata of the first page);
//! - when it is gone (expired, evicted, the daemon restarted, the policy
//!   reloaded), the next page walks again and resumes strictly after the
//!   cursor: no entry is returned twice, and none that existed throughout is
//!   skipped. In MTIME or SIZE order an entry whose mtime or size changed
//!   between pages may move across the cursor (repeated or skipped).
//!
//! A snapshot is found only with its random 128-bit id, by the same
//! workspace handle (one per agent, workspace and policy load: a reload or
//! another agent never sees it) and the same query.

use crate::error::{ToolError, ToolResult};
use crate::proto::{DirEntry, SortOrder};
use cap_std::fs::Dir;
use std::cmp::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A snapshot unused for this long is dropped.
pub(crate) const TTL: Duration = Duration::from_secs(60);
/// Most snapshots kept at once (the oldest is dropped first).
pub(crate) const MAX_LISTINGS: usize = 8;
/// Most entries kept in all snapshots together (about 200 bytes each).
pub(crate) const MAX_CACHED_ENTRIES: usize = 2 * super::MAX_SCAN_ENTRIES;

/// What a listing was asked for: a snapshot serves only the same query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Query {
    pub canonical: String,
    pub lexical: String,
    pub depth: u32,
    pub include_hidden: bool,
    pub respect_gitignore: bool,
    pub sort: SortOrder,
}

/// A sorted listing, shared by its pages.
#[derive(Clone)]
pub(crate) struct Listing {
    pub entries: Arc<Vec<DirEntry>>,
    pub scan_truncated: bool,
}

struct Snapshot {
    id: u128,
    /// Held, so the handle's address cannot be reused by another workspace.
    root: Arc<Dir>,
    query: Query,
    listing: Listing,
    used: Instant,
}

static SNAPSHOTS: Mutex<Vec<Snapshot>> = Mutex::new(Vec::new());

fn snapshots() -> std::sync::MutexGuard<'static, Vec<Snapshot>> {
    // A panic elsewhere while holding the lock leaves a valid Vec.
    SNAPSHOTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keeps `listing` for the pages after the first; returns its id.
pub(crate) fn keep(root: &Arc<Dir>, query: Query, listing: Listing) -> u128 {
    let id = loop {
        let id: u128 = rand::random();
        if id != 0 {
            break id;
        }
    };
    let mut all = snapshots();
    let now = Instant::now();
    all.retain(|s| now.duration_since(s.used) < TTL);
    let size = listing.entries.len();
    while !all.is_empty()
        && (all.len() >= MAX_LISTINGS
            || all.iter().map(|s| s.listing.entries.len()).sum::<usize>() + size
                > MAX_CACHED_ENTRIES)
    {
        let oldest = (0..all.len()).min_by_key(|&i| all[i].used).unwrap_or(0);
        all.swap_remove(oldest);
    }
    all.push(Snapshot {
        id,
        root: Arc::clone(root),
        query,
        listing,
        used: now,
    });
    id
}

/// The snapshot `id`, if it still lives and was taken for this workspace
/// handle and query.
pub(crate) fn find(id: u128, root: &Arc<Dir>, query: &Query) -> Option<Listing> {
    let mut all = snapshots();
    let now = Instant::now();
    all.retain(|s| now.duration_since(s.used) < TTL);
    let s = all
        .iter_mut()
        .find(|s| s.id == id && Arc::ptr_eq(&s.root, root) && s.query == *query)?;
    s.used = now;
    Some(s.listing.clone())
}

/// Drops the snapshot `id` (its last page was served).
pub(crate) fn forget(id: u128) {
    snapshots().retain(|s| s.id != id);
}

/// Where the next page starts: after `after`, in snapshot `id` if it lives.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cursor {
    pub id: u128,
    pub after: DirEntry,
}

impl Cursor {
    /// `c:<id>:<size>:<mtime>:<path>` (the path last: it may hold `:`).
    pub(crate) fn encode(&self) -> String {
        let mtime = self
            .after
            .mtime
            .as_ref()
            .map_or("-".to_string(), |t| format!("{}.{}", t.seconds, t.nanos));
        format!(
            "c:{:032x}:{}:{mtime}:{}",
            self.id, self.after.size, self.after.path
        )
    }

    pub(crate) fn parse(token: &str) -> ToolResult<Option<Cursor>> {
        if token.is_empty() {
            return Ok(None);
        }
        Self::parse_parts(token).map(Some).ok_or_else(|| {
            ToolError::invalid(format!(
                "page_token `{}` is not one this daemon issued; pass next_page_token from the previous response, or nothing",
                token.escape_debug()
            ))
        })
    }

    fn parse_parts(token: &str) -> Option<Cursor> {
        let mut parts = token.strip_prefix("c:")?.splitn(4, ':');
        let id = u128::from_str_radix(parts.next()?, 16).ok()?;
        let size = parts.next()?.parse().ok()?;
        let mtime = match parts.next()? {
            "-" => None,
            t => {
                let (s, n) = t.split_once('.')?;
                Some(prost_types::Timestamp {
                    seconds: s.parse().ok()?,
                    nanos: n.parse().ok()?,
                })
            }
        };
        let path = parts.next()?.to_string();
        Some(Cursor {
            id,
            after: DirEntry {
                path,
                size,
                mtime,
                ..Default::default()
            },
        })
    }
}

/// The listing's order: by path (tree order), newest first or largest
/// first, ties broken by path, so it is total and a cursor is exact.
pub(crate) fn order(sort: SortOrder) -> fn(&DirEntry, &DirEntry) -> Ordering {
    match sort {
        SortOrder::Unspecified | SortOrder::Name => by_path,
        SortOrder::Mtime => |a, b| mtime_key(b).cmp(&mtime_key(a)).then_with(|| by_path(a, b)),
        SortOrder::Size => |a, b| b.size.cmp(&a.size).then_with(|| by_path(a, b)),
    }
}

fn by_path(a: &DirEntry, b: &DirEntry) -> Ordering {
    a.path.split('/').cmp(b.path.split('/'))
}

fn mtime_key(e: &DirEntry) -> (i64, i32) {
    e.mtime
        .as_ref()
        .map_or((i64::MIN, 0), |t| (t.seconds, t.nanos))
}

/// Index of the first entry of sorted `entries` after `cursor`.
pub(crate) fn resume_at(entries: &[DirEntry], sort: SortOrder, cursor: &DirEntry) -> usize {
    let cmp = order(sort);
    entries.partition_point(|e| cmp(e, cursor) != Ordering::Greater)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, size: u64, mtime: Option<(i64, i32)>) -> DirEntry {
        DirEntry {
            path: path.to_string(),
            size,
            mtime: mtime.map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }),
            ..Default::default()
        }
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        for after in [
            entry("a/b:c", 7, Some((1_700_000_000, 5))),
            entry("x", 0, None),
        ] {
            let c = Cursor { id: 42, after };
            assert_eq!(Cursor::parse(&c.encode()).unwrap(), Some(c));
        }
        assert_eq!(Cursor::parse("").unwrap(), None);
        for bad in ["o:10", "c:zz:1:-:a", "c:1:x:-:a", "c:1:1:5:a", "c:1:1"] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resume_is_strictly_after_the_cursor_even_if_it_is_gone() {
        let mut entries = vec![
            entry("a", 0, None),
            entry("a/b", 0, None),
            entry("c", 0, None),
        ];
        entries.sort_by(order(SortOrder::Name));
        assert_eq!(
            resume_at(&entries, SortOrder::Name, &entry("a", 0, None)),
            1
        );
        // `a/a` was removed since: resume at the next one in tree order.
        assert_eq!(
            resume_at(&entries, SortOrder::Name, &entry("a/a", 0, None)),
            1
        );
        assert_eq!(
            resume_at(&entries, SortOrder::Name, &entry("c", 0, None)),
            3
        );
    }

    #[test]
    fn snapshots_serve_only_their_handle_and_query() {
        let dir = tempfile::tempdir().unwrap();
        let open =
            || Arc::new(Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).unwrap());
        let (root, other_root) = (open(), open());
        let query = Query {
            canonical: "d".into(),
            lexical: "d".into(),
            depth: 1,
            include_hidden: false,
            respect_gitignore: false,
            sort: SortOrder::Name,
        };
        let listing = Listing {
            entries: Arc::new(vec![entry("d/x", 1, None)]),
            scan_truncated: false,
        };
        let id = keep(&root, query.clone(), listing);
        assert!(find(id, &root, &query).is_some());
        assert!(find(id, &other_root, &query).is_none(), "another handle");
        let mut hidden = query.clone();
        hidden.include_hidden = true;
        assert!(find(id, &root, &hidden).is_none(), "another query");
        assert!(find(id ^ 1, &root, &query).is_none(), "another id");
        forget(id);
        assert!(find(id, &root, &query).is_none(), "forgotten");
    }
}
