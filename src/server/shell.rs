//! `Exec` and `Run`: decide, launch in a sandbox, stream or capture.

use super::identity::{Caller, agent_for};
use super::service::{ToolService, workspace_index};
use crate::error::{Reason, ToolError};
use crate::policy::AgentPolicy;
use crate::proto::{
    CallInfo, CapturedOutput, ExecEvent, ExecRequest, ExecResult, ExecStarted, exec_event,
};
use crate::shell::output::HeadTail;
use crate::shell::run::{self, Sink};
use crate::shell::{self, Prepared};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::{Request, Status};

/// An allowed command, launched.
struct Launched {
    agent: Arc<AgentPolicy>,
    prepared: Prepared,
    child: crate::sandbox::SandboxChild,
    info: CallInfo,
}

/// The client's gRPC deadline (`grpc-timeout`), if it sent one.
fn call_deadline<T>(req: &Request<T>) -> Option<Duration> {
    let value = req.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

impl ToolService {
    async fn launch(
        &self,
        method: &'static str,
        request: Request<ExecRequest>,
        request_id: &str,
    ) -> Result<Launched, ToolError> {
        let deadline = call_deadline(&request);
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        let policy = self.state().policy();
        let agent = agent_for(&caller, &policy, self.state().tcp_agent())?;
        let index = workspace_index(&agent, &req.workspace)?;
        let prepared = shell::prepare(&agent, &agent.workspaces[index], &req, deadline)?;
        let launcher = self.state().launcher.as_ref().ok_or_else(|| {
            ToolError::new(
                Reason::Unavailable,
                "this daemon cannot sandbox commands on this host (see `agentjail doctor`)",
            )
        })?;
        let launch_started = std::time::Instant::now();
        let child = launcher.spawn(prepared.spec.clone()).await.map_err(|e| {
            ToolError::new(
                Reason::Internal,
                format!("the sandbox could not be set up, nothing ran: {e}"),
            )
        })?;
        let t = child.timings();
        tracing::info!(
            request_id, method, agent = %agent.name, argv = ?prepared.argv, cwd = %prepared.cwd,
            pid = child.pid, decision = "allow", rule = %prepared.rule,
            setup_us = launch_started.elapsed().as_micros() as u64,
            prepare_us = t.prepare.as_micros() as u64, clone_us = t.clone.as_micros() as u64,
            child_setup_us = t.child_setup.as_micros() as u64, "command started"
        );
        let info = CallInfo {
            request_id: request_id.to_string(),
            agent: agent.name.clone(),
            rule: prepared.rule.to_string(),
            audit_seq: 0,
            policy_version: policy.version.clone(),
        };
        Ok(Launched {
            agent,
            prepared,
            child,
            info,
        })
    }

    fn refused(&self, method: &str, request_id: &str, err: ToolError) -> Status {
        tracing::info!(
            request_id, method,
            decision = if err.reason == Reason::PolicyDenied { "deny" } else { "error" },
            reason = %err.reason, rule = err.metadata_value("rule").unwrap_or(""),
            "call refused: {}", err.message
        );
        err.to_status()
    }

    pub(super) async fn run_call(
        &self,
        request: Request<ExecRequest>,
    ) -> Result<ExecResult, Status> {
        let request_id = self.state().next_request_id();
        let launched = self
            .launch("Run", request, &request_id)
            .await
            .map_err(|e| self.refused("Run", &request_id, e))?;
        let Launched {
            agent,
            prepared,
            child,
            info,
        } = launched;
        let budget = prepared.deadlines.budget;
        let sink = Sink::Capture {
            stdout: HeadTail::new(budget),
            stderr: HeadTail::new(budget),
        };
        let exec_id = request_id.clone();
        let finished = run::drive(child, prepared.stdin, prepared.deadlines, sink)
            .await
            .map_err(|e| {
                ToolError::internal(format!("lost track of the command: {e}")).to_status()
            })?;
        let mut exited = run::exited_event(&finished, budget as u64);
        log_exit(&request_id, &agent.name, &exited);
        exited.info = Some(info);
        let Sink::Capture { stdout, stderr } = finished.sink else {
            unreachable!("Run captures")
        };
        Ok(ExecResult {
            exec_id,
            stdout: Some(captured(stdout)),
            stderr: Some(captured(stderr)),
            exited: Some(exited),
        })
    }

    pub(super) async fn exec_call(
        &self,
        request: Request<ExecRequest>,
    ) -> Result<mpsc::Receiver<Result<ExecEvent, Status>>, Status> {
        let request_id = self.state().next_request_id();
        let launched = self
            .launch("Exec", request, &request_id)
            .await
            .map_err(|e| self.refused("Exec", &request_id, e))?;
        let Launched {
            agent,
            prepared,
            child,
            info,
        } = launched;
        let (tx, rx) = mpsc::channel(16);
        let started = ExecEvent {
            event: Some(exec_event::Event::Started(ExecStarted {
                exec_id: request_id.clone(),
                pid: child.pid as u32,
            })),
        };
        // Capacity 16: the first send cannot block.
        let _ = tx.try_send(Ok(started));
        tokio::spawn(async move {
            let budget = prepared.deadlines.budget as u64;
            let result = run::drive(
                child,
                prepared.stdin,
                prepared.deadlines,
                Sink::Stream(tx.clone()),
            )
            .await;
            match result {
                Ok(finished) => {
                    let mut exited = run::exited_event(&finished, budget);
                    log_exit(&request_id, &agent.name, &exited);
                    exited.info = Some(info);
                    let _ = tx
                        .send(Ok(ExecEvent {
                            event: Some(exec_event::Event::Exited(exited)),
                        }))
                        .await;
                }
                Err(e) => {
                    let _ = tx
                        .send(Err(ToolError::internal(format!(
                            "lost track of the command: {e}"
                        ))
                        .to_status()))
                        .await;
                }
            }
        });
        Ok(rx)
    }
}

fn captured(buffer: HeadTail) -> CapturedOutput {
    let (head, tail, omitted_bytes, total_bytes) = buffer.finish();
    CapturedOutput {
        head,
        tail,
        omitted_bytes,
        total_bytes,
    }
}

fn log_exit(request_id: &str, agent: &str, e: &crate::proto::ExecExited) {
    tracing::info!(
        request_id, agent, exit_code = ?e.exit_code, signal = ?e.signal, timed_out = e.timed_out,
        idle_timed_out = e.idle_timed_out, cancelled = e.cancelled, oom_killed = e.oom_killed,
        wall_ms = e.wall_time_ms, cpu_ms = e.cpu_time_ms, peak_memory = e.peak_memory_bytes,
        stdout_bytes = e.stdout_bytes, stderr_bytes = e.stderr_bytes, "command ended"
    );
}
