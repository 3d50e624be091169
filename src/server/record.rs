//! Turning requests and responses into audit entries: normalised, redacted
//! arguments (never file content, edit text or environment values) and the
//! facts of the outcome.

use super::identity::Caller;
use crate::audit::{CallerRecord, Entry, Outcome, Redactor};
use crate::error::ToolError;
use crate::limits::{
    AUDIT_ARG_HEAD_BYTES, AUDIT_ARG_INLINE_BYTES, AUDIT_ARGV_ENTRIES, AUDIT_ENV_NAMES,
    MAX_STATUS_MESSAGE_BYTES, clip,
};
use crate::proto::*;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Arguments of a request as the audit log keeps them.
pub trait AuditArgs {
    fn audit_args(&self, redact: &Redactor, args: &mut Map<String, Value>) -> bool;
}

/// Facts of a successful response for the audit outcome.
pub trait AuditOutcome {
    fn audit_outcome(&self, _outcome: &mut Outcome) {}
}

pub(super) fn text(
    args: &mut Map<String, Value>,
    key: &str,
    value: &str,
    redact: &Redactor,
) -> bool {
    if value.is_empty() {
        return false;
    }
    let (value, hit) = bounded(value, redact);
    args.insert(key.into(), value);
    hit
}

/// A text argument as the record keeps it: whole (redacted) when short;
/// above `AUDIT_ARG_INLINE_BYTES`, its redacted head, its length and the
/// sha256 of the whole, so records stay small whatever the request.
fn bounded(value: &str, redact: &Redactor) -> (Value, bool) {
    if value.len() <= AUDIT_ARG_INLINE_BYTES {
        let (clean, hit) = redact.text(value);
        return (Value::String(clean.into_owned()), hit);
    }
    let head = clip(value, AUDIT_ARG_HEAD_BYTES);
    let (head, hit) = redact.text(&head);
    let sha256 = hex::encode(Sha256::digest(value.as_bytes()));
    (
        json!({"head": head, "bytes": value.len(), "sha256": sha256}),
        hit,
    )
}

/// argv as the record keeps it: the first `AUDIT_ARGV_ENTRIES` entries,
/// each cut to `AUDIT_ARG_HEAD_BYTES`; when anything was left out, the
/// count, total bytes and sha256 (of the entries joined by NUL) of it all.
pub(super) fn argv(args: &mut Map<String, Value>, argv: &[String], redact: &Redactor) -> bool {
    let listed = &argv[..argv.len().min(AUDIT_ARGV_ENTRIES)];
    let (mut kept, hit) = redact.argv(listed);
    let mut cut = argv.len() > listed.len();
    for entry in &mut kept {
        if entry.len() > AUDIT_ARG_HEAD_BYTES {
            *entry = clip(entry, AUDIT_ARG_HEAD_BYTES).into_owned();
            cut = true;
        }
    }
    args.insert("argv".into(), json!(kept));
    if cut {
        let mut hasher = Sha256::new();
        let mut bytes = 0;
        for (i, entry) in argv.iter().enumerate() {
            if i > 0 {
                hasher.update([0u8]);
            }
            hasher.update(entry.as_bytes());
            bytes += entry.len();
        }
        args.insert("argv_count".into(), json!(argv.len()));
        args.insert("argv_bytes".into(), json!(bytes));
        args.insert("argv_sha256".into(), json!(hex::encode(hasher.finalize())));
    }
    hit
}

macro_rules! audit_args {
    ($($req:ty => |$r:ident, $red:ident, $a:ident| $body:block)*) => {$(
        impl AuditArgs for $req {
            fn audit_args(&self, $red: &Redactor, $a: &mut Map<String, Value>) -> bool {
                let $r = self;
                let mut hit = text($a, "workspace", &$r.workspace, $red);
                hit |= $body;
                hit
            }
        }
    )*};
}

audit_args! {
    ReadFileRequest => |r, red, a| {
        match &r.window {
            Some(read_file_request::Window::Lines(w)) => {
                a.insert("lines".into(), json!({"offset": w.offset, "limit": w.limit}));
            }
            Some(read_file_request::Window::Bytes(w)) => {
                a.insert("bytes".into(), json!({"offset": w.offset, "limit": w.limit}));
            }
            None => {}
        }
        text(a, "path", &r.path, red)
    }
    WriteFileRequest => |r, red, a| {
        a.insert("content_bytes".into(), json!(r.content.len()));
        a.insert("mode".into(), json!(r.mode().as_str_name()));
        if r.create_parents {
            a.insert("create_parents".into(), json!(true));
        }
        text(a, "path", &r.path, red)
    }
    EditFileRequest => |r, red, a| {
        a.insert("edits".into(), json!(r.edits.len()));
        if r.dry_run {
            a.insert("dry_run".into(), json!(true));
        }
        text(a, "path", &r.path, red)
    }
    ListDirRequest => |r, red, a| {
        a.insert("depth".into(), json!(r.depth));
        text(a, "path", &r.path, red)
    }
    GlobRequest => |r, red, a| {
        text(a, "pattern", &r.pattern, red) | text(a, "path", &r.path, red)
    }
    GrepRequest => |r, red, a| {
        a.insert("output".into(), json!(r.output().as_str_name()));
        text(a, "pattern", &r.pattern, red)
            | text(a, "path", &r.path, red)
            | text(a, "glob", &r.glob, red)
    }
    StatRequest => |r, red, a| { text(a, "path", &r.path, red) }
    MakeDirRequest => |r, red, a| { text(a, "path", &r.path, red) }
    MoveRequest => |r, red, a| {
        if r.overwrite {
            a.insert("overwrite".into(), json!(true));
        }
        text(a, "from", &r.from, red) | text(a, "to", &r.to, red)
    }
    RemoveRequest => |r, red, a| {
        if r.recursive {
            a.insert("recursive".into(), json!(true));
        }
        text(a, "path", &r.path, red)
    }
    ExecRequest => |r, red, a| {
        let mut hit = false;
        if !r.argv.is_empty() {
            hit |= argv(a, &r.argv, red);
        }
        hit |= text(a, "shell", &r.shell, red);
        hit |= text(a, "cwd", &r.cwd, red);
        hit |= super::sessions::session_arg(a, &r.session_id, red);
        let mut names: Vec<&String> = r.env.keys().collect();
        names.sort();
        if !names.is_empty() {
            let listed: Vec<String> = names
                .iter()
                .take(AUDIT_ENV_NAMES)
                .map(|n| clip(n, 256).into_owned())
                .collect();
            a.insert("env_names".into(), json!(listed));
            if names.len() > AUDIT_ENV_NAMES {
                a.insert("env_count".into(), json!(names.len()));
            }
        }
        if !r.stdin.is_empty() {
            a.insert("stdin_bytes".into(), json!(r.stdin.len()));
        }
        if r.timeout_ms > 0 {
            a.insert("timeout_ms".into(), json!(r.timeout_ms));
        }
        hit
    }
}

impl AuditArgs for WhoAmIRequest {
    fn audit_args(&self, _redact: &Redactor, _args: &mut Map<String, Value>) -> bool {
        false
    }
}

impl AuditOutcome for ReadFileResponse {
    fn audit_outcome(&self, o: &mut Outcome) {
        o.resolved_path = Some(self.path.clone());
        o.sha256_before = (!self.sha256.is_empty()).then(|| self.sha256.clone());
        o.bytes = Some(self.text.len().max(self.data.len()) as u64);
        o.truncated = Some(self.truncated);
    }
}

impl AuditOutcome for WriteFileResponse {
    fn audit_outcome(&self, o: &mut Outcome) {
        o.resolved_path = Some(self.path.clone());
        o.sha256_before = (!self.previous_sha256.is_empty()).then(|| self.previous_sha256.clone());
        o.sha256_after = Some(self.sha256.clone());
        o.bytes = Some(self.bytes_written);
    }
}

impl AuditOutcome for EditFileResponse {
    fn audit_outcome(&self, o: &mut Outcome) {
        o.resolved_path = Some(self.path.clone());
        o.sha256_before = (!self.previous_sha256.is_empty()).then(|| self.previous_sha256.clone());
        if self.applied {
            o.sha256_after = Some(self.sha256.clone());
        }
    }
}

impl AuditOutcome for ListDirResponse {
    fn audit_outcome(&self, o: &mut Outcome) {
        o.bytes = Some(self.entries.len() as u64);
        o.truncated = Some(!self.next_page_token.is_empty() || self.scan_truncated);
    }
}

impl AuditOutcome for GlobResponse {
    fn audit_outcome(&self, o: &mut Outcome) {
        o.truncated = Some(self.truncated);
    }
}

impl AuditOutcome for GrepResponse {
    fn audit_outcome(&self, o: &mut Outcome) {
        o.truncated = Some(self.truncated);
    }
}

impl AuditOutcome for StatResponse {
    fn audit_outcome(&self, o: &mut Outcome) {
        o.resolved_path = Some(self.path.clone());
    }
}

impl AuditOutcome for MakeDirResponse {
    fn audit_outcome(&self, o: &mut Outcome) {
        o.resolved_path = Some(self.path.clone());
    }
}

impl AuditOutcome for MoveResponse {
    fn audit_outcome(&self, o: &mut Outcome) {
        o.resolved_path = Some(format!("{} -> {}", self.from, self.to));
    }
}

impl AuditOutcome for RemoveResponse {
    fn audit_outcome(&self, o: &mut Outcome) {
        o.resolved_path = Some(self.path.clone());
    }
}

impl AuditOutcome for WhoAmIResponse {}

pub fn caller_record(caller: Option<&Caller>) -> CallerRecord {
    match caller {
        Some(Caller::Unix { uid, gid, pid }) => CallerRecord {
            transport: "unix",
            uid: Some(*uid),
            gid: Some(*gid),
            pid: *pid,
            peer: None,
            credential: None,
        },
        Some(Caller::TcpInsecure { peer }) => CallerRecord {
            transport: "tcp-insecure",
            uid: None,
            gid: None,
            pid: None,
            peer: peer.map(|p| p.to_string()),
            credential: None,
        },
        Some(Caller::Tls {
            peer,
            cert,
            token_sha256,
        }) => CallerRecord {
            transport: "tls",
            uid: None,
            gid: None,
            pid: None,
            peer: peer.map(|p| p.to_string()),
            // Enough to tell tokens apart in the log, never the token.
            credential: Some(match (cert, token_sha256) {
                (_, Some(d)) => format!("token sha256:{}", &hex::encode(d)[..12]),
                (Some(c), None) => format!("certificate {}", c.names.join(",")),
                (None, None) => "none".into(),
            }),
        },
        None => CallerRecord {
            transport: "unknown",
            uid: None,
            gid: None,
            pid: None,
            peer: None,
            credential: None,
        },
    }
}

/// The common part of an entry; the outcome is filled in by the caller.
#[derive(Clone)]
pub struct EntryStart {
    pub request_id: String,
    pub caller: CallerRecord,
    pub method: &'static str,
    pub args: Map<String, Value>,
    pub redacted: bool,
    pub policy_version: String,
}

impl EntryStart {
    pub fn new<R: AuditArgs>(
        request_id: &str,
        caller: Option<&Caller>,
        method: &'static str,
        req: &R,
        redact: &Redactor,
        policy_version: &str,
    ) -> EntryStart {
        let mut args = Map::new();
        let redacted = req.audit_args(redact, &mut args);
        EntryStart {
            request_id: request_id.to_string(),
            caller: caller_record(caller),
            method,
            args,
            redacted,
            policy_version: policy_version.to_string(),
        }
    }

    /// The intent record of a command or mutating file call, made durable
    /// before it starts. `rule` is empty for file calls (their policy check
    /// happens with the work; the outcome names the rule).
    pub fn intent(&self, agent: &str, rule: &str) -> Entry {
        let mut entry = self.clone().finish(
            Some(agent),
            "pending",
            rule.to_string(),
            Outcome {
                status: "STARTED".into(),
                ..Default::default()
            },
        );
        entry.phase = Some(Entry::INTENT);
        entry
    }

    /// The entry of a call that was allowed and succeeded.
    pub fn allowed(self, agent: &str, rule: &str, outcome: Outcome) -> Entry {
        self.finish(Some(agent), "allow", rule.to_string(), outcome)
    }

    /// The entry of a call refused or failed with `err`.
    pub fn refused(
        self,
        agent: Option<&str>,
        err: &ToolError,
        duration_us: u64,
        redact: &Redactor,
    ) -> Entry {
        let decision = match err.reason {
            crate::error::Reason::PolicyDenied
            | crate::error::Reason::UnknownCaller
            | crate::error::Reason::Unauthenticated
            | crate::error::Reason::ToolNotAllowed
            | crate::error::Reason::SymlinkEscape
            | crate::error::Reason::PathOutsideWorkspace
            | crate::error::Reason::ReadOnlyWorkspace => "deny",
            _ => "error",
        };
        let rule = err.metadata_value("rule").unwrap_or("").to_string();
        let message = clip(&err.message, MAX_STATUS_MESSAGE_BYTES);
        let (message, hit) = redact.text(&message);
        let mut entry = self.finish(
            agent,
            decision,
            rule,
            Outcome {
                status: code_name(err.reason.code()).to_string(),
                reason: Some(err.reason.as_str().to_string()),
                // The path the tool resolved, when it got that far.
                resolved_path: err
                    .metadata_value("path")
                    .map(|p| redact.text(&clip(p, AUDIT_ARG_HEAD_BYTES)).0.into_owned()),
                message: Some(message.into_owned()),
                duration_us,
                ..Default::default()
            },
        );
        entry.redacted |= hit;
        entry
    }

    fn finish(
        self,
        agent: Option<&str>,
        decision: &'static str,
        rule: String,
        outcome: Outcome,
    ) -> Entry {
        Entry {
            request_id: self.request_id,
            agent: agent.map(str::to_string),
            caller: self.caller,
            method: self.method,
            phase: None,
            intent: None,
            args: self.args,
            decision,
            rule,
            policy_version: self.policy_version,
            enforced: None,
            outcome,
            redacted: self.redacted,
        }
    }
}

/// The canonical gRPC name of a status code, as the audit log spells it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
