"""Where the daemon listens, found as the ``agentjail`` CLI finds it
(``src/config.rs`` ``default_socket_path``, ``src/cli/call.rs``)."""

from __future__ import annotations

import os
import tempfile
from typing import Optional, Union

#: Environment variable that overrides the default socket, as for the CLI.
SOCKET_ENV = "AGENTJAIL_SOCKET"
#: The socket of a daemon run as root (the system service).
SYSTEM_SOCKET = "/run/agentjail/agentjail.sock"


def default_socket() -> str:
    """``$AGENTJAIL_SOCKET``; else ``/run/agentjail/agentjail.sock`` as root;
    else ``$XDG_RUNTIME_DIR/agentjail.sock``; else
    ``$TMPDIR/agentjail-<uid>.sock`` (``/tmp`` without ``TMPDIR``)."""
    env = os.environ.get(SOCKET_ENV)
    if env:
        return env
    if os.geteuid() == 0:
        return SYSTEM_SOCKET
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "agentjail.sock")
    return os.path.join(tempfile.gettempdir(), f"agentjail-{os.getuid()}.sock")


def resolve_socket(socket: Optional[Union[str, "os.PathLike[str]"]]) -> str:
    """The absolute socket path for ``connect(socket=...)``."""
    path = os.fspath(socket) if socket is not None else default_socket()
    if path.startswith("unix:"):
        path = path[len("unix:") :].lstrip("/")
        path = "/" + path
    return os.path.abspath(path)


def target(socket_path: str) -> str:
    """The gRPC target for a Unix socket path."""
    return f"unix://{socket_path}"
