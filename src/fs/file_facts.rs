//! The whole-file facts a ReadFile response promises (sha256, total lines,
//! line ending, binary or not), remembered by file identity so paging
//! through a file in windows streams it once, not once per window.
//!
//! The key is (dev, inode, size, mtime, ctime). ctime changes on every
//! write and cannot be set back by anyone, but the kernel stamps it from a
//! coarse clock: a write in the same tick as the scan could leave it
//! unchanged. So facts are remembered only for a file whose ctime is at
//! least [`SETTLED`] older than the moment its scan began and that did not
//! change during the scan (git's "racily clean" rule). A file written just
//! now is scanned again on each window until it has settled.

use super::meta::Meta;
use super::scan::{Summary, scan_reader};
use std::collections::HashMap;
use std::fs::File;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How much older than a scan a file's ctime must be for its facts to be
/// remembered (far more than any kernel timestamp tick).
pub(crate) const SETTLED: Duration = Duration::from_secs(1);
/// Files remembered at once (about 150 bytes each).
pub(crate) const MAX_FILES: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, u32),
    ctime: (i64, u32),
}

impl Key {
    fn of(meta: &Meta) -> Key {
        Key {
            dev: meta.dev,
            ino: meta.ino,
            size: meta.size,
            mtime: (meta.mtime_sec, meta.mtime_nsec),
            ctime: (meta.ctime_sec, meta.ctime_nsec),
        }
    }
}

struct Facts {
    by_key: HashMap<Key, (Summary, u64)>,
    /// Insertion counter: the lowest is dropped first when full.
    next: u64,
}

static FACTS: Mutex<Option<Facts>> = Mutex::new(None);

fn with_facts<T>(f: impl FnOnce(&mut Facts) -> T) -> T {
    let mut guard = FACTS.lock().unwrap_or_else(|e| e.into_inner());
    let facts = guard.get_or_insert_with(|| Facts {
        by_key: HashMap::new(),
        next: 0,
    });
    f(facts)
}

/// The remembered facts of the file `meta` describes, if it has not
/// changed since.
pub(crate) fn remembered(meta: &Meta) -> Option<Summary> {
    with_facts(|f| f.by_key.get(&Key::of(meta)).map(|(s, _)| s.clone()))
}

/// The facts of `file` (described by `meta`, at most `limit` bytes long):
/// remembered ones, or one streaming pass over it.
pub(crate) fn facts(file: &File, meta: &Meta, limit: u64) -> std::io::Result<Summary> {
    if let Some(s) = remembered(meta) {
        return Ok(s);
    }
    let started = SystemTime::now();
    // `scan_reader` reads from the file position, which nothing else moves
    // (windows are read with pread).
    let summary = scan_reader(file, limit)?;
    let after = rustix::fs::fstat(file).map(|st| Meta::from_stat(&st));
    if after.is_ok_and(|a| Key::of(&a) == Key::of(meta)) {
        remember(meta, &summary, started);
    }
    Ok(summary)
}

/// Remembers `summary` for `meta`'s file if its ctime is settled at
/// `scan_started`.
pub(crate) fn remember(meta: &Meta, summary: &Summary, scan_started: SystemTime) {
    let ctime = UNIX_EPOCH
        + Duration::new(
            u64::try_from(meta.ctime_sec).unwrap_or(0),
            meta.ctime_nsec.min(999_999_999),
        );
    if ctime + SETTLED > scan_started {
        return;
    }
    with_facts(|f| {
        if f.by_key.len() >= MAX_FILES {
            if let Some(oldest) = f
                .by_key
                .iter()
                .min_by_key(|(_, (_, n))| *n)
                .map(|(k, _)| *k)
            {
                f.by_key.remove(&oldest);
            }
        }
        f.next += 1;
        f.by_key.insert(Key::of(meta), (summary.clone(), f.next));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn meta_of(file: &File) -> Meta {
        Meta::from_stat(&rustix::fs::fstat(file).unwrap())
    }

    #[test]
    fn a_settled_file_is_remembered_and_a_changed_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "one\n").unwrap();
        let file = File::open(&path).unwrap();
        let meta = meta_of(&file);
        let fresh = facts(&file, &meta, u64::MAX).unwrap();
        assert_eq!(fresh.sha256, super::super::scan::sha256_hex(b"one\n"));
        assert!(remembered(&meta).is_none(), "just written: not settled");

        // As if the scan had started well after the last change.
        remember(&meta, &fresh, SystemTime::now() + SETTLED * 2);
        assert_eq!(remembered(&meta), Some(fresh));

        // Same size, new content: ctime moves, the old facts do not apply.
        std::thread::sleep(Duration::from_millis(20));
        let mut w = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        w.write_all(b"two\n").unwrap();
        drop(w);
        let changed = meta_of(&File::open(&path).unwrap());
        assert!(remembered(&changed).is_none());
    }
}
