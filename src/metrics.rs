//! Prometheus metrics, off unless `metrics_address` is configured. With no
//! recorder installed every call below is a no-op.

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::PrometheusBuilder;
use std::net::SocketAddr;
use std::time::Duration;

mod http;

/// Serves `/metrics` on `address` (plain HTTP; keep it on a private address).
pub fn install(address: SocketAddr) -> anyhow::Result<()> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&[
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5, 5.0, 10.0, 30.0, 60.0,
        ])
        .map_err(|e| anyhow::anyhow!("metrics buckets: {e}"))?
        .install_recorder()
        .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
    let process = metrics_process::Collector::default();
    process.describe();
    describe();
    gauge!("agentjail_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    http::serve(address, handle, process)?;
    tracing::info!(%address, "metrics served at /metrics");
    Ok(())
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "agentjail_calls_total",
        "Calls by method, agent and decision"
    );
    describe_histogram!(
        "agentjail_call_duration_seconds",
        metrics::Unit::Seconds,
        "Call latency by method, until the answer (audit record durable)"
    );
    describe_gauge!("agentjail_calls_in_flight", "Calls being served");
    describe_histogram!(
        "agentjail_sandbox_setup_seconds",
        metrics::Unit::Seconds,
        "Time to build a command's sandbox, from request to exec"
    );
    describe_counter!(
        "agentjail_sandbox_pool_total",
        "Commands by the sandbox that served them: result=hit (built ahead) or miss (built \
         for the call)"
    );
    describe_histogram!(
        "agentjail_audit_write_seconds",
        metrics::Unit::Seconds,
        "Time from handing a record to the audit writer to its fdatasync"
    );
    describe_gauge!(
        "agentjail_audit_queue_depth",
        "Audit records waiting to be written"
    );
    describe_counter!("agentjail_policy_reloads_total", "Policy reloads by result");
    describe_counter!(
        "agentjail_cap_refusals_total",
        "Calls refused because their agent was at a concurrency cap, by cap and agent"
    );
    describe_counter!(
        "agentjail_quota_exceeded_total",
        "Calls refused because their agent's budget for the window was used up, by agent and \
         limit (its policy key)"
    );
    describe_gauge!("agentjail_open_fds", "File descriptors the daemon has open");
    describe_gauge!(
        "agentjail_fd_limit",
        "The daemon's RLIMIT_NOFILE soft limit"
    );
    describe_counter!(
        "agentjail_connections_refused_total",
        "Connections closed at accept, by why (per-peer cap, fd limit)"
    );
    describe_counter!(
        "agentjail_connections_timed_out_total",
        "Connections closed for a handshake or idle timeout, by which"
    );
    describe_gauge!(
        "agentjail_build_info",
        "Always 1; the version label names the running build"
    );
    describe_counter!(
        "agentjail_command_timeouts_total",
        "Commands killed at their timeout (wall or idle)"
    );
    describe_counter!(
        "agentjail_command_oom_kills_total",
        "Commands in which the memory limit killed a process"
    );
    describe_counter!(
        "agentjail_command_cancellations_total",
        "Commands stopped because the client cancelled or went away"
    );
    describe_counter!(
        "agentjail_authority_rewrites_total",
        "Requests whose unparseable :authority (grpcio's unix:%2F...) was replaced by localhost"
    );
}

/// Counts a call in flight while alive.
pub struct InFlight;

impl InFlight {
    pub fn start() -> InFlight {
        gauge!("agentjail_calls_in_flight").increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!("agentjail_calls_in_flight").decrement(1.0);
    }
}

pub fn call_finished(method: &'static str, agent: &str, decision: &'static str, took: Duration) {
    counter!(
        "agentjail_calls_total",
        "method" => method,
        "agent" => agent.to_string(),
        "decision" => decision
    )
    .increment(1);
    histogram!("agentjail_call_duration_seconds", "method" => method).record(took.as_secs_f64());
}

pub fn sandbox_setup(took: Duration) {
    histogram!("agentjail_sandbox_setup_seconds").record(took.as_secs_f64());
}

/// A command was served by a sandbox built ahead (hit) or one built for it.
pub fn sandbox_pool(pooled: bool) {
    let result = if pooled { "hit" } else { "miss" };
    counter!("agentjail_sandbox_pool_total", "result" => result).increment(1);
}

pub fn audit_write(took: Duration) {
    histogram!("agentjail_audit_write_seconds").record(took.as_secs_f64());
}

pub fn audit_queue_depth(depth: usize) {
    gauge!("agentjail_audit_queue_depth").set(depth as f64);
}

pub fn policy_reload(ok: bool) {
    counter!("agentjail_policy_reloads_total", "result" => if ok { "ok" } else { "failed" })
        .increment(1);
}

pub fn cap_refused(cap: &'static str, agent: &str) {
    counter!("agentjail_cap_refusals_total", "cap" => cap, "agent" => agent.to_string())
        .increment(1);
}

pub fn open_fds(open: u64, limit: u64) {
    gauge!("agentjail_open_fds").set(open as f64);
    gauge!("agentjail_fd_limit").set(limit as f64);
}

pub fn connection_refused(why: &'static str) {
    counter!("agentjail_connections_refused_total", "why" => why).increment(1);
}

pub fn connection_timed_out(which: &'static str) {
    counter!("agentjail_connections_timed_out_total", "which" => which).increment(1);
}

pub fn authority_rewritten() {
    counter!("agentjail_authority_rewrites_total").increment(1);
}

/// Counts how a command that ran ended, where that was not by itself.
pub fn command_finished(timed_out: bool, cancelled: bool, oom_killed: bool) {
    if timed_out {
        counter!("agentjail_command_timeouts_total").increment(1);
    }
    if cancelled {
        counter!("agentjail_command_cancellations_total").increment(1);
    }
    if oom_killed {
        counter!("agentjail_command_oom_kills_total").increment(1);
    }
}

/// A TCP client whose TLS handshake failed (no or bad certificate, timeout).
pub fn tls_handshake_refused() {
    counter!("agentjail_tls_handshakes_refused_total").increment(1);
}

/// A call refused by a rate limit (`limit`: the policy key).
/// A call refused by a budget (`limit` is its policy key).
pub fn quota_exceeded(agent: &str, limit: &'static str) {
    counter!("agentjail_quota_exceeded_total", "agent" => agent.to_string(), "limit" => limit)
        .increment(1);
}

pub fn rate_limited(agent: &str, limit: &'static str) {
    counter!("agentjail_rate_limited_total", "agent" => agent.to_string(), "limit" => limit)
        .increment(1);
}
