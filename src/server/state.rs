//! State shared by every call: the policy in force (swapped whole on
//! reload) and the request-id counter.

use super::caps::Caps;
use super::tls::{CurrentTls, TlsMaterial};
use crate::audit::AuditLog;
use crate::policy::CompiledPolicy;
use crate::shell::launcher::Launcher;
use arc_swap::{ArcSwap, ArcSwapOption};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct State {
    policy: ArcSwap<CompiledPolicy>,
    /// Present when the host can sandbox commands (probed at start).
    pub launcher: Option<Launcher>,
    pub audit: AuditLog,
    /// What the host enforces, for audit records of commands.
    pub landlock_abi: i32,
    tcp_agent: Option<String>,
    /// Per-agent caps on calls running at once.
    pub caps: Caps,
    /// Every call's work (file calls, Run, Exec), so that shutdown can stop
    /// what outlives the grace period and still wait for its records.
    pub calls: tokio_util::task::TaskTracker,
    /// Cancelled when the grace period is over: the work still running is
    /// stopped, recorded, and awaited before the daemon exits.
    pub stopping: tokio_util::sync::CancellationToken,
    /// Call-rate limiters per agent and kind of tool.
    pub limiters: super::ratelimit::Limiters,
    /// First answers of calls with an idempotency key.
    pub idempotency: super::idempotency::Idempotency,
    /// Open sessions (issue 13).
    pub sessions: crate::session::Registry,
    /// The TCP listener's TLS files as last loaded (start, reloads).
    tls: ArcSwapOption<TlsMaterial>,
    boot_id: u32,
    next_seq: AtomicU64,
}

impl State {
    pub fn new(
        policy: CompiledPolicy,
        tcp_agent: Option<String>,
        launcher: Option<Launcher>,
        audit: AuditLog,
        landlock_abi: i32,
    ) -> Self {
        State {
            policy: ArcSwap::from_pointee(policy),
            launcher,
            audit,
            landlock_abi,
            tcp_agent,
            caps: Caps::new(
                crate::limits::DEFAULT_CONCURRENT_FILE_CALLS_PER_AGENT,
                crate::limits::DEFAULT_CONCURRENT_COMMANDS_PER_AGENT,
            ),
            calls: Default::default(),
            stopping: Default::default(),
            tls: ArcSwapOption::empty(),
            idempotency: Default::default(),
            sessions: Default::default(),
            limiters: Default::default(),
            boot_id: rand::random(),
            next_seq: AtomicU64::new(1),
        }
    }

    /// Where calls' work runs, and what stops it at shutdown.
    pub fn tasks(
        &self,
    ) -> (
        &tokio_util::task::TaskTracker,
        &tokio_util::sync::CancellationToken,
    ) {
        (&self.calls, &self.stopping)
    }

    pub fn with_caps(mut self, limits: &crate::config::LimitsConfig) -> Self {
        self.caps = Caps::new(
            limits.concurrent_file_calls_per_agent,
            limits.concurrent_commands_per_agent,
        );
        self
    }

    /// The policy in force; hold the `Arc` for the whole call.
    pub fn policy(&self) -> Arc<CompiledPolicy> {
        self.policy.load_full()
    }

    pub fn swap_policy(&self, policy: CompiledPolicy) {
        self.policy.store(Arc::new(policy));
    }

    pub fn tcp_agent(&self) -> Option<&str> {
        self.tcp_agent.as_deref()
    }

    pub fn tls(&self) -> Option<Arc<TlsMaterial>> {
        self.tls.load_full()
    }

    pub fn swap_tls(&self, tls: TlsMaterial) {
        self.tls.store(Some(Arc::new(tls)));
    }

    /// Unique within this daemon's life, and across restarts in practice.
    pub fn next_request_id(&self) -> String {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}-{seq}", self.boot_id)
    }
}

impl CurrentTls for State {
    fn current_tls(&self) -> Option<Arc<TlsMaterial>> {
        self.tls()
    }
}
