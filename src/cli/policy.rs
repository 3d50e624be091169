//! The security team's policy tools: `agentjail policy check` (errors and
//! lint), `schema`, `explain` and `test`.

use crate::config::SYSTEM_POLICY_DIR;
use crate::policy::cases::{CaseFile, load_case_file, run_case};
use crate::policy::explain::{Request, explain as explain_request, render, verdict};
use crate::policy::lint::lint_sources;
use crate::policy::load::{compile_sources, read_sources};
use crate::policy::{CompiledPolicy, LoadError, LoadOptions, load_dir, schema};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit status of a usage or policy error (as clap's own usage errors).
const USAGE: u8 = 2;

/// Policy tools never create or open workspaces on this host: the
/// directory may be meant for another.
pub(crate) fn tool_options() -> LoadOptions {
    LoadOptions {
        state_dir: PathBuf::from("/var/lib/agentjail"),
        open_workspaces: false,
    }
}

pub(crate) fn policy_dir(dir: Option<&Path>) -> PathBuf {
    dir.map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(SYSTEM_POLICY_DIR))
}

fn print_load_error(e: &LoadError) {
    for d in &e.diagnostics {
        println!("{d}");
    }
    eprintln!("{} error(s)", e.diagnostics.len());
}

/// Validates a policy directory; prints every error as `file:line:col:
/// message` and exits 1 on any. A valid policy is then linted: dangerous
/// grants are printed as `file:line:col: warning: ...` and fail the check
/// only with `deny_warnings`.
pub fn check(dir: Option<&Path>, deny_warnings: bool) -> ExitCode {
    let dir = policy_dir(dir);
    let opts = tool_options();
    let loaded = read_sources(&dir).and_then(|sources| {
        let policy = compile_sources(&sources, &opts)?;
        Ok((sources, policy))
    });
    match loaded {
        Ok((sources, policy)) => {
            let lint = lint_sources(&sources, &opts);
            for d in lint.warnings.iter().chain(&lint.notes) {
                println!("{d}");
            }
            println!(
                "{}: ok ({} file(s), {} agent(s), version {}), {} warning(s)",
                dir.display(),
                policy.sources.len(),
                policy.agents.len(),
                policy.version,
                lint.warnings.len()
            );
            if deny_warnings && !lint.warnings.is_empty() {
                eprintln!(
                    "{} warning(s), and --deny-warnings is set",
                    lint.warnings.len()
                );
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            print_load_error(&e);
            ExitCode::FAILURE
        }
    }
}

/// Prints the JSON Schema of policy files.
pub fn schema() -> ExitCode {
    print!("{}", schema::schema_json());
    ExitCode::SUCCESS
}

/// `agentjail policy explain`: one request against a policy directory.
#[derive(clap::Args, Debug)]
#[command(group(
    clap::ArgGroup::new("request")
        .required(true)
        .args(["read", "write", "exec", "shell", "env", "tool", "session"])
))]
pub struct ExplainArgs {
    /// Policy directory (default: /etc/agentjail/policies).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The agent making the request.
    #[arg(long)]
    pub agent: String,
    /// The workspace (default: the agent's first).
    #[arg(long)]
    pub workspace: Option<String>,
    /// A file tool reading PATH (end it with `/` for a directory listing).
    #[arg(long, value_name = "PATH")]
    pub read: Option<String>,
    /// A file tool writing PATH.
    #[arg(long, value_name = "PATH")]
    pub write: Option<String>,
    /// A command given as argv; put it last: `--exec git push origin`.
    #[arg(long, value_name = "ARGV", num_args = 1.., allow_hyphen_values = true)]
    pub exec: Option<Vec<String>>,
    /// A command string for /bin/sh -c.
    #[arg(long, value_name = "CMD")]
    pub shell: Option<String>,
    /// An environment variable the request sets.
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// A call of this tool (RPC name, e.g. WriteFile), as the roles decide.
    #[arg(long, value_name = "RPC")]
    pub tool: Option<String>,
    /// Opening a session: allowed or not, and its limits.
    #[arg(long)]
    pub session: bool,
}

impl ExplainArgs {
    fn request(&self) -> Request {
        if let Some(p) = &self.read {
            Request::Read(p.clone())
        } else if let Some(p) = &self.write {
            Request::Write(p.clone())
        } else if let Some(argv) = &self.exec {
            Request::Exec(argv.clone())
        } else if let Some(s) = &self.shell {
            Request::Shell(s.clone())
        } else if let Some(t) = &self.tool {
            Request::Tool(t.clone())
        } else if self.session {
            Request::Session
        } else {
            Request::Env(self.env.clone().unwrap_or_default())
        }
    }
}

/// Prints the decision and the rules behind it. Exit status 0 for allow,
/// 1 for deny, 2 for a usage or policy error.
pub fn explain(args: &ExplainArgs) -> ExitCode {
    let dir = policy_dir(args.dir.as_deref());
    let policy = match load_dir(&dir, &tool_options()) {
        Ok(p) => p,
        Err(e) => {
            print_load_error(&e);
            return ExitCode::from(USAGE);
        }
    };
    match explain_request(
        &policy,
        &args.agent,
        args.workspace.as_deref(),
        &args.request(),
    ) {
        Ok(e) => {
            print!("{}", render(&e));
            if e.allowed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("agentjail: {e}");
            ExitCode::from(USAGE)
        }
    }
}

/// `agentjail policy test`: case files against a policy directory.
#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// Policy directory for every case file (default: each file's
    /// `policy_dir`, else /etc/agentjail/policies).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Case files (TOML, `[[case]]` tables).
    #[arg(required = true, value_name = "CASES.toml")]
    pub cases: Vec<PathBuf>,
}

/// Runs every case; prints one line per case and `N passed, M failed`.
/// Exit status 0 when all pass, 1 on any mismatch, 2 when a case file or a
/// policy cannot be loaded.
pub fn test(args: &TestArgs) -> ExitCode {
    let mut files: Vec<CaseFile> = Vec::new();
    let mut bad = false;
    for path in &args.cases {
        match load_case_file(path) {
            Ok(f) => files.push(f),
            Err(diags) => {
                for d in diags {
                    println!("{d}");
                }
                bad = true;
            }
        }
    }
    if bad {
        eprintln!("cannot read the case files");
        return ExitCode::from(USAGE);
    }
    let mut policies: HashMap<PathBuf, CompiledPolicy> = HashMap::new();
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in &files {
        let dir = match (&args.dir, &file.policy_dir) {
            (Some(d), _) => d.clone(),
            (None, Some(d)) => d.clone(),
            (None, None) => PathBuf::from(SYSTEM_POLICY_DIR),
        };
        if !policies.contains_key(&dir) {
            match load_dir(&dir, &tool_options()) {
                Ok(p) => {
                    policies.insert(dir.clone(), p);
                }
                Err(e) => {
                    print_load_error(&e);
                    return ExitCode::from(USAGE);
                }
            }
        }
        let policy = &policies[&dir];
        println!(
            "{}: {} case(s) against {} (version {})",
            file.path.display(),
            file.cases.len(),
            dir.display(),
            policy.version
        );
        for case in &file.cases {
            let outcome = run_case(policy, case);
            let name = case
                .name
                .as_ref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            let head = format!(
                "{} as {}{}",
                case.request,
                case.agent,
                case.workspace
                    .as_ref()
                    .map(|w| format!(" in {w}"))
                    .unwrap_or_default()
            );
            if outcome.passed {
                passed += 1;
                let (v, rule) = match &outcome.result {
                    Ok(e) => (verdict(e.allowed), e.rule.as_str()),
                    Err(_) => ("?", ""),
                };
                println!("ok    {}{name}: {head}: {v} ({rule})", case.location);
            } else {
                failed += 1;
                println!(
                    "FAIL  {}{name}: {head}: {}",
                    case.location,
                    outcome.failure.as_deref().unwrap_or("failed")
                );
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
