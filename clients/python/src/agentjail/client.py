"""The synchronous client: ``agentjail.connect()``."""

from __future__ import annotations

import codecs
import math
import os
import time
from typing import Callable, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

import grpc

from . import _calls
from ._calls import Command, Content, EditSpec
from ._channel import CHANNEL_OPTIONS, Option
from ._retry import Deadline, RetryPolicy, deadline_or
from ._socket import resolve_socket, target
from .errors import AgentjailError, CommandFailed, NotFound, RpcFailed, StaleContent, from_rpc_error
from .results import CommandResult, ExecEvent, Exited, Listing, Started, Stderr, Stdout, StreamCollector, event_of
from .v1 import agentjail_pb2 as pb
from .v1 import agentjail_pb2_grpc as pb_grpc

#: The per-call deadline of file calls unless ``connect(timeout=...)`` says otherwise.
DEFAULT_TIMEOUT = 60.0

OutputCallback = Callable[[str], None]


class Client:
    """A connection to the daemon (one gRPC channel). Thread-safe.

    Use :func:`agentjail.connect`. ``client.files`` holds the file tools,
    ``client.commands`` the shell tools, ``client.sessions`` the sandboxes
    that live across calls. Close it, or use it as a context manager.
    """

    def __init__(
        self,
        socket: Union[str, "os.PathLike[str]", None] = None,
        *,
        workspace: str = "",
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        retry: Optional[RetryPolicy] = None,
        options: Sequence[Option] = (),
    ) -> None:
        self.socket = resolve_socket(socket)
        #: Workspace of calls that name none ("" = the agent's first).
        self.workspace = workspace
        #: Default deadline of each file call, in seconds (None: no deadline).
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self._channel = grpc.insecure_channel(target(self.socket), options=[*CHANNEL_OPTIONS, *options])
        self._stub = pb_grpc.ToolSandboxStub(self._channel)
        self.files = Files(self)
        self.commands = Commands(self)
        self.sessions = Sessions(self)

    def whoami(self, *, timeout: Optional[float] = None) -> pb.WhoAmIResponse:
        """The agent the daemon sees this process as, and its workspaces (and,
        on newer daemons, what else it may use)."""
        return self._unary("WhoAmI", pb.WhoAmIRequest(), timeout)

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ plumbing

    def _ws(self, workspace: Optional[str]) -> str:
        return self.workspace if workspace is None else workspace

    def _unary(self, method: str, request: object, timeout: Optional[float]):  # type: ignore[no-untyped-def]
        deadline = Deadline(self.timeout if timeout is None else timeout)
        call = getattr(self._stub, method)
        attempt = 0
        while True:
            attempt += 1
            try:
                return call(request, timeout=deadline.remaining())
            except grpc.RpcError as e:
                err = deadline_or(from_rpc_error(e, socket=self.socket), deadline)
                self._backoff(method, err, attempt, deadline, e)

    def _backoff(
        self, method: str, err: AgentjailError, attempt: int, deadline: Deadline, cause: BaseException
    ) -> None:
        """Sleeps before the next attempt, or raises ``err`` when there is none."""
        if not self.retry.should_retry(method, err, attempt):
            raise err from cause
        delay = self.retry.delay(err, attempt)
        if not deadline.allows(delay):
            raise err from cause
        if self.retry.on_retry is not None:
            self.retry.on_retry(attempt, err, delay)
        time.sleep(delay)


class Files:
    """File tools, each resolved by the daemon beneath a workspace root.

    Paths are relative to the workspace root. ``workspace=`` picks another
    of the agent's workspaces; ``timeout=`` is the call's deadline in seconds.
    """

    def __init__(self, client: Client) -> None:
        self._c = client

    def read(
        self, path: str, *, format: str = "text", workspace: Optional[str] = None, timeout: Optional[float] = None
    ) -> Union[str, bytes]:
        """The whole file, as ``str`` (``format="text"``, UTF-8, invalid bytes
        replaced) or ``bytes`` (``format="bytes"``). Files larger than one
        response (the policy's ``max_read_bytes``) are read in byte windows;
        :class:`StaleContent` if the file changes between them."""
        if format not in ("text", "bytes"):
            raise ValueError('format must be "text" or "bytes"')
        ws = self._c._ws(workspace)
        chunks: List[bytes] = []
        offset = 0
        first: Optional[pb.ReadFileResponse] = None
        while True:
            r = self._c._unary("ReadFile", _calls.read_window(ws, path, byte_offset=offset), timeout)
            first = _same_file(first, r, path)
            chunks.append(r.data if r.is_binary else r.text.encode("utf-8"))
            if not r.truncated or r.next_offset <= offset:
                break
            offset = r.next_offset
        data = b"".join(chunks)
        return data if format == "bytes" else data.decode("utf-8", errors="replace")

    def read_window(
        self,
        path: str,
        *,
        offset: Optional[int] = None,
        limit: Optional[int] = None,
        byte_offset: Optional[int] = None,
        byte_limit: Optional[int] = None,
        max_bytes: int = 0,
        workspace: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> pb.ReadFileResponse:
        """One ``ReadFile`` call: a line window (``offset``/``limit``, default
        the first 2000 lines) or a byte window, with ``sha256`` (for
        ``expected_sha256``), ``total_lines``, ``truncated`` and ``next_offset``."""
        req = _calls.read_window(
            self._c._ws(workspace),
            path,
            line_offset=offset,
            line_limit=limit,
            byte_offset=byte_offset,
            byte_limit=byte_limit,
            max_bytes=max_bytes,
        )
        return self._c._unary("ReadFile", req, timeout)

    def write(
        self,
        path: str,
        content: Content,
        *,
        mode: str = "upsert",
        create_parents: bool = True,
        expected_sha256: Optional[str] = None,
        workspace: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> pb.WriteFileResponse:
        """Writes ``content`` (``str`` as UTF-8, or ``bytes``) atomically.
        ``mode``: ``"upsert"``, ``"create"`` (:class:`AlreadyExists` if present)
        or ``"overwrite"`` (:class:`NotFound` if absent). Missing parent
        directories are created unless ``create_parents=False``."""
        req = _calls.write(self._c._ws(workspace), path, content, mode, create_parents, expected_sha256)
        return self._c._unary("WriteFile", req, timeout)

    def edit(
        self,
        path: str,
        old: Optional[str] = None,
        new: Optional[str] = None,
        *,
        edits: Optional[Iterable[EditSpec]] = None,
        replace_all: bool = False,
        dry_run: bool = False,
        expected_sha256: Optional[str] = None,
        workspace: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> pb.EditFileResponse:
        """Exact text replacements, all or none: ``edit(path, old, new)`` or
        ``edit(path, edits=[(old, new), {"old": .., "new": .., "replace_all": True}])``.
        Returns the unified ``diff``; :class:`MatchNotFound` / :class:`MatchAmbiguous`
        name the lines."""
        req = _calls.edit(self._c._ws(workspace), path, old, new, edits, replace_all, dry_run, expected_sha256)
        return self._c._unary("EditFile", req, timeout)

    def list(
        self,
        path: str = "",
        *,
        depth: int = 1,
        include_hidden: bool = False,
        respect_gitignore: Optional[bool] = None,
        sort: Optional[str] = "name",
        page_size: int = 0,
        workspace: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Listing:
        """Entries below ``path`` (``""`` = the workspace root) down to
        ``depth``, every page fetched. ``sort``: ``"name"``, ``"mtime"``, ``"size"``."""
        req = _calls.list_dir(self._c._ws(workspace), path, depth, include_hidden, respect_gitignore, sort, page_size)
        out = Listing()
        while True:
            r = self._c._unary("ListDir", req, timeout)
            out.extend(r.entries)
            out.scan_truncated = out.scan_truncated or r.scan_truncated
            if not r.next_page_token:
                return out
            req.page_token = r.next_page_token

    def glob(
        self,
        pattern: str,
        *,
        path: str = "",
        include_hidden: bool = False,
        respect_gitignore: Optional[bool] = None,
        max_results: int = 0,
        sort: Optional[str] = None,
        workspace: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> pb.GlobResponse:
        """Files matching ``pattern`` (``*`` does not cross ``/``), newest first
        unless ``sort="name"``: ``.paths``, ``.truncated``."""
        req = _calls.glob(self._c._ws(workspace), pattern, path, include_hidden, respect_gitignore, max_results, sort)
        return self._c._unary("Glob", req, timeout)

    def grep(
        self,
        pattern: str,
        *,
        path: str = "",
        glob: str = "",
        output: str = "files",
        fixed_string: bool = False,
        case_insensitive: bool = False,
        context_before: int = 0,
        context_after: int = 0,
        max_results: int = 0,
        include_hidden: bool = False,
        respect_gitignore: Optional[bool] = None,
        workspace: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> pb.GrepResponse:
        """ripgrep's engine. ``output``: ``"files"`` (``.files``), ``"content"``
        (``.lines``, with context) or ``"count"`` (``.counts``)."""
        req = _calls.grep(
            self._c._ws(workspace),
            pattern,
            path,
            glob,
            output,
            fixed_string,
            case_insensitive,
            context_before,
            context_after,
            max_results,
            include_hidden,
            respect_gitignore,
        )
        return self._c._unary("Grep", req, timeout)

    def stat(
        self, path: str, *, no_follow: bool = False, workspace: Optional[str] = None, timeout: Optional[float] = None
    ) -> pb.StatResponse:
        """Kind, size, mode, mtime; with ``no_follow`` a symlink itself."""
        req = pb.StatRequest(workspace=self._c._ws(workspace), path=path, no_follow=no_follow)
        return self._c._unary("Stat", req, timeout)

    def exists(self, path: str, *, workspace: Optional[str] = None, timeout: Optional[float] = None) -> bool:
        """True if ``path`` exists (as E2B's ``files.exists``)."""
        try:
            self.stat(path, no_follow=True, workspace=workspace, timeout=timeout)
            return True
        except NotFound:
            return False

    def mkdir(
        self, path: str, *, parents: bool = True, workspace: Optional[str] = None, timeout: Optional[float] = None
    ) -> pb.MakeDirResponse:
        """Creates a directory; with ``parents`` (the default) missing parents
        too, and an existing directory is no error."""
        req = pb.MakeDirRequest(workspace=self._c._ws(workspace), path=path, parents=parents)
        return self._c._unary("MakeDir", req, timeout)

    def move(
        self,
        src: str,
        dst: str,
        *,
        overwrite: bool = False,
        create_parents: bool = False,
        workspace: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> pb.MoveResponse:
        """Renames ``src`` to ``dst``; :class:`AlreadyExists` unless ``overwrite``."""
        req = pb.MoveRequest(
            workspace=self._c._ws(workspace), to=dst, overwrite=overwrite, create_parents=create_parents
        )
        setattr(req, "from", src)
        return self._c._unary("Move", req, timeout)

    rename = move

    def remove(
        self,
        path: str,
        *,
        recursive: bool = False,
        missing_ok: bool = False,
        workspace: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> pb.RemoveResponse:
        """Removes a file or directory (:class:`DirectoryNotEmpty` unless ``recursive``)."""
        req = pb.RemoveRequest(workspace=self._c._ws(workspace), path=path, recursive=recursive, missing_ok=missing_ok)
        return self._c._unary("Remove", req, timeout)


def _same_file(first: Optional[pb.ReadFileResponse], r: pb.ReadFileResponse, path: str) -> pb.ReadFileResponse:
    """The first page; refuses a later page of a file that changed meanwhile."""
    if first is None:
        return r
    if r.sha256 != first.sha256 or r.total_bytes != first.total_bytes:
        raise StaleContent(
            f"`{path}` changed while it was read in pages; read it again",
            code=grpc.StatusCode.FAILED_PRECONDITION,
            metadata={"path": path},
        )
    return first


class Commands:
    """Shell tools: each command runs in a sandbox built for the call."""

    def __init__(self, client: Client) -> None:
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
        workspace: Optional[str] = None,
        request_timeout: Optional[float] = None,
    ) -> CommandResult:
        """Runs ``cmd`` (a string through ``/bin/sh -c``, or an argv list) and
        waits for it.

        ``timeout``/``idle_timeout`` are the command's limits in seconds (capped
        by the policy); the daemon kills it then and the result says
        ``timed_out``. With ``on_stdout``/``on_stderr`` the output is streamed
        (``Exec``) and each callback gets text as it comes; otherwise ``Run``
        keeps head and tail within ``output_budget`` bytes per stream.
        ``check=True`` raises :class:`CommandFailed` unless it exits 0.
        """
        req = _calls.exec_request(self._c._ws(workspace), cmd, cwd, env, stdin, timeout, idle_timeout, output_budget)
        return self._run(req, cmd, timeout, request_timeout, on_stdout, on_stderr, check)

    def _run(
        self,
        req: pb.ExecRequest,
        cmd: Command,
        timeout: Optional[float],
        request_timeout: Optional[float],
        on_stdout: Optional[OutputCallback],
        on_stderr: Optional[OutputCallback],
        check: bool,
    ) -> CommandResult:
        """``Run`` (or ``Exec`` with callbacks) of a built request; shared with sessions."""
        deadline = _calls.command_deadline(timeout, request_timeout)
        if on_stdout is None and on_stderr is None:
            result = CommandResult.from_run(self._c._unary("Run", req, _no_default(deadline)))
        else:
            result = _collect(CommandStream(self._c, req, deadline), on_stdout, on_stderr)
        if check and not result.ok:
            raise CommandFailed(f"`{_calls.describe(cmd)}` {result.error}", result)
        return result

    def stream(
        self,
        cmd: Command,
        *,
        cwd: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        stdin: Optional[Content] = None,
        timeout: Optional[float] = None,
        idle_timeout: Optional[float] = None,
        workspace: Optional[str] = None,
        request_timeout: Optional[float] = None,
    ) -> "CommandStream":
        """Starts ``cmd`` and returns its events as an iterator:
        :class:`Started`, then :class:`Stdout` / :class:`Stderr` chunks as they
        come, then :class:`Exited`. ``stream.cancel()`` (or leaving its
        ``with`` block) cancels the call, and the daemon kills the command."""
        req = _calls.exec_request(self._c._ws(workspace), cmd, cwd, env, stdin, timeout, idle_timeout, None)
        return CommandStream(self._c, req, _calls.command_deadline(timeout, request_timeout))


def _no_default(deadline: Optional[float]) -> float:
    """A command without its own limit runs up to the policy's timeout: the
    client's file-call deadline must not cut it (infinity: no deadline)."""
    return deadline if deadline is not None else math.inf


class CommandStream:
    """The events of one ``Exec`` call; iterate it once."""

    def __init__(self, client: Client, request: pb.ExecRequest, timeout: Optional[float]) -> None:
        self._c = client
        self._request = request
        self._deadline = Deadline(timeout)
        self._call: Optional[grpc.Future] = None
        self._cancelled = False

    def __iter__(self) -> Iterator[ExecEvent]:
        attempt = 0
        while True:
            attempt += 1
            self._call = self._c._stub.Exec(self._request, timeout=self._deadline.remaining())
            seen = False
            try:
                for wire in self._call:  # type: ignore[attr-defined]
                    event = event_of(wire)
                    if event is not None:
                        seen = True
                        yield event
                return
            except grpc.RpcError as e:
                if self._cancelled:
                    return
                err = deadline_or(from_rpc_error(e, socket=self._c.socket), self._deadline)
                if seen:
                    raise err from e
                self._c._backoff("Exec", err, attempt, self._deadline, e)
            finally:
                # An abandoned iteration (break, an exception in the loop body)
                # ends the call too; on a finished call this does nothing.
                self._call.cancel()

    def cancel(self) -> None:
        """Cancels the call: the daemon kills the command's whole tree."""
        self._cancelled = True
        if self._call is not None:
            self._call.cancel()

    def __enter__(self) -> "CommandStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


def _collect(
    events: Iterable[ExecEvent], on_stdout: Optional[OutputCallback], on_stderr: Optional[OutputCallback]
) -> CommandResult:
    """Runs a stream to its end, feeding the callbacks text (a character
    split between chunks is held back until it is whole)."""
    collector = StreamCollector()
    out = codecs.getincrementaldecoder("utf-8")(errors="replace")
    err = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for event in events:
        collector.add(event)
        if isinstance(event, Stdout) and on_stdout is not None:
            text = out.decode(event.data)
            if text:
                on_stdout(text)
        elif isinstance(event, Stderr) and on_stderr is not None:
            text = err.decode(event.data)
            if text:
                on_stderr(text)
    for decoder, callback in ((out, on_stdout), (err, on_stderr)):
        rest = decoder.decode(b"", final=True)
        if rest and callback is not None:
            callback(rest)
    if collector.exited is None:
        raise RpcFailed("the command's stream ended before its exit was reported")
    return collector.result()


# Imported last: sessions builds on Commands and CommandStream above.
from .sessions import Sessions  # noqa: E402

__all__ = ["Client", "Files", "Commands", "CommandStream", "Started", "Stdout", "Stderr", "Exited"]
