//! The async gRPC server: listeners, health, reflection, signals.

pub mod authority;
pub mod bounds;
mod call;
mod caps;
pub mod codec;
pub mod connections;
pub mod discovery;
pub mod fuzzing;
pub mod idempotency;
pub mod identity;
pub mod listener;
pub mod ratelimit;
pub mod record;
pub mod service;
pub mod sessions;
pub mod shell;
pub mod state;
pub mod systemd;
pub mod tls;
mod undecodable;
pub mod watch;

use crate::audit::{AuditLog, WriterConfig};
use crate::config::{Config, PolicySource};
use crate::policy::{self, CompiledPolicy, LoadError, LoadOptions};
use crate::proto::tool_sandbox_server::ToolSandboxServer;
use crate::sandbox;
use crate::shell::host;
use crate::shell::launcher::Launcher;
use anyhow::Context;
use service::ToolService;
use state::State;
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};
use tonic::service::Routes;
use tonic::transport::Server;

fn open_audit(config: &Config) -> anyhow::Result<AuditLog> {
    if !config.audit.enabled {
        tracing::warn!("the audit log file is off: records go to the daemon's log only");
        return Ok(AuditLog::disabled());
    }
    let path = config.audit_path();
    let log = AuditLog::open(
        WriterConfig {
            path: path.clone(),
            max_file_bytes: config.audit.max_file_bytes,
            reserve_bytes: config.audit.reserve_bytes,
        },
        config.audit.fail_open,
    )
    .with_context(|| {
        format!(
            "cannot open the audit log {}; fix its directory's permissions or set [audit] path",
            path.display()
        )
    })?;
    if config.audit.fail_open {
        tracing::warn!(
            "audit fail_open is on: calls are served even when records cannot be written"
        );
    }
    tracing::info!(path = %path.display(), "audit log open");
    Ok(log)
}

/// Loads the policy the config points at.
pub fn load_policy(config: &Config) -> Result<CompiledPolicy, LoadError> {
    load_policy_with(config, true)
}

/// `open_workspaces: false` touches nothing on disk (no workspace root is
/// created or opened): for deciding whether the daemon can start at all.
fn load_policy_with(config: &Config, open_workspaces: bool) -> Result<CompiledPolicy, LoadError> {
    let opts = LoadOptions {
        state_dir: config.state_path(),
        open_workspaces,
    };
    match config.policy_source() {
        PolicySource::Dir(dir) => policy::load_dir(&dir, &opts),
        PolicySource::Embedded => policy::load_embedded_default(&opts),
    }
}

fn describe_policy(config: &Config) -> String {
    match config.policy_source() {
        PolicySource::Dir(dir) => dir.display().to_string(),
        PolicySource::Embedded => "the embedded default policy".into(),
    }
}

/// Refuses a policy this host cannot enforce; logs what the kernel offers.
fn refuse_unenforceable(
    policy: &CompiledPolicy,
    support: &sandbox::KernelSupport,
) -> anyhow::Result<()> {
    for line in support.to_string().lines() {
        tracing::info!("kernel: {}", line.trim());
    }
    if let Some(problem) = support.file_tools_unmet() {
        anyhow::bail!(
            "refusing to start: {problem}\nSee `agentjail doctor` and the README's \
             \"Install and run as a service\""
        );
    }
    let unmet = host::unmet(policy, support);
    if unmet.is_empty() {
        return Ok(());
    }
    let needs_root = if support.root {
        String::new()
    } else {
        format!(
            "agentjail serve needs root for this policy ({}): its commands run in a \
             sandbox that only root can build. Run it as root (the systemd unit in \
             packaging/ does), or give it a policy without [agents.shell] tables to \
             serve only the file tools as this user.\n",
            describe_policy_from(policy)
        )
    };
    anyhow::bail!(
        "{needs_root}refusing to start: this host cannot enforce the policy, and commands never \
         run unconfined:\n  {}\nFix the host (see `agentjail doctor`), or lower the agent's \
         shell.requires, or remove its [agents.shell] table",
        unmet.join("\n  ")
    )
}

fn describe_policy_from(policy: &CompiledPolicy) -> String {
    match policy.sources.as_slice() {
        [] => "the embedded default policy".into(),
        sources => sources
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    config.validate()?;
    // Installed first: a SIGTERM that arrives while starting must still
    // shut down cleanly, not kill the process with the socket left behind.
    let mut signals = Signals::install()?;
    let invalid = |e: LoadError| {
        anyhow::anyhow!(
            "the policy in {} is invalid; the daemon will not start:\n{e}",
            describe_policy(&config)
        )
    };
    // Whether this host can enforce the policy is decided before anything
    // is created (workspace roots, the socket, the audit log), so a refusal
    // leaves nothing half-made.
    let support = tokio::task::spawn_blocking(sandbox::probe)
        .await
        .context("the kernel probe failed")?;
    refuse_unenforceable(
        &load_policy_with(&config, false).map_err(invalid)?,
        &support,
    )?;
    let policy = load_policy(&config).map_err(invalid)?;
    let tcp_agent = config
        .tcp
        .as_ref()
        .and_then(|t| t.insecure_agent().map(String::from));
    let tls_material = load_tls(&config)?;
    if let Some(name) = &tcp_agent {
        anyhow::ensure!(
            policy.agent(name).is_some(),
            "[tcp] agent \"{name}\" is not defined in the policy"
        );
    }
    tracing::info!(
        policy = %describe_policy(&config), version = %policy.version,
        agents = policy.agents.len(), "policy loaded"
    );
    let launcher = if policy.agents.values().any(|a| a.shell.is_some()) {
        // Crash hygiene: what killed daemons left behind goes first. The
        // per-call groups are named after the daemon's pid (the launcher
        // creates them as `<daemon pid>-<n>`), so this process sweeps them,
        // before the socket exists and so before any launch.
        let swept = sandbox::sweep_dead_cgroups();
        tracing::info!(swept, "removed the per-call cgroups of dead daemons");
        Some(Launcher::connect()?)
    } else {
        None
    };
    // The socket first: a second daemon is told the socket is taken before
    // it touches the audit log.
    let (listener, socket_file) = match systemd::activated_listener()? {
        Some(passed) => {
            tracing::info!("using the socket passed by systemd (socket activation)");
            (tokio::net::UnixListener::from_std(passed)?, None)
        }
        None => {
            let (listener, file) = listener::bind(
                &config.socket_path(),
                config.socket_mode,
                config.socket_group.as_deref(),
            )
            .await?;
            (listener, Some(file))
        }
    };
    let audit = open_audit(&config)?;
    // Before any command runs: the TCP ports no sandbox may reach.
    crate::sandbox::set_daemon_ports(config.daemon_tcp_ports());
    if let Some(address) = config.metrics_address {
        crate::metrics::install(address)?;
    }
    crate::session::ports::set_dir(&config.socket_path());
    let state = Arc::new(
        State::new(policy, tcp_agent, launcher, audit, support.landlock_abi)
            .with_caps(&config.limits),
    );
    if let Some(material) = tls_material {
        state.swap_tls(material);
    }

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_not_serving::<ToolSandboxServer<ToolService>>()
        .await;
    // tonic-health starts the overall status "" as SERVING: not while starting.
    health_reporter
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    // v1alpha beside v1: grpcio-reflection, grpcurl and most tools still ask v1alpha.
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("cannot build the reflection service")?;
    let reflection = reflection()
        .build_v1()
        .context("cannot build the reflection service")?;
    let tool_service = ToolSandboxServer::new(ToolService::new(state.clone()))
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes);
    use connections::CountCalls;
    let routes = Routes::new(CountCalls::new(undecodable::RecordUndecodable::new(
        tool_service,
        state.clone(),
    )))
    .add_service(CountCalls::new(health_service))
    .add_service(CountCalls::new(reflection))
    .add_service(CountCalls::new(reflection_v1alpha));

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    servers.spawn(
        Server::builder()
            .add_routes(routes.clone())
            .serve_with_incoming_shutdown(
                tokio_stream::StreamExt::map(
                    connections::guarded(listener, &config.limits),
                    |accepted| accepted.map(authority::AuthorityShim::new),
                ),
                shutdown_requested(shutdown_rx.clone()),
            ),
    );
    if let Some(tcp) = &config.tcp {
        let routes = routes.clone();
        let shutdown = shutdown_requested(shutdown_rx.clone());
        if tcp.tls.is_some() {
            let listener = tokio::net::TcpListener::bind(tcp.address)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", tcp.address))?;
            tracing::info!(address = %tcp.address, "serving TLS 1.3 on TCP");
            let incoming = tls::incoming(listener, state.clone());
            servers.spawn(
                Server::builder()
                    .add_routes(routes)
                    .serve_with_incoming_shutdown(incoming, shutdown),
            );
        } else {
            let incoming = tonic::transport::server::TcpIncoming::bind(tcp.address)
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", tcp.address))?;
            tracing::warn!(address = %tcp.address, agent = tcp.agent.as_deref().unwrap_or(""),
                "TCP listener is INSECURE (no TLS, no authentication): every TCP caller is this \
                 agent; use it for local development only");
            servers.spawn(
                Server::builder()
                    .add_routes(routes)
                    .serve_with_incoming_shutdown(incoming, shutdown),
            );
        }
    }
    health_reporter
        .set_serving::<ToolSandboxServer<ToolService>>()
        .await;
    health_reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let socket_name = match &socket_file {
        Some(file) => file.path().display().to_string(),
        None => "the socket from systemd".into(),
    };
    tracing::info!(socket = %socket_name, "serving");
    let health_watch = tokio::spawn(report_audit_health(state.clone(), health_reporter.clone()));
    let watchdog = systemd::spawn_watchdog();
    let policy_watch = match config.policy_source() {
        PolicySource::Dir(dir) if config.watch_policy_dir => Some(watch::spawn_policy_watch(
            dir,
            config.clone(),
            state.clone(),
        )?),
        _ => None,
    };
    systemd::ready(&format!("serving on {socket_name}"));

    signals.wait_for_stop(&config, &state).await;

    systemd::stopping();
    if let Some(w) = policy_watch {
        w.abort();
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    tracing::info!(
        grace_ms = config.shutdown_grace_ms,
        "shutting down: draining in-flight calls"
    );
    health_watch.abort();
    health_reporter
        .set_not_serving::<ToolSandboxServer<ToolService>>()
        .await;
    health_reporter
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    let _ = shutdown_tx.send(true);
    let drained = tokio::time::timeout(config.shutdown_grace(), async {
        while let Some(result) = servers.join_next().await {
            if let Ok(Err(e)) = result {
                tracing::error!("server error: {e}");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("shutdown grace period over: cutting the calls still running");
        servers.abort_all();
    }
    // Work still running (a command whose client stays connected) is
    // stopped now, and its outcome recorded, before the daemon exits.
    state.stopping.cancel();
    state.calls.close();
    if tokio::time::timeout(STOP_RECORDS_WAIT, state.calls.wait())
        .await
        .is_err()
    {
        tracing::error!(
            running = state.calls.len(),
            "calls stopped at shutdown did not finish recording in time"
        );
    }
    drop(socket_file);
    tracing::info!("stopped");
    Ok(())
}

/// How long shutdown waits for stopped calls to write their records.
const STOP_RECORDS_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads the TCP listener's TLS files, if it has TLS.
fn load_tls(config: &Config) -> anyhow::Result<Option<tls::TlsMaterial>> {
    match config.tcp.as_ref().and_then(|t| t.tls.as_ref()) {
        Some(files) => tls::TlsMaterial::load(files).map(Some),
        None => Ok(None),
    }
}

/// Health says NOT_SERVING while audit records cannot be written (calls are
/// refused then), and SERVING again once they can.
async fn report_audit_health(state: Arc<State>, reporter: tonic_health::server::HealthReporter) {
    let mut serving = true;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    loop {
        tick.tick().await;
        // A failing log is retried here too, so health recovers without
        // waiting for a call to come by.
        let launcher_ok = state.launcher.as_ref().is_none_or(|l| l.alive());
        let healthy =
            launcher_ok && (state.audit.is_healthy() || state.audit.admit().await.is_ok());
        if healthy == serving {
            continue;
        }
        serving = healthy;
        let status = if healthy {
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        };
        reporter.set_service_status("", status).await;
        reporter
            .set_service_status("agentjail.v1.ToolSandbox", status)
            .await;
    }
}

async fn shutdown_requested(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
        })
    }

    /// Waits for SIGTERM/SIGINT; reloads the policy on SIGHUP and rotates
    /// the audit log on SIGUSR1 meanwhile.
    async fn wait_for_stop(&mut self, config: &Config, state: &Arc<State>) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => reload(config, state).await,
                _ = self.usr1.recv() => state.audit.rotate(),
            }
        }
    }
}

/// Validates the whole new policy, then swaps it in; a bad one changes
/// nothing.
pub async fn reload(config: &Config, state: &Arc<State>) {
    // One reload at a time (SIGHUP and the directory watch both call this):
    // each reads the directory after the one before it has swapped, so an
    // older read can never be swapped in after a newer one.
    static RELOADS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = RELOADS.lock().await;
    systemd::reloading();
    let ok = try_reload(config, state).await;
    crate::metrics::policy_reload(ok);
    let version = state.policy().version.clone();
    systemd::reloaded(&format!("policy {version}"));
}

/// Returns whether a new policy was swapped in.
async fn try_reload(config: &Config, state: &Arc<State>) -> bool {
    let cfg = config.clone();
    // Probing clones processes: off the async threads, with the loading.
    let loaded = tokio::task::spawn_blocking(move || {
        load_policy(&cfg).map(|policy| {
            let unmet = host::unmet(&policy, &sandbox::probe());
            (policy, unmet)
        })
    })
    .await;
    let refuse = |why: String| {
        tracing::error!("policy reload refused: {why}; the old policy stays in force");
        false
    };
    let (policy, unmet) = match loaded {
        Ok(Ok(loaded)) => loaded,
        Ok(Err(e)) => {
            for d in &e.diagnostics {
                tracing::error!("policy reload refused: {d}");
            }
            tracing::error!("the old policy stays in force");
            return false;
        }
        Err(e) => return refuse(format!("the loader failed: {e}")),
    };
    if !unmet.is_empty() {
        return refuse(unmet.join("; "));
    }
    if state.launcher.is_none() && policy.agents.values().any(|a| a.shell.is_some()) {
        return refuse(
            "the new policy grants shell access, which needs a daemon restart to start the launcher"
                .into(),
        );
    }
    if let Some(name) = state.tcp_agent() {
        if policy.agent(name).is_none() {
            return refuse(format!("[tcp] agent \"{name}\" is not defined"));
        }
    }
    // Certificates, keys and the client CA reload with the policy: both
    // are checked before either is swapped in.
    let tls_material = match load_tls(config) {
        Ok(material) => material,
        Err(e) => return refuse(format!("the TLS files: {e:#}")),
    };
    let version = policy.version.clone();
    state.swap_policy(policy);
    if let Some(material) = tls_material {
        state.swap_tls(material);
    }
    // Host files listed in shell.etc may have changed too.
    if let Some(launcher) = &state.launcher {
        launcher.refresh_etc();
    }
    tracing::info!(version = %version, "policy reloaded");
    true
}
