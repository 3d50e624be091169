//! Test harness: starts the real `agentjail serve` binary on a Unix socket in
//! a temporary directory and talks to it with the real tonic client. The
//! launching itself (directories, command line, process handle) is shared
//! with the shell harness in `tests/launch`.
//!
//! Layout of every test directory (`Dirs`): the `launch::DaemonDirs` layout
//! with these files in it:
//!
//! ```text
//! <root>/                 0755, so other uids can reach the socket
//!   ws/                   workspace "main" (read-write)
//!   ro/readme.txt         workspace "ro" (read-only)
//!   ws-evil/f.txt         a sibling sharing the workspace's name as prefix
//!   outside/secret.txt    sentinel files the daemon must never touch
//!   policies/test.toml    the policy under test
//!   state/                --state-dir
//!   run/agentjail.sock    the socket
//!   agentjail.toml        the daemon config
//!   daemon.log            the daemon's stdout and stderr
//! ```

#![allow(dead_code)]

#[path = "../launch/mod.rs"]
mod launch;

// Every suite uses a different part of these.
#[allow(unused_imports)]
pub use launch::{
    BIN, DaemonDirs, SANDBOX_GID, SANDBOX_UID, Serve, Server, give_to_sandbox, health_status,
    send_signal, set_mode,
};

use agentjail::error::reason_of;
use agentjail::proto::tool_sandbox_client::ToolSandboxClient;
use agentjail::proto::*;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt::Debug;
use std::ops::Deref;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use tonic::transport::Channel;
use tonic::{Code, Response, Status};
use tonic_types::StatusExt;

/// The agent name of the standard policy.
pub const AGENT: &str = "tester";
/// Content of `outside/secret.txt`: must never come back from the daemon.
pub const SECRET: &str = "TOP-SECRET-OUTSIDE-CONTENT\n";
/// A file name that exists only outside the workspace.
pub const OUTSIDE_ONLY_NAME: &str = "outside-only-name.txt";
/// Content of `ws-evil/f.txt`.
pub const SIBLING_SECRET: &str = "SIBLING-WS-EVIL-CONTENT\n";

/// Tests that need root (chown, mknod, running a client as another uid)
/// call this: without root they fail with this message, never skip.
#[track_caller]
pub fn require_root(what: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "{what} needs root (CI runs the suite as root); run `sudo cargo test`"
    );
}

/// The caller's uid: the standard policy maps it to the agent.
pub fn my_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The `uids = [...]` line of the standard policy.
pub fn uids_line() -> String {
    format!("uids = [{}]", my_uid())
}

// ------------------------------------------------------------------ dirs

pub struct Dirs {
    base: DaemonDirs,
    /// `ws-evil/`: shares the workspace's name as a prefix.
    pub sibling: PathBuf,
}

/// The shared layout's paths (`ws`, `socket`, `log`, ...) read as `dirs.ws`.
impl Deref for Dirs {
    type Target = DaemonDirs;
    fn deref(&self) -> &DaemonDirs {
        &self.base
    }
}

impl Dirs {
    pub fn new() -> Dirs {
        let base = DaemonDirs::new("aj-test-");
        let d = Dirs {
            sibling: base.root.join("ws-evil"),
            base,
        };
        put(&d.outside.join("secret.txt"), SECRET);
        put(&d.outside.join(OUTSIDE_ONLY_NAME), SECRET);
        put(&d.outside.join("f.txt"), SECRET);
        put(&d.outside.join("sub/deep-secret.txt"), SECRET);
        put(&d.sibling.join("f.txt"), SIBLING_SECRET);
        put(&d.ro.join("readme.txt"), "read-only content\n");
        d
    }

    /// A path inside `outside/`.
    pub fn o(&self, rel: &str) -> PathBuf {
        self.outside.join(rel)
    }

    /// Asserts that every sentinel outside the workspaces is unchanged and
    /// that nothing new appeared outside (in `outside/` and `ws-evil/`).
    #[track_caller]
    pub fn assert_outside_untouched(&self) {
        assert_eq!(
            get(&self.o("secret.txt")),
            SECRET,
            "outside/secret.txt changed"
        );
        assert_eq!(get(&self.o(OUTSIDE_ONLY_NAME)), SECRET);
        assert_eq!(get(&self.o("f.txt")), SECRET);
        assert_eq!(get(&self.o("sub/deep-secret.txt")), SECRET);
        assert_eq!(get(&self.sibling.join("f.txt")), SIBLING_SECRET);
        let mut names = list_names(&self.outside);
        names.sort();
        let mut expected: Vec<String> = self.outside_baseline();
        expected.sort();
        assert_eq!(names, expected, "a file appeared or vanished in outside/");
        assert_eq!(list_names(&self.sibling), vec!["f.txt".to_string()]);
        assert_eq!(
            list_names(&self.outside.join("sub")),
            vec!["deep-secret.txt".to_string()]
        );
    }

    fn outside_baseline(&self) -> Vec<String> {
        let extra = std::fs::read_to_string(self.root.join(".outside-extra")).unwrap_or_default();
        let mut v: Vec<String> = ["secret.txt", OUTSIDE_ONLY_NAME, "f.txt", "sub"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.lines().map(str::to_string));
        v
    }

    /// Registers a file a test put in `outside/` itself, so
    /// `assert_outside_untouched` expects it.
    pub fn add_outside(&self, name: &str, content: &str) {
        put(&self.o(name), content);
        self.add_outside_symlink(name);
    }

    /// Registers a name a test created in `outside/` itself.
    pub fn add_outside_symlink(&self, name: &str) {
        let mut extra =
            std::fs::read_to_string(self.root.join(".outside-extra")).unwrap_or_default();
        extra.push_str(name);
        extra.push('\n');
        std::fs::write(self.root.join(".outside-extra"), extra).unwrap();
    }

    pub fn keep(self) -> PathBuf {
        self.base.keep()
    }
}

/// The policy most tests run under: agent `tester` = this uid, workspace
/// `main` (read-write) and `ro` (read-only), the usual deny globs.
pub fn standard_policy(d: &Dirs) -> String {
    policy_with(d, r#"read = ["**"]"#, r#"write = ["**"]"#)
}

pub fn policy_with(d: &Dirs, read: &str, write: &str) -> String {
    format!(
        r#"[[agents]]
name = "tester"
{uids}

[[agents.workspaces]]
name = "main"
path = "{ws}"
access = "read-write"

[[agents.workspaces]]
name = "ro"
path = "{ro}"
access = "read-only"

[agents.files]
{read}
{write}
deny = ["**/.env", "**/*.pem", ".git/hooks/**"]

[agents.limits]
max_read_bytes = 262144
max_write_bytes = 16777216
max_file_bytes = 67108864
"#,
        ws = d.ws.display(),
        ro = d.ro.display(),
        uids = uids_line(),
    )
}

// ---------------------------------------------------------------- daemon

pub struct Daemon {
    /// First, so the daemon is gone before its directories are.
    server: Server,
    pub dirs: Dirs,
    pub pid: u32,
}

impl Daemon {
    /// The standard policy in fresh directories.
    pub async fn start() -> Daemon {
        let dirs = Dirs::new();
        let policy = standard_policy(&dirs);
        Daemon::start_with(dirs, &policy, "").await
    }

    /// `policy` as `policies/test.toml`; `config_extra` appended to the
    /// config file.
    pub async fn start_with(dirs: Dirs, policy: &str, config_extra: &str) -> Daemon {
        dirs.write_setup(
            policy,
            &format!("shutdown_grace_ms = 2000\n{config_extra}\n"),
        );
        let server = Serve::new().start(&dirs).await;
        Daemon {
            pid: server.pid,
            server,
            dirs,
        }
    }

    pub fn log(&self) -> String {
        self.server.log()
    }

    pub async fn channel(&self) -> Channel {
        agentjail::client::unix_channel(&self.dirs.socket)
            .await
            .expect("connect to the daemon socket")
    }

    pub async fn client(&self) -> ToolSandboxClient<Channel> {
        launch::tool_client(&self.dirs.socket)
            .await
            .expect("connect to the daemon socket")
    }

    /// Asserts that the daemon process is alive and answers a real call.
    pub async fn assert_serving(&mut self) {
        if let Some(status) = self.server.exited() {
            panic!("the daemon died with {status}; log:\n{}", self.log());
        }
        assert_eq!(
            health_status(&self.dirs.socket, "").await,
            Ok(1),
            "health check after the call"
        );
        let mut c = self.client().await;
        let who = c
            .who_am_i(WhoAmIRequest {})
            .await
            .expect("WhoAmI after the call")
            .into_inner();
        assert_eq!(who.agent, AGENT);
    }

    /// SIGTERM, then wait (at most 15 s) for the exit status.
    pub async fn stop(&mut self) -> ExitStatus {
        self.server.stop().await
    }

    /// Resident set size of the daemon, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.server.status_kib("VmRSS:")
    }

    /// Peak resident set size of the daemon, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.server.status_kib("VmHWM:")
    }

    /// `agentjail call --socket S <args>` as the current user.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .arg("call")
            .arg("--socket")
            .arg(&self.dirs.socket)
            .args(args)
            .env_remove("AGENTJAIL_SOCKET")
            .stdin(Stdio::null())
            .output()
            .expect("run agentjail call")
    }
}

// ------------------------------------------------------------ assertions

/// Responses that carry `CallInfo`.
pub trait HasInfo {
    fn call_info(&self) -> Option<&CallInfo>;
}

macro_rules! has_info {
    ($($t:ty),*) => {$(
        impl HasInfo for $t {
            fn call_info(&self) -> Option<&CallInfo> { self.info.as_ref() }
        }
    )*};
}

has_info!(
    WhoAmIResponse,
    ReadFileResponse,
    WriteFileResponse,
    EditFileResponse,
    ListDirResponse,
    GlobResponse,
    GrepResponse,
    StatResponse,
    MakeDirResponse,
    MoveResponse,
    RemoveResponse
);

/// Describes a status for assertion messages.
pub fn describe(s: &Status) -> String {
    format!(
        "code {:?}, reason {:?}, message {:?}, metadata {:?}",
        s.code(),
        reason_of(s),
        s.message(),
        error_meta(s)
    )
}

/// The success value; panics with the status otherwise. Also checks that
/// the response names the agent and the rule that allowed it.
#[track_caller]
pub fn ok<T: HasInfo + Debug>(r: Result<Response<T>, Status>) -> T {
    match r {
        Ok(resp) => {
            let resp = resp.into_inner();
            let info = resp
                .call_info()
                .unwrap_or_else(|| panic!("success without CallInfo: {resp:?}"));
            assert_eq!(info.agent, AGENT, "CallInfo.agent");
            assert!(!info.rule.is_empty(), "CallInfo.rule is empty: {info:?}");
            assert!(!info.request_id.is_empty(), "CallInfo.request_id is empty");
            resp
        }
        Err(s) => panic!("expected success, got {}", describe(&s)),
    }
}

/// The gRPC code each reason must travel with.
pub fn code_of_reason(reason: &str) -> Code {
    match reason {
        "INVALID_ARGUMENT"
        | "PATH_OUTSIDE_WORKSPACE"
        | "IS_A_DIRECTORY"
        | "NOT_A_DIRECTORY"
        | "NOT_A_REGULAR_FILE"
        | "LIMIT_EXCEEDED" => Code::InvalidArgument,
        "SYMLINK_ESCAPE"
        | "POLICY_DENIED"
        | "UNKNOWN_CALLER"
        | "READ_ONLY_WORKSPACE"
        | "TOOL_NOT_ALLOWED" => Code::PermissionDenied,
        "UNKNOWN_WORKSPACE" | "NOT_FOUND" => Code::NotFound,
        "ALREADY_EXISTS" => Code::AlreadyExists,
        "DIRECTORY_NOT_EMPTY"
        | "STALE_CONTENT"
        | "MATCH_NOT_FOUND"
        | "MATCH_AMBIGUOUS"
        | "IDEMPOTENCY_KEY_REUSED" => Code::FailedPrecondition,
        "TOO_LARGE" | "RATE_LIMITED" | "QUOTA_EXCEEDED" | "TOO_MANY_CONCURRENT_CALLS" => {
            Code::ResourceExhausted
        }
        "UNAUTHENTICATED" => Code::Unauthenticated,
        other => panic!("unknown reason {other}"),
    }
}

/// Asserts the call failed with `expected` (and its gRPC code, and a
/// non-empty message); returns the status.
#[track_caller]
pub fn assert_reason<T: Debug>(r: Result<Response<T>, Status>, expected: &str) -> Status {
    assert_reason_in(r, &[expected])
}

/// Asserts the call failed with one of `expected`.
#[track_caller]
pub fn assert_reason_in<T: Debug>(r: Result<Response<T>, Status>, expected: &[&str]) -> Status {
    match r {
        Ok(resp) => panic!(
            "expected failure with {expected:?}, got success: {:?}",
            resp.get_ref()
        ),
        Err(s) => {
            let got = reason_of(&s);
            assert!(
                got.as_deref().is_some_and(|g| expected.contains(&g)),
                "expected reason {expected:?}, got {}",
                describe(&s)
            );
            let reason = got.unwrap();
            assert_eq!(
                s.code(),
                code_of_reason(&reason),
                "wrong gRPC code for {reason}: {}",
                describe(&s)
            );
            assert!(!s.message().is_empty(), "empty message: {}", describe(&s));
            s
        }
    }
}

/// A refusal by the transport's message size limit: RESOURCE_EXHAUSTED per
/// the gRPC spec, OUT_OF_RANGE as tonic 0.14 sends it; the message names the
/// limit.
pub fn is_message_too_large(s: &Status) -> bool {
    matches!(s.code(), Code::ResourceExhausted | Code::OutOfRange)
        && s.message().contains("too large")
}

/// ErrorInfo metadata of a status.
pub fn error_meta(s: &Status) -> HashMap<String, String> {
    s.get_details_error_info()
        .map(|i| i.metadata)
        .unwrap_or_default()
}

/// The message and every metadata value, for looser content checks.
pub fn error_text(s: &Status) -> String {
    let mut text = s.message().to_string();
    let mut meta: Vec<_> = error_meta(s).into_iter().collect();
    meta.sort();
    for (k, v) in meta {
        text.push_str(&format!("\n{k}={v}"));
    }
    text
}

/// Every decimal number appearing in `text`.
pub fn numbers_in(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

// ------------------------------------------------------------ host files

pub fn put(path: &Path, content: impl AsRef<[u8]>) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

#[track_caller]
pub fn get(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

pub fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

pub fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

pub fn symlink(target: impl AsRef<Path>, link: &Path) {
    std::os::unix::fs::symlink(target.as_ref(), link)
        .unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
}

/// Names in a host directory (lossy), sorted.
pub fn list_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

pub fn sha256_hex(data: impl AsRef<[u8]>) -> String {
    hex::encode(Sha256::digest(data.as_ref()))
}

// -------------------------------------------------------------- requests

pub fn read_req(path: &str) -> ReadFileRequest {
    ReadFileRequest {
        path: path.into(),
        ..Default::default()
    }
}

pub fn read_lines(path: &str, offset: u64, limit: u64) -> ReadFileRequest {
    ReadFileRequest {
        path: path.into(),
        window: Some(read_file_request::Window::Lines(LineWindow {
            offset,
            limit,
        })),
        ..Default::default()
    }
}

pub fn read_bytes(path: &str, offset: u64, limit: u64) -> ReadFileRequest {
    ReadFileRequest {
        path: path.into(),
        window: Some(read_file_request::Window::Bytes(ByteWindow {
            offset,
            limit,
        })),
        ..Default::default()
    }
}

pub fn write_req(path: &str, content: impl Into<Vec<u8>>) -> WriteFileRequest {
    WriteFileRequest {
        path: path.into(),
        content: content.into(),
        mode: WriteMode::Upsert as i32,
        ..Default::default()
    }
}

pub fn edit_req(path: &str, old: &str, new: &str) -> EditFileRequest {
    EditFileRequest {
        path: path.into(),
        edits: vec![Edit {
            old: old.into(),
            new: new.into(),
            replace_all: false,
        }],
        ..Default::default()
    }
}

pub fn list_req(path: &str) -> ListDirRequest {
    ListDirRequest {
        path: path.into(),
        ..Default::default()
    }
}

pub fn glob_req(pattern: &str) -> GlobRequest {
    GlobRequest {
        pattern: pattern.into(),
        ..Default::default()
    }
}

pub fn grep_req(pattern: &str) -> GrepRequest {
    GrepRequest {
        pattern: pattern.into(),
        ..Default::default()
    }
}

pub fn stat_req(path: &str) -> StatRequest {
    StatRequest {
        path: path.into(),
        ..Default::default()
    }
}

pub fn mkdir_req(path: &str, parents: bool) -> MakeDirRequest {
    MakeDirRequest {
        path: path.into(),
        parents,
        ..Default::default()
    }
}

pub fn move_req(from: &str, to: &str) -> MoveRequest {
    MoveRequest {
        from: from.into(),
        to: to.into(),
        ..Default::default()
    }
}

pub fn remove_req(path: &str, recursive: bool) -> RemoveRequest {
    RemoveRequest {
        path: path.into(),
        recursive,
        ..Default::default()
    }
}

/// The text (or bytes) a ReadFile returned.
pub fn content_of(r: &ReadFileResponse) -> Vec<u8> {
    if r.is_binary {
        r.data.to_vec()
    } else {
        r.text.as_bytes().to_vec()
    }
}

// ------------------------------------------------------------- raw gRPC

/// A gRPC frame (uncompressed) around `msg`.
pub fn grpc_frame(msg: &[u8]) -> bytes::Bytes {
    let mut v = Vec::with_capacity(msg.len() + 5);
    v.push(0);
    v.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    v.extend_from_slice(msg);
    v.into()
}

/// A protobuf varint.
pub fn varint(mut n: u64) -> Vec<u8> {
    let mut v = Vec::new();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            v.push(b);
            return v;
        }
        v.push(b | 0x80);
    }
}

/// Sends `body` (already framed) to `/agentjail.v1.ToolSandbox/<method>` on
/// `channel` and returns the final gRPC status (code OK on success).
pub async fn raw_unary(channel: Channel, method: &str, body: tonic::body::Body) -> Status {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let uri = format!("http://agentjail.local/agentjail.v1.ToolSandbox/{method}");
    let req = tonic::codegen::http::Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .unwrap();
    let resp = channel
        .oneshot(req)
        .await
        .expect("HTTP/2 request to the daemon");
    if let Some(status) = Status::from_header_map(resp.headers()) {
        return status;
    }
    let collected = resp
        .into_body()
        .collect()
        .await
        .expect("read the response body");
    let trailers = collected
        .trailers()
        .cloned()
        .expect("a gRPC response ends with trailers");
    Status::from_header_map(&trailers).expect("grpc-status in the trailers")
}

/// A body made of one in-memory chunk.
pub fn full_body(data: bytes::Bytes) -> tonic::body::Body {
    tonic::body::Body::new(http_body_util::Full::new(data))
}
