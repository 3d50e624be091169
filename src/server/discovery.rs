//! What `WhoAmI` tells an agent it may do: per workspace its access and
//! globs, its file limits, and its commands. Built from the compiled policy
//! in force, so it cannot drift from what the daemon decides.

use crate::policy::AgentPolicy;
use crate::policy::shell::ShellPolicy;
use crate::proto::{Capabilities, CommandCapabilities, FileLimits, ProgramInfo, WorkspaceInfo};
use crate::shell::WORKSPACE_MOUNT;

pub fn workspaces(agent: &AgentPolicy) -> Vec<WorkspaceInfo> {
    agent
        .workspaces
        .iter()
        .map(|w| WorkspaceInfo {
            name: w.name.clone(),
            path: w.path.display().to_string(),
            read_only: w.read_only,
            sandbox_path: WORKSPACE_MOUNT.into(),
            access: if w.read_only {
                "read-only"
            } else {
                "read-write"
            }
            .into(),
            read: w.rules.read.globs.clone(),
            write: w.rules.write.globs.clone(),
            deny: w.rules.deny.globs.clone(),
        })
        .collect()
}

pub fn capabilities(agent: &AgentPolicy) -> Capabilities {
    Capabilities {
        file_limits: Some(FileLimits {
            max_read_bytes: agent.limits.max_read_bytes,
            max_write_bytes: agent.limits.max_write_bytes,
            max_file_bytes: agent.limits.max_file_bytes,
        }),
        commands: Some(match &agent.shell {
            Some(shell) => commands(shell),
            None => CommandCapabilities::default(),
        }),
    }
}

fn commands(shell: &ShellPolicy) -> CommandCapabilities {
    let l = &shell.limits;
    CommandCapabilities {
        allowed: true,
        programs: shell
            .commands
            .iter()
            .map(|c| ProgramInfo {
                program: c.program.clone(),
                resolved: c
                    .resolved
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                deny_args: c.deny_args.globs.clone(),
            })
            .collect(),
        shell: shell.allow_shell,
        network: shell.network,
        env: shell.env_allow.globs.clone(),
        path: shell.path.clone(),
        default_timeout_ms: shell.timeout.as_millis() as u64,
        max_timeout_ms: shell.max_timeout.as_millis() as u64,
        output_budget_bytes: shell.output_budget_bytes,
        memory_bytes: l.memory_bytes,
        pids: l.pids,
        cpu_seconds: l.cpu_seconds,
        nofile: l.nofile,
        fsize_bytes: l.fsize_bytes,
        cpu_percent: l.cpu_percent,
        workspace_mount: WORKSPACE_MOUNT.into(),
    }
}
