//! Loading a policy directory into a `CompiledPolicy`, collecting every
//! error with its `file:line:col` instead of stopping at the first.

use super::compile::{
    AgentPolicy, CompiledPolicy, Limits, WorkspacePolicy, WorkspaceRules, build_globset_with,
    compile_glob_with, file_rules,
};
use super::decide::RuleSet;
use super::model::{AgentSpec, GitAccess, PolicyFile, ShellSpec, WorkspaceAccess};
use super::roles::{Role, ToolGrant};
use super::shell::{CommandRule, Requirements, ShellLimits, ShellPolicy, resolve_program};
use cap_std::fs::Dir;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

/// The embedded default policy: one local agent, a workspace it creates.
pub const EMBEDDED_DEFAULT_POLICY: &str = include_str!("../../policies/default.toml");
const EMBEDDED_NAME: &str = "<embedded>/default.toml";

/// One problem found in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDiagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for PolicyDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// A policy that cannot be used, with every reason found.
#[derive(Debug)]
pub struct LoadError {
    pub diagnostics: Vec<PolicyDiagnostic>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// Options that affect how paths in policies are interpreted.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Expansion of `${STATE_DIRECTORY}` in workspace paths.
    pub state_dir: PathBuf,
    /// Open (and create) the workspace roots. `policy check` of a directory
    /// meant for another host can turn this off.
    pub open_workspaces: bool,
}

/// Loads every `*.toml` file of `dir` (sorted by name) as one policy.
pub fn load_dir(dir: &Path, opts: &LoadOptions) -> Result<CompiledPolicy, LoadError> {
    let sources = read_sources(dir)?;
    compile_sources(&sources, opts)
}

/// Loads the policy compiled into the binary.
pub fn load_embedded_default(opts: &LoadOptions) -> Result<CompiledPolicy, LoadError> {
    compile_sources(
        &[(
            PathBuf::from(EMBEDDED_NAME),
            EMBEDDED_DEFAULT_POLICY.to_string(),
        )],
        opts,
    )
}

pub fn read_sources(dir: &Path) -> Result<Vec<(PathBuf, String)>, LoadError> {
    let whole_dir_error = |message: String| LoadError {
        diagnostics: vec![PolicyDiagnostic {
            file: dir.to_path_buf(),
            line: 0,
            col: 0,
            message,
        }],
    };
    let entries = std::fs::read_dir(dir)
        .map_err(|e| whole_dir_error(format!("cannot read the policy directory: {e}")))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(whole_dir_error(
            "no *.toml policy files found; add one (see policies/README.md)".into(),
        ));
    }
    let mut sources = Vec::with_capacity(paths.len());
    let mut diagnostics = Vec::new();
    for path in paths {
        match std::fs::read_to_string(&path) {
            Ok(text) => sources.push((path, text)),
            Err(e) => diagnostics.push(PolicyDiagnostic {
                file: path,
                line: 0,
                col: 0,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    if diagnostics.is_empty() {
        Ok(sources)
    } else {
        Err(LoadError { diagnostics })
    }
}

/// Parses, validates and compiles a set of policy sources.
pub fn compile_sources(
    sources: &[(PathBuf, String)],
    opts: &LoadOptions,
) -> Result<CompiledPolicy, LoadError> {
    let mut diags = Vec::new();
    let mut agents = HashMap::new();
    let mut by_uid: HashMap<u32, String> = HashMap::new();
    let mut remote = super::remote::RemoteIdentities::default();
    let mut roles: HashMap<String, Role> = HashMap::new();
    // Agents' role names, resolved once every file's roles are known.
    let mut role_refs: Vec<(String, Vec<(String, PolicyDiagnostic)>)> = Vec::new();
    let mut hasher = Sha256::new();
    let mut redact_patterns = Vec::new();
    let mut redact_builtin = true;
    for (file, text) in sources {
        hasher.update(file.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
        hasher.update([0]);
        let mut ctx = FileCtx {
            file,
            text,
            diags: &mut diags,
        };
        let parsed: PolicyFile = match toml::from_str(text) {
            Ok(p) => p,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                ctx.error(&span, e.message().to_string());
                continue;
            }
        };
        // An empty file (or one cut short before its first table, as a
        // truncated save leaves it) would lock every caller out: refused, so
        // a reload keeps the policy in force.
        if parsed.agents.is_empty() && parsed.redact.is_none() {
            ctx.error(
                &(0..0),
                "this policy file defines no agents (is it empty, or was a save cut short?); \
                 every caller would be refused: add an [[agents]] table, or remove the file"
                    .into(),
            );
            continue;
        }
        if let Some(redact) = &parsed.redact {
            redact_builtin &= redact.builtin;
            for pattern in &redact.patterns {
                match regex::Regex::new(pattern.get_ref()) {
                    Ok(re) => redact_patterns.push(re),
                    Err(e) => ctx.error(&pattern.span(), format!("invalid redact pattern: {e}")),
                }
            }
        }
        for (name, spec) in &parsed.roles {
            if roles.contains_key(name) {
                ctx.error(
                    &spec.span(),
                    format!("role \"{name}\" is defined twice; role names must be unique"),
                );
                continue;
            }
            match Role::compile(name, spec.get_ref(), ctx.location(&spec.span())) {
                Ok(role) => {
                    roles.insert(name.clone(), role);
                }
                Err((at, message)) => ctx.error(&(at..at), message),
            }
        }
        for spec in parsed.agents {
            let name = spec.name.get_ref().clone();
            if agents.contains_key(&name) {
                ctx.error(
                    &spec.name.span(),
                    format!("agent \"{name}\" is defined twice; agent names must be unique"),
                );
                continue;
            }
            for uid in caller_uids(&spec, &mut ctx) {
                let (span, uid) = uid;
                if let Some(other) = by_uid.get(&uid) {
                    ctx.error(
                        &span,
                        format!("uid {uid} already maps to agent \"{other}\"; a caller must map to exactly one agent"),
                    );
                } else {
                    by_uid.insert(uid, name.clone());
                }
            }
            if let Some(spec) = &spec.remote {
                for tls_name in &spec.tls_names {
                    if let Err(e) = remote.add_tls_name(tls_name.get_ref(), &name) {
                        ctx.error(&tls_name.span(), e);
                    }
                }
                for digest in &spec.token_sha256 {
                    if let Err(e) = remote.add_token_sha256(digest.get_ref(), &name) {
                        ctx.error(&digest.span(), e);
                    }
                }
            }
            let refs = spec
                .roles
                .iter()
                .map(|r| {
                    let (line, col) = line_col(text, r.span().start);
                    let at = PolicyDiagnostic {
                        file: file.clone(),
                        line,
                        col,
                        message: String::new(),
                    };
                    (r.get_ref().clone(), at)
                })
                .collect();
            role_refs.push((name.clone(), refs));
            if let Some(agent) = compile_agent(spec, &mut ctx, opts) {
                agents.insert(name, Arc::new(agent));
            }
        }
    }
    for (agent, refs) in role_refs {
        let mut resolved = Vec::new();
        for (role, mut at) in refs {
            match roles.get(&role) {
                Some(r) => resolved.push((role, r.clone())),
                None => {
                    let mut known: Vec<&str> = roles.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    at.message = format!(
                        "agent \"{agent}\": no role named \"{role}\" (roles: {}); define it \
                         as [roles.{role}]",
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    );
                    diags.push(at);
                }
            }
        }
        if let Some(policy) = agents.get_mut(&agent).and_then(Arc::get_mut) {
            policy.tools = ToolGrant::from_roles(&agent, &resolved);
        }
    }
    if diags.is_empty() && agents.is_empty() {
        if let Some((file, _)) = sources.first() {
            diags.push(PolicyDiagnostic {
                file: file.clone(),
                line: 1,
                col: 1,
                message: "the policy defines no agents; every caller would be refused: add an \
                          [[agents]] table"
                    .into(),
            });
        }
    }
    if !diags.is_empty() {
        return Err(LoadError { diagnostics: diags });
    }
    Ok(CompiledPolicy {
        agents,
        by_uid,
        remote,
        redactor: crate::audit::Redactor::new(&redact_patterns, redact_builtin),
        version: hex::encode(hasher.finalize())[..16].to_string(),
        sources: sources.iter().map(|(p, _)| p.clone()).collect(),
    })
}

/// Reports diagnostics against one source file.
struct FileCtx<'a> {
    file: &'a Path,
    text: &'a str,
    diags: &'a mut Vec<PolicyDiagnostic>,
}

impl FileCtx<'_> {
    fn error(&mut self, span: &std::ops::Range<usize>, message: String) {
        let (line, col) = line_col(self.text, span.start);
        self.diags.push(PolicyDiagnostic {
            file: self.file.to_path_buf(),
            line,
            col,
            message,
        });
    }

    /// `file:line` of a span, for rule names.
    fn location(&self, span: &std::ops::Range<usize>) -> String {
        rule_location(self.file, self.text, span)
    }
}

/// `file:line` of a span as rule names give it (`default` for a value the
/// file does not set).
pub(crate) fn rule_location(file: &Path, text: &str, span: &std::ops::Range<usize>) -> String {
    if span.is_empty() {
        return "default".into();
    }
    let (line, _) = line_col(text, span.start);
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{name}:{line}")
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// The uids an agent claims, with the span to blame for each.
fn caller_uids(spec: &AgentSpec, ctx: &mut FileCtx<'_>) -> Vec<(std::ops::Range<usize>, u32)> {
    let mut uids: Vec<_> = spec.uids.iter().map(|u| (u.span(), *u.get_ref())).collect();
    for user in &spec.users {
        match nix::unistd::User::from_name(user.get_ref()) {
            Ok(Some(u)) => uids.push((user.span(), u.uid.as_raw())),
            Ok(None) => ctx.error(
                &user.span(),
                format!("no user named \"{}\" on this host", user.get_ref()),
            ),
            Err(e) => ctx.error(&user.span(), format!("cannot look up user: {e}")),
        }
    }
    if let Some(flag) = &spec.daemon_user {
        if *flag.get_ref() {
            uids.push((flag.span(), nix::unistd::getuid().as_raw()));
        }
    }
    uids.sort_by_key(|(_, uid)| *uid);
    uids.dedup_by_key(|(_, uid)| *uid);
    uids
}

fn compile_agent(
    spec: AgentSpec,
    ctx: &mut FileCtx<'_>,
    opts: &LoadOptions,
) -> Option<AgentPolicy> {
    let agent = spec.name.get_ref().clone();
    let errors_before = ctx.diags.len();
    if agent.is_empty()
        || !agent
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        ctx.error(
            &spec.name.span(),
            "agent name must be non-empty and use only letters, digits, '-', '_' and '.'".into(),
        );
    }
    let read = compile_rules(&agent, "files.read", &spec.files.read, GlobKind::Path, ctx);
    let write = compile_rules(
        &agent,
        "files.write",
        &spec.files.write,
        GlobKind::Path,
        ctx,
    );
    let deny = compile_rules(&agent, "files.deny", &spec.files.deny, GlobKind::Path, ctx);
    let limits = Limits {
        max_read_bytes: spec.limits.max_read_bytes,
        max_write_bytes: spec.limits.max_write_bytes,
        max_file_bytes: spec.limits.max_file_bytes,
    };
    if spec.workspaces.get_ref().is_empty() {
        ctx.error(
            &spec.workspaces.span(),
            format!("agent \"{agent}\" needs at least one workspace"),
        );
    }
    // A workspace the daemon creates goes to the sandbox user, so commands
    // and the file tools (which give new files to the root's owner) agree.
    let created_owner = spec.shell.as_ref().map(|s| (s.uid, s.gid));
    let mut workspaces: Vec<WorkspacePolicy> = Vec::new();
    let mut workspace_rules: Vec<WorkspaceRules> = Vec::new();
    for ws in spec.workspaces.into_inner() {
        let name = ws.name.get_ref().clone();
        if workspace_rules.iter().any(|w| w.name == name) {
            ctx.error(
                &ws.name.span(),
                format!("workspace \"{name}\" is defined twice for agent \"{agent}\""),
            );
            continue;
        }
        let path = PathBuf::from(
            ws.path
                .get_ref()
                .replace("${STATE_DIRECTORY}", &opts.state_dir.to_string_lossy()),
        );
        if !path.is_absolute() {
            ctx.error(
                &ws.path.span(),
                format!("workspace path \"{}\" must be absolute", path.display()),
            );
            continue;
        }
        let (Some(read), Some(write), Some(deny)) = (&read, &write, &deny) else {
            continue;
        };
        let read_only = ws.access == WorkspaceAccess::ReadOnly;
        let mut rules = file_rules(
            read.clone(),
            write.clone(),
            deny.clone(),
            &agent,
            &name,
            read_only,
        );
        if spec.files.git_access() == GitAccess::ReadWrite {
            rules.allow_git_writes();
        }
        workspace_rules.push(WorkspaceRules {
            name: name.clone(),
            path: path.clone(),
            read_only,
            rules: rules.clone(),
        });
        let opened = if opts.open_workspaces {
            match open_workspace(&path, ws.create, created_owner) {
                Ok(opened) => Some(opened),
                Err(message) => {
                    ctx.error(&ws.path.span(), message);
                    continue;
                }
            }
        } else {
            None
        };
        let (root, owner_uid, owner_gid) = match opened {
            Some(o) => o,
            None => continue,
        };
        workspaces.push(WorkspacePolicy {
            name,
            path,
            read_only,
            root: Arc::new(root),
            owner_uid,
            owner_gid,
            rules,
        });
    }
    let shell = spec.shell.map(|shell| compile_shell(&agent, shell, ctx));
    if ctx.diags.len() > errors_before {
        return None;
    }
    Some(AgentPolicy {
        name: agent,
        workspaces,
        workspace_rules,
        limits,
        shell,
        tools: Default::default(),
        rate: super::ratelimit::RateLimits::from_spec(spec.rate_limits.as_ref()),
        sessions: super::sessions::SessionPolicy::from_spec(spec.sessions.as_ref()),
    })
}

fn compile_shell(agent: &str, spec: ShellSpec, ctx: &mut FileCtx<'_>) -> ShellPolicy {
    let env_allow = compile_rules(agent, "shell.env", &spec.env, GlobKind::Text, ctx)
        .unwrap_or_else(RuleSet::empty);
    let mut system_dirs = Vec::new();
    for p in &spec.system_dirs {
        if !p.get_ref().starts_with('/') {
            ctx.error(
                &p.span(),
                format!("system dir \"{}\" must be absolute", p.get_ref()),
            );
        } else {
            system_dirs.push(PathBuf::from(p.get_ref()));
        }
    }
    if spec.timeout_ms == 0 || spec.timeout_ms > spec.max_timeout_ms {
        ctx.error(
            &(0..0),
            format!(
                "agent \"{agent}\": shell.timeout_ms must be between 1 and shell.max_timeout_ms"
            ),
        );
    }
    let mut commands = Vec::new();
    for command in &spec.commands {
        let program = command.program.get_ref();
        if program.is_empty() || (program.contains('/') && !program.starts_with('/')) {
            ctx.error(
                &command.program.span(),
                format!(
                    "program \"{program}\" must be a name on the sandbox PATH or an absolute path"
                ),
            );
            continue;
        }
        let deny_args = compile_rules(
            agent,
            &format!("shell.commands[{program}].deny_args"),
            &command.deny_args,
            GlobKind::Text,
            ctx,
        )
        .unwrap_or_else(RuleSet::empty);
        commands.push(CommandRule {
            program: program.clone(),
            resolved: resolve_program(program, &spec.path),
            deny_args,
            rule: Arc::from(format!(
                "{agent}: shell.commands \"{program}\" ({})",
                ctx.location(&command.program.span())
            )),
        });
    }
    let l = &spec.limits;
    let r = &spec.requires;
    ShellPolicy {
        agent: agent.to_string(),
        allow_shell: *spec.allow_shell.get_ref(),
        network: *spec.network.get_ref(),
        path: spec.path.clone(),
        system_dirs,
        etc: spec.etc.clone(),
        uid: spec.uid,
        gid: spec.gid,
        env_allow,
        timeout: Duration::from_millis(spec.timeout_ms),
        max_timeout: Duration::from_millis(spec.max_timeout_ms),
        output_budget_bytes: spec.output_budget_bytes,
        limits: ShellLimits {
            memory_bytes: l.memory_bytes,
            pids: l.pids,
            cpu_seconds: l.cpu_seconds,
            nofile: l.nofile,
            fsize_bytes: l.fsize_bytes,
            cpu_percent: l.cpu_percent,
        },
        requires: Requirements {
            landlock_abi: *r.landlock_abi.get_ref(),
            seccomp: *r.seccomp.get_ref(),
            namespaces: *r.namespaces.get_ref(),
            cgroups: *r.cgroups.get_ref(),
        },
        commands,
        shell_rule: Arc::from(format!(
            "{agent}: shell.allow_shell ({})",
            ctx.location(&spec.allow_shell.span())
        )),
    }
}

/// What a list of globs matches: workspace paths (`*` stops at `/`) or
/// plain text such as arguments and variable names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum GlobKind {
    Path,
    Text,
}

fn compile_rules(
    agent: &str,
    key: &str,
    globs: &[Spanned<String>],
    kind: GlobKind,
    ctx: &mut FileCtx<'_>,
) -> Option<super::decide::RuleSet> {
    let mut named = Vec::with_capacity(globs.len());
    let mut ok = true;
    for glob in globs {
        let text = glob.get_ref();
        if let Err(e) = compile_glob_with(text, kind == GlobKind::Path) {
            ctx.error(
                &glob.span(),
                format!("invalid glob \"{text}\" in {key}: {}", e.kind()),
            );
            ok = false;
            continue;
        }
        if kind == GlobKind::Path && text.starts_with('/') {
            ctx.error(
                &glob.span(),
                format!(
                    "glob \"{text}\" in {key} is absolute; globs are relative to the workspace root"
                ),
            );
            ok = false;
            continue;
        }
        let at = ctx.location(&glob.span());
        named.push((
            text.clone(),
            Arc::<str>::from(format!("{agent}: {key} \"{text}\" ({at})")),
        ));
    }
    if !ok {
        return None;
    }
    match build_globset_with(&named, kind == GlobKind::Path) {
        Ok(set) => Some(set),
        Err((i, e)) => {
            let span = globs.get(i).map(|g| g.span()).unwrap_or(0..0);
            ctx.error(&span, format!("cannot compile {key}: {e}"));
            None
        }
    }
}

/// Opens (creating if asked) a workspace root; returns the handle and owner.
fn open_workspace(
    path: &Path,
    create: bool,
    owner: Option<(u32, u32)>,
) -> Result<(Dir, u32, u32), String> {
    if create && !path.exists() {
        std::fs::create_dir_all(path)
            .map_err(|e| format!("cannot create workspace {}: {e}", path.display()))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| {
                format!(
                    "cannot give workspace {} to {uid}:{gid}: {e}",
                    path.display()
                )
            })?;
        }
    }
    let meta = std::fs::metadata(path).map_err(|e| {
        format!(
            "workspace {} is not usable: {e}; create it or set create = true",
            path.display()
        )
    })?;
    if !meta.is_dir() {
        return Err(format!("workspace {} is not a directory", path.display()));
    }
    let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority())
        .map_err(|e| format!("cannot open workspace {}: {e}", path.display()))?;
    Ok((dir, meta.uid(), meta.gid()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path) -> LoadOptions {
        LoadOptions {
            state_dir: dir.to_path_buf(),
            open_workspaces: true,
        }
    }

    fn compile(text: &str, dir: &Path) -> Result<CompiledPolicy, LoadError> {
        compile_sources(&[(PathBuf::from("p.toml"), text.to_string())], &opts(dir))
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }

    #[test]
    fn embedded_default_compiles() {
        let tmp = tempfile::tempdir().unwrap();
        let p = load_embedded_default(&opts(tmp.path())).unwrap();
        assert!(p.agent("local").is_some());
        assert!(tmp.path().join("workspaces/local").is_dir());
    }

    #[test]
    fn unknown_key_reports_line_and_column() {
        let tmp = tempfile::tempdir().unwrap();
        let err = compile(
            "[[agents]]\nname = \"a\"\nbogus = 1\nworkspaces = []\n",
            tmp.path(),
        )
        .unwrap_err();
        let d = &err.diagnostics[0];
        assert_eq!((d.line, d.col), (3, 1), "{err}");
        assert!(d.message.contains("bogus"), "{err}");
    }

    #[test]
    fn bad_glob_reports_its_position() {
        let tmp = tempfile::tempdir().unwrap();
        let text = format!(
            "[[agents]]\nname = \"a\"\n[[agents.workspaces]]\nname = \"w\"\npath = \"{}\"\n[agents.files]\ndeny = [\"ok\", \"a[\"]\n",
            tmp.path().display()
        );
        let err = compile(&text, tmp.path()).unwrap_err();
        let d = &err.diagnostics[0];
        assert_eq!((d.line, d.col), (7, 15), "{err}");
        assert!(d.message.contains("invalid glob"), "{err}");
    }

    #[test]
    fn deny_wins_and_names_its_rule() {
        let tmp = tempfile::tempdir().unwrap();
        let text = format!(
            "[[agents]]\nname = \"a\"\nuids = [4242]\n[[agents.workspaces]]\nname = \"w\"\npath = \"{}\"\n[agents.files]\ndeny = [\"**/.env\"]\n",
            tmp.path().display()
        );
        let p = compile(&text, tmp.path()).unwrap();
        let agent = p.agent_for_uid(4242).unwrap();
        let rules = &agent.workspace("").unwrap().rules;
        let d = rules.check(super::super::Access::Read, "sub/.env", false);
        assert!(!d.allowed);
        assert!(
            d.rule.contains("files.deny \"**/.env\" (p.toml:8)"),
            "{}",
            d.rule
        );
        let d = rules.check(super::super::Access::Write, "sub/main.rs", false);
        assert!(d.allowed, "{}", d.rule);
    }
}
