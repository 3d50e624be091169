//! What `WhoAmI` tells an agent it may do: per workspace its access and
//! globs, its file limits, and its commands. Built from the compiled policy
//! in force, so it cannot drift from what the daemon decides.

use super::budget::{Budgets, Kind as BudgetKind};
use super::caps::{Caps, Kind as CapKind};
use crate::policy::AgentPolicy;
use crate::policy::shell::ShellPolicy;
use crate::proto::{
    AgentLimits, BudgetUsage, Capabilities, CommandCapabilities, FileLimits, ProgramInfo, Usage,
    WorkspaceInfo,
};
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

pub fn capabilities(agent: &AgentPolicy, caps: &Caps) -> Capabilities {
    Capabilities {
        limits: Some(limits(agent, caps)),
        deterministic: agent.deterministic,
        source_date_epoch: agent.source_date_epoch,
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

/// The limits in force, from the one resolution the daemon enforces.
fn limits(agent: &AgentPolicy, caps: &Caps) -> AgentLimits {
    let q = &agent.quota;
    let rate = |r: Option<std::num::NonZeroU32>| r.map_or(0, |r| r.get());
    AgentLimits {
        read_per_second: rate(q.rate.read),
        write_per_second: rate(q.rate.write),
        command_per_second: rate(q.rate.command),
        concurrent_file_calls: caps.max(CapKind::FileCall, q.concurrent_file_calls) as u32,
        concurrent_commands: caps.max(CapKind::Command, q.concurrent_commands) as u32,
        budget_window_seconds: q.budgets.window.as_secs(),
        command_cpu_seconds: q.budgets.command_cpu.map_or(0, |d| d.as_secs()),
        command_wall_seconds: q.budgets.command_wall.map_or(0, |d| d.as_secs()),
        write_bytes: q.budgets.write_bytes.unwrap_or(0),
        sources: q
            .sources
            .iter()
            .map(|s| (s.key.to_string(), s.from.clone()))
            .collect(),
    }
}

/// What the agent is using now.
pub fn usage(agent: &AgentPolicy, caps: &Caps, budgets: &Budgets) -> Usage {
    Usage {
        running_file_calls: caps.running(&agent.name, CapKind::FileCall) as u32,
        running_commands: caps.running(&agent.name, CapKind::Command) as u32,
        budgets: budgets
            .usage(agent)
            .into_iter()
            .map(|u| BudgetUsage {
                limit: u.kind.key().into(),
                used: u.used,
                max: u.limit,
                unit: match u.kind {
                    BudgetKind::WriteBytes => "bytes",
                    BudgetKind::CommandCpuMs | BudgetKind::CommandWallMs => "ms",
                }
                .into(),
                window_seconds: agent.quota.budgets.window.as_secs(),
            })
            .collect(),
    }
}
