//! `agentjail call whoami`: what the daemon says this caller may do, as
//! text for a person (the JSON-minded read the WhoAmI response itself).

use crate::proto::{AgentLimits, CommandCapabilities, Usage, WhoAmIResponse};
use std::fmt::Write as _;

pub fn describe(r: &WhoAmIResponse) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "agent: {} ({}; uid {} pid {})",
        r.agent, r.identified_by, r.uid, r.pid
    );
    for w in &r.workspaces {
        let access = if w.read_only {
            "read-only"
        } else {
            "read-write"
        };
        let _ = write!(s, "workspace {}: {} ({access}", w.name, w.path);
        if !w.sandbox_path.is_empty() {
            let _ = write!(s, "; commands see it at {}", w.sandbox_path);
        }
        let _ = writeln!(s, ")");
        for (what, globs) in [("read", &w.read), ("write", &w.write), ("deny", &w.deny)] {
            if !globs.is_empty() {
                let _ = writeln!(s, "  {what:<6} {}", globs.join("  "));
            }
        }
    }
    let Some(caps) = &r.capabilities else {
        return s;
    };
    if let Some(f) = &caps.file_limits {
        let _ = writeln!(
            s,
            "files: reads return at most {} bytes, writes at most {} bytes, files up to {} bytes are read whole",
            f.max_read_bytes, f.max_write_bytes, f.max_file_bytes
        );
    }
    match &caps.commands {
        Some(c) if c.allowed => commands(&mut s, c),
        _ => {
            let _ = writeln!(
                s,
                "commands: none (the policy gives no [agents.shell] table)"
            );
        }
    }
    if let Some(l) = &caps.limits {
        limits(&mut s, l, r.usage.as_ref());
    }
    if caps.deterministic {
        let _ = writeln!(
            s,
            "determinism: every call (SOURCE_DATE_EPOCH={})",
            caps.source_date_epoch
        );
    }
    s
}

fn limits(s: &mut String, l: &AgentLimits, usage: Option<&Usage>) {
    let per_second = |n: u32| {
        if n == 0 {
            "unlimited".to_string()
        } else {
            format!("{n}/s")
        }
    };
    let _ = writeln!(
        s,
        "limits: reads {}, writes {}, commands {}; at once: {} file calls, {} commands",
        per_second(l.read_per_second),
        per_second(l.write_per_second),
        per_second(l.command_per_second),
        l.concurrent_file_calls,
        l.concurrent_commands
    );
    let mut sources: Vec<_> = l.sources.iter().collect();
    sources.sort();
    for (key, from) in sources {
        let _ = writeln!(s, "  {key} from {from}");
    }
    if let Some(u) = usage {
        let _ = writeln!(
            s,
            "running now: {} file calls, {} commands",
            u.running_file_calls, u.running_commands
        );
        for b in &u.budgets {
            let _ = writeln!(
                s,
                "budget {}: {} of {} {} used in the last {} s",
                b.limit, b.used, b.max, b.unit, b.window_seconds
            );
        }
    }
}

fn commands(s: &mut String, c: &CommandCapabilities) {
    let _ = writeln!(s, "commands:");
    if c.programs.is_empty() {
        let _ = writeln!(s, "  programs: none by name");
    }
    for p in &c.programs {
        let _ = write!(s, "  program {}", p.program);
        if p.resolved.is_empty() {
            let _ = write!(s, " (not found on the sandbox PATH)");
        } else if p.resolved != p.program {
            let _ = write!(s, " ({})", p.resolved);
        }
        if !p.deny_args.is_empty() {
            let _ = write!(s, "; refused arguments: {}", p.deny_args.join("  "));
        }
        let _ = writeln!(s);
    }
    let yes = |b: bool| if b { "yes" } else { "no" };
    let _ = writeln!(s, "  shell strings: {}", yes(c.shell));
    let _ = writeln!(s, "  network: {}", yes(c.network));
    let env = if c.env.is_empty() {
        "none".to_string()
    } else {
        c.env.join("  ")
    };
    let _ = writeln!(s, "  env names: {env}");
    let _ = writeln!(s, "  PATH: {}", c.path.join(":"));
    let _ = writeln!(
        s,
        "  timeout: {} ms by default, at most {} ms",
        c.default_timeout_ms, c.max_timeout_ms
    );
    let _ = writeln!(
        s,
        "  limits: memory {} bytes, {} processes, {} s CPU, {} open files, files up to {} bytes, {}% of a CPU",
        c.memory_bytes, c.pids, c.cpu_seconds, c.nofile, c.fsize_bytes, c.cpu_percent
    );
    let _ = writeln!(
        s,
        "  output: {} bytes kept per stream (head and tail)",
        c.output_budget_bytes
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::*;

    #[test]
    fn names_workspaces_programs_and_limits() {
        let r = WhoAmIResponse {
            agent: "a".into(),
            identified_by: "unix-peer".into(),
            workspaces: vec![WorkspaceInfo {
                name: "main".into(),
                path: "/srv/ws".into(),
                sandbox_path: "/workspace".into(),
                read: vec!["**".into()],
                deny: vec!["**/.env".into()],
                ..Default::default()
            }],
            capabilities: Some(Capabilities {
                file_limits: Some(FileLimits::default()),
                commands: Some(CommandCapabilities {
                    allowed: true,
                    programs: vec![ProgramInfo {
                        program: "git".into(),
                        resolved: "/usr/bin/git".into(),
                        deny_args: vec!["--exec-path*".into()],
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let text = describe(&r);
        assert!(
            text.contains("workspace main: /srv/ws (read-write; commands see it at /workspace)")
        );
        assert!(text.contains("  deny   **/.env"), "{text}");
        assert!(text.contains("program git (/usr/bin/git); refused arguments: --exec-path*"));
        assert!(text.contains("shell strings: no"), "{text}");
        let none = WhoAmIResponse {
            capabilities: Some(Capabilities::default()),
            ..Default::default()
        };
        assert!(describe(&none).contains("commands: none"));
    }
}
