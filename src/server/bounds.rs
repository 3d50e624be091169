//! Each request checked against the limits in `crate::limits` before any
//! work: a request over one is refused with LIMIT_EXCEEDED naming it.

use crate::error::ToolError;
use crate::error::ToolResult;
use crate::limits::*;
use crate::proto::*;

pub trait WithinLimits {
    fn within_limits(&self) -> ToolResult<()>;
}

fn at_most(limit: Limit, got: usize, what_next: &str) -> ToolResult<()> {
    if got > limit.max {
        return Err(ToolError::limit(limit.name, limit.max, got, what_next));
    }
    Ok(())
}

fn pattern(limit: Limit, value: &str) -> ToolResult<()> {
    at_most(
        limit,
        value.len(),
        "use a shorter pattern, or several calls",
    )
}

/// Path lengths are checked by the path validation itself
/// (`crate::fs::MAX_PATH_BYTES`, INVALID_ARGUMENT); these carry no other
/// unbounded input.
macro_rules! nothing_more {
    ($($req:ty),*) => {$(
        impl WithinLimits for $req {
            fn within_limits(&self) -> ToolResult<()> {
                Ok(())
            }
        }
    )*};
}

nothing_more!(
    ReadFileRequest,
    WriteFileRequest,
    ListDirRequest,
    StatRequest,
    MakeDirRequest,
    MoveRequest,
    RemoveRequest
);

impl WithinLimits for EditFileRequest {
    fn within_limits(&self) -> ToolResult<()> {
        at_most(
            MAX_EDITS,
            self.edits.len(),
            "split the edits over several calls, or write the whole file",
        )
    }
}

impl WithinLimits for GlobRequest {
    fn within_limits(&self) -> ToolResult<()> {
        pattern(MAX_PATTERN_BYTES, &self.pattern)
    }
}

impl WithinLimits for GrepRequest {
    fn within_limits(&self) -> ToolResult<()> {
        pattern(MAX_PATTERN_BYTES, &self.pattern)?;
        // The same limit; the name says which field is over it.
        let glob = Limit {
            name: "max_pattern_bytes (glob)",
            ..MAX_PATTERN_BYTES
        };
        pattern(glob, &self.glob)
    }
}

/// What a command over its argv or environment limits should do instead.
const PASS_DATA: &str = "pass large data through stdin or a file in the workspace";

/// A command's argv, script and environment: the same limits for a Run, an
/// Exec and a session's background process.
fn command_input<'a>(
    argv: &[String],
    shell: &str,
    env: impl ExactSizeIterator<Item = (&'a String, &'a String)>,
) -> ToolResult<()> {
    at_most(MAX_ARGV_ENTRIES, argv.len(), PASS_DATA)?;
    let argv_bytes: usize = argv.iter().map(|a| a.len() + 1).sum();
    at_most(MAX_ARGV_BYTES, argv_bytes, PASS_DATA)?;
    at_most(MAX_SHELL_BYTES, shell.len(), PASS_DATA)?;
    environment(env)
}

fn environment<'a>(env: impl ExactSizeIterator<Item = (&'a String, &'a String)>) -> ToolResult<()> {
    at_most(MAX_ENV_ENTRIES, env.len(), PASS_DATA)?;
    let env_bytes: usize = env.map(|(k, v)| k.len() + v.len() + 2).sum();
    at_most(MAX_ENV_BYTES, env_bytes, PASS_DATA)
}

impl WithinLimits for ExecRequest {
    fn within_limits(&self) -> ToolResult<()> {
        command_input(&self.argv, &self.shell, self.env.iter())
    }
}

impl WithinLimits for StartProcessRequest {
    fn within_limits(&self) -> ToolResult<()> {
        command_input(&self.argv, &self.shell, self.env.iter())
    }
}

impl WithinLimits for OpenSessionRequest {
    fn within_limits(&self) -> ToolResult<()> {
        environment(self.env.iter())
    }
}

// WriteStdin's data is bounded by its own check (TOO_LARGE, as a Run's
// stdin is); the others carry ids and small numbers only.
nothing_more!(
    CloseSessionRequest,
    ListSessionsRequest,
    ReadOutputRequest,
    WriteStdinRequest,
    SignalProcessRequest,
    WaitProcessRequest,
    ListProcessesRequest,
    ResizeTerminalRequest,
    OpenPortRequest
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Reason;

    #[test]
    fn a_background_process_and_a_session_meet_the_command_limits() {
        let start = StartProcessRequest {
            shell: "x".repeat(MAX_SHELL_BYTES.max + 1),
            ..Default::default()
        };
        let err = start.within_limits().unwrap_err();
        assert_eq!(err.metadata_value("limit"), Some(MAX_SHELL_BYTES.name));
        let open = OpenSessionRequest {
            env: (0..=MAX_ENV_ENTRIES.max)
                .map(|i| (format!("V{i}"), String::new()))
                .collect(),
            ..Default::default()
        };
        let err = open.within_limits().unwrap_err();
        assert_eq!(err.metadata_value("limit"), Some(MAX_ENV_ENTRIES.name));
        assert!(StartProcessRequest::default().within_limits().is_ok());
        assert!(OpenSessionRequest::default().within_limits().is_ok());
    }

    #[test]
    fn a_request_over_a_limit_is_refused_naming_it() {
        let req = ExecRequest {
            argv: vec![String::new(); MAX_ARGV_ENTRIES.max + 1],
            ..Default::default()
        };
        let err = req.within_limits().unwrap_err();
        assert_eq!(err.reason, Reason::LimitExceeded);
        assert_eq!(err.metadata_value("limit"), Some(MAX_ARGV_ENTRIES.name));
        let ok = ExecRequest {
            argv: vec!["true".into()],
            ..Default::default()
        };
        assert!(ok.within_limits().is_ok());
        let glob = GlobRequest {
            pattern: "a".repeat(MAX_PATTERN_BYTES.max + 1),
            ..Default::default()
        };
        assert_eq!(
            glob.within_limits().unwrap_err().metadata_value("limit"),
            Some("max_pattern_bytes")
        );
    }
}
