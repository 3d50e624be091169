//! The one place that resolves an agent's effective limits: its own
//! `rate_limits`, `concurrency` and `budgets` keys, then, key by key, the
//! first of its roles (in the order the agent lists them) that sets the
//! key. The daemon enforces what this returns; `WhoAmI` and `policy
//! explain` show it, with where each value came from.

use super::budget::{BudgetSpec, ConcurrencySpec, DEFAULT_WINDOW_SECONDS};
use super::ratelimit::{RateLimitSpec, RateLimits};
use std::num::NonZeroU32;
use std::time::Duration;

/// Limits as written in one place (an agent or a role); unset keys fall
/// through to the next place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitSettings {
    pub read_per_second: Option<NonZeroU32>,
    pub write_per_second: Option<NonZeroU32>,
    pub command_per_second: Option<NonZeroU32>,
    pub concurrent_file_calls: Option<usize>,
    pub concurrent_commands: Option<usize>,
    pub window_seconds: Option<u64>,
    pub command_cpu_seconds: Option<u64>,
    pub command_wall_seconds: Option<u64>,
    pub write_bytes: Option<u64>,
}

impl LimitSettings {
    pub fn from_specs(
        rate: Option<&RateLimitSpec>,
        concurrency: Option<&ConcurrencySpec>,
        budgets: Option<&BudgetSpec>,
    ) -> LimitSettings {
        LimitSettings {
            read_per_second: rate.and_then(|r| r.read_per_second),
            write_per_second: rate.and_then(|r| r.write_per_second),
            command_per_second: rate.and_then(|r| r.command_per_second),
            concurrent_file_calls: concurrency.and_then(|c| c.file_calls).map(|n| n.get()),
            concurrent_commands: concurrency.and_then(|c| c.commands).map(|n| n.get()),
            window_seconds: budgets.and_then(|b| b.window_seconds).map(|n| n.get()),
            command_cpu_seconds: budgets.and_then(|b| b.command_cpu_seconds).map(|n| n.get()),
            command_wall_seconds: budgets
                .and_then(|b| b.command_wall_seconds)
                .map(|n| n.get()),
            write_bytes: budgets.and_then(|b| b.write_bytes).map(|n| n.get()),
        }
    }
}

/// Budgets per sliding window; None: no budget of that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    pub window: Duration,
    pub command_cpu: Option<Duration>,
    pub command_wall: Option<Duration>,
    pub write_bytes: Option<u64>,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            window: Duration::from_secs(DEFAULT_WINDOW_SECONDS),
            command_cpu: None,
            command_wall: None,
            write_bytes: None,
        }
    }
}

/// What the daemon enforces for one agent.
#[derive(Debug, Clone, Default)]
pub struct EffectiveLimits {
    pub rate: RateLimits,
    /// None: the daemon's configured default.
    pub concurrent_file_calls: Option<usize>,
    pub concurrent_commands: Option<usize>,
    pub budgets: Budgets,
    /// Each key that is set, with its value and where it came from
    /// (`agent` or `role "NAME"`), in key order: for rule names, `WhoAmI`
    /// and `policy explain`.
    pub sources: Vec<LimitSource>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSource {
    /// The policy key, e.g. `budgets.command_cpu_seconds`.
    pub key: &'static str,
    pub value: u64,
    /// `agent` or `role "NAME"`.
    pub from: String,
}

impl EffectiveLimits {
    /// Where `key` came from, for rule names (`agent` when unset).
    pub fn source(&self, key: &str) -> &str {
        self.sources
            .iter()
            .find(|s| s.key == key)
            .map(|s| s.from.as_str())
            .unwrap_or("agent")
    }
}

/// The agent's own settings win; then the first role (in the agent's
/// order) that sets the key.
pub fn resolve(own: &LimitSettings, roles: &[(&str, &LimitSettings)]) -> EffectiveLimits {
    let mut sources = Vec::new();
    macro_rules! pick {
        ($field:ident, $key:literal, $to_u64:expr) => {{
            let found = own.$field.map(|v| (v, "agent".to_string())).or_else(|| {
                roles
                    .iter()
                    .find_map(|(name, r)| r.$field.map(|v| (v, format!("role \"{name}\""))))
            });
            if let Some((v, from)) = &found {
                sources.push(LimitSource {
                    key: $key,
                    value: $to_u64(*v),
                    from: from.clone(),
                });
            }
            found.map(|(v, _)| v)
        }};
    }
    let nz = |v: NonZeroU32| u64::from(v.get());
    let us = |v: usize| v as u64;
    let id = |v: u64| v;
    let rate = RateLimits {
        read: pick!(read_per_second, "rate_limits.read_per_second", nz),
        write: pick!(write_per_second, "rate_limits.write_per_second", nz),
        command: pick!(command_per_second, "rate_limits.command_per_second", nz),
    };
    let concurrent_file_calls = pick!(concurrent_file_calls, "concurrency.file_calls", us);
    let concurrent_commands = pick!(concurrent_commands, "concurrency.commands", us);
    let window = pick!(window_seconds, "budgets.window_seconds", id);
    let budgets = Budgets {
        window: Duration::from_secs(window.unwrap_or(DEFAULT_WINDOW_SECONDS)),
        command_cpu: pick!(command_cpu_seconds, "budgets.command_cpu_seconds", id)
            .map(Duration::from_secs),
        command_wall: pick!(command_wall_seconds, "budgets.command_wall_seconds", id)
            .map(Duration::from_secs),
        write_bytes: pick!(write_bytes, "budgets.write_bytes", id),
    };
    EffectiveLimits {
        rate,
        concurrent_file_calls,
        concurrent_commands,
        budgets,
        sources,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_wins_then_the_first_role_that_sets_a_key() {
        let own = LimitSettings {
            command_cpu_seconds: Some(5),
            ..Default::default()
        };
        let first = LimitSettings {
            command_cpu_seconds: Some(100),
            write_bytes: Some(1000),
            ..Default::default()
        };
        let second = LimitSettings {
            write_bytes: Some(9),
            concurrent_commands: Some(2),
            read_per_second: NonZeroU32::new(7),
            ..Default::default()
        };
        let e = resolve(&own, &[("ci", &first), ("reader", &second)]);
        assert_eq!(e.budgets.command_cpu, Some(Duration::from_secs(5)));
        assert_eq!(e.budgets.write_bytes, Some(1000));
        assert_eq!(e.concurrent_commands, Some(2));
        assert_eq!(e.rate.read, NonZeroU32::new(7));
        assert_eq!(e.source("budgets.command_cpu_seconds"), "agent");
        assert_eq!(e.source("budgets.write_bytes"), "role \"ci\"");
        assert_eq!(e.source("concurrency.commands"), "role \"reader\"");
        assert_eq!(
            e.budgets.window,
            Duration::from_secs(DEFAULT_WINDOW_SECONDS)
        );
        assert_eq!(e.concurrent_file_calls, None, "unset: the daemon default");
    }

    #[test]
    fn nothing_set_is_no_limit() {
        let e = resolve(&LimitSettings::default(), &[]);
        assert_eq!(e.rate, RateLimits::default());
        assert_eq!(e.budgets, Budgets::default());
        assert!(e.sources.is_empty());
    }
}
