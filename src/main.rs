//! The `agentjail` command: the daemon, its policy tools, and a client.

use agentjail::{cli, config::Config, server};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "agentjail",
    version,
    about = "Run AI agents' tool calls under a security team's policy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the ToolSandbox gRPC API (Unix socket, optionally TCP).
    Serve(ServeArgs),
    /// Validate policy files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Call a running daemon, e.g. `agentjail call read-file src/main.rs`.
    Call(cli::call::CallArgs),
    /// Verify and search the audit log.
    Audit {
        #[command(subcommand)]
        command: cli::audit::AuditCommand,
    },
    /// Serve MCP (stdio, or streamable HTTP on loopback) for an MCP client,
    /// as the agent's own user: the file and shell tools through the daemon.
    Mcp(cli::mcp::McpArgs),
    /// Print the tool definitions (JSON) for function calling.
    Tools(cli::tools::ToolsArgs),
    /// Show what this host's kernel lets the sandbox enforce, and whether
    /// the policy's requirements are met.
    Doctor {
        /// Policy directory to check against (default: as `serve` would).
        #[arg(long)]
        policy_dir: Option<PathBuf>,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Config file (default: /etc/agentjail/agentjail.toml if it exists,
    /// otherwise the embedded defaults).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Override the config's Unix socket path.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Override the config's policy directory.
    #[arg(long)]
    policy_dir: Option<PathBuf>,
    /// Override the config's state directory.
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Check every policy file in DIR; print each error as file:line:col,
    /// then warn (file:line:col: warning: ...) about dangerous grants.
    Check {
        /// Policy directory (default: /etc/agentjail/policies).
        dir: Option<PathBuf>,
        /// Exit 1 when there is any warning, too.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Print the JSON Schema of policy files (for editors).
    Schema,
    /// Decide one request and show the rule that made the decision, and
    /// those that nearly did. Exit 0 allow, 1 deny, 2 error.
    Explain(cli::policy::ExplainArgs),
    /// Run case files (expected decisions) against a policy directory.
    Test(cli::policy::TestArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Policy { .. } | Command::Audit { .. } | Command::Doctor { .. } | Command::Tools(_)
    ) {
        end_quietly_on_a_closed_pipe();
    }
    match cli.command {
        Command::Serve(args) => run_serve(args),
        Command::Policy { command } => match command {
            PolicyCommand::Check { dir, deny_warnings } => {
                cli::policy::check(dir.as_deref(), deny_warnings)
            }
            PolicyCommand::Schema => cli::policy::schema(),
            PolicyCommand::Explain(args) => cli::policy::explain(&args),
            PolicyCommand::Test(args) => cli::policy::test(&args),
        },
        Command::Call(args) => cli::call::run(args),
        Command::Mcp(args) => cli::mcp::run(args),
        Command::Tools(args) => cli::tools::run(args),
        Command::Audit { command } => cli::audit::run(command),
        Command::Doctor { policy_dir, config } => cli::doctor::run(config.as_deref(), policy_dir),
    }
}

/// Rust ignores SIGPIPE, so printing into `| head` that has exited panics.
/// The report commands end as other Unix tools do instead. Not the daemon,
/// nor `call`: both also write to sockets, where a peer that went away must
/// be an error they report, not a silent death.
fn end_quietly_on_a_closed_pipe() {
    // SAFETY: restoring a default disposition before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

fn run_serve(args: ServeArgs) -> ExitCode {
    let loaded = Config::discover(args.config.as_deref());
    let (mut config, path) = match loaded {
        Ok(found) => found,
        Err(e) => {
            eprintln!("agentjail: {e:#}");
            return ExitCode::from(2);
        }
    };
    agentjail::logging::init(config.log_format);
    match &path {
        Some(p) => tracing::info!(config = %p.display(), "config loaded"),
        None => tracing::info!("no config file: using the embedded defaults"),
    }
    if args.socket.is_some() {
        config.socket = args.socket;
    }
    if args.policy_dir.is_some() {
        config.policy_dir = args.policy_dir;
    }
    if args.state_dir.is_some() {
        config.state_dir = args.state_dir;
    }
    // Before any thread exists: the sandbox launcher is a fork of this
    // process. The cgroup layout is readied first so that, under systemd,
    // both processes sit in the daemon's leaf group.
    agentjail::sandbox::prepare_cgroups();
    let launcher = match agentjail::sandbox::launcher_process::start(
        config.daemon_tcp_ports(),
        agentjail::sandbox::netns::POOL_SIZE,
        config.pool.bounds(),
    ) {
        Ok((launcher, control)) => {
            agentjail::shell::launcher::install(control);
            launcher
        }
        Err(e) => {
            eprintln!("agentjail: cannot start the sandbox launcher process: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The launcher keeps the privileges that build sandboxes; this process
    // keeps only what its own work needs (src/privileges.rs), dropped while
    // it is still single-threaded so that every thread inherits the cut.
    agentjail::sandbox::probe_at_start();
    let keep = agentjail::privileges::kept(&config.daemon_tcp_ports());
    if let Err(e) = agentjail::privileges::drop_all_but(keep) {
        eprintln!("agentjail: cannot drop the daemon's capabilities: {e}");
        launcher.stop(std::time::Duration::from_secs(1));
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("agentjail")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("agentjail: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(server::serve(config));
    // Blocking tool calls cut by the grace period must not hold up the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    // The launcher ends the last commands and removes their cgroups.
    launcher.stop(std::time::Duration::from_secs(3));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once: the log goes to stderr too, unless AGENTJAIL_LOG silenced it.
            if tracing::enabled!(tracing::Level::ERROR) {
                tracing::error!("{e:#}");
            } else {
                eprintln!("agentjail: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}
