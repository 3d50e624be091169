//! Starting the real `agentjail serve` binary, shared by every harness that
//! runs one: the file-tool harness (`tests/common`), the shell harness
//! (`tests/shell_common`) and through `common` the operations suite.
//!
//! - `dirs`: the temporary directory layout a daemon runs in;
//! - `serve`: its command line, with the options some tests add (extra
//!   environment, inherited fds, systemd socket activation);
//! - `server`: the running process: wait until it serves or exits, and on
//!   drop kill it and print its log if the test failed.
//!
//! Each harness includes it with `#[path = "../launch/mod.rs"]`, so it is
//! compiled into the test crates that use it and never as a test target of
//! its own.

mod dirs;
mod serve;
mod server;

pub use dirs::*;
pub use serve::*;
pub use server::*;

/// The daemon binary Cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_agentjail");
