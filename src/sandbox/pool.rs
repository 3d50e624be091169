//! Sandboxes built ahead (issue 12, item 2): the pool's bookkeeping.
//!
//! An entry is a sandbox whose init finished its whole setup (or is still
//! setting up) and waits for a command (`command.rs`). It serves a call
//! only if the call's [`Shape`] equals the one it was built for, exactly:
//! the pool key (agent and policy version: never shared between agents or
//! across a reload) and every part of the spec that shapes the sandbox
//! (workspace, masks, read-only paths, limits, uid/gid, network, /etc
//! entries, stdin mode, umask...). Only argv, the environment and the cwd
//! are the command's own; they reach init when the call takes it. A taken
//! sandbox leaves the pool for good: it serves one call and is destroyed.
//!
//! Bounds: a few entries per key, a total, and an idle time after which an
//! entry is destroyed (config `[pool]`, defaults in `crate::limits`). The
//! launcher flushes everything on a reload (a new /etc snapshot, maybe new
//! rules) and at shutdown. Generic over the entry so it is unit-tested
//! without sandboxes.

use std::time::{Duration, Instant};

use super::spec::SandboxSpec;

/// The pool's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolConfig {
    /// Entries built ahead per shape's key (0: no pool, every call cold).
    pub per_key: usize,
    /// Entries in all (ready or being built).
    pub total: usize,
    /// An entry unused this long is destroyed.
    pub idle: Duration,
}

impl PoolConfig {
    pub fn disabled() -> PoolConfig {
        PoolConfig {
            per_key: 0,
            total: 0,
            idle: Duration::ZERO,
        }
    }
}

/// What a sandbox built ahead must match to serve a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// Agent name and policy version, from the daemon.
    key: String,
    /// The spec without its per-command part, serialised.
    shaping: String,
}

impl Shape {
    /// The shape of a Run's spec under `key`; `None` for what is never
    /// pooled (a session sandbox, whose init serves many commands).
    pub fn of(key: &str, spec: &SandboxSpec) -> Option<Shape> {
        if spec.session {
            return None;
        }
        let shaping = serde_json::to_string(&shaping_part(spec)).ok()?;
        Some(Shape {
            key: key.to_string(),
            shaping,
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The part of a spec that shapes the sandbox: everything but argv, the
/// environment and the cwd (which init receives with the command; the
/// build reads none of them: /etc/passwd's home is `etc::home_of`).
pub fn shaping_part(spec: &SandboxSpec) -> SandboxSpec {
    let mut s = spec.clone();
    s.argv = Vec::new();
    s.env = Vec::new();
    // A placeholder that passes validation: the call's own cwd is entered
    // when its command arrives.
    s.cwd = "/".into();
    s
}

/// One entry: built for `shape`, `ready` once its init waits for a command.
#[derive(Debug)]
pub struct Entry<T> {
    pub shape: Shape,
    pub item: T,
    pub ready: bool,
    built: Instant,
}

#[derive(Debug)]
pub struct Pool<T> {
    cfg: PoolConfig,
    entries: Vec<Entry<T>>,
}

impl<T> Pool<T> {
    pub fn new(cfg: PoolConfig) -> Pool<T> {
        Pool {
            cfg,
            entries: Vec::new(),
        }
    }

    pub fn entries(&self) -> &[Entry<T>] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether one more entry for `shape` stays within the bounds.
    pub fn has_room(&self, shape: &Shape) -> bool {
        let same_key = self.entries.iter().filter(|e| e.shape.key == shape.key);
        self.cfg.per_key > 0
            && same_key.count() < self.cfg.per_key
            && self.entries.len() < self.cfg.total
    }

    /// Adds an entry being built; refused (given back) beyond the bounds.
    pub fn insert(&mut self, shape: Shape, item: T, now: Instant) -> Result<(), T> {
        if !self.has_room(&shape) {
            return Err(item);
        }
        self.entries.push(Entry {
            shape,
            item,
            ready: false,
            built: now,
        });
        Ok(())
    }

    /// Makes room for one more entry of `shape` when its key is full, by
    /// removing (and returning, to destroy) the key's oldest entry of
    /// another shape: after a survey finds other masks, or a limit or
    /// workspace changes, those would hold the key's places unused until
    /// they fall idle. Never touches another key's entries or `shape`'s own.
    pub fn evict_for(&mut self, shape: &Shape) -> Option<T> {
        let same_key = self.entries.iter().filter(|e| e.shape.key == shape.key);
        if self.cfg.per_key == 0 || same_key.count() < self.cfg.per_key {
            return None;
        }
        let i = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.shape.key == shape.key && e.shape != *shape)
            .min_by_key(|(_, e)| e.built)
            .map(|(i, _)| i)?;
        Some(self.entries.swap_remove(i).item)
    }

    /// Takes a ready entry of exactly `shape`, else one still being built
    /// (`false`: its init has not finished its setup yet).
    pub fn take(&mut self, shape: &Shape) -> Option<(T, bool)> {
        let i = self
            .entries
            .iter()
            .position(|e| e.ready && e.shape == *shape)
            .or_else(|| self.entries.iter().position(|e| e.shape == *shape))?;
        let e = self.entries.swap_remove(i);
        Some((e.item, e.ready))
    }

    pub fn item_mut(&mut self, i: usize) -> &mut T {
        &mut self.entries[i].item
    }

    pub fn mark_ready(&mut self, i: usize) {
        self.entries[i].ready = true;
    }

    pub fn remove(&mut self, i: usize) -> T {
        self.entries.swap_remove(i).item
    }

    /// Removes (and returns, to destroy) every entry idle past the TTL.
    pub fn expire(&mut self, now: Instant) -> Vec<T> {
        let idle = self.cfg.idle;
        let (old, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(|e| now.saturating_duration_since(e.built) >= idle);
        self.entries = keep;
        old.into_iter().map(|e| e.item).collect()
    }

    /// When the next entry falls idle, if any.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.entries.iter().map(|e| e.built + self.cfg.idle).min()
    }

    /// Removes every entry (a reload, the daemon stopping).
    /// Removes every entry of `shape`: one of them was found stale at its
    /// take (the workspace changed under it), and those built with it or
    /// before it are as stale; the refills build fresh ones.
    pub fn remove_shape(&mut self, shape: &Shape) -> Vec<T> {
        let (gone, kept) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(|e| e.shape == *shape);
        self.entries = kept;
        gone.into_iter().map(|e: Entry<T>| e.item).collect()
    }

    pub fn flush(&mut self) -> Vec<T> {
        std::mem::take(&mut self.entries)
            .into_iter()
            .map(|e| e.item)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::spec::Stdin;

    fn spec() -> SandboxSpec {
        SandboxSpec::new(vec!["/bin/true".into()], "/srv/ws")
    }

    fn cfg(per_key: usize, total: usize) -> PoolConfig {
        PoolConfig {
            per_key,
            total,
            idle: Duration::from_secs(30),
        }
    }

    #[test]
    fn the_command_part_does_not_change_the_shape_and_everything_else_does() {
        let base = Shape::of("a@v1", &spec()).unwrap();
        let mut other_cmd = spec();
        other_cmd.argv = vec!["sh".into(), "-c".into(), "id".into()];
        other_cmd.env.push(("X".into(), "1".into()));
        other_cmd.cwd = "/workspace/sub".into();
        assert_eq!(Shape::of("a@v1", &other_cmd).unwrap(), base);
        // Nor HOME: /etc/passwd's home is the workspace mount's.
        let mut home = spec();
        home.env.push(("HOME".into(), "/elsewhere".into()));
        assert_eq!(Shape::of("a@v1", &home).unwrap(), base, "HOME");

        type Change = Box<dyn Fn(&mut SandboxSpec)>;
        let changes: Vec<(&str, Change)> = vec![
            ("mask", Box::new(|s| s.masked.push(("x".into(), false)))),
            ("ro", Box::new(|s| s.read_only_paths.push(".git".into()))),
            ("ws", Box::new(|s| s.workspace.host = "/srv/other".into())),
            ("ws ro", Box::new(|s| s.workspace.writable = false)),
            ("uid", Box::new(|s| s.uid = 1000)),
            ("net", Box::new(|s| s.network = true)),
            ("limits", Box::new(|s| s.limits.pids = Some(3))),
            (
                "etc",
                Box::new(|s| s.etc_entries.pop().map(drop).unwrap_or(())),
            ),
            ("stdin", Box::new(|s| s.stdin = Stdin::Pipe)),
            ("umask", Box::new(|s| s.umask = Some(0o077))),
            ("host", Box::new(|s| s.hostname = "h".into())),
            (
                "dirs",
                Box::new(|s| s.system_dirs.pop().map(drop).unwrap_or(())),
            ),
        ];
        for (what, change) in changes {
            let mut s = spec();
            change(&mut s);
            assert_ne!(Shape::of("a@v1", &s).unwrap(), base, "{what}");
        }
        assert_ne!(Shape::of("b@v1", &spec()).unwrap(), base, "another agent");
        assert_ne!(Shape::of("a@v2", &spec()).unwrap(), base, "another policy");
        let mut session = spec();
        session.session = true;
        assert!(Shape::of("a@v1", &session).is_none(), "sessions never pool");
    }

    #[test]
    fn a_taken_entry_leaves_the_pool_and_ready_ones_go_first() {
        let shape = Shape::of("a@v1", &spec()).unwrap();
        let mut pool = Pool::new(cfg(3, 10));
        let now = Instant::now();
        pool.insert(shape.clone(), 1, now).unwrap();
        pool.insert(shape.clone(), 2, now).unwrap();
        pool.mark_ready(1);
        assert_eq!(pool.take(&shape), Some((2, true)));
        assert_eq!(pool.take(&shape), Some((1, false)), "then one being built");
        assert_eq!(pool.take(&shape), None, "each served once");
        let other = Shape::of("b@v1", &spec()).unwrap();
        pool.insert(other, 3, now).unwrap();
        assert_eq!(pool.take(&shape), None, "never another key's");
    }

    #[test]
    fn a_stale_shape_is_removed_whole_and_only_it() {
        let shape = Shape::of("a@v1", &spec()).unwrap();
        let other = Shape::of("b@v1", &spec()).unwrap();
        let mut pool = Pool::new(cfg(3, 10));
        let now = Instant::now();
        pool.insert(shape.clone(), 1, now).unwrap();
        pool.insert(other.clone(), 2, now).unwrap();
        pool.insert(shape.clone(), 3, now).unwrap();
        let mut gone = pool.remove_shape(&shape);
        gone.sort();
        assert_eq!(gone, vec![1, 3]);
        assert_eq!(pool.take(&shape), None);
        assert_eq!(pool.take(&other), Some((2, false)), "another shape stays");
    }

    #[test]
    fn the_bounds_hold_per_key_and_in_total() {
        let now = Instant::now();
        let a = Shape::of("a@v1", &spec()).unwrap();
        let b = Shape::of("b@v1", &spec()).unwrap();
        let c = Shape::of("c@v1", &spec()).unwrap();
        let mut pool = Pool::new(cfg(2, 3));
        assert!(pool.insert(a.clone(), 1, now).is_ok());
        assert!(pool.insert(a.clone(), 2, now).is_ok());
        assert_eq!(pool.insert(a.clone(), 3, now), Err(3), "per key");
        assert!(pool.insert(b.clone(), 4, now).is_ok());
        assert_eq!(pool.insert(c.clone(), 5, now), Err(5), "in total");
        assert_eq!(pool.len(), 3);
        let mut off = Pool::new(PoolConfig::disabled());
        assert_eq!(off.insert(a, 1, now), Err(1), "disabled");
    }

    #[test]
    fn a_new_shape_takes_the_place_of_its_keys_oldest_other_shape() {
        let t0 = Instant::now();
        let a = Shape::of("a@v1", &spec()).unwrap();
        let mut masked = spec();
        masked.masked.push((".env".into(), false));
        let a2 = Shape::of("a@v1", &masked).unwrap();
        let b = Shape::of("b@v1", &spec()).unwrap();
        let mut pool = Pool::new(cfg(2, 3));
        pool.insert(a.clone(), 1, t0).unwrap();
        pool.insert(a.clone(), 2, t0 + Duration::from_secs(1))
            .unwrap();
        pool.insert(b.clone(), 3, t0).unwrap();
        assert_eq!(pool.evict_for(&b), None, "room for b: nothing evicted");
        assert_eq!(pool.evict_for(&a), None, "never the shape's own");
        assert_eq!(pool.evict_for(&a2), Some(1), "the key's oldest");
        assert!(pool.has_room(&a2));
        pool.insert(a2.clone(), 4, t0).unwrap();
        assert_eq!(pool.len(), 3, "the bounds still hold");
        assert_eq!(pool.evict_for(&b), None, "never another key's");
    }

    #[test]
    fn idle_entries_expire_and_a_flush_empties_the_pool() {
        let t0 = Instant::now();
        let a = Shape::of("a@v1", &spec()).unwrap();
        let mut pool = Pool::new(cfg(4, 4));
        pool.insert(a.clone(), 1, t0).unwrap();
        pool.insert(a.clone(), 2, t0 + Duration::from_secs(20))
            .unwrap();
        assert_eq!(pool.next_expiry(), Some(t0 + Duration::from_secs(30)));
        assert!(pool.expire(t0 + Duration::from_secs(29)).is_empty());
        assert_eq!(pool.expire(t0 + Duration::from_secs(30)), vec![1]);
        assert_eq!(pool.len(), 1);
        pool.insert(a, 3, t0).unwrap();
        let mut all = pool.flush();
        all.sort();
        assert_eq!(all, vec![2, 3]);
        assert!(pool.is_empty() && pool.next_expiry().is_none());
    }
}
