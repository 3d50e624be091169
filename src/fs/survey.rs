//! The survey of a workspace made before each command (and once before the
//! first file-tool write): one bounded walk that finds what the sandbox must
//! pin in place.
//!
//! - every entry a deny glob matches, wildcards included (`**/.env`,
//!   `**/*.pem`, `secrets/**`): the sandbox masks it, and its (dev, inode)
//!   is remembered so the file tools refuse that content under any other
//!   name later (a hard link, a rename made by a command);
//! - every piece of git metadata: each `.git` (directory or gitfile), and
//!   inside the workspace whatever a gitfile's `gitdir:` or a `commondir`
//!   points to. While `files.git` is read-only, the sandbox binds them
//!   read-only and the file tools never write there.
//!
//! The walk reads directories by fd (`getdents`, no `stat` per entry), never
//! follows a symlink, and does not descend into what it masks or makes
//! read-only. It stops at [`MAX_SURVEY_ENTRIES`]: a bigger workspace is
//! refused rather than half protected.

use super::resolve::RESOLVE;
use crate::error::{Reason, ToolError, ToolResult};
use crate::policy::WorkspacePolicy;
use crate::policy::decide::GIT_DIR_NAME;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{FileType, Mode, OFlags};
use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

/// Most entries one survey reads before it gives up (and the command is
/// refused): about a quarter of a second on this project's machines.
pub const MAX_SURVEY_ENTRIES: usize = 200_000;
/// Deepest directory the survey descends into (each level holds one fd).
const MAX_SURVEY_DEPTH: usize = 128;
/// Largest gitfile or `commondir` file read.
const MAX_REDIRECT_BYTES: usize = 4096;

/// What one walk found.
#[derive(Debug, Default, Clone)]
pub struct Survey {
    /// Top-most entries a deny glob matches: (workspace-relative path, is_dir).
    pub denied: Vec<(PathBuf, bool)>,
    /// Git metadata (each `.git`, and redirect targets inside the workspace).
    pub git: Vec<(PathBuf, bool)>,
    /// The `.git` entries themselves (not redirect targets).
    pub git_entries: HashSet<PathBuf>,
    /// (dev, inode) of every denied file and directory found.
    pub denied_ids: HashSet<(u64, u64)>,
    /// Entries read.
    pub entries: usize,
    /// Every other regular file: (dev, inode, path), to find other names
    /// (hard links) of denied files once the walk is done.
    others: Vec<(u64, u64, PathBuf)>,
}

/// What the file tools remember of a workspace's last survey.
#[derive(Debug, Default)]
struct Known {
    denied_ids: HashSet<(u64, u64)>,
    /// Redirect targets that are not themselves named `.git`.
    redirects: Vec<String>,
}

/// By workspace root on the host, so a policy reload keeps what was learnt.
static KNOWN: LazyLock<Mutex<HashMap<PathBuf, Arc<Known>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn known(ws: &WorkspacePolicy) -> Arc<Known> {
    if let Some(k) = KNOWN.lock().ok().and_then(|m| m.get(&ws.path).cloned()) {
        return k;
    }
    // First use: survey now, so redirects the owner made are known before
    // any command ran. A workspace too large to survey remembers nothing
    // beyond the policy's names.
    match survey(ws) {
        Ok(s) => store(ws, &s),
        Err(_) => Arc::new(Known::default()),
    }
}

/// Records `s` as the workspace's current state for the file tools.
pub fn remember(ws: &WorkspacePolicy, s: &Survey) {
    store(ws, s);
}

fn store(ws: &WorkspacePolicy, s: &Survey) -> Arc<Known> {
    let redirects = s
        .git
        .iter()
        .filter(|(p, _)| !s.git_entries.contains(p))
        .map(|(p, _)| p.to_string_lossy().into_owned())
        .collect();
    let k = Arc::new(Known {
        denied_ids: s.denied_ids.clone(),
        redirects,
    });
    if let Ok(mut m) = KNOWN.lock() {
        m.insert(ws.path.clone(), k.clone());
    }
    k
}

/// The git rule, when `path` lies in a git directory that a gitfile or
/// `commondir` redirects to (and git metadata is read-only).
pub(crate) fn git_redirect_rule(ws: &WorkspacePolicy, path: &str) -> Option<Arc<str>> {
    let rule = ws.rules.git_read_only_rule()?;
    let k = known(ws);
    k.redirects
        .iter()
        .any(|r| {
            path == r
                || path
                    .strip_prefix(r.as_str())
                    .is_some_and(|t| t.starts_with('/'))
        })
        .then(|| rule.clone())
}

/// Whether a file with this identity was denied when last surveyed.
pub(crate) fn is_denied_identity(ws: &WorkspacePolicy, dev: u64, ino: u64) -> bool {
    ws.rules.has_deny() && known(ws).denied_ids.contains(&(dev, ino))
}

fn too_large(ws: &WorkspacePolicy) -> ToolError {
    ToolError::new(
        Reason::TooLarge,
        format!(
            "workspace `{}` holds more than {MAX_SURVEY_ENTRIES} entries: the paths its deny \
             globs and git metadata protect cannot be found before a command starts; move \
             generated trees (build output, dependencies) out of the workspace",
            ws.name
        ),
    )
    .with("workspace", &ws.name)
}

fn open_dir_at(dir: impl AsFd, name: &CStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat2(
        dir,
        name,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
        RESOLVE,
    )
}

/// Walks the whole workspace once.
pub fn survey(ws: &WorkspacePolicy) -> ToolResult<Survey> {
    let mut s = Survey::default();
    let root = open_dir_at(ws.root.as_fd(), c".")
        .map_err(|e| super::oserror::os_error("open the workspace root", "", e))?;
    walk_dir(ws, &root, Path::new(""), 0, &mut s)?;
    // Other names (hard links) of a denied file are masked like it.
    for (dev, ino, path) in std::mem::take(&mut s.others) {
        if s.denied_ids.contains(&(dev, ino)) {
            s.denied.push((path, false));
        }
    }
    resolve_redirects(ws, &mut s);
    Ok(s)
}

fn walk_dir(
    ws: &WorkspacePolicy,
    fd: &OwnedFd,
    rel: &Path,
    depth: usize,
    s: &mut Survey,
) -> ToolResult<()> {
    let dev = rustix::fs::fstat(fd).map(|st| st.st_dev).unwrap_or(0);
    let mut subdirs = Vec::new();
    let Ok(dir) = rustix::fs::Dir::read_from(fd) else {
        return Ok(());
    };
    for entry in dir {
        let Ok(entry) = entry else { break };
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        s.entries += 1;
        if s.entries > MAX_SURVEY_ENTRIES {
            return Err(too_large(ws));
        }
        let name_os = OsStr::from_bytes(name.to_bytes());
        let path = rel.join(name_os);
        let kind = match entry.file_type() {
            FileType::Unknown => {
                rustix::fs::statat(fd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                    .map(|st| FileType::from_raw_mode(st.st_mode))
                    .unwrap_or(FileType::Unknown)
            }
            k => k,
        };
        let is_dir = kind == FileType::Directory;
        let text = path.to_string_lossy();
        // A symlink is not masked: the sandbox never follows one out, and
        // its target is surveyed under its own name.
        let denied = kind != FileType::Symlink
            && (ws.rules.denied_by(&text).is_some()
                || (is_dir && ws.rules.denied_by(&format!("{text}/")).is_some()));
        if denied {
            s.denied_ids.insert((dev, entry.ino()));
            if matches!(kind, FileType::Directory | FileType::RegularFile) {
                s.denied.push((path, is_dir));
            }
            continue;
        }
        if name.to_bytes() == GIT_DIR_NAME.as_bytes()
            && matches!(kind, FileType::Directory | FileType::RegularFile)
        {
            s.git_entries.insert(path.clone());
            s.git.push((path, is_dir));
            continue;
        }
        if is_dir {
            subdirs.push((name.to_owned(), path));
        } else if kind == FileType::RegularFile {
            s.others.push((dev, entry.ino(), path));
        }
    }
    if depth + 1 >= MAX_SURVEY_DEPTH {
        return Ok(());
    }
    for (name, path) in subdirs {
        if let Ok(child) = open_dir_at(fd, &name) {
            walk_dir(ws, &child, &path, depth + 1, s)?;
        }
    }
    Ok(())
}

/// Adds, for each gitfile (`gitdir: …`) and each `commondir` in a git
/// directory, the directory it names when that lies inside the workspace.
fn resolve_redirects(ws: &WorkspacePolicy, s: &mut Survey) {
    let mut queue: Vec<(PathBuf, bool)> = s.git.clone();
    let mut seen: HashSet<PathBuf> = queue.iter().map(|(p, _)| p.clone()).collect();
    while let Some((path, is_dir)) = queue.pop() {
        let (file, base) = if is_dir {
            (path.join("commondir"), path.clone())
        } else {
            (path.clone(), path.parent().unwrap_or(Path::new("")).into())
        };
        let Some(text) = read_small(ws, &file) else {
            continue;
        };
        let target = if is_dir {
            text.trim_end_matches(['\n', '\r']).to_string()
        } else {
            match text.strip_prefix("gitdir:") {
                Some(t) => t.trim().to_string(),
                None => continue,
            }
        };
        let Some(inside) = inside_workspace(ws, &base, &target) else {
            continue;
        };
        let Some((canonical, target_is_dir)) = super::existing_entry(ws, &inside) else {
            continue;
        };
        let canonical = PathBuf::from(canonical);
        if target_is_dir && seen.insert(canonical.clone()) {
            s.git.push((canonical.clone(), true));
            queue.push((canonical, true));
        }
    }
}

fn read_small(ws: &WorkspacePolicy, path: &Path) -> Option<String> {
    use std::io::Read;
    let (file, meta) = super::resolve::open_regular(ws, path.to_str()?).ok()?;
    if meta.size as usize > MAX_REDIRECT_BYTES {
        return None;
    }
    let mut text = String::new();
    file.take(MAX_REDIRECT_BYTES as u64)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// `target` (absolute, or relative to `base`) as a workspace-relative path,
/// when it names something inside the workspace.
fn inside_workspace(ws: &WorkspacePolicy, base: &Path, target: &str) -> Option<String> {
    let joined = if Path::new(target).is_absolute() {
        Path::new(target).strip_prefix(&ws.path).ok()?.to_path_buf()
    } else {
        base.join(target)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    out.to_str().map(str::to_string)
}

/// After a command: removes each `.git` that was not there when it started
/// and that the sandbox user owns, so host git never discovers a repository
/// (config, hooks, fsmonitor) the command planted. Returns what it removed.
pub fn sweep_new_git(
    ws: &WorkspacePolicy,
    before: &HashSet<PathBuf>,
    sandbox_uid: u32,
) -> ToolResult<Vec<PathBuf>> {
    let after = survey(ws)?;
    remember(ws, &after);
    let mut removed = Vec::new();
    for path in after.git_entries.difference(before) {
        let Ok(fd) = rustix::fs::openat2(
            ws.root.as_fd(),
            path.as_path(),
            OFlags::PATH | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
            RESOLVE,
        ) else {
            continue;
        };
        let Ok(st) = rustix::fs::fstat(&fd) else {
            continue;
        };
        if st.st_uid != sandbox_uid {
            continue;
        }
        let result = if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            ws.root.remove_dir_all(path)
        } else {
            ws.root.remove_file(path)
        };
        if result.is_ok() {
            removed.push(path.clone());
        }
    }
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::testutil::{Fixture, Rules};

    #[test]
    fn finds_wildcard_matches_git_dirs_and_redirects() {
        let fx = Fixture::with_rules(Rules {
            deny: &["**/.env", "**/*.pem", "secrets/**"],
            ..Rules::default()
        });
        for (p, c) in [
            ("a/b/.env", "x"),
            ("k.pem", "x"),
            ("secrets/s/t", "x"),
            ("ok/file", "x"),
            (".git/HEAD", "ref: refs/heads/main\n"),
            (".git/commondir", "../common\n"),
            ("common/config", "[core]\n"),
            ("sub/.git", "gitdir: ../meta\n"),
            ("meta/HEAD", "x"),
        ] {
            fx.file(p, c);
        }
        let s = survey(&fx.ws).unwrap();
        let mut denied: Vec<String> = s
            .denied
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        denied.sort();
        assert_eq!(denied, ["a/b/.env", "k.pem", "secrets"]);
        let mut git: Vec<String> = s.git.iter().map(|(p, _)| p.display().to_string()).collect();
        git.sort();
        assert_eq!(git, [".git", "common", "meta", "sub/.git"]);
        assert_eq!(s.git_entries.len(), 2);
        assert_eq!(s.denied_ids.len(), 3);
        remember(&fx.ws, &s);
        assert!(git_redirect_rule(&fx.ws, "meta/hooks/pre-commit").is_some());
        assert!(git_redirect_rule(&fx.ws, "common").is_some());
        assert!(git_redirect_rule(&fx.ws, "metadata").is_none());
        assert!(git_redirect_rule(&fx.ws, "ok/file").is_none());
    }

    #[test]
    fn redirects_outside_the_workspace_are_ignored() {
        let fx = Fixture::new();
        fx.file("w/.git", "gitdir: ../../../etc\n");
        fx.file("v/.git", "gitdir: /etc\n");
        let s = survey(&fx.ws).unwrap();
        assert_eq!(s.git.len(), 2, "{:?}", s.git);
    }
}
