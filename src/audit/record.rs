//! One audit record: what was asked, by whom, what the policy decided, and
//! what happened. Serialised as one JSON line; field order is fixed by the
//! struct, and the hash covers the exact bytes written.

use serde::Serialize;
use serde_json::{Map, Value};

/// The caller as the transport identified it.
#[derive(Debug, Clone, Serialize)]
pub struct CallerRecord {
    /// "unix", "tcp-insecure" or "tls".
    pub transport: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// TLS callers: the certificate's names, or the start of the token's
    /// sha256.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Size and sha256 of a command's whole output stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamDigest {
    pub bytes: u64,
    pub sha256: String,
}

/// What the sandbox enforced for a command.
#[derive(Debug, Clone, Serialize)]
pub struct Enforced {
    pub namespaces: &'static str,
    pub landlock_abi: i32,
    pub seccomp: bool,
    pub network: bool,
    pub uid: u32,
    pub gid: u32,
    /// Served by a sandbox built ahead (the pool) rather than one built for
    /// this call.
    pub pooled: bool,
}

/// How the call ended.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// gRPC status code name: "OK", "PERMISSION_DENIED", ...
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The path after resolving symlinks, workspace-relative.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256_before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timed_out: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_killed: Option<bool>,
    pub duration_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout: Option<StreamDigest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<StreamDigest>,
}

/// A record before the log gives it its place in the chain.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub request_id: String,
    /// None when the caller mapped to no agent.
    pub agent: Option<String>,
    pub caller: CallerRecord,
    pub method: &'static str,
    /// "intent" for the record made durable before a command or a mutating
    /// file call starts; the call's outcome record follows and names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<&'static str>,
    /// In an outcome record: the seq of its intent record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent: Option<u64>,
    /// Normalised arguments (paths, argv, cwd, env names; never content or
    /// env values), redacted.
    pub args: Map<String, Value>,
    /// "allow" or "deny"; "error" for a call that failed for another reason.
    pub decision: &'static str,
    pub rule: String,
    pub policy_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforced: Option<Enforced>,
    pub outcome: Outcome,
    /// True when a secret-looking value was masked somewhere in the record.
    pub redacted: bool,
}

impl Entry {
    /// The phase value of intent records.
    pub const INTENT: &'static str = "intent";
}

/// The suffix every line ends with: `,"hash":"<64 hex>"}`.
pub const HASH_KEY: &str = ",\"hash\":\"";
pub const HASH_HEX_LEN: usize = 64;
/// `prev` of the first record of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Builds a record's line: its place in the chain (`seq`, `time`, `prev`),
/// then the entry's members (`entry_json`, already serialised by the caller,
/// off the writer thread), then `hash`. Returns the line (with `\n`) and its
/// hash: sha256 of the JSON object without its `hash` member, exactly as
/// written (`{...}` up to the member, then `}`).
pub(crate) fn seal(seq: u64, time: &str, prev: &str, entry_json: &str) -> (String, String) {
    use sha2::{Digest, Sha256};
    let members = entry_json
        .strip_prefix('{')
        .and_then(|e| e.strip_suffix('}'))
        .unwrap_or("");
    let mut line = String::with_capacity(members.len() + 256);
    line.push_str("{\"seq\":");
    line.push_str(&seq.to_string());
    line.push_str(",\"time\":\"");
    line.push_str(time);
    line.push_str("\",\"prev\":\"");
    line.push_str(prev);
    line.push('"');
    if !members.is_empty() {
        line.push(',');
        line.push_str(members);
    }
    line.push('}');
    let hash = hex::encode(Sha256::digest(line.as_bytes()));
    line.pop();
    line.push_str(HASH_KEY);
    line.push_str(&hash);
    line.push_str("\"}\n");
    (line, hash)
}
