//! Every limit a request meets, in one place, with its default. Request
//! limits are checked before any work and refused with `LIMIT_EXCEEDED`
//! naming the limit; the README's "Limits" section lists them all.

use std::borrow::Cow;

/// A request limit: the name a refusal gives it (the ErrorInfo's `limit`,
/// as the README's "Limits" lists it) and its value, kept together so that
/// every check of it says the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub name: &'static str,
    pub max: usize,
}

/// Bytes of a path argument: `crate::fs::MAX_PATH_BYTES`, checked by the
/// path validation (INVALID_ARGUMENT).
/// Bytes of a Glob pattern, or of Grep's pattern or glob filter.
pub const MAX_PATTERN_BYTES: Limit = limit("max_pattern_bytes", 4096);
/// Compiled size of a Grep regex, and the lazy DFA's cache (grep-regex's
/// own defaults are 100 MiB and 1 GiB).
pub const REGEX_SIZE_LIMIT: usize = 4 << 20;
pub const REGEX_DFA_SIZE_LIMIT: usize = 4 << 20;
/// Entries of a command's argv, and their bytes together.
pub const MAX_ARGV_ENTRIES: Limit = limit("max_argv_entries", 4096);
pub const MAX_ARGV_BYTES: Limit = limit("max_argv_bytes", 1 << 20);
/// Entries of a command's environment, and their bytes together.
pub const MAX_ENV_ENTRIES: Limit = limit("max_env_entries", 256);
pub const MAX_ENV_BYTES: Limit = limit("max_env_bytes", 256 << 10);
/// Bytes of a `sh -c` script.
pub const MAX_SHELL_BYTES: Limit = limit("max_shell_bytes", 1 << 20);
/// Edits in one EditFile call.
pub const MAX_EDITS: Limit = limit("max_edits", 1024);
/// Occurrences of any one field at the top of a request message, counted on
/// the wire before it is decoded: the largest of the per-field limits above,
/// so that a request of millions of tiny entries is refused without building
/// them (the per-field limits then name the precise one).
pub const MAX_REPEATED_ENTRIES: Limit = limit(
    "max_repeated_entries",
    max(
        max(MAX_ARGV_ENTRIES.max, MAX_ENV_ENTRIES.max),
        MAX_EDITS.max,
    ),
);

const fn limit(name: &'static str, max: usize) -> Limit {
    Limit { name, max }
}

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// An Exec's output past its budget is not streamed, only counted and
/// hashed: at most this fast for all streams of the daemon together (one
/// rate shared by every Exec, taken before the output is read, so a hundred
/// clients that never read cost what one does), and not at all while a
/// client has not taken what was sent; the command meanwhile blocks on its
/// pipe instead of costing a core.
pub const EXEC_PAST_BUDGET_BYTES_PER_SEC: u32 = 16 << 20;

/// An audit argument longer than this is kept as its head, its length and
/// its sha256.
pub const AUDIT_ARG_INLINE_BYTES: usize = 4096;
pub const AUDIT_ARG_HEAD_BYTES: usize = 1024;
/// argv entries an audit record lists; the rest are counted and hashed.
pub const AUDIT_ARGV_ENTRIES: usize = 64;
/// env names an audit record lists.
pub const AUDIT_ENV_NAMES: usize = 64;
/// No audit record is larger than this, whatever the request.
pub const MAX_AUDIT_RECORD_BYTES: usize = 64 << 10;

/// A status message, and each ErrorInfo value: the whole status stays far
/// below 8 KiB.
pub const MAX_STATUS_MESSAGE_BYTES: usize = 2048;
pub const MAX_STATUS_VALUE_BYTES: usize = 512;

/// Default per-agent caps on calls running at once (daemon config
/// `[limits]`).
pub const DEFAULT_CONCURRENT_FILE_CALLS_PER_AGENT: usize = 16;
pub const DEFAULT_CONCURRENT_COMMANDS_PER_AGENT: usize = 1024;
/// Sandboxes built ahead (daemon config `[pool]`): per agent and policy
/// version, in all, and how long one may wait unused before it is
/// destroyed.
pub const DEFAULT_POOL_PER_KEY: usize = 2;
pub const DEFAULT_POOL_TOTAL: usize = 16;
pub const DEFAULT_POOL_IDLE_MS: u64 = 60_000;
/// Sessions (issue 13): how many one agent may hold open, how long one
/// may idle or live (a request may ask for less, up to the maximum), how
/// many background processes one may run, and the output kept per stream.
pub const DEFAULT_SESSIONS_PER_AGENT: usize = 8;
pub const DEFAULT_SESSION_IDLE_TIMEOUT_MS: u64 = 30 * 60_000;
pub const MAX_SESSION_IDLE_TIMEOUT_MS: u64 = 24 * 3_600_000;
pub const DEFAULT_SESSION_LIFETIME_MS: u64 = 8 * 3_600_000;
pub const MAX_SESSION_LIFETIME_MS: u64 = 24 * 3_600_000;
pub const DEFAULT_SESSION_PROCESSES: usize = 16;
pub const DEFAULT_PROCESS_BUFFER_BYTES: usize = 1 << 20;
pub const MAX_PROCESS_BUFFER_BYTES: usize = 16 << 20;
/// ReadOutput: bytes per answer, and the longest wait for more (also
/// WaitProcess's).
pub const DEFAULT_READ_OUTPUT_BYTES: usize = 64 << 10;
pub const MAX_READ_OUTPUT_BYTES: usize = 1 << 20;
pub const MAX_SESSION_WAIT_MS: u64 = 30_000;

/// The retry hint sent with a refusal for being at a cap.
pub const BUSY_RETRY_AFTER_MS: u64 = 200;

/// Connections: a connection that has not finished its HTTP/2 handshake
/// within this is closed, and one with no call and no traffic for the idle
/// timeout. Per peer (uid) at most this many at once.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 300_000;
pub const DEFAULT_CONNECTIONS_PER_PEER: usize = 256;
/// The daemon warns once its open fds pass this share of RLIMIT_NOFILE.
pub const FD_WARN_PERCENT: u64 = 80;

/// `text` cut to at most `max` bytes (on a character boundary), saying how
/// long it was.
pub fn clip(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max.saturating_sub(48);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}… ({} bytes in all)", &text[..end], text.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_short_text_and_cuts_long_text_on_a_char_boundary() {
        assert_eq!(clip("abc", 10), "abc");
        let long = "é".repeat(5000);
        let cut = clip(&long, 2048);
        assert!(cut.len() <= 2048, "{}", cut.len());
        assert!(cut.ends_with("(10000 bytes in all)"));
    }
}
