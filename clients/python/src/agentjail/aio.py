"""The asyncio client: ``agentjail.aio.connect()``.

The same surface as the sync client, with every call awaited and
``commands.stream`` an async iterator. Cancelling the task that awaits a call
cancels the RPC; for a command the daemon then kills its whole tree.
"""

from __future__ import annotations

import asyncio
import codecs
import os
from typing import AsyncIterator, Iterable, List, Mapping, Optional, Sequence, Union

import grpc
import grpc.aio

from . import _calls
from ._calls import Command, Content, EditSpec
from ._channel import CHANNEL_OPTIONS, Option
from ._retry import Deadline, RetryPolicy, deadline_or
from ._socket import resolve_socket, target
from .client import DEFAULT_TIMEOUT, OutputCallback, _no_default, _same_file
from .errors import AgentjailError, CommandFailed, NotFound, RpcFailed, from_rpc_error
from .results import CommandResult, ExecEvent, Listing, Stderr, Stdout, StreamCollector, event_of
from .v1 import agentjail_pb2 as pb
from .v1 import agentjail_pb2_grpc as pb_grpc


def connect(
    socket: Union[str, "os.PathLike[str]", None] = None,
    *,
    workspace: str = "",
    timeout: Optional[float] = DEFAULT_TIMEOUT,
    retry: Optional[RetryPolicy] = None,
    options: Sequence[Option] = (),
) -> "AsyncClient":
    """An :class:`AsyncClient` for the daemon at ``socket`` (found as the CLI
    finds it when ``None``: see :func:`agentjail.default_socket`). Must be
    called with an event loop running; use ``async with``."""
    return AsyncClient(socket, workspace=workspace, timeout=timeout, retry=retry, options=options)


class AsyncClient:
    """A connection to the daemon for asyncio code; ``files``, ``commands``
    and ``sessions`` as on :class:`agentjail.Client`."""

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
        self.workspace = workspace
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self._channel = grpc.aio.insecure_channel(target(self.socket), options=[*CHANNEL_OPTIONS, *options])
        self._stub = pb_grpc.ToolSandboxStub(self._channel)
        self.files = AsyncFiles(self)
        self.commands = AsyncCommands(self)
        self.sessions = AsyncSessions(self)

    async def whoami(self, *, timeout: Optional[float] = None) -> pb.WhoAmIResponse:
        """The agent the daemon sees this process as, and its workspaces."""
        return await self._unary("WhoAmI", pb.WhoAmIRequest(), timeout)

    async def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _ws(self, workspace: Optional[str]) -> str:
        return self.workspace if workspace is None else workspace

    async def _unary(self, method: str, request: object, timeout: Optional[float]):  # type: ignore[no-untyped-def]
        deadline = Deadline(self.timeout if timeout is None else timeout)
        call = getattr(self._stub, method)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await call(request, timeout=deadline.remaining())
            except grpc.RpcError as e:
                err = deadline_or(from_rpc_error(e, socket=self.socket), deadline)
                await self._backoff(method, err, attempt, deadline, e)

    async def _backoff(
        self, method: str, err: AgentjailError, attempt: int, deadline: Deadline, cause: BaseException
    ) -> None:
        if not self.retry.should_retry(method, err, attempt):
            raise err from cause
        delay = self.retry.delay(err, attempt)
        if not deadline.allows(delay):
            raise err from cause
        if self.retry.on_retry is not None:
            self.retry.on_retry(attempt, err, delay)
        await asyncio.sleep(delay)


class AsyncFiles:
    """The file tools of :class:`agentjail.client.Files`, awaited."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def read(
        self, path: str, *, format: str = "text", workspace: Optional[str] = None, timeout: Optional[float] = None
    ) -> Union[str, bytes]:
        """The whole file as ``str`` or (``format="bytes"``) ``bytes``."""
        if format not in ("text", "bytes"):
            raise ValueError('format must be "text" or "bytes"')
        ws = self._c._ws(workspace)
        chunks: List[bytes] = []
        offset = 0
        first: Optional[pb.ReadFileResponse] = None
        while True:
            r = await self._c._unary("ReadFile", _calls.read_window(ws, path, byte_offset=offset), timeout)
            first = _same_file(first, r, path)
            chunks.append(r.data if r.is_binary else r.text.encode("utf-8"))
            if not r.truncated or r.next_offset <= offset:
                break
            offset = r.next_offset
        data = b"".join(chunks)
        return data if format == "bytes" else data.decode("utf-8", errors="replace")

    async def read_window(
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
        """One ``ReadFile`` call (a line or byte window)."""
        req = _calls.read_window(
            self._c._ws(workspace),
            path,
            line_offset=offset,
            line_limit=limit,
            byte_offset=byte_offset,
            byte_limit=byte_limit,
            max_bytes=max_bytes,
        )
        return await self._c._unary("ReadFile", req, timeout)

    async def write(
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
        """Writes ``content`` atomically (see :meth:`agentjail.client.Files.write`)."""
        req = _calls.write(self._c._ws(workspace), path, content, mode, create_parents, expected_sha256)
        return await self._c._unary("WriteFile", req, timeout)

    async def edit(
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
        """Exact replacements, all or none (see :meth:`agentjail.client.Files.edit`)."""
        req = _calls.edit(self._c._ws(workspace), path, old, new, edits, replace_all, dry_run, expected_sha256)
        return await self._c._unary("EditFile", req, timeout)

    async def list(
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
        """Entries below ``path``, every page fetched."""
        req = _calls.list_dir(self._c._ws(workspace), path, depth, include_hidden, respect_gitignore, sort, page_size)
        out = Listing()
        while True:
            r = await self._c._unary("ListDir", req, timeout)
            out.extend(r.entries)
            out.scan_truncated = out.scan_truncated or r.scan_truncated
            if not r.next_page_token:
                return out
            req.page_token = r.next_page_token

    async def glob(
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
        """Files matching ``pattern``."""
        req = _calls.glob(self._c._ws(workspace), pattern, path, include_hidden, respect_gitignore, max_results, sort)
        return await self._c._unary("Glob", req, timeout)

    async def grep(
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
        """Search file contents (``output``: ``"files"``, ``"content"``, ``"count"``)."""
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
        return await self._c._unary("Grep", req, timeout)

    async def stat(
        self, path: str, *, no_follow: bool = False, workspace: Optional[str] = None, timeout: Optional[float] = None
    ) -> pb.StatResponse:
        """Kind, size, mode, mtime."""
        req = pb.StatRequest(workspace=self._c._ws(workspace), path=path, no_follow=no_follow)
        return await self._c._unary("Stat", req, timeout)

    async def exists(self, path: str, *, workspace: Optional[str] = None, timeout: Optional[float] = None) -> bool:
        """True if ``path`` exists."""
        try:
            await self.stat(path, no_follow=True, workspace=workspace, timeout=timeout)
            return True
        except NotFound:
            return False

    async def mkdir(
        self, path: str, *, parents: bool = True, workspace: Optional[str] = None, timeout: Optional[float] = None
    ) -> pb.MakeDirResponse:
        """Creates a directory (and, with ``parents``, its missing parents)."""
        req = pb.MakeDirRequest(workspace=self._c._ws(workspace), path=path, parents=parents)
        return await self._c._unary("MakeDir", req, timeout)

    async def move(
        self,
        src: str,
        dst: str,
        *,
        overwrite: bool = False,
        create_parents: bool = False,
        workspace: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> pb.MoveResponse:
        """Renames ``src`` to ``dst``."""
        req = pb.MoveRequest(
            workspace=self._c._ws(workspace), to=dst, overwrite=overwrite, create_parents=create_parents
        )
        setattr(req, "from", src)
        return await self._c._unary("Move", req, timeout)

    rename = move

    async def remove(
        self,
        path: str,
        *,
        recursive: bool = False,
        missing_ok: bool = False,
        workspace: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> pb.RemoveResponse:
        """Removes a file or directory."""
        req = pb.RemoveRequest(workspace=self._c._ws(workspace), path=path, recursive=recursive, missing_ok=missing_ok)
        return await self._c._unary("Remove", req, timeout)


class AsyncCommands:
    """The shell tools of :class:`agentjail.client.Commands`, awaited."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def run(
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
        """Runs ``cmd`` and waits for it (see :meth:`agentjail.client.Commands.run`)."""
        req = _calls.exec_request(self._c._ws(workspace), cmd, cwd, env, stdin, timeout, idle_timeout, output_budget)
        return await self._run(req, cmd, timeout, request_timeout, on_stdout, on_stderr, check)

    async def _run(
        self,
        req: pb.ExecRequest,
        cmd: Command,
        timeout: Optional[float],
        request_timeout: Optional[float],
        on_stdout: Optional[OutputCallback],
        on_stderr: Optional[OutputCallback],
        check: bool,
    ) -> CommandResult:
        deadline = _calls.command_deadline(timeout, request_timeout)
        if on_stdout is None and on_stderr is None:
            result = CommandResult.from_run(await self._c._unary("Run", req, _no_default(deadline)))
        else:
            result = await _collect(AsyncCommandStream(self._c, req, deadline), on_stdout, on_stderr)
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
    ) -> "AsyncCommandStream":
        """Starts ``cmd``; ``async for event in stream`` yields Started, Stdout,
        Stderr and Exited events."""
        req = _calls.exec_request(self._c._ws(workspace), cmd, cwd, env, stdin, timeout, idle_timeout, None)
        return AsyncCommandStream(self._c, req, _calls.command_deadline(timeout, request_timeout))


class AsyncCommandStream:
    """The events of one ``Exec`` call; iterate it once with ``async for``."""

    def __init__(self, client: AsyncClient, request: pb.ExecRequest, timeout: Optional[float]) -> None:
        self._c = client
        self._request = request
        self._deadline = Deadline(timeout)
        self._call: Optional[grpc.aio.UnaryStreamCall] = None
        self._cancelled = False

    async def __aiter__(self) -> AsyncIterator[ExecEvent]:
        attempt = 0
        while True:
            attempt += 1
            self._call = self._c._stub.Exec(self._request, timeout=self._deadline.remaining())
            seen = False
            try:
                async for wire in self._call:  # type: ignore[union-attr]
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
                await self._c._backoff("Exec", err, attempt, self._deadline, e)
            finally:
                # A cancelled task or an abandoned iteration ends the call.
                if self._call is not None and not self._call.done():
                    self._call.cancel()

    def cancel(self) -> None:
        """Cancels the call: the daemon kills the command's whole tree."""
        self._cancelled = True
        if self._call is not None:
            self._call.cancel()

    async def __aenter__(self) -> "AsyncCommandStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cancel()


async def _collect(
    events: AsyncCommandStream, on_stdout: Optional[OutputCallback], on_stderr: Optional[OutputCallback]
) -> CommandResult:
    collector = StreamCollector()
    out = codecs.getincrementaldecoder("utf-8")(errors="replace")
    err = codecs.getincrementaldecoder("utf-8")(errors="replace")
    async for event in events:
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


# Imported last: the async sessions build on AsyncCommands above.
from .aio_sessions import AsyncProcess, AsyncSession, AsyncSessions  # noqa: E402

__all__ = [
    "connect",
    "AsyncClient",
    "AsyncFiles",
    "AsyncCommands",
    "AsyncCommandStream",
    "AsyncSessions",
    "AsyncSession",
    "AsyncProcess",
]
