//! `agentjail call`: a command-line client for a running daemon, so people
//! can try and script the API without writing code.

/// `println!`/`print!` for the client's results: a reader that went away
/// (`agentjail call read-file x | head`) ends the client quietly, as it does
/// a Unix tool, instead of a panic. (SIGPIPE stays ignored: the client also
/// writes to the daemon's socket, where EPIPE must be an error it reports.)
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*).unwrap_or_else(|e| stdout_failed(e))
    }};
}
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($arg)*).unwrap_or_else(|e| stdout_failed(e))
    }};
}

use crate::client::connect_unix;
use crate::config::default_socket_path;
use crate::error::reason_of;
use crate::proto::*;
use clap::{Args, Subcommand};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use tonic_types::StatusExt;

#[derive(Args)]
pub struct CallArgs {
    /// Daemon socket (default: the daemon's default for this user).
    #[arg(long, env = "AGENTJAIL_SOCKET", global = true)]
    socket: Option<PathBuf>,
    /// Workspace name (default: the agent's first workspace).
    #[arg(long, short = 'w', default_value = "", global = true)]
    workspace: String,
    #[command(subcommand)]
    tool: Tool,
}

#[derive(Subcommand)]
enum Tool {
    /// Show which agent the daemon sees and its workspaces.
    Whoami,
    /// Print a file (a line window by default).
    ReadFile {
        path: String,
        /// Lines to skip.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Lines to return (default 2000).
        #[arg(long, default_value_t = 0)]
        limit: u64,
        /// Read a byte window instead: START:LEN.
        #[arg(long, value_name = "START:LEN")]
        bytes: Option<String>,
    },
    /// Write a file atomically from --content or standard input.
    WriteFile {
        path: String,
        /// Content to write (default: read standard input).
        #[arg(long)]
        content: Option<String>,
        /// Fail if the file exists.
        #[arg(long, conflicts_with = "overwrite")]
        create_only: bool,
        /// Fail if the file does not exist.
        #[arg(long)]
        overwrite: bool,
        /// Create missing parent directories.
        #[arg(long, short = 'p')]
        parents: bool,
        /// Only write if the file's sha256 is still this.
        #[arg(long)]
        expected_sha256: Option<String>,
    },
    /// Replace exact text in a file and print the diff.
    EditFile {
        path: String,
        #[arg(long)]
        old: String,
        #[arg(long)]
        new: String,
        #[arg(long)]
        replace_all: bool,
        #[arg(long)]
        dry_run: bool,
    },
    /// List a directory.
    ListDir {
        #[arg(default_value = "")]
        path: String,
        #[arg(long, default_value_t = 1)]
        depth: u32,
        #[arg(long, short = 'a')]
        all: bool,
        #[arg(long)]
        gitignore: bool,
    },
    /// Find files by glob, e.g. `**/*.rs`.
    Glob {
        pattern: String,
        #[arg(default_value = "")]
        path: String,
    },
    /// Search file contents with a regex.
    Grep {
        pattern: String,
        #[arg(default_value = "")]
        path: String,
        /// Show matching lines instead of file names.
        #[arg(long, short = 'n')]
        content: bool,
        /// Count matches per file.
        #[arg(long, short = 'c', conflicts_with = "content")]
        count: bool,
        #[arg(long, short = 'i')]
        ignore_case: bool,
        #[arg(long, short = 'F')]
        fixed_strings: bool,
        /// Only files matching this glob.
        #[arg(long, short = 'g')]
        glob: Option<String>,
        #[arg(long, short = 'C', default_value_t = 0)]
        context: u32,
    },
    /// Describe a path.
    Stat {
        path: String,
        #[arg(long)]
        no_follow: bool,
    },
    /// Create a directory.
    Mkdir {
        path: String,
        #[arg(long, short = 'p')]
        parents: bool,
    },
    /// Move or rename (never overwrites unless --overwrite).
    Move {
        from: String,
        to: String,
        #[arg(long)]
        overwrite: bool,
    },
    /// Run a command in the sandbox: `run -- make test`, or `run --shell 'ls | wc -l'`.
    /// Streams its output and exits with its exit status.
    Run {
        /// Program and arguments (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        argv: Vec<String>,
        /// A command string for /bin/sh -c, where the policy allows a shell.
        #[arg(long, conflicts_with = "argv")]
        shell: Option<String>,
        /// Working directory, relative to the workspace root.
        #[arg(long, default_value = "")]
        cwd: String,
        /// NAME=VALUE, repeatable; only names the policy allows.
        #[arg(long = "env", short = 'e', value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// Wall-clock limit in milliseconds (capped by the policy).
        #[arg(long, default_value_t = 0)]
        timeout_ms: u64,
        /// Kill the command after this long without output.
        #[arg(long, default_value_t = 0)]
        idle_timeout_ms: u64,
    },
    /// Sessions: a sandbox that lives across calls (open, run, start, ps,
    /// read, write, kill, port, close).
    Session {
        #[command(subcommand)]
        command: session::SessionCommand,
    },
    /// Remove a file or directory.
    Remove {
        path: String,
        #[arg(long, short = 'r')]
        recursive: bool,
    },
}

pub fn run(args: CallArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("agentjail: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(call(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CallError::Status(status)) => {
            print_status(&status);
            ExitCode::FAILURE
        }
        Err(CallError::Other(e)) => {
            eprintln!("agentjail: {e:#}");
            ExitCode::from(2)
        }
        Err(CallError::Exit(code)) => ExitCode::from(code),
    }
}

/// Runs `request` through Exec, streaming its output; ends with its exit.
async fn stream_exec(
    client: &mut crate::proto::tool_sandbox_client::ToolSandboxClient<tonic::transport::Channel>,
    request: ExecRequest,
    out: &mut std::io::StdoutLock<'_>,
) -> Result<(), CallError> {
    let mut events = client.exec(request).await?.into_inner();
    let mut code = 0;
    while let Some(event) = events.message().await? {
        match event.event {
            Some(exec_event::Event::Stdout(c)) => {
                out_bytes(out, &c.data);
                out.flush().unwrap_or_else(|e| stdout_failed(e));
            }
            Some(exec_event::Event::Stderr(c)) => {
                let _ = std::io::stderr().write_all(&c.data);
            }
            Some(exec_event::Event::Exited(e)) => {
                code = describe_exit(&e);
            }
            _ => {}
        }
    }
    Err(CallError::Exit(code))
}

/// NAME=VALUE arguments as a map.
fn env_map(env: &[String]) -> Result<std::collections::HashMap<String, String>, CallError> {
    Ok(env
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow::anyhow!("--env takes NAME=VALUE, got {kv:?}"))
        })
        .collect::<Result<_, _>>()?)
}

#[path = "call_session.rs"]
mod session;

enum CallError {
    Status(tonic::Status),
    Other(anyhow::Error),
    /// The command ran; exit with its status.
    Exit(u8),
}

/// Prints how a command ended (to stderr) and the status to exit with:
/// the command's own, or 128 + signal like a shell.
fn describe_exit(e: &ExecExited) -> u8 {
    let mut notes = Vec::new();
    if e.timed_out {
        notes.push("timed out".to_string());
    }
    if e.idle_timed_out {
        notes.push("idle timeout".to_string());
    }
    if e.oom_killed {
        notes.push("killed by the memory limit".to_string());
    }
    if e.stdout_truncated || e.stderr_truncated {
        notes.push("output beyond the budget was counted, not shown".to_string());
    }
    let code = match (e.exit_code, e.signal) {
        (Some(c), _) => c.clamp(0, 255) as u8,
        (None, Some(s)) => {
            notes.push(format!("signal {s}"));
            (128 + s).clamp(0, 255) as u8
        }
        _ => 1,
    };
    if !notes.is_empty() || code != 0 {
        eprintln!(
            "-- exit {code} after {} ms ({} ms CPU, {} bytes peak memory){}{}",
            e.wall_time_ms,
            e.cpu_time_ms,
            e.peak_memory_bytes,
            if notes.is_empty() { "" } else { ": " },
            notes.join(", ")
        );
    }
    code
}

impl From<tonic::Status> for CallError {
    fn from(s: tonic::Status) -> Self {
        CallError::Status(s)
    }
}

impl From<anyhow::Error> for CallError {
    fn from(e: anyhow::Error) -> Self {
        CallError::Other(e)
    }
}

fn print_status(status: &tonic::Status) {
    let reason = reason_of(status).unwrap_or_else(|| format!("{:?}", status.code()));
    eprintln!("error: {reason}: {}", status.message());
    if let Some(info) = status.get_details_error_info() {
        let mut meta: Vec<_> = info.metadata.iter().collect();
        meta.sort();
        for (k, v) in meta {
            eprintln!("  {k}: {v}");
        }
    }
}

async fn call(args: CallArgs) -> Result<(), CallError> {
    let socket = args.socket.unwrap_or_else(default_socket_path);
    let mut client = connect_unix(&socket)
        .await
        .map_err(|e| anyhow::anyhow!("{}", super::connect::explain(&socket, &e)))?;
    let workspace = args.workspace;
    let mut out = std::io::stdout().lock();
    match args.tool {
        Tool::Whoami => {
            let r = client.who_am_i(WhoAmIRequest {}).await?.into_inner();
            out_bytes(&mut out, super::whoami::describe(&r).as_bytes());
        }
        Tool::ReadFile {
            path,
            offset,
            limit,
            bytes,
        } => {
            let window = match bytes {
                Some(spec) => Some(read_file_request::Window::Bytes(parse_byte_window(&spec)?)),
                None => Some(read_file_request::Window::Lines(LineWindow {
                    offset,
                    limit,
                })),
            };
            let r = client
                .read_file(ReadFileRequest {
                    workspace,
                    path,
                    window,
                    max_bytes: 0,
                })
                .await?
                .into_inner();
            if r.is_binary {
                out_bytes(&mut out, &r.data);
            } else {
                out_bytes(&mut out, r.text.as_bytes());
            }
            eprintln!(
                "-- {}: {} bytes, {} lines, sha256 {}{}",
                r.path,
                r.total_bytes,
                r.total_lines,
                r.sha256,
                if r.truncated {
                    format!(", truncated: continue at offset {}", r.next_offset)
                } else {
                    String::new()
                }
            );
        }
        Tool::WriteFile {
            path,
            content,
            create_only,
            overwrite,
            parents,
            expected_sha256,
        } => {
            let content = match content {
                Some(c) => c.into_bytes(),
                None => {
                    let mut buf = Vec::new();
                    std::io::stdin()
                        .read_to_end(&mut buf)
                        .map_err(|e| anyhow::anyhow!("cannot read standard input: {e}"))?;
                    buf
                }
            };
            let mode = if create_only {
                WriteMode::CreateOnly
            } else if overwrite {
                WriteMode::Overwrite
            } else {
                WriteMode::Upsert
            };
            let r = client
                .write_file(WriteFileRequest {
                    workspace,
                    path,
                    content,
                    mode: mode as i32,
                    create_parents: parents,
                    expected_sha256: expected_sha256.unwrap_or_default(),
                    // One-shot CLI calls carry no idempotency key.
                    ..Default::default()
                })
                .await?
                .into_inner();
            outln!(
                "{} {}: {} bytes, sha256 {}",
                if r.created { "created" } else { "replaced" },
                r.path,
                r.bytes_written,
                r.sha256
            );
        }
        Tool::EditFile {
            path,
            old,
            new,
            replace_all,
            dry_run,
        } => {
            let r = client
                .edit_file(EditFileRequest {
                    workspace,
                    path,
                    edits: vec![Edit {
                        old,
                        new,
                        replace_all,
                    }],
                    dry_run,
                    expected_sha256: String::new(),
                    // One-shot CLI calls carry no idempotency key.
                    ..Default::default()
                })
                .await?
                .into_inner();
            out!("{}", r.diff);
            eprintln!(
                "-- {}: {}, sha256 {}",
                r.path,
                if r.applied {
                    "edited"
                } else {
                    "dry run, not written"
                },
                r.sha256
            );
        }
        Tool::ListDir {
            path,
            depth,
            all,
            gitignore,
        } => {
            let mut page_token = String::new();
            loop {
                let r = client
                    .list_dir(ListDirRequest {
                        workspace: workspace.clone(),
                        path: path.clone(),
                        depth,
                        include_hidden: all,
                        respect_gitignore: Some(gitignore),
                        sort: SortOrder::Name as i32,
                        max_entries: 1000,
                        page_token,
                    })
                    .await?
                    .into_inner();
                for e in &r.entries {
                    let suffix = match EntryKind::try_from(e.kind) {
                        Ok(EntryKind::Dir) => "/",
                        Ok(EntryKind::Symlink) => "@",
                        _ => "",
                    };
                    outln!("{}{suffix}", e.path);
                }
                if r.next_page_token.is_empty() {
                    break;
                }
                page_token = r.next_page_token;
            }
        }
        Tool::Glob { pattern, path } => {
            let r = client
                .glob(GlobRequest {
                    workspace,
                    pattern,
                    path,
                    ..Default::default()
                })
                .await?
                .into_inner();
            for p in r.paths {
                outln!("{p}");
            }
            if r.truncated {
                eprintln!("-- truncated: narrow the pattern");
            }
        }
        Tool::Grep {
            pattern,
            path,
            content,
            count,
            ignore_case,
            fixed_strings,
            glob,
            context,
        } => {
            let output = if content {
                GrepOutput::Content
            } else if count {
                GrepOutput::Count
            } else {
                GrepOutput::Files
            };
            let r = client
                .grep(GrepRequest {
                    workspace,
                    pattern,
                    fixed_string: fixed_strings,
                    case_insensitive: ignore_case,
                    path,
                    glob: glob.unwrap_or_default(),
                    context_before: context,
                    context_after: context,
                    output: output as i32,
                    ..Default::default()
                })
                .await?
                .into_inner();
            for f in r.files {
                outln!("{f}");
            }
            for l in r.lines {
                let sep = if l.is_match { ':' } else { '-' };
                outln!("{}{sep}{}{sep}{}", l.path, l.line_number, l.text);
            }
            for c in r.counts {
                outln!("{}:{}", c.path, c.count);
            }
            if r.truncated {
                eprintln!("-- truncated: narrow the search");
            }
        }
        Tool::Stat { path, no_follow } => {
            let r = client
                .stat(StatRequest {
                    workspace,
                    path,
                    no_follow,
                })
                .await?
                .into_inner();
            let kind = EntryKind::try_from(r.kind)
                .map(|k| {
                    k.as_str_name()
                        .trim_start_matches("ENTRY_KIND_")
                        .to_lowercase()
                })
                .unwrap_or_default();
            outln!(
                "{}: {kind}, {} bytes, mode {:o}, readable {}, writable {}{}",
                r.path,
                r.size,
                r.mode,
                r.readable,
                r.writable,
                if r.symlink_target.is_empty() {
                    String::new()
                } else {
                    format!(", -> {}", r.symlink_target)
                }
            );
        }
        Tool::Mkdir { path, parents } => {
            let r = client
                .make_dir(MakeDirRequest {
                    workspace,
                    path,
                    parents,
                    // One-shot CLI calls carry no idempotency key.
                    ..Default::default()
                })
                .await?
                .into_inner();
            outln!(
                "{} {}",
                if r.created { "created" } else { "exists" },
                r.path
            );
        }
        Tool::Move {
            from,
            to,
            overwrite,
        } => {
            let r = client
                .r#move(MoveRequest {
                    workspace,
                    from,
                    to,
                    overwrite,
                    create_parents: false,
                    // One-shot CLI calls carry no idempotency key.
                    ..Default::default()
                })
                .await?
                .into_inner();
            outln!("moved {} -> {}", r.from, r.to);
        }
        Tool::Run {
            argv,
            shell,
            cwd,
            env,
            timeout_ms,
            idle_timeout_ms,
        } => {
            let env = env
                .iter()
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .ok_or_else(|| anyhow::anyhow!("--env takes NAME=VALUE, got {kv:?}"))
                })
                .collect::<Result<_, _>>()?;
            let request = ExecRequest {
                workspace,
                argv,
                shell: shell.unwrap_or_default(),
                cwd,
                env,
                stdin: Vec::new(),
                timeout_ms,
                idle_timeout_ms,
                output_budget_bytes: 0,
                // One-shot CLI calls carry no idempotency key.
                ..Default::default()
            };
            return stream_exec(&mut client, request, &mut out).await;
        }
        Tool::Session { command } => {
            return session::call(&mut client, workspace, command, &mut out).await;
        }
        Tool::Remove { path, recursive } => {
            let r = client
                .remove(RemoveRequest {
                    workspace,
                    path,
                    recursive,
                    missing_ok: false,
                    // One-shot CLI calls carry no idempotency key.
                    ..Default::default()
                })
                .await?
                .into_inner();
            outln!("removed {}", r.path);
        }
    }
    Ok(())
}

fn parse_byte_window(spec: &str) -> Result<ByteWindow, CallError> {
    let parsed = spec
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
    match parsed {
        Some((offset, limit)) => Ok(ByteWindow { offset, limit }),
        None => Err(anyhow::anyhow!("--bytes takes START:LEN, e.g. 0:4096").into()),
    }
}

fn out_bytes(out: &mut impl std::io::Write, bytes: &[u8]) {
    out.write_all(bytes).unwrap_or_else(|e| stdout_failed(e));
}

/// Standard output failed: a closed pipe exits as SIGPIPE would have (128 +
/// 13, what shells report), anything else with a message.
fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(128 + libc::SIGPIPE);
    }
    eprintln!("agentjail: cannot write to standard output: {e}");
    std::process::exit(2)
}
