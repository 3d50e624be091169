"""Starts the real ``agentjail serve`` (built by cargo, never here) in
temporary directories, as the Rust suites' ``tests/launch`` does.

``AGENTJAIL_BIN`` names the binary (default: the repository's
``target/debug/agentjail``). The daemon must run as root: it builds a
sandbox for every command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent
# The working copy, not whatever version pip installed last.
sys.path.insert(0, str(HERE.parent / "src"))

import agentjail  # noqa: E402

SANDBOX_UID = 65534
START_LIMIT = 20.0
#: The policy's read cap: small, so whole-file reads page.
MAX_READ_BYTES = 4096
MAX_WRITE_BYTES = 65536


def agentjail_bin() -> str:
    path = os.environ.get("AGENTJAIL_BIN") or str(REPO / "target" / "debug" / "agentjail")
    if not os.access(path, os.X_OK):
        pytest.fail(f"no agentjail binary at {path}: run `cargo build` or set AGENTJAIL_BIN")
    return path


def test_policy(ws: Path, ro: Path) -> str:
    """The tests' policy: the default policy's shape, on the test's workspaces."""
    return f"""
[[agents]]
name = "local"
daemon_user = true

[[agents.workspaces]]
name = "main"
path = "{ws}"
access = "read-write"

[[agents.workspaces]]
name = "ro"
path = "{ro}"
access = "read-only"

[agents.files]
read = ["**"]
write = ["**"]
deny = ["**/.env", "secret/**"]

[agents.limits]
max_read_bytes = {MAX_READ_BYTES}
max_write_bytes = {MAX_WRITE_BYTES}

[agents.shell]
allow_shell = true
network = false
uid = {SANDBOX_UID}
gid = {SANDBOX_UID}
env = ["GREETING", "PYTHONPATH"]
timeout_ms = 30000
max_timeout_ms = 60000
output_budget_bytes = 1048576

[agents.shell.requires]
landlock_abi = 3
seccomp = true
namespaces = true
cgroups = true

[[agents.shell.commands]]
program = "sh"
[[agents.shell.commands]]
program = "echo"
[[agents.shell.commands]]
program = "cat"
[[agents.shell.commands]]
program = "sleep"
[[agents.shell.commands]]
program = "python3"
[[agents.shell.commands]]
program = "git"
deny_args = ["push"]
"""


@dataclass
class Daemon:
    """A running ``agentjail serve`` and its directories."""

    root: Path
    ws: Path
    ro: Path
    socket: Path
    config: Path
    log: Path
    proc: Optional[subprocess.Popen] = None
    argv: list = field(default_factory=list)

    def start(self) -> None:
        with open(self.log, "ab") as log:
            env = {**os.environ, "AGENTJAIL_LOG": "info"}
            env.pop("AGENTJAIL_SOCKET", None)
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)

    def wait_serving(self) -> None:
        """Until WhoAmI answers; fails if the daemon exits or takes too long."""
        end = time.monotonic() + START_LIMIT
        with agentjail.connect(self.socket, retry=agentjail.NO_RETRY, timeout=2) as c:
            while True:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    pytest.fail(f"agentjail serve exited with {self.proc.returncode}:\n{self.log_text()}")
                try:
                    c.whoami()
                    return
                except agentjail.AgentjailError as e:
                    if time.monotonic() > end:
                        pytest.fail(f"agentjail serve not serving after {START_LIMIT}s ({e}):\n{self.log_text()}")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def w(self, rel: str) -> Path:
        """A path in the main workspace, on the host."""
        return self.ws / rel


def make_daemon(
    prefix: str,
    *,
    policy: Optional[str] = None,
    policy_dir: Optional[Path] = None,
    extra_config: str = "",
) -> Daemon:
    """Directories, policy and config for a daemon (not started)."""
    if os.geteuid() != 0:
        pytest.fail("the Python client's suite runs the daemon as root (it sandboxes commands)")
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(root, 0o755)
    d = Daemon(
        root=root,
        ws=root / "ws",
        ro=root / "ro",
        socket=root / "run" / "agentjail.sock",
        config=root / "agentjail.toml",
        log=root / "daemon.log",
    )
    for p in (d.ws, d.ro, d.socket.parent, root / "policies", root / "state"):
        p.mkdir(parents=True)
    os.chmod(d.socket.parent, 0o755)
    os.chown(d.ws, SANDBOX_UID, SANDBOX_UID)
    os.chmod(d.ws, 0o755)
    if policy_dir is None:
        (root / "policies" / "test.toml").write_text(policy or test_policy(d.ws, d.ro))
        policy_dir = root / "policies"
    d.config.write_text("shutdown_grace_ms = 2000\nsocket_mode = 0o666\n" + extra_config)
    d.argv = [
        agentjail_bin(),
        "serve",
        "--config",
        str(d.config),
        "--socket",
        str(d.socket),
        "--policy-dir",
        str(policy_dir),
        "--state-dir",
        str(root / "state"),
    ]
    return d


@pytest.fixture(scope="session")
def daemon() -> Iterator[Daemon]:
    """One daemon for the suite (tests use their own paths in its workspace)."""
    d = make_daemon("ajpy-")
    d.start()
    d.wait_serving()
    yield d
    d.stop()
    shutil.rmtree(d.root, ignore_errors=True)


@pytest.fixture
def client(daemon: Daemon) -> Iterator[agentjail.Client]:
    with agentjail.connect(daemon.socket, timeout=20) as c:
        yield c


@pytest.fixture
def uniq() -> str:
    """A fresh directory name for one test's files."""
    return f"t-{uuid.uuid4().hex[:10]}"


def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    """Prints the daemon's log under a failed test, like the Rust harness."""
    if call.when == "call" and call.excinfo is not None:
        d = item.funcargs.get("daemon")
        if isinstance(d, Daemon):
            sys.stderr.write(f"----- daemon log ({d.log}) -----\n{d.log_text()[-8000:]}\n-----\n")
