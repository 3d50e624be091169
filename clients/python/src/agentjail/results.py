"""What ``commands.run`` and ``commands.stream`` give back, and ``files.list``'s listing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Union

from .v1 import agentjail_pb2 as pb


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def omission_marker(omitted: int) -> str:
    """What stands between head and tail of an output cut by the budget."""
    return f"\n[... {omitted} bytes omitted ...]\n"


@dataclass
class CommandResult:
    """A finished command, as E2B's ``CommandResult`` with agentjail's extras.

    ``stdout``/``stderr`` are decoded UTF-8 (invalid bytes replaced); when
    ``Run``'s output budget cut the middle out, they hold the head, a marker
    ``[... N bytes omitted ...]`` and the tail, and ``*_omitted_bytes`` says
    how much is missing. A non-zero exit is a result, not an exception
    (pass ``check=True`` to ``run`` for :class:`~agentjail.errors.CommandFailed`).
    """

    stdout: str
    stderr: str
    #: Exit code when the command exited; ``None`` when a signal killed it.
    exit_code: Optional[int]
    signal: Optional[int]
    timed_out: bool
    idle_timed_out: bool
    cancelled: bool
    oom_killed: bool
    wall_time_ms: int
    cpu_time_ms: int
    peak_memory_bytes: int
    #: Bytes the command printed on each stream, including any omitted.
    stdout_bytes: int
    stderr_bytes: int
    stdout_omitted_bytes: int
    stderr_omitted_bytes: int
    exec_id: str
    #: The policy rule that allowed the command.
    rule: str
    #: The daemon's ``ExecExited`` message, whole.
    exited: pb.ExecExited = field(repr=False)

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0."""
        return self.exit_code == 0

    @property
    def error(self) -> Optional[str]:
        """Why the command did not succeed, in words (``None`` when it did)."""
        if self.ok:
            return None
        if self.timed_out:
            return "timed out"
        if self.idle_timed_out:
            return "printed nothing for too long (idle timeout)"
        if self.oom_killed:
            return "killed: out of memory"
        if self.cancelled:
            return "cancelled"
        if self.signal is not None:
            return f"killed by signal {self.signal}"
        return f"exited with status {self.exit_code}"

    def summary(self) -> str:
        """The result as text a model can read: how it ended, then both streams."""
        status = self.error or "exited with status 0"
        return f"{status}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"

    @classmethod
    def from_parts(
        cls,
        exec_id: str,
        exited: pb.ExecExited,
        stdout: str,
        stderr: str,
        stdout_omitted: int = 0,
        stderr_omitted: int = 0,
    ) -> "CommandResult":
        return cls(
            stdout=stdout,
            stderr=stderr,
            exit_code=exited.exit_code if exited.HasField("exit_code") else None,
            signal=exited.signal if exited.HasField("signal") else None,
            timed_out=exited.timed_out,
            idle_timed_out=exited.idle_timed_out,
            cancelled=exited.cancelled,
            oom_killed=exited.oom_killed,
            wall_time_ms=exited.wall_time_ms,
            cpu_time_ms=exited.cpu_time_ms,
            peak_memory_bytes=exited.peak_memory_bytes,
            stdout_bytes=exited.stdout_bytes,
            stderr_bytes=exited.stderr_bytes,
            stdout_omitted_bytes=stdout_omitted,
            stderr_omitted_bytes=stderr_omitted,
            exec_id=exec_id,
            rule=exited.info.rule,
            exited=exited,
        )

    @classmethod
    def from_run(cls, r: pb.ExecResult) -> "CommandResult":
        def joined(c: pb.CapturedOutput) -> str:
            if c.omitted_bytes:
                return _text(c.head) + omission_marker(c.omitted_bytes) + _text(c.tail)
            return _text(c.head + c.tail)

        return cls.from_parts(
            r.exec_id,
            r.exited,
            joined(r.stdout),
            joined(r.stderr),
            r.stdout.omitted_bytes,
            r.stderr.omitted_bytes,
        )


@dataclass(frozen=True)
class Started:
    """The sandbox is built and the command runs: its id and host pid."""

    exec_id: str
    pid: int


@dataclass(frozen=True)
class Stdout:
    """A chunk the command wrote to standard output."""

    data: bytes

    @property
    def text(self) -> str:
        return _text(self.data)


@dataclass(frozen=True)
class Stderr:
    """A chunk the command wrote to standard error."""

    data: bytes

    @property
    def text(self) -> str:
        return _text(self.data)


@dataclass(frozen=True)
class Exited:
    """The command ended; the last event of a stream."""

    exited: pb.ExecExited

    @property
    def exit_code(self) -> Optional[int]:
        return self.exited.exit_code if self.exited.HasField("exit_code") else None


#: One event of ``commands.stream``.
ExecEvent = Union[Started, Stdout, Stderr, Exited]


def event_of(e: pb.ExecEvent) -> Optional[ExecEvent]:
    """The typed event for a wire event (``None`` for a kind this client does not know)."""
    kind = e.WhichOneof("event")
    if kind == "started":
        return Started(e.started.exec_id, e.started.pid)
    if kind == "stdout":
        return Stdout(e.stdout.data)
    if kind == "stderr":
        return Stderr(e.stderr.data)
    if kind == "exited":
        return Exited(e.exited)
    return None


class Listing(List[pb.DirEntry]):
    """``files.list``'s entries, every page fetched; ``scan_truncated`` when the
    daemon's scan limit cut the walk short (narrow the path or depth)."""

    scan_truncated: bool = False


class StreamCollector:
    """Gathers a stream's events into a :class:`CommandResult` (``run`` with callbacks)."""

    def __init__(self) -> None:
        self.exec_id = ""
        self.out: List[bytes] = []
        self.err: List[bytes] = []
        self.exited: Optional[pb.ExecExited] = None

    def add(self, event: ExecEvent) -> None:
        if isinstance(event, Started):
            self.exec_id = event.exec_id
        elif isinstance(event, Stdout):
            self.out.append(event.data)
        elif isinstance(event, Stderr):
            self.err.append(event.data)
        elif isinstance(event, Exited):
            self.exited = event.exited

    def result(self) -> CommandResult:
        exited = self.exited if self.exited is not None else pb.ExecExited(cancelled=True)
        return CommandResult.from_parts(self.exec_id, exited, _text(b"".join(self.out)), _text(b"".join(self.err)))


@dataclass(frozen=True)
class ProcessOutput:
    """One ``ReadOutput`` answer: the bytes of one stream from ``offset`` on.

    ``lost_bytes`` counts bytes between the offset asked for and ``offset``
    that the daemon's bounded buffer no longer kept; read on from
    ``next_offset``. ``eof``: the stream is closed and nothing more will come.
    """

    data: bytes
    offset: int
    next_offset: int
    lost_bytes: int
    eof: bool
    #: The process as of this read.
    process: pb.ProcessInfo = field(repr=False)

    @property
    def text(self) -> str:
        return _text(self.data)

    @classmethod
    def from_response(cls, r: pb.ReadOutputResponse) -> "ProcessOutput":
        return cls(r.data, r.offset, r.next_offset, r.lost_bytes, r.eof, r.process)


def exit_code_of(info: pb.ProcessInfo) -> Optional[int]:
    """A process's exit code once it exited normally, else ``None``."""
    if info.HasField("exited") and info.exited.HasField("exit_code"):
        return info.exited.exit_code
    return None


def signal_of(info: pb.ProcessInfo) -> Optional[int]:
    """The signal that killed a process, else ``None``."""
    if info.HasField("exited") and info.exited.HasField("signal"):
        return info.exited.signal
    return None
