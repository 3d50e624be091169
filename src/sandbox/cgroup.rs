//! Per-launch cgroups: limits for the whole tree, a kill switch, and the
//! figures reported after exit. Uses cgroup v2 controllers where they are
//! delegated and v1 hierarchies otherwise; a v2 group is joined even without
//! controllers for its `cgroup.kill`.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, mpsc};

use super::cgroup_layout::{Layout, prepare};
use super::spec::Limits;

/// Figures read from the cgroup after the command ended.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CgroupStats {
    pub peak_memory_bytes: Option<u64>,
    pub oom_kills: u64,
    pub memory_limit_hits: u64,
    pub pids_limit_hits: u64,
}

/// The groups of one launch. Dropping it does not remove them: call
/// [`Cgroup::remove`] once the tree is reaped.
#[derive(Debug)]
pub struct Cgroup {
    dirs: Vec<PathBuf>,
    memory: Option<(PathBuf, bool)>, // (dir, is_v2)
    pids: Option<(PathBuf, bool)>,
    kill_file: Option<PathBuf>,
    /// The cgroup2 group, always `dirs[0]` when present: a child can be
    /// cloned straight into it (`CLONE_INTO_CGROUP`).
    v2: Option<PathBuf>,
}

fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    fs::write(dir.join(file), value)
        .map_err(|e| io::Error::new(e.kind(), format!("{}/{file}: {e}", dir.display())))
}

fn read_key(path: &Path, key: &str) -> u64 {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
        .unwrap_or(0)
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

impl Cgroup {
    /// Creates the groups and sets the limits. Fails closed when a limit is
    /// asked for and no controller can enforce it.
    pub fn create(id: &str, limits: &Limits) -> io::Result<Self> {
        let l = Layout::host();
        let mut cg = Cgroup {
            dirs: Vec::new(),
            memory: None,
            pids: None,
            kill_file: None,
            v2: None,
        };
        prepare();
        let mut v2_dir = None;
        if let Some(parent) = l.v2_parent() {
            let dir = parent.join(id);
            fs::create_dir_all(&dir)?;
            cg.dirs.push(dir.clone());
            if dir.join("cgroup.kill").exists() {
                cg.kill_file = Some(dir.join("cgroup.kill"));
            }
            cg.v2 = Some(dir.clone());
            v2_dir = Some(dir);
        }
        let mut group = |controller: &str| -> io::Result<Option<(PathBuf, bool)>> {
            if let (Some(dir), true) = (&v2_dir, l.v2_has(controller)) {
                return Ok(Some((dir.clone(), true)));
            }
            let Some(parent) = l.v1_parent(controller) else {
                return Ok(None);
            };
            let dir = parent.join(id);
            if !cg.dirs.contains(&dir) {
                fs::create_dir_all(&dir)?;
                cg.dirs.push(dir.clone());
            }
            Ok(Some((dir, false)))
        };
        let memory = if limits.memory_bytes.is_some() {
            group("memory")?
        } else {
            None
        };
        let pids = if limits.pids.is_some() {
            group("pids")?
        } else {
            None
        };
        let cpu = if limits.cpu_millis.is_some() {
            group("cpu")?
        } else {
            None
        };
        let result = cg.set_limits(limits, &memory, &pids, &cpu);
        cg.memory = memory;
        cg.pids = pids;
        if let Err(e) = result {
            cg.remove();
            return Err(e);
        }
        Ok(cg)
    }

    fn set_limits(
        &self,
        limits: &Limits,
        memory: &Option<(PathBuf, bool)>,
        pids: &Option<(PathBuf, bool)>,
        cpu: &Option<(PathBuf, bool)>,
    ) -> io::Result<()> {
        let missing = |what: &str| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!("no cgroup controller for the {what} limit"),
            )
        };
        if let Some(bytes) = limits.memory_bytes {
            match memory {
                Some((d, true)) => {
                    write(d, "memory.max", &bytes.to_string())?;
                    write(d, "memory.swap.max", "0").ok();
                }
                Some((d, false)) => {
                    write(d, "memory.limit_in_bytes", &bytes.to_string())?;
                    // Without this, swap extends the limit (ignored when swap accounting is off).
                    write(d, "memory.memsw.limit_in_bytes", &bytes.to_string()).ok();
                }
                None => return Err(missing("memory")),
            }
        }
        if let Some(n) = limits.pids {
            let (d, _) = pids.as_ref().ok_or_else(|| missing("pids"))?;
            write(d, "pids.max", &n.to_string())?;
        }
        if let Some(m) = limits.cpu_millis {
            match cpu {
                Some((d, true)) => write(d, "cpu.max", &format!("{} 100000", m * 100))?,
                Some((d, false)) => {
                    write(d, "cpu.cfs_period_us", "100000")?;
                    write(d, "cpu.cfs_quota_us", &(m * 100).to_string())?;
                }
                None => return Err(missing("cpu")),
            }
        }
        Ok(())
    }

    /// The cgroup2 group, if there is one; its `cgroup.procs` is the first
    /// of [`Cgroup::open_procs`].
    pub fn v2_dir(&self) -> Option<&Path> {
        self.v2.as_deref()
    }

    /// `cgroup.procs` of every group, opened for the child, which writes "0"
    /// (itself) into each before any untrusted code runs.
    pub fn open_procs(&self) -> io::Result<Vec<OwnedFd>> {
        self.dirs
            .iter()
            .map(|d| {
                Ok(fs::OpenOptions::new()
                    .write(true)
                    .open(d.join("cgroup.procs"))?
                    .into())
            })
            .collect()
    }

    /// Kills every process in the groups: `cgroup.kill` where cgroup2 has it,
    /// else each pid listed (the pid namespace teardown covers the rest).
    pub fn kill(&self) {
        if let Some(k) = &self.kill_file
            && fs::write(k, "1").is_ok()
        {
            return;
        }
        for d in &self.dirs {
            for pid in fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
            {
                if let Ok(pid) = pid.parse::<i32>() {
                    // SAFETY: plain kill(2); pids in our own group.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
    }

    pub fn stats(&self) -> CgroupStats {
        let mut s = CgroupStats::default();
        match &self.memory {
            Some((d, true)) => {
                s.peak_memory_bytes = read_u64(&d.join("memory.peak"));
                s.oom_kills = read_key(&d.join("memory.events"), "oom_kill ");
                s.memory_limit_hits = read_key(&d.join("memory.events"), "max ");
            }
            Some((d, false)) => {
                s.peak_memory_bytes = read_u64(&d.join("memory.max_usage_in_bytes"));
                s.oom_kills = read_key(&d.join("memory.oom_control"), "oom_kill ");
                s.memory_limit_hits = read_u64(&d.join("memory.failcnt")).unwrap_or(0);
            }
            None => {}
        }
        if let Some((d, _)) = &self.pids {
            s.pids_limit_hits = read_key(&d.join("pids.events"), "max ");
        }
        s
    }

    /// Removes the (empty) groups. The kernel may need a moment after the
    /// last task is reaped, hence the short retry.
    pub fn remove(&self) {
        remove_dirs(&self.dirs);
    }

    /// Removes the groups on a background thread: a group whose last
    /// processes are still being torn down is busy for a few milliseconds,
    /// and the command's answer need not wait for that.
    pub fn remove_in_background(&self) {
        let sent = remover()
            .and_then(|tx| tx.lock().ok())
            .is_some_and(|tx| tx.send(Removal::Dirs(self.dirs.clone())).is_ok());
        if !sent {
            self.remove();
        }
    }
}

enum Removal {
    Dirs(Vec<PathBuf>),
    /// Answered once every removal queued before it is done.
    Flush(mpsc::Sender<()>),
}

fn remover() -> Option<&'static Mutex<mpsc::Sender<Removal>>> {
    static REMOVER: OnceLock<Option<Mutex<mpsc::Sender<Removal>>>> = OnceLock::new();
    REMOVER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Removal>();
            std::thread::Builder::new()
                .name("agentjail-cgroup-rm".into())
                .spawn(move || {
                    for job in rx {
                        match job {
                            Removal::Dirs(dirs) => remove_dirs(&dirs),
                            Removal::Flush(done) => {
                                let _ = done.send(());
                            }
                        }
                    }
                })
                .ok()
                .map(|_| Mutex::new(tx))
        })
        .as_ref()
}

/// Waits (up to `limit`) for the queued cgroup removals, so a daemon that
/// stops cleanly leaves no group behind.
pub fn finish_removals(limit: std::time::Duration) {
    let (done, finished) = mpsc::channel();
    let queued = remover()
        .and_then(|tx| tx.lock().ok())
        .is_some_and(|tx| tx.send(Removal::Flush(done)).is_ok());
    if queued {
        let _ = finished.recv_timeout(limit);
    }
}

fn remove_dirs(dirs: &[PathBuf]) {
    {
        for d in dirs.iter().rev() {
            for attempt in 0..50 {
                match fs::remove_dir(d) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 49 => {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                    }
                    _ => break,
                }
            }
        }
    }
}

/// At start: removes the per-call groups (`<pid>-<n>`) that daemons no
/// longer running left behind (a kill -9 skips their teardown), killing
/// anything still in them first. Groups of live processes (another daemon
/// sharing the hierarchy) are left alone. Returns how many were removed.
pub fn sweep_dead() -> usize {
    let own = std::process::id();
    let mut removed = 0;
    for parent in Layout::host().per_call_parents() {
        let Ok(entries) = fs::read_dir(&parent) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.split_once('-'))
                .and_then(|(pid, n)| n.parse::<u64>().ok().and(pid.parse::<u32>().ok()))
            else {
                continue;
            };
            if pid == own || process_alive(pid) {
                continue;
            }
            let dir = entry.path();
            kill_members(&dir);
            remove_dirs(std::slice::from_ref(&dir));
            if !dir.exists() {
                removed += 1;
            }
        }
    }
    removed
}

fn process_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Kills what is left in a dead daemon's group (cgroup.kill on cgroup2,
/// each listed process on v1).
fn kill_members(dir: &Path) {
    if dir.join("cgroup.kill").exists() {
        let _ = write(dir, "cgroup.kill", "1");
        return;
    }
    let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs
        .lines()
        .filter_map(|l| l.trim().parse::<libc::pid_t>().ok())
    {
        // SAFETY: kill takes a pid and a signal.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}
