//! The Unix socket: created with restrictive permissions, never stolen from
//! a running daemon, removed on shutdown.

use anyhow::{Context, bail};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Removes the socket file when dropped.
pub struct SocketFile {
    path: PathBuf,
}

impl SocketFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path` with permission bits `mode`, refusing to take over the
/// socket of a daemon that is still answering.
pub async fn bind(
    path: &Path,
    mode: u32,
    group: Option<&str>,
) -> anyhow::Result<(tokio::net::UnixListener, SocketFile)> {
    let gid = match group {
        Some(name) => Some(
            nix::unistd::Group::from_name(name)
                .with_context(|| format!("cannot look up group {name}"))?
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "no group named {name:?} on this host (socket_group); create it or remove the setting"
                    )
                })?
                .gid
                .as_raw(),
        ),
        None => None,
    };
    if let Some(parent) = path.parent() {
        if !parent.exists() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create socket directory {}", parent.display()))?;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("cannot set permissions on {}", parent.display()))?;
        }
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!(
                "{} exists and is not a socket; remove it or choose another `socket` path",
                path.display()
            );
        }
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            bail!(
                "another daemon is already serving on {}; stop it or choose another `socket` path",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
    }
    // Bind under a strict umask so the socket is never briefly world-usable.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = tokio::net::UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.with_context(|| format!("cannot bind {}", path.display()))?;
    let file = SocketFile {
        path: path.to_path_buf(),
    };
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid))
            .with_context(|| format!("cannot give {} to group {gid}", path.display()))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set permissions on {}", path.display()))?;
    Ok((listener, file))
}
