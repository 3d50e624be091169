//! The policy file format, exactly as the security team writes it. Unknown
//! keys and wrong types are errors; spans give `file:line:col` diagnostics.

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

/// One policy file. A policy directory holds any number of them; together
/// they define the agents.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// The agents this file defines; each maps from callers to workspaces,
    /// file rules and a command policy.
    #[serde(default)]
    pub agents: Vec<AgentSpec>,
    /// Named sets of tools, given to agents by `roles` (names unique across
    /// the policy directory).
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, super::roles::RoleSpec>")]
    pub roles: std::collections::BTreeMap<String, Spanned<super::roles::RoleSpec>>,
    /// How secrets are kept out of the audit log (merged across files).
    #[serde(default)]
    pub redact: Option<RedactSpec>,
}

/// Values that look like secrets never reach an audit record.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedactSpec {
    /// Extra regular expressions; whatever they match is replaced by
    /// `[REDACTED]`. A capture group named `keep` is kept (e.g. a key name).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub patterns: Vec<Spanned<String>>,
    /// Also apply the built-in patterns (`--password=…`, `Authorization:`
    /// headers, `token=…`, long high-entropy strings). Default true.
    #[serde(default = "default_true")]
    pub builtin: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// The agent's name, used in rule names, logs and audit records: letters,
    /// digits, `-`, `_` and `.`; unique across the policy directory.
    #[schemars(with = "String", regex(pattern = r"^[A-Za-z0-9._-]+$"))]
    pub name: Spanned<String>,
    /// Unix-socket callers with these uids are this agent.
    #[serde(default)]
    #[schemars(with = "Vec<u32>")]
    pub uids: Vec<Spanned<u32>>,
    /// Unix-socket callers running as these user names are this agent.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub users: Vec<Spanned<String>>,
    /// Roles (`[roles.NAME]`) whose tools this agent may call; without
    /// roles it may call every tool.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub roles: Vec<Spanned<String>>,
    /// Callers running as the daemon's own user are this agent.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub daemon_user: Option<Spanned<bool>>,
    /// The directories the agent works in; at least one. The first is the
    /// default for requests that name none.
    #[schemars(with = "Vec<WorkspaceSpec>", length(min = 1))]
    pub workspaces: Spanned<Vec<WorkspaceSpec>>,
    /// Which workspace paths the file tools may read and write.
    #[serde(default)]
    pub files: FilesSpec,
    /// Size limits for the file tools.
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Shell tool calls; without this table the agent may run no command.
    pub shell: Option<ShellSpec>,
    /// Calls per second, by kind of tool.
    pub rate_limits: Option<super::ratelimit::RateLimitSpec>,
    /// Sessions (sandboxes that live across calls) and their limits.
    pub sessions: Option<super::sessions::SessionSpec>,
    /// Remote callers (TCP + TLS) that are this agent: certificate names
    /// and token hashes.
    pub remote: Option<super::remote::RemoteSpec>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSpec {
    /// The name requests use to pick this workspace; unique per agent.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Absolute path of the workspace root. `${STATE_DIRECTORY}` expands to
    /// the daemon's state directory.
    #[schemars(with = "String", regex(pattern = r"^(/|\$\{STATE_DIRECTORY\})"))]
    pub path: Spanned<String>,
    /// `read-write` (default) or `read-only`: a read-only workspace refuses
    /// every write, and commands see it mounted read-only.
    #[serde(default)]
    pub access: WorkspaceAccess,
    /// Create the directory (owned by the daemon's user) if it is missing.
    #[serde(default)]
    pub create: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum WorkspaceAccess {
    /// The file tools may write (where `files.write` allows) and commands
    /// see the workspace read-write.
    #[default]
    ReadWrite,
    /// Every write is refused; commands see the workspace read-only.
    ReadOnly,
}

/// Globs relative to a workspace root; `*` does not cross `/`, `**` does.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilesSpec {
    /// A path may be read when it matches one of these globs (and no deny).
    #[serde(default = "match_everything")]
    #[schemars(with = "Vec<String>")]
    pub read: Vec<Spanned<String>>,
    /// A path may be written when it matches one of these globs (and no
    /// deny, and the workspace is read-write).
    #[serde(default = "match_everything")]
    #[schemars(with = "Vec<String>")]
    pub write: Vec<Spanned<String>>,
    /// A path matching one of these globs, or inside a directory that does,
    /// is refused for reading and writing; deny wins over read and write.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub deny: Vec<Spanned<String>>,
    /// Git metadata (every `.git`, and what gitfiles and `commondir` point
    /// to inside the workspace): `read-only` (the default) lets commands run
    /// git's read operations and keeps the file tools out of it, so nothing
    /// the agent writes runs when the workspace's owner uses git later;
    /// `read-write` lets commands commit, fetch and check out, and lets the
    /// file tools write there (hooks and config included).
    #[serde(default)]
    #[schemars(with = "Option<GitAccess>")]
    pub git: Option<Spanned<GitAccess>>,
}

impl FilesSpec {
    /// `git`, or its default.
    pub fn git_access(&self) -> GitAccess {
        self.git.as_ref().map(|g| *g.get_ref()).unwrap_or_default()
    }
}

/// What commands and the file tools may do with git metadata.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum GitAccess {
    /// Readable, never written (git read operations work; commit fails).
    #[default]
    ReadOnly,
    /// Writable like the rest of the workspace.
    ReadWrite,
}

impl Default for FilesSpec {
    fn default() -> Self {
        FilesSpec {
            read: match_everything(),
            write: match_everything(),
            deny: Vec::new(),
            git: None,
        }
    }
}

fn match_everything() -> Vec<Spanned<String>> {
    vec![Spanned::new(0..0, "**".to_string())]
}

/// Size limits for the file tools, in bytes.
#[derive(Debug, Deserialize, JsonSchema)]
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

/// Shell tool calls: which programs, and the sandbox they run in.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellSpec {
    /// Allow `shell` requests (a string run by `/bin/sh -c`). The sandbox,
    /// not the command list, is then what holds.
    #[serde(default = "no")]
    #[schemars(with = "bool")]
    pub allow_shell: Spanned<bool>,
    /// Grant network access (the host's network namespace, TCP allowed).
    #[serde(default = "no")]
    #[schemars(with = "bool")]
    pub network: Spanned<bool>,
    /// `PATH` inside the sandbox; program names are resolved on it.
    #[serde(default = "default_path")]
    pub path: Vec<String>,
    /// Host directories bind-mounted read-only, at the same path, into the
    /// sandbox.
    #[serde(default = "default_system_dirs")]
    #[schemars(with = "Vec<String>")]
    pub system_dirs: Vec<Spanned<String>>,
    /// Entries of the host's /etc visible (read-only) in the sandbox; the
    /// rest of /etc (shadow, ssl/private, the daemon's config) is absent.
    #[serde(default = "default_etc")]
    pub etc: Vec<String>,
    /// The unprivileged uid commands run as.
    #[serde(default = "default_sandbox_id")]
    pub uid: u32,
    /// The unprivileged gid commands run as.
    #[serde(default = "default_sandbox_id")]
    pub gid: u32,
    /// Environment variable names a request may set (globs, e.g. `CARGO_*`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub env: Vec<Spanned<String>>,
    /// Default wall-clock timeout of a command, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Largest wall-clock timeout a request may ask for, in milliseconds.
    #[serde(default = "default_max_timeout_ms")]
    pub max_timeout_ms: u64,
    /// Default bytes of stdout and of stderr kept by `Run` (head + tail).
    #[serde(default = "default_output_budget")]
    pub output_budget_bytes: u64,
    /// Kernel-enforced limits for each command.
    #[serde(default)]
    pub limits: ShellLimitsSpec,
    /// What the host must enforce before any command of this agent runs.
    #[serde(default)]
    pub requires: RequiresSpec,
    /// The programs that may be run, each with its argument rules.
    #[serde(default)]
    pub commands: Vec<CommandSpec>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// A name resolved on the sandbox `PATH`, or an absolute path.
    #[schemars(with = "String")]
    pub program: Spanned<String>,
    /// Refuse the command when any argument matches one of these globs
    /// (e.g. `push` for git, `/` for rm).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub deny_args: Vec<Spanned<String>>,
}

/// Kernel-enforced limits for each command.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellLimitsSpec {
    /// cgroup memory limit for the whole command tree, in bytes (the
    /// command is OOM-killed, and the result says so).
    #[serde(default = "default_memory_bytes")]
    pub memory_bytes: u64,
    /// cgroup pids limit: most processes and threads at once.
    #[serde(default = "default_pids")]
    pub pids: u64,
    /// RLIMIT_CPU per process, in seconds.
    #[serde(default = "default_cpu_seconds")]
    pub cpu_seconds: u64,
    /// RLIMIT_NOFILE: most open file descriptors per process.
    #[serde(default = "default_nofile")]
    pub nofile: u64,
    /// RLIMIT_FSIZE: largest file a process may write, in bytes.
    #[serde(default = "default_fsize_bytes")]
    pub fsize_bytes: u64,
    /// Share of one CPU, in percent (100 = one core; 0 = no CPU limit).
    #[serde(default = "default_cpu_percent")]
    pub cpu_percent: u64,
}

impl Default for ShellLimitsSpec {
    fn default() -> Self {
        ShellLimitsSpec {
            memory_bytes: default_memory_bytes(),
            pids: default_pids(),
            cpu_seconds: default_cpu_seconds(),
            nofile: default_nofile(),
            fsize_bytes: default_fsize_bytes(),
            cpu_percent: default_cpu_percent(),
        }
    }
}

/// What the host must enforce before any command of this agent runs. The
/// daemon refuses to start when the host falls short.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequiresSpec {
    /// Lowest Landlock ABI version the kernel must offer.
    #[serde(default = "default_landlock_abi")]
    #[schemars(with = "u32")]
    pub landlock_abi: Spanned<u32>,
    /// Require seccomp filters.
    #[serde(default = "yes")]
    #[schemars(with = "bool")]
    pub seccomp: Spanned<bool>,
    /// Require pid, mount, ipc, uts and network namespaces.
    #[serde(default = "yes")]
    #[schemars(with = "bool")]
    pub namespaces: Spanned<bool>,
    /// Require cgroup memory and pids limits.
    #[serde(default = "yes")]
    #[schemars(with = "bool")]
    pub cgroups: Spanned<bool>,
}

impl Default for RequiresSpec {
    fn default() -> Self {
        RequiresSpec {
            landlock_abi: default_landlock_abi(),
            seccomp: yes(),
            namespaces: yes(),
            cgroups: yes(),
        }
    }
}

fn no() -> Spanned<bool> {
    Spanned::new(0..0, false)
}
fn yes() -> Spanned<bool> {
    Spanned::new(0..0, true)
}
fn default_landlock_abi() -> Spanned<u32> {
    Spanned::new(0..0, 3)
}
fn default_path() -> Vec<String> {
    ["/usr/local/bin", "/usr/bin", "/bin"]
        .map(String::from)
        .to_vec()
}
/// The sandbox's own defaults: one list, in `sandbox::spec`.
fn default_system_dirs() -> Vec<Spanned<String>> {
    crate::sandbox::DEFAULT_SYSTEM_DIRS
        .iter()
        .map(|p| Spanned::new(0..0, p.to_string()))
        .collect()
}
fn default_etc() -> Vec<String> {
    crate::sandbox::DEFAULT_ETC
        .iter()
        .map(|e| e.to_string())
        .collect()
}
fn default_sandbox_id() -> u32 {
    65534
}
fn default_timeout_ms() -> u64 {
    60_000
}
fn default_max_timeout_ms() -> u64 {
    600_000
}
fn default_output_budget() -> u64 {
    1024 * 1024
}
fn default_memory_bytes() -> u64 {
    1024 * 1024 * 1024
}
fn default_pids() -> u64 {
    256
}
fn default_cpu_seconds() -> u64 {
    600
}
fn default_nofile() -> u64 {
    1024
}
fn default_fsize_bytes() -> u64 {
    1024 * 1024 * 1024
}
fn default_cpu_percent() -> u64 {
    100
}
