"""Sessions: one sandbox that lives across calls (``client.sessions``).

    with aj.sessions.open(cwd="proj") as s:
        s.run("cd web && export PORT=8000")          # cwd and exports carry over
        server = s.start("python3 -m http.server $PORT")
        print(server.read(wait=5).text)               # what it printed so far
        print(s.run("curl -s localhost:8000/").stdout)
        server.kill()
    # leaving the block closes the session: every process in it is killed

A session belongs to the agent that opened it; to any other agent its id is
``NotFound``. Its processes' output is kept by the daemon in a bounded
buffer per stream and read by byte offset, so polling is cheap and nothing
is lost between reads unless the buffer overflowed (``lost_bytes`` says).
"""

from __future__ import annotations

import signal as signals
import time
from typing import TYPE_CHECKING, Iterator, List, Mapping, Optional

import grpc

from . import _calls
from ._calls import Command, Content
from ._session_state import ProcessState, SessionState, wait_deadline
from .client import CommandStream, OutputCallback
from .errors import NotFound
from .results import CommandResult, ProcessOutput
from .v1 import agentjail_pb2 as pb

if TYPE_CHECKING:
    from .client import Client


class Sessions:
    """Opens and lists the agent's sessions."""

    def __init__(self, client: "Client") -> None:
        self._c = client

    def open(
        self,
        *,
        cwd: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        memory_bytes: Optional[int] = None,
        pids: Optional[int] = None,
        idle_timeout: Optional[float] = None,
        max_lifetime: Optional[float] = None,
        workspace: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> "Session":
        """Opens a session: its own sandbox, starting in ``cwd`` (relative to
        the workspace) with ``env``. ``memory_bytes``/``pids`` limit the whole
        session (0 or ``None``: the policy's defaults); ``idle_timeout`` and
        ``max_lifetime`` (seconds, capped by the policy) close it by
        themselves. Use it as a context manager, or call ``close()``."""
        ws = self._c._ws(workspace)
        req = _calls.open_session(ws, cwd, env, memory_bytes, pids, idle_timeout, max_lifetime)
        r = self._c._unary("OpenSession", req, timeout)
        return Session(self._c, r.session, ws)

    def list(self, *, timeout: Optional[float] = None) -> List[pb.SessionInfo]:
        """The agent's open sessions."""
        return list(self._c._unary("ListSessions", pb.ListSessionsRequest(), timeout).sessions)

    def attach(self, session_id: str, *, timeout: Optional[float] = None) -> "Session":
        """A :class:`Session` for an open session of this agent, by id
        (:class:`NotFound` if it is not one)."""
        for info in self.list(timeout=timeout):
            if info.session_id == session_id:
                return Session(self._c, info, info.workspace)
        raise NotFound(
            f"no open session {session_id!r} of this agent (see sessions.list())", code=grpc.StatusCode.NOT_FOUND
        )


class Session(SessionState):
    """An open session: ``run`` commands in it, ``start`` background
    processes, ``close`` it. ``info`` is the :class:`pb.SessionInfo` last
    received (``cwd``: where the next command starts)."""

    def __init__(self, client: "Client", info: pb.SessionInfo, workspace: str) -> None:
        super().__init__(info, workspace)
        self._c = client

    def run(
        self,
        cmd: Command,
        *,
        cwd: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        stdin: Optional[Content] = None,
        timeout: Optional[float] = None,
        idle_timeout: Optional[float] = None,
        output_budget: Optional[int] = None,
        on_stdout: Optional[OutputCallback] = None,
        on_stderr: Optional[OutputCallback] = None,
        check: bool = False,
        request_timeout: Optional[float] = None,
    ) -> CommandResult:
        """Runs ``cmd`` in the session and waits for it, as
        :meth:`agentjail.client.Commands.run`. It starts in the session's
        directory with its environment; a string command's final directory
        and exported variables carry over to the next command."""
        req = _calls.exec_request(self.workspace, cmd, cwd, env, stdin, timeout, idle_timeout, output_budget)
        return self._c.commands._run(self.exec_request(req), cmd, timeout, request_timeout, on_stdout, on_stderr, check)

    def stream(
        self,
        cmd: Command,
        *,
        cwd: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        stdin: Optional[Content] = None,
        timeout: Optional[float] = None,
        idle_timeout: Optional[float] = None,
        request_timeout: Optional[float] = None,
    ) -> CommandStream:
        """Runs ``cmd`` in the session, its events as an iterator (see
        :meth:`agentjail.client.Commands.stream`)."""
        req = _calls.exec_request(self.workspace, cmd, cwd, env, stdin, timeout, idle_timeout, None)
        return CommandStream(self._c, self.exec_request(req), _calls.command_deadline(timeout, request_timeout))

    def start(
        self,
        cmd: Command,
        *,
        cwd: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        tty: bool = False,
        rows: int = 0,
        cols: int = 0,
        output_buffer: Optional[int] = None,
        timeout: Optional[float] = None,
    ) -> "Process":
        """Starts ``cmd`` in the background and returns at once. With
        ``tty=True`` it runs on a pseudo-terminal (``rows`` x ``cols``,
        default 24x80; stdout and stderr are then one stream, read as
        ``"stdout"``). ``output_buffer``: bytes kept per stream (head and
        newest tail; the policy's default when ``None``)."""
        req = _calls.start_process(self.id, cmd, cwd, env, tty, rows, cols, output_buffer)
        r = self._c._unary("StartProcess", req, timeout)
        return Process(self._c, self.id, r.process)

    def processes(self, *, timeout: Optional[float] = None) -> List["Process"]:
        """The session's processes, running and exited, with their state."""
        r = self._c._unary("ListProcesses", pb.ListProcessesRequest(session_id=self.id), timeout)
        return [Process(self._c, self.id, p) for p in r.processes]

    def process(self, process_id: str, *, timeout: Optional[float] = None) -> "Process":
        """One of the session's processes by id (:class:`NotFound` if none)."""
        for p in self.processes(timeout=timeout):
            if p.id == process_id:
                return p
        raise NotFound(f"session {self.id} has no process {process_id!r}", code=grpc.StatusCode.NOT_FOUND)

    def open_port(self, port: int, *, timeout: Optional[float] = None) -> str:
        """A Unix socket on the host, usable only by this agent's uid, whose
        connections reach ``127.0.0.1:port`` inside the session."""
        r = self._c._unary("OpenPort", pb.OpenPortRequest(session_id=self.id, port=port), timeout)
        return r.socket_path

    def refresh(self, *, timeout: Optional[float] = None) -> pb.SessionInfo:
        """Asks the daemon for the session's state again (:class:`NotFound`
        once it has ended)."""
        for info in self._c.sessions.list(timeout=timeout):
            if info.session_id == self.id:
                self.info = info
                return info
        raise NotFound(f"session {self.id} is no longer open", code=grpc.StatusCode.NOT_FOUND)

    def close(self, *, timeout: Optional[float] = None) -> pb.SessionInfo:
        """Closes the session: every process in it is killed and its sandbox
        removed. Returns its final state."""
        r = self._c._unary("CloseSession", pb.CloseSessionRequest(session_id=self.id), timeout)
        self.closed = True
        self.info = r.session
        return r.session

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.closed:
            return
        try:
            self.close()
        except NotFound:
            # It ended on its own (idle, lifetime, daemon restart): gone either way.
            self.closed = True


class Process(ProcessState):
    """A background process of a session. ``info`` is the
    :class:`pb.ProcessInfo` last received; ``refresh()`` asks again."""

    def __init__(self, client: "Client", session_id: str, info: pb.ProcessInfo) -> None:
        super().__init__(session_id, info)
        self._c = client

    def read(
        self,
        stream: str = "stdout",
        *,
        offset: Optional[int] = None,
        max_bytes: int = 0,
        wait: Optional[float] = None,
        timeout: Optional[float] = None,
    ) -> ProcessOutput:
        """Output of ``stream`` (``"stdout"`` or ``"stderr"``) from ``offset``
        (default: where the last read of it ended), at most ``max_bytes``
        (0: 64 KiB). With ``wait`` (seconds, at most 30) the daemon waits for
        output when there is none yet."""
        req = self.read_request(stream, offset, max_bytes, wait)
        deadline = timeout if timeout is not None else wait_deadline(self._c.timeout, req.wait_ms / 1000)
        r = self._c._unary("ReadOutput", req, deadline)
        self.advance(stream, r)
        return ProcessOutput.from_response(r)

    def iter_output(self, stream: str = "stdout", *, wait: float = 5.0) -> Iterator[ProcessOutput]:
        """Reads ``stream`` on from the current offset until it ends,
        yielding each non-empty chunk (and any loss) as it comes."""
        while True:
            out = self.read(stream, wait=wait)
            if out.data or out.lost_bytes:
                yield out
            if out.eof:
                return

    def write(self, data: Content, *, close: bool = False, timeout: Optional[float] = None) -> int:
        """Writes ``data`` (``str`` as UTF-8) to the process's stdin (or its
        terminal); ``close=True`` closes stdin after it. Returns the bytes written."""
        req = pb.WriteStdinRequest(
            session_id=self.session_id, process_id=self.id, data=_calls.content_bytes(data), close=close
        )
        return self._c._unary("WriteStdin", req, timeout).written

    def close_stdin(self, *, timeout: Optional[float] = None) -> None:
        """Closes stdin: the process reads end of file."""
        self.write(b"", close=True, timeout=timeout)

    def send_signal(self, sig: int, *, timeout: Optional[float] = None) -> pb.ProcessInfo:
        """Sends ``sig`` to the process's group."""
        req = pb.SignalProcessRequest(session_id=self.session_id, process_id=self.id, signal=int(sig))
        self.info = self._c._unary("SignalProcess", req, timeout).process
        return self.info

    def terminate(self, *, timeout: Optional[float] = None) -> pb.ProcessInfo:
        return self.send_signal(signals.SIGTERM, timeout=timeout)

    def kill(self, *, timeout: Optional[float] = None) -> pb.ProcessInfo:
        """SIGKILL to the process's group."""
        return self.send_signal(signals.SIGKILL, timeout=timeout)

    def wait(self, timeout: Optional[float] = None) -> pb.ProcessInfo:
        """Waits until the process exits (up to ``timeout`` seconds; ``None``:
        as long as it takes) and returns its final state; ``TimeoutError``
        if it still runs then."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            left = _calls.MAX_SERVER_WAIT if end is None else max(0.0, end - time.monotonic())
            step = min(left, _calls.MAX_SERVER_WAIT)
            req = pb.WaitProcessRequest(
                session_id=self.session_id, process_id=self.id, timeout_ms=_calls.server_wait(step)
            )
            self.info = self._c._unary("WaitProcess", req, wait_deadline(self._c.timeout, step)).process
            if not self.info.running:
                return self.info
            if end is not None and time.monotonic() >= end:
                raise TimeoutError(f"process {self.id} still runs after {timeout} s")

    def refresh(self, *, timeout: Optional[float] = None) -> pb.ProcessInfo:
        """The process's state now."""
        req = pb.WaitProcessRequest(session_id=self.session_id, process_id=self.id, timeout_ms=0)
        self.info = self._c._unary("WaitProcess", req, timeout).process
        return self.info

    def resize(self, rows: int, cols: int, *, timeout: Optional[float] = None) -> None:
        """Resizes the process's terminal (``tty=True`` processes)."""
        req = pb.ResizeTerminalRequest(session_id=self.session_id, process_id=self.id, rows=rows, cols=cols)
        self._c._unary("ResizeTerminal", req, timeout)

    def __enter__(self) -> "Process":
        return self

    def __exit__(self, *exc: object) -> None:
        """Kills the process if it still runs."""
        if self.info.running:
            try:
                self.kill()
            except NotFound:
                pass


__all__ = ["Sessions", "Session", "Process", "ProcessOutput"]
