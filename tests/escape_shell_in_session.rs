//! The shell escape cases of `escape_shell.rs`, every command run inside a
//! session instead of a sandbox of its own: the harness
//! (`shell_common::commands_in_session`) sees this binary's name and sends
//! each Run and Exec with a session of its daemon. A session must hold
//! against each attempt exactly as a per-call sandbox does.

#[path = "escape_shell.rs"]
mod cases;
