//! Striped locks that make check-then-replace atomic between the daemon's
//! own calls: two writers of the same file never interleave their checks
//! (mode, `expected_sha256`) and renames.
//!
//! Locks are keyed by the root directory's identity (device and inode, so
//! two policies naming the same directory share them) and the canonical
//! path. Unrelated paths may share a stripe; that only costs a little
//! waiting.

use super::meta::Meta;
use crate::policy::WorkspacePolicy;
use rustix::fd::AsFd;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, MutexGuard};

const STRIPES: usize = 64;

static LOCKS: [Mutex<()>; STRIPES] = [const { Mutex::new(()) }; STRIPES];

/// Held while a path is checked and replaced.
pub(crate) struct PathLocks {
    _guards: Vec<MutexGuard<'static, ()>>,
}

/// Locks the stripes of `paths` (canonical, workspace-relative), always in
/// stripe order so two callers can never deadlock.
pub(crate) fn lock_paths(ws: &WorkspacePolicy, paths: &[&str]) -> PathLocks {
    let root_id = rustix::fs::fstat(ws.root.as_fd())
        .map(|st| {
            let meta = Meta::from_stat(&st);
            (meta.dev, meta.ino)
        })
        .unwrap_or((0, 0));
    let mut stripes: Vec<usize> = paths
        .iter()
        .map(|path| {
            let mut hasher = DefaultHasher::new();
            root_id.hash(&mut hasher);
            if root_id == (0, 0) {
                ws.path.hash(&mut hasher);
            }
            path.hash(&mut hasher);
            usize::try_from(hasher.finish() % STRIPES as u64).unwrap_or(0)
        })
        .collect();
    stripes.sort_unstable();
    stripes.dedup();
    let guards = stripes
        .into_iter()
        // A poisoned stripe only means another call panicked while holding
        // it; the filesystem state is still consistent (renames are atomic).
        .map(|i| LOCKS[i].lock().unwrap_or_else(|e| e.into_inner()))
        .collect();
    PathLocks { _guards: guards }
}
