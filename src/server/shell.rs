//! `Exec` and `Run`: decide, launch in a sandbox, stream or capture, and
//! audit the command with what was enforced and how it ended.

use super::bounds::WithinLimits;
use super::caps::Kind;
use super::idempotency::{Call, Once, Stored};
use super::identity::{Caller, agent_for};
use super::record::EntryStart;
use super::service::{ToolService, refusal_status, workspace_index};
use crate::audit::{self, Enforced, Entry};
use crate::cancel::Stop;
use crate::error::{Reason, ToolError};
use crate::policy::CompiledPolicy;
use crate::proto::{
    CallInfo, CapturedOutput, ExecEvent, ExecExited, ExecRequest, ExecResult, ExecStarted,
    exec_event,
};
use crate::shell::output::HeadTail;
use crate::shell::run::{self, Finished, Running, Sink};
use crate::shell::{self, Prepared};
use prost::Message;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tonic::{Request, Status};

/// An allowed command, launched.
struct Launched {
    prepared: Prepared,
    child: Running,
    info: CallInfo,
    entry: EntryStart,
    enforced: Enforced,
    started: Instant,
    /// The seq of the command's intent record.
    intent: Option<u64>,
    /// The agent's slot under its command cap, held while it runs.
    _slot: OwnedSemaphorePermit,
    /// Charged the command's CPU and wall time when it ends.
    agent: Arc<crate::policy::AgentPolicy>,
}

impl ToolService {
    /// Decides and launches; a refusal is audited here and comes back as
    /// the status to answer with.
    async fn launch(
        &self,
        method: &'static str,
        request: Request<ExecRequest>,
        stop: &Stop,
    ) -> Result<Launched, Status> {
        let started = Instant::now();
        let request_id = self.state().next_request_id();
        let deadline = super::call::deadline(&request);
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
        let mut intent = None;
        let launched = match agent {
            // The role and the rate limit are checked before any work.
            Ok(agent) => match agent
                .tools
                .check(&agent.name, method)
                .and_then(|()| self.state().limiters.check(&agent, method))
            {
                Ok(()) => self
                    .decide_and_spawn(&agent, &req, deadline, &entry, &mut intent, stop)
                    .await
                    .map(|launched| (launched, agent)),
                Err(refused) => Err(refused),
            },
            Err(e) => Err(e),
        };
        match launched {
            Ok(((prepared, enforced, child, slot), agent)) => {
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
                    intent,
                    _slot: slot,
                    agent,
                })
            }
            Err(err) => Err(self
                .refuse(entry, agent_name, err, started, &policy, intent)
                .await),
        }
    }

    async fn decide_and_spawn(
        &self,
        agent: &Arc<crate::policy::AgentPolicy>,
        req: &ExecRequest,
        deadline: Option<Duration>,
        entry: &EntryStart,
        intent: &mut Option<u64>,
        stop: &Stop,
    ) -> Result<(Prepared, Enforced, Running, OwnedSemaphorePermit), ToolError> {
        req.within_limits()?;
        // Before the workspace survey: an agent out of budget costs nothing.
        self.state().budgets.check_command(agent)?;
        if !req.session_id.is_empty() {
            return self
                .session_command(agent, req, deadline, entry, intent, stop)
                .await;
        }
        let index = workspace_index(agent, &req.workspace)?;
        let (spec, prepared) = shell::prepare(agent, index, req, deadline)?;
        let slot =
            self.state()
                .caps
                .admit(&agent.name, Kind::Command, agent.quota.concurrent_commands)?;
        let mut enforced = Enforced {
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
            pooled: false,
        };
        let launcher = self.state().launcher.as_ref().ok_or_else(|| {
            ToolError::new(
                Reason::Unavailable,
                "this daemon cannot sandbox commands on this host (see `agentjail doctor`)",
            )
        })?;
        self.state().audit.admit().await?;
        // The intent is durable before the command can start: a daemon
        // killed while it runs leaves a trace of it.
        let seq = self
            .state()
            .audit
            .intent(entry.intent(&agent.name, &prepared.rule))
            .await?;
        *intent = (seq > 0).then_some(seq);
        if let Some(reason) = stop.reason() {
            return Err(crate::cancel::stopped_before_work(reason));
        }
        let launch_started = Instant::now();
        // Sandboxes built ahead serve only this agent under this policy.
        let pool_key = format!("{}\n{}", agent.name, self.state().policy().version);
        let child = launcher
            .spawn(spec, Some(pool_key))
            .await
            .map_err(launch_error)?;
        crate::metrics::sandbox_setup(launch_started.elapsed());
        crate::metrics::sandbox_pool(child.pooled);
        enforced.pooled = child.pooled;
        let t = child.timings();
        tracing::debug!(
            pid = child.pid,
            setup_us = launch_started.elapsed().as_micros() as u64,
            prepare_us = t.prepare.as_micros() as u64,
            clone_us = t.clone.as_micros() as u64,
            child_setup_us = t.child_setup.as_micros() as u64,
            pooled = child.pooled,
            "sandbox started"
        );
        Ok((prepared, enforced, Running::Sandbox(child), slot))
    }

    async fn refuse(
        &self,
        entry: EntryStart,
        agent: Option<String>,
        err: ToolError,
        started: Instant,
        policy: &CompiledPolicy,
        intent: Option<u64>,
    ) -> Status {
        let request_id = entry.request_id.clone();
        let elapsed_us = started.elapsed().as_micros() as u64;
        let mut record = entry.refused(agent.as_deref(), &err, elapsed_us, &policy.redactor);
        record.intent = intent;
        match self.audited(record, &request_id).await {
            Ok(seq) => refusal_status(&err, &request_id, seq),
            Err(status) => status,
        }
    }

    /// Run: the whole call on its own task, so a client that cancels or
    /// whose deadline passes stops the command, and the record says so.
    /// With safe retries: see `idempotency`.
    pub(super) async fn run_call(
        &self,
        request: Request<ExecRequest>,
    ) -> Result<ExecResult, Status> {
        let service = self.clone();
        let deadline = super::call::deadline(&request);
        super::call::detached(self.state().tasks(), deadline, move |stop| async move {
            service.run_keyed(request, stop).await
        })
        .await
    }

    /// A Run with an idempotency key answers its first success again
    /// instead of running the command twice.
    async fn run_keyed(
        &self,
        request: Request<ExecRequest>,
        stop: Stop,
    ) -> Result<ExecResult, Status> {
        // Without a key there is nothing to look up, and no agent to resolve
        // here.
        if request.get_ref().idempotency_key.is_empty() {
            return self.run_command(request, stop).await;
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
            return self.run_command(request, stop).await;
        };
        let started = Instant::now();
        let request_id = self.state().next_request_id();
        let entry = EntryStart::new(
            &request_id,
            caller.as_ref().ok(),
            "Run",
            request.get_ref(),
            &policy.redactor,
            &policy.version,
        );
        let call = Call::new(&agent.name, "Run", request.get_ref());
        // A refusal or failure keeps nothing: the key stays free; so does a
        // command stopped because its client went away.
        let gone = stop.clone();
        let once = self.state().idempotency.once(
            call,
            || self.run_command(request, stop),
            |result: &ExecResult| {
                if gone.reason().is_some() {
                    return None;
                }
                let mut stored = result.clone();
                let info = stored.exited.as_mut().and_then(|e| e.info.take());
                Some(Stored {
                    response: stored.encode_to_vec(),
                    request_id: result.exec_id.clone(),
                    rule: info.map(|i| i.rule).unwrap_or_default(),
                })
            },
        );
        let replayed: Result<(ExecResult, _), _> = match once.await {
            Ok(Once::Ran(result)) => return result,
            // A replay does no work, but it is a call: it passes the rate
            // limit (a first run passes it on the command path).
            Ok(Once::Replayed(result, first)) => self
                .state()
                .limiters
                .check(&agent, "Run")
                .map(|()| (result, first)),
            Err(err) => Err(err),
        };
        match replayed {
            Err(err) => {
                let elapsed_us = started.elapsed().as_micros() as u64;
                let record = entry.refused(Some(&agent.name), &err, elapsed_us, &policy.redactor);
                let seq = self.audited(record, &request_id).await?;
                Err(refusal_status(&err, &request_id, seq))
            }
            Ok((mut result, first)) => {
                let rule = first.replay_rule();
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
        }
    }

    async fn run_command(
        &self,
        request: Request<ExecRequest>,
        stop: Stop,
    ) -> Result<ExecResult, Status> {
        let Launched {
            prepared,
            child,
            mut info,
            entry,
            enforced,
            started,
            intent,
            _slot,
            agent,
        } = self.launch("Run", request, &stop).await?;
        let _in_flight = crate::metrics::InFlight::start();
        let budget = prepared.deadlines.budget;
        let sink = Sink::Capture {
            stdout: HeadTail::new(budget),
            stderr: HeadTail::new(budget),
        };
        let driven = run::drive(
            child,
            prepared.stdin,
            prepared.deadlines,
            sink,
            stop.token.clone(),
        )
        .await;
        sweep_git(prepared.git_sweep).await;
        let finished = match driven {
            Ok(finished) => finished,
            Err(e) => {
                let err = ToolError::internal(format!("lost track of the command: {e}"));
                let mut record = entry.refused(
                    Some(&info.agent),
                    &err,
                    0,
                    &crate::audit::Redactor::new(&[], false),
                );
                record.intent = intent;
                let _ = self.audited(record, &info.request_id).await;
                return Err(err.to_status());
            }
        };
        let mut exited = run::exited_event(&finished, budget as u64);
        self.state()
            .budgets
            .charge_command(&agent, exited.cpu_time_ms, exited.wall_time_ms);
        let mut record = command_record(entry, &info, enforced, &exited, &finished, started);
        record.intent = intent;
        if finished.cancelled {
            mark_client_end(&mut record, stop.reason());
        }
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

    /// Exec: launched and driven on a task of its own; the handler waits
    /// only for the launch. A client that goes away (before or after the
    /// launch) closes the stream, which stops the command; either way the
    /// task writes the record.
    pub(super) async fn exec_call(
        &self,
        request: Request<ExecRequest>,
    ) -> Result<mpsc::Receiver<Result<ExecEvent, Status>>, Status> {
        let (tx, rx) = mpsc::channel(16);
        let (ready_tx, ready_rx) = oneshot::channel();
        let service = self.clone();
        self.state().calls.spawn(async move {
            // The stream's end is what stops an Exec, or the daemon stopping
            // past its grace period.
            let stop = Stop {
                token: service.state().stopping.child_token(),
                deadline: None,
            };
            match service.launch("Exec", request, &stop).await {
                Err(status) => {
                    let _ = ready_tx.send(Err(status));
                }
                Ok(launched) => {
                    let pid = launched.child.pid();
                    let started_event = ExecEvent {
                        event: Some(exec_event::Event::Started(ExecStarted {
                            exec_id: launched.info.request_id.clone(),
                            pid,
                        })),
                    };
                    // Capacity 16: the first send cannot block.
                    let _ = tx.try_send(Ok(started_event));
                    let _ = ready_tx.send(Ok(()));
                    service.stream_exec(launched, tx, stop.token).await;
                }
            }
        });
        match ready_rx.await {
            Ok(Ok(())) => Ok(rx),
            Ok(Err(status)) => Err(status),
            Err(_) => Err(ToolError::internal("the command's task ended unexpectedly").to_status()),
        }
    }

    async fn stream_exec(
        &self,
        launched: Launched,
        tx: mpsc::Sender<Result<ExecEvent, Status>>,
        stopping: tokio_util::sync::CancellationToken,
    ) {
        let Launched {
            prepared,
            child,
            mut info,
            entry,
            enforced,
            started,
            intent,
            _slot,
            agent,
        } = launched;
        let _in_flight = crate::metrics::InFlight::start();
        let budget = prepared.deadlines.budget as u64;
        let sink = Sink::Stream(tx.clone());
        let result = run::drive(child, prepared.stdin, prepared.deadlines, sink, stopping).await;
        sweep_git(prepared.git_sweep).await;
        let event = match result {
            Ok(finished) => {
                let mut exited = run::exited_event(&finished, budget);
                self.state().budgets.charge_command(
                    &agent,
                    exited.cpu_time_ms,
                    exited.wall_time_ms,
                );
                let mut record =
                    command_record(entry, &info, enforced, &exited, &finished, started);
                record.intent = intent;
                if finished.cancelled {
                    mark_client_end(&mut record, Some(Reason::Cancelled));
                }
                match self.audited(record, &info.request_id).await {
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
                let err = ToolError::internal(format!("lost track of the command: {e}"));
                let mut record = entry.refused(
                    Some(&info.agent),
                    &err,
                    0,
                    &crate::audit::Redactor::new(&[], false),
                );
                record.intent = intent;
                let _ = self.audited(record, &info.request_id).await;
                Err(err.to_status())
            }
        };
        let _ = tx.send(event).await;
    }
}

/// A command stopped because its client went away: the record's status
/// says how (what was done is in the rest of the outcome).
fn mark_client_end(record: &mut Entry, how: Option<Reason>) {
    let reason = how.unwrap_or(Reason::Cancelled);
    record.outcome.status = super::record::code_name(reason.code()).into();
    record.outcome.reason = Some(reason.as_str().into());
    record.outcome.message = Some(
        "the client went away (cancelled, or its deadline passed): the command was stopped".into(),
    );
}

/// Once the sandbox is gone: removes any `.git` the command created.
async fn sweep_git(sweep: Option<shell::GitSweep>) {
    if let Some(sweep) = sweep {
        let _ = tokio::task::spawn_blocking(move || sweep.run()).await;
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
    crate::metrics::command_finished(
        exited.timed_out || exited.idle_timed_out,
        exited.cancelled,
        exited.oom_killed,
    );
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

/// A failed launch as the caller sees it, decided on the typed error (the
/// setup step and errno, or the launcher gone), never on its text.
pub(super) fn launch_error(e: std::io::Error) -> ToolError {
    use crate::sandbox::{LauncherGone, SetupError, Step};
    if LauncherGone::of(&e) {
        return ToolError::new(Reason::Unavailable, e.to_string());
    }
    match (e.kind(), SetupError::of(&e)) {
        (std::io::ErrorKind::ArgumentListTooLong, _) => ToolError::invalid(format!(
            "the arguments and environment are too long for the kernel to run ({e}); \
             pass large data through stdin or a file in the workspace"
        )),
        (
            std::io::ErrorKind::NotFound,
            Some(SetupError {
                step: Step::Exec, ..
            }),
        ) => ToolError::new(
            Reason::NotFound,
            format!("the program could not be run in the sandbox, nothing ran: {e}"),
        ),
        _ => ToolError::new(
            Reason::Internal,
            format!("the sandbox could not be set up, nothing ran: {e}"),
        ),
    }
}
