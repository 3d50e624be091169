//! Prometheus metrics, off unless `metrics_address` is configured. With no
//! recorder installed every call below is a no-op.

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::PrometheusBuilder;
use std::net::SocketAddr;
use std::time::Duration;

/// Serves `/metrics` on `address` (plain HTTP; keep it on a private address).
pub fn install(address: SocketAddr) -> anyhow::Result<()> {
    PrometheusBuilder::new()
        .with_http_listener(address)
        .set_buckets(&[
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5, 5.0, 10.0, 30.0, 60.0,
        ])
        .map_err(|e| anyhow::anyhow!("metrics buckets: {e}"))?
        .install()
        .map_err(|e| anyhow::anyhow!("cannot serve metrics on {address}: {e}"))?;
    describe();
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

/// A TCP client whose TLS handshake failed (no or bad certificate, timeout).
pub fn tls_handshake_refused() {
    counter!("agentjail_tls_handshakes_refused_total").increment(1);
}

/// A call refused by a rate limit (`limit`: the policy key).
pub fn rate_limited(agent: &str, limit: &'static str) {
    counter!("agentjail_rate_limited_total", "agent" => agent.to_string(), "limit" => limit)
        .increment(1);
}
