//! The session tools: `exec_command` and `write_stdin` as Codex has them (a
//! command on a session's terminal, answered with what it printed within a
//! yield time and, while it runs, an ID to write to), and `start_process`,
//! `read_process_output`, `kill_process` for background processes. Every
//! process runs in this conversation's daemon session (see `terminals`).

use super::{Call, Failure, Outcome, render};
use crate::mcp::terminals::Tracked;
use crate::mcp::tools::*;
use crate::proto::*;
use crate::shell::output::HeadTail;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tonic::{Code, Status};

/// Codex's defaults and cap for the yield time.
const EXEC_YIELD_MS: u64 = 10_000;
const WRITE_YIELD_MS: u64 = 250;
const MAX_YIELD_MS: u64 = 30_000;
/// Bytes per token when `max_output_tokens` sizes the output kept.
const BYTES_PER_TOKEN: u64 = 4;
/// `read_process_output`'s default size.
const READ_DEFAULT_BYTES: u64 = 16 * 1024;
/// How long `kill_process` waits to report how the process ended.
const KILL_WAIT_MS: u64 = 5_000;
/// How long to wait for the exit status once both streams have closed.
const EXIT_WAIT_MS: u64 = 1_000;

const STDOUT: usize = 0;
const STDERR: usize = 1;
const STREAMS: [OutputStream; 2] = [OutputStream::Stdout, OutputStream::Stderr];

/// What a process printed within one yield, and how it stands.
struct Collected {
    out: [CapturedOutput; 2],
    lost: [u64; 2],
    process: Option<ProcessInfo>,
    wall: Duration,
}

impl Call<'_> {
    pub(super) async fn exec_command(&self, a: ExecCommandArgs) -> Outcome {
        if a.cmd.trim().is_empty() {
            return Err(Failure::Usage(
                "cmd is empty: give a command for /bin/sh -c".into(),
            ));
        }
        if !self.grants.may_use_a_shell() {
            return Err(no_shell());
        }
        let (workspace, cwd) = self.workdir(a.workdir.as_deref());
        let request = StartProcessRequest {
            shell: a.cmd,
            cwd,
            tty: a.tty,
            ..Default::default()
        };
        let (n, _) = self.start(&workspace, request).await?;
        let yield_ms = a.yield_time_ms.unwrap_or(EXEC_YIELD_MS).min(MAX_YIELD_MS);
        let collected = self
            .collect(n, yield_ms, budget(a.max_output_tokens))
            .await?;
        Ok(render::text(exec_report(n, &collected)))
    }

    pub(super) async fn write_stdin(&self, a: WriteStdinArgs) -> Outcome {
        let t = self.tracked(a.session_id)?;
        let mut refused = None;
        if !a.chars.is_empty() {
            let written = self
                .daemon
                .client()
                .write_stdin(WriteStdinRequest {
                    session_id: t.session_id.clone(),
                    process_id: t.process_id.clone(),
                    data: a.chars.into_bytes(),
                    close: false,
                })
                .await;
            match written {
                Ok(_) => {}
                // The process closed its stdin or ended: what it printed
                // and how it ended are still the answer the model needs.
                Err(s) if s.code() == Code::NotFound => refused = Some(s),
                Err(s) => return Err(s.into()),
            }
        }
        let yield_ms = match refused {
            Some(_) => 0,
            None => a.yield_time_ms.unwrap_or(WRITE_YIELD_MS).min(MAX_YIELD_MS),
        };
        let collected = self
            .collect(a.session_id, yield_ms, budget(a.max_output_tokens))
            .await;
        let (collected, refused) = match (collected, refused) {
            (Ok(c), refused) => (c, refused),
            // The session itself is gone: the write's refusal says so.
            (Err(_), Some(s)) => return Err(s.into()),
            (Err(e), None) => return Err(e),
        };
        let mut text = exec_report(a.session_id, &collected);
        if let Some(s) = refused {
            text = format!("[nothing was written: {}]\n{text}", s.message());
        }
        Ok(render::text(text))
    }

    pub(super) async fn start_process(&self, a: StartProcessArgs) -> Outcome {
        let (argv, shell) = self.command_of(a.argv, a.command)?;
        let (workspace, cwd) = self.workdir(a.cwd.as_deref());
        let request = StartProcessRequest {
            argv,
            shell,
            cwd,
            env: a.env.unwrap_or_default().into_iter().collect(),
            tty: a.tty,
            ..Default::default()
        };
        let (n, p) = self.start(&workspace, request).await?;
        Ok(render::text(format!(
            "Started process {n} (pid {} on the host{}): {}\nRead its output with \
             read_process_output (process_id {n}), write to it with write_stdin (session_id \
             {n}), stop it with kill_process.",
            p.pid,
            if p.tty { ", on a terminal" } else { "" },
            shown_argv(&p.argv),
        )))
    }

    pub(super) async fn read_process_output(&self, a: ReadProcessOutputArgs) -> Outcome {
        let t = self.tracked(a.process_id)?;
        let stream = match a.stream {
            StreamName::Stdout => STDOUT,
            StreamName::Stderr if t.tty => {
                return Err(Failure::Usage(format!(
                    "process {} runs on a terminal: its stdout and stderr are one stream, read \
                     stdout",
                    a.process_id
                )));
            }
            StreamName::Stderr => STDERR,
        };
        let wait_ms = match a.wait {
            None => 0,
            Some(s) if s.is_finite() && s >= 0.0 => ((s * 1000.0).ceil() as u64).min(MAX_YIELD_MS),
            Some(s) => {
                return Err(Failure::Usage(format!(
                    "wait must be a number of seconds from 0 to 30, not {s}"
                )));
            }
        };
        let offset = a.offset.unwrap_or(t.offsets[stream]);
        let r = self
            .read(
                &t,
                stream,
                offset,
                a.max_bytes.unwrap_or(READ_DEFAULT_BYTES),
                wait_ms,
            )
            .await?;
        self.terminals.advance(a.process_id, stream, r.next_offset);
        Ok(render::text(read_report(a.process_id, stream, offset, &r)))
    }

    pub(super) async fn kill_process(&self, a: KillProcessArgs) -> Outcome {
        let t = self.tracked(a.process_id)?;
        let signal = signal_number(a.signal.as_deref().unwrap_or("KILL"))?;
        self.daemon
            .client()
            .signal_process(SignalProcessRequest {
                session_id: t.session_id.clone(),
                process_id: t.process_id.clone(),
                signal,
            })
            .await?;
        let p = self.wait(&t, KILL_WAIT_MS).await?;
        let state = match p.as_ref() {
            Some(p) if p.running => format!(
                "still runs {} s after signal {signal}; kill_process with signal KILL ends it",
                KILL_WAIT_MS / 1000
            ),
            p => ended(p),
        };
        Ok(render::text(format!("Process {}: {state}", a.process_id)))
    }

    // ------------------------------------------------------------ plumbing

    /// A workdir as the daemon takes it: (workspace, path); none means the
    /// default workspace's session, in the session's directory.
    fn workdir(&self, given: Option<&str>) -> (String, String) {
        match given {
            None => (String::new(), String::new()),
            Some(dir) => {
                let t = self.target(dir);
                // The default workspace by name is the default's session too.
                let default = self.grants.workspaces.first().map(|w| w.name.as_str());
                let workspace = if default == Some(t.workspace.as_str()) {
                    String::new()
                } else {
                    t.workspace
                };
                (workspace, t.path)
            }
        }
    }

    fn tracked(&self, n: u32) -> Result<Tracked, Failure> {
        self.terminals.get(n).ok_or_else(|| {
            Failure::Usage(format!(
                "there is no process {n} in this conversation's session: exec_command and \
                 start_process answer with the ID to use"
            ))
        })
    }

    /// Starts a process in the workspace's session (opening it on first use,
    /// and again once if the daemon ended it meanwhile); its number here.
    async fn start(
        &self,
        workspace: &str,
        mut request: StartProcessRequest,
    ) -> Result<(u32, ProcessInfo), Failure> {
        let mut reopened = false;
        loop {
            let session = self.terminals.session(workspace).await?;
            request.session_id = session.clone();
            match self.daemon.client().start_process(request.clone()).await {
                Ok(r) => {
                    let p = r.into_inner().process.unwrap_or_default();
                    let n = self.terminals.track(&session, &p.process_id, p.tty);
                    return Ok((n, p));
                }
                Err(s) if !reopened && s.code() == Code::NotFound && self.gone(&session).await => {
                    self.terminals.forget_session(&session);
                    reopened = true;
                }
                Err(s) => return Err(s.into()),
            }
        }
    }

    /// Whether the daemon no longer lists the session (idled out, reached
    /// its lifetime, daemon restarted), as opposed to a missing cwd.
    async fn gone(&self, session: &str) -> bool {
        match self
            .daemon
            .client()
            .list_sessions(ListSessionsRequest {})
            .await
        {
            Ok(r) => !r
                .into_inner()
                .sessions
                .iter()
                .any(|s| s.session_id == session),
            Err(_) => false,
        }
    }

    async fn read(
        &self,
        t: &Tracked,
        stream: usize,
        offset: u64,
        max_bytes: u64,
        wait_ms: u64,
    ) -> Result<ReadOutputResponse, Status> {
        let r = self
            .daemon
            .client()
            .read_output(ReadOutputRequest {
                session_id: t.session_id.clone(),
                process_id: t.process_id.clone(),
                stream: STREAMS[stream] as i32,
                offset,
                max_bytes,
                wait_ms,
            })
            .await?;
        Ok(r.into_inner())
    }

    async fn wait(&self, t: &Tracked, timeout_ms: u64) -> Result<Option<ProcessInfo>, Status> {
        let r = self
            .daemon
            .client()
            .wait_process(WaitProcessRequest {
                session_id: t.session_id.clone(),
                process_id: t.process_id.clone(),
                timeout_ms,
            })
            .await?;
        Ok(r.into_inner().process)
    }

    /// What process `n` prints from where it was last read until it exits
    /// or `yield_ms` pass; at most `budget` bytes of each stream are kept
    /// (head and tail), the rest is read past and counted.
    async fn collect(&self, n: u32, yield_ms: u64, budget: usize) -> Result<Collected, Failure> {
        let t = self.tracked(n)?;
        let start = Instant::now();
        let deadline = start + Duration::from_millis(yield_ms);
        let mut offsets = t.offsets;
        let mut eof = [false, t.tty];
        let mut kept = [HeadTail::new(budget), HeadTail::new(budget)];
        let mut c = Collected {
            out: Default::default(),
            lost: [0, 0],
            process: None,
            wall: Duration::ZERO,
        };
        loop {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .as_millis() as u64;
            let read = |s: usize| {
                let skip = eof[s];
                let t = &t;
                let offset = offsets[s];
                async move {
                    if skip {
                        None
                    } else {
                        Some(self.read(t, s, offset, 0, left).await)
                    }
                }
            };
            let (out, err) = tokio::join!(read(STDOUT), read(STDERR));
            for (s, r) in [(STDOUT, out), (STDERR, err)] {
                let Some(r) = r else { continue };
                let r = r?;
                kept[s].push(&r.data);
                c.lost[s] += r.lost_bytes;
                offsets[s] = offsets[s].max(r.next_offset);
                eof[s] = r.eof;
                self.terminals.advance(n, s, r.next_offset);
                if r.process.is_some() {
                    c.process = r.process;
                }
            }
            if eof.iter().all(|e| *e) || left == 0 {
                break;
            }
        }
        // Both streams closed: the exit follows at once (or the process
        // closed them and runs on).
        if eof.iter().all(|e| *e) && c.process.as_ref().is_none_or(|p| p.running) {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .as_millis() as u64;
            c.process = self.wait(&t, left.max(EXIT_WAIT_MS)).await?.or(c.process);
        }
        c.wall = start.elapsed();
        c.out = kept.map(|k| {
            let (head, tail, omitted_bytes, total_bytes) = k.finish();
            CapturedOutput {
                head,
                tail,
                omitted_bytes,
                total_bytes,
            }
        });
        Ok(c)
    }

    fn command_of(
        &self,
        argv: Option<Vec<String>>,
        command: Option<String>,
    ) -> Result<(Vec<String>, String), Failure> {
        match (argv, command) {
            (Some(argv), None) if !argv.is_empty() => Ok((argv, String::new())),
            (None, Some(command)) if !command.trim().is_empty() => {
                if !self.grants.may_use_a_shell() {
                    return Err(no_shell());
                }
                Ok((Vec::new(), command))
            }
            _ => Err(Failure::Usage(
                "give exactly one of argv (a non-empty list: program and arguments) or command \
                 (a string for /bin/sh -c)"
                    .into(),
            )),
        }
    }
}

fn no_shell() -> Failure {
    Failure::Usage(
        "this agent's policy allows no shell: use start_process with argv (program and \
         arguments) instead of a command string"
            .into(),
    )
}

/// Bytes of each stream an answer keeps.
fn budget(max_output_tokens: Option<u64>) -> usize {
    match max_output_tokens {
        Some(t) => t.saturating_mul(BYTES_PER_TOKEN).clamp(64, 1 << 20) as usize,
        None => super::COMMAND_OUTPUT_BUDGET as usize,
    }
}

/// A signal by name (KILL, SIGTERM, int) or number.
fn signal_number(given: &str) -> Result<i32, Failure> {
    let given = given.trim();
    if let Ok(n) = given.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n)
            .map(|s| s as i32)
            .map_err(|_| Failure::Usage(format!("{n} is not a signal number")));
    }
    let upper = given.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&name)
        .map(|s| s as i32)
        .map_err(|_| {
            Failure::Usage(format!(
                "{given:?} is not a signal: give KILL, TERM, INT, HUP, … or a number"
            ))
        })
}

/// How a process stands, in words.
fn ended(p: Option<&ProcessInfo>) -> String {
    let Some(p) = p else {
        return "state unknown".into();
    };
    if p.running {
        return "running".into();
    }
    let e = p.exited.clone().unwrap_or_default();
    if let Some(code) = e.exit_code {
        format!("exited with code {code}")
    } else if let Some(sig) = e.signal {
        format!("killed by signal {sig}")
    } else {
        "ended".into()
    }
}

fn shown_argv(argv: &[String]) -> String {
    match argv {
        [sh, c, command] if sh == "/bin/sh" && c == "-c" => command.clone(),
        _ => argv.join(" "),
    }
}

/// Codex's answer shape: wall time, how the process stands, the output.
fn exec_report(n: u32, c: &Collected) -> String {
    let state = match c.process.as_ref() {
        Some(p) if p.running => format!(
            "Process running with session ID {n} (send input or poll with write_stdin, read \
             with read_process_output, stop with kill_process)"
        ),
        p => format!("Process {}", ended(p)),
    };
    let mut text = format!(
        "Wall time: {:.3} seconds\n{state}\nOutput:\n",
        c.wall.as_secs_f64()
    );
    text.push_str(&kept(&c.out[STDOUT]));
    if c.out[STDERR].total_bytes > 0 {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str("--- stderr\n");
        text.push_str(&kept(&c.out[STDERR]));
    }
    for (name, lost) in [("stdout", c.lost[STDOUT]), ("stderr", c.lost[STDERR])] {
        if lost > 0 {
            text.push_str(&format!(
                "\n[{lost} bytes of {name} were dropped by the process's output buffer before \
                 they were read]"
            ));
        }
    }
    text
}

/// Kept output as text, with the cut marked.
fn kept(c: &CapturedOutput) -> String {
    let mut text = String::from_utf8_lossy(&c.head).into_owned();
    if c.omitted_bytes > 0 {
        text.push_str(&format!(
            "\n[... {} bytes cut here; the end follows ...]\n",
            c.omitted_bytes
        ));
    }
    text.push_str(&String::from_utf8_lossy(&c.tail));
    text
}

fn read_report(n: u32, stream: usize, asked: u64, r: &ReadOutputResponse) -> String {
    let name = ["stdout", "stderr"][stream];
    let mut head = format!(
        "Process {n}: {}\n{name} bytes {}-{} (next offset {})",
        ended(r.process.as_ref()),
        r.offset,
        r.next_offset,
        r.next_offset
    );
    if r.lost_bytes > 0 {
        head.push_str(&format!(
            "; {} bytes after offset {asked} were dropped by the output buffer",
            r.lost_bytes
        ));
    }
    if r.eof {
        head.push_str("; end of stream");
    } else if r.data.is_empty() {
        head.push_str("; nothing new yet (give wait to wait for output)");
    }
    format!("{head}\n{}", String::from_utf8_lossy(&r.data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_or_number() {
        let n = |s: &str| signal_number(s).ok();
        assert_eq!(n("KILL"), Some(9));
        assert_eq!(n("sigterm"), Some(15));
        assert_eq!(n(" INT "), Some(2));
        assert_eq!(n("1"), Some(1));
        assert_eq!(n("BOGUS"), None);
        assert_eq!(n("999"), None);
    }

    fn captured(text: &str) -> CapturedOutput {
        CapturedOutput {
            head: text.as_bytes().to_vec(),
            total_bytes: text.len() as u64,
            ..Default::default()
        }
    }

    #[test]
    fn a_report_says_whether_the_process_runs_and_how_it_ended() {
        let running = Collected {
            out: [captured(">>> "), CapturedOutput::default()],
            lost: [0, 0],
            process: Some(ProcessInfo {
                running: true,
                ..Default::default()
            }),
            wall: Duration::from_millis(250),
        };
        let text = exec_report(3, &running);
        assert!(text.starts_with("Wall time: 0.250 seconds\n"), "{text}");
        assert!(
            text.contains("Process running with session ID 3 "),
            "{text}"
        );
        assert!(text.ends_with("Output:\n>>> "), "{text}");
        let done = Collected {
            out: [captured("out\n"), captured("err\n")],
            lost: [0, 7],
            process: Some(ProcessInfo {
                exited: Some(ExecExited {
                    exit_code: Some(2),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            wall: Duration::from_millis(5),
        };
        let text = exec_report(4, &done);
        assert!(text.contains("\nProcess exited with code 2\n"), "{text}");
        assert!(text.contains("Output:\nout\n--- stderr\nerr\n"), "{text}");
        assert!(text.contains("[7 bytes of stderr were dropped"), "{text}");
    }

    #[test]
    fn the_output_budget_follows_max_output_tokens() {
        assert_eq!(
            budget(None),
            crate::mcp::calls::COMMAND_OUTPUT_BUDGET as usize
        );
        assert_eq!(budget(Some(1000)), 4000);
        assert_eq!(budget(Some(0)), 64);
    }
}
