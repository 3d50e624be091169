//! What the caller asks for: one command and the sandbox around it.

use std::io;
use std::path::{Path, PathBuf};

/// Where the command's stdin comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Stdin {
    /// `/dev/null`.
    Null,
    /// A pipe whose write end is returned in [`super::SandboxChild`].
    Pipe,
}

/// Resource limits; `None` leaves the limit unset.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// RLIMIT_NOFILE.
    pub nofile: Option<u64>,
    /// RLIMIT_FSIZE, bytes (SIGXFSZ / EFBIG beyond it).
    pub fsize_bytes: Option<u64>,
    /// RLIMIT_CPU, seconds of CPU time per process.
    pub cpu_seconds: Option<u64>,
    /// cgroup memory limit for the whole tree, bytes.
    pub memory_bytes: Option<u64>,
    /// cgroup pids limit for the whole tree (init included).
    pub pids: Option<u64>,
    /// cgroup CPU bandwidth, in thousandths of a core (1000 = one core).
    pub cpu_millis: Option<u64>,
    /// Size of the private /tmp tmpfs, bytes.
    pub tmp_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            nofile: Some(1024),
            fsize_bytes: Some(1 << 30),
            cpu_seconds: Some(600),
            memory_bytes: Some(1 << 30),
            pids: Some(256),
            cpu_millis: None,
            tmp_bytes: 256 << 20,
        }
    }
}

/// The workspace bind mount.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Workspace {
    /// Directory on the host.
    pub host: PathBuf,
    /// Where it appears inside the sandbox, e.g. `/workspace`.
    pub inside: PathBuf,
    pub writable: bool,
}

/// One command to run in a fresh sandbox.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SandboxSpec {
    /// argv; argv[0] is an absolute path inside the sandbox or a bare name
    /// looked up on the `PATH` of `env` (see [`SandboxSpec::resolve_program`]).
    pub argv: Vec<String>,
    /// The complete environment: nothing else is passed.
    pub env: Vec<(String, String)>,
    /// Working directory inside the sandbox.
    pub cwd: PathBuf,
    pub workspace: Workspace,
    /// Host directories mirrored read-only at the same path. A host symlink
    /// (merged /usr: `/bin -> usr/bin`) is recreated as the same symlink.
    pub system_dirs: Vec<PathBuf>,
    /// Entries of the host /etc copied into the sandbox's read-only /etc
    /// snapshot (see `etc.rs`); everything else in /etc is absent (S2:
    /// shadow, ssl/private, the daemon's own config). Missing entries are
    /// skipped; passwd and group are generated.
    pub etc_entries: Vec<String>,
    /// Unprivileged ids the command runs as.
    pub uid: u32,
    pub gid: u32,
    /// Share the host network namespace and allow TCP; otherwise an empty
    /// network namespace and Landlock TCP denial.
    pub network: bool,
    pub limits: Limits,
    /// Paths below the workspace mount to hide: a directory gets an empty
    /// read-only tmpfs over it, a file becomes unopenable. (relative path,
    /// is_dir)
    pub masked: Vec<(PathBuf, bool)>,
    /// Paths below the workspace mount shown read-only (git metadata).
    /// These, the masks, and every directory between them and the workspace
    /// root are made mount points, so none of them can be renamed, removed
    /// or replaced from inside.
    pub read_only_paths: Vec<PathBuf>,
    pub stdin: Stdin,
    pub hostname: String,
    /// The command's umask; None: inherited from the daemon.
    #[serde(default)]
    pub umask: Option<u32>,
    /// A session sandbox: init runs the session supervisor
    /// (`session_init.rs`) instead of `argv`, until the daemon closes it.
    #[serde(default)]
    pub session: bool,
}

/// A conservative /etc: name resolution, the dynamic loader, CA roots, time
/// zones and shell defaults. passwd and group are generated, not copied.
pub const DEFAULT_ETC: &[&str] = &[
    "hosts",
    "resolv.conf",
    "nsswitch.conf",
    "host.conf",
    "gai.conf",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "ssl/certs",
    "ssl/openssl.cnf",
    "ca-certificates",
    "ca-certificates.conf",
    "localtime",
    "timezone",
    "os-release",
    "debian_version",
    "protocols",
    "services",
    "mime.types",
    "bash.bashrc",
    "profile",
    "inputrc",
    "environment",
    "gitconfig",
];

/// System directories for a Debian-like host.
pub const DEFAULT_SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32",
];

impl SandboxSpec {
    /// A spec with the defaults above, running `argv` in `workspace_host`
    /// mounted at `/workspace` as uid/gid 65534.
    pub fn new(argv: Vec<String>, workspace_host: impl Into<PathBuf>) -> Self {
        SandboxSpec {
            argv,
            env: vec![("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())],
            cwd: "/workspace".into(),
            workspace: Workspace {
                host: workspace_host.into(),
                inside: "/workspace".into(),
                writable: true,
            },
            system_dirs: DEFAULT_SYSTEM_DIRS.iter().map(PathBuf::from).collect(),
            etc_entries: DEFAULT_ETC.iter().map(|s| s.to_string()).collect(),
            uid: 65534,
            gid: 65534,
            network: false,
            limits: Limits::default(),
            masked: Vec::new(),
            read_only_paths: Vec::new(),
            stdin: Stdin::Null,
            hostname: "sandbox".into(),
            umask: None,
            session: false,
        }
    }

    /// Maps a path inside the sandbox to the host path that backs it, for
    /// the read-only and workspace binds (not /tmp, /proc or /dev).
    pub fn host_path_of(&self, inside: &Path) -> Option<PathBuf> {
        if let Ok(rest) = inside.strip_prefix(&self.workspace.inside) {
            return Some(self.workspace.host.join(rest));
        }
        self.system_dirs
            .iter()
            .find(|d| inside.starts_with(d))
            .map(|_| inside.to_path_buf())
    }

    /// argv[0] as an absolute path inside the sandbox: kept when it contains
    /// a `/`, else searched on the spec's own `PATH` (never the daemon's).
    pub fn resolve_program(&self) -> io::Result<PathBuf> {
        self.resolve_program_for(&self.argv, &self.env)
    }

    /// Like [`SandboxSpec::resolve_program`], for `argv` and `env` in this
    /// sandbox (a session's command: no copy of the spec for each).
    pub fn resolve_program_for(
        &self,
        argv: &[String],
        env: &[(String, String)],
    ) -> io::Result<PathBuf> {
        let name = argv.first().ok_or_else(|| invalid("empty argv"))?;
        if name.contains('/') {
            return if name.starts_with('/') {
                Ok(name.into())
            } else {
                Err(invalid("relative program path"))
            };
        }
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        for dir in path.split(':').filter(|d| d.starts_with('/')) {
            let inside = Path::new(dir).join(name);
            if let Some(host) = self.host_path_of(&inside)
                && is_executable(&host)
            {
                return Ok(inside);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{name}: not found on the sandbox PATH"),
        ))
    }

    /// Rejects specs the launcher cannot express safely.
    pub fn validate(&self) -> io::Result<()> {
        let abs = |p: &Path, what: &str| {
            if p.is_absolute() {
                Ok(())
            } else {
                Err(invalid(&format!("{what} must be absolute")))
            }
        };
        abs(&self.cwd, "cwd")?;
        abs(&self.workspace.inside, "workspace mount point")?;
        abs(&self.workspace.host, "workspace host path")?;
        for d in &self.system_dirs {
            abs(d, "system dir")?;
        }
        let reserved = ["/", "/proc", "/dev", "/tmp", "/etc"];
        if reserved
            .iter()
            .any(|r| self.workspace.inside == Path::new(r))
        {
            return Err(invalid("workspace cannot be mounted over a reserved path"));
        }
        if self.uid == 0 || self.gid == 0 {
            return Err(invalid("the sandbox never runs as uid or gid 0"));
        }
        if self
            .etc_entries
            .iter()
            .any(|e| e.starts_with('/') || e.split('/').any(|c| c == ".."))
        {
            return Err(invalid("etc entries are relative names under /etc"));
        }
        Ok(())
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

pub(crate) fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}
