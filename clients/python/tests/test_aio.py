"""The asyncio client: the same calls awaited, streams, cancellation."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

import agentjail
import agentjail.aio
from agentjail import Exited, Started, Stdout
from test_commands import pid_alive, wait_gone


def run(coro):
    return asyncio.run(coro)


def test_files_and_errors(daemon, uniq):
    async def main():
        async with agentjail.aio.connect(daemon.socket) as c:
            assert (await c.whoami()).agent == "local"
            await c.files.write(f"{uniq}/a.txt", "one\ntwo\n")
            assert await c.files.read(f"{uniq}/a.txt") == "one\ntwo\n"
            w = await c.files.read_window(f"{uniq}/a.txt", offset=1, limit=1)
            assert w.text == "two\n"
            e = await c.files.edit(f"{uniq}/a.txt", "two", "three")
            assert e.applied
            assert [x.path for x in await c.files.list(uniq)] == [f"{uniq}/a.txt"]
            assert (await c.files.glob("*.txt", path=uniq)).paths == [f"{uniq}/a.txt"]
            assert (await c.files.grep("three", path=uniq)).files == [f"{uniq}/a.txt"]
            assert (await c.files.stat(f"{uniq}/a.txt")).size == len("one\nthree\n")
            await c.files.mkdir(f"{uniq}/d")
            await c.files.move(f"{uniq}/a.txt", f"{uniq}/d/b.txt")
            assert await c.files.exists(f"{uniq}/d/b.txt")
            with pytest.raises(agentjail.DirectoryNotEmpty):
                await c.files.remove(f"{uniq}/d")
            await c.files.remove(f"{uniq}/d", recursive=True)
            with pytest.raises(agentjail.PolicyDenied) as denied:
                await c.files.write(f"{uniq}/.env", "x")
            assert denied.value.rule and denied.value.path == f"{uniq}/.env"

    run(main())
    assert not daemon.w(f"{uniq}/d").exists() and not daemon.w(f"{uniq}/.env").exists()


def test_run_stream_and_callbacks(daemon):
    async def main():
        async with agentjail.aio.connect(daemon.socket) as c:
            r = await c.commands.run("echo out; echo err >&2; exit 2")
            assert (r.stdout, r.stderr, r.exit_code) == ("out\n", "err\n", 2)
            seen = []
            r = await c.commands.run(["echo", "streamed"], on_stdout=seen.append)
            assert "".join(seen) == "streamed\n" and r.ok
            events = [e async for e in c.commands.stream("echo x")]
            assert isinstance(events[0], Started) and isinstance(events[-1], Exited)
            assert [e.data for e in events if isinstance(e, Stdout)] == [b"x\n"]

    run(main())


def test_cancelling_the_task_cancels_the_command(daemon):
    async def main():
        async with agentjail.aio.connect(daemon.socket) as c:
            started = asyncio.get_running_loop().create_future()

            async def consume():
                async for event in c.commands.stream(["sleep", "60"]):
                    if isinstance(event, Started):
                        started.set_result(event.pid)

            task = asyncio.create_task(consume())
            pid = await asyncio.wait_for(started, 20)
            assert pid_alive(pid), "the command runs before the cancel"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return pid

    pid = run(main())
    assert wait_gone(pid), "the daemon killed the command of the cancelled task"


def procs_running(argument: str) -> list:
    """Host pids whose command line has ``argument``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if argument.encode() in f.read().split(b"\0"):
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def test_cancelling_an_awaited_run(daemon):
    # A unique duration marks this test's command among the host's processes.
    marker = f"60.{uuid.uuid4().int % 10**6:06d}"

    async def main():
        async with agentjail.aio.connect(daemon.socket) as c:
            task = asyncio.create_task(c.commands.run(["sleep", marker]))
            for _ in range(400):
                if procs_running(marker):
                    break
                await asyncio.sleep(0.05)
            pids = procs_running(marker)
            assert pids, "the command started"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return pids

    pids = run(main())
    assert all(wait_gone(p) for p in pids), "the daemon killed the command of the cancelled Run"


def test_deadline(daemon):
    async def main():
        async with agentjail.aio.connect(daemon.socket) as c:
            with pytest.raises(agentjail.DeadlineExceeded):
                await c.commands.run(["sleep", "60"], request_timeout=0.5)

    run(main())
