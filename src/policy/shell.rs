//! The command policy: which programs an agent may run, with which
//! arguments and environment, and the sandbox limits they run under. This is
//! a first gate; the kernel-enforced sandbox is the boundary.

use super::decide::{Decision, RuleSet};
use crate::shell::WORKSPACE_MOUNT;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What the host must enforce before any command of an agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirements {
    pub landlock_abi: u32,
    pub seccomp: bool,
    pub namespaces: bool,
    pub cgroups: bool,
}

/// Per-command resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShellLimits {
    pub memory_bytes: u64,
    pub pids: u64,
    pub cpu_seconds: u64,
    pub nofile: u64,
    pub fsize_bytes: u64,
    pub cpu_percent: u64,
}

/// One allowed program.
#[derive(Debug, Clone)]
pub struct CommandRule {
    /// As written in the policy.
    pub program: String,
    /// Where it resolved at load (canonical host path), if it exists.
    pub resolved: Option<PathBuf>,
    pub deny_args: RuleSet,
    pub rule: Arc<str>,
}

#[derive(Debug, Clone)]
pub struct ShellPolicy {
    pub agent: String,
    pub allow_shell: bool,
    pub network: bool,
    pub path: Vec<String>,
    pub system_dirs: Vec<PathBuf>,
    pub etc: Vec<String>,
    pub uid: u32,
    pub gid: u32,
    pub env_allow: RuleSet,
    pub timeout: Duration,
    pub max_timeout: Duration,
    pub output_budget_bytes: u64,
    pub limits: ShellLimits,
    pub requires: Requirements,
    pub commands: Vec<CommandRule>,
    pub shell_rule: Arc<str>,
}

/// A command the policy allowed, ready for the sandbox.
#[derive(Debug, Clone)]
pub struct AllowedCommand {
    /// argv with argv[0] replaced by the absolute path found on `PATH`.
    pub argv: Vec<String>,
    pub program: PathBuf,
    pub rule: Arc<str>,
}

/// Resolves a program name on `path` (host view: the sandbox binds the same
/// directories), or canonicalises an absolute one.
pub fn resolve_program(program: &str, path: &[String]) -> Option<PathBuf> {
    find_program(program, path).and_then(|p| std::fs::canonicalize(p).ok())
}

/// The executable a program name denotes: itself when absolute, else the
/// first hit on `path`. Names with a `/` elsewhere, or starting with `-`,
/// denote nothing.
pub fn find_program(program: &str, path: &[String]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.starts_with('/') {
        Some(PathBuf::from(program)).filter(|p| is_executable(p))
    } else if program.contains('/') || program.is_empty() || program.starts_with('-') {
        None
    } else {
        path.iter()
            .map(|dir| Path::new(dir).join(program))
            .find(|p| is_executable(p))
    }
}

/// The normalised workspace-relative path a program names when it is
/// inside the workspace (`/workspace/...`, or relative with a `/`, from
/// `cwd`): Some(None) when such a path climbs out; None for a program name
/// or another absolute path.
pub fn workspace_program(program: &str, cwd: &str) -> Option<Option<String>> {
    let raw = if program.starts_with('/') {
        let rest = Path::new(program).strip_prefix(WORKSPACE_MOUNT).ok()?;
        rest.to_str()?.to_string()
    } else if program.contains('/') {
        crate::fs::join(cwd, program)
    } else {
        return None;
    };
    Some(crate::fs::normalize_relative(&raw))
}

impl ShellPolicy {
    /// Decides an argv request. On allow, argv[0] becomes the absolute path
    /// that will be executed, so what runs is what was decided.
    pub fn check_argv(&self, argv: &[String]) -> Result<AllowedCommand, Decision> {
        let program = &argv[0];
        let found = find_program(program, &self.path);
        let resolved = found.as_ref().and_then(|p| std::fs::canonicalize(p).ok());
        let (Some(found), Some(resolved)) = (found, resolved) else {
            return Err(Decision::deny(Arc::from(format!(
                "{}: program \"{program}\" not found on the sandbox PATH {:?}",
                self.agent, self.path
            ))));
        };
        // A program missing at load is looked up again (it may have been
        // installed since); the others compare without allocating.
        let rule = self.commands.iter().find(|c| match &c.resolved {
            Some(target) => *target == resolved,
            None => resolve_program(&c.program, &self.path).as_deref() == Some(resolved.as_path()),
        });
        let Some(rule) = rule else {
            return Err(Decision::deny(Arc::from(format!(
                "{}: no shell.commands entry allows \"{}\"",
                self.agent,
                resolved.display()
            ))));
        };
        for arg in &argv[1..] {
            if let Some(denied) = rule.deny_args.first_match(arg) {
                return Err(Decision::deny(denied.clone()));
            }
        }
        // Run the path that was found (not its canonical target): multi-call
        // binaries look at their name. The decision used the canonical one.
        let mut argv = argv.to_vec();
        argv[0] = found.to_string_lossy().into_owned();
        Ok(AllowedCommand {
            argv,
            program: resolved,
            rule: rule.rule.clone(),
        })
    }

    /// Decides an argv request whose program is inside the workspace:
    /// `/workspace/...`, or a relative path with a `/` (from the command's
    /// working directory `cwd`, workspace-relative). None when argv[0] is
    /// not such a path. Allowed only when a shell.commands entry names the
    /// same `/workspace` path: what the workspace holds is the agent's to
    /// change, so the policy opts in program by program.
    pub fn check_workspace_argv(
        &self,
        argv: &[String],
        cwd: &str,
    ) -> Option<Result<AllowedCommand, Decision>> {
        let rel = workspace_program(&argv[0], cwd)?;
        let deny = |why: String| Some(Err(Decision::deny(Arc::from(why))));
        let Some(rel) = rel.filter(|r| !r.is_empty()) else {
            return deny(format!(
                "{}: program \"{}\" is not a file inside the workspace",
                self.agent, argv[0]
            ));
        };
        let inside = format!("{WORKSPACE_MOUNT}/{rel}");
        let rule = self.commands.iter().find(|c| {
            c.program.starts_with('/')
                && workspace_program(&c.program, "") == Some(Some(rel.clone()))
        });
        let Some(rule) = rule else {
            return deny(format!(
                "{}: no shell.commands entry allows \"{inside}\" (a program inside the workspace \
                 runs only when an entry names its {WORKSPACE_MOUNT} path)",
                self.agent
            ));
        };
        for arg in &argv[1..] {
            if let Some(denied) = rule.deny_args.first_match(arg) {
                return Some(Err(Decision::deny(denied.clone())));
            }
        }
        let mut argv = argv.to_vec();
        argv[0] = inside.clone();
        Some(Ok(AllowedCommand {
            argv,
            program: PathBuf::from(inside),
            rule: rule.rule.clone(),
        }))
    }

    /// Decides a `shell` request: `/bin/sh -c COMMAND`.
    pub fn check_shell(&self, command: &str) -> Result<AllowedCommand, Decision> {
        if !self.allow_shell {
            return Err(Decision::deny(Arc::from(format!(
                "{}: shell.allow_shell is false",
                self.agent
            ))));
        }
        Ok(AllowedCommand {
            argv: vec!["/bin/sh".into(), "-c".into(), command.into()],
            program: PathBuf::from("/bin/sh"),
            rule: self.shell_rule.clone(),
        })
    }

    /// The first requested environment name the policy does not allow.
    pub fn disallowed_env<'a>(&self, names: impl Iterator<Item = &'a String>) -> Option<&'a str> {
        names
            .map(String::as_str)
            .find(|name| self.env_allow.first_match(name).is_none())
    }
}
