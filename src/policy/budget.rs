//! `[agents.budgets]` and `[agents.concurrency]` (also on roles): how much
//! an agent may consume per window (command CPU and wall time, bytes
//! written) and how many of its calls may run at once. The counters live
//! in the daemon (`server::budget`, `server::caps`); this is what the policy
//! says.

use schemars::JsonSchema;
use serde::Deserialize;
use std::num::{NonZeroU64, NonZeroUsize};

/// Seconds in a budget window when the policy names none.
pub const DEFAULT_WINDOW_SECONDS: u64 = 3600;

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    /// Length of the sliding window the budgets below count over, in
    /// seconds (default 3600).
    pub window_seconds: Option<NonZeroU64>,
    /// CPU seconds (user + system, whole command tree) of Run and Exec
    /// commands per window. Unset: no budget.
    pub command_cpu_seconds: Option<NonZeroU64>,
    /// Wall-clock seconds of Run and Exec commands per window.
    pub command_wall_seconds: Option<NonZeroU64>,
    /// Bytes the file tools write per window: WriteFile's content and
    /// EditFile's inserted text.
    pub write_bytes: Option<NonZeroU64>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencySpec {
    /// File tool calls running at once (default: the daemon's
    /// `limits.concurrent_file_calls_per_agent`).
    pub file_calls: Option<NonZeroUsize>,
    /// Commands (Run, Exec) running at once (default: the daemon's
    /// `limits.concurrent_commands_per_agent`).
    pub commands: Option<NonZeroUsize>,
}
