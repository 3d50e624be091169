//! Discovery: WhoAmI says what the agent may do (workspaces with their
//! globs, file limits, commands), `agentjail call whoami` prints it, and a
//! refused command names its rule and what is allowed instead.

#[path = "shell_common/mod.rs"]
mod shell_common;

use agentjail::proto::*;
use shell_common::*;
use tonic_types::StatusExt;

fn small_policy() -> Policy {
    Policy {
        allow_shell: false,
        commands: vec![
            ("echo".into(), Vec::new()),
            ("git".into(), vec!["push".into()]),
        ],
        env: vec!["FOO".into(), "AJ_*".into()],
        ..Policy::default()
    }
}

#[tokio::test]
async fn whoami_lists_workspaces_limits_and_commands() {
    let d = ShellDaemon::start_with(small_policy()).await;
    let mut c = d.client().await;
    let who = c.who_am_i(WhoAmIRequest {}).await.unwrap().into_inner();
    let main = &who.workspaces[0];
    assert_eq!(main.name, "main");
    assert_eq!(main.access, "read-write");
    assert_eq!(main.sandbox_path, "/workspace");
    assert!(!main.read.is_empty(), "{main:?}");
    assert_eq!(who.workspaces[1].access, "read-only");
    let caps = who.capabilities.expect("capabilities");
    let files = caps.file_limits.expect("file limits");
    assert!(files.max_read_bytes > 0 && files.max_write_bytes > 0);
    let cmds = caps.commands.expect("commands");
    assert!(cmds.allowed);
    assert!(!cmds.shell);
    assert!(!cmds.network);
    let programs: Vec<&str> = cmds.programs.iter().map(|p| p.program.as_str()).collect();
    assert_eq!(programs, ["echo", "git"]);
    assert_eq!(cmds.programs[1].deny_args, ["push"]);
    assert!(cmds.programs[0].resolved.ends_with("/echo"), "{cmds:?}");
    assert_eq!(cmds.env, ["FOO", "AJ_*"]);
    assert_eq!(cmds.default_timeout_ms, 30_000);
    assert_eq!(cmds.max_timeout_ms, 120_000);
    assert_eq!(cmds.memory_bytes, 512 << 20);
    assert_eq!(cmds.pids, 256);
    assert_eq!(cmds.workspace_mount, "/workspace");

    let out = std::process::Command::new(BIN)
        .args(["call", "--socket"])
        .arg(&d.dirs.socket)
        .arg("whoami")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("commands see it at /workspace"), "{text}");
    assert!(text.contains("program git"), "{text}");
    assert!(text.contains("refused arguments: push"), "{text}");
    assert!(text.contains("shell strings: no"), "{text}");
    assert!(text.contains("env names: FOO  AJ_*"), "{text}");
}

#[tokio::test]
async fn a_refused_command_names_the_rule_and_the_alternatives() {
    let d = ShellDaemon::start_with(small_policy()).await;
    for (req, rule) in [
        (
            argv_req(&["cat", "/etc/hostname"]),
            "no shell.commands entry allows",
        ),
        (sh_req("echo hi"), "shell.allow_shell is false"),
    ] {
        let status = d.run(req).await.expect_err("refused");
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "POLICY_DENIED");
        assert!(info.metadata["rule"].contains(rule), "{info:?}");
        assert_eq!(info.metadata["allowed_programs"], "echo,git");
        assert_eq!(info.metadata["allow_shell"], "false");
        let msg = status.message();
        assert!(msg.contains(rule), "{msg}");
        assert!(msg.contains("allowed programs: echo, git"), "{msg}");
        assert!(msg.contains("shell strings are not"), "{msg}");
    }
    // Control: an allowed program runs.
    let ran = d.argv(&["echo", "ok"]).await;
    assert_eq!(ran.code(), Some(0), "{ran:?}");
}
