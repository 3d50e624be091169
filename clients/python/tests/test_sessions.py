"""Sessions against the real daemon: commands that share a sandbox, cwd and
env carried over, background processes read by offset, stdin, terminals,
signals, close. Every test needs the daemon's sessions (issue 13): on a
daemon without them each fails with UNIMPLEMENTED, never skips."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import stat
import time

import pytest

import agentjail
import agentjail.aio
from test_commands import pid_alive, wait_gone

LIMIT = 15.0


def read_until(p, needle: str, stream: str = "stdout", limit: float = LIMIT) -> str:
    """What ``stream`` printed from the current offset until ``needle`` shows (fails after ``limit``)."""
    seen = ""
    end = time.monotonic() + limit
    while needle not in seen:
        left = end - time.monotonic()
        assert left > 0, f"{needle!r} never came on {stream}; got {seen!r}"
        out = p.read(stream, wait=min(left, 5.0))
        seen += out.text
        if out.eof and needle not in seen:
            pytest.fail(f"{stream} ended without {needle!r}: {seen!r}")
    return seen


def marker() -> str:
    """A sleep length no other test uses, to find the process on the host."""
    return f"{300 + random.random():.6f}"


def test_cwd_and_exports_carry_over_and_close_ends_it(client, daemon, uniq):
    client.files.mkdir(f"{uniq}/sub")
    with client.sessions.open(cwd=uniq, env={"GREETING": "hi"}) as s:
        assert s.id and s.info.cwd == uniq and not s.info.ended
        assert s.id in [i.session_id for i in client.sessions.list()]
        r = s.run('echo "$GREETING"; cd sub && export GREETING=changed && echo made > f.txt')
        assert r.ok and r.stdout == "hi\n", r.summary()
        r = s.run('pwd; echo "$GREETING"')
        assert r.stdout == f"/workspace/{uniq}/sub\nchanged\n", r.summary()
        assert s.refresh().cwd == f"{uniq}/sub"
        assert daemon.w(f"{uniq}/sub/f.txt").read_text() == "made\n", "the session writes the workspace"
        # Control: a command outside the session starts fresh.
        r = client.commands.run('pwd; echo "${GREETING:-unset}"')
        assert r.stdout == "/workspace\nunset\n", r.summary()
        # argv commands run in the session's directory too.
        assert s.run(["cat", "f.txt"]).stdout == "made\n"
        # A streamed command runs in the session as well, and its cd carries over.
        with s.stream("pwd; cd ..") as events:
            printed = b"".join(e.data for e in events if isinstance(e, agentjail.Stdout))
        assert printed == f"/workspace/{uniq}/sub\n".encode()
        assert s.run("pwd").stdout == f"/workspace/{uniq}\n"
        seen = []
        assert s.run("echo streamed", on_stdout=seen.append).stdout == "streamed\n" and seen == ["streamed\n"]
    assert s.closed and s.info.ended == "closed"
    assert s.id not in [i.session_id for i in client.sessions.list()]
    with pytest.raises(agentjail.NotFound):
        s.run("true")
    with pytest.raises(agentjail.NotFound):
        client.sessions.attach(s.id)


def test_a_background_process_is_read_incrementally_by_offset(client):
    with client.sessions.open() as s:
        p = s.start('echo ready; read a; echo "got $a"; read b; echo "bye $b" >&2')
        assert p.id and p.pid > 0 and p.running and not p.tty
        assert read_until(p, "ready\n") == "ready\n"
        assert p.offset("stdout") == len("ready\n")
        # Nothing more until it is given a line: an empty answer at once.
        quiet = p.read()
        assert quiet.data == b"" and not quiet.eof and quiet.next_offset == len("ready\n")
        assert p.write("hello\n") == len("hello\n")
        got = read_until(p, "got hello\n")
        assert got == "got hello\n"
        # Offsets are positions in the stream's whole output: re-read from 0.
        again = p.read(offset=0)
        assert again.offset == 0 and again.text == "ready\ngot hello\n" and again.lost_bytes == 0
        p.write("world\n", close=True)
        final = p.wait(timeout=LIMIT)
        assert not final.running and p.exit_code == 0
        assert read_until(p, "bye world\n", stream="stderr") == "bye world\n"
        assert p.read("stderr").eof and p.read().eof
        assert final.stdout_bytes == len("ready\ngot hello\n") and final.stderr_bytes == len("bye world\n")
        listed = {q.id: q for q in s.processes()}
        assert not listed[p.id].running and listed[p.id].exit_code == 0


def test_stdin_round_trip_keeps_every_byte(client):
    payload = bytes(range(256)) * 64  # every byte value, 16 KiB
    with client.sessions.open() as s:
        p = s.start(["cat"])
        assert p.write(payload, close=True) == len(payload)
        got = b"".join(chunk.data for chunk in p.iter_output(wait=5.0))
        assert got == payload
        assert p.wait(timeout=LIMIT).running is False and p.exit_code == 0


def test_kill_ends_the_process_on_the_host(client):
    m = marker()
    with client.sessions.open() as s:
        p = s.start(["sleep", m])
        assert pid_alive(p.pid), "the process runs before it is killed"
        p.kill()
        final = p.wait(timeout=LIMIT)
        assert not final.running and p.exit_code is None and p.signal == 9
        assert wait_gone(p.pid)
        # Control: the session still runs commands after the kill.
        assert s.run(["echo", "still here"]).stdout == "still here\n"


def test_closing_the_session_kills_its_processes(client):
    m = marker()
    with client.sessions.open() as s:
        p = s.start(["sleep", m])
        with s.start(["sleep", m]) as q:
            assert pid_alive(q.pid)
        assert wait_gone(q.pid), "leaving a process's block kills it"
        assert pid_alive(p.pid), "the other one still runs"
        assert [x.id for x in s.processes() if x.running] == [p.id]
    assert wait_gone(p.pid), "closing the session killed its process"
    with pytest.raises(agentjail.NotFound):
        p.refresh()


def test_a_terminal_answers_a_python_prompt_and_resizes(client):
    with client.sessions.open() as s:
        with s.start(["python3", "-i", "-q"], tty=True, rows=30, cols=90) as p:
            assert p.tty
            read_until(p, ">>> ")
            p.write("import os, sys; print(sys.stdin.isatty(), os.get_terminal_size())\n")
            assert "True os.terminal_size(columns=90, lines=30)" in read_until(p, "lines=30)")
            p.resize(40, 100)
            p.write("print(6 * 7, os.get_terminal_size())\n")
            assert "42 os.terminal_size(columns=100, lines=40)" in read_until(p, "lines=40)")
            p.write("exit()\n")
            assert p.wait(timeout=LIMIT).running is False and p.exit_code == 0


def test_the_asyncio_client_drives_a_session(daemon, uniq):
    async def main():
        async with agentjail.aio.connect(daemon.socket, timeout=20) as c:
            await c.files.mkdir(uniq)
            async with await c.sessions.open() as s:
                await s.run(f"cd {uniq} && export MODE=async")
                r = await s.run('pwd; echo "$MODE"')
                assert r.stdout == f"/workspace/{uniq}\nasync\n", r.summary()
                p = await s.start(["cat"])
                await p.write("ping\n")
                seen = b""
                while b"ping\n" not in seen:
                    seen += (await p.read(wait=5.0)).data
                await p.close_stdin()
                assert (await p.wait(timeout=LIMIT)).running is False and p.exit_code == 0
                assert [q.id for q in await s.processes()] == [p.id]
            assert s.closed and s.info.ended == "closed"
            assert s.id not in [i.session_id for i in await c.sessions.list()]

    asyncio.run(main())


def test_a_server_in_the_session_answers_the_session_and_the_host_through_its_port(client, daemon, uniq):
    client.files.write(f"{uniq}/index.html", "served from the session\n")
    with client.sessions.open(cwd=uniq) as s:
        server = s.start(["python3", "-m", "http.server", "8000", "--bind", "127.0.0.1"])
        probe = (
            "import time, urllib.request\n"
            "for _ in range(100):\n"
            "    try:\n"
            "        print(urllib.request.urlopen('http://127.0.0.1:8000/index.html').read().decode(), end=''); break\n"
            "    except OSError:\n"
            "        time.sleep(0.1)\n"
        )
        r = s.run(["python3", "-c", probe], timeout=30)
        assert r.stdout == "served from the session\n", r.summary()
        path = s.open_port(8000)
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.getuid()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.settimeout(LIMIT)
            c.connect(path)
            c.sendall(b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n")
            reply = b""
            while chunk := c.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.0 200") and reply.endswith(b"served from the session\n"), reply
        assert "GET /index.html" in read_until(server, "GET /index.html", stream="stderr")
    assert not os.path.exists(path), "the port's socket goes with the session"


def test_an_idle_session_ends_by_itself_and_its_block_still_exits_cleanly(client):
    m = marker()
    with client.sessions.open(idle_timeout=1.0) as s:
        assert s.info.idle_timeout_ms == 1000
        p = s.start(["sleep", m])
        assert pid_alive(p.pid)
        end = time.monotonic() + LIMIT
        while s.id in [i.session_id for i in client.sessions.list()]:
            assert time.monotonic() < end, "the idle session never ended"
            time.sleep(0.2)
        assert wait_gone(p.pid), "the idle timeout killed the session's process"
        with pytest.raises(agentjail.NotFound):
            s.run("true")
    assert s.closed, "leaving the block of a session that already ended is no error"
