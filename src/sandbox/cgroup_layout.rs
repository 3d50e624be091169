//! Where per-call cgroups go: the host's cgroup mounts (v1 controllers,
//! cgroup2), which of them are usable, and the parent group in each.
//!
//! Under systemd with `Delegate=yes` the daemon's own cgroup is its to
//! manage, and systemd marks it so (the `trusted.delegate` xattr). Sandboxes
//! then live inside it, at `<own>/sandboxes/<id>`, with the daemon itself
//! moved to the leaf `<own>/daemon` (cgroup2 lets a group hand controllers
//! down only while it has no processes of its own): systemd accounts them to
//! agentjail.service and stopping the unit ends them. Without a delegation
//! they go to `<hierarchy>/agentjail/<id>`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Parent group created under each hierarchy when nothing is delegated.
const BASE: &str = "agentjail";
/// Inside a delegated group: the per-call groups' parent, and the daemon's leaf.
const SANDBOXES: &str = "sandboxes";
const DAEMON_LEAF: &str = "daemon";

/// The controllers per-call groups use.
const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// The cgroup mounts of this host.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// v1 controller name -> mount point (memory, pids, cpu, ...).
    pub v1: Vec<(String, PathBuf)>,
    /// The cgroup2 mount point, if any.
    pub v2: Option<PathBuf>,
    /// Controllers available to per-call groups under cgroup2.
    pub v2_controllers: Vec<String>,
    /// Cgroup mounts left out because they are read-only (as a container
    /// runtime may mount them): groups cannot be created there. Each with
    /// its controllers ("cgroup2" for the v2 mount).
    pub read_only: Vec<(PathBuf, Vec<String>)>,
    /// The daemon's own cgroup, when systemd delegated it.
    pub delegated: Option<Delegated>,
    /// Why the delegated group could not be readied, if it could not.
    pub delegation_error: Option<String>,
    /// Mount point -> the cgroup it shows (its root in the hierarchy).
    roots: Vec<(PathBuf, String)>,
}

/// The daemon's own groups, delegated to it by systemd.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delegated {
    /// Its cgroup2 directory (marked `trusted.delegate`).
    pub v2: PathBuf,
    /// v1 controller -> its directory there, where systemd made one.
    pub v1: Vec<(String, PathBuf)>,
}

impl Layout {
    fn parse(mountinfo: &str) -> Self {
        let mut l = Layout::default();
        for line in mountinfo.lines() {
            // "... mountpoint opts - fstype source superopts"
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let mut fields = pre.split(' ');
            let root = fields.nth(3).unwrap_or("/");
            let mnt = fields.next().unwrap_or_default();
            let mount_ro = fields
                .next()
                .unwrap_or_default()
                .split(',')
                .any(|o| o == "ro");
            let mut post = post.split(' ');
            let (fstype, opts) = (post.next(), post.nth(1));
            let is_cgroup = matches!(fstype, Some("cgroup" | "cgroup2"));
            let opts_list: Vec<&str> = opts.unwrap_or_default().split(',').collect();
            if is_cgroup && (mount_ro || opts_list.contains(&"ro")) {
                let controllers = match fstype {
                    Some("cgroup2") => vec!["cgroup2".to_string()],
                    _ => opts_list
                        .iter()
                        .filter(|o| **o != "ro" && **o != "rw")
                        .map(|o| o.to_string())
                        .collect(),
                };
                l.read_only.push((PathBuf::from(mnt), controllers));
                continue;
            }
            if is_cgroup {
                l.roots.push((PathBuf::from(mnt), root.to_string()));
            }
            match (fstype, opts) {
                (Some("cgroup2"), _) => l.v2 = Some(PathBuf::from(mnt)),
                (Some("cgroup"), Some(opts)) => {
                    for c in opts
                        .split(',')
                        .filter(|o| ["memory", "pids", "cpu", "freezer"].contains(o))
                    {
                        l.v1.push((c.to_string(), PathBuf::from(mnt)));
                    }
                }
                _ => {}
            }
        }
        l
    }

    /// Reads which of the daemon's own groups (`/proc/self/cgroup`) systemd
    /// delegated to it.
    fn read_delegation(&mut self, proc_cgroup: &str, is_delegated: impl Fn(&Path) -> bool) {
        self.delegated = delegation(self, proc_cgroup, is_delegated);
    }

    /// The controllers per-call groups get under cgroup2: those their
    /// parent offers (read after the delegated group was readied).
    fn read_v2_controllers(&mut self) {
        let offered = match (&self.delegated, &self.v2) {
            (Some(d), _) => Some(d.v2.join(SANDBOXES)),
            (None, Some(v2)) => Some(v2.clone()),
            (None, None) => None,
        };
        if let Some(dir) = offered {
            let ctl = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
            self.v2_controllers = ctl.split_whitespace().map(String::from).collect();
        }
    }

    /// The host layout, read once. In a delegated group this also readies
    /// it (the daemon moves to its leaf, controllers are handed down), so
    /// the controllers reported are the ones per-call groups really get.
    pub fn host() -> &'static Layout {
        static L: OnceLock<Layout> = OnceLock::new();
        L.get_or_init(|| {
            let mut l =
                Layout::parse(&fs::read_to_string("/proc/self/mountinfo").unwrap_or_default());
            let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
            l.read_delegation(&own, marked_delegated);
            if let Some(d) = &l.delegated {
                l.delegation_error = ready_delegated(&d.v2).err();
            }
            l.read_v2_controllers();
            l
        })
    }

    pub fn v1_mount(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|(c, _)| c == controller)
            .map(|(_, p)| p.as_path())
    }

    /// A read-only mount that would otherwise have served `controller`.
    pub fn read_only_mount(&self, controller: &str) -> Option<&Path> {
        self.read_only
            .iter()
            .find(|(_, cs)| cs.iter().any(|c| c == controller))
            .map(|(p, _)| p.as_path())
    }

    pub fn v2_has(&self, controller: &str) -> bool {
        self.v2_controllers.iter().any(|c| c == controller)
    }

    /// The cgroup2 group under which per-call groups are made.
    pub fn v2_parent(&self) -> Option<PathBuf> {
        match &self.delegated {
            Some(d) => Some(d.v2.join(SANDBOXES)),
            None => self.v2.as_ref().map(|v2| v2.join(BASE)),
        }
    }

    /// The v1 group under which per-call groups of `controller` are made.
    pub fn v1_parent(&self, controller: &str) -> Option<PathBuf> {
        let own = self
            .delegated
            .as_ref()
            .and_then(|d| d.v1.iter().find(|(c, _)| c == controller));
        match own {
            Some((_, dir)) => Some(dir.join(SANDBOXES)),
            None => self.v1_mount(controller).map(|m| m.join(BASE)),
        }
    }
}

impl Layout {
    /// Every directory that per-call groups are made in.
    pub fn per_call_parents(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.v2_parent().into_iter().collect();
        for c in CONTROLLERS {
            if let Some(p) = self.v1_parent(c) {
                if !v.contains(&p) {
                    v.push(p);
                }
            }
        }
        v
    }
}

/// The system manager marks a group it delegated with `trusted.delegate`,
/// which only CAP_SYS_ADMIN can set, and the group of a root service stays
/// root's. `user.delegate` is not trusted: a user manager sets it on groups
/// the user owns, where the user could take the controllers away from the
/// sandboxes' groups.
fn marked_delegated(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let owned_by_root = fs::metadata(dir).is_ok_and(|m| m.uid() == 0);
    // An empty buffer asks for the size only: Ok means it is set.
    owned_by_root && rustix::fs::getxattr(dir, "trusted.delegate", &mut [0u8; 0][..]).is_ok()
}

/// `path` (as /proc/self/cgroup names it) inside the mount at `mnt`, which
/// shows the hierarchy from its root down; `None` if it lies outside.
fn under_mount(l: &Layout, mnt: &Path, path: &str) -> Option<PathBuf> {
    let root = l
        .roots
        .iter()
        .find(|(m, _)| m == mnt)
        .map_or("/", |(_, r)| r.as_str());
    let rel = if root == "/" {
        path
    } else {
        path.strip_prefix(root)?
    };
    let rel = rel.trim_start_matches('/');
    (!rel.is_empty()).then(|| mnt.join(rel))
}

fn delegation(
    l: &Layout,
    proc_cgroup: &str,
    is_delegated: impl Fn(&Path) -> bool,
) -> Option<Delegated> {
    // "0::/system.slice/agentjail.service" (v2), "4:memory:/..." (v1).
    let entries: Vec<(&str, &str, &str)> = proc_cgroup
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            Some((parts.next()?, parts.next()?, parts.next()?))
        })
        .collect();
    let (_, _, own) = entries
        .iter()
        .find(|(id, controllers, _)| *id == "0" && controllers.is_empty())?;
    let v2 = under_mount(l, l.v2.as_ref()?, own).filter(|dir| is_delegated(dir))?;
    // systemd gives a unit the same path in every hierarchy it manages for
    // it; a v1 group elsewhere (a parent slice, say) is not the unit's.
    let mut v1 = Vec::new();
    for (_, controllers, path) in entries.iter().filter(|(_, _, p)| p == own) {
        for c in controllers.split(',') {
            if let Some(dir) = l.v1_mount(c).and_then(|m| under_mount(l, m, path)) {
                v1.push((c.to_string(), dir));
            }
        }
    }
    Some(Delegated { v2, v1 })
}

/// Readies the delegated group `own`: moves the daemon to its leaf (cgroup2
/// lets a group hand controllers down only while it holds no processes),
/// then enables each controller it offers for `own` and `own/sandboxes`.
/// A controller that cannot be enabled is simply not offered to the
/// sandboxes, so a limit that needs it fails closed at start.
fn ready_delegated(own: &Path) -> Result<(), String> {
    let leaf = own.join(DAEMON_LEAF);
    let moved = match fs::create_dir(&leaf) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        // The whole process (every thread) moves: domain groups hold processes.
        _ => fs::write(leaf.join("cgroup.procs"), std::process::id().to_string()),
    };
    moved.map_err(|e| format!("moving the daemon to {}: {e}", leaf.display()))?;
    let sandboxes = own.join(SANDBOXES);
    let mut failed = Vec::new();
    for level in [own, sandboxes.as_path()] {
        if level == sandboxes.as_path()
            && let Err(e) = fs::create_dir(level)
            && e.kind() != io::ErrorKind::AlreadyExists
        {
            return Err(format!("creating {}: {e}", level.display()));
        }
        let offered = fs::read_to_string(level.join("cgroup.controllers")).unwrap_or_default();
        for c in CONTROLLERS
            .iter()
            .filter(|c| offered.split_whitespace().any(|o| o == **c))
        {
            if let Err(e) = fs::write(level.join("cgroup.subtree_control"), format!("+{c}")) {
                failed.push(format!("+{c} in {}: {e}", level.display()));
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("cannot enable {}", failed.join(", ")))
    }
}

/// Readies the parent of per-call groups, once. In a delegated group that
/// was done with the layout; beside the tree, on a cgroup2 host,
/// `agentjail/` gets the controllers (a failure surfaces as a missing
/// `memory.max`, failing that launch closed).
pub fn prepare() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let l = Layout::host();
        if let Some(e) = &l.delegation_error {
            tracing::warn!("the delegated cgroup is not fully usable: {e}");
        }
        if l.delegated.is_some() {
            return;
        }
        let Some(parent) = l.v2_parent() else {
            return;
        };
        let _ = fs::create_dir_all(&parent);
        let wanted: Vec<String> = CONTROLLERS
            .iter()
            .filter(|c| l.v2_has(c))
            .map(|c| format!("+{c}"))
            .collect();
        if !wanted.is_empty() {
            let _ = fs::write(parent.join("cgroup.subtree_control"), wanted.join(" "));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_cgroup_mounts_are_left_out() {
        // As systemd-nspawn mounts a hybrid host's v1 controllers in a container.
        let mountinfo = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,size=4096k,mode=755
35 30 0:30 / /nonexistent/memory ro,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
36 30 0:31 / /nonexistent/pids rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,pids
37 30 0:32 / /nonexistent/cpu rw,nosuid - cgroup cgroup ro,cpu
38 30 0:33 / /nonexistent/unified rw,nosuid - cgroup2 cgroup2 rw
";
        let l = Layout::parse(mountinfo);
        assert_eq!(l.v1_mount("pids"), Some(Path::new("/nonexistent/pids")));
        assert_eq!(l.v1_mount("memory"), None, "a read-only mount (per mount)");
        assert_eq!(l.v1_mount("cpu"), None, "a read-only superblock");
        assert_eq!(l.v2.as_deref(), Some(Path::new("/nonexistent/unified")));
        assert_eq!(
            l.read_only_mount("memory"),
            Some(Path::new("/nonexistent/memory"))
        );
        assert_eq!(
            l.read_only_mount("cpu"),
            Some(Path::new("/nonexistent/cpu"))
        );
        assert_eq!(l.read_only_mount("pids"), None);
    }

    const HYBRID: &str = "\
35 30 0:30 / /cg/memory rw,nosuid - cgroup cgroup rw,memory
36 30 0:31 / /cg/pids rw,nosuid - cgroup cgroup rw,pids
38 30 0:33 / /cg/unified rw,nosuid - cgroup2 cgroup2 rw
";

    #[test]
    fn per_call_groups_go_inside_a_delegated_cgroup() {
        let own = "4:memory:/system.slice/agentjail.service\n8:pids:/\n0::/system.slice/agentjail.service\n";
        let mut l = Layout::parse(HYBRID);
        l.read_delegation(own, |dir| {
            dir == Path::new("/cg/unified/system.slice/agentjail.service")
        });
        let unit = Path::new("/cg/unified/system.slice/agentjail.service");
        assert_eq!(
            l.delegated.as_ref().map(|d| d.v2.as_path()),
            Some(unit),
            "{l:?}"
        );
        assert_eq!(l.v2_parent(), Some(unit.join("sandboxes")));
        assert_eq!(
            l.v1_parent("memory"),
            Some(PathBuf::from(
                "/cg/memory/system.slice/agentjail.service/sandboxes"
            ))
        );
        // systemd made no pids group for the unit: beside the tree, as before.
        assert_eq!(
            l.v1_parent("pids"),
            Some(PathBuf::from("/cg/pids/agentjail"))
        );
    }

    #[test]
    fn only_the_units_own_v1_groups_and_paths_inside_the_mount_count() {
        // A v1 group at another path (a parent slice) is not the unit's.
        let own = "4:memory:/system.slice\n0::/system.slice/agentjail.service\n";
        let mut l = Layout::parse(HYBRID);
        l.read_delegation(own, |_| true);
        assert_eq!(
            l.v1_parent("memory"),
            Some(PathBuf::from("/cg/memory/agentjail"))
        );
        // A mount that shows the hierarchy from /machine.slice down.
        let mountinfo = "38 30 0:33 /machine.slice /cg/unified rw,nosuid - cgroup2 cgroup2 rw\n";
        let mut l = Layout::parse(mountinfo);
        l.read_delegation("0::/machine.slice/agentjail.service\n", |_| true);
        assert_eq!(
            l.v2_parent(),
            Some(PathBuf::from("/cg/unified/agentjail.service/sandboxes"))
        );
        let mut l = Layout::parse(mountinfo);
        l.read_delegation("0::/system.slice/agentjail.service\n", |_| true);
        assert_eq!(l.delegated, None, "outside the mount: not reachable");
    }

    #[test]
    fn only_trusted_delegate_on_a_root_owned_group_marks_a_delegation() {
        // trusted.* needs CAP_SYS_ADMIN, which CI (root) has.
        let dir = tempfile::tempdir().unwrap();
        let set = |name: &str| {
            rustix::fs::setxattr(dir.path(), name, b"1", rustix::fs::XattrFlags::empty())
        };
        assert!(!marked_delegated(dir.path()), "no xattr");
        set("user.delegate").unwrap();
        assert!(
            !marked_delegated(dir.path()),
            "user.delegate is not trusted"
        );
        set("trusted.delegate").expect("root sets trusted.* xattrs");
        assert!(
            marked_delegated(dir.path()),
            "trusted.delegate on a root-owned dir"
        );
        std::os::unix::fs::chown(dir.path(), Some(65534), None).unwrap();
        assert!(!marked_delegated(dir.path()), "not owned by root");
    }

    #[test]
    fn without_a_delegation_per_call_groups_go_beside_the_tree() {
        let own = "4:memory:/user.slice\n0::/user.slice/session-1.scope\n";
        let mut l = Layout::parse(HYBRID);
        l.read_delegation(own, |_| false);
        assert_eq!(l.delegated, None);
        assert_eq!(l.v2_parent(), Some(PathBuf::from("/cg/unified/agentjail")));
        assert_eq!(
            l.v1_parent("memory"),
            Some(PathBuf::from("/cg/memory/agentjail"))
        );
        // The root group is never taken for the daemon's own.
        let mut l = Layout::parse(HYBRID);
        l.read_delegation("0::/\n", |_| true);
        assert_eq!(l.delegated, None);
    }
}
