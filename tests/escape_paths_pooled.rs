//! The denied-path and git cases of `escape_paths.rs`, every command served
//! by a sandbox built ahead (the pool): see `escape_shell_pooled.rs`.

#[path = "escape_paths.rs"]
mod cases;
