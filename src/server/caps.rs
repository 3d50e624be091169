//! Per-agent caps on calls running at once, one for blocking file calls and
//! one for commands, so one agent cannot take every thread or every pid
//! from the others. A call over its agent's cap is refused at once with
//! RESOURCE_EXHAUSTED and a retry hint, not queued. The daemon's config
//! sets the default; an agent's `concurrency` keys (or its roles') win.

use crate::error::{Reason, ToolError};
use crate::limits::BUSY_RETRY_AFTER_MS;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    FileCall,
    Command,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::FileCall => "concurrent_file_calls_per_agent",
            Kind::Command => "concurrent_commands_per_agent",
        }
    }
}

/// A semaphore and the cap it was made for.
type Held = (usize, Arc<Semaphore>);

pub struct Caps {
    file_calls: usize,
    commands: usize,
    /// Each agent's semaphore, with the cap it was made for (a changed cap
    /// starts a fresh one: calls running under the old one finish).
    held: Mutex<HashMap<(String, Kind), Held>>,
}

impl Caps {
    pub fn new(file_calls: usize, commands: usize) -> Caps {
        Caps {
            file_calls,
            commands,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// The cap for `kind`: the agent's own (`policy`) or the default.
    pub fn max(&self, kind: Kind, policy: Option<usize>) -> usize {
        policy.unwrap_or(match kind {
            Kind::FileCall => self.file_calls,
            Kind::Command => self.commands,
        })
    }

    /// How many calls of `kind` `agent` has running.
    pub fn running(&self, agent: &str, kind: Kind) -> usize {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.get(&(agent.to_string(), kind))
            .map(|(max, s)| max.saturating_sub(s.available_permits()))
            .unwrap_or(0)
    }

    /// A slot for one call of `kind` by `agent`, held until dropped;
    /// `policy` is the agent's own cap, if it has one.
    pub fn admit(
        &self,
        agent: &str,
        kind: Kind,
        policy: Option<usize>,
    ) -> Result<OwnedSemaphorePermit, ToolError> {
        let max = self.max(kind, policy);
        let semaphore = {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            let entry = held
                .entry((agent.to_string(), kind))
                .or_insert_with(|| (max, Arc::new(Semaphore::new(max))));
            if entry.0 != max {
                *entry = (max, Arc::new(Semaphore::new(max)));
            }
            entry.1.clone()
        };
        semaphore.try_acquire_owned().map_err(|_| {
            crate::metrics::cap_refused(kind.name(), agent);
            ToolError::new(
                Reason::TooManyConcurrentCalls,
                format!(
                    "agent \"{agent}\" already has {max} calls of this kind running (limit \
                     {}); nothing was done: retry when one has finished",
                    kind.name()
                ),
            )
            .with("limit", kind.name())
            .with("max", max.to_string())
            .with("retry_after_ms", BUSY_RETRY_AFTER_MS.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_at_its_cap_is_refused_and_another_is_not() {
        let caps = Caps::new(2, 1);
        let a1 = caps.admit("a", Kind::FileCall, None).unwrap();
        let _a2 = caps.admit("a", Kind::FileCall, None).unwrap();
        let err = caps.admit("a", Kind::FileCall, None).unwrap_err();
        assert_eq!(err.reason, Reason::TooManyConcurrentCalls);
        assert_eq!(err.metadata_value("retry_after_ms"), Some("200"));
        assert!(
            caps.admit("b", Kind::FileCall, None).is_ok(),
            "b has its own cap"
        );
        assert!(
            caps.admit("a", Kind::Command, None).is_ok(),
            "commands count apart"
        );
        drop(a1);
        assert!(
            caps.admit("a", Kind::FileCall, None).is_ok(),
            "a slot came back"
        );
    }

    #[test]
    fn an_agents_own_cap_wins_over_the_default() {
        let caps = Caps::new(4, 4);
        let _c = caps.admit("a", Kind::Command, Some(1)).unwrap();
        assert_eq!(caps.running("a", Kind::Command), 1);
        let err = caps.admit("a", Kind::Command, Some(1)).unwrap_err();
        assert_eq!(err.metadata_value("max"), Some("1"));
    }
}
