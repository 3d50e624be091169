//! Failures as MCP tool results a model can act on: `isError: true`, the
//! daemon's reason and message (which says what to do next) and the
//! ErrorInfo metadata (rule, path, …).

use crate::error::reason_of;
use rmcp::model::{CallToolResult, ContentBlock};
use std::path::Path;
use tonic_types::StatusExt;

/// A daemon refusal or failure.
pub fn status(status: &tonic::Status, socket: &Path) -> CallToolResult {
    let Some(reason) = reason_of(status) else {
        if status.code() == tonic::Code::Unimplemented {
            // An older daemon without this call.
            return error(format!(
                "UNIMPLEMENTED: the agentjail daemon at {} does not offer this call ({}); it is \
                 older than this MCP server: upgrade it, or use run_command",
                socket.display(),
                status.message()
            ));
        }
        // No ErrorInfo: the call never reached the daemon's service.
        return error(format!(
            "UNAVAILABLE: the agentjail daemon at {} did not answer ({}: {}). Check that it is \
             running (`agentjail serve`, or `systemctl status agentjail`), then retry.",
            socket.display(),
            status.code(),
            status.message()
        ));
    };
    let mut text = format!("{reason}: {}", status.message());
    if let Some(info) = status.get_details_error_info() {
        let mut meta: Vec<_> = info.metadata.iter().collect();
        meta.sort();
        for (k, v) in meta {
            text.push_str(&format!("\n{k}: {v}"));
        }
    }
    error(text)
}

/// Arguments that do not fit the tool's schema, or a request this layer
/// cannot make: what was wrong and how to call it instead.
pub fn usage(message: impl std::fmt::Display) -> CallToolResult {
    error(format!("INVALID_ARGUMENT: {message}"))
}

pub fn error(text: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

pub fn text(text: String) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

/// Bytes in a short human form (1.2 KiB).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
