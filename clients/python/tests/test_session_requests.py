"""What the session objects send and keep, checked against an in-process
gRPC servicer that records each request (no daemon, no sandbox: the
daemon's behaviour is tested in test_sessions.py). It pins the mapping of
the Python arguments onto the proto: offsets carried from read to read,
waits split at the daemon's 30 s cap, signal numbers, session ids."""

from __future__ import annotations

import asyncio
import signal
import tempfile
from concurrent import futures
from pathlib import Path

import grpc
import pytest

import agentjail
import agentjail.aio
from agentjail.v1 import agentjail_pb2 as pb
from agentjail.v1 import agentjail_pb2_grpc as pb_grpc


class Recorder(pb_grpc.ToolSandboxServicer):
    """One session ``s1`` with one process ``p1`` whose stdout is what was written to it."""

    def __init__(self) -> None:
        self.requests = []
        self.stdout = b""
        self.stdin_closed = False

    def _log(self, name, req):
        self.requests.append((name, req))

    def _proc(self):
        running = not self.stdin_closed
        exited = None if running else pb.ExecExited(exit_code=0)
        return pb.ProcessInfo(process_id="p1", argv=["cat"], pid=42, running=running, exited=exited)

    def OpenSession(self, req, ctx):
        self._log("OpenSession", req)
        return pb.OpenSessionResponse(session=pb.SessionInfo(session_id="s1", workspace="main", cwd=req.cwd))

    def CloseSession(self, req, ctx):
        self._log("CloseSession", req)
        return pb.CloseSessionResponse(session=pb.SessionInfo(session_id=req.session_id, ended="closed"))

    def Run(self, req, ctx):
        self._log("Run", req)
        out = pb.CapturedOutput(head=b"ran\n", total_bytes=4)
        return pb.ExecResult(exec_id="e1", stdout=out, exited=pb.ExecExited(exit_code=0))

    def StartProcess(self, req, ctx):
        self._log("StartProcess", req)
        return pb.StartProcessResponse(process=self._proc())

    def WriteStdin(self, req, ctx):
        self._log("WriteStdin", req)
        self.stdout += req.data
        self.stdin_closed = self.stdin_closed or req.close
        return pb.WriteStdinResponse(written=len(req.data))

    def ReadOutput(self, req, ctx):
        self._log("ReadOutput", req)
        data = self.stdout[req.offset : req.offset + (req.max_bytes or 65536)]
        end = req.offset + len(data)
        return pb.ReadOutputResponse(
            data=data,
            offset=req.offset,
            next_offset=end,
            eof=self.stdin_closed and end == len(self.stdout),
            process=self._proc(),
        )

    def WaitProcess(self, req, ctx):
        self._log("WaitProcess", req)
        return pb.WaitProcessResponse(process=self._proc())

    def SignalProcess(self, req, ctx):
        self._log("SignalProcess", req)
        return pb.SignalProcessResponse(process=self._proc())

    def ListProcesses(self, req, ctx):
        self._log("ListProcesses", req)
        return pb.ListProcessesResponse(processes=[self._proc()])

    def ResizeTerminal(self, req, ctx):
        self._log("ResizeTerminal", req)
        return pb.ResizeTerminalResponse()

    def sent(self, name):
        return [r for n, r in self.requests if n == name]


@pytest.fixture
def fake():
    d = Path(tempfile.mkdtemp(prefix="ajpy-fake-", dir="/tmp"))
    sock = d / "fake.sock"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    rec = Recorder()
    pb_grpc.add_ToolSandboxServicer_to_server(rec, server)
    server.add_insecure_port(f"unix:{sock}")
    server.start()
    yield rec, sock
    server.stop(None)


def test_sync_objects_send_what_the_proto_says(fake):
    rec, sock = fake
    with agentjail.connect(sock, workspace="main") as c:
        with c.sessions.open(cwd="proj", env={"A": "1"}, idle_timeout=2.5, max_lifetime=60, pids=32) as s:
            assert s.id == "s1"
            assert s.run("echo hi", env={"B": "2"}).stdout == "ran\n"
            p = s.start(["cat"], tty=True, rows=10, cols=20, output_buffer=4096)
            p.write("abc")
            assert p.read(wait=60).data == b"abc"
            p.write(b"de")
            assert p.read().data == b"de", "the next read starts where the last ended"
            assert p.read(offset=1).data == b"bcde"
            p.resize(30, 40)
            p.kill()
            p.write(b"", close=True)
            assert p.wait(timeout=100).running is False and p.exit_code == 0
            assert [q.id for q in s.processes()] == ["p1"]
    opened = rec.sent("OpenSession")[0]
    assert (opened.workspace, opened.cwd, dict(opened.env)) == ("main", "proj", {"A": "1"})
    assert (opened.idle_timeout_ms, opened.max_lifetime_ms, opened.limits.pids) == (2500, 60000, 32)
    run = rec.sent("Run")[0]
    assert (run.session_id, run.shell, dict(run.env), run.workspace) == ("s1", "echo hi", {"B": "2"}, "main")
    start = rec.sent("StartProcess")[0]
    assert (start.session_id, list(start.argv), start.tty, start.rows, start.cols) == ("s1", ["cat"], True, 10, 20)
    assert start.output_buffer_bytes == 4096
    reads = rec.sent("ReadOutput")
    assert [(r.offset, r.wait_ms) for r in reads] == [(0, 30000), (3, 0), (1, 0)], "waits capped at 30 s"
    assert all((r.session_id, r.process_id) == ("s1", "p1") for r in reads)
    assert rec.sent("SignalProcess")[0].signal == signal.SIGKILL
    resize = rec.sent("ResizeTerminal")[0]
    assert (resize.rows, resize.cols) == (30, 40)
    assert rec.sent("WriteStdin")[-1].close
    assert rec.sent("CloseSession")[0].session_id == "s1", "leaving the block closes the session"


def test_async_objects_send_the_same(fake):
    rec, sock = fake

    async def main():
        async with agentjail.aio.connect(sock) as c:
            async with await c.sessions.open(cwd="x") as s:
                await s.run(["true"])
                p = await s.start("cat")
                await p.write("hey", close=True)
                chunks = [o.data async for o in p.iter_output(wait=1)]
                assert b"".join(chunks) == b"hey"
                await p.terminate()
                assert (await p.wait()).running is False

    asyncio.run(main())
    assert rec.sent("Run")[0].session_id == "s1" and list(rec.sent("Run")[0].argv) == ["true"]
    assert rec.sent("StartProcess")[0].shell == "cat"
    assert rec.sent("SignalProcess")[0].signal == signal.SIGTERM
    assert [r.offset for r in rec.sent("ReadOutput")] == [0]
    assert rec.sent("CloseSession")[0].session_id == "s1"
