//! `agentjail doctor`: what the sandbox can enforce on this host, and
//! whether the policy's requirements are met.

use crate::config::{Config, PolicySource};
use crate::policy::{LoadOptions, load_dir, load_embedded_default};
use crate::sandbox;
use crate::shell::host;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn run(config: Option<&Path>, policy_dir: Option<PathBuf>) -> ExitCode {
    let support = sandbox::probe();
    println!("{support}");
    let (mut cfg, _) = match Config::discover(config) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("agentjail: {e:#}");
            return ExitCode::from(2);
        }
    };
    if policy_dir.is_some() {
        cfg.policy_dir = policy_dir;
    }
    let opts = LoadOptions {
        state_dir: cfg.state_path(),
        open_workspaces: false,
    };
    let (name, loaded) = match cfg.policy_source() {
        PolicySource::Dir(dir) => (dir.display().to_string(), load_dir(&dir, &opts)),
        PolicySource::Embedded => (
            "the embedded default policy".to_string(),
            load_embedded_default(&opts),
        ),
    };
    let policy = match loaded {
        Ok(p) => p,
        Err(e) => {
            println!("policy {name}: invalid\n{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut unmet = host::unmet(&policy, &support);
    unmet.extend(support.file_tools_unmet());
    if unmet.is_empty() {
        println!("policy {name}: every requirement is met on this host");
        ExitCode::SUCCESS
    } else {
        println!("policy {name}: NOT enforceable here; `serve` will refuse to start:");
        for problem in unmet {
            println!("  - {problem}");
        }
        ExitCode::FAILURE
    }
}
