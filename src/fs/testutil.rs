//! Test workspaces: a temporary directory with a policy built the way the
//! loader builds one.

use crate::policy::compile::{build_globset, file_rules};
use crate::policy::{Limits, WorkspacePolicy};
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The globs a test workspace is built from.
pub(crate) struct Rules<'a> {
    pub read: &'a [&'a str],
    pub write: &'a [&'a str],
    pub deny: &'a [&'a str],
    pub read_only: bool,
}

impl Default for Rules<'_> {
    fn default() -> Self {
        Rules {
            read: &["**"],
            write: &["**"],
            deny: &["**/.env", "**/*.pem", ".git/hooks/**", "secrets/**"],
            read_only: false,
        }
    }
}

pub(crate) struct Fixture {
    /// Holds the workspace at `<tmp>/ws` and room for "outside" files.
    pub tmp: tempfile::TempDir,
    pub ws: WorkspacePolicy,
    pub limits: Limits,
}

impl Fixture {
    pub(crate) fn new() -> Self {
        Self::with_rules(Rules::default())
    }

    pub(crate) fn with_rules(rules: Rules<'_>) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("ws");
        std::fs::create_dir(&root).expect("create ws");
        std::fs::create_dir(tmp.path().join("outside")).expect("create outside");
        let ws = workspace(&root, &rules);
        Fixture {
            tmp,
            ws,
            limits: Limits {
                max_read_bytes: 64 * 1024,
                max_write_bytes: 1024 * 1024,
                max_file_bytes: 4 * 1024 * 1024,
            },
        }
    }

    /// Host path of a workspace-relative path (for setting up and checking).
    pub(crate) fn abs(&self, rel: &str) -> PathBuf {
        self.ws.path.join(rel)
    }

    /// Host path of a file beside the workspace, outside it.
    pub(crate) fn outside(&self, name: &str) -> PathBuf {
        self.tmp.path().join("outside").join(name)
    }

    pub(crate) fn file(&self, rel: &str, content: impl AsRef<[u8]>) {
        let path = self.abs(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, content).expect("write");
    }

    pub(crate) fn dir(&self, rel: &str) {
        std::fs::create_dir_all(self.abs(rel)).expect("mkdir");
    }

    pub(crate) fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.abs(rel)).expect("read")
    }

    pub(crate) fn exists(&self, rel: &str) -> bool {
        self.abs(rel).symlink_metadata().is_ok()
    }

    /// Names in the workspace directory `rel` (to check no temp file is
    /// left behind).
    pub(crate) fn names(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.abs(rel))
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

pub(crate) fn workspace(root: &Path, rules: &Rules<'_>) -> WorkspacePolicy {
    let set = |globs: &[&str], kind: &str| {
        let list: Vec<(String, Arc<str>)> = globs
            .iter()
            .map(|g| (g.to_string(), Arc::from(format!("test: {kind}[\"{g}\"]"))))
            .collect();
        build_globset(&list).expect("globs")
    };
    let rules_compiled = file_rules(
        set(rules.read, "read"),
        set(rules.write, "write"),
        set(rules.deny, "deny"),
        "test",
        "ws",
        rules.read_only,
    );
    let meta = std::fs::metadata(root).expect("stat root");
    use std::os::unix::fs::MetadataExt;
    WorkspacePolicy {
        name: "ws".to_string(),
        path: root.to_path_buf(),
        read_only: rules.read_only,
        root: Arc::new(Dir::open_ambient_dir(root, ambient_authority()).expect("open root")),
        owner_uid: meta.uid(),
        owner_gid: meta.gid(),
        rules: rules_compiled,
    }
}

pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
