//! Decisions: allow or deny, always with the rule that decided.

use globset::GlobSet;
use std::sync::Arc;

/// What a file tool wants to do with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// The outcome of a policy check, naming the rule that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub rule: Arc<str>,
}

impl Decision {
    pub fn allow(rule: Arc<str>) -> Self {
        Decision {
            allowed: true,
            rule,
        }
    }
    pub fn deny(rule: Arc<str>) -> Self {
        Decision {
            allowed: false,
            rule,
        }
    }
}

/// A compiled list of globs with the display name of each rule.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub(crate) set: GlobSet,
    pub(crate) rules: Vec<Arc<str>>,
    /// The globs as written, in the same order.
    pub(crate) globs: Vec<String>,
}

impl RuleSet {
    pub fn empty() -> Self {
        RuleSet {
            set: GlobSet::empty(),
            rules: Vec::new(),
            globs: Vec::new(),
        }
    }

    /// The first rule (in file order) that matches `path`.
    pub fn first_match(&self, path: &str) -> Option<&Arc<str>> {
        if self.rules.is_empty() {
            return None;
        }
        self.set
            .matches(path)
            .into_iter()
            .min()
            .map(|i| &self.rules[i])
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// An agent's file rules, compiled once at load.
///
/// Paths given to `check` are canonical workspace-relative paths: `/`
/// separated, no `.`/`..`, no symlinks left in them, `""` for the root.
#[derive(Debug, Clone)]
pub struct FileRules {
    pub(crate) read: RuleSet,
    pub(crate) write: RuleSet,
    pub(crate) deny: RuleSet,
    /// Set when the workspace is read-only: every write is denied by it.
    pub(crate) read_only_rule: Option<Arc<str>>,
    pub(crate) no_read_rule: Arc<str>,
    pub(crate) no_write_rule: Arc<str>,
    pub(crate) directory_rule: Arc<str>,
    /// See [`FileRules::literal_denied_paths`].
    pub(crate) literal_denied: Vec<String>,
    /// Set while git metadata is read-only (`files.git = "read-only"`, the
    /// default): every write to a path with a `.git` component is denied by it.
    pub(crate) git_read_only_rule: Option<Arc<str>>,
}

/// The name git looks for in every directory (a repository or a gitfile).
pub const GIT_DIR_NAME: &str = ".git";

/// Whether a canonical workspace-relative path is, or is inside, a `.git`.
pub fn is_git_metadata(path: &str) -> bool {
    path.split('/').any(|c| c == GIT_DIR_NAME)
}

impl FileRules {
    /// Decide whether `access` to `path` is allowed.
    ///
    /// - A deny glob matching the path or any of its ancestors wins.
    /// - Writes to a read-only workspace are denied.
    /// - Otherwise the path itself must match a read (or write) glob.
    /// - Reading a directory (listing, traversing) needs only that no deny
    ///   rule matches: what is listed is filtered entry by entry.
    /// - A directory whose whole content a deny glob covers (`secrets/` for
    ///   `secrets/**`) is denied itself, so it is neither listed, entered
    ///   nor moved.
    /// - While git metadata is read-only, nothing named `.git` (or inside
    ///   one) is written.
    ///
    /// This is the one place a file decision is made: the file tools, the
    /// sandbox's masks and `policy explain`/`policy test` all call it.
    pub fn check(&self, access: Access, path: &str, is_dir: bool) -> Decision {
        if let Some(rule) = self.denied_by(path) {
            return Decision::deny(rule.clone());
        }
        if is_dir && !path.is_empty() {
            if let Some(rule) = self.denied_by(&format!("{path}/")) {
                return Decision::deny(rule.clone());
            }
        }
        match access {
            Access::Read if is_dir => Decision::allow(self.directory_rule.clone()),
            Access::Read => match self.read.first_match(path) {
                Some(rule) => Decision::allow(rule.clone()),
                None => Decision::deny(self.no_read_rule.clone()),
            },
            Access::Write => {
                if let Some(rule) = &self.read_only_rule {
                    return Decision::deny(rule.clone());
                }
                if let Some(rule) = &self.git_read_only_rule {
                    if is_git_metadata(path) {
                        return Decision::deny(rule.clone());
                    }
                }
                match self.write.first_match(path) {
                    Some(rule) => Decision::allow(rule.clone()),
                    None => Decision::deny(self.no_write_rule.clone()),
                }
            }
        }
    }

    /// The deny rule matching `path` or one of its ancestors, if any.
    pub fn denied_by(&self, path: &str) -> Option<&Arc<str>> {
        if self.deny.is_empty() || path.is_empty() {
            return None;
        }
        if let Some(rule) = self.deny.first_match(path) {
            return Some(rule);
        }
        let mut end = path.len();
        while let Some(slash) = path[..end].rfind('/') {
            end = slash;
            if let Some(rule) = self.deny.first_match(&path[..end]) {
                return Some(rule);
            }
        }
        None
    }

    /// Workspace-relative paths that deny globs name literally (computed
    /// once at load): the sandbox masks those that exist.
    pub fn literal_denied_paths(&self) -> &[String] {
        &self.literal_denied
    }

    /// `.git/hooks` for `.git/hooks/**`, `.env` for `**/.env` (its
    /// root-level instance): what the sandbox can mask, since Landlock
    /// cannot carve exceptions out of the workspace it grants.
    pub(crate) fn literal_paths_of(deny: &RuleSet) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for glob in &deny.globs {
            let g = glob.trim_start_matches("./");
            let g = g
                .strip_suffix("/**")
                .or_else(|| g.strip_suffix("/*"))
                .unwrap_or(g);
            let g = g.strip_prefix("**/").unwrap_or(g);
            let literal = !g.is_empty()
                && !g.contains(['*', '?', '[', ']', '{', '}', '\\'])
                && !g.split('/').any(|c| c.is_empty() || c == "." || c == "..");
            if literal && !out.iter().any(|p| p == g) {
                out.push(g.to_string());
            }
        }
        out
    }

    /// Whether any deny glob exists (hardlinked files are then unreadable).
    pub fn has_deny(&self) -> bool {
        !self.deny.is_empty()
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only_rule.is_some()
    }

    /// The rule that keeps git metadata read-only, unless the policy opted
    /// in to `git = "read-write"`.
    pub fn git_read_only_rule(&self) -> Option<&Arc<str>> {
        self.git_read_only_rule.as_ref()
    }

    /// `files.git = "read-write"`: git metadata is written like the rest.
    pub(crate) fn allow_git_writes(&mut self) {
        self.git_read_only_rule = None;
    }
}
