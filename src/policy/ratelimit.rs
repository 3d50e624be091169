//! `[agents.rate_limits]`: how many calls per second an agent may make, by
//! kind of tool. The limiters themselves live in the daemon
//! (`server::ratelimit`), so they survive reloads.

use schemars::JsonSchema;
use serde::Deserialize;
use std::num::NonZeroU32;

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// ReadFile, ListDir, Glob, Grep, Stat calls per second (also the
    /// burst). Unset: no limit.
    pub read_per_second: Option<NonZeroU32>,
    /// WriteFile, EditFile, MakeDir, Move, Remove calls per second.
    pub write_per_second: Option<NonZeroU32>,
    /// Exec and Run calls per second.
    pub command_per_second: Option<NonZeroU32>,
}

/// Kinds of tool a rate applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Read,
    Write,
    Command,
}

impl Kind {
    pub fn of(method: &str) -> Option<Kind> {
        Some(match method {
            "ReadFile" | "ListDir" | "Glob" | "Grep" | "Stat" => Kind::Read,
            "WriteFile" | "EditFile" | "MakeDir" | "Move" | "Remove" => Kind::Write,
            "Exec" | "Run" | "StartProcess" => Kind::Command,
            _ => return None,
        })
    }

    pub fn key(self) -> &'static str {
        match self {
            Kind::Read => "read_per_second",
            Kind::Write => "write_per_second",
            Kind::Command => "command_per_second",
        }
    }
}

/// An agent's rates, compiled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    pub read: Option<NonZeroU32>,
    pub write: Option<NonZeroU32>,
    pub command: Option<NonZeroU32>,
}

impl RateLimits {
    pub fn from_spec(spec: Option<&RateLimitSpec>) -> RateLimits {
        spec.map(|s| RateLimits {
            read: s.read_per_second,
            write: s.write_per_second,
            command: s.command_per_second,
        })
        .unwrap_or_default()
    }

    pub fn of(&self, kind: Kind) -> Option<NonZeroU32> {
        match kind {
            Kind::Read => self.read,
            Kind::Write => self.write,
            Kind::Command => self.command,
        }
    }
}
