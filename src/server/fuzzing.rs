//! Entry points for the fuzz targets (`fuzz/`): what the daemon does with a
//! decoded request before any work: its audit arguments, then its limits.

use super::bounds::WithinLimits;
use super::record::AuditArgs;
use crate::audit::Redactor;
use crate::error::ToolResult;

pub fn check_request<R: WithinLimits + AuditArgs>(req: &R) -> ToolResult<()> {
    let mut args = serde_json::Map::new();
    req.audit_args(&Redactor::new(&[], true), &mut args);
    let _ = serde_json::to_string(&args);
    req.within_limits()
}
