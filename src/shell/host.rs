//! Can this host enforce what the policy requires? Checked at start and on
//! every reload: a policy the host cannot honour is refused, never run
//! unconfined.

use crate::policy::CompiledPolicy;
use crate::sandbox::{KernelSupport, Requirements};

/// Every requirement of every agent with shell access that the host does
/// not meet, as actionable sentences.
pub fn unmet(policy: &CompiledPolicy, support: &KernelSupport) -> Vec<String> {
    let mut names: Vec<&String> = policy.agents.keys().collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let Some(shell) = &policy.agents[name].shell else {
            continue;
        };
        let r = shell.requires;
        let req = Requirements {
            min_landlock_abi: r.landlock_abi as i32,
            seccomp: r.seccomp,
            namespaces: r.namespaces,
            memory_limit: r.cgroups,
            pids_limit: r.cgroups,
        };
        for problem in support.unmet(&req) {
            out.push(format!("agent \"{name}\" (shell.requires): {problem}"));
        }
    }
    out
}
