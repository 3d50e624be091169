//! The audit trail: one record per call, allowed or denied, in an
//! append-only JSON Lines file with a hash chain. A call's response is sent
//! only once its record is durable; when records cannot be written, calls
//! are refused (fail closed) unless the operator chose fail-open.

pub mod record;
pub mod redact;
pub mod verify;
mod writer;

pub use record::{CallerRecord, Enforced, Entry, Outcome, StreamDigest};
pub use redact::Redactor;
pub use writer::{WriterConfig, head_path, read_head};

use crate::error::{Reason, ToolError};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::oneshot;
use writer::{Job, Shared};

/// The daemon's audit log. Cheap to share; all writing happens on its own
/// thread.
pub struct AuditLog {
    jobs: Option<Mutex<mpsc::Sender<Job>>>,
    shared: Arc<Shared>,
    fail_open: bool,
    path: PathBuf,
}

impl AuditLog {
    /// Records go to the daemon's log only.
    pub fn disabled() -> AuditLog {
        AuditLog {
            jobs: None,
            shared: Arc::new(Shared::new()),
            fail_open: false,
            path: PathBuf::new(),
        }
    }

    /// Opens or resumes the log file and starts the writer.
    pub fn open(cfg: WriterConfig, fail_open: bool) -> std::io::Result<AuditLog> {
        let shared = Arc::new(Shared::new());
        let path = cfg.path.clone();
        let jobs = writer::start(cfg, shared.clone())?;
        Ok(AuditLog {
            jobs: Some(Mutex::new(jobs)),
            shared,
            fail_open,
            path,
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.jobs.is_some()
    }

    /// False while records cannot be written (health reports NOT_SERVING).
    pub fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::SeqCst)
    }

    fn send(&self, job: Job) -> bool {
        match &self.jobs {
            Some(jobs) => jobs.lock().map(|tx| tx.send(job).is_ok()).unwrap_or(false),
            None => false,
        }
    }

    fn unavailable(&self) -> ToolError {
        let error = self
            .shared
            .last_error
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        ToolError::new(
            Reason::Unavailable,
            format!(
                "the audit log cannot be written ({error}), so the call was refused and nothing \
                 was done; retry later, and tell the operator"
            ),
        )
    }

    /// Before a call does any work: refuse it if its record could not be
    /// written. A log that was failing is retried first.
    pub async fn admit(&self) -> Result<(), ToolError> {
        if self.jobs.is_none() || self.fail_open {
            return Ok(());
        }
        // One stat: the file still being the one written to is what makes
        // the record possible (a removed log or directory is noticed here,
        // before the call does its work, not after).
        if self.is_healthy() && self.file_in_place() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        if self.send(Job::Recover(reply)) && answer.await.unwrap_or(false) {
            return Ok(());
        }
        Err(self.unavailable())
    }

    fn file_in_place(&self) -> bool {
        let expected = self.shared.identity.lock().map(|id| *id).unwrap_or((0, 0));
        std::fs::metadata(&self.path)
            .map(|m| (m.dev(), m.ino()) == expected)
            .unwrap_or(false)
    }

    /// Writes the call's record and waits until it is durable; returns its
    /// sequence number (None when the file log is off, or failed under
    /// fail-open). The record also goes to the daemon's log.
    pub async fn append(&self, entry: Entry) -> Result<Option<u64>, ToolError> {
        let logged = tracing::enabled!(target: "agentjail::audit", tracing::Level::INFO);
        if self.jobs.is_none() && !logged {
            return Ok(None);
        }
        // Serialised here, on the caller's task, so the single writer thread
        // only chains, hashes and writes.
        let line = logged.then(|| compact_line(&entry));
        let json = bounded_json(entry)?;
        if let Some(mut line) = line {
            // A compact line, not a second copy of the record.
            line.insert("record_bytes".into(), json.len().into());
            tracing::info!(target: "agentjail::audit", "{}", serde_json::Value::Object(line));
        }
        if self.jobs.is_none() {
            return Ok(None);
        }
        let (reply, answer) = oneshot::channel();
        let started = std::time::Instant::now();
        let depth = self.shared.queued.fetch_add(1, Ordering::SeqCst) + 1;
        crate::metrics::audit_queue_depth(depth);
        let result = if self.send(Job::Append(json, reply)) {
            answer
                .await
                .unwrap_or_else(|_| Err("the audit writer stopped".into()))
        } else {
            Err("the audit writer stopped".into())
        };
        let depth = self.shared.queued.fetch_sub(1, Ordering::SeqCst) - 1;
        crate::metrics::audit_queue_depth(depth);
        crate::metrics::audit_write(started.elapsed());
        match result {
            Ok(seq) => Ok(Some(seq)),
            Err(e) if self.fail_open => {
                tracing::error!("audit record lost (fail-open is on): {e}");
                Ok(None)
            }
            Err(e) => {
                if let Ok(mut last) = self.shared.last_error.lock() {
                    *last = e;
                }
                Err(self.unavailable())
            }
        }
    }

    /// Writes the intent record of a call about to act; returns its seq
    /// (0 when the file log is off).
    pub async fn intent(&self, entry: Entry) -> Result<u64, ToolError> {
        Ok(self.append(entry).await?.unwrap_or(0))
    }

    /// Starts a new file; the chain continues in it.
    pub fn rotate(&self) {
        self.send(Job::Rotate);
    }
}

/// The record's JSON, never over `MAX_AUDIT_RECORD_BYTES`: should the
/// bounded arguments still make it larger, they are replaced by their size
/// and sha256 (the record says so in `args.oversized`).
fn bounded_json(mut entry: Entry) -> Result<String, ToolError> {
    use sha2::{Digest, Sha256};
    let serialise = |entry: &Entry| {
        serde_json::to_string(entry)
            .map_err(|e| ToolError::internal(format!("cannot serialise the audit record: {e}")))
    };
    let json = serialise(&entry)?;
    if json.len() <= crate::limits::MAX_AUDIT_RECORD_BYTES {
        return Ok(json);
    }
    let args = serde_json::to_string(&entry.args).unwrap_or_default();
    let mut small = serde_json::Map::new();
    small.insert("oversized".into(), true.into());
    small.insert("bytes".into(), args.len().into());
    small.insert(
        "sha256".into(),
        hex::encode(Sha256::digest(args.as_bytes())).into(),
    );
    entry.args = small;
    if let Some(message) = entry.outcome.message.as_mut() {
        *message = crate::limits::clip(message, 1024).into_owned();
    }
    serialise(&entry)
}

/// The daemon log's line for a record: who, what, how it ended.
fn compact_line(e: &Entry) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::json;
    let mut line = serde_json::Map::new();
    line.insert("request_id".into(), json!(e.request_id));
    line.insert("agent".into(), json!(e.agent));
    line.insert("method".into(), json!(e.method));
    if let Some(phase) = e.phase {
        line.insert("phase".into(), json!(phase));
    }
    if let Some(intent) = e.intent {
        line.insert("intent".into(), json!(intent));
    }
    line.insert("decision".into(), json!(e.decision));
    line.insert("status".into(), json!(e.outcome.status));
    if let Some(reason) = &e.outcome.reason {
        line.insert("reason".into(), json!(reason));
    }
    if let Some(code) = e.outcome.exit_code {
        line.insert("exit_code".into(), json!(code));
    }
    line.insert("duration_us".into(), json!(e.outcome.duration_us));
    line
}
