//! The temporary directories a test daemon runs in. Each harness adds its
//! own extra directories on top (see `common::Dirs`, `shell_common::ShellDirs`).
//!
//! ```text
//! <root>/                 0755, so other uids can reach the socket
//!   ws/                   workspace "main"
//!   ro/                   workspace "ro"
//!   outside/              host files the daemon must never touch
//!   policies/test.toml    the policy under test
//!   state/                --state-dir
//!   run/agentjail.sock    the socket (run/ is 0755 too)
//!   agentjail.toml        the daemon config
//!   daemon.log            the daemon's stdout and stderr
//! ```

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The unprivileged identity sandboxed commands run as (the policy default).
pub const SANDBOX_UID: u32 = 65534;
pub const SANDBOX_GID: u32 = 65534;

pub struct DaemonDirs {
    tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub ws: PathBuf,
    pub ro: PathBuf,
    pub outside: PathBuf,
    pub policy_dir: PathBuf,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl DaemonDirs {
    /// Fresh, empty directories in `/tmp/<prefix>XXXXXX`.
    pub fn new(prefix: &str) -> DaemonDirs {
        let tmp = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in("/tmp")
            .expect("create temp dir");
        let root = tmp.path().to_path_buf();
        let d = DaemonDirs {
            ws: root.join("ws"),
            ro: root.join("ro"),
            outside: root.join("outside"),
            policy_dir: root.join("policies"),
            state_dir: root.join("state"),
            socket: root.join("run").join("agentjail.sock"),
            config: root.join("agentjail.toml"),
            log: root.join("daemon.log"),
            root,
            tmp,
        };
        let run = d.socket.parent().unwrap();
        for dir in [&d.ws, &d.ro, &d.outside, &d.policy_dir, &d.state_dir, run] {
            std::fs::create_dir_all(dir).unwrap();
        }
        for dir in [&d.root, run] {
            set_mode(dir, 0o755);
        }
        d
    }

    /// A path inside the main workspace, on the host.
    pub fn w(&self, rel: &str) -> PathBuf {
        self.ws.join(rel)
    }

    /// Writes `policy` as `policies/test.toml` and `config` as the config
    /// file, both as given.
    pub fn write_setup(&self, policy: &str, config: &str) {
        std::fs::write(self.policy_dir.join("test.toml"), policy).unwrap();
        std::fs::write(&self.config, config).unwrap();
    }

    /// Hands the workspace to the sandbox user (mode 0755): commands run as
    /// that user and must be able to write there. Needs root.
    pub fn give_ws_to_sandbox(&self) {
        give_to_sandbox(&self.ws);
        set_mode(&self.ws, 0o755);
    }

    /// Keeps the directories after the test, for a look at them.
    pub fn keep(self) -> PathBuf {
        self.tmp.keep()
    }
}

/// chown to the sandbox user and group.
pub fn give_to_sandbox(path: &Path) {
    std::os::unix::fs::chown(path, Some(SANDBOX_UID), Some(SANDBOX_GID))
        .unwrap_or_else(|e| panic!("chown {} to the sandbox user: {e}", path.display()));
}

pub fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
