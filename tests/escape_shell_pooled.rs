//! The shell escape cases of `escape_shell.rs`, every command served by a
//! sandbox built ahead (the pool): the harness (`shell_common::commands_pooled`)
//! sees this binary's name, sends a warm-up call of the same shape before
//! each Run and Exec, and checks in the audit log that a pooled sandbox
//! served it. A pooled sandbox must hold against each attempt exactly as
//! one built for the call does.

#[path = "escape_shell.rs"]
mod cases;
