"""Exceptions: one class per reason the daemon sends (``src/error.rs``).

Every refusal from the daemon is a gRPC status carrying a
``google.rpc.ErrorInfo`` (domain ``agentjail.dev``) whose ``reason`` is
stable; :func:`from_rpc_error` turns it into the matching subclass of
:class:`AgentjailError`, with the ErrorInfo metadata parsed
(:attr:`AgentjailError.rule`, :attr:`~AgentjailError.path`,
:attr:`~AgentjailError.lines`, ...). Statuses without an ErrorInfo (the
transport failed, a deadline passed, the call was cancelled, a message was
too large) map by their gRPC code.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Type

import grpc
from google.rpc import error_details_pb2, status_pb2

#: Domain of every ErrorInfo the daemon sends.
ERROR_DOMAIN = "agentjail.dev"
#: Response metadata that repeats the reason, for clients without rich status.
REASON_METADATA_KEY = "agentjail-reason"
#: Response metadata carrying the daemon's id for the call.
REQUEST_ID_METADATA_KEY = "agentjail-request-id"
_STATUS_DETAILS_KEY = "grpc-status-details-bin"
_UNSET = object()


class AgentjailError(Exception):
    """A refused or failed call.

    Attributes:
        reason: the daemon's stable reason (``"POLICY_DENIED"``, ...), or
            ``None`` when the status carried none (transport failures,
            deadlines, cancellation).
        code: the gRPC status code.
        message: the daemon's message, which says what to do next.
        metadata: the ErrorInfo metadata (``rule``, ``path``, ``lines``, ...).
        retry_delay: the delay a ``google.rpc.RetryInfo`` asked for, if any.
        request_id: the daemon's id for the call, if it sent one.
    """

    #: The reason this class stands for (``None`` on the catch-alls).
    REASON: Optional[str] = None

    def __init__(
        self,
        message: str,
        *,
        reason: object = _UNSET,
        code: grpc.StatusCode = grpc.StatusCode.UNKNOWN,
        metadata: Optional[Mapping[str, str]] = None,
        retry_delay: Optional[timedelta] = None,
        request_id: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        # Raised by this client itself: the class's reason. From a status:
        # what the status carried, possibly none.
        self.reason: Optional[str] = self.REASON if reason is _UNSET else reason  # type: ignore[assignment]
        self.code = code
        self.metadata: Dict[str, str] = dict(metadata or {})
        self.retry_delay = retry_delay
        self.request_id = request_id

    def __str__(self) -> str:
        head = self.reason or self.code.name
        return f"{head}: {self.message}"

    @property
    def rule(self) -> Optional[str]:
        """The policy rule that decided, e.g. ``local: files.deny "**/.env" (default.toml:22)``."""
        return self.metadata.get("rule")

    @property
    def path(self) -> Optional[str]:
        """The path the error is about."""
        return self.metadata.get("path")

    @property
    def lines(self) -> List[int]:
        """Line numbers the daemon named (``MATCH_AMBIGUOUS``: where each match is)."""
        raw = self.metadata.get("lines", "")
        return [int(p) for p in raw.split(",") if p.strip().isdigit()]

    @property
    def matches(self) -> Optional[int]:
        """How many times an edit's ``old`` text occurs (``MATCH_AMBIGUOUS``)."""
        return self._int("matches")

    @property
    def nearest_line(self) -> Optional[int]:
        """The most similar line to a missing ``old`` text (``MATCH_NOT_FOUND``)."""
        return self._int("nearest_line")

    @property
    def edit_index(self) -> Optional[int]:
        """Which edit of a multi-edit call failed (0-based)."""
        return self._int("edit_index")

    def _int(self, key: str) -> Optional[int]:
        value = self.metadata.get(key, "")
        return int(value) if value.strip().isdigit() else None

    @property
    def retryable(self) -> bool:
        """True when the daemon said nothing was done and a retry may succeed."""
        return self.code == grpc.StatusCode.UNAVAILABLE and self.reason == "UNAVAILABLE"


# One class per reason of src/error.rs, in its order.
class InvalidArgument(AgentjailError):
    """A NUL byte, absolute, empty or over-long path, bad regex or glob: fix the request."""

    REASON = "INVALID_ARGUMENT"


class PathOutsideWorkspace(AgentjailError):
    """A ``..`` leaves the workspace: give a path relative to its root."""

    REASON = "PATH_OUTSIDE_WORKSPACE"


class SymlinkEscape(AgentjailError):
    """A symlink on the path points outside the workspace (or is absolute)."""

    REASON = "SYMLINK_ESCAPE"


class PolicyDenied(AgentjailError):
    """The policy does not allow it; :attr:`rule` names the rule."""

    REASON = "POLICY_DENIED"


class UnknownCaller(AgentjailError):
    """The caller maps to no agent: ask the operator."""

    REASON = "UNKNOWN_CALLER"


class UnknownWorkspace(AgentjailError):
    """No such workspace for this agent (see ``whoami()``)."""

    REASON = "UNKNOWN_WORKSPACE"


class NotFound(AgentjailError):
    """The path does not exist."""

    REASON = "NOT_FOUND"


class AlreadyExists(AgentjailError):
    """A create-only write, mkdir or move onto an existing path."""

    REASON = "ALREADY_EXISTS"


class IsADirectory(AgentjailError):
    """A file operation on a directory."""

    REASON = "IS_A_DIRECTORY"


class NotADirectory(AgentjailError):
    """A directory operation on something else."""

    REASON = "NOT_A_DIRECTORY"


class DirectoryNotEmpty(AgentjailError):
    """Removing a non-empty directory: pass ``recursive=True``."""

    REASON = "DIRECTORY_NOT_EMPTY"


class NotARegularFile(AgentjailError):
    """A FIFO, device or socket: never opened."""

    REASON = "NOT_A_REGULAR_FILE"


class TooLarge(AgentjailError):
    """Over a policy size limit: use a window, or write less."""

    REASON = "TOO_LARGE"


class StaleContent(AgentjailError):
    """The file changed since it was read (``expected_sha256``): read it again."""

    REASON = "STALE_CONTENT"


class MatchNotFound(AgentjailError):
    """An edit's ``old`` text is not in the file; the nearest line is named."""

    REASON = "MATCH_NOT_FOUND"


class MatchAmbiguous(AgentjailError):
    """An edit's ``old`` text occurs more than once: add context or ``replace_all``."""

    REASON = "MATCH_AMBIGUOUS"


class ReadOnlyWorkspace(AgentjailError):
    """A write to a read-only workspace."""

    REASON = "READ_ONLY_WORKSPACE"


class Unavailable(AgentjailError):
    """The daemon could not do it right now (starting, draining, audit log
    failing, a file replaced during the call). With reason ``UNAVAILABLE``
    nothing was done and a retry is safe; without a reason the transport
    failed (is ``agentjail serve`` running?)."""

    REASON = "UNAVAILABLE"


class Internal(AgentjailError):
    """A bug or an unexpected host failure: report it."""

    REASON = "INTERNAL"


class LimitExceeded(AgentjailError):
    """Over a request limit (argv or env entries, pattern bytes, edits per
    call, ...), refused before any work: ``metadata["limit"]`` names it and
    ``metadata["max"]`` gives its value; send less."""

    REASON = "LIMIT_EXCEEDED"


class UndecodableRequest(AgentjailError):
    """The request bytes are not a valid message of the method's type: the
    client is not built from this daemon's proto. Do not retry the same bytes."""

    REASON = "UNDECODABLE_REQUEST"


class TooManyConcurrentCalls(AgentjailError):
    """The agent is at a concurrency cap of the daemon (blocking file calls or
    commands at once); nothing was done. Retried after the daemon's RetryInfo."""

    REASON = "TOO_MANY_CONCURRENT_CALLS"


class Unauthenticated(AgentjailError):
    """A TCP caller without a valid client certificate or bearer token."""

    REASON = "UNAUTHENTICATED"


class ToolNotAllowed(AgentjailError):
    """The agent's roles do not include this tool; ``metadata["rule"]`` names them."""

    REASON = "TOOL_NOT_ALLOWED"


class IdempotencyKeyReused(AgentjailError):
    """The idempotency key was used before for a different request: use a new key."""

    REASON = "IDEMPOTENCY_KEY_REUSED"


class RateLimited(AgentjailError):
    """Over the agent's call rate; nothing was done. Retried after the daemon's RetryInfo."""

    REASON = "RATE_LIMITED"


class QuotaExceeded(AgentjailError):
    """One of the agent's budgets for the window (command CPU or wall seconds,
    bytes written) is used up; nothing was done. ``metadata["limit"]`` names
    the policy key, :attr:`retry_delay` says when the window frees enough.
    Retried only when that delay is short (``RetryPolicy.max_quota_wait``)."""

    REASON = "QUOTA_EXCEEDED"


class UnknownReason(AgentjailError):
    """A reason this client does not know (a newer daemon): see :attr:`reason`."""


class DeadlineExceeded(AgentjailError):
    """The call's deadline (``timeout=``) passed before the daemon answered.
    With reason ``DEADLINE_EXCEEDED`` the daemon stopped the work and its
    audit record says what had been done."""

    REASON = "DEADLINE_EXCEEDED"


class Cancelled(AgentjailError):
    """The call was cancelled. With reason ``CANCELLED`` the daemon stopped
    the work and its audit record says what had been done."""

    REASON = "CANCELLED"


class RpcFailed(AgentjailError):
    """Any other gRPC failure without a reason (e.g. ``OUT_OF_RANGE`` for a
    message over the daemon's ``max_message_bytes``, ``UNIMPLEMENTED`` on an
    older daemon)."""


class CommandFailed(AgentjailError):
    """``commands.run(..., check=True)`` and the command did not exit 0.

    Not a daemon reason: the command ran; :attr:`result` holds what it did.
    """

    def __init__(self, message: str, result: object) -> None:
        super().__init__(message, code=grpc.StatusCode.OK)
        self.result = result


REASON_CLASSES: Dict[str, Type[AgentjailError]] = {
    cls.REASON: cls
    for cls in (
        InvalidArgument,
        PathOutsideWorkspace,
        SymlinkEscape,
        PolicyDenied,
        UnknownCaller,
        UnknownWorkspace,
        NotFound,
        AlreadyExists,
        IsADirectory,
        NotADirectory,
        DirectoryNotEmpty,
        NotARegularFile,
        TooLarge,
        StaleContent,
        MatchNotFound,
        MatchAmbiguous,
        ReadOnlyWorkspace,
        Unavailable,
        Internal,
        LimitExceeded,
        UndecodableRequest,
        TooManyConcurrentCalls,
        Unauthenticated,
        ToolNotAllowed,
        IdempotencyKeyReused,
        RateLimited,
        QuotaExceeded,
        DeadlineExceeded,
        Cancelled,
    )
    if cls.REASON is not None
}

_CODE_CLASSES: Dict[grpc.StatusCode, Type[AgentjailError]] = {
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
}


def _metadata_pairs(md: object) -> Sequence[Tuple[str, object]]:
    if md is None:
        return ()
    return [(k, v) for k, v in md]  # type: ignore[attr-defined]


def _parse_details(raw: object) -> Tuple[Optional[error_details_pb2.ErrorInfo], Optional[timedelta]]:
    """ErrorInfo and RetryInfo out of ``grpc-status-details-bin``."""
    if not isinstance(raw, (bytes, bytearray)):
        return None, None
    status = status_pb2.Status()
    try:
        status.ParseFromString(bytes(raw))
    except Exception:  # a malformed detail is no reason to hide the status
        return None, None
    info: Optional[error_details_pb2.ErrorInfo] = None
    delay: Optional[timedelta] = None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR) and info is None:
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR) and delay is None:
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            delay = retry.retry_delay.ToTimedelta()
    return info, delay


def from_status(
    code: grpc.StatusCode,
    message: str,
    trailing_metadata: object,
    *,
    socket: Optional[str] = None,
) -> AgentjailError:
    """The exception for a failed call's code, message and trailing metadata."""
    pairs = _metadata_pairs(trailing_metadata)
    details = next((v for k, v in pairs if k == _STATUS_DETAILS_KEY), None)
    info, delay = _parse_details(details)
    reason: Optional[str] = None
    metadata: Dict[str, str] = {}
    if info is not None and info.domain == ERROR_DOMAIN:
        reason = info.reason
        metadata = dict(info.metadata)
    if reason is None:
        header = next((v for k, v in pairs if k == REASON_METADATA_KEY), None)
        if isinstance(header, str) and header:
            reason = header
    request_id = next((v for k, v in pairs if k == REQUEST_ID_METADATA_KEY), None)
    if reason is not None:
        cls = REASON_CLASSES.get(reason, UnknownReason)
    else:
        cls = _CODE_CLASSES.get(code, RpcFailed)
        if code == grpc.StatusCode.UNAVAILABLE and socket is not None:
            message = (
                f"{message}; cannot reach the daemon at {socket}: is `agentjail serve` "
                "running? (pass socket= or set AGENTJAIL_SOCKET)"
            )
    return cls(
        message,
        reason=reason,
        code=code,
        metadata=metadata,
        retry_delay=delay,
        request_id=request_id if isinstance(request_id, str) else None,
    )


def from_rpc_error(error: grpc.RpcError, *, socket: Optional[str] = None) -> AgentjailError:
    """The exception for a ``grpc.RpcError`` (sync) or ``grpc.aio.AioRpcError``."""
    code = error.code()  # type: ignore[attr-defined]
    message = error.details() or ""  # type: ignore[attr-defined]
    trailing = error.trailing_metadata()  # type: ignore[attr-defined]
    return from_status(code, message, trailing, socket=socket)
