//! The sandbox's /etc: a snapshot of the allowed host entries plus generated
//! passwd/group, built once per identity on the host and bound read-only.
//!
//! One bind instead of one per entry: with ~25 entries the per-entry binds
//! were the largest single cost of a launch (~0.35 ms). The price is that
//! host changes (e.g. resolv.conf) are seen only after `refresh`.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::spec::SandboxSpec;

const DIR: &str = "/run/agentjail-sandbox";

static VIEWS: Mutex<Option<(u64, HashMap<String, PathBuf>)>> = Mutex::new(None);

/// Makes later launches rebuild their /etc snapshot (call on SIGHUP or
/// config reload). Running sandboxes keep the snapshot they started with.
pub fn refresh() {
    if let Ok(mut v) = VIEWS.lock() {
        let generation = v.as_ref().map_or(0, |(g, _)| g + 1);
        *v = Some((generation, HashMap::new()));
    }
}

/// The snapshot directory for this spec's identity and entry list.
pub fn view_for(spec: &SandboxSpec) -> io::Result<PathBuf> {
    let home = home_of(spec);
    let key = format!(
        "{}:{}:{home}:{}",
        spec.uid,
        spec.gid,
        spec.etc_entries.join(",")
    );
    let mut views = VIEWS
        .lock()
        .map_err(|_| io::Error::other("etc view lock poisoned"))?;
    let (generation, map) = views.get_or_insert_with(|| {
        remove_stale();
        (0, HashMap::new())
    });
    if let Some(p) = map.get(&key) {
        return Ok(p.clone());
    }
    let dir = PathBuf::from(DIR).join(format!(
        "etc-{}-{}-{}",
        std::process::id(),
        generation,
        map.len()
    ));
    build(spec, home, &dir)?;
    map.insert(key, dir.clone());
    Ok(dir)
}

/// The home directory the snapshot's passwd gives the sandbox user: the
/// workspace mount (the default HOME), never the request's HOME, which
/// would make one host snapshot per value a client picks (and would have
/// to shape a sandbox built ahead).
pub fn home_of(spec: &SandboxSpec) -> &str {
    spec.workspace.inside.to_str().unwrap_or("/tmp")
}

/// Removes snapshots left by daemons that are gone (named etc-<pid>-...).
fn remove_stale() {
    let Ok(entries) = fs::read_dir(DIR) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name.strip_prefix("etc-").and_then(|r| r.split('-').next());
        if let Some(pid) = pid
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// passwd/group naming only root, nobody and the sandbox user, so tools that
/// look up the current user work without exposing the host's accounts.
fn identity_files(spec: &SandboxSpec, home: &str) -> (String, String) {
    let mut passwd = String::from("root:x:0:0:root:/root:/usr/sbin/nologin\n");
    let mut group = String::from("root:x:0:\n");
    if spec.uid != 65534 {
        passwd += &format!("agent:x:{}:{}:agent:{home}:/bin/sh\n", spec.uid, spec.gid);
    }
    if spec.gid != 65534 {
        group += &format!("agent:x:{}:\n", spec.gid);
    }
    passwd += "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
    group += "nogroup:x:65534:\n";
    (passwd, group)
}

fn build(spec: &SandboxSpec, home: &str, dir: &Path) -> io::Result<()> {
    let tmp = dir.with_extension("tmp");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    for e in &spec.etc_entries {
        let src = Path::new("/etc").join(e);
        if fs::symlink_metadata(&src).is_ok() {
            let dst = tmp.join(e);
            if let Some(parent) = dst.parent() {
                fs::create_dir_all(parent)?;
            }
            copy_tree(&src, &dst)?;
        }
    }
    let (passwd, group) = identity_files(spec, home);
    fs::write(tmp.join("passwd"), passwd)?;
    fs::write(tmp.join("group"), group)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;
    fs::rename(&tmp, dir)
}

/// Copies files and directories, recreating symlinks rather than following
/// them (a host symlink could point at a secret).
fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src)?, dst)
    } else if ft.is_dir() {
        fs::create_dir_all(dst)?;
        fs::set_permissions(dst, fs::Permissions::from_mode(0o755))?;
        for entry in fs::read_dir(src)? {
            let entry = entry?;
            copy_tree(&entry.path(), &dst.join(entry.file_name()))?;
        }
        Ok(())
    } else if ft.is_file() {
        fs::copy(src, dst)?;
        // World-readable copies only of world-readable files.
        let mode = if meta.permissions().mode() & 0o004 != 0 {
            0o644
        } else {
            0o600
        };
        fs::set_permissions(dst, fs::Permissions::from_mode(mode))
    } else {
        Ok(()) // sockets, fifos, devices: never
    }
}
