"""What the sync and asyncio session objects share: what they last heard
from the daemon about a session or process, and where reading goes on."""

from __future__ import annotations

from typing import Dict, List, Optional

from . import _calls
from .results import exit_code_of, signal_of
from .v1 import agentjail_pb2 as pb


class SessionState:
    """A session's id and the :class:`pb.SessionInfo` last received."""

    def __init__(self, info: pb.SessionInfo, workspace: str) -> None:
        self.info = info
        #: The workspace the session was opened with (its commands' workspace).
        self.workspace = workspace
        self.closed = False

    @property
    def id(self) -> str:
        return self.info.session_id

    def __repr__(self) -> str:
        state = f"ended={self.info.ended!r}" if self.info.ended else ("closed" if self.closed else "open")
        return f"<{type(self).__name__} {self.id} cwd={self.info.cwd!r} {state}>"

    def exec_request(self, req: pb.ExecRequest) -> pb.ExecRequest:
        req.session_id = self.id
        return req


class ProcessState:
    """A process's id, the :class:`pb.ProcessInfo` last received, and for
    each stream the offset the next ``read()`` starts at."""

    def __init__(self, session_id: str, info: pb.ProcessInfo) -> None:
        self.session_id = session_id
        self.info = info
        self._offsets: Dict[str, int] = {name: 0 for name in _calls.OUTPUT_STREAMS}

    @property
    def id(self) -> str:
        return self.info.process_id

    @property
    def pid(self) -> int:
        """The process's pid as seen from the host."""
        return self.info.pid

    @property
    def argv(self) -> List[str]:
        return list(self.info.argv)

    @property
    def tty(self) -> bool:
        return self.info.tty

    @property
    def running(self) -> bool:
        """Whether it ran when the daemon last said (``refresh()`` asks again)."""
        return self.info.running

    @property
    def exit_code(self) -> Optional[int]:
        return exit_code_of(self.info)

    @property
    def signal(self) -> Optional[int]:
        """The signal that killed it, if one did."""
        return signal_of(self.info)

    def offset(self, stream: str = "stdout") -> int:
        """Where the next ``read(stream)`` without ``offset=`` starts."""
        _calls.output_stream(stream)
        return self._offsets[stream]

    def read_request(
        self, stream: str, offset: Optional[int], max_bytes: int, wait: Optional[float]
    ) -> pb.ReadOutputRequest:
        return pb.ReadOutputRequest(
            session_id=self.session_id,
            process_id=self.id,
            stream=_calls.output_stream(stream),
            offset=self._offsets[stream] if offset is None else offset,
            max_bytes=max_bytes,
            wait_ms=_calls.server_wait(wait),
        )

    def advance(self, stream: str, r: pb.ReadOutputResponse) -> None:
        self._offsets[stream] = max(self._offsets[stream], r.next_offset)
        if r.HasField("process"):
            self.info = r.process

    def __repr__(self) -> str:
        if self.info.running:
            state = "running"
        elif self.exit_code is not None:
            state = f"exit_code={self.exit_code}"
        else:
            state = f"signal={self.signal}"
        return f"<{type(self).__name__} {self.id} pid={self.pid} {self.argv!r} {state}>"


def wait_deadline(client_timeout: Optional[float], wait: float) -> Optional[float]:
    """A call that waits on the daemon for ``wait`` seconds needs at least
    that long plus a margin before the client gives up on it."""
    if client_timeout is None:
        return None
    return max(client_timeout, wait + _calls.COMMAND_DEADLINE_MARGIN)
