//! The directory walker shared by ListDir, Glob, Grep and the subtree checks
//! of Remove and Move.
//!
//! Depth first in a stable order: a directory's entries in name order, then
//! each of its subdirectories the same way, first name first (so a search
//! capped at N results reaches files after reading only the directories on
//! its way down, not the whole tree's upper levels). Every directory
//! is opened from the root handle by its canonical path (`openat2`,
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`) and read as a cap-std `Dir`, one
//! at a time: only paths wait on the stack, never open handles. Symlinks are
//! reported as entries and never descended into. At most `max_entries`
//! entries are looked at; past that the walk stops and says so.
//!
//! With [`Filter::Agent`] the walker yields only what the agent may see:
//! hidden names only when asked, nothing `.gitignore`d when asked (and no
//! `.git` directory then), nothing under a deny glob (not even the name), and
//! no file the read rules do not allow. Names that are not valid UTF-8 are
//! skipped.

use super::access::allows;
use super::ignore_files::IgnoreChain;
use super::meta::{Kind, Meta};
use super::path::join;
use super::resolve::{open_dir, stat_in};
use crate::error::ToolResult;
use crate::policy::{Access, WorkspacePolicy};
use cap_std::fs::Dir;
use std::fs::File;

/// Which entries the walk yields.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Filter {
    /// What the agent may see (see the module docs).
    Agent {
        include_hidden: bool,
        respect_gitignore: bool,
    },
    /// Every entry, for checks that must see everything (Remove, Move).
    Everything,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct WalkOptions {
    /// How deep to go: 1 yields only the start's direct children.
    pub max_depth: usize,
    pub filter: Filter,
    /// Most entries read from directories before the walk gives up.
    pub max_entries: usize,
}

/// Where a walk starts: a directory's canonical path, and the path the
/// agent asked for (checked too, so a deny glob on either name holds).
pub(crate) struct Start<'a> {
    pub canonical: &'a str,
    pub lexical: &'a str,
}

/// One entry found by the walk.
pub(crate) struct Entry<'a> {
    /// Canonical workspace-relative path.
    pub path: &'a str,
    /// Path relative to the walk's start.
    pub rel: &'a str,
    pub name: &'a str,
    pub kind: Kind,
    /// 1 for the start's direct children.
    pub depth: u32,
    dir: &'a Dir,
}

impl Entry<'_> {
    /// Size, mode and mtime (of the symlink itself for a symlink).
    pub(crate) fn meta(&self) -> Option<Meta> {
        stat_in(self.dir, self.name).ok()
    }
}

/// What the visitor wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Stop,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WalkStats {
    /// The entry limit was reached before the walk finished.
    pub truncated: bool,
    /// The visitor asked to stop.
    pub stopped: bool,
}

struct DirJob {
    path: String,
    rel: String,
    depth: usize,
    ignores: IgnoreChain,
}

/// Walks the directory `start`, calling `visit` for each entry that passes
/// the filter. The start directory itself must open; a subdirectory that
/// vanished or changed under the walk is skipped.
pub(crate) fn walk(
    ws: &WorkspacePolicy,
    start: &Start<'_>,
    opts: &WalkOptions,
    mut visit: impl FnMut(&Entry<'_>) -> ToolResult<Flow>,
) -> ToolResult<WalkStats> {
    let gitignore = matches!(
        opts.filter,
        Filter::Agent {
            respect_gitignore: true,
            ..
        }
    );
    let mut stats = WalkStats::default();
    let mut stack = vec![DirJob {
        path: start.canonical.to_string(),
        rel: String::new(),
        depth: 0,
        ignores: if gitignore {
            ancestor_ignores(ws, start.canonical)
        } else {
            IgnoreChain::default()
        },
    }];
    let mut seen = 0usize;
    while let Some(job) = stack.pop() {
        let fd = match open_dir(ws, &job.path) {
            Ok(fd) => fd,
            Err(e) if job.depth == 0 => return Err(e),
            Err(_) => continue,
        };
        let dir = Dir::from_std_file(File::from(fd));
        let ignores = if gitignore && job.depth > 0 {
            job.ignores.child(&dir, &job.path)
        } else {
            job.ignores
        };
        let (names, truncated) = read_names(&dir, opts.max_entries, &mut seen);
        let mut subdirs = Vec::new();
        for (name, kind) in names {
            // The client gone or its deadline past: stop within an entry.
            crate::cancel::check()?;
            let path = join(&job.path, &name);
            let rel = join(&job.rel, &name);
            if !visible(ws, opts.filter, start, &ignores, &name, &path, &rel, kind) {
                continue;
            }
            let entry = Entry {
                path: &path,
                rel: &rel,
                name: &name,
                kind,
                depth: u32::try_from(job.depth + 1).unwrap_or(u32::MAX),
                dir: &dir,
            };
            match visit(&entry)? {
                Flow::Stop => {
                    stats.stopped = true;
                    return Ok(stats);
                }
                Flow::Continue => {}
            }
            if kind == Kind::Dir && job.depth + 1 < opts.max_depth {
                subdirs.push(DirJob {
                    path,
                    rel,
                    depth: job.depth + 1,
                    ignores: ignores.clone(),
                });
            }
        }
        // Popped last-in first-out: the first name is walked next.
        stack.extend(subdirs.into_iter().rev());
        if truncated {
            stats.truncated = true;
            break;
        }
    }
    Ok(stats)
}

/// The names in `dir` with their kinds, sorted; stops (and says so) once
/// `seen` reaches `max`.
fn read_names(dir: &Dir, max: usize, seen: &mut usize) -> (Vec<(String, Kind)>, bool) {
    let mut names = Vec::new();
    let mut truncated = false;
    let Ok(entries) = dir.entries() else {
        return (names, false);
    };
    for entry in entries {
        if *seen >= max {
            truncated = true;
            break;
        }
        *seen += 1;
        let Ok(entry) = entry else { continue };
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        let kind = if file_type.is_symlink() {
            Kind::Symlink
        } else if file_type.is_dir() {
            Kind::Dir
        } else if file_type.is_file() {
            Kind::File
        } else {
            Kind::Other
        };
        names.push((name, kind));
    }
    names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    (names, truncated)
}

#[allow(clippy::too_many_arguments)]
fn visible(
    ws: &WorkspacePolicy,
    filter: Filter,
    start: &Start<'_>,
    ignores: &IgnoreChain,
    name: &str,
    path: &str,
    rel: &str,
    kind: Kind,
) -> bool {
    let Filter::Agent {
        include_hidden,
        respect_gitignore,
    } = filter
    else {
        return true;
    };
    let is_dir = kind == Kind::Dir;
    if !include_hidden && name.starts_with('.') {
        return false;
    }
    if respect_gitignore && ((is_dir && name == ".git") || ignores.is_ignored(path, is_dir)) {
        return false;
    }
    let lexical = join(start.lexical, rel);
    allows(ws, Access::Read, &lexical, path, is_dir)
}

/// The ignore rules of the root and every directory down to `dir`.
fn ancestor_ignores(ws: &WorkspacePolicy, dir: &str) -> IgnoreChain {
    let mut chain = IgnoreChain::default();
    let mut prefixes = vec![String::new()];
    if !dir.is_empty() {
        let mut acc = String::new();
        for comp in dir.split('/') {
            acc = join(&acc, comp);
            prefixes.push(acc.clone());
        }
    }
    for prefix in prefixes {
        if let Ok(fd) = open_dir(ws, &prefix) {
            chain = chain.child(&fd, &prefix);
        }
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::testutil::Fixture;
    use std::os::unix::fs::symlink;

    fn collect(fx: &Fixture, start: &str, opts: WalkOptions) -> (Vec<String>, WalkStats) {
        let mut out = Vec::new();
        let stats = walk(
            &fx.ws,
            &Start {
                canonical: start,
                lexical: start,
            },
            &opts,
            |e| {
                out.push(e.path.to_string());
                Ok(Flow::Continue)
            },
        )
        .unwrap();
        out.sort();
        (out, stats)
    }

    fn agent(hidden: bool, gitignore: bool) -> WalkOptions {
        WalkOptions {
            max_depth: usize::MAX,
            filter: Filter::Agent {
                include_hidden: hidden,
                respect_gitignore: gitignore,
            },
            max_entries: 1000,
        }
    }

    #[test]
    fn filters_what_the_agent_may_not_see() {
        let fx = Fixture::new();
        fx.file("src/a.rs", "");
        fx.file("src/.hidden", "");
        fx.file("src/.env", "");
        fx.file("secrets/k", "");
        fx.file("target/out", "");
        fx.file("keep.log", "");
        fx.file("drop.log", "");
        fx.file(".gitignore", "target/\n*.log\n!keep.log\n");
        fx.file(".git/config", "");
        symlink(fx.outside(""), fx.abs("src/outlink")).unwrap();

        let (all, _) = collect(&fx, "", agent(true, false));
        assert!(all.contains(&"src/.hidden".to_string()));
        assert!(all.contains(&"src/outlink".to_string()), "symlink listed");
        assert!(
            !all.iter()
                .any(|p| p.contains(".env") || p.starts_with("secrets"))
        );

        let (visible, _) = collect(&fx, "", agent(false, true));
        assert_eq!(visible, ["keep.log", "src", "src/a.rs", "src/outlink"]);

        let (hidden_ignored, _) = collect(&fx, "", agent(true, true));
        assert!(!hidden_ignored.iter().any(|p| p.starts_with(".git/")));
        assert!(hidden_ignored.contains(&".gitignore".to_string()));
    }

    #[test]
    fn nested_ignore_files_and_starting_below_root() {
        let fx = Fixture::new();
        fx.file(".gitignore", "*.tmp\n");
        fx.file("a/.ignore", "b/\n");
        fx.file("a/b/x", "");
        fx.file("a/c.tmp", "");
        fx.file("a/d", "");
        let (seen, _) = collect(&fx, "a", agent(false, true));
        assert_eq!(seen, ["a/d"]);
    }

    #[test]
    fn entry_limit_truncates() {
        let fx = Fixture::new();
        for i in 0..50 {
            fx.file(&format!("d/f{i:02}"), "");
        }
        let mut opts = agent(false, false);
        opts.max_entries = 20;
        let (seen, stats) = collect(&fx, "", opts);
        assert!(stats.truncated);
        assert!(seen.len() <= 20);
        opts.max_depth = 1;
        opts.max_entries = 1000;
        let (seen, stats) = collect(&fx, "", opts);
        assert_eq!((seen, stats.truncated), (vec!["d".to_string()], false));
    }

    #[test]
    fn depth_first_in_name_order() {
        let fx = Fixture::new();
        for f in ["z", "a/x", "a/b/y", "c/w", "a/b/d/v"] {
            fx.file(f, "");
        }
        let mut order = Vec::new();
        walk(
            &fx.ws,
            &Start {
                canonical: "",
                lexical: "",
            },
            &agent(false, false),
            |e| {
                order.push(e.path.to_string());
                Ok(Flow::Continue)
            },
        )
        .unwrap();
        // A directory's entries, then its subdirectories, first name first.
        assert_eq!(
            order,
            [
                "a", "c", "z", "a/b", "a/x", "a/b/d", "a/b/y", "a/b/d/v", "c/w"
            ]
        );
    }

    #[test]
    fn everything_filter_sees_denied_entries() {
        let fx = Fixture::new();
        fx.file("a/.env", "");
        let opts = WalkOptions {
            max_depth: usize::MAX,
            filter: Filter::Everything,
            max_entries: 100,
        };
        let (seen, _) = collect(&fx, "a", opts);
        assert_eq!(seen, ["a/.env"]);
    }
}
