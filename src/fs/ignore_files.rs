//! `.gitignore` and `.ignore` files, read through directory handles.
//!
//! `ignore::WalkBuilder` walks host paths and would bypass the workspace
//! handle, so the walker reads each directory's ignore files itself (opened
//! beneath that directory, never through a symlink) and builds matchers with
//! `GitignoreBuilder` rooted at a fake absolute path (`/` + the directory's
//! workspace path). Global git excludes and `.git/info/exclude` are not read.

use super::resolve::open_regular_in;
use super::scan::read_bounded;
use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use rustix::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;

/// Ignore files larger than this are not read.
const MAX_IGNORE_FILE_BYTES: u64 = 1024 * 1024;
/// Read in this order: `.ignore` lines come later, so they win.
const IGNORE_FILES: [&str; 2] = [".gitignore", ".ignore"];

/// The ignore rules in force in one directory: its own, then its parents'.
#[derive(Clone, Default)]
pub(crate) struct IgnoreChain {
    node: Option<Arc<Node>>,
}

struct Node {
    matcher: Gitignore,
    parent: Option<Arc<Node>>,
}

impl IgnoreChain {
    /// The chain for the directory `dir` (at workspace path `dir_path`),
    /// whose parent's chain is `self`.
    pub(crate) fn child(&self, dir: impl AsFd, dir_path: &str) -> IgnoreChain {
        let mut builder = GitignoreBuilder::new(fake_path(dir_path));
        let mut any = false;
        for name in IGNORE_FILES {
            let Ok((file, _)) = open_regular_in(dir.as_fd(), name) else {
                continue;
            };
            let Ok(Some(data)) = read_bounded(&file, MAX_IGNORE_FILE_BYTES) else {
                continue;
            };
            for line in String::from_utf8_lossy(&data).lines() {
                // A line that is not a valid glob is skipped, as git does.
                if builder.add_line(None, line).is_ok() {
                    any = true;
                }
            }
        }
        let matcher = match builder.build() {
            Ok(m) if any => m,
            _ => return self.clone(),
        };
        IgnoreChain {
            node: Some(Arc::new(Node {
                matcher,
                parent: self.node.clone(),
            })),
        }
    }

    /// Whether `path` (workspace-relative) is ignored: the nearest ignore
    /// file with an opinion decides, as in git.
    pub(crate) fn is_ignored(&self, path: &str, is_dir: bool) -> bool {
        let full = fake_path(path);
        let mut node = self.node.as_deref();
        while let Some(n) = node {
            match n.matcher.matched(&full, is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => node = n.parent.as_deref(),
            }
        }
        false
    }
}

fn fake_path(path: &str) -> PathBuf {
    PathBuf::from(format!("/{path}"))
}
