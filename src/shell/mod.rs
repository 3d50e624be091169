//! Shell tool calls: decide a request against the command policy, turn it
//! into a sandbox spec, launch it on the launcher thread, and drive it.

pub mod env;
pub mod host;
pub mod launcher;
pub mod output;
pub mod run;

use crate::error::{Reason, ToolError};
use crate::policy::{AgentPolicy, ShellPolicy, WorkspacePolicy};
use crate::proto::ExecRequest;
use crate::sandbox::{self, SandboxSpec, Stdin};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where the request's workspace appears inside the sandbox.
pub const WORKSPACE_MOUNT: &str = "/workspace";
/// Every command's hostname (its own UTS namespace), deterministic or not.
pub const HOSTNAME: &str = "agentjail";
/// The umask of deterministic commands (others inherit the daemon's).
pub const DETERMINISTIC_UMASK: u32 = 0o022;
/// What determinism mode fixes in a sandbox (both None when it is off).
pub struct Determinism {
    /// `SOURCE_DATE_EPOCH` for [`env::build`].
    pub source_date_epoch: Option<u64>,
    pub umask: Option<u32>,
}

/// Determinism mode for `agent`: its policy's, or asked for by a request.
pub fn determinism(agent: &AgentPolicy, requested: bool) -> Determinism {
    let on = agent.deterministic || requested;
    Determinism {
        source_date_epoch: on.then_some(agent.source_date_epoch),
        umask: on.then_some(DETERMINISTIC_UMASK),
    }
}

/// Largest stdin a request may carry.
pub const MAX_STDIN_BYTES: usize = 16 * 1024 * 1024;

/// A request the policy allowed, ready to launch (its sandbox spec is
/// returned beside it, to be moved into the launcher).
pub struct Prepared {
    pub stdin: Vec<u8>,
    pub deadlines: run::Deadlines,
    pub rule: Arc<str>,
    /// argv as it will run (argv[0] resolved), for logs and audit.
    pub argv: Vec<String>,
    pub cwd: String,
    /// Set while git metadata is read-only: what to sweep when the call ends.
    pub git_sweep: Option<GitSweep>,
}

/// The `.git` entries a workspace held when a command started; any other
/// one the sandbox user made is removed when the call ends.
pub struct GitSweep {
    agent: Arc<AgentPolicy>,
    workspace: usize,
    before: std::collections::HashSet<PathBuf>,
    uid: u32,
}

impl GitSweep {
    /// Removes `.git` entries the command created (blocking: run it off the
    /// async threads). Logged, since it changes the workspace.
    pub fn run(self) {
        let ws = &self.agent.workspaces[self.workspace];
        match crate::fs::survey::sweep_new_git(ws, &self.before, self.uid) {
            Ok(removed) if !removed.is_empty() => tracing::warn!(
                agent = %self.agent.name,
                workspace = %ws.name,
                removed = ?removed,
                "removed .git entries a command created (files.git is read-only)"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(
                agent = %self.agent.name,
                workspace = %ws.name,
                error = %e.message,
                "could not check the workspace for .git entries a command created"
            ),
        }
    }
}

pub fn shell_policy(agent: &AgentPolicy) -> Result<&ShellPolicy, ToolError> {
    agent.shell.as_ref().ok_or_else(|| {
        ToolError::denied(
            &format!("{}: no [agents.shell] table", agent.name),
            format!(
                "agent \"{}\" may not run commands; ask for an [agents.shell] table in its policy",
                agent.name
            ),
        )
    })
}

/// A refusal that names the rule and what the agent may run instead (also
/// in ErrorInfo: `allowed_programs`, comma-separated, and `allow_shell`).
fn refused_command(shell: &ShellPolicy, rule: &str) -> ToolError {
    const SHOWN: usize = 40;
    let mut names: Vec<&str> = shell
        .commands
        .iter()
        .map(|c| c.program.as_str())
        .take(SHOWN)
        .collect();
    if shell.commands.len() > SHOWN {
        names.push("...");
    }
    let programs = names.join(",");
    let instead = match (names.is_empty(), shell.allow_shell) {
        (true, true) => "no program is allowed by name; shell strings are".to_string(),
        (true, false) => "no program is allowed by name, nor shell strings".to_string(),
        (false, true) => format!(
            "allowed programs: {}; shell strings are allowed",
            names.join(", ")
        ),
        (false, false) => format!(
            "allowed programs: {}; shell strings are not (shell.allow_shell = false)",
            names.join(", ")
        ),
    };
    ToolError::denied(
        rule,
        format!("the policy does not allow this command ({rule}); {instead}. WhoAmI lists everything this agent may do"),
    )
    .with("allowed_programs", programs)
    .with("allow_shell", shell.allow_shell.to_string())
}

/// Decides `req` for `agent` in workspace `ws` and builds the sandbox spec.
/// `call_deadline` is the client's gRPC deadline, if it sent one.
pub fn prepare(
    agent: &Arc<AgentPolicy>,
    workspace: usize,
    req: &ExecRequest,
    call_deadline: Option<Duration>,
) -> Result<(SandboxSpec, Prepared), ToolError> {
    let ws: &WorkspacePolicy = &agent.workspaces[workspace];
    let shell = shell_policy(agent)?;
    let allowed = allowed_command(shell, req, || crate::fs::resolve_dir(ws, &req.cwd))?;
    check_stdin(req)?;
    let cwd_rel = crate::fs::resolve_dir(ws, &req.cwd)?;
    let fixed = determinism(agent, req.deterministic);
    let env = env::build(shell, WORKSPACE_MOUNT, &req.env, fixed.source_date_epoch)?;
    let stdin = if req.stdin.is_empty() {
        Stdin::Null
    } else {
        Stdin::Pipe
    };
    let (mut spec, git_sweep) = sandbox_spec(
        agent,
        workspace,
        allowed.argv.clone(),
        env,
        inside(&cwd_rel),
        stdin,
    )?;
    spec.umask = fixed.umask;
    Ok((
        spec,
        Prepared {
            argv: allowed.argv,
            cwd: cwd_rel,
            stdin: req.stdin.clone(),
            deadlines: deadlines(shell, req, call_deadline),
            rule: allowed.rule,
            git_sweep,
        },
    ))
}

/// A path relative to the workspace, as the sandbox sees it.
pub fn inside(rel: &str) -> PathBuf {
    if rel.is_empty() {
        PathBuf::from(WORKSPACE_MOUNT)
    } else {
        Path::new(WORKSPACE_MOUNT).join(rel)
    }
}

/// The policy's decision on the command of `req` (argv or shell); `cwd_rel`
/// gives the directory a workspace program is looked up from.
pub fn allowed_command(
    shell: &ShellPolicy,
    req: &ExecRequest,
    cwd_rel: impl FnOnce() -> Result<String, ToolError>,
) -> Result<crate::policy::shell::AllowedCommand, ToolError> {
    match (req.argv.is_empty(), req.shell.is_empty()) {
        (false, true) => {
            if req.argv.iter().any(|a| a.contains('\0')) {
                return Err(ToolError::invalid("argv contains a NUL byte"));
            }
            // A program inside the workspace is looked up there, not on PATH.
            if crate::policy::shell::workspace_program(&req.argv[0], "").is_some() {
                let cwd = cwd_rel()?;
                shell
                    .check_workspace_argv(&req.argv, &cwd)
                    .expect("a workspace program")
            } else {
                shell.check_argv(&req.argv)
            }
        }
        (true, false) => {
            if req.shell.contains('\0') {
                return Err(ToolError::invalid("shell contains a NUL byte"));
            }
            shell.check_shell(&req.shell)
        }
        _ => {
            return Err(ToolError::invalid(
                "set exactly one of argv (a program and its arguments) or shell (a command string)",
            ));
        }
    }
    .map_err(|decision| refused_command(shell, &decision.rule))
}

/// Refuses a stdin larger than a request may carry.
pub fn check_stdin(req: &ExecRequest) -> Result<(), ToolError> {
    if req.stdin.len() > MAX_STDIN_BYTES {
        return Err(ToolError::new(
            Reason::TooLarge,
            format!("stdin is larger than {MAX_STDIN_BYTES} bytes; write it to a file instead"),
        ));
    }
    Ok(())
}

/// The command's timeout, idle timeout and output budget within the policy.
pub fn deadlines(
    shell: &ShellPolicy,
    req: &ExecRequest,
    call_deadline: Option<Duration>,
) -> run::Deadlines {
    let mut timeout = shell.timeout;
    if req.timeout_ms > 0 {
        timeout = Duration::from_millis(req.timeout_ms).min(shell.max_timeout);
    }
    if let Some(limit) = call_deadline {
        timeout = timeout.min(limit);
    }
    let budget = match req.output_budget_bytes {
        0 => shell.output_budget_bytes,
        n => n.min(shell.output_budget_bytes),
    };
    run::Deadlines {
        timeout,
        idle: (req.idle_timeout_ms > 0).then(|| Duration::from_millis(req.idle_timeout_ms)),
        budget: budget as usize,
    }
}

/// The agent's sandbox for `argv` in workspace `workspace` (a Run's, or a
/// session's), and what to sweep after it while git metadata is read-only.
pub fn sandbox_spec(
    agent: &Arc<AgentPolicy>,
    workspace: usize,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    cwd: PathBuf,
    stdin: Stdin,
) -> Result<(SandboxSpec, Option<GitSweep>), ToolError> {
    let ws: &WorkspacePolicy = &agent.workspaces[workspace];
    let shell = shell_policy(agent)?;
    let limits = &shell.limits;
    // What to pin: every denied entry (wildcard globs included) and, while
    // git metadata is read-only, every repository's metadata.
    // A walk of the workspace: blocking work, so tell a multi-threaded
    // runtime to move other tasks off this worker while it runs.
    let survey = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
            tokio::task::block_in_place(|| crate::fs::survey::survey(ws))
        }
        _ => crate::fs::survey::survey(ws),
    }?;
    crate::fs::survey::remember(ws, &survey);
    let git_protected = ws.rules.git_read_only_rule().is_some() && !ws.read_only;
    let git_sweep = git_protected.then(|| GitSweep {
        agent: agent.clone(),
        workspace,
        before: survey.git_entries.clone(),
        uid: shell.uid,
    });
    let spec = SandboxSpec {
        argv,
        env,
        cwd,
        workspace: sandbox::Workspace {
            host: ws.path.clone(),
            inside: PathBuf::from(WORKSPACE_MOUNT),
            writable: !ws.read_only,
        },
        system_dirs: shell.system_dirs.clone(),
        etc_entries: shell.etc.clone(),
        uid: shell.uid,
        gid: shell.gid,
        network: shell.network,
        limits: sandbox::Limits {
            nofile: Some(limits.nofile),
            fsize_bytes: Some(limits.fsize_bytes),
            cpu_seconds: Some(limits.cpu_seconds),
            memory_bytes: Some(limits.memory_bytes),
            pids: Some(limits.pids),
            cpu_millis: (limits.cpu_percent > 0).then_some(limits.cpu_percent * 10),
            tmp_bytes: sandbox::Limits::default().tmp_bytes,
        },
        masked: survey.denied,
        read_only_paths: if git_protected {
            survey.git.into_iter().map(|(p, _)| p).collect()
        } else {
            Vec::new()
        },
        stdin,
        hostname: HOSTNAME.into(),
        umask: None,
        session: false,
    };
    Ok((spec, git_sweep))
}
