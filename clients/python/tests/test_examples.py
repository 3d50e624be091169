"""examples/python: the scripted agent loop against a daemon on the shipped
default policy, and the OpenAI Agents SDK and LangChain wrappers called
through each SDK's own tool interface (no model, no network)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import HERE, REPO, make_daemon

EXAMPLES = REPO / "examples" / "python"
sys.path.insert(0, str(EXAMPLES))


@pytest.fixture(scope="module")
def default_daemon():
    """`agentjail serve` on policies/ (the shipped default policy)."""
    d = make_daemon("ajpy-default-", policy_dir=REPO / "policies")
    d.start()
    d.wait_serving()
    yield d
    d.stop()
    shutil.rmtree(d.root, ignore_errors=True)


def test_agent_loop_runs_green_on_the_default_policy(default_daemon):
    env = {**os.environ, "AGENTJAIL_SOCKET": str(default_daemon.socket), "PYTHONPATH": str(HERE.parent / "src")}
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "agent_loop.py")], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    rounds = out.stdout.count("$ python3 -m unittest")
    assert rounds == 3, f"two failing rounds, each fixed, then green:\n{out.stdout}"
    assert "green: every test passes" in out.stdout
    workspace = default_daemon.root / "state" / "workspaces" / "local"
    assert not [p for p in workspace.iterdir() if p.name.startswith("agent-loop-")], "the loop cleans up"


def test_openai_agents_tools_through_the_sdk(client, daemon, uniq, monkeypatch):
    monkeypatch.setenv("OPENAI_AGENTS_DISABLE_TRACING", "1")
    from agents import FunctionTool
    from agents.tool_context import ToolContext

    import openai_agents_tools

    tools = {t.name: t for t in openai_agents_tools.agentjail_tools(client)}
    assert set(tools) == {"read_file", "write_file", "edit_file", "list_directory", "run_command"}
    assert all(isinstance(t, FunctionTool) for t in tools.values())
    assert tools["edit_file"].params_json_schema["required"] == ["path", "old", "new"]

    def invoke(name: str, **args: object) -> object:
        raw = json.dumps(args)
        ctx = ToolContext(context=None, tool_name=name, tool_call_id="call-1", tool_arguments=raw)
        return asyncio.run(tools[name].on_invoke_tool(ctx, raw))

    assert "wrote 6 bytes" in invoke("write_file", path=f"{uniq}/a.py", content="x = 1\n")
    assert daemon.w(f"{uniq}/a.py").read_text() == "x = 1\n"
    assert "+x = 2" in invoke("edit_file", path=f"{uniq}/a.py", old="x = 1", new="x = 2")
    assert invoke("read_file", path=f"{uniq}/a.py") == "x = 2\n"
    assert f"{uniq}/a.py" in str(invoke("list_directory", path=uniq))
    ran = invoke("run_command", command="cat a.py; exit 3", cwd=uniq)
    assert ran.startswith("exited with status 3") and "x = 2" in ran
    denied = invoke("write_file", path=f"{uniq}/.env", content="TOKEN=x")
    assert "POLICY_DENIED" in denied, "the refusal reaches the model as text"
    assert not daemon.w(f"{uniq}/.env").exists()


def test_langchain_tools_through_the_sdk(client, daemon, uniq):
    from langchain_core.tools import BaseTool

    import langchain_tools

    tools = {t.name: t for t in langchain_tools.agentjail_tools(client)}
    assert set(tools) == {"read_file", "write_file", "edit_file", "run_command"}
    assert all(isinstance(t, BaseTool) for t in tools.values())
    assert set(tools["edit_file"].args) == {"path", "old", "new"}
    assert "wrote" in tools["write_file"].invoke({"path": f"{uniq}/b.txt", "content": "hello\n"})
    assert daemon.w(f"{uniq}/b.txt").read_text() == "hello\n"
    assert tools["read_file"].invoke({"path": f"{uniq}/b.txt"}) == "hello\n"
    assert "+bye" in tools["edit_file"].invoke({"path": f"{uniq}/b.txt", "old": "hello", "new": "bye"})
    ran = tools["run_command"].invoke({"command": "cat b.txt", "cwd": uniq})
    assert ran.startswith("exited with status 0") and "bye" in ran
    # A tool call as a model sends it: the ToolMessage carries the refusal.
    message = tools["read_file"].invoke(
        {"type": "tool_call", "name": "read_file", "id": "call-2", "args": {"path": "../../etc/passwd"}}
    )
    assert "PATH_OUTSIDE_WORKSPACE" in message.content and message.tool_call_id == "call-2"


def test_the_session_walkthrough_runs_on_the_default_policy(default_daemon):
    """Needs the daemon's sessions (issue 13)."""
    env = {**os.environ, "AGENTJAIL_SOCKET": str(default_daemon.socket), "PYTHONPATH": str(HERE.parent / "src")}
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "session_dev_server.py")], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "$ pwd; echo $PORT -> ['/workspace/session-demo-" in out.stdout and "/site', '8000']" in out.stdout
    assert "the server answered: 'hello from the dev server'" in out.stdout, out.stdout
    assert '"GET /index.html' in out.stdout and "session closed (closed)" in out.stdout, out.stdout
    workspace = default_daemon.root / "state" / "workspaces" / "local"
    assert not [p for p in workspace.iterdir() if p.name.startswith("session-demo-")], "the example cleans up"
