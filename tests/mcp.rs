//! `agentjail mcp` and `agentjail tools`, driven by MCP clients no one here
//! wrote: the official MCP Python SDK over stdio and over streamable HTTP
//! (`tests/mcp/python_client.py`), and the MCP Inspector's CLI mode. The
//! server is started exactly as the README's Claude Code `.mcp.json` says,
//! against the real daemon on its socket; every check looks at the host too.
//!
//! Needs `pip install -r tests/mcp/requirements.txt` and `npm ci --prefix
//! tests/mcp` (`.ci/run` does both); under CI a missing client fails.

#[path = "shell_common/mod.rs"]
mod shell_common;

use serde_json::{Value, json};
use shell_common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const SUITE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp");

/// The Claude Code `.mcp.json` block of the README's "MCP server" section.
fn readme_claude_config() -> Value {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("\n## MCP server\n")
        .nth(1)
        .expect("README has an \"MCP server\" section");
    let block = section
        .split("```json\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .find(|b| b.contains("mcpServers"))
        .expect("the MCP server section has a .mcp.json block");
    serde_json::from_str(block).expect("the README's .mcp.json block is JSON")
}

/// PATH with the binary under test first, so the README's `"command":
/// "agentjail"` runs it.
fn path_with_agentjail() -> String {
    let dir = Path::new(BIN).parent().unwrap();
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Whether `python3` has the MCP SDK; outside CI a missing one is noted
/// and the test returns, under CI it fails.
fn python_sdk_present() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import mcp.client.stdio, mcp.client.streamable_http"])
        .output()
        .is_ok_and(|o| o.status.success());
    missing_tool(
        ok,
        "the MCP Python SDK (pip install -r tests/mcp/requirements.txt)",
    )
}

fn inspector_cli() -> Option<PathBuf> {
    let bin = Path::new(SUITE_DIR).join("node_modules/.bin/mcp-inspector");
    let ok = bin.exists()
        && Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    missing_tool(ok, "node and the MCP Inspector (npm ci --prefix tests/mcp)").then_some(bin)
}

fn missing_tool(present: bool, what: &str) -> bool {
    if !present {
        if under_ci() {
            panic!("{what} is missing: .ci/run installs it");
        }
        eprintln!("NOTE: {what} is missing; test not run (it fails under CI=true)");
    }
    present
}

/// `agentjail tools ARGS` with the daemon's socket.
fn tools_cmd(args: &[&str], socket: Option<&Path>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("tools").args(args).env_remove("AGENTJAIL_SOCKET");
    if let Some(s) = socket {
        cmd.arg("--socket").arg(s);
    }
    cmd.output().unwrap()
}

fn json_stdout(out: &Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The Python suite's configuration: how to reach the server, and the host
/// paths it checks.
fn suite_config(d: &ShellDaemon, transport: Value) -> Value {
    let printed = json_stdout(
        &tools_cmd(&["--format", "mcp"], Some(&d.dirs.socket)),
        "agentjail tools --format mcp",
    );
    let mut cfg = json!({
        "ws": d.dirs.ws,
        "ro": d.dirs.ro,
        "outside": d.dirs.outside,
        "secret": SECRET,
        "printed_tools": printed,
    });
    cfg.as_object_mut()
        .unwrap()
        .extend(transport.as_object().unwrap().clone());
    cfg
}

fn run_python_suite(d: &ShellDaemon, cfg: &Value) {
    let out = Command::new("python3")
        .arg(Path::new(SUITE_DIR).join("python_client.py"))
        .arg(cfg.to_string())
        .env("PATH", path_with_agentjail())
        .env("AGENTJAIL_SOCKET", &d.dirs.socket)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "the Python MCP client suite failed ({}):\n{stdout}\n{stderr}\ndaemon log:\n{}",
        out.status,
        d.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_over_stdio_with_the_readme_claude_code_config() {
    if !python_sdk_present() {
        return;
    }
    let mut d = ShellDaemon::start().await;
    let before = d.dirs.outside_snapshot();
    let server = &readme_claude_config()["mcpServers"]["agentjail"];
    assert_eq!(server["command"], "agentjail", "{server}");
    let cfg = suite_config(
        &d,
        json!({
            "transport": "stdio",
            "command": server["command"],
            "args": server["args"],
            "env": {"PATH": path_with_agentjail(), "AGENTJAIL_SOCKET": d.dirs.socket},
        }),
    );
    run_python_suite(&d, &cfg);
    assert_eq!(
        d.dirs.outside_snapshot(),
        before,
        "files outside the workspace changed"
    );
    d.assert_serving().await;
}

/// The agent's open sessions, as the daemon lists them.
async fn open_sessions(d: &ShellDaemon) -> Vec<String> {
    let listed = d
        .client()
        .await
        .list_sessions(agentjail::proto::ListSessionsRequest {})
        .await
        .unwrap_or_else(|s| panic!("ListSessions: {s:?}"))
        .into_inner();
    listed.sessions.into_iter().map(|s| s.session_id).collect()
}

/// Waits (up to 10 s) until the agent has no open session: the MCP server
/// closed the one it opened when its MCP session ended.
async fn assert_sessions_closed(d: &ShellDaemon) {
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let open = open_sessions(d).await;
        if open.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < end,
            "sessions still open after the MCP server ended: {open:?}\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Needs the daemon's sessions (issue 13): without them every session
/// tool answers UNIMPLEMENTED and this fails.
#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_drives_the_session_tools_over_stdio() {
    if !python_sdk_present() {
        return;
    }
    let mut d = ShellDaemon::start().await;
    let before = d.dirs.outside_snapshot();
    let server = &readme_claude_config()["mcpServers"]["agentjail"];
    let mut cfg = suite_config(
        &d,
        json!({
            "transport": "stdio",
            "command": server["command"],
            "args": server["args"],
            "env": {"PATH": path_with_agentjail(), "AGENTJAIL_SOCKET": d.dirs.socket},
        }),
    );
    cfg["suite"] = json!("sessions");
    run_python_suite(&d, &cfg);
    assert_sessions_closed(&d).await;
    assert_eq!(
        d.dirs.outside_snapshot(),
        before,
        "files outside the workspace changed"
    );
    d.assert_serving().await;
}

/// The session tools over streamable HTTP: each MCP session gets its own
/// daemon session, closed when the client ends its MCP session while the
/// server keeps serving. Needs the daemon's sessions (issue 13).
#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_drives_the_session_tools_over_streamable_http() {
    if !python_sdk_present() {
        return;
    }
    let mut d = ShellDaemon::start().await;
    let server = HttpServer::start(&d.dirs.socket);
    let mut cfg = suite_config(&d, json!({"transport": "http", "url": server.url}));
    cfg["suite"] = json!("sessions");
    run_python_suite(&d, &cfg);
    assert_sessions_closed(&d).await;
    d.assert_serving().await;
}

/// `agentjail mcp` on stdio driven by hand, one JSON-RPC line at a time.
struct StdioServer {
    child: Child,
    out: std::io::Lines<BufReader<std::process::ChildStdout>>,
    next_id: u64,
}

impl StdioServer {
    fn start(socket: &Path) -> StdioServer {
        let mut child = Command::new(BIN)
            .args(["mcp", "--socket"])
            .arg(socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut s = StdioServer {
            child,
            out,
            next_id: 0,
        };
        s.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "by-hand", "version": "0"}}),
        );
        s.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        s
    }

    fn send(&mut self, message: Value) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    }

    /// Sends a request and returns its result (skipping notifications).
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let line = self.out.next().expect("the server answered").unwrap();
            let message: Value = serde_json::from_str(&line).unwrap();
            if message["id"] == id {
                return message["result"].clone();
            }
        }
    }

    /// A tool call's text, asserting it was no error.
    fn call_ok(&mut self, tool: &str, args: Value) -> String {
        let r = self.request("tools/call", json!({"name": tool, "arguments": args}));
        assert_ne!(r["isError"], true, "{tool}: {r}");
        r["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl Drop for StdioServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A session the daemon ended under the MCP server (here closed from
/// outside; an idle timeout or a daemon restart does the same) is opened
/// again by the next exec_command. Needs the daemon's sessions (issue 13).
#[tokio::test(flavor = "multi_thread")]
async fn exec_command_opens_a_new_session_when_the_daemon_ended_the_old_one() {
    let d = ShellDaemon::start().await;
    let mut server = StdioServer::start(&d.dirs.socket);
    let text = server.call_ok("exec_command", json!({"cmd": "echo first"}));
    assert!(text.contains("Output:\nfirst\n"), "{text}");
    let first = open_sessions(&d).await;
    assert_eq!(
        first.len(),
        1,
        "one session for the conversation: {first:?}"
    );
    d.client()
        .await
        .close_session(agentjail::proto::CloseSessionRequest {
            session_id: first[0].clone(),
        })
        .await
        .unwrap();
    assert!(open_sessions(&d).await.is_empty());
    let text = server.call_ok("exec_command", json!({"cmd": "echo second"}));
    assert!(
        text.contains("Process exited with code 0") && text.contains("Output:\nsecond\n"),
        "{text}"
    );
    let second = open_sessions(&d).await;
    assert!(
        second.len() == 1 && second != first,
        "a new session: {first:?} then {second:?}"
    );
    // Ending the MCP session (stdin closed) closes the new one too.
    drop(server.child.stdin.take());
    assert!(
        server.child.wait().unwrap().success(),
        "the server exits cleanly"
    );
    assert_sessions_closed(&d).await;
}

/// `agentjail mcp --http 127.0.0.1:0`, killed on drop.
struct HttpServer {
    child: Child,
    url: String,
    addr: String,
}

impl HttpServer {
    fn start(socket: &Path) -> HttpServer {
        let child = Command::new(BIN)
            .args(["mcp", "--http", "127.0.0.1:0", "--socket"])
            .arg(socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Self::serving(child)
    }

    /// Waits for the address line of a server started with piped stderr.
    fn serving(mut child: Child) -> HttpServer {
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let line = lines.next().and_then(Result::ok).unwrap_or_else(|| {
            panic!(
                "agentjail mcp --http printed nothing: {:?}",
                child.try_wait()
            )
        });
        let url = line
            .split("serving MCP on ")
            .nth(1)
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .trim()
            .to_string();
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches("/mcp")
            .to_string();
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        HttpServer { child, url, addr }
    }

    /// A raw initialize POST with this Host header; the status line back.
    fn post_initialize(&self, host: &str) -> String {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}})
        .to_string();
        let mut s = std::net::TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "POST /mcp HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut head = [0u8; 64];
        let n = s.read(&mut head).unwrap();
        String::from_utf8_lossy(&head[..n])
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_over_streamable_http_on_loopback() {
    if !python_sdk_present() {
        return;
    }
    let mut d = ShellDaemon::start().await;
    let before = d.dirs.outside_snapshot();
    let server = HttpServer::start(&d.dirs.socket);
    let cfg = suite_config(&d, json!({"transport": "http", "url": server.url}));
    run_python_suite(&d, &cfg);
    assert_eq!(
        d.dirs.outside_snapshot(),
        before,
        "files outside the workspace changed"
    );

    // DNS rebinding: a page's request carries its own Host and is refused;
    // the same request with the loopback Host is served.
    let served = server.post_initialize(&server.addr);
    assert!(served.contains(" 200 "), "loopback Host: {served}");
    let refused = server.post_initialize("attacker.example");
    assert!(
        refused.contains(" 403 ") || refused.contains(" 400 "),
        "foreign Host: {refused}"
    );
    d.assert_serving().await;
}

#[test]
fn http_refuses_an_address_other_hosts_can_reach() {
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:8765"] {
        let out = Command::new(BIN)
            .args([
                "mcp",
                "--http",
                addr,
                "--socket",
                "/nonexistent/agentjail.sock",
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{addr}: {err}");
        assert!(
            err.contains("only a loopback address is served"),
            "{addr}: {err}"
        );
    }
    // Control: a loopback address gets past that check (and then reports
    // the missing daemon).
    let out = Command::new(BIN)
        .args([
            "mcp",
            "--http",
            "127.0.0.1:0",
            "--socket",
            "/nonexistent/agentjail.sock",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the agentjail daemon at /nonexistent"),
        "{err}"
    );
}

/// The Inspector CLI with a config file holding the README's block.
fn inspector(bin: &Path, config: &Path, socket: &Path, args: &[&str]) -> Value {
    let out = Command::new(bin)
        .args(["--cli", "--config"])
        .arg(config)
        .args(["--server", "agentjail"])
        .args(args)
        .env("PATH", path_with_agentjail())
        .env("AGENTJAIL_SOCKET", socket)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    json_stdout(&out, &format!("mcp-inspector --cli {args:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mcp_inspector_cli_lists_and_calls_the_tools() {
    let Some(bin) = inspector_cli() else {
        return;
    };
    let d = ShellDaemon::start().await;
    let config = d.dirs.root.join(".mcp.json");
    std::fs::write(&config, readme_claude_config().to_string()).unwrap();
    let socket = &d.dirs.socket;

    let listed = inspector(&bin, &config, socket, &["--method", "tools/list"]);
    let names: Vec<&str> = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for want in [
        "read_text_file",
        "edit_file",
        "grep",
        "run_command",
        "list_allowed_directories",
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }

    let wrote = inspector(
        &bin,
        &config,
        socket,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "write_file",
            "--tool-arg",
            "path=/workspace/hello.txt",
            "--tool-arg",
            "content=hello from the inspector",
        ],
    );
    assert_ne!(wrote["isError"], true, "{wrote}");
    assert_eq!(
        std::fs::read_to_string(d.dirs.ws.join("hello.txt")).unwrap(),
        "hello from the inspector"
    );
    let ran = inspector(
        &bin,
        &config,
        socket,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "run_command",
            "--tool-arg",
            "command=cat hello.txt",
        ],
    );
    let text = ran["content"][0]["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("exit status 0") && text.contains("hello from the inspector"),
        "{ran}"
    );

    let refused = inspector(
        &bin,
        &config,
        socket,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "read_text_file",
            "--tool-arg",
            "path=../outside/secret.txt",
        ],
    );
    assert_eq!(refused["isError"], true, "{refused}");
    let text = refused["content"][0]["text"].as_str().unwrap_or_default();
    assert!(text.starts_with("PATH_OUTSIDE_WORKSPACE"), "{refused}");
    assert!(!refused.to_string().contains(SECRET));
}

/// Needs the daemon's sessions (issue 13), as the Python session suite.
#[tokio::test(flavor = "multi_thread")]
async fn the_mcp_inspector_cli_runs_exec_command_in_a_session() {
    let Some(bin) = inspector_cli() else {
        return;
    };
    let d = ShellDaemon::start().await;
    let config = d.dirs.root.join(".mcp.json");
    std::fs::write(&config, readme_claude_config().to_string()).unwrap();
    let socket = &d.dirs.socket;
    let listed = inspector(&bin, &config, socket, &["--method", "tools/list"]);
    let names: Vec<&str> = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for want in [
        "exec_command",
        "write_stdin",
        "start_process",
        "read_process_output",
        "kill_process",
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    let ran = inspector(
        &bin,
        &config,
        socket,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "exec_command",
            "--tool-arg",
            "cmd=echo from the inspector > made.txt; cat made.txt",
        ],
    );
    assert_ne!(ran["isError"], true, "{ran}");
    let text = ran["content"][0]["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("Process exited with code 0") && text.contains("Output:\nfrom the inspector"),
        "{ran}"
    );
    assert_eq!(
        std::fs::read_to_string(d.dirs.ws.join("made.txt")).unwrap(),
        "from the inspector\n"
    );
    // The Inspector's server ended with its one call, and so did its session.
    assert_sessions_closed(&d).await;
}

/// A policy directory with one agent with commands and one without.
fn offline_policy(dirs: &ShellDirs) -> PathBuf {
    let dir = dirs.root.join("offline-policies");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("agents.toml"),
        format!(
            r#"[[agents]]
name = "reader"
uids = [54001]

[[agents.workspaces]]
name = "docs"
path = "{ro}"
access = "read-only"

[[agents]]
name = "builder"
uids = [54002]

[[agents.workspaces]]
name = "main"
path = "{ws}"
access = "read-write"

[agents.shell]
allow_shell = false

[[agents.shell.commands]]
program = "python3"

[[agents.shell.commands]]
program = "make"
"#,
            ro = dirs.ro.display(),
            ws = dirs.ws.display(),
        ),
    )
    .unwrap();
    dir
}

#[test]
fn tools_prints_the_definitions_for_each_format_from_the_policy() {
    let dirs = ShellDirs::new();
    let dir = offline_policy(&dirs);
    let dir = dir.to_str().unwrap();
    let of = |agent: &str, format: &str| {
        json_stdout(
            &tools_cmd(
                &["--format", format, "--agent", agent, "--policy-dir", dir],
                None,
            ),
            &format!("agentjail tools --format {format} --agent {agent}"),
        )
    };

    let reader = of("reader", "mcp");
    let tools = reader["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(
        !names.contains(&"run_command"),
        "an agent without commands: {names:?}"
    );
    assert_eq!(names.len(), 14, "{names:?}");
    for t in tools {
        for hint in [
            "readOnlyHint",
            "destructiveHint",
            "idempotentHint",
            "openWorldHint",
        ] {
            assert!(
                t["annotations"][hint].is_boolean(),
                "{} lacks {hint}",
                t["name"]
            );
        }
    }
    let write = tools.iter().find(|t| t["name"] == "write_file").unwrap();
    assert!(
        write["description"]
            .as_str()
            .unwrap()
            .contains("Read-only workspaces (writes refused): docs.")
    );

    let builder = of("builder", "openai");
    let run = builder
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == "run_command")
        .expect("an agent with commands gets run_command");
    assert_eq!(run["type"], "function");
    let description = run["function"]["description"].as_str().unwrap();
    assert!(
        description.contains("Programs allowed: python3, make."),
        "{description}"
    );
    let builder_names: Vec<&str> = builder
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(
        builder_names.contains(&"start_process") && builder_names.contains(&"write_stdin"),
        "an agent with commands gets the session tools: {builder_names:?}"
    );
    assert!(
        !builder_names.contains(&"exec_command"),
        "exec_command takes a shell string; this agent has no shell: {builder_names:?}"
    );
    let params = &run["function"]["parameters"];
    assert_eq!(params["type"], "object");
    assert!(params["properties"]["argv"].is_object());
    assert!(
        params["properties"].get("command").is_none(),
        "no shell, no command string: {params}"
    );

    let anthropic = of("builder", "anthropic");
    let edit = anthropic
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "edit_file")
        .unwrap();
    assert!(
        edit["input_schema"]["properties"]["dryRun"].is_object(),
        "{edit}"
    );
    assert_eq!(edit["input_schema"]["required"], json!(["path", "edits"]));

    // An unknown agent is named, with the ones there are.
    let out = tools_cmd(&["--agent", "nobody", "--policy-dir", dir], None);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no agent \"nobody\"") && err.contains("builder, reader"),
        "{err}"
    );
}

/// The uid of the policy's second agent, `other` (workspace `other-ws`).
const OTHER_UID: u32 = 54321;

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_sees_the_user_who_started_the_mcp_server() {
    if !python_sdk_present() {
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "starting the MCP server as another user needs root"
    );
    let d = ShellDaemon::start().await;
    // Let other users connect, as `socket_mode = 0o666` would.
    set_mode(&d.dirs.socket, 0o666);
    std::fs::write(d.dirs.ws.join("tester-only.txt"), "TESTER-FILE\n").unwrap();
    let theirs = d.dirs.ws.join("tester-only.txt");
    // The server runs as `other`; the client driving it (this test's
    // python, as root) does not matter: the daemon sees the server's uid.
    let server = {
        use std::os::unix::process::CommandExt;
        HttpServer::serving(
            Command::new(BIN)
                .args(["mcp", "--http", "127.0.0.1:0", "--socket"])
                .arg(&d.dirs.socket)
                .uid(OTHER_UID)
                .gid(OTHER_UID)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    };
    let cfg = json!({
        "transport": "http",
        "url": server.url,
        "probe": ["secret.txt", theirs.to_str().unwrap()],
    });
    let out = Command::new("python3")
        .arg(Path::new(SUITE_DIR).join("python_client.py"))
        .arg(cfg.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PROBE "))
        .unwrap_or_else(|| {
            panic!(
                "no probe result: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let probe: Value = serde_json::from_str(line).unwrap();
    let allowed = probe["allowed"].as_str().unwrap();
    assert!(
        allowed.contains(d.dirs.other_ws.to_str().unwrap()),
        "{allowed}"
    );
    assert!(!allowed.contains(d.dirs.ws.to_str().unwrap()), "{allowed}");
    // Control: `other` reads its own workspace's file.
    let own = &probe["reads"]["secret.txt"];
    assert_eq!(own["is_error"], false, "{own}");
    assert_eq!(own["text"], SECRET);
    // The tester's file, even by its host path, is not `other`'s to read.
    let denied = &probe["reads"][theirs.to_str().unwrap()];
    assert_eq!(denied["is_error"], true, "{denied}");
    assert!(!denied.to_string().contains("TESTER-FILE"), "{denied}");
    drop(server);

    // A user the policy does not name: the server says so and exits.
    let out = {
        use std::os::unix::process::CommandExt;
        Command::new(BIN)
            .args(["mcp", "--socket"])
            .arg(&d.dirs.socket)
            .uid(54999)
            .gid(54999)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("refused WhoAmI"), "{err}");
}
