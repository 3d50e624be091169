//! The daemon's own configuration (listeners, paths), as opposed to the
//! security team's policy. With no file at all, embedded defaults apply.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where `serve` looks for a config file when none is given.
pub const SYSTEM_CONFIG: &str = "/etc/agentjail/agentjail.toml";
/// Where `serve` looks for policies when the config names none.
pub const SYSTEM_POLICY_DIR: &str = "/etc/agentjail/policies";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Unix socket path. Default: `/run/agentjail/agentjail.sock` as root,
    /// `$XDG_RUNTIME_DIR/agentjail.sock` otherwise.
    pub socket: Option<PathBuf>,
    /// Permission bits of the socket file (owner and group may connect).
    #[serde(default = "default_socket_mode")]
    pub socket_mode: u32,
    /// Group given the socket the daemon binds itself, so that its members
    /// may connect (with `socket_mode` 0660). Default: the daemon's group.
    pub socket_group: Option<String>,
    /// Directory of policy files. Default: `/etc/agentjail/policies` when it
    /// exists, otherwise the embedded default policy.
    pub policy_dir: Option<PathBuf>,
    /// Daemon state (default workspaces). Default: `/var/lib/agentjail` as
    /// root, `$XDG_STATE_HOME/agentjail` otherwise.
    pub state_dir: Option<PathBuf>,
    /// How long in-flight calls may run after SIGTERM before they are cut.
    #[serde(default = "default_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// Largest gRPC message accepted or sent.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Optional TCP listener.
    pub tcp: Option<TcpConfig>,
    #[serde(default)]
    pub audit: AuditConfig,
    /// Serve Prometheus metrics at `http://ADDRESS/metrics` (off when unset).
    pub metrics_address: Option<SocketAddr>,
    /// `text`, `json`, or `auto` (JSON under systemd's journal, text on a
    /// terminal).
    #[serde(default)]
    pub log_format: LogFormat,
    /// Watch the policy directory and reload on change (SIGHUP always
    /// reloads).
    #[serde(default = "yes")]
    pub watch_policy_dir: bool,
    /// Per-agent caps and connection limits (defaults in `crate::limits`).
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Sandboxes built ahead (defaults in `crate::limits`).
    #[serde(default)]
    pub pool: PoolSection,
}

/// `[pool]`: sandboxes built ahead of the calls that use them. Each serves
/// one call of one agent under one policy version; `per_agent = 0` turns
/// the pool off (every sandbox is built for its call).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolSection {
    /// Built ahead per agent and policy version.
    pub per_agent: usize,
    /// Built ahead in all.
    pub total: usize,
    /// A sandbox unused this long is destroyed.
    pub idle_ms: u64,
}

impl Default for PoolSection {
    fn default() -> Self {
        use crate::limits::*;
        PoolSection {
            per_agent: DEFAULT_POOL_PER_KEY,
            total: DEFAULT_POOL_TOTAL,
            idle_ms: DEFAULT_POOL_IDLE_MS,
        }
    }
}

impl PoolSection {
    pub fn bounds(&self) -> crate::sandbox::pool::PoolConfig {
        crate::sandbox::pool::PoolConfig {
            per_key: self.per_agent,
            total: self.total,
            idle: std::time::Duration::from_millis(self.idle_ms),
        }
    }
}

/// `[limits]`: the limits an operator may change; every other limit is
/// fixed (see `crate::limits` and the README's "Limits" section).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub concurrent_file_calls_per_agent: usize,
    pub concurrent_commands_per_agent: usize,
    pub handshake_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub connections_per_peer: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        use crate::limits::*;
        LimitsConfig {
            concurrent_file_calls_per_agent: DEFAULT_CONCURRENT_FILE_CALLS_PER_AGENT,
            concurrent_commands_per_agent: DEFAULT_CONCURRENT_COMMANDS_PER_AGENT,
            handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            connections_per_peer: DEFAULT_CONNECTIONS_PER_PEER,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Auto,
    Text,
    Json,
}

/// The audit log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Write records to a file (they always go to the daemon's log too).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Default: `<state_dir>/audit.jsonl`.
    pub path: Option<PathBuf>,
    /// Serve calls even when records cannot be written (development only).
    #[serde(default)]
    pub fail_open: bool,
    /// Rotate the file once it reaches this size.
    #[serde(default = "default_audit_max_file_bytes")]
    pub max_file_bytes: u64,
    /// Disk space kept allocated ahead of the log, so the records of calls
    /// already admitted always fit.
    #[serde(default = "default_audit_reserve_bytes")]
    pub reserve_bytes: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            path: None,
            fail_open: false,
            max_file_bytes: default_audit_max_file_bytes(),
            reserve_bytes: default_audit_reserve_bytes(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_audit_max_file_bytes() -> u64 {
    256 * 1024 * 1024
}
fn default_audit_reserve_bytes() -> u64 {
    1024 * 1024
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpConfig {
    pub address: SocketAddr,
    /// Plain TCP with no authentication: every caller is `agent`. Refused
    /// unless `address` is a loopback address, and logged loudly.
    #[serde(default)]
    pub insecure: bool,
    /// The one agent of an insecure listener (TLS callers are named by the
    /// policy's `[agents.remote]` instead).
    pub agent: Option<String>,
    /// TLS 1.3; callers authenticate with a client certificate or a bearer
    /// token that the policy maps to an agent.
    pub tls: Option<TlsConfig>,
}

/// Files of the TCP listener's TLS, re-read at every policy reload.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain (PEM, leaf first).
    pub cert: PathBuf,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) that sign client certificates. Unset: no
    /// client certificates are asked for, and callers must use tokens.
    pub client_ca: Option<PathBuf>,
    /// Refuse, during the handshake, a client with no certificate (by
    /// default such a client may still present a bearer token).
    #[serde(default)]
    pub require_client_cert: bool,
}

fn default_socket_mode() -> u32 {
    0o660
}
fn default_shutdown_grace_ms() -> u64 {
    10_000
}
fn default_max_message_bytes() -> usize {
    32 * 1024 * 1024
}

impl Default for Config {
    fn default() -> Self {
        Config {
            socket: None,
            socket_mode: default_socket_mode(),
            socket_group: None,
            policy_dir: None,
            state_dir: None,
            shutdown_grace_ms: default_shutdown_grace_ms(),
            max_message_bytes: default_max_message_bytes(),
            tcp: None,
            audit: AuditConfig::default(),
            metrics_address: None,
            log_format: LogFormat::Auto,
            watch_policy_dir: true,
            limits: LimitsConfig::default(),
            pool: PoolSection::default(),
        }
    }
}

/// Where the policy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    Dir(PathBuf),
    Embedded,
}

impl Config {
    /// The TCP ports the daemon listens on (gRPC, metrics): no sandbox may
    /// reach them.
    pub fn daemon_tcp_ports(&self) -> Vec<u16> {
        self.tcp
            .iter()
            .map(|t| t.address.port())
            .chain(self.metrics_address.map(|a| a.port()))
            .collect()
    }

    /// Reads a config file; errors carry `file:line:col`.
    pub fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            let (line, col) = crate::policy::load::line_col(&text, e.span().unwrap_or(0..0).start);
            anyhow::anyhow!("{}:{line}:{col}: {}", path.display(), e.message())
        })
    }

    /// The explicit file, else the system file if present, else defaults.
    pub fn discover(explicit: Option<&Path>) -> anyhow::Result<(Config, Option<PathBuf>)> {
        if let Some(path) = explicit {
            return Ok((Config::from_file(path)?, Some(path.to_path_buf())));
        }
        let system = Path::new(SYSTEM_CONFIG);
        if system.exists() {
            return Ok((Config::from_file(system)?, Some(system.to_path_buf())));
        }
        Ok((Config::default(), None))
    }

    pub fn socket_path(&self) -> PathBuf {
        self.socket.clone().unwrap_or_else(default_socket_path)
    }

    pub fn state_path(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(default_state_dir)
    }

    pub fn audit_path(&self) -> PathBuf {
        match &self.audit.path {
            Some(p) => p.clone(),
            None => self.state_path().join("audit.jsonl"),
        }
    }

    pub fn policy_source(&self) -> PolicySource {
        match &self.policy_dir {
            Some(dir) => PolicySource::Dir(dir.clone()),
            None if Path::new(SYSTEM_POLICY_DIR).is_dir() => {
                PolicySource::Dir(PathBuf::from(SYSTEM_POLICY_DIR))
            }
            None => PolicySource::Embedded,
        }
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// Checks that need no I/O; run before anything is started.
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(tcp) = &self.tcp {
            tcp.validate()?;
        }
        if self.socket_mode & !0o777 != 0 {
            anyhow::bail!("socket_mode {:o} has bits beyond 0o777", self.socket_mode);
        }
        Ok(())
    }
}

impl TcpConfig {
    /// The agent every caller of an insecure listener is.
    pub fn insecure_agent(&self) -> Option<&str> {
        if self.insecure {
            self.agent.as_deref()
        } else {
            None
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        let address = self.address;
        match (self.insecure, &self.tls) {
            (true, Some(_)) => anyhow::bail!(
                "[tcp] on {address} sets both `insecure = true` and [tcp.tls]; choose one"
            ),
            (true, None) => {
                anyhow::ensure!(
                    address.ip().is_loopback(),
                    "[tcp] `insecure = true` is allowed on a loopback address only, not {address}: \
                     anyone who can reach it would be agent {:?}; configure [tcp.tls] instead",
                    self.agent.as_deref().unwrap_or("")
                );
                anyhow::ensure!(
                    self.agent.is_some(),
                    "[tcp] `insecure = true` needs `agent`: the one agent every TCP caller is"
                );
            }
            (false, Some(_)) => anyhow::ensure!(
                self.agent.is_none(),
                "[tcp] `agent` is for insecure listeners only; TLS callers are named by the \
                 policy's [agents.remote] (tls_names, token_sha256)"
            ),
            (false, None) => anyhow::bail!(
                "tcp listener {address} needs authentication: configure [tcp.tls] (cert, key, \
                 client_ca) and name callers in the policy's [agents.remote]; or, on a loopback \
                 address only, set `insecure = true` and `agent`; or remove [tcp]"
            ),
        }
        Ok(())
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

pub fn default_socket_path() -> PathBuf {
    if is_root() {
        return PathBuf::from("/run/agentjail/agentjail.sock");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) => PathBuf::from(dir).join("agentjail.sock"),
        None => {
            std::env::temp_dir().join(format!("agentjail-{}.sock", nix::unistd::getuid().as_raw()))
        }
    }
}

fn default_state_dir() -> PathBuf {
    if is_root() {
        return PathBuf::from("/var/lib/agentjail");
    }
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home_dir().join(".local/state"))
        .join("agentjail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_without_insecure_is_refused() {
        let cfg: Config =
            toml::from_str("[tcp]\naddress = \"127.0.0.1:7000\"\nagent = \"a\"\n").unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("insecure = true"), "{err}");
        assert!(err.contains("[tcp.tls]"), "{err}");
    }

    #[test]
    fn insecure_only_on_loopback() {
        let cfg: Config =
            toml::from_str("[tcp]\naddress = \"0.0.0.0:7000\"\ninsecure = true\nagent = \"a\"\n")
                .unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("loopback"), "{err}");
        let cfg: Config =
            toml::from_str("[tcp]\naddress = \"127.0.0.1:7000\"\ninsecure = true\nagent = \"a\"\n")
                .unwrap();
        cfg.validate().unwrap();
    }

    #[test]
    fn tls_listener_names_no_agent() {
        let tls = "[tcp.tls]\ncert = \"/c\"\nkey = \"/k\"\n";
        let cfg: Config =
            toml::from_str(&format!("[tcp]\naddress = \"0.0.0.0:7000\"\n{tls}")).unwrap();
        cfg.validate().unwrap();
        let cfg: Config = toml::from_str(&format!(
            "[tcp]\naddress = \"0.0.0.0:7000\"\nagent = \"a\"\n{tls}"
        ))
        .unwrap();
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("[agents.remote]")
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<Config>("sockett = \"/x\"").is_err());
    }
}
