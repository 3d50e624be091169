//! Per-agent call rates (governor's GCRA limiters), by kind of tool. A call
//! over its rate is RESOURCE_EXHAUSTED, reason RATE_LIMITED, with a
//! `google.rpc.RetryInfo` that says when the next call will be admitted.
//! Limiters are kept across reloads; a changed rate starts a fresh one.

use crate::error::{Reason, ToolError};
use crate::policy::AgentPolicy;
use crate::policy::ratelimit::Kind;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

/// A limiter and the rate it was made for.
type Limiter = (NonZeroU32, Arc<DefaultDirectRateLimiter>);

#[derive(Default)]
pub struct Limiters {
    by_agent: Mutex<HashMap<(String, Kind), Limiter>>,
}

impl Limiters {
    /// Admits one call of `method` for `agent`, or says how long to wait.
    pub fn check(&self, agent: &AgentPolicy, method: &str) -> Result<(), ToolError> {
        let Some(kind) = Kind::of(method) else {
            return Ok(());
        };
        let Some(rate) = agent.quota.rate.of(kind) else {
            return Ok(());
        };
        let limiter = {
            let mut map = self.by_agent.lock().unwrap_or_else(|e| e.into_inner());
            let entry = map
                .entry((agent.name.clone(), kind))
                .or_insert_with(|| (rate, Arc::new(RateLimiter::direct(Quota::per_second(rate)))));
            if entry.0 != rate {
                *entry = (rate, Arc::new(RateLimiter::direct(Quota::per_second(rate))));
            }
            entry.1.clone()
        };
        match limiter.check() {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let wait_ms = wait.as_millis().max(1) as u64;
                crate::metrics::rate_limited(&agent.name, kind.key());
                let key = format!("rate_limits.{}", kind.key());
                let from = agent.quota.source(&key);
                let rule = format!("{}: {key} = {rate} ({from})", agent.name);
                Err(ToolError::new(
                    Reason::RateLimited,
                    format!(
                        "policy rule `{rule}` limits agent \"{}\" to {rate} such calls per \
                         second; retry after {wait_ms} ms (see RetryInfo)",
                        agent.name
                    ),
                )
                .with("rule", rule)
                .with(crate::error::RETRY_AFTER_MS, wait_ms.to_string()))
            }
        }
    }
}
