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

/// Builds the environment: the fixed variables, `PATH` from the policy,
/// `HOME` in the workspace, then the request's variables whose names the
/// policy allows (any other name refuses the call, naming it).
pub fn build(
    shell: &ShellPolicy,
    home: &str,
    requested: &HashMap<String, String>,
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
    Ok(env)
}
