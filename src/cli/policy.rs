//! `agentjail policy check`.

use crate::config::SYSTEM_POLICY_DIR;
use crate::policy::{LoadOptions, load_dir};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Validates a policy directory; prints every error as `file:line:col:
/// message` and exits 1 on any.
pub fn check(dir: Option<&Path>) -> ExitCode {
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(SYSTEM_POLICY_DIR));
    // Checking must not create workspaces on this host: the directory may be
    // meant for another.
    let opts = LoadOptions {
        state_dir: PathBuf::from("/var/lib/agentjail"),
        open_workspaces: false,
    };
    match load_dir(&dir, &opts) {
        Ok(policy) => {
            println!(
                "{}: ok ({} file(s), {} agent(s), version {})",
                dir.display(),
                policy.sources.len(),
                policy.agents.len(),
                policy.version
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            for d in &e.diagnostics {
                println!("{d}");
            }
            eprintln!("{} error(s)", e.diagnostics.len());
            ExitCode::FAILURE
        }
    }
}
