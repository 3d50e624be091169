//! `agentjail call session ...`: sessions from the command line.

use super::{CallError, env_map, out_bytes, stdout_failed, stream_exec};
use crate::proto::tool_sandbox_client::ToolSandboxClient;
use crate::proto::*;
use clap::Subcommand;
use std::io::{Read, Write};
use tonic::transport::Channel;

#[derive(Subcommand)]
pub enum SessionCommand {
    /// Open a session; prints its id.
    Open {
        /// Starting directory, relative to the workspace root.
        #[arg(long, default_value = "")]
        cwd: String,
        /// NAME=VALUE, repeatable: the starting environment.
        #[arg(long = "env", short = 'e', value_name = "NAME=VALUE")]
        env: Vec<String>,
        #[arg(long, default_value_t = 0)]
        idle_timeout_ms: u64,
        #[arg(long, default_value_t = 0)]
        max_lifetime_ms: u64,
    },
    /// Run a command in the session (its cwd and environment).
    Run {
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        argv: Vec<String>,
        #[arg(long, conflicts_with = "argv")]
        shell: Option<String>,
        #[arg(long = "env", short = 'e', value_name = "NAME=VALUE")]
        env: Vec<String>,
        #[arg(long, default_value_t = 0)]
        timeout_ms: u64,
    },
    /// Start a background process; prints its id.
    Start {
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        argv: Vec<String>,
        #[arg(long, conflicts_with = "argv")]
        shell: Option<String>,
        /// On a terminal.
        #[arg(long)]
        tty: bool,
    },
    /// List the session's processes.
    Ps { id: String },
    /// Print a process's output (from --offset; --wait-ms for more).
    Read {
        id: String,
        process: String,
        #[arg(long)]
        stderr: bool,
        #[arg(long, default_value_t = 0)]
        offset: u64,
        #[arg(long, default_value_t = 0)]
        wait_ms: u64,
    },
    /// Write --data (or standard input) to a process's stdin.
    Write {
        id: String,
        process: String,
        #[arg(long)]
        data: Option<String>,
        /// Close its stdin after.
        #[arg(long)]
        close: bool,
    },
    /// Signal a process's group (default SIGTERM).
    Kill {
        id: String,
        process: String,
        #[arg(long, short = 's', default_value_t = 15)]
        signal: i32,
    },
    /// Make a host Unix socket for a TCP port in the session; prints it.
    Port { id: String, port: u32 },
    /// Close the session (every process in it ends).
    Close { id: String },
}

pub async fn call(
    client: &mut ToolSandboxClient<Channel>,
    workspace: String,
    command: SessionCommand,
    out: &mut std::io::StdoutLock<'_>,
) -> Result<(), CallError> {
    match command {
        SessionCommand::Open {
            cwd,
            env,
            idle_timeout_ms,
            max_lifetime_ms,
        } => {
            let r = client
                .open_session(OpenSessionRequest {
                    workspace,
                    env: env_map(&env)?,
                    cwd,
                    limits: None,
                    idle_timeout_ms,
                    max_lifetime_ms,
                })
                .await?
                .into_inner();
            let s = r.session.unwrap_or_default();
            outln!("{}", s.session_id);
        }
        SessionCommand::Run {
            id,
            argv,
            shell,
            env,
            timeout_ms,
        } => {
            let request = ExecRequest {
                argv,
                shell: shell.unwrap_or_default(),
                env: env_map(&env)?,
                timeout_ms,
                session_id: id,
                ..Default::default()
            };
            return stream_exec(client, request, out).await;
        }
        SessionCommand::Start {
            id,
            argv,
            shell,
            tty,
        } => {
            let r = client
                .start_process(StartProcessRequest {
                    session_id: id,
                    argv,
                    shell: shell.unwrap_or_default(),
                    tty,
                    ..Default::default()
                })
                .await?
                .into_inner();
            let p = r.process.unwrap_or_default();
            outln!("{}", p.process_id);
        }
        SessionCommand::Ps { id } => {
            let r = client
                .list_processes(ListProcessesRequest { session_id: id })
                .await?
                .into_inner();
            for p in r.processes {
                let state = match (&p.exited, p.running) {
                    (_, true) => "running".to_string(),
                    (Some(e), false) => match (e.exit_code, e.signal) {
                        (Some(c), _) => format!("exited {c}"),
                        (None, Some(s)) => format!("signal {s}"),
                        _ => "ended".into(),
                    },
                    (None, false) => "ended".into(),
                };
                outln!(
                    "{}\t{}\t{}\t{}",
                    p.process_id,
                    p.pid,
                    state,
                    p.argv.join(" ")
                );
            }
        }
        SessionCommand::Read {
            id,
            process,
            stderr,
            offset,
            wait_ms,
        } => {
            let stream = if stderr {
                OutputStream::Stderr
            } else {
                OutputStream::Stdout
            };
            let r = client
                .read_output(ReadOutputRequest {
                    session_id: id,
                    process_id: process,
                    stream: stream as i32,
                    offset,
                    max_bytes: 0,
                    wait_ms,
                })
                .await?
                .into_inner();
            if r.lost_bytes > 0 {
                eprintln!("-- {} bytes no longer kept", r.lost_bytes);
            }
            out_bytes(out, &r.data);
            out.flush().unwrap_or_else(|e| stdout_failed(e));
            eprintln!(
                "-- next offset {}{}",
                r.next_offset,
                if r.eof { " (end)" } else { "" }
            );
        }
        SessionCommand::Write {
            id,
            process,
            data,
            close,
        } => {
            let data = match data {
                Some(d) => d.into_bytes(),
                None => {
                    let mut buf = Vec::new();
                    std::io::stdin()
                        .read_to_end(&mut buf)
                        .map_err(|e| anyhow::anyhow!("reading standard input: {e}"))?;
                    buf
                }
            };
            let r = client
                .write_stdin(WriteStdinRequest {
                    session_id: id,
                    process_id: process,
                    data,
                    close,
                })
                .await?
                .into_inner();
            outln!("wrote {} bytes", r.written);
        }
        SessionCommand::Kill {
            id,
            process,
            signal,
        } => {
            let r = client
                .signal_process(SignalProcessRequest {
                    session_id: id,
                    process_id: process,
                    signal,
                })
                .await?
                .into_inner();
            let p = r.process.unwrap_or_default();
            outln!(
                "{} {}",
                p.process_id,
                if p.running { "still running" } else { "ended" }
            );
        }
        SessionCommand::Port { id, port } => {
            let r = client
                .open_port(OpenPortRequest {
                    session_id: id,
                    port,
                })
                .await?
                .into_inner();
            outln!("{}", r.socket_path);
        }
        SessionCommand::Close { id } => {
            let r = client
                .close_session(CloseSessionRequest { session_id: id })
                .await?
                .into_inner();
            outln!("closed {}", r.session.unwrap_or_default().session_id);
        }
    }
    Ok(())
}
