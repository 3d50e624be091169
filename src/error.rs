//! Tool errors: a stable machine-readable reason, a gRPC code, and a message
//! that tells the agent what to do next. Converted to a `tonic::Status`
//! carrying `google.rpc.ErrorInfo` and the `agentjail-reason` metadata.

use std::fmt;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// Domain of every `google.rpc.ErrorInfo` the daemon sends.
pub const ERROR_DOMAIN: &str = "agentjail.dev";
/// Response metadata key that repeats the reason, for simple clients.
pub const REASON_METADATA_KEY: &str = "agentjail-reason";
/// ErrorInfo metadata key of a refusal that may be retried later; also sent
/// as `google.rpc.RetryInfo`.
pub const RETRY_AFTER_MS: &str = "retry_after_ms";

/// Stable reasons. Their names are part of the API: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    InvalidArgument,
    PathOutsideWorkspace,
    SymlinkEscape,
    PolicyDenied,
    UnknownCaller,
    Unauthenticated,
    ToolNotAllowed,
    IdempotencyKeyReused,
    RateLimited,
    /// A budget (command time, bytes written) of the window is used up.
    QuotaExceeded,
    UnknownWorkspace,
    NotFound,
    AlreadyExists,
    IsADirectory,
    NotADirectory,
    DirectoryNotEmpty,
    NotARegularFile,
    TooLarge,
    StaleContent,
    MatchNotFound,
    MatchAmbiguous,
    ReadOnlyWorkspace,
    Unavailable,
    Internal,
    /// The client cancelled the call, or its deadline passed, while it ran.
    Cancelled,
    DeadlineExceeded,
    /// A request went past one of the limits in `crate::limits`.
    LimitExceeded,
    /// The request's bytes are not a valid message of its method.
    UndecodableRequest,
    /// The agent already has as many calls of this kind running as it may.
    TooManyConcurrentCalls,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidArgument => "INVALID_ARGUMENT",
            Reason::PathOutsideWorkspace => "PATH_OUTSIDE_WORKSPACE",
            Reason::SymlinkEscape => "SYMLINK_ESCAPE",
            Reason::PolicyDenied => "POLICY_DENIED",
            Reason::UnknownCaller => "UNKNOWN_CALLER",
            Reason::Unauthenticated => "UNAUTHENTICATED",
            Reason::ToolNotAllowed => "TOOL_NOT_ALLOWED",
            Reason::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Reason::RateLimited => "RATE_LIMITED",
            Reason::QuotaExceeded => "QUOTA_EXCEEDED",
            Reason::UnknownWorkspace => "UNKNOWN_WORKSPACE",
            Reason::NotFound => "NOT_FOUND",
            Reason::AlreadyExists => "ALREADY_EXISTS",
            Reason::IsADirectory => "IS_A_DIRECTORY",
            Reason::NotADirectory => "NOT_A_DIRECTORY",
            Reason::DirectoryNotEmpty => "DIRECTORY_NOT_EMPTY",
            Reason::NotARegularFile => "NOT_A_REGULAR_FILE",
            Reason::TooLarge => "TOO_LARGE",
            Reason::StaleContent => "STALE_CONTENT",
            Reason::MatchNotFound => "MATCH_NOT_FOUND",
            Reason::MatchAmbiguous => "MATCH_AMBIGUOUS",
            Reason::ReadOnlyWorkspace => "READ_ONLY_WORKSPACE",
            Reason::Unavailable => "UNAVAILABLE",
            Reason::Internal => "INTERNAL",
            Reason::Cancelled => "CANCELLED",
            Reason::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Reason::LimitExceeded => "LIMIT_EXCEEDED",
            Reason::UndecodableRequest => "UNDECODABLE_REQUEST",
            Reason::TooManyConcurrentCalls => "TOO_MANY_CONCURRENT_CALLS",
        }
    }

    /// The gRPC code each reason travels with.
    pub fn code(self) -> Code {
        match self {
            Reason::InvalidArgument
            | Reason::PathOutsideWorkspace
            | Reason::IsADirectory
            | Reason::NotADirectory
            | Reason::NotARegularFile
            | Reason::LimitExceeded
            | Reason::UndecodableRequest => Code::InvalidArgument,
            Reason::SymlinkEscape
            | Reason::PolicyDenied
            | Reason::UnknownCaller
            | Reason::ToolNotAllowed
            | Reason::ReadOnlyWorkspace => Code::PermissionDenied,
            Reason::UnknownWorkspace | Reason::NotFound => Code::NotFound,
            Reason::AlreadyExists => Code::AlreadyExists,
            Reason::DirectoryNotEmpty
            | Reason::StaleContent
            | Reason::MatchNotFound
            | Reason::MatchAmbiguous
            | Reason::IdempotencyKeyReused => Code::FailedPrecondition,
            Reason::TooLarge
            | Reason::TooManyConcurrentCalls
            | Reason::RateLimited
            | Reason::QuotaExceeded => Code::ResourceExhausted,
            Reason::Cancelled => Code::Cancelled,
            Reason::DeadlineExceeded => Code::DeadlineExceeded,
            Reason::Unauthenticated => Code::Unauthenticated,
            Reason::Unavailable => Code::Unavailable,
            Reason::Internal => Code::Internal,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused or failed tool call.
#[derive(Debug, Clone)]
pub struct ToolError {
    pub reason: Reason,
    pub message: String,
    /// Extra machine-readable facts (`rule`, `path`, `matches`, ...), sent as
    /// ErrorInfo metadata.
    pub metadata: Vec<(String, String)>,
}

pub type ToolResult<T> = Result<T, ToolError>;

impl ToolError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        ToolError {
            reason,
            message: message.into(),
            metadata: Vec::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.metadata.push((key.to_string(), value.into()));
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Reason::InvalidArgument, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Reason::Internal, message)
    }

    /// A policy denial names the rule that made it.
    pub fn denied(rule: &str, message: impl Into<String>) -> Self {
        Self::new(Reason::PolicyDenied, message).with("rule", rule)
    }

    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A request over `limit` (named as in `crate::limits`): refused before
    /// any work.
    pub fn limit(limit: &str, max: usize, got: usize, what_next: &str) -> Self {
        Self::new(
            Reason::LimitExceeded,
            format!("{limit} is {max}, the request has {got}; {what_next}"),
        )
        .with("limit", limit)
        .with("max", max.to_string())
        .with("got", got.to_string())
    }

    /// The status sent for this error. The message and every detail are
    /// kept short (the whole status under `MAX_STATUS_BYTES`), whatever
    /// input they quote: some clients refuse large status details.
    pub fn to_status(&self) -> tonic::Status {
        use crate::limits::{MAX_STATUS_MESSAGE_BYTES, MAX_STATUS_VALUE_BYTES, clip};
        let mut details = ErrorDetails::new();
        details.set_error_info(
            self.reason.as_str(),
            ERROR_DOMAIN,
            self.metadata
                .iter()
                .take(16)
                .map(|(k, v)| {
                    (
                        clip(k, MAX_STATUS_VALUE_BYTES).into_owned(),
                        clip(v, MAX_STATUS_VALUE_BYTES).into_owned(),
                    )
                })
                .collect::<std::collections::HashMap<String, String>>(),
        );
        if let Some(ms) = self
            .metadata_value(RETRY_AFTER_MS)
            .and_then(|v| v.parse().ok())
        {
            details.set_retry_info(Some(std::time::Duration::from_millis(ms)));
        }
        let message = clip(&self.message, MAX_STATUS_MESSAGE_BYTES);
        let mut status =
            tonic::Status::with_error_details(self.reason.code(), message.into_owned(), details);
        if let Ok(value) = self.reason.as_str().parse() {
            status.metadata_mut().insert(REASON_METADATA_KEY, value);
        }
        status
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

impl std::error::Error for ToolError {}

impl From<ToolError> for tonic::Status {
    fn from(e: ToolError) -> Self {
        e.to_status()
    }
}

/// Reads the reason back out of a status (used by the CLI client and tests).
pub fn reason_of(status: &tonic::Status) -> Option<String> {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .or_else(|| {
            status
                .metadata()
                .get(REASON_METADATA_KEY)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
}
