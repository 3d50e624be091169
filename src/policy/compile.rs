//! Compiles validated policy files into matchers, once per load.

use super::decide::{FileRules, RuleSet};
use cap_std::fs::Dir;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Size limits for the file tools, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_read_bytes: u64,
    pub max_write_bytes: u64,
    pub max_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        use super::model::*;
        Limits {
            max_read_bytes: default_max_read_bytes(),
            max_write_bytes: default_max_write_bytes(),
            max_file_bytes: default_max_file_bytes(),
        }
    }
}

/// A workspace root, opened once at load as a capability handle.
#[derive(Debug)]
pub struct WorkspacePolicy {
    pub name: String,
    pub path: PathBuf,
    pub read_only: bool,
    /// Handle on the root: every file tool path is resolved beneath it.
    pub root: Arc<Dir>,
    /// Owner of the root; files the daemon creates are given to it.
    pub owner_uid: u32,
    pub owner_gid: u32,
    /// The agent's file rules, with this workspace's access folded in.
    pub rules: FileRules,
}

/// A workspace's file rules without a handle on its root: what the policy
/// tools (`policy explain`, `policy test`, lint) decide with. Built for every
/// workspace, also when the roots are not opened.
#[derive(Debug, Clone)]
pub struct WorkspaceRules {
    pub name: String,
    pub path: PathBuf,
    pub read_only: bool,
    pub rules: FileRules,
}

#[derive(Debug)]
pub struct AgentPolicy {
    pub name: String,
    /// The opened workspaces (empty when the load did not open them).
    pub workspaces: Vec<WorkspacePolicy>,
    /// Every workspace's rules, in policy order, opened or not.
    pub workspace_rules: Vec<WorkspaceRules>,
    pub limits: Limits,
    /// None: the agent may run no command.
    pub shell: Option<super::shell::ShellPolicy>,
    /// Calls per second by kind of tool.
    pub rate: super::ratelimit::RateLimits,
    /// `[agents.sessions]`.
    pub sessions: super::sessions::SessionPolicy,
    /// The tools its roles let it call.
    pub tools: super::roles::ToolGrant,
}

impl AgentPolicy {
    /// The named workspace, or the first one for an empty name.
    pub fn workspace(&self, name: &str) -> Option<&WorkspacePolicy> {
        if name.is_empty() {
            self.workspaces.first()
        } else {
            self.workspaces.iter().find(|w| w.name == name)
        }
    }
}

/// Everything the daemon decides with; swapped whole on reload.
#[derive(Debug)]
pub struct CompiledPolicy {
    pub agents: HashMap<String, Arc<AgentPolicy>>,
    pub by_uid: HashMap<u32, String>,
    /// Remote callers: certificate names and token hashes to agents.
    pub remote: super::remote::RemoteIdentities,
    /// Masks secrets in audit records (built-in and policy patterns).
    pub redactor: crate::audit::Redactor,
    /// sha256 over the policy sources: names the policy in answers and logs.
    pub version: String,
    /// The files it was loaded from (for logs and `policy check`).
    pub sources: Vec<PathBuf>,
}

impl CompiledPolicy {
    pub fn agent_for_uid(&self, uid: u32) -> Option<&Arc<AgentPolicy>> {
        self.by_uid.get(&uid).and_then(|name| self.agents.get(name))
    }

    pub fn agent(&self, name: &str) -> Option<&Arc<AgentPolicy>> {
        self.agents.get(name)
    }
}

/// Builds a matcher from globs. `*` does not cross `/`.
#[cfg(test)]
pub(crate) fn build_globset(
    globs: &[(String, Arc<str>)],
) -> Result<RuleSet, (usize, globset::Error)> {
    build_globset_with(globs, true)
}

pub(crate) fn build_globset_with(
    globs: &[(String, Arc<str>)],
    path_semantics: bool,
) -> Result<RuleSet, (usize, globset::Error)> {
    let mut builder = globset::GlobSetBuilder::new();
    for (i, (glob, _)) in globs.iter().enumerate() {
        builder.add(compile_glob_with(glob, path_semantics).map_err(|e| (i, e))?);
    }
    let set = builder.build().map_err(|e| (0, e))?;
    Ok(RuleSet {
        set,
        rules: globs.iter().map(|(_, r)| r.clone()).collect(),
        globs: globs.iter().map(|(g, _)| g.clone()).collect(),
    })
}

/// One path glob as the policy and the file tools understand it: `*` does
/// not cross `/` (only `**` does).
pub fn compile_glob(glob: &str) -> Result<globset::Glob, globset::Error> {
    compile_glob_with(glob, true)
}

/// A glob with path semantics, or over plain text (arguments, names).
pub fn compile_glob_with(
    glob: &str,
    path_semantics: bool,
) -> Result<globset::Glob, globset::Error> {
    globset::GlobBuilder::new(glob)
        .literal_separator(path_semantics)
        .backslash_escape(true)
        .empty_alternates(true)
        .build()
}

pub(crate) fn file_rules(
    read: RuleSet,
    write: RuleSet,
    deny: RuleSet,
    agent: &str,
    workspace: &str,
    read_only: bool,
) -> FileRules {
    FileRules {
        deny_key: Arc::from(deny.globs.join("\0")),
        read,
        write,
        deny,
        read_only_rule: read_only
            .then(|| Arc::from(format!("{agent}: workspace \"{workspace}\" is read-only"))),
        no_read_rule: Arc::from(format!("{agent}: no files.read glob matches")),
        no_write_rule: Arc::from(format!("{agent}: no files.write glob matches")),
        directory_rule: Arc::from(format!("{agent}: directories are traversable")),
        git_read_only_rule: Some(Arc::from(format!(
            "{agent}: files.git = \"read-only\" (git metadata is written only by the workspace owner)"
        ))),
    }
}
