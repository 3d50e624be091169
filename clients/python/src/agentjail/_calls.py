"""Request builders shared by the sync and asyncio clients: one place maps
the Python arguments onto the proto."""

from __future__ import annotations

import shlex
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

from .v1 import agentjail_pb2 as pb

Content = Union[str, bytes]
Command = Union[str, Sequence[str]]
EditSpec = Union[Tuple[str, str], Tuple[str, str, bool], Mapping[str, object]]

#: The ``mode=`` names of ``files.write``.
WRITE_MODES: Dict[str, Any] = {
    "upsert": pb.WRITE_MODE_UPSERT,
    "create": pb.WRITE_MODE_CREATE_ONLY,
    "overwrite": pb.WRITE_MODE_OVERWRITE,
}
#: The ``sort=`` names of ``files.list`` and ``files.glob``.
SORT_ORDERS: Dict[str, Any] = {
    "name": pb.SORT_ORDER_NAME,
    "mtime": pb.SORT_ORDER_MTIME,
    "size": pb.SORT_ORDER_SIZE,
}
#: The ``output=`` names of ``files.grep``.
GREP_OUTPUTS: Dict[str, Any] = {
    "files": pb.GREP_OUTPUT_FILES,
    "content": pb.GREP_OUTPUT_CONTENT,
    "count": pb.GREP_OUTPUT_COUNT,
}
#: Time the daemon may need beyond a command's own limit (building the
#: sandbox, killing the tree, the last record) before the client gives up.
COMMAND_DEADLINE_MARGIN = 10.0


def _pick(table: Dict[str, Any], name: Optional[str], what: str) -> Any:
    if name is None:
        return 0
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"{what} must be one of {sorted(table)}, not {name!r}") from None


def content_bytes(content: Content) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else bytes(content)


def read_window(
    ws: str,
    path: str,
    *,
    line_offset: Optional[int] = None,
    line_limit: Optional[int] = None,
    byte_offset: Optional[int] = None,
    byte_limit: Optional[int] = None,
    max_bytes: int = 0,
) -> pb.ReadFileRequest:
    req = pb.ReadFileRequest(workspace=ws, path=path, max_bytes=max_bytes)
    if byte_offset is not None or byte_limit is not None:
        if line_offset is not None or line_limit is not None:
            raise ValueError("give a line window or a byte window, not both")
        req.bytes.CopyFrom(pb.ByteWindow(offset=byte_offset or 0, limit=byte_limit or 0))
    elif line_offset is not None or line_limit is not None:
        req.lines.CopyFrom(pb.LineWindow(offset=line_offset or 0, limit=line_limit or 0))
    return req


def write(
    ws: str,
    path: str,
    content: Content,
    mode: str,
    create_parents: bool,
    expected_sha256: Optional[str],
) -> pb.WriteFileRequest:
    return pb.WriteFileRequest(
        workspace=ws,
        path=path,
        content=content_bytes(content),
        mode=_pick(WRITE_MODES, mode, "mode"),
        create_parents=create_parents,
        expected_sha256=expected_sha256 or "",
    )


def edit(
    ws: str,
    path: str,
    old: Optional[str],
    new: Optional[str],
    edits: Optional[Iterable[EditSpec]],
    replace_all: bool,
    dry_run: bool,
    expected_sha256: Optional[str],
) -> pb.EditFileRequest:
    items = []
    if old is not None or new is not None:
        if old is None or new is None:
            raise ValueError("give both old and new")
        items.append(pb.Edit(old=old, new=new, replace_all=replace_all))
    for e in edits or ():
        if isinstance(e, Mapping):
            items.append(
                pb.Edit(
                    old=str(e["old"]),
                    new=str(e["new"]),
                    replace_all=bool(e.get("replace_all", False)),
                )
            )
        else:
            items.append(pb.Edit(old=e[0], new=e[1], replace_all=bool(e[2]) if len(e) > 2 else False))
    if not items:
        raise ValueError("give old and new, or edits=[(old, new), ...]")
    return pb.EditFileRequest(
        workspace=ws, path=path, edits=items, dry_run=dry_run, expected_sha256=expected_sha256 or ""
    )


def list_dir(
    ws: str,
    path: str,
    depth: int,
    include_hidden: bool,
    respect_gitignore: Optional[bool],
    sort: Optional[str],
    page_size: int,
) -> pb.ListDirRequest:
    req = pb.ListDirRequest(
        workspace=ws,
        path=path,
        depth=depth,
        include_hidden=include_hidden,
        sort=_pick(SORT_ORDERS, sort, "sort"),
        max_entries=page_size,
    )
    if respect_gitignore is not None:
        req.respect_gitignore = respect_gitignore
    return req


def glob(
    ws: str,
    pattern: str,
    path: str,
    include_hidden: bool,
    respect_gitignore: Optional[bool],
    max_results: int,
    sort: Optional[str],
) -> pb.GlobRequest:
    req = pb.GlobRequest(
        workspace=ws,
        pattern=pattern,
        path=path,
        include_hidden=include_hidden,
        max_results=max_results,
        sort=_pick(SORT_ORDERS, sort, "sort"),
    )
    if respect_gitignore is not None:
        req.respect_gitignore = respect_gitignore
    return req


def grep(
    ws: str,
    pattern: str,
    path: str,
    glob: str,
    output: str,
    fixed_string: bool,
    case_insensitive: bool,
    context_before: int,
    context_after: int,
    max_results: int,
    include_hidden: bool,
    respect_gitignore: Optional[bool],
) -> pb.GrepRequest:
    req = pb.GrepRequest(
        workspace=ws,
        pattern=pattern,
        path=path,
        glob=glob,
        output=_pick(GREP_OUTPUTS, output, "output"),
        fixed_string=fixed_string,
        case_insensitive=case_insensitive,
        context_before=context_before,
        context_after=context_after,
        max_results=max_results,
        include_hidden=include_hidden,
    )
    if respect_gitignore is not None:
        req.respect_gitignore = respect_gitignore
    return req


def exec_request(
    ws: str,
    cmd: Command,
    cwd: Optional[str],
    env: Optional[Mapping[str, str]],
    stdin: Optional[Content],
    timeout: Optional[float],
    idle_timeout: Optional[float],
    output_budget: Optional[int],
) -> pb.ExecRequest:
    """A string runs through ``/bin/sh -c`` (the policy must allow a shell);
    a sequence is the argv, run without a shell."""
    req = pb.ExecRequest(
        workspace=ws,
        cwd=cwd or "",
        env=dict(env or {}),
        stdin=content_bytes(stdin) if stdin is not None else b"",
        timeout_ms=_millis(timeout),
        idle_timeout_ms=_millis(idle_timeout),
        output_budget_bytes=output_budget or 0,
    )
    if isinstance(cmd, str):
        req.shell = cmd
    else:
        argv = [str(a) for a in cmd]
        if not argv:
            raise ValueError("the command is empty")
        req.argv.extend(argv)
    return req


def command_deadline(timeout: Optional[float], request_timeout: Optional[float]) -> Optional[float]:
    """The gRPC deadline of a command: an explicit ``request_timeout``, else the
    command's ``timeout`` plus a margin, so the daemon reports ``timed_out``
    itself rather than the client cutting the call."""
    if request_timeout is not None:
        return request_timeout
    if timeout is not None:
        return timeout + COMMAND_DEADLINE_MARGIN
    return None


def describe(cmd: Command) -> str:
    return cmd if isinstance(cmd, str) else shlex.join([str(a) for a in cmd])


def _millis(seconds: Optional[float]) -> int:
    if seconds is None:
        return 0
    if seconds <= 0:
        raise ValueError("a timeout must be positive")
    return max(1, int(seconds * 1000))


# ---------------------------------------------------------------- sessions

#: The ``stream=`` names of ``Process.read``.
OUTPUT_STREAMS: Dict[str, Any] = {
    "stdout": pb.OUTPUT_STREAM_STDOUT,
    "stderr": pb.OUTPUT_STREAM_STDERR,
}
#: The daemon caps one ReadOutput wait and one WaitProcess at this many
#: seconds; longer waits are made of several calls.
MAX_SERVER_WAIT = 30.0


def open_session(
    ws: str,
    cwd: Optional[str],
    env: Optional[Mapping[str, str]],
    memory_bytes: Optional[int],
    pids: Optional[int],
    idle_timeout: Optional[float],
    max_lifetime: Optional[float],
) -> pb.OpenSessionRequest:
    return pb.OpenSessionRequest(
        workspace=ws,
        cwd=cwd or "",
        env=dict(env or {}),
        limits=pb.SessionLimits(memory_bytes=memory_bytes or 0, pids=pids or 0),
        idle_timeout_ms=_millis(idle_timeout),
        max_lifetime_ms=_millis(max_lifetime),
    )


def start_process(
    session_id: str,
    cmd: Command,
    cwd: Optional[str],
    env: Optional[Mapping[str, str]],
    tty: bool,
    rows: int,
    cols: int,
    output_buffer: Optional[int],
) -> pb.StartProcessRequest:
    """As :func:`exec_request`: a string runs through ``/bin/sh -c``, a sequence is the argv."""
    req = pb.StartProcessRequest(
        session_id=session_id,
        cwd=cwd or "",
        env=dict(env or {}),
        tty=tty,
        rows=rows,
        cols=cols,
        output_buffer_bytes=output_buffer or 0,
    )
    if isinstance(cmd, str):
        req.shell = cmd
    else:
        argv = [str(a) for a in cmd]
        if not argv:
            raise ValueError("the command is empty")
        req.argv.extend(argv)
    return req


def output_stream(name: str) -> Any:
    return _pick(OUTPUT_STREAMS, name, "stream")


def server_wait(seconds: Optional[float]) -> int:
    """Milliseconds of one server-side wait (``None`` or 0: answer at once)."""
    if seconds is None or seconds <= 0:
        return 0
    return max(1, int(min(seconds, MAX_SERVER_WAIT) * 1000))
