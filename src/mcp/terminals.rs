//! The daemon sessions of one MCP session (one conversation): opened on the
//! first session tool call, one per workspace, closed when the MCP session
//! ends. The processes started in them get small numbers, as Codex's
//! `exec_command` session IDs are, mapped here to the daemon's ids with the
//! offset each stream was read to.

use super::daemon::Daemon;
use crate::proto::{CloseSessionRequest, OpenSessionRequest};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tonic::Status;

/// A process as the MCP layer knows it.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub session_id: String,
    pub process_id: String,
    pub tty: bool,
    /// Where the next read of stdout and of stderr starts.
    pub offsets: [u64; 2],
}

#[derive(Default)]
struct State {
    /// Workspace name ("" = the default) -> daemon session id.
    sessions: HashMap<String, String>,
    processes: BTreeMap<u32, Tracked>,
    next: u32,
}

/// Shared by the clones of one MCP session's handler; a new MCP session
/// gets its own ([`Terminals::new`]).
#[derive(Clone)]
pub struct Terminals {
    daemon: Daemon,
    state: Arc<Mutex<State>>,
    /// Held while a session is opened, so two first calls open one.
    opening: Arc<tokio::sync::Mutex<()>>,
    /// Held for its `Drop`: the last clone gone closes the sessions.
    _closer: Arc<Closer>,
}

impl Terminals {
    pub fn new(daemon: Daemon) -> Terminals {
        let state = Arc::new(Mutex::new(State::default()));
        Terminals {
            _closer: Arc::new(Closer {
                daemon: daemon.clone(),
                state: state.clone(),
            }),
            daemon,
            state,
            opening: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The daemon session for `workspace`, opened on first use.
    pub async fn session(&self, workspace: &str) -> Result<String, Status> {
        if let Some(id) = self.state().sessions.get(workspace) {
            return Ok(id.clone());
        }
        let _one = self.opening.lock().await;
        if let Some(id) = self.state().sessions.get(workspace) {
            return Ok(id.clone());
        }
        let opened = self
            .daemon
            .client()
            .open_session(OpenSessionRequest {
                workspace: workspace.to_string(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let id = opened.session.map(|s| s.session_id).unwrap_or_default();
        self.state()
            .sessions
            .insert(workspace.to_string(), id.clone());
        Ok(id)
    }

    /// Forgets a session the daemon no longer has (it idled out or the
    /// daemon restarted), so the next call opens a new one.
    pub fn forget_session(&self, session_id: &str) {
        let mut st = self.state();
        st.sessions.retain(|_, id| id != session_id);
        st.processes.retain(|_, p| p.session_id != session_id);
    }

    pub fn track(&self, session_id: &str, process_id: &str, tty: bool) -> u32 {
        let mut st = self.state();
        st.next += 1;
        let n = st.next;
        st.processes.insert(
            n,
            Tracked {
                session_id: session_id.to_string(),
                process_id: process_id.to_string(),
                tty,
                offsets: [0, 0],
            },
        );
        n
    }

    pub fn get(&self, n: u32) -> Option<Tracked> {
        self.state().processes.get(&n).cloned()
    }

    /// Moves a stream's read offset forward (never back: a re-read of old
    /// output by offset does not make the next read repeat it).
    pub fn advance(&self, n: u32, stream: usize, next_offset: u64) {
        if let Some(p) = self.state().processes.get_mut(&n) {
            p.offsets[stream] = p.offsets[stream].max(next_offset);
        }
    }

    /// Closes every session (the MCP session ended).
    pub async fn close_all(&self) {
        let ids: Vec<String> = self.state().sessions.drain().map(|(_, id)| id).collect();
        for id in ids {
            close(&self.daemon, id).await;
        }
    }
}

async fn close(daemon: &Daemon, session_id: String) {
    let r = daemon
        .client()
        .close_session(CloseSessionRequest {
            session_id: session_id.clone(),
        })
        .await;
    if let Err(e) = r {
        tracing::debug!("closing session {session_id}: {}", e.message());
    }
}

/// Closes what is left when the last handle of an MCP session goes (an
/// HTTP session deleted or timed out); the daemon's idle timeout is the
/// backstop when no runtime is left to do it.
struct Closer {
    daemon: Daemon,
    state: Arc<Mutex<State>>,
}

impl Drop for Closer {
    fn drop(&mut self) {
        let ids: Vec<String> = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sessions
            .drain()
            .map(|(_, id)| id)
            .collect();
        if ids.is_empty() {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let daemon = self.daemon.clone();
            rt.spawn(async move {
                for id in ids {
                    close(&daemon, id).await;
                }
            });
        }
    }
}
