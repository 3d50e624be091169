//! The Python client's own pytest suite (`clients/python/tests`), which
//! starts this build's `agentjail serve` and talks to it over its real
//! socket with the real client; it also runs `examples/python` (the agent
//! loop on the default policy, the OpenAI Agents SDK and LangChain wrappers).
//!
//! Needs python3 with the client's dependencies, pytest, grpcio-tools (the
//! stubs staleness test), openai-agents and langchain-core: `.ci/run`
//! installs them with `pip install "./clients/python[test,examples]"`.
//! Under CI=true a missing one fails the test; outside CI it is named and
//! the test returns.

#[allow(dead_code)] // only in_ci is used here
mod required;

use std::path::Path;
use std::process::Command;

const INSTALL: &str = "python3 -m pip install \"./clients/python[test,examples]\"";
/// Far above the suite's minute on a calm machine, so that only a hang hits it.
const SUITE_LIMIT_SECS: &str = "900";
const MODULES: &str =
    "grpc, grpc_status, grpc_tools, google.protobuf, pytest, agents, langchain_core";

#[test]
fn python_client_suite_passes_against_the_daemon() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let probe = Command::new("python3")
        .arg("-c")
        .arg(format!("import {MODULES}"))
        .output();
    let missing = match &probe {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(String::from_utf8_lossy(&out.stderr).into_owned()),
        Err(e) => Some(format!("python3: {e}")),
    };
    if let Some(why) = missing {
        assert!(
            !required::in_ci(),
            "the Python client's suite needs python3 with {MODULES}: {why}; .ci/run must run `{INSTALL}`"
        );
        eprintln!("note: skipping the Python client's suite ({why}); install with `{INSTALL}`");
        return;
    }
    // coreutils' timeout bounds a hung suite; it exits 124 then.
    let out = Command::new("timeout")
        .args(["--kill-after=10", SUITE_LIMIT_SECS, "python3"])
        .args([
            "-m",
            "pytest",
            "clients/python/tests",
            "-q",
            "-p",
            "no:cacheprovider",
        ])
        .current_dir(repo)
        .env("AGENTJAIL_BIN", env!("CARGO_BIN_EXE_agentjail"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("OPENAI_AGENTS_DISABLE_TRACING", "1")
        .env_remove("AGENTJAIL_SOCKET")
        .output()
        .expect("run python3 -m pytest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pytest clients/python/tests failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.contains(" passed") && !summary.contains("skipped"),
        "every Python test ran and passed: {summary}"
    );
    eprintln!("pytest: {summary}");
}
