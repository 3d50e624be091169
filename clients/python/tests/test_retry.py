"""Retries happen only where the daemon says a retry is safe.

- reason UNAVAILABLE (here: the audit log cannot be written, so the daemon
  refuses every call before doing anything), for any call;
- a transport failure (no daemon yet) only for calls that change nothing.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

import agentjail
from conftest import make_daemon


class Recorder:
    """An on_retry hook that remembers each retry and can act on the first."""

    def __init__(self, on_first=None) -> None:
        self.calls = []
        self.on_first = on_first

    def __call__(self, attempt, error, delay) -> None:
        self.calls.append((attempt, error.reason, error.code, delay))
        if len(self.calls) == 1 and self.on_first is not None:
            self.on_first()


@pytest.fixture
def full_audit_disk():
    """A daemon whose audit log lives on a 2 MiB tmpfs, and a way to fill it."""
    mount_root = Path(tempfile.mkdtemp(prefix="ajpy-auditfs-", dir="/tmp"))
    audit_dir = mount_root / "auditfs"
    audit_dir.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(audit_dir)])
    assert mounted.returncode == 0, "mount -t tmpfs failed (needed for the retry test; CI runs as root)"
    d = make_daemon(
        "ajpy-retry-",
        extra_config=f'[audit]\npath = "{audit_dir / "audit.jsonl"}"\nreserve_bytes = 65536\n',
    )
    d.start()
    try:
        d.wait_serving()
        yield d, audit_dir / "filler"
    finally:
        d.stop()
        subprocess.run(["umount", str(audit_dir)])
        shutil.rmtree(mount_root, ignore_errors=True)
        shutil.rmtree(d.root, ignore_errors=True)


def fill(path: Path) -> None:
    """Writes one file until the filesystem is full (ENOSPC)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    chunk = b"\xa5" * 4096
    try:
        while os.write(fd, chunk) > 0:
            pass
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
    finally:
        os.close(fd)


def refuse_until_unavailable(c: agentjail.Client) -> agentjail.Unavailable:
    """Reads until the reserve is used up and the daemon refuses."""
    for _ in range(2000):
        try:
            c.files.read("keep.txt")
        except agentjail.Unavailable as e:
            return e
    pytest.fail("calls are still served on a full audit disk")


def test_unavailable_from_the_daemon_is_retried_until_it_recovers(full_audit_disk):
    d, filler = full_audit_disk
    d.w("keep.txt").write_text("keep\n")
    with agentjail.connect(d.socket, retry=agentjail.NO_RETRY) as once:
        assert once.files.read("keep.txt") == "keep\n"
        fill(filler)
        refused = refuse_until_unavailable(once)
        assert refused.reason == "UNAVAILABLE" and refused.retryable
        # Without retries: refused, and nothing was written.
        with pytest.raises(agentjail.Unavailable):
            once.files.write("new.txt", "x")
        assert not d.w("new.txt").exists()

    # With retries: the first attempt is refused, space is freed, a retry succeeds.
    recorder = Recorder(on_first=lambda: filler.unlink())
    policy = agentjail.RetryPolicy(max_attempts=30, initial_backoff=0.05, max_backoff=0.3, on_retry=recorder)
    with agentjail.connect(d.socket, retry=policy, timeout=20) as c:
        r = c.files.write("new.txt", "written after a retry")
    assert recorder.calls and recorder.calls[0][:2] == (1, "UNAVAILABLE")
    assert r.created and d.w("new.txt").read_text() == "written after a retry"


def test_refusals_are_not_retried(client, uniq):
    recorder = Recorder()
    with agentjail.connect(client.socket, retry=agentjail.RetryPolicy(on_retry=recorder)) as c:
        with pytest.raises(agentjail.PolicyDenied):
            c.files.write(f"{uniq}/.env", "x")
        with pytest.raises(agentjail.NotFound):
            c.files.read(f"{uniq}/missing")
    assert recorder.calls == []


def test_a_read_waits_for_a_daemon_that_is_starting():
    d = make_daemon("ajpy-late-")
    try:
        # The daemon starts only once the first attempt has failed.
        recorder = Recorder(on_first=d.start)
        policy = agentjail.RetryPolicy(max_attempts=200, initial_backoff=0.05, max_backoff=0.2, on_retry=recorder)
        with agentjail.connect(d.socket, retry=policy, timeout=30) as c:
            assert c.whoami().agent == "local"
        assert recorder.calls[0][1] is None, "the first failure was the transport's (no daemon yet)"
        assert recorder.calls[0][2].name == "UNAVAILABLE"
    finally:
        d.stop()
        shutil.rmtree(d.root, ignore_errors=True)


def test_a_write_is_not_retried_on_a_transport_failure(tmp_path):
    recorder = Recorder()
    with agentjail.connect(tmp_path / "none.sock", retry=agentjail.RetryPolicy(on_retry=recorder), timeout=5) as c:
        with pytest.raises(agentjail.Unavailable) as e:
            c.files.write("a.txt", "x")
        assert e.value.reason is None and "agentjail serve" in e.value.message
        with pytest.raises(agentjail.Unavailable):
            c.commands.run(["true"])
    assert recorder.calls == [], "a mutating call may have reached the daemon: never retried blind"


def test_retries_stop_at_the_deadline(tmp_path):
    recorder = Recorder()
    policy = agentjail.RetryPolicy(max_attempts=1000, initial_backoff=0.05, max_backoff=0.1, on_retry=recorder)
    with agentjail.connect(tmp_path / "none.sock", retry=policy, timeout=1.0) as c:
        with pytest.raises(agentjail.AgentjailError):
            c.whoami()
    assert 1 <= len(recorder.calls) < 1000


def test_concurrent_threads_share_one_client(client, uniq):
    errors = []

    def work(i: int) -> None:
        try:
            client.files.write(f"{uniq}/{i}.txt", str(i))
            assert client.files.read(f"{uniq}/{i}.txt") == str(i)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.fixture
def write_budget():
    """A daemon whose agent may write 10 bytes per 2-second window."""
    d = make_daemon("ajpy-quota-")
    policy = d.root / "policies" / "test.toml"
    policy.write_text(policy.read_text() + "\n[agents.budgets]\nwindow_seconds = 2\nwrite_bytes = 10\n")
    d.start()
    try:
        d.wait_serving()
        yield d
    finally:
        d.stop()
        shutil.rmtree(d.root, ignore_errors=True)


def test_quota_exceeded_is_raised_with_its_delay_when_it_is_long(write_budget):
    recorder = Recorder()
    policy = agentjail.RetryPolicy(max_quota_wait=0.0, on_retry=recorder)
    with agentjail.connect(write_budget.socket, retry=policy) as c:
        c.files.write("a.txt", "12345678")
        with pytest.raises(agentjail.QuotaExceeded) as e:
            c.files.write("b.txt", "12345678")
    err = e.value
    assert err.code.name == "RESOURCE_EXHAUSTED" and err.metadata["limit"] == "budgets.write_bytes"
    assert err.retry_delay is not None and 0 < err.retry_delay.total_seconds() <= 2.1
    assert recorder.calls == [], "a delay over max_quota_wait is not waited out"
    assert not (write_budget.ws / "b.txt").exists(), "nothing was written"


def test_quota_exceeded_with_a_short_delay_is_waited_out(write_budget):
    recorder = Recorder()
    with agentjail.connect(write_budget.socket, retry=agentjail.RetryPolicy(on_retry=recorder)) as c:
        c.files.write("a.txt", "12345678")
        r = c.files.write("b.txt", "12345678")
    assert r.created and (write_budget.ws / "b.txt").read_text() == "12345678"
    assert [call[1] for call in recorder.calls] == ["QUOTA_EXCEEDED"]
    assert 0 < recorder.calls[0][3] <= 2.1, "waited the RetryInfo delay"
