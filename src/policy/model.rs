//! The policy file format, exactly as the security team writes it. Unknown
//! keys and wrong types are errors; spans give `file:line:col` diagnostics.

use serde::Deserialize;
use toml::Spanned;

/// One policy file. A policy directory holds any number of them; together
/// they define the agents.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default)]
    pub agents: Vec<AgentSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    pub name: Spanned<String>,
    /// Unix-socket callers with these uids are this agent.
    #[serde(default)]
    pub uids: Vec<Spanned<u32>>,
    /// Unix-socket callers running as these user names are this agent.
    #[serde(default)]
    pub users: Vec<Spanned<String>>,
    /// Callers running as the daemon's own user are this agent.
    #[serde(default)]
    pub daemon_user: Option<Spanned<bool>>,
    pub workspaces: Spanned<Vec<WorkspaceSpec>>,
    #[serde(default)]
    pub files: FilesSpec,
    #[serde(default)]
    pub limits: LimitsSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSpec {
    pub name: Spanned<String>,
    /// Absolute path of the workspace root. `${STATE_DIRECTORY}` expands to
    /// the daemon's state directory.
    pub path: Spanned<String>,
    #[serde(default)]
    pub access: WorkspaceAccess,
    /// Create the directory (owned by the daemon's user) if it is missing.
    #[serde(default)]
    pub create: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkspaceAccess {
    #[default]
    ReadWrite,
    ReadOnly,
}

/// Globs relative to a workspace root; `*` does not cross `/`, `**` does.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesSpec {
    #[serde(default = "match_everything")]
    pub read: Vec<Spanned<String>>,
    #[serde(default = "match_everything")]
    pub write: Vec<Spanned<String>>,
    #[serde(default)]
    pub deny: Vec<Spanned<String>>,
}

impl Default for FilesSpec {
    fn default() -> Self {
        FilesSpec {
            read: match_everything(),
            write: match_everything(),
            deny: Vec::new(),
        }
    }
}

fn match_everything() -> Vec<Spanned<String>> {
    vec![Spanned::new(0..0, "**".to_string())]
}

/// Size limits for the file tools, in bytes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Most bytes one ReadFile response returns.
    #[serde(default = "default_max_read_bytes")]
    pub max_read_bytes: u64,
    /// Largest content one WriteFile may write.
    #[serde(default = "default_max_write_bytes")]
    pub max_write_bytes: u64,
    /// Largest file that is read whole (line windows, hashing, edits, grep).
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
}

impl Default for LimitsSpec {
    fn default() -> Self {
        LimitsSpec {
            max_read_bytes: default_max_read_bytes(),
            max_write_bytes: default_max_write_bytes(),
            max_file_bytes: default_max_file_bytes(),
        }
    }
}

pub const fn default_max_read_bytes() -> u64 {
    256 * 1024
}
pub const fn default_max_write_bytes() -> u64 {
    16 * 1024 * 1024
}
pub const fn default_max_file_bytes() -> u64 {
    64 * 1024 * 1024
}
