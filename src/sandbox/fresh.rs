//! Proof, when a call takes a sandbox built ahead, that it shows the
//! workspace as a sandbox built now would.
//!
//! A mask is a mount on the dentry that was at its path when the sandbox
//! was built. If the host then renames a denied file away and puts a new
//! one at its path (or replaces `.git`, a directory between a mask and the
//! root, or the workspace root itself), the mount moves with the old dentry
//! or is detached (an unlinked mount point), and a stale sandbox would show
//! the new file unmasked. So, at take time, the launcher reads the
//! sandbox's own mount table (`/proc/<init>/mountinfo`, paths as init sees
//! them, computed by the kernel when read) and requires, below the
//! workspace, exactly the mounts a cold build makes for this call's spec
//! (whose masks come from a survey made for this call): each at its path,
//! each of its kind (an empty tmpfs on a denied directory, /dev/null on a
//! denied file, a bind of the same path with the same read-only flag
//! elsewhere), and nothing else; and the workspace mount must be the
//! directory that is at the host path now (same device and inode). Any
//! difference: the sandbox is destroyed and the call gets a cold one.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use procfs_core::FromRead;
use procfs_core::process::{MountInfo, MountInfos};

use super::mounts::{self, Pin};
use super::spec::SandboxSpec;

/// What a cold build mounts on one workspace path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Workspace,
    MaskDir,
    MaskFile,
    Bind { read_only: bool },
}

/// Ok when init `pid`'s view of the workspace is the one a cold build for
/// `spec` would make now; otherwise why not (the sandbox must not serve).
pub fn prove(pid: libc::pid_t, spec: &SandboxSpec) -> io::Result<()> {
    let infos = MountInfos::from_file(format!("/proc/{pid}/mountinfo"))
        .map_err(|e| io::Error::other(format!("mountinfo: {e}")))?;
    check_mounts(&infos.0, spec, &dev_null_majmin()?)?;
    // The workspace mount is the directory at the host path now.
    let host = std::fs::metadata(&spec.workspace.host)?;
    let inside = Path::new("/proc").join(pid.to_string()).join("root").join(
        spec.workspace
            .inside
            .strip_prefix("/")
            .unwrap_or(&spec.workspace.inside),
    );
    let seen = std::fs::symlink_metadata(inside)?;
    if (host.dev(), host.ino()) != (seen.dev(), seen.ino()) {
        return Err(stale("the workspace root was replaced"));
    }
    Ok(())
}

fn check_mounts(infos: &[MountInfo], spec: &SandboxSpec, null: &str) -> io::Result<()> {
    let ws = &spec.workspace;
    let mut want: HashMap<String, (PathBuf, Expect)> = HashMap::new();
    want.insert(mangle(&ws.inside), (PathBuf::new(), Expect::Workspace));
    let ws_ro = !ws.writable;
    for (rel, pin) in mounts::pinned(spec) {
        let expect = match pin {
            Pin::Mask { is_dir: true } => Expect::MaskDir,
            Pin::Mask { is_dir: false } => Expect::MaskFile,
            Pin::ReadOnly { read_only } | Pin::Ancestor { read_only } => Expect::Bind {
                read_only: read_only || ws_ro,
            },
        };
        want.insert(mangle(&ws.inside.join(&rel)), (rel, expect));
    }
    let mut seen = 0;
    for m in infos {
        if !m.mount_point.starts_with(&ws.inside) {
            continue;
        }
        seen += 1;
        let point = m.mount_point.to_string_lossy();
        let Some((rel, expect)) = want.get(point.as_ref()) else {
            return Err(stale(&format!("unexpected mount at {point}")));
        };
        let read_only = m.mount_options.contains_key("ro");
        let ok = match expect {
            Expect::Workspace => read_only == ws_ro,
            Expect::MaskDir => m.fs_type == "tmpfs" && m.root == "/",
            Expect::MaskFile => m.majmin == null && m.root.ends_with("/null"),
            Expect::Bind { read_only: ro } => {
                *ro == read_only && m.root.ends_with(&format!("/{}", mangle(rel)))
            }
        };
        if !ok {
            return Err(stale(&format!(
                "{point} is not what a new sandbox mounts there"
            )));
        }
    }
    if seen != want.len() {
        return Err(stale("a mount below the workspace moved or was detached"));
    }
    Ok(())
}

/// The device of the host's /dev/null's filesystem, as mountinfo names it.
fn dev_null_majmin() -> io::Result<String> {
    let dev = std::fs::metadata("/dev/null")?.dev();
    Ok(format!("{}:{}", libc::major(dev), libc::minor(dev)))
}

/// A path as mountinfo prints it (space, tab, newline, backslash in octal).
fn mangle(p: &Path) -> String {
    let s = p.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

fn stale(why: &str) -> io::Error {
    io::Error::other(format!("a sandbox built ahead is stale: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use procfs_core::FromBufRead;

    fn spec() -> SandboxSpec {
        let mut s = SandboxSpec::new(vec!["/bin/true".into()], "/srv/ws");
        s.masked = vec![("a/secret".into(), false), ("keys".into(), true)];
        s.read_only_paths = vec![".git".into()];
        s
    }

    const NULL: &str = "0:5";

    fn line(id: u32, point: &str, root: &str, opts: &str, fs: &str, majmin: &str) -> String {
        format!("{id} 1 {majmin} {root} {point} {opts} - {fs} src {opts}\n")
    }

    /// The mount table a cold build of `spec()` makes below /workspace.
    fn cold() -> Vec<String> {
        vec![
            line(1, "/", "/", "ro", "tmpfs", "0:40"),
            line(2, "/workspace", "/srv/ws", "rw,nosuid", "ext4", "8:1"),
            line(
                3,
                "/workspace/.git",
                "/srv/ws/.git",
                "ro,nosuid",
                "ext4",
                "8:1",
            ),
            line(4, "/workspace/a", "/srv/ws/a", "rw,nosuid", "ext4", "8:1"),
            line(
                5,
                "/workspace/a/secret",
                "/null",
                "ro,nosuid",
                "devtmpfs",
                NULL,
            ),
            line(6, "/workspace/keys", "/", "ro,nosuid", "tmpfs", "0:41"),
            line(7, "/tmp", "/", "rw", "tmpfs", "0:42"),
        ]
    }

    fn check(lines: &[String]) -> io::Result<()> {
        let infos = MountInfos::from_buf_read(lines.concat().as_bytes()).unwrap();
        check_mounts(&infos.0, &spec(), NULL)
    }

    #[test]
    fn the_mounts_of_a_cold_build_pass() {
        check(&cold()).expect("fresh");
    }

    #[test]
    fn a_moved_detached_swapped_or_extra_mount_is_stale() {
        // The denied file renamed away (its mask moved with it) and a new
        // one put at its path.
        let mut moved = cold();
        moved[4] = line(5, "/workspace/a/old", "/null", "ro", "devtmpfs", NULL);
        // An unlinked mount point: its mount is detached.
        let mut detached = cold();
        detached.remove(4);
        // `.git` replaced: its read-only bind went with the old one.
        let mut git = cold();
        git[2] = line(
            3,
            "/workspace/.git.old",
            "/srv/ws/.git.old",
            "ro",
            "ext4",
            "8:1",
        );
        // A directory between a mask and the root replaced.
        let mut ancestor = cold();
        ancestor[3] = line(4, "/workspace/a.old", "/srv/ws/a.old", "rw", "ext4", "8:1");
        ancestor[4] = line(
            5,
            "/workspace/a.old/secret",
            "/null",
            "ro",
            "devtmpfs",
            NULL,
        );
        // Two pins exchanged (RENAME_EXCHANGE): paths match, kinds do not.
        let mut swapped = cold();
        swapped[2] = line(3, "/workspace/.git", "/srv/ws/.git", "rw", "ext4", "8:1");
        swapped[3] = line(4, "/workspace/a", "/srv/ws/a", "ro", "ext4", "8:1");
        let mut kind = cold();
        kind[5] = line(6, "/workspace/keys", "/null", "ro", "devtmpfs", NULL);
        let mut extra = cold();
        extra.push(line(8, "/workspace/mnt", "/", "rw", "tmpfs", "0:43"));
        for (what, lines) in [
            ("moved", moved),
            ("detached", detached),
            ("git", git),
            ("ancestor", ancestor),
            ("swapped", swapped),
            ("kind", kind),
            ("extra", extra),
        ] {
            assert!(check(&lines).is_err(), "{what} must be stale");
        }
    }

    #[test]
    fn paths_are_compared_as_mountinfo_escapes_them() {
        assert_eq!(mangle(Path::new("/w/a b\\c")), "/w/a\\040b\\134c");
    }
}
