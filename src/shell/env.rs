//! The command's environment: built from nothing, so no token,
//! `NOTIFY_SOCKET` or `LISTEN_FDS` of the daemon can reach a tool.

use crate::error::{Reason, ToolError};
use crate::policy::ShellPolicy;
use std::collections::HashMap;

/// Variables every command gets, making tools non-interactive.
const FIXED: &[(&str, &str)] = &[
    ("LANG", "C.UTF-8"),
    ("TZ", "UTC"),
    ("PAGER", "cat"),
    ("GIT_PAGER", "cat"),
    ("GIT_TERMINAL_PROMPT", "0"),
    ("GIT_EDITOR", "true"),
    ("EDITOR", "true"),
    ("DEBIAN_FRONTEND", "noninteractive"),
    ("CI", "1"),
    ("TERM", "dumb"),
];

/// Variables a deterministic command gets on top of `FIXED`, over any the
/// request sets; `SOURCE_DATE_EPOCH` comes from the policy.
const DETERMINISTIC: &[(&str, &str)] = &[
    ("LANG", "C.UTF-8"),
    ("LC_ALL", "C.UTF-8"),
    ("TZ", "UTC"),
    ("PYTHONHASHSEED", "0"),
];

/// Builds the environment: the fixed variables, `PATH` from the policy,
/// `HOME` in the workspace, then the request's variables whose names the
/// policy allows (any other name refuses the call, naming it). With
/// `source_date_epoch` (determinism mode) the deterministic variables are
/// set last, so a request cannot change them, and the list is in name
/// order.
pub fn build(
    shell: &ShellPolicy,
    home: &str,
    requested: &HashMap<String, String>,
    source_date_epoch: Option<u64>,
) -> Result<Vec<(String, String)>, ToolError> {
    let mut names: Vec<&String> = requested.keys().collect();
    names.sort();
    if let Some(name) = shell.disallowed_env(names.iter().copied()) {
        return Err(ToolError::denied(
            &format!("{}: no shell.env glob matches", shell.agent),
            format!(
                "environment variable {name} is not allowed for this agent; drop it or ask for it \
                 to be added to shell.env"
            ),
        )
        .with("env", name));
    }
    for (name, value) in requested {
        if name.is_empty() || name.contains('=') || name.contains('\0') || value.contains('\0') {
            return Err(ToolError::new(
                Reason::InvalidArgument,
                format!("environment variable {name:?} has an empty name, '=' or a NUL byte"),
            ));
        }
    }
    let mut env: Vec<(String, String)> = FIXED
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.push(("PATH".into(), shell.path.join(":")));
    env.push(("HOME".into(), home.to_string()));
    for name in names {
        env.retain(|(k, _)| k != name);
        env.push((name.clone(), requested[name].clone()));
    }
    if let Some(epoch) = source_date_epoch {
        let fixed = DETERMINISTIC
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([("SOURCE_DATE_EPOCH".to_string(), epoch.to_string())]);
        for (name, value) in fixed {
            env.retain(|(k, _)| *k != name);
            env.push((name, value));
        }
        env.sort();
    }
    Ok(env)
}
