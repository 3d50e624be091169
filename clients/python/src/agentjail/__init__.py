"""Python client for agentjail: an AI agent's file and shell tool calls, run
by the agentjail daemon under its policy, over the daemon's Unix socket.

    import agentjail

    with agentjail.connect() as aj:
        aj.files.write("notes/plan.md", "step one\\n")
        print(aj.files.read("notes/plan.md"))
        result = aj.commands.run("python3 -m unittest", cwd="proj", timeout=60)
        print(result.exit_code, result.stdout, result.stderr)
        with aj.sessions.open() as s:                 # one sandbox across calls
            s.run("cd proj && export MODE=dev")
            print(s.run("pwd; echo $MODE").stdout)

Every refusal raises a subclass of :class:`AgentjailError` named after the
daemon's reason (:class:`PolicyDenied`, :class:`PathOutsideWorkspace`, ...).
The asyncio client is :mod:`agentjail.aio`.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

from ._channel import Option
from ._retry import NO_RETRY, RetryPolicy
from ._socket import SOCKET_ENV, SYSTEM_SOCKET, default_socket
from .client import DEFAULT_TIMEOUT, Client, Commands, CommandStream, Files
from .errors import (  # one class per reason of the daemon, then the catch-alls
    AgentjailError,
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
    QuotaExceeded,
    RateLimited,
    UnknownReason,
    DeadlineExceeded,
    Cancelled,
    RpcFailed,
    CommandFailed,
    REASON_CLASSES,
)
from .results import CommandResult, ExecEvent, Exited, Listing, ProcessOutput, Started, Stderr, Stdout
from .sessions import Process, Session, Sessions
from .v1 import agentjail_pb2 as pb

__version__ = "0.1.0"


def connect(
    socket: Union[str, "os.PathLike[str]", None] = None,
    *,
    workspace: str = "",
    timeout: Optional[float] = DEFAULT_TIMEOUT,
    retry: Optional[RetryPolicy] = None,
    options: Sequence[Option] = (),
) -> Client:
    """A :class:`Client` for the daemon at ``socket``.

    Without ``socket`` the daemon is found as the ``agentjail`` CLI finds it:
    ``$AGENTJAIL_SOCKET``, else ``/run/agentjail/agentjail.sock`` as root,
    else ``$XDG_RUNTIME_DIR/agentjail.sock`` (see :func:`default_socket`).
    ``workspace`` is the default workspace of calls ("" = the agent's first);
    ``timeout`` the default deadline of file calls in seconds (``None``: none);
    ``retry`` when to try again (:data:`NO_RETRY` turns retries off).
    The channel connects lazily: the first call reports an unreachable daemon
    as :class:`Unavailable`.
    """
    return Client(socket, workspace=workspace, timeout=timeout, retry=retry, options=options)


__all__ = [
    "connect",
    "default_socket",
    "Client",
    "Files",
    "Commands",
    "CommandStream",
    "CommandResult",
    "Sessions",
    "Session",
    "Process",
    "ProcessOutput",
    "ExecEvent",
    "Started",
    "Stdout",
    "Stderr",
    "Exited",
    "Listing",
    "RetryPolicy",
    "NO_RETRY",
    "DEFAULT_TIMEOUT",
    "SOCKET_ENV",
    "SYSTEM_SOCKET",
    "pb",
    "AgentjailError",
    "InvalidArgument",
    "PathOutsideWorkspace",
    "SymlinkEscape",
    "PolicyDenied",
    "UnknownCaller",
    "UnknownWorkspace",
    "NotFound",
    "AlreadyExists",
    "IsADirectory",
    "NotADirectory",
    "DirectoryNotEmpty",
    "NotARegularFile",
    "TooLarge",
    "StaleContent",
    "MatchNotFound",
    "MatchAmbiguous",
    "ReadOnlyWorkspace",
    "Unavailable",
    "Internal",
    "LimitExceeded",
    "UndecodableRequest",
    "TooManyConcurrentCalls",
    "Unauthenticated",
    "ToolNotAllowed",
    "IdempotencyKeyReused",
    "QuotaExceeded",
    "RateLimited",
    "UnknownReason",
    "DeadlineExceeded",
    "Cancelled",
    "RpcFailed",
    "CommandFailed",
    "REASON_CLASSES",
]
