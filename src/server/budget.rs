//! Per-agent budgets over a sliding window: CPU and wall milliseconds of
//! commands, bytes written by the file tools. A command is admitted while
//! its agent is under budget and charged what it used once it ends (its
//! use is only known then), so one command may overrun; the next is
//! refused until enough of the window has passed. A write whose size is
//! known is refused up front if it would go over. A refusal is
//! RESOURCE_EXHAUSTED, reason QUOTA_EXCEEDED, with a `google.rpc.RetryInfo`
//! delay until the window frees enough.
//!
//! Counters are kept across reloads; a changed window starts afresh.

use crate::error::{RETRY_AFTER_MS, Reason, ToolError};
use crate::policy::AgentPolicy;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    CommandCpuMs,
    CommandWallMs,
    WriteBytes,
}

impl Kind {
    /// The policy key that sets it.
    pub fn key(self) -> &'static str {
        match self {
            Kind::CommandCpuMs => "budgets.command_cpu_seconds",
            Kind::CommandWallMs => "budgets.command_wall_seconds",
            Kind::WriteBytes => "budgets.write_bytes",
        }
    }

    /// The agent's limit, in this kind's unit (ms or bytes).
    fn limit(self, agent: &AgentPolicy) -> Option<u64> {
        let b = &agent.quota.budgets;
        match self {
            Kind::CommandCpuMs => b.command_cpu.map(|d| d.as_millis() as u64),
            Kind::CommandWallMs => b.command_wall.map(|d| d.as_millis() as u64),
            Kind::WriteBytes => b.write_bytes,
        }
    }

    fn show(self, amount: u64) -> String {
        match self {
            Kind::CommandCpuMs | Kind::CommandWallMs => {
                format!("{:.1} s", amount as f64 / 1000.0)
            }
            Kind::WriteBytes => format!("{amount} bytes"),
        }
    }
}

/// Charges made within this fraction of the window share one bucket, so a
/// sum holds at most about this many buckets whatever the call rate.
const BUCKETS_PER_WINDOW: u32 = 64;

/// A sum of charges over the last `window`. Charges are kept in buckets of
/// `window / 64`; a bucket leaves the sum one window after its *end*, so a
/// charge counts for at least `window` and at most `window + window / 64`
/// (never less than the policy says).
#[derive(Debug)]
pub struct WindowedSum {
    window: Duration,
    bucket: Duration,
    /// (bucket start, amount), oldest first.
    charges: VecDeque<(Instant, u64)>,
    total: u64,
}

impl WindowedSum {
    pub fn new(window: Duration) -> WindowedSum {
        WindowedSum {
            window,
            bucket: window / BUCKETS_PER_WINDOW,
            charges: VecDeque::new(),
            total: 0,
        }
    }

    /// When a bucket started at `start` leaves the sum.
    fn leaves(&self, start: Instant) -> Instant {
        start + self.bucket + self.window
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(start, amount)) = self.charges.front() {
            if now < self.leaves(start) {
                break;
            }
            self.charges.pop_front();
            self.total -= amount;
        }
    }

    /// The sum of the charges still in the window at `now`.
    pub fn used(&mut self, now: Instant) -> u64 {
        self.expire(now);
        self.total
    }

    pub fn charge(&mut self, now: Instant, amount: u64) {
        self.expire(now);
        if amount == 0 {
            return;
        }
        match self.charges.back_mut() {
            Some((start, sum)) if now.saturating_duration_since(*start) < self.bucket => {
                *sum = sum.saturating_add(amount);
            }
            _ => self.charges.push_back((now, amount)),
        }
        self.total = self.total.saturating_add(amount);
    }

    /// How long from `now` until the sum is at most `target`.
    pub fn wait_until_at_most(&mut self, now: Instant, target: u64) -> Duration {
        self.expire(now);
        let mut total = self.total;
        for &(start, amount) in &self.charges {
            if total <= target {
                break;
            }
            total -= amount;
            if total <= target {
                return self.leaves(start).saturating_duration_since(now);
            }
        }
        Duration::ZERO
    }
}

/// Every agent's counters.
#[derive(Default)]
pub struct Budgets {
    sums: Mutex<HashMap<(String, Kind), WindowedSum>>,
}

/// An agent's use of one budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    pub kind: Kind,
    pub used: u64,
    pub limit: u64,
}

impl Budgets {
    fn with_sum<T>(
        &self,
        agent: &AgentPolicy,
        kind: Kind,
        f: impl FnOnce(&mut WindowedSum) -> T,
    ) -> T {
        let window = agent.quota.budgets.window;
        let mut sums = self.sums.lock().unwrap_or_else(|e| e.into_inner());
        let sum = sums
            .entry((agent.name.clone(), kind))
            .or_insert_with(|| WindowedSum::new(window));
        if sum.window != window {
            *sum = WindowedSum::new(window);
        }
        f(sum)
    }

    /// Admits a command while the agent is under its CPU and wall budgets.
    pub fn check_command(&self, agent: &AgentPolicy) -> Result<(), ToolError> {
        for kind in [Kind::CommandCpuMs, Kind::CommandWallMs] {
            self.check(agent, kind, 1)?;
        }
        Ok(())
    }

    /// Charges a command that has ended.
    pub fn charge_command(&self, agent: &AgentPolicy, cpu_ms: u64, wall_ms: u64) {
        self.charge(agent, Kind::CommandCpuMs, cpu_ms);
        self.charge(agent, Kind::CommandWallMs, wall_ms);
    }

    /// Admits a write of `bytes` (at least 1: a write whose size is not
    /// known yet needs the agent to be under budget).
    pub fn check_write(&self, agent: &AgentPolicy, bytes: u64) -> Result<(), ToolError> {
        self.check(agent, Kind::WriteBytes, bytes.max(1))
    }

    pub fn charge(&self, agent: &AgentPolicy, kind: Kind, amount: u64) {
        if kind.limit(agent).is_some() {
            self.with_sum(agent, kind, |s| s.charge(Instant::now(), amount));
        }
    }

    /// What the agent has used of each budget it has, in this window.
    pub fn usage(&self, agent: &AgentPolicy) -> Vec<Use> {
        [Kind::CommandCpuMs, Kind::CommandWallMs, Kind::WriteBytes]
            .into_iter()
            .filter_map(|kind| {
                let limit = kind.limit(agent)?;
                let used = self.with_sum(agent, kind, |s| s.used(Instant::now()));
                Some(Use { kind, used, limit })
            })
            .collect()
    }

    /// Refuses unless `need` more fits under the limit.
    fn check(&self, agent: &AgentPolicy, kind: Kind, need: u64) -> Result<(), ToolError> {
        let Some(limit) = kind.limit(agent) else {
            return Ok(());
        };
        let window = agent.quota.budgets.window;
        let key = kind.key();
        let from = agent.quota.source(key);
        let rule = format!(
            "{}: {key} = {} per {} s ({from})",
            agent.name,
            kind.show(limit),
            window.as_secs()
        );
        if need > limit {
            crate::metrics::quota_exceeded(&agent.name, key);
            return Err(ToolError::new(
                Reason::LimitExceeded,
                format!(
                    "policy rule `{rule}`: this call alone needs {}, more than the whole \
                     budget; nothing was done: split it into smaller calls",
                    kind.show(need)
                ),
            )
            .with("rule", rule)
            .with("limit", key));
        }
        let now = Instant::now();
        let (used, wait) = self.with_sum(agent, kind, |s| {
            (s.used(now), s.wait_until_at_most(now, limit - need))
        });
        if used + need <= limit {
            return Ok(());
        }
        crate::metrics::quota_exceeded(&agent.name, key);
        // Rounded up, so a retry after the delay is admitted.
        let wait_ms = (wait.as_micros().div_ceil(1000) as u64).max(1);
        Err(ToolError::new(
            Reason::QuotaExceeded,
            format!(
                "policy rule `{rule}`: agent \"{}\" has used {} of {} in the last {} s; \
                 nothing was done: retry after {wait_ms} ms (see RetryInfo), when enough of \
                 the window has passed",
                agent.name,
                kind.show(used),
                kind.show(limit),
                window.as_secs()
            ),
        )
        .with("rule", rule)
        .with("limit", key)
        .with("used", used.to_string())
        .with("max", limit.to_string())
        .with(RETRY_AFTER_MS, wait_ms.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(64);
    /// One bucket of a 64 s window.
    const BUCKET: Duration = Duration::from_secs(1);

    #[test]
    fn a_charge_leaves_the_sum_one_window_after_its_bucket() {
        let t0 = Instant::now();
        let mut sum = WindowedSum::new(WINDOW);
        sum.charge(t0, 5);
        sum.charge(t0 + Duration::from_secs(4), 7);
        let first_leaves = t0 + BUCKET + WINDOW;
        assert_eq!(sum.used(first_leaves - Duration::from_millis(1)), 12);
        assert_eq!(sum.used(first_leaves), 7, "the first left");
        assert_eq!(sum.used(first_leaves + Duration::from_secs(4)), 0);
    }

    #[test]
    fn the_wait_is_until_enough_charges_have_left() {
        let t0 = Instant::now();
        let mut sum = WindowedSum::new(WINDOW);
        sum.charge(t0, 5);
        sum.charge(t0 + Duration::from_secs(4), 7);
        let now = t0 + Duration::from_secs(6);
        assert_eq!(sum.wait_until_at_most(now, 12), Duration::ZERO);
        // Down to 7 once the first bucket leaves, at t0 + 1 + 64.
        assert_eq!(sum.wait_until_at_most(now, 7), Duration::from_secs(59));
        // Down to 0 once both have, at t0 + 4 + 1 + 64.
        assert_eq!(sum.wait_until_at_most(now, 0), Duration::from_secs(63));
    }

    #[test]
    fn charges_close_together_share_a_bucket_so_memory_is_bounded() {
        let t0 = Instant::now();
        let mut sum = WindowedSum::new(WINDOW);
        for i in 0..6_000u64 {
            sum.charge(t0 + Duration::from_millis(i * 10), 1);
        }
        assert_eq!(sum.used(t0 + Duration::from_secs(60)), 6_000);
        assert!(sum.charges.len() <= 61, "{} buckets", sum.charges.len());
        // Never less than the window: the last charge still counts just
        // before a window has passed since it.
        let last = t0 + Duration::from_millis(59_990);
        assert!(sum.used(last + WINDOW - Duration::from_millis(1)) > 0);
    }

    #[test]
    fn zero_charges_are_not_kept() {
        let t0 = Instant::now();
        let mut sum = WindowedSum::new(WINDOW);
        sum.charge(t0, 0);
        assert!(sum.charges.is_empty());
        assert_eq!(sum.wait_until_at_most(t0, 0), Duration::ZERO);
    }
}
