//! Budgets and role defaults against the real daemon: command time is
//! charged after a command ends, the next command is refused with
//! RESOURCE_EXHAUSTED / QUOTA_EXCEEDED and a RetryInfo delay, and admitted
//! again once the window frees enough; bytes written are checked up front;
//! a role's limits apply to its agents unless the agent sets its own; and
//! WhoAmI shows the limits in force and what has been used.

mod common;

use agentjail::proto::*;
use common::*;
use std::time::Duration;
use tonic_types::StatusExt;

/// The tester may run shell strings (uid 65534 in a workspace it owns).
const SHELL: &str = r#"
[agents.shell]
allow_shell = true
uid = 65534
gid = 65534
"#;

fn shell_req(script: &str) -> ExecRequest {
    ExecRequest {
        shell: script.into(),
        ..Default::default()
    }
}

/// How a Run ended; panics with the status if it was refused.
#[track_caller]
fn ran(r: Result<tonic::Response<ExecResult>, tonic::Status>) -> ExecExited {
    match r {
        Ok(r) => r
            .into_inner()
            .exited
            .expect("a Run result says how it ended"),
        Err(s) => panic!("expected the command to run, got {}", describe(&s)),
    }
}

fn retry_delay(s: &tonic::Status) -> Duration {
    s.get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .unwrap_or_else(|| panic!("a RetryInfo delay: {}", describe(s)))
}

async fn start(extra: &str, roles: &str) -> Daemon {
    start_with_config(extra, roles, "").await
}

async fn start_with_config(extra: &str, roles: &str, config: &str) -> Daemon {
    let dirs = Dirs::new();
    dirs.give_ws_to_sandbox();
    let policy = standard_policy(&dirs).replacen(
        "name = \"tester\"\n",
        &format!("name = \"tester\"\nroles = {roles}\n"),
        1,
    ) + SHELL
        + extra;
    Daemon::start_with(dirs, &policy, config).await
}

/// The samples of `name` on the daemon's `/metrics`, as whole lines.
fn metric_lines(addr: &str, name: &str) -> Vec<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the metrics address");
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .map(String::from)
        .collect()
}

fn usage_of<'a>(w: &'a WhoAmIResponse, limit: &str) -> &'a BudgetUsage {
    let usage = w.usage.as_ref().expect("WhoAmI carries usage");
    usage
        .budgets
        .iter()
        .find(|b| b.limit == limit)
        .unwrap_or_else(|| panic!("no {limit} in {usage:?}"))
}

#[tokio::test]
async fn a_wall_time_budget_across_commands_refuses_with_retry_info_then_recovers() {
    let d = start(
        "\n[agents.budgets]\nwindow_seconds = 3\ncommand_wall_seconds = 1\n",
        "[]",
    )
    .await;
    let mut c = d.client().await;
    // Commands are admitted while the agent is under its budget and charged
    // when they end: the last one admitted overruns it.
    let mut admitted = 0;
    let refused = loop {
        match c.run(shell_req("sleep 0.3")).await {
            Ok(r) => assert_eq!(r.into_inner().exited.unwrap().exit_code, Some(0)),
            Err(s) => break s,
        }
        admitted += 1;
        assert!(admitted < 20, "the budget never ran out");
    };
    assert!(admitted >= 1, "the first command is under budget");
    assert_eq!(
        agentjail::error::reason_of(&refused).as_deref(),
        Some("QUOTA_EXCEEDED")
    );
    let used: u64 = error_meta(&refused)["used"].parse().unwrap();
    assert!(
        used >= 1000,
        "refused only once the budget is used: {}",
        describe(&refused)
    );
    let who = ok(c.who_am_i(WhoAmIRequest {}).await);
    let wall = usage_of(&who, "budgets.command_wall_seconds");
    assert!(wall.used >= 1000 && wall.max == 1000, "{wall:?}");
    assert_eq!((wall.unit.as_str(), wall.window_seconds), ("ms", 3));

    let third = shell_req("touch /workspace/third");
    let s = assert_reason(c.run(third.clone()).await, "QUOTA_EXCEEDED");
    assert_eq!(s.code(), tonic::Code::ResourceExhausted);
    let meta = error_meta(&s);
    assert_eq!(meta["limit"], "budgets.command_wall_seconds");
    assert!(
        meta["rule"].contains("tester: budgets.command_wall_seconds = 1.0 s per 3 s (agent)"),
        "{}",
        describe(&s)
    );
    let delay = retry_delay(&s);
    assert!(
        // The window, and at most 1/64 of it more (budget buckets).
        delay > Duration::ZERO && delay <= Duration::from_millis(3050),
        "{delay:?}"
    );
    assert!(!exists(&d.dirs.w("third")), "a refused command did not run");
    // Exec is held to the same budget.
    let s = c
        .exec(shell_req("touch /workspace/third"))
        .await
        .expect_err("Exec over budget is refused");
    assert_eq!(
        agentjail::error::reason_of(&s).as_deref(),
        Some("QUOTA_EXCEEDED")
    );

    // Once the first command's charge has left the window, it runs.
    tokio::time::sleep(delay).await;
    let r = ran(c.run(third).await);
    assert_eq!(r.exit_code, Some(0));
    assert!(exists(&d.dirs.w("third")));
}

#[tokio::test]
async fn a_command_that_overruns_its_cpu_budget_is_charged_and_the_next_is_refused() {
    let d = start(
        "\n[agents.budgets]\nwindow_seconds = 600\ncommand_cpu_seconds = 1\n",
        "[]",
    )
    .await;
    let mut c = d.client().await;
    let burn = "python3 -c 'import time\nwhile time.process_time() < 1.2: pass'";
    let r = ran(c.run(shell_req(burn)).await);
    assert!(r.cpu_time_ms >= 1000, "the command used its CPU: {r:?}");
    let who = ok(c.who_am_i(WhoAmIRequest {}).await);
    assert!(usage_of(&who, "budgets.command_cpu_seconds").used >= 1000);
    let s = assert_reason(c.run(shell_req("true")).await, "QUOTA_EXCEEDED");
    assert_eq!(error_meta(&s)["limit"], "budgets.command_cpu_seconds");
    let delay = retry_delay(&s);
    assert!(
        delay > Duration::from_secs(500) && delay <= Duration::from_millis(609_400),
        "until the charge leaves the 600 s window: {delay:?}"
    );
    // File tools are not held to command budgets.
    ok(c.write_file(write_req("still.txt", "ok\n")).await);
}

const ROLE_CI: &str = r#"
[roles.ci]
tools = ["*"]

[roles.ci.budgets]
window_seconds = 60
write_bytes = 10

[roles.ci.concurrency]
commands = 1

[roles.ci.rate_limits]
read_per_second = 100
"#;

#[tokio::test]
async fn role_defaults_apply_the_agents_own_keys_win_and_whoami_shows_both() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{port}");
    let d = start_with_config(
        &format!("\n[agents.rate_limits]\nread_per_second = 50\n{ROLE_CI}"),
        r#"["ci"]"#,
        &format!("metrics_address = \"{metrics}\""),
    )
    .await;
    let mut c = d.client().await;
    let who = ok(c.who_am_i(WhoAmIRequest {}).await);
    let limits = who
        .capabilities
        .as_ref()
        .and_then(|c| c.limits.clone())
        .expect("WhoAmI carries the limits");
    assert_eq!(limits.write_bytes, 10);
    assert_eq!(limits.budget_window_seconds, 60);
    assert_eq!(limits.concurrent_commands, 1);
    assert_eq!(limits.read_per_second, 50, "the agent's own key wins");
    assert_eq!(limits.sources["budgets.write_bytes"], "role \"ci\"");
    assert_eq!(limits.sources["concurrency.commands"], "role \"ci\"");
    assert_eq!(limits.sources["rate_limits.read_per_second"], "agent");
    assert!(
        limits.concurrent_file_calls > 0,
        "unset: the daemon's default"
    );

    // The role's write budget holds: 8 of 10 bytes, then 8 more do not fit.
    ok(c.write_file(write_req("a.txt", "12345678")).await);
    let who = ok(c.who_am_i(WhoAmIRequest {}).await);
    let used = usage_of(&who, "budgets.write_bytes");
    assert_eq!((used.used, used.max, used.unit.as_str()), (8, 10, "bytes"));
    let s = assert_reason(
        c.write_file(write_req("b.txt", "12345678")).await,
        "QUOTA_EXCEEDED",
    );
    assert!(
        error_meta(&s)["rule"].contains("budgets.write_bytes = 10 bytes per 60 s (role \"ci\")"),
        "{}",
        describe(&s)
    );
    let delay = retry_delay(&s);
    assert!(
        delay > Duration::from_secs(50) && delay <= Duration::from_millis(60_940),
        "{delay:?}"
    );
    assert!(!exists(&d.dirs.w("b.txt")), "nothing was written");
    // What still fits is written; EditFile counts the text it inserts.
    ok(c.write_file(write_req("c.txt", "1")).await);
    ok(c.edit_file(edit_req("c.txt", "1", "2")).await);
    assert_reason(
        c.edit_file(edit_req("c.txt", "2", "3")).await,
        "QUOTA_EXCEEDED",
    );
    assert_eq!(get(&d.dirs.w("c.txt")), "2");
    // A write larger than the whole budget can never fit: not retryable.
    let s = assert_reason(
        c.write_file(write_req("big.txt", "12345678901")).await,
        "LIMIT_EXCEEDED",
    );
    assert!(s.get_details_retry_info().is_none(), "{}", describe(&s));
    // Reads are not counted.
    ok(c.read_file(read_req("a.txt")).await);
    // Each refusal is counted by agent and limit.
    let lines = metric_lines(&metrics, "agentjail_quota_exceeded_total");
    assert!(
        lines.iter().any(|l| l.contains("agent=\"tester\"")
            && l.contains("limit=\"budgets.write_bytes\"")
            && l.ends_with(" 3")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_roles_concurrency_cap_holds_for_its_agents_commands() {
    let d = start(ROLE_CI, r#"["ci"]"#).await;
    let mut c = d.client().await;
    let mut first = c
        .exec(shell_req("echo started; sleep 30"))
        .await
        .expect("the first command starts")
        .into_inner();
    // Proves the first command is running before the second is asked for.
    let event = first.message().await.unwrap().expect("an event");
    assert!(
        matches!(event.event, Some(exec_event::Event::Started(_))),
        "{event:?}"
    );
    let who = ok(c.who_am_i(WhoAmIRequest {}).await);
    assert_eq!(who.usage.as_ref().unwrap().running_commands, 1);
    let s = assert_reason(
        c.run(shell_req("touch /workspace/second")).await,
        "TOO_MANY_CONCURRENT_CALLS",
    );
    assert_eq!(error_meta(&s)["max"], "1", "{}", describe(&s));
    assert!(!exists(&d.dirs.w("second")));
    drop(first);
}
