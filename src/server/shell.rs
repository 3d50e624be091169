//! `Exec` and `Run`: decide, launch in a sandbox, stream or capture, and
//! audit the command with what was enforced and how it ended.

use super::idempotency::{self, Begin, Stored};
use super::identity::{Caller, agent_for};
use super::record::EntryStart;
use super::service::{ToolService, refusal_status, workspace_index};
use crate::audit::{self, Enforced, Entry};
use crate::error::{Reason, ToolError};
use crate::policy::CompiledPolicy;
use crate::proto::{
    CallInfo, CapturedOutput, ExecEvent, ExecExited, ExecRequest, ExecResult, ExecStarted,
    exec_event,
};
use crate::shell::output::HeadTail;
use crate::shell::run::{self, Finished, Sink};
use crate::shell::{self, Prepared};
use prost::Message;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tonic::{Request, Status};

/// An allowed command, launched.
struct Launched {
    prepared: Prepared,
    child: crate::sandbox::SandboxChild,
    info: CallInfo,
    entry: EntryStart,
    enforced: Enforced,
    started: Instant,
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
    /// Decides and launches; a refusal is audited here and comes back as
    /// the status to answer with.
    async fn launch(
        &self,
        method: &'static str,
        request: Request<ExecRequest>,
    ) -> Result<Launched, Status> {
        let started = Instant::now();
        let request_id = self.state().next_request_id();
        let deadline = call_deadline(&request);
        let caller = Caller::from_request(&request);
        let req = request.into_inner();
        let policy = self.state().policy();
        let entry = EntryStart::new(
            &request_id,
            caller.as_ref().ok(),
            method,
            &req,
            &policy.redactor,
            &policy.version,
        );
        let agent = caller.and_then(|c| agent_for(&c, &policy, self.state()));
        let agent_name = agent.as_ref().ok().map(|a| a.name.clone());
        let launched = match agent {
            Ok(agent) => match agent
                .tools
                .check(&agent.name, method)
                .and_then(|()| self.state().limiters.check(&agent, method))
            {
                Ok(()) => self.decide_and_spawn(&agent, &req, deadline).await,
                Err(refused) => Err(refused),
            },
            Err(e) => Err(e),
        };
        match launched {
            Ok((prepared, enforced, child)) => {
                let info = CallInfo {
                    request_id,
                    agent: agent_name.unwrap_or_default(),
                    rule: prepared.rule.to_string(),
                    audit_seq: 0,
                    policy_version: policy.version.clone(),
                };
                Ok(Launched {
                    prepared,
                    child,
                    info,
                    entry,
                    enforced,
                    started,
                })
            }
            Err(err) => Err(self.refuse(entry, agent_name, err, started, &policy).await),
        }
    }

    async fn decide_and_spawn(
        &self,
        agent: &Arc<crate::policy::AgentPolicy>,
        req: &ExecRequest,
        deadline: Option<Duration>,
    ) -> Result<(Prepared, Enforced, crate::sandbox::SandboxChild), ToolError> {
        let index = workspace_index(agent, &req.workspace)?;
        let (spec, prepared) = shell::prepare(agent, &agent.workspaces[index], req, deadline)?;
        let enforced = Enforced {
            namespaces: if spec.network {
                "pid,mount,ipc,uts"
            } else {
                "pid,mount,ipc,uts,net"
            },
            landlock_abi: self.state().landlock_abi,
            seccomp: true,
            network: spec.network,
            uid: spec.uid,
            gid: spec.gid,
        };
        let launcher = self.state().launcher.as_ref().ok_or_else(|| {
            ToolError::new(
                Reason::Unavailable,
                "this daemon cannot sandbox commands on this host (see `agentjail doctor`)",
            )
        })?;
        self.state().audit.admit().await?;
        let launch_started = Instant::now();
        let child = launcher.spawn(spec).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::ArgumentListTooLong => ToolError::invalid(format!(
                "the arguments and environment are too long for the kernel to run ({e}); \
                     pass large data through stdin or a file in the workspace"
            )),
            std::io::ErrorKind::NotFound if e.to_string().contains("step Exec") => ToolError::new(
                Reason::NotFound,
                format!("the program could not be run in the sandbox, nothing ran: {e}"),
            ),
            _ => ToolError::new(
                Reason::Internal,
                format!("the sandbox could not be set up, nothing ran: {e}"),
            ),
        })?;
        crate::metrics::sandbox_setup(launch_started.elapsed());
        let t = child.timings();
        tracing::debug!(
            pid = child.pid,
            setup_us = launch_started.elapsed().as_micros() as u64,
            prepare_us = t.prepare.as_micros() as u64,
            clone_us = t.clone.as_micros() as u64,
            child_setup_us = t.child_setup.as_micros() as u64,
            "sandbox started"
        );
        Ok((prepared, enforced, child))
    }

    async fn refuse(
        &self,
        entry: EntryStart,
        agent: Option<String>,
        err: ToolError,
        started: Instant,
        policy: &CompiledPolicy,
    ) -> Status {
        let request_id = entry.request_id.clone();
        let elapsed_us = started.elapsed().as_micros() as u64;
        let record = entry.refused(agent.as_deref(), &err, elapsed_us, &policy.redactor);
        match self.audited(record, &request_id).await {
            Ok(seq) => refusal_status(&err, &request_id, seq),
            Err(status) => status,
        }
    }

    /// Run, with safe retries: see `idempotency`.
    pub(super) async fn run_call(
        &self,
        request: Request<ExecRequest>,
    ) -> Result<ExecResult, Status> {
        let key = request.get_ref().idempotency_key.clone();
        if key.is_empty() {
            return self.run_command(request).await;
        }
        let policy = self.state().policy();
        let caller = Caller::from_request(&request);
        let agent = caller
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|c| agent_for(c, &policy, self.state()))
            .and_then(|a| a.tools.check(&a.name, "Run").map(|()| a));
        // A caller that may not run commands is refused (and audited) by
        // the command path, as without a key.
        let Ok(agent) = agent else {
            return self.run_command(request).await;
        };
        let started = Instant::now();
        let request_id = self.state().next_request_id();
        let fingerprint = idempotency::fingerprint(&canonical_exec(request.get_ref()));
        let entry = EntryStart::new(
            &request_id,
            caller.as_ref().ok(),
            "Run",
            request.get_ref(),
            &policy.redactor,
            &policy.version,
        );
        let begun = self
            .state()
            .idempotency
            .begin(&agent.name, "Run", &key, fingerprint)
            .and_then(|b| match b {
                Begin::Replay(first) => ExecResult::decode(first.response.as_slice())
                    .map(|r| Ok((r, first)))
                    .map_err(|e| ToolError::internal(format!("a stored answer is corrupt: {e}"))),
                Begin::Run(claim) => Ok(Err(claim)),
            });
        match begun {
            Err(err) => {
                let elapsed_us = started.elapsed().as_micros() as u64;
                let record = entry.refused(Some(&agent.name), &err, elapsed_us, &policy.redactor);
                let seq = self.audited(record, &request_id).await?;
                Err(refusal_status(&err, &request_id, seq))
            }
            Ok(Ok((mut result, first))) => {
                let rule = format!(
                    "{} (idempotent replay of request {})",
                    first.rule, first.request_id
                );
                let outcome = crate::audit::Outcome {
                    status: "OK".into(),
                    duration_us: started.elapsed().as_micros() as u64,
                    ..Default::default()
                };
                let audit_seq = self
                    .audited(entry.allowed(&agent.name, &rule, outcome), &request_id)
                    .await?;
                if let Some(exited) = result.exited.as_mut() {
                    exited.info = Some(CallInfo {
                        request_id,
                        agent: agent.name.clone(),
                        rule,
                        audit_seq,
                        policy_version: policy.version.clone(),
                    });
                }
                Ok(result)
            }
            Ok(Err(claim)) => {
                // A refusal or failure drops the claim: the key stays free.
                let result = self.run_command(request).await?;
                let mut stored = result.clone();
                let info = stored.exited.as_mut().and_then(|e| e.info.take());
                claim.finish(Stored {
                    response: stored.encode_to_vec(),
                    request_id: result.exec_id.clone(),
                    rule: info.map(|i| i.rule).unwrap_or_default(),
                });
                Ok(result)
            }
        }
    }

    async fn run_command(&self, request: Request<ExecRequest>) -> Result<ExecResult, Status> {
        let Launched {
            prepared,
            child,
            mut info,
            entry,
            enforced,
            started,
        } = self.launch("Run", request).await?;
        let _in_flight = crate::metrics::InFlight::start();
        let budget = prepared.deadlines.budget;
        let sink = Sink::Capture {
            stdout: HeadTail::new(budget),
            stderr: HeadTail::new(budget),
        };
        let finished = run::drive(child, prepared.stdin, prepared.deadlines, sink)
            .await
            .map_err(|e| {
                ToolError::internal(format!("lost track of the command: {e}")).to_status()
            })?;
        let mut exited = run::exited_event(&finished, budget as u64);
        let record = command_record(entry, &info, enforced, &exited, &finished, started);
        info.audit_seq = self.audited(record, &info.request_id).await?;
        let exec_id = info.request_id.clone();
        exited.info = Some(info);
        let Sink::Capture { stdout, stderr } = finished.sink else {
            unreachable!("Run captures its output")
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
        let Launched {
            prepared,
            child,
            mut info,
            entry,
            enforced,
            started,
        } = self.launch("Exec", request).await?;
        let (tx, rx) = mpsc::channel(16);
        let started_event = ExecEvent {
            event: Some(exec_event::Event::Started(ExecStarted {
                exec_id: info.request_id.clone(),
                pid: child.pid as u32,
            })),
        };
        // Capacity 16: the first send cannot block.
        let _ = tx.try_send(Ok(started_event));
        let service = self.clone();
        tokio::spawn(async move {
            let _in_flight = crate::metrics::InFlight::start();
            let budget = prepared.deadlines.budget as u64;
            let sink = Sink::Stream(tx.clone());
            let result = run::drive(child, prepared.stdin, prepared.deadlines, sink).await;
            let event = match result {
                Ok(finished) => {
                    let mut exited = run::exited_event(&finished, budget);
                    let record =
                        command_record(entry, &info, enforced, &exited, &finished, started);
                    match service.audited(record, &info.request_id).await {
                        Ok(seq) => {
                            info.audit_seq = seq;
                            exited.info = Some(info);
                            Ok(ExecEvent {
                                event: Some(exec_event::Event::Exited(exited)),
                            })
                        }
                        Err(status) => Err(status),
                    }
                }
                Err(e) => {
                    Err(ToolError::internal(format!("lost track of the command: {e}")).to_status())
                }
            };
            let _ = tx.send(event).await;
        });
        Ok(rx)
    }
}

/// The audit record of a command that ran.
fn command_record(
    entry: EntryStart,
    info: &CallInfo,
    enforced: Enforced,
    exited: &ExecExited,
    finished: &Finished,
    started: Instant,
) -> Entry {
    let outcome = audit::Outcome {
        status: "OK".into(),
        exit_code: exited.exit_code,
        signal: exited.signal,
        timed_out: Some(exited.timed_out || exited.idle_timed_out),
        cancelled: Some(exited.cancelled),
        oom_killed: Some(exited.oom_killed),
        duration_us: started.elapsed().as_micros() as u64,
        cpu_ms: Some(exited.cpu_time_ms),
        peak_memory_bytes: Some(exited.peak_memory_bytes),
        truncated: Some(exited.stdout_truncated || exited.stderr_truncated),
        stdout: Some(finished.stdout.clone()),
        stderr: Some(finished.stderr.clone()),
        ..Default::default()
    };
    let mut record = entry.allowed(&info.agent, &info.rule, outcome);
    record.enforced = Some(enforced);
    record
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

/// The bytes a Run's idempotency fingerprint covers: the request with its
/// environment in name order (protobuf maps have no order of their own).
fn canonical_exec(req: &ExecRequest) -> Vec<u8> {
    let mut plain = req.clone();
    plain.env.clear();
    let mut bytes = plain.encode_to_vec();
    let mut env: Vec<_> = req.env.iter().collect();
    env.sort();
    for (name, value) in env {
        for part in [name, value] {
            bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
            bytes.extend_from_slice(part.as_bytes());
        }
    }
    bytes
}
