//! Roles: every RPC against each role, over the real daemon. Each agent is
//! a remote caller named by its bearer token (one daemon serves them all);
//! a refused call must be TOOL_NOT_ALLOWED naming the role, and leave the
//! workspace as it was; an allowed one must do its work.

mod common;
#[path = "remote_common/mod.rs"]
mod remote_common;

use agentjail::proto::tool_sandbox_client::ToolSandboxClient;
use agentjail::proto::*;
use common::*;
use remote_common::*;
use tonic::transport::Channel;

/// (agent, its roles, the tools it must be able to call)
const AGENTS: &[(&str, &str, &[&str])] = &[
    (
        "reviewer",
        r#"["reviewer"]"#,
        &["ReadFile", "ListDir", "Glob", "Grep", "Stat"],
    ),
    (
        "editor",
        r#"["reviewer", "writer"]"#,
        &[
            "ReadFile",
            "ListDir",
            "Glob",
            "Grep",
            "Stat",
            "WriteFile",
            "EditFile",
            "MakeDir",
            "Move",
            "Remove",
        ],
    ),
    ("runner", r#"["runner"]"#, &["Run", "Exec"]),
    ("everything", r#"["all"]"#, agentjail::policy::roles::TOOLS),
];

fn token(agent: &str) -> String {
    format!("aj-roles-test-token-{agent}-7f3e9a")
}

fn roles_policy(dirs: &Dirs) -> String {
    let mut p = standard_policy(dirs);
    p.push_str(
        r#"
[roles.reviewer]
tools = ["ReadFile", "ListDir", "Glob", "Grep", "Stat"]

[roles.writer]
tools = ["WriteFile", "EditFile", "MakeDir", "Move", "Remove"]

[roles.runner]
tools = ["Run", "Exec"]

[roles.all]
tools = ["*"]
"#,
    );
    for (agent, roles, _) in AGENTS {
        p.push_str(&format!(
            r#"
[[agents]]
name = "{agent}"
roles = {roles}

[agents.remote]
token_sha256 = ["{digest}"]

[[agents.workspaces]]
name = "main"
path = "{ws}"

[agents.shell]
uid = 65534
gid = 65534

[[agents.shell.commands]]
program = "touch"
"#,
            digest = sha256_hex(token(agent)),
            ws = dirs.ws.display()
        ));
    }
    p
}

/// Calls `tool` as `agent`, on files named after the agent so that the
/// effect of each call can be checked on the host.
async fn call(ch: &Channel, agent: &str, tool: &str) -> Result<(), tonic::Status> {
    let mut c = ToolSandboxClient::new(ch.clone());
    let t = token(agent);
    let t = Some(t.as_str());
    let run = |path: String| ExecRequest {
        argv: vec!["touch".into(), path],
        ..Default::default()
    };
    match tool {
        "ReadFile" => c
            .read_file(with_token(read_req("seed.txt"), t))
            .await
            .map(drop),
        "WriteFile" => {
            let req = write_req(&format!("written-{agent}.txt"), "new\n");
            c.write_file(with_token(req, t)).await.map(drop)
        }
        "EditFile" => {
            let req = edit_req(&format!("edit-{agent}.txt"), "before", "after");
            c.edit_file(with_token(req, t)).await.map(drop)
        }
        "ListDir" => c.list_dir(with_token(list_req(""), t)).await.map(drop),
        "Glob" => c.glob(with_token(glob_req("*.txt"), t)).await.map(drop),
        "Grep" => c.grep(with_token(grep_req("seed"), t)).await.map(drop),
        "Stat" => c.stat(with_token(stat_req("seed.txt"), t)).await.map(drop),
        "MakeDir" => {
            let req = mkdir_req(&format!("dir-{agent}"), false);
            c.make_dir(with_token(req, t)).await.map(drop)
        }
        "Move" => {
            let req = move_req(&format!("mv-{agent}.txt"), &format!("moved-{agent}.txt"));
            c.r#move(with_token(req, t)).await.map(drop)
        }
        "Remove" => {
            let req = remove_req(&format!("rm-{agent}.txt"), false);
            c.remove(with_token(req, t)).await.map(drop)
        }
        "Run" => {
            let req = run(format!("ran-{agent}-run"));
            let r = c.run(with_token(req, t)).await?.into_inner();
            assert!(
                matches!(
                    r.exited,
                    Some(ExecExited {
                        exit_code: Some(0),
                        ..
                    })
                ),
                "{agent} Run: {r:?}"
            );
            Ok(())
        }
        "Exec" => {
            let req = run(format!("ran-{agent}-exec"));
            let mut stream = c.exec(with_token(req, t)).await?.into_inner();
            while stream.message().await?.is_some() {}
            Ok(())
        }
        other => panic!("no call for {other}"),
    }
}

/// Whether `tool`'s effect for `agent` is on the host (for the tools that
/// change something); None for the read-only tools.
fn effect(d: &Dirs, agent: &str, tool: &str) -> Option<bool> {
    let w = |p: String| d.w(&p);
    Some(match tool {
        "WriteFile" => exists(&w(format!("written-{agent}.txt"))),
        "EditFile" => get(&w(format!("edit-{agent}.txt"))).contains("after"),
        "MakeDir" => exists(&w(format!("dir-{agent}"))),
        "Move" => exists(&w(format!("moved-{agent}.txt"))),
        "Remove" => !exists(&w(format!("rm-{agent}.txt"))),
        "Run" => exists(&w(format!("ran-{agent}-run"))),
        "Exec" => exists(&w(format!("ran-{agent}-exec"))),
        _ => return None,
    })
}

#[tokio::test]
async fn every_rpc_against_each_role() {
    require_root("the runner role runs commands in the sandbox");
    let ca = Ca::new("agentjail test CA");
    let r = Remote::start_with(&ca, None, |dirs| {
        dirs.give_ws_to_sandbox();
        roles_policy(dirs)
    })
    .await;
    let dirs = &r.d.dirs;
    put(&dirs.w("seed.txt"), "seed\n");
    for (agent, _, _) in AGENTS {
        put(&dirs.w(&format!("edit-{agent}.txt")), "before\n");
        put(&dirs.w(&format!("mv-{agent}.txt")), "x\n");
        put(&dirs.w(&format!("rm-{agent}.txt")), "x\n");
    }
    let ch = r.connect(None).await.unwrap();
    for (agent, _, allowed) in AGENTS {
        // Every agent may ask who it is, whatever its roles.
        let t = token(agent);
        assert_eq!(&who(&ch, Some(&t)).await.unwrap().agent, agent);
        for tool in agentjail::policy::roles::TOOLS {
            let result = call(&ch, agent, tool).await;
            if allowed.contains(tool) {
                if let Err(s) = &result {
                    panic!("{agent} may call {tool}: {}", describe(s));
                }
                assert_ne!(effect(dirs, agent, tool), Some(false), "{agent} {tool}");
            } else {
                let s = result.expect_err(&format!("{agent} must not call {tool}"));
                assert_eq!(s.code(), tonic::Code::PermissionDenied, "{}", describe(&s));
                assert_eq!(reason_of_status(&s), "TOOL_NOT_ALLOWED", "{}", describe(&s));
                let meta = error_meta(&s);
                let rule = meta.get("rule").cloned().unwrap_or_default();
                assert!(rule.starts_with(&format!("{agent}: roles [")), "{rule}");
                assert!(
                    rule.contains("test.toml:"),
                    "the rule names its file: {rule}"
                );
                assert_eq!(meta.get("tool").map(String::as_str), Some(*tool));
                assert_ne!(
                    effect(dirs, agent, tool),
                    Some(true),
                    "{agent} {tool} happened"
                );
            }
        }
    }
    // The control: the Unix agent has no roles and may call everything.
    let mut c = r.d.client().await;
    ok(c.write_file(write_req("by-tester.txt", "x\n")).await);
    // Refusals are audited as denials with the rule.
    let audit = std::fs::read_to_string(dirs.state_dir.join("audit.jsonl")).unwrap();
    assert!(audit.contains("TOOL_NOT_ALLOWED"), "{audit}");
}

#[tokio::test]
async fn policy_tools_decide_roles() {
    let dirs = Dirs::new();
    std::fs::write(dirs.policy_dir.join("test.toml"), roles_policy(&dirs)).unwrap();
    let explain = |agent: &str, args: &[&str]| {
        std::process::Command::new(BIN)
            .args(["policy", "explain", "--dir"])
            .arg(&dirs.policy_dir)
            .args(["--agent", agent])
            .args(args)
            .output()
            .unwrap()
    };
    let out = explain("reviewer", &["--tool", "WriteFile"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("reviewer: roles [\"reviewer\""), "{text}");
    let out = explain("reviewer", &["--tool", "Grep"]);
    assert_eq!(out.status.code(), Some(0));
    // A write the file globs allow is still refused: no writing tool.
    let out = explain("reviewer", &["--write", "notes.txt"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("roles"), "{text}");
    let out = explain("editor", &["--write", "notes.txt"]);
    assert_eq!(out.status.code(), Some(0));

    // policy test: tool cases, passing and failing.
    let cases = dirs.root.join("roles.cases.toml");
    std::fs::write(
        &cases,
        "policy_dir = \"policies\"\n\n\
         [[case]]\nagent = \"reviewer\"\ntool = \"ReadFile\"\nexpect = \"allow\"\n\n\
         [[case]]\nagent = \"reviewer\"\ntool = \"Run\"\nexpect = \"deny\"\nrule = \"roles\"\n\n\
         [[case]]\nagent = \"runner\"\ntool = \"WriteFile\"\nexpect = \"allow\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["policy", "test"])
        .arg(&cases)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("2 passed, 1 failed"), "{text}");

    // An unknown role or tool is a load error with its position.
    let bad = roles_policy(&dirs).replace(r#"roles = ["runner"]"#, r#"roles = ["runer"]"#);
    std::fs::write(dirs.policy_dir.join("test.toml"), bad).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["policy", "check"])
        .arg(&dirs.policy_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("test.toml:") && text.contains("no role named \"runer\""),
        "{text}"
    );
    let bad = roles_policy(&dirs).replace(r#"tools = ["Run", "Exec"]"#, r#"tools = ["Runn"]"#);
    std::fs::write(dirs.policy_dir.join("test.toml"), bad).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["policy", "check"])
        .arg(&dirs.policy_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("unknown tool \"Runn\""), "{text}");
}

#[test]
fn the_lint_notes_unused_roles_and_commands_without_a_shell() {
    let dirs = Dirs::new();
    let policy = roles_policy(&dirs)
        + "\n[roles.unused]\ntools = [\"Stat\"]\n\n[[agents]]\nname = \"no-shell\"\nroles = [\"runner\"]\n\n[[agents.workspaces]]\nname = \"main\"\npath = \"/tmp\"\n";
    std::fs::write(dirs.policy_dir.join("test.toml"), policy).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["policy", "check"])
        .arg(&dirs.policy_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("role \"unused\" is given to no agent"),
        "{text}"
    );
    assert!(
        text.contains("agent \"no-shell\": its roles grant Run/Exec"),
        "{text}"
    );
    // The reviewer has a shell table its roles never let it use.
    assert!(
        text.contains("agent \"reviewer\": it has an [agents.shell] table"),
        "{text}"
    );
    assert!(
        !text.contains("role \"reviewer\" is given to no agent"),
        "{text}"
    );
}

/// The session RPCs run commands, so they follow the `Run` tool: an agent
/// whose roles lack it gets TOOL_NOT_ALLOWED for each (and no session is
/// opened); one whose roles have it opens a session, starts a process in
/// it and closes it.
#[tokio::test]
async fn session_rpcs_follow_the_run_tool() {
    require_root("sessions are sandboxes");
    let ca = Ca::new("agentjail test CA");
    let r = Remote::start_with(&ca, None, |dirs| {
        dirs.give_ws_to_sandbox();
        roles_policy(dirs)
    })
    .await;
    let ch = r.connect(None).await.unwrap();
    for (agent, _, allowed) in AGENTS {
        let t = token(agent);
        let t = Some(t.as_str());
        let mut c = ToolSandboxClient::new(ch.clone());
        let opened = c
            .open_session(with_token(OpenSessionRequest::default(), t))
            .await;
        if allowed.contains(&"Run") {
            let id = opened
                .unwrap_or_else(|s| panic!("{agent} may open a session: {}", describe(&s)))
                .into_inner()
                .session
                .unwrap()
                .session_id;
            let started = c
                .start_process(with_token(
                    StartProcessRequest {
                        session_id: id.clone(),
                        argv: vec!["touch".into(), format!("in-session-{agent}")],
                        ..Default::default()
                    },
                    t,
                ))
                .await;
            assert!(started.is_ok(), "{agent}: {started:?}");
            let closed = c
                .close_session(with_token(CloseSessionRequest { session_id: id }, t))
                .await;
            assert!(closed.is_ok(), "{agent}: {closed:?}");
            continue;
        }
        let s = opened.expect_err(&format!("{agent} must not open a session"));
        assert_eq!(reason_of_status(&s), "TOOL_NOT_ALLOWED", "{}", describe(&s));
        let listed = c
            .list_sessions(with_token(ListSessionsRequest::default(), t))
            .await
            .expect_err(&format!("{agent} must not list sessions"));
        assert_eq!(reason_of_status(&listed), "TOOL_NOT_ALLOWED");
        let start = c
            .start_process(with_token(
                StartProcessRequest {
                    session_id: "s-none".into(),
                    argv: vec!["touch".into(), format!("in-session-{agent}")],
                    ..Default::default()
                },
                t,
            ))
            .await
            .expect_err(&format!("{agent} must not start a process"));
        assert_eq!(reason_of_status(&start), "TOOL_NOT_ALLOWED");
        assert!(!exists(&r.d.dirs.w(&format!("in-session-{agent}"))));
    }
}
