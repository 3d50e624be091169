//! Files and directories the daemon creates belong to the workspace owner,
//! not to the daemon (which runs as root).

use super::oserror::os_error;
use crate::error::ToolResult;
use crate::policy::WorkspacePolicy;
use rustix::fd::AsFd;
use rustix::fs::{Gid, Uid};
use rustix::io::Errno;

/// Gives the open file or directory `fd` to the workspace owner.
pub(crate) fn give_to_owner(ws: &WorkspacePolicy, fd: impl AsFd, path: &str) -> ToolResult<()> {
    let st = rustix::fs::fstat(&fd).map_err(|e| os_error("inspect", path, e))?;
    if st.st_uid == ws.owner_uid && st.st_gid == ws.owner_gid {
        return Ok(());
    }
    // -1 means "leave unchanged" to chown; never a real owner.
    if ws.owner_uid == u32::MAX || ws.owner_gid == u32::MAX {
        return Ok(());
    }
    let uid = Uid::from_raw(ws.owner_uid);
    let gid = Gid::from_raw(ws.owner_gid);
    match rustix::fs::fchown(&fd, Some(uid), Some(gid)) {
        Ok(()) => Ok(()),
        // A daemon not running as root cannot give files away; they stay
        // its own, which is all it could do.
        Err(Errno::PERM) if !rustix::process::geteuid().is_root() => Ok(()),
        Err(e) => Err(os_error("set the owner of", path, e)),
    }
}
