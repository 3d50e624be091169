//! The sandbox's filesystem view: planned in the parent, applied in the child.
//!
//! The new root is a small tmpfs holding only mount points, generated
//! passwd/group, and symlinks; it is made read-only after `pivot_root`.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::report::Step;
use super::spec::SandboxSpec;
use super::sys::Errno;
use super::syscall::Syscall;

/// Where the new root is assembled. Each child mounts its tmpfs here inside
/// its own mount namespace, so concurrent launches do not collide.
pub const STAGING_DIR: &str = "/run/agentjail-sandbox/root";

const ATTR_RDONLY: u64 = 0x1;
const ATTR_NOSUID: u64 = 0x2;
const ATTR_NODEV: u64 = 0x4;
const ATTR_NOEXEC: u64 = 0x8;

/// Device nodes bound from the host into the minimal /dev.
pub const DEV_NODES: &[&str] = &["null", "zero", "full", "random", "urandom"];

/// One child-side filesystem operation, fully prepared (no allocation later).
#[derive(Debug)]
pub enum MountOp {
    Dir(CString),
    File(CString),
    Symlink {
        target: CString,
        link: CString,
    },
    Bind {
        src: CString,
        dst: CString,
        attrs: u64,
    },
    Tmpfs {
        dst: CString,
        data: CString,
        nodev: bool,
    },
    Mknod {
        path: CString,
        rdev: u64,
    },
    Attrs {
        path: CString,
        attrs: u64,
    },
    Proc {
        dst: CString,
    },
    /// A devpts instance of the sandbox's own (sessions: terminals).
    Devpts {
        dst: CString,
    },
}

/// The whole filesystem setup for one launch.
#[derive(Debug)]
pub struct MountPlan {
    staging: CString,
    ops: Vec<MountOp>,
}

fn cstr(p: impl AsRef<Path>) -> io::Result<CString> {
    CString::new(p.as_ref().as_os_str().as_bytes())
        .map_err(|_| super::spec::invalid("path contains NUL"))
}

struct Builder {
    root: PathBuf,
    ops: Vec<MountOp>,
}

impl Builder {
    fn at(&self, inside: &Path) -> PathBuf {
        self.root.join(inside.strip_prefix("/").unwrap_or(inside))
    }
    /// mkdir -p of `inside` (parents first).
    fn dirs(&mut self, inside: &Path) -> io::Result<()> {
        let mut acc = PathBuf::from("/");
        for c in inside.components().skip(1) {
            acc.push(c);
            let p = cstr(self.at(&acc))?;
            if !self
                .ops
                .iter()
                .any(|o| matches!(o, MountOp::Dir(d) if *d == p))
            {
                self.ops.push(MountOp::Dir(p));
            }
        }
        Ok(())
    }
    /// Mirrors host `src` at `inside`: symlinks are recreated (never followed
    /// out of the sandbox), directories and files are bound with `attrs`.
    fn mirror(&mut self, src: &Path, inside: &Path, attrs: u64) -> io::Result<()> {
        let Ok(meta) = std::fs::symlink_metadata(src) else {
            return Ok(());
        };
        if let Some(parent) = inside.parent() {
            self.dirs(parent)?;
        }
        let dst = cstr(self.at(inside))?;
        if meta.file_type().is_symlink() {
            let target = cstr(std::fs::read_link(src)?)?;
            self.ops.push(MountOp::Symlink { target, link: dst });
            return Ok(());
        }
        self.ops.push(if meta.is_dir() {
            MountOp::Dir(dst.clone())
        } else {
            MountOp::File(dst.clone())
        });
        self.ops.push(MountOp::Bind {
            src: cstr(src)?,
            dst,
            attrs,
        });
        Ok(())
    }
}

/// What is mounted on one workspace path, strongest last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Pin {
    /// A directory above a mask or a read-only path, bound onto itself so
    /// it is a mount point: rename and rmdir of a mount point fail with
    /// EBUSY, so the mask cannot be carried away or the path rebuilt.
    /// Read-only when it lies inside a read-only path.
    Ancestor { read_only: bool },
    /// Bound onto itself read-only (git metadata).
    ReadOnly { read_only: bool },
    /// Hidden: an empty read-only tmpfs on a directory, /dev/null on a file.
    Mask { is_dir: bool },
}

/// Every workspace path to mount on, shallowest first (so a pin is in place
/// before what it protects is mounted below it): the masks, the read-only
/// paths, and every directory above them. Nothing below a mask is mounted
/// (the mask hides it); a path inside a read-only one stays read-only.
pub(super) fn pinned(spec: &SandboxSpec) -> Vec<(PathBuf, Pin)> {
    use std::collections::BTreeMap;
    let mut plan: BTreeMap<PathBuf, Pin> = BTreeMap::new();
    let mut put = |p: PathBuf, pin: Pin| {
        let e = plan.entry(p).or_insert(pin);
        *e = (*e).max(pin);
    };
    let targets = spec
        .masked
        .iter()
        .map(|(p, d)| (p, Pin::Mask { is_dir: *d }))
        .chain(
            spec.read_only_paths
                .iter()
                .map(|p| (p, Pin::ReadOnly { read_only: true })),
        );
    for (path, pin) in targets {
        let mut above = path.parent();
        while let Some(a) = above.filter(|a| !a.as_os_str().is_empty()) {
            put(a.to_path_buf(), Pin::Ancestor { read_only: false });
            above = a.parent();
        }
        put(path.clone(), pin);
    }
    let mut ordered: Vec<(PathBuf, Pin)> = plan.into_iter().collect();
    ordered.sort_by_key(|(p, _)| p.components().count());
    let mut kept: Vec<(PathBuf, Pin)> = Vec::with_capacity(ordered.len());
    for (path, mut pin) in ordered {
        let mut inside_ro = false;
        let mut hidden = false;
        for (q, qpin) in &kept {
            if path.starts_with(q) {
                match qpin {
                    Pin::Mask { .. } => hidden = true,
                    Pin::ReadOnly { .. } | Pin::Ancestor { read_only: true } => inside_ro = true,
                    Pin::Ancestor { read_only: false } => {}
                }
            }
        }
        if hidden {
            continue;
        }
        if inside_ro {
            pin = match pin {
                Pin::Ancestor { .. } => Pin::Ancestor { read_only: true },
                other => other,
            };
        }
        kept.push((path, pin));
    }
    kept
}

impl MountPlan {
    pub fn build(spec: &SandboxSpec) -> io::Result<Self> {
        let root = PathBuf::from(STAGING_DIR);
        let ro = ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV;
        let mut b = Builder {
            root: root.clone(),
            ops: Vec::new(),
        };
        for d in &spec.system_dirs {
            b.mirror(d, d, ro)?;
        }
        b.dirs(Path::new("/etc"))?;
        let etc = super::etc::view_for(spec)?;
        b.ops.push(MountOp::Bind {
            src: cstr(&etc)?,
            dst: cstr(root.join("etc"))?,
            attrs: ro | ATTR_NOEXEC,
        });

        let ws = &spec.workspace;
        b.dirs(&ws.inside)?;
        let ws_attrs = ATTR_NOSUID | ATTR_NODEV | if ws.writable { 0 } else { ATTR_RDONLY };
        b.ops.push(MountOp::Bind {
            src: cstr(&ws.host)?,
            dst: cstr(b.at(&ws.inside))?,
            attrs: ws_attrs,
        });

        // Denied paths hidden, git metadata read-only, and every directory
        // between them and the workspace root pinned (see `pinned`).
        for (rel, pin) in pinned(spec) {
            let dst = cstr(b.at(&ws.inside.join(&rel)))?;
            match pin {
                Pin::Ancestor { read_only } | Pin::ReadOnly { read_only } => {
                    let attrs = if read_only {
                        ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV
                    } else {
                        ws_attrs
                    };
                    b.ops.push(MountOp::Bind {
                        src: dst.clone(),
                        dst,
                        attrs,
                    });
                }
                Pin::Mask { is_dir: true } => {
                    b.ops.push(MountOp::Tmpfs {
                        dst: dst.clone(),
                        data: cstr("mode=0555,size=4k,nr_inodes=8")?,
                        nodev: true,
                    });
                    b.ops.push(MountOp::Attrs {
                        path: dst,
                        attrs: ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC,
                    });
                }
                Pin::Mask { is_dir: false } => {
                    // /dev/null on a nodev mount: every open fails.
                    b.ops.push(MountOp::Bind {
                        src: cstr("/dev/null")?,
                        dst,
                        attrs: ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC,
                    });
                }
            }
        }

        b.dirs(Path::new("/tmp"))?;
        let tmp_data = format!("size={},mode=1777,nr_inodes=65536", spec.limits.tmp_bytes);
        b.ops.push(MountOp::Tmpfs {
            dst: cstr(root.join("tmp"))?,
            data: cstr(tmp_data)?,
            nodev: true,
        });

        // /dev: its own tmpfs (the root one is nodev) with fresh nodes, made
        // read-only once populated. mknod is one syscall where a bind is three.
        b.dirs(Path::new("/dev"))?;
        let dev = cstr(root.join("dev"))?;
        b.ops.push(MountOp::Tmpfs {
            dst: dev.clone(),
            data: cstr("mode=0755,size=64k,nr_inodes=64")?,
            nodev: false,
        });
        for n in DEV_NODES {
            let rdev = std::os::unix::fs::MetadataExt::rdev(&std::fs::metadata(
                Path::new("/dev").join(n),
            )?);
            b.ops.push(MountOp::Mknod {
                path: cstr(root.join("dev").join(n))?,
                rdev,
            });
        }
        for (link, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("shm", "/tmp"),
        ] {
            b.ops.push(MountOp::Symlink {
                target: cstr(target)?,
                link: cstr(root.join("dev").join(link))?,
            });
        }
        if spec.session {
            // A new devpts instance: its ptys are the session's alone, and
            // `tty` names a real /dev/pts/N inside.
            let pts = root.join("dev").join("pts");
            b.ops.push(MountOp::Dir(cstr(&pts)?));
            b.ops.push(MountOp::Devpts { dst: cstr(&pts)? });
            b.ops.push(MountOp::Symlink {
                target: cstr("pts/ptmx")?,
                link: cstr(root.join("dev").join("ptmx"))?,
            });
        }
        b.ops.push(MountOp::Attrs {
            path: dev,
            attrs: ATTR_RDONLY | ATTR_NOSUID | ATTR_NOEXEC,
        });
        b.dirs(Path::new("/proc"))?;
        b.ops.push(MountOp::Proc {
            dst: cstr(root.join("proc"))?,
        });
        Ok(MountPlan {
            staging: cstr(&root)?,
            ops: b.ops,
        })
    }

    /// Creates the staging mount point once per host (the parent's job).
    pub fn ensure_staging_dir() -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(STAGING_DIR)
    }

    /// Child side: builds the new root, pivots into it and detaches the host
    /// root. Runs in a fresh mount namespace.
    pub fn apply(&self, s: &impl Syscall) -> Result<(), (Step, Errno)> {
        let null = core::ptr::null();
        let on = |step: Step| move |e: Errno| (step, e);
        // Nothing we mount may propagate back to the host (or in from it).
        s.mount(
            null,
            c"/".as_ptr(),
            null,
            libc::MS_REC | libc::MS_PRIVATE,
            null.cast(),
        )
        .map_err(on(Step::MountPrivate))?;
        let st = self.staging.as_ptr();
        s.mount(
            c"tmpfs".as_ptr(),
            st,
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            c"mode=0755,size=1m,nr_inodes=4096".as_ptr().cast(),
        )
        .map_err(on(Step::MountRoot))?;
        for op in &self.ops {
            apply_op(s, op)?;
        }
        s.chdir(st).map_err(on(Step::PivotRoot))?;
        // pivot_root(".", ".") stacks the old root on top of the new one;
        // detaching "." then drops every host mount from this namespace.
        s.pivot_root(c".".as_ptr(), c".".as_ptr())
            .map_err(on(Step::PivotRoot))?;
        s.umount2(c".".as_ptr(), libc::MNT_DETACH)
            .map_err(on(Step::PivotRoot))?;
        s.chdir(c"/".as_ptr()).map_err(on(Step::PivotRoot))?;
        let ro =
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
        s.mount(null, c"/".as_ptr(), null, ro, null.cast())
            .map_err(on(Step::RemountRootRo))?;
        Ok(())
    }

    /// A plan of the given operations, for the seam's unit tests.
    #[cfg(test)]
    pub fn for_tests(staging: &str, ops: Vec<MountOp>) -> MountPlan {
        MountPlan {
            staging: CString::new(staging).unwrap(),
            ops,
        }
    }
}

fn apply_op(s: &impl Syscall, op: &MountOp) -> Result<(), (Step, Errno)> {
    let null = core::ptr::null();
    match op {
        MountOp::Dir(p) => s
            .mkdir(p.as_ptr(), 0o755)
            .map_err(|e| (Step::MountMkdir, e)),
        MountOp::File(p) => {
            let fd = s
                .open(
                    p.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o644,
                )
                .map_err(|e| (Step::MountMkdir, e))?;
            s.close(fd);
            Ok(())
        }
        MountOp::Symlink { target, link } => s
            .symlink(target.as_ptr(), link.as_ptr())
            .map_err(|e| (Step::MountSymlink, e)),
        MountOp::Bind { src, dst, attrs } => {
            s.mount(
                src.as_ptr(),
                dst.as_ptr(),
                null,
                libc::MS_BIND | libc::MS_REC,
                null.cast(),
            )
            .map_err(|e| (Step::MountBind, e))?;
            s.mount_setattr_recursive(dst.as_ptr(), *attrs)
                .map_err(|e| (Step::MountBind, e))
        }
        MountOp::Tmpfs { dst, data, nodev } => {
            let flags = libc::MS_NOSUID | if *nodev { libc::MS_NODEV } else { 0 };
            s.mount(
                c"tmpfs".as_ptr(),
                dst.as_ptr(),
                c"tmpfs".as_ptr(),
                flags,
                data.as_ptr().cast(),
            )
            .map_err(|e| (Step::MountTmp, e))
        }
        MountOp::Mknod { path, rdev } => s
            .mknod(path.as_ptr(), libc::S_IFCHR | 0o666, *rdev)
            .map_err(|e| (Step::MountMkdir, e)),
        MountOp::Attrs { path, attrs } => s
            .mount_setattr_recursive(path.as_ptr(), *attrs)
            .map_err(|e| (Step::MountBind, e)),
        MountOp::Proc { dst } => {
            let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
            s.mount(
                c"proc".as_ptr(),
                dst.as_ptr(),
                c"proc".as_ptr(),
                flags,
                null.cast(),
            )
            .map_err(|e| (Step::MountProc, e))
        }
        MountOp::Devpts { dst } => s
            .mount(
                c"devpts".as_ptr(),
                dst.as_ptr(),
                c"devpts".as_ptr(),
                libc::MS_NOSUID | libc::MS_NOEXEC,
                c"newinstance,ptmxmode=0666,mode=0620".as_ptr().cast(),
            )
            .map_err(|e| (Step::MountTmp, e)),
    }
}
