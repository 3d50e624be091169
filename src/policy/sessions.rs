//! `[agents.sessions]`: whether an agent may open sessions (sandboxes that
//! live across calls, issue 13) and their limits. Unset fields take the
//! defaults in `crate::limits`; a request may ask for less, never more.

use crate::limits;
use schemars::JsonSchema;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionSpec {
    /// May the agent open sessions at all (default true, where it has an
    /// `[agents.shell]` table).
    pub allowed: Option<bool>,
    /// Sessions open at once (default 8).
    pub max_sessions: Option<usize>,
    /// Longest life of a session, in milliseconds (default 8 h).
    pub max_lifetime_ms: Option<u64>,
    /// Idle timeout: a session with no call for this long is closed
    /// (milliseconds; default 30 min; also the most a request may ask).
    pub idle_timeout_ms: Option<u64>,
    /// Background processes running at once in one session (default 16).
    pub max_processes: Option<usize>,
}

/// An agent's session limits, compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    pub allowed: bool,
    pub max_sessions: usize,
    pub max_lifetime: Duration,
    pub idle_timeout: Duration,
    pub max_processes: usize,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            allowed: true,
            max_sessions: limits::DEFAULT_SESSIONS_PER_AGENT,
            max_lifetime: Duration::from_millis(limits::DEFAULT_SESSION_LIFETIME_MS),
            idle_timeout: Duration::from_millis(limits::DEFAULT_SESSION_IDLE_TIMEOUT_MS),
            max_processes: limits::DEFAULT_SESSION_PROCESSES,
        }
    }
}

impl SessionPolicy {
    /// The table, within the daemon's hard maximums.
    pub fn from_spec(spec: Option<&SessionSpec>) -> SessionPolicy {
        let d = SessionPolicy::default();
        let Some(s) = spec else { return d };
        let ms = |v: Option<u64>, default: Duration, max: u64| {
            v.map(|v| Duration::from_millis(v.clamp(1, max)))
                .unwrap_or(default)
        };
        SessionPolicy {
            allowed: s.allowed.unwrap_or(true),
            max_sessions: s.max_sessions.unwrap_or(d.max_sessions),
            max_lifetime: ms(
                s.max_lifetime_ms,
                d.max_lifetime,
                limits::MAX_SESSION_LIFETIME_MS,
            ),
            idle_timeout: ms(
                s.idle_timeout_ms,
                d.idle_timeout,
                limits::MAX_SESSION_IDLE_TIMEOUT_MS,
            ),
            max_processes: s.max_processes.unwrap_or(d.max_processes),
        }
    }
}
