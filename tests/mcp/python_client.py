"""Drives `agentjail mcp` with the official MCP Python SDK (`mcp` on PyPI),
over stdio or streamable HTTP, and checks every tool family against the host.

Run by tests/mcp.rs with one JSON argument:
  {"transport": "stdio", "command": ..., "args": [...], "env": {...}}
  or {"transport": "http", "url": "http://127.0.0.1:PORT/mcp"}
plus "ws" (host path of the default workspace), "ro" (a read-only
workspace's host path), "outside" (a host directory beside them) and
"secret" (the content of outside/secret.txt, which must never come back);
"suite": "sessions" runs the session tools' checks instead.
Prints one "ok: ..." line per check; any failure raises (exit status 1).
"""

import asyncio
import base64
import json
import os
import random
import re
import sys
import traceback

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

FILESYSTEM_TOOLS = {
    "read_text_file", "read_media_file", "read_multiple_files", "write_file",
    "edit_file", "create_directory", "list_directory", "list_directory_with_sizes",
    "directory_tree", "move_file", "search_files", "get_file_info",
    "list_allowed_directories",
}
# A 1x1 transparent PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def text_of(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


class Checks:
    def __init__(self, session, cfg):
        self.s = session
        self.cfg = cfg
        self.ws = cfg["ws"]

    async def ok(self, tool, args):
        r = await self.s.call_tool(tool, args)
        assert not r.is_error, f"{tool}({args}) failed: {text_of(r)}"
        return r

    async def refused(self, tool, args, reason):
        r = await self.s.call_tool(tool, args)
        t = text_of(r)
        assert r.is_error, f"{tool}({args}) should have been refused, got: {t}"
        assert reason in t, f"{tool}({args}): expected reason {reason} in: {t}"
        return t

    def host(self, rel):
        return os.path.join(self.ws, rel)

    async def run(self):
        tools = (await self.s.list_tools()).tools
        names = {t.name for t in tools}
        missing = (FILESYSTEM_TOOLS | {"grep", "run_command"}) - names
        assert not missing, f"missing tools: {missing}"
        for t in tools:
            assert t.annotations is not None, f"{t.name} has no annotations"
            hints = t.annotations.model_dump(by_alias=True)
            for hint in ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"):
                assert hints.get(hint) is not None, (t.name, hint, hints)
            assert t.input_schema["type"] == "object", t.name
        print(f"ok: tools/list gives {len(tools)} tools, each annotated")
        # `agentjail tools --format mcp` prints the same definitions.
        printed = {t["name"]: t for t in self.cfg["printed_tools"]["tools"]}
        assert set(printed) == names, (set(printed) ^ names)
        for t in tools:
            p = printed[t.name]
            assert p["inputSchema"] == t.input_schema and p["description"] == t.description, t.name
        print("ok: `agentjail tools --format mcp` prints the tools the server lists")

        # Writes land in the workspace on the host.
        await self.ok("write_file", {"path": "notes/plan.md", "content": "step one\nstep two\nstep three\n"})
        with open(self.host("notes/plan.md")) as f:
            assert f.read() == "step one\nstep two\nstep three\n"
        print("ok: write_file creates the file (and its parent) in the workspace")

        # The three path forms read the same file.
        for form in ("notes/plan.md", "/workspace/notes/plan.md", self.host("notes/plan.md")):
            t = text_of(await self.ok("read_text_file", {"path": form}))
            assert t.startswith("step one\nstep two\nstep three"), (form, t)
        t = text_of(await self.ok("read_text_file", {"path": "notes/plan.md", "head": 1}))
        assert t.strip() == "step one", t
        t = text_of(await self.ok("read_text_file", {"path": "notes/plan.md", "tail": 1}))
        assert t.strip() == "step three", t
        print("ok: read_text_file reads relative, /workspace/ and host paths; head and tail")

        t = text_of(await self.ok("read_multiple_files", {"paths": ["notes/plan.md", "nope.txt"]}))
        assert "step two" in t and "nope.txt: Error" in t and "NOT_FOUND" in t, t
        print("ok: read_multiple_files reports a missing file beside the others")

        # Edits: a dry run changes nothing, the real edit does.
        edit = {"path": "notes/plan.md", "edits": [{"oldText": "step two", "newText": "step 2"}]}
        t = text_of(await self.ok("edit_file", {**edit, "dryRun": True}))
        assert "-step two" in t and "+step 2" in t, t
        with open(self.host("notes/plan.md")) as f:
            assert "step two" in f.read(), "a dry run wrote the file"
        t = text_of(await self.ok("edit_file", edit))
        assert "+step 2" in t, t
        with open(self.host("notes/plan.md")) as f:
            assert "step 2" in f.read()
        await self.refused("edit_file", edit, "MATCH_NOT_FOUND")
        print("ok: edit_file dry run shows the diff and writes nothing; the edit applies")

        # Directories.
        await self.ok("create_directory", {"path": "src/pkg"})
        assert os.path.isdir(self.host("src/pkg"))
        await self.ok("write_file", {"path": "src/pkg/mod.py", "content": "def answer():\n    return 42\n"})
        t = text_of(await self.ok("list_directory", {"path": "."}))
        assert "[DIR] notes" in t and "[DIR] src" in t, t
        t = text_of(await self.ok("list_directory_with_sizes", {"path": "src/pkg", "sortBy": "size"}))
        assert "[FILE] mod.py" in t and "Total: 1 files" in t, t
        tree = json.loads(text_of(await self.ok("directory_tree", {"path": "src"})))
        assert tree == [{"name": "pkg", "type": "directory",
                         "children": [{"name": "mod.py", "type": "file"}]}], tree
        tree = json.loads(text_of(await self.ok("directory_tree", {"path": ".", "excludePatterns": ["src"]})))
        assert [n["name"] for n in tree] == ["notes"], tree
        print("ok: create_directory, list_directory(_with_sizes), directory_tree with excludes")

        await self.ok("move_file", {"source": "src/pkg/mod.py", "destination": "src/pkg/core.py"})
        assert os.path.exists(self.host("src/pkg/core.py")) and not os.path.exists(self.host("src/pkg/mod.py"))
        await self.refused("move_file", {"source": "src/pkg/core.py", "destination": "notes/plan.md"}, "ALREADY_EXISTS")
        t = text_of(await self.ok("search_files", {"path": ".", "pattern": "**/*.py"}))
        assert t.strip() == "src/pkg/core.py", t
        t = text_of(await self.ok("get_file_info", {"path": "src/pkg/core.py"}))
        assert "type: file" in t and "size: 28 " in t, t
        t = text_of(await self.ok("list_allowed_directories", {}))
        assert self.ws in t and self.cfg["ro"] in t and "read-only" in t, t
        print("ok: move_file, search_files, get_file_info, list_allowed_directories")

        t = text_of(await self.ok("grep", {"pattern": "return \\d+", "path": "src"}))
        assert "src/pkg/core.py:2:    return 42" in t, t
        t = text_of(await self.ok("grep", {"pattern": "answer", "outputMode": "files_with_matches"}))
        assert t.strip() == "src/pkg/core.py", t
        print("ok: grep gives matching lines and files")

        with open(self.host("pixel.png"), "wb") as f:
            f.write(PNG)
        r = await self.ok("read_media_file", {"path": "pixel.png"})
        img = r.content[0]
        assert img.type == "image" and img.mime_type == "image/png" and base64.b64decode(img.data) == PNG, img
        print("ok: read_media_file returns the image base64-encoded with its MIME type")

        # Refusals come back as tool errors with the reason; nothing happens.
        t = await self.refused("read_text_file", {"path": "../outside/secret.txt"}, "PATH_OUTSIDE_WORKSPACE")
        assert self.cfg["secret"] not in t
        t = await self.refused("read_text_file", {"path": "/workspace/../outside/secret.txt"}, "PATH_OUTSIDE_WORKSPACE")
        assert self.cfg["secret"] not in t
        t = await self.refused("read_text_file", {"path": os.path.join(self.cfg["outside"], "secret.txt")}, "INVALID_ARGUMENT")
        assert self.cfg["secret"] not in t
        ro_file = os.path.join(self.cfg["ro"], "new.txt")
        await self.refused("write_file", {"path": ro_file, "content": "x"}, "READ_ONLY_WORKSPACE")
        assert not os.path.exists(ro_file), "a refused write created the file"
        await self.refused("write_file", {"path": "a.txt", "content": "x", "mode": "append"}, "INVALID_ARGUMENT")
        assert not os.path.exists(self.host("a.txt"))
        await self.refused("no_such_tool", {}, "INVALID_ARGUMENT")
        print("ok: refusals are isError results naming the reason; nothing was read or written")

        # Commands.
        t = text_of(await self.ok("run_command", {"argv": ["cat", "/workspace/notes/plan.md"]}))
        assert t.startswith("exit status 0") and "step 2" in t, t
        t = text_of(await self.ok("run_command", {"command": "echo abc | tr b x; exit 3"}))
        assert t.startswith("exit status 3") and "axc" in t, t
        t = text_of(await self.ok("run_command", {"argv": ["pwd"], "cwd": "src"}))
        assert "/workspace/src" in t, t
        t = text_of(await self.ok("run_command", {"argv": ["seq", "1", "300000"]}))
        assert "bytes cut here" in t and "\n1\n2\n" in t and "300000\n--- stderr: empty" in t and len(t) < 40000, t[-300:]
        t = text_of(await self.ok("run_command", {"argv": ["sleep", "5"], "timeout": 0.5}))
        assert "timed out" in t, t
        await self.refused("run_command", {"argv": ["perl", "-e", "1"]}, "POLICY_DENIED")
        await self.refused("run_command", {"argv": ["echo"], "command": "echo"}, "INVALID_ARGUMENT")
        print("ok: run_command gives exit status, head and tail with the cut, timeouts and refusals")
        await self.cancelled_command_is_killed()

    async def cancelled_command_is_killed(self):
        marker = f"{60 + random.random():.6f}"
        task = asyncio.ensure_future(self.s.call_tool("run_command", {"argv": ["sleep", marker]}))
        assert await wait_until(lambda: sleepers(marker)), "the command never started"
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        assert await wait_until(lambda: not sleepers(marker)), "a cancelled command still runs"
        # The session still works after the cancellation.
        t = text_of(await self.ok("run_command", {"argv": ["echo", "after"]}))
        assert "after" in t, t
        print("ok: cancelling a run_command call kills the command")


SESSION_TOOLS = {"exec_command", "write_stdin", "start_process", "read_process_output", "kill_process"}


def session_id_in(text):
    """The id an exec_command answer gives a command that still runs."""
    m = re.search(r"Process running with session ID (\d+)", text)
    assert m, f"no running session ID in: {text}"
    return int(m.group(1))


class SessionChecks(Checks):
    """The session tools, Codex-shaped: a command on a terminal answers
    within its yield time, and the ID it gives is written to and polled."""

    async def run(self):
        names = {t.name for t in (await self.s.list_tools()).tools}
        assert SESSION_TOOLS <= names, f"missing: {SESSION_TOOLS - names}"
        print("ok: tools/list offers the session tools")

        t = text_of(await self.ok("exec_command", {"cmd": "echo hi; echo oops >&2; exit 3"}))
        assert "Process exited with code 3" in t and "Output:\nhi\n" in t and "--- stderr\noops" in t, t
        assert t.startswith("Wall time: "), t
        print("ok: exec_command answers a finished command with its exit code and output")

        await self.ok("create_directory", {"path": "work/sub"})
        t = text_of(await self.ok("exec_command", {"cmd": "pwd", "workdir": "/workspace/work/sub"}))
        assert "Output:\n/workspace/work/sub\n" in t, t
        t = text_of(await self.ok("exec_command", {"cmd": "seq 1 100000", "max_output_tokens": 100}))
        assert "Process exited with code 0" in t and "bytes cut here" in t, t[-300:]
        assert "\n1\n2\n" in t and t.rstrip().endswith("100000") and len(t) < 1000, t
        print("ok: exec_command runs in workdir; max_output_tokens keeps the head and tail")

        # Pipes: cat echoes what write_stdin gives it; kill_process ends it.
        t = text_of(await self.ok("exec_command", {"cmd": "cat", "yield_time_ms": 500}))
        cat = session_id_in(t)
        t = text_of(await self.ok("write_stdin", {"session_id": cat, "chars": "ping\n", "yield_time_ms": 2000}))
        assert "Output:\nping\n" in t, t
        t = text_of(await self.ok("write_stdin", {"session_id": cat, "yield_time_ms": 100}))
        assert "Output:\n" in t and "ping" not in t, f"an empty write only polls new output: {t}"
        t = text_of(await self.ok("kill_process", {"process_id": cat}))
        assert "killed by signal 9" in t, t
        print("ok: write_stdin round trip through cat; an empty write polls; kill_process kills")

        # A background process, read incrementally and by offset.
        marker = f"{300 + random.random():.6f}"
        t = text_of(await self.ok("start_process", {
            "command": f"echo started; echo second >&2; exec sleep {marker}"}))
        m = re.search(r"Started process (\d+) \(pid (\d+)", t)
        assert m, t
        bg = int(m.group(1))
        assert await wait_until(lambda: sleepers(marker)), "the background process never started"
        t = text_of(await self.ok("read_process_output", {"process_id": bg, "wait": 5}))
        assert "running" in t and t.endswith("\nstarted\n") and "next offset 8" in t, t
        t = text_of(await self.ok("read_process_output", {"process_id": bg}))
        assert t.endswith("\n") and "nothing new yet" in t, t
        t = text_of(await self.ok("read_process_output", {"process_id": bg, "stream": "stderr", "wait": 5}))
        assert t.endswith("\nsecond\n"), t
        t = text_of(await self.ok("read_process_output", {"process_id": bg, "offset": 0}))
        assert t.endswith("\nstarted\n") and "bytes 0-8" in t, t
        t = text_of(await self.ok("kill_process", {"process_id": bg, "signal": "TERM"}))
        assert "killed by signal 15" in t, t
        assert await wait_until(lambda: not sleepers(marker)), "a killed process still runs"
        print("ok: start_process, read_process_output by offset and stream, kill_process TERM")

        # A server started in the session answers another command of it.
        t = text_of(await self.ok("start_process", {"argv": ["python3", "-m", "http.server", "8765", "--bind", "127.0.0.1"]}))
        server = int(re.search(r"Started process (\d+)", t).group(1))
        probe = (
            "import time, urllib.request\n"
            "for _ in range(100):\n"
            "    try:\n"
            "        print(urllib.request.urlopen('http://127.0.0.1:8765/').status); break\n"
            "    except OSError:\n"
            "        time.sleep(0.1)\n"
        )
        await self.ok("write_file", {"path": "probe.py", "content": probe})
        t = text_of(await self.ok("exec_command", {"cmd": "python3 probe.py", "yield_time_ms": 20000}))
        assert "Process exited with code 0" in t and "200" in t, t
        await self.ok("kill_process", {"process_id": server})
        print("ok: a server from start_process answers exec_command in the same session")

        await self.refused("write_stdin", {"session_id": 999, "chars": "x"}, "INVALID_ARGUMENT")
        await self.refused("read_process_output", {"process_id": 999}, "INVALID_ARGUMENT")
        await self.refused("kill_process", {"process_id": bg, "signal": "BOGUS"}, "INVALID_ARGUMENT")
        await self.refused("exec_command", {"cmd": "echo", "shell": "/bin/bash"}, "INVALID_ARGUMENT")
        print("ok: unknown ids, signals and arguments are refused with INVALID_ARGUMENT")

        # A REPL on a terminal: the prompt comes back, then each answer.
        t = text_of(await self.ok("exec_command", {"cmd": "python3 -i -q", "tty": True, "yield_time_ms": 3000}))
        repl = session_id_in(t)
        assert ">>> " in t, t
        t = text_of(await self.ok("write_stdin", {"session_id": repl, "chars": "print(6 * 7)\n", "yield_time_ms": 3000}))
        assert "42" in t and session_id_in(t) == repl, t
        t = text_of(await self.ok(
            "write_stdin", {"session_id": repl, "chars": "import sys; print(sys.stdin.isatty())\n", "yield_time_ms": 3000}))
        assert "True" in t, t
        t = text_of(await self.ok("write_stdin", {"session_id": repl, "chars": "exit()\n", "yield_time_ms": 10000}))
        assert "Process exited with code 0" in t, t
        print("ok: exec_command with tty drives python3 -i through write_stdin until it exits")


def sleepers(marker):
    """Host pids of `sleep MARKER`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if len(argv) > 1 and os.path.basename(argv[0]) == b"sleep" and argv[1] == marker.encode():
            found.append(pid)
    return found


async def wait_until(cond, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return cond()


async def main(cfg):
    if cfg["transport"] == "stdio":
        params = StdioServerParameters(command=cfg["command"], args=cfg["args"], env=cfg.get("env"))
        transport = stdio_client(params)
    else:
        transport = streamable_http_client(cfg["url"])
    async with transport as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.server_info.name == "agentjail", init.server_info
            print(f"ok: initialized over {cfg['transport']} ({init.protocol_version})")
            if "probe" in cfg:
                await probe(session, cfg["probe"])
            elif cfg.get("suite") == "sessions":
                await SessionChecks(session, cfg).run()
            else:
                await Checks(session, cfg).run()


async def probe(session, paths):
    """Prints, as JSON, the allowed directories and what reading each path gave."""
    allowed = text_of(await session.call_tool("list_allowed_directories", {}))
    reads = {}
    for path in paths:
        r = await session.call_tool("read_text_file", {"path": path})
        reads[path] = {"is_error": bool(r.is_error), "text": text_of(r)}
    print("PROBE " + json.dumps({"allowed": allowed, "reads": reads}))


def leaves(e):
    """The exceptions inside anyio's task-group wrappers."""
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in leaves(sub)]
    return [e]


if __name__ == "__main__":
    try:
        asyncio.run(main(json.loads(sys.argv[1])))
    except BaseException as e:  # noqa: BLE001 - reported, then exit 1
        for leaf in leaves(e):
            traceback.print_exception(leaf, limit=-3)
        sys.exit(1)
    print("all checks passed")
