//! Reloads the policy when its directory changes. Editors save by writing a
//! temporary file and renaming it, so the directory (not each file) is
//! watched, and bursts of events are debounced into one reload.

use super::state::State;
use crate::config::Config;
use notify::{RecursiveMode, Watcher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Quiet time after the last change before reloading.
const DEBOUNCE: Duration = Duration::from_millis(300);

pub fn spawn_policy_watch(
    dir: PathBuf,
    config: Config,
    state: Arc<State>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if !event.kind.is_access() {
                let _ = tx.send(());
            }
        }
    })?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| anyhow::anyhow!("cannot watch the policy directory {}: {e}", dir.display()))?;
    tracing::info!(dir = %dir.display(), "watching the policy directory for changes");
    Ok(tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        while rx.recv().await.is_some() {
            loop {
                match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            tracing::info!(dir = %dir.display(), "policy directory changed: reloading");
            super::reload(&config, &state).await;
        }
    }))
}
