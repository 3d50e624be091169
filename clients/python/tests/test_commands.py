"""commands.run and commands.stream against the real sandbox."""

from __future__ import annotations

import os
import time

import grpc
import pytest

import agentjail
from agentjail import Exited, Started, Stderr, Stdout


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, limit: float = 10.0) -> bool:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_run_argv_and_shell(client, daemon, uniq):
    r = client.commands.run(["echo", "hello", "world"])
    assert (r.stdout, r.stderr, r.exit_code, r.ok, r.error) == ("hello world\n", "", 0, True, None)
    assert r.exec_id and r.rule and r.wall_time_ms >= 0 and r.stdout_bytes == 12
    client.files.mkdir(uniq)
    r = client.commands.run("id -u; echo made > out.txt; echo oops >&2; exit 3", cwd=uniq)
    assert r.stdout == "65534\n" and r.stderr == "oops\n" and r.exit_code == 3 and not r.ok
    assert r.error == "exited with status 3"
    assert daemon.w(f"{uniq}/out.txt").read_text() == "made\n", "cwd is the workspace directory"


def test_run_env_and_stdin(client):
    r = client.commands.run('echo "$GREETING"; cat', env={"GREETING": "hi"}, stdin="from stdin\n")
    assert r.stdout == "hi\nfrom stdin\n"
    with pytest.raises(agentjail.PolicyDenied) as e:
        client.commands.run(["echo"], env={"SECRET_TOKEN": "x"})
    assert e.value.code == grpc.StatusCode.PERMISSION_DENIED


def test_run_timeout_is_the_commands_limit(client):
    start = time.monotonic()
    r = client.commands.run(["sleep", "30"], timeout=0.5)
    assert r.timed_out and r.exit_code is None and r.error == "timed out"
    assert time.monotonic() - start < 20


def test_check_raises_command_failed(client):
    with pytest.raises(agentjail.CommandFailed) as e:
        client.commands.run("exit 7", check=True)
    assert e.value.result.exit_code == 7
    assert client.commands.run("true", check=True).ok


def test_output_budget_keeps_head_and_tail(client):
    r = client.commands.run("printf 'HEAD'; head -c 100000 /dev/zero | tr '\\0' x; printf 'TAIL'", output_budget=1000)
    assert r.stdout.startswith("HEAD") and r.stdout.endswith("TAIL")
    assert r.stdout_omitted_bytes > 0 and f"[... {r.stdout_omitted_bytes} bytes omitted ...]" in r.stdout
    assert r.stdout_bytes == 100008


def test_denied_command_is_policy_denied_and_does_not_run(client, daemon, uniq):
    with pytest.raises(agentjail.PolicyDenied) as e:
        client.commands.run(["git", "push"])
    assert "push" in e.value.rule
    with pytest.raises(agentjail.PolicyDenied):
        client.commands.run(["touch", f"{uniq}-ran"])
    assert not daemon.w(f"{uniq}-ran").exists()


def test_callbacks_get_text_as_it_comes(client):
    out, err = [], []
    r = client.commands.run(
        "printf 'caf\\303'; sleep 0.2; printf '\\251\\n'; echo e >&2", on_stdout=out.append, on_stderr=err.append
    )
    assert "".join(out) == "café\n", "a character split between chunks arrives whole"
    assert "".join(err) == "e\n" and r.stdout == "café\n" and r.stderr == "e\n" and r.ok


def test_stream_yields_started_output_exited_in_order(client):
    events = list(client.commands.stream("echo one; echo two >&2; exit 4"))
    assert isinstance(events[0], Started) and events[0].pid > 0
    assert isinstance(events[-1], Exited) and events[-1].exit_code == 4
    middle = events[1:-1]
    assert b"".join(e.data for e in middle if isinstance(e, Stdout)) == b"one\n"
    assert b"".join(e.data for e in middle if isinstance(e, Stderr)) == b"two\n"


def test_stream_cancel_kills_the_command(client):
    stream = client.commands.stream(["sleep", "60"])
    it = iter(stream)
    started = next(it)
    assert isinstance(started, Started)
    # Started's pid is the sandbox's init on the host: alive now.
    assert pid_alive(started.pid)
    stream.cancel()
    assert list(it) == [], "a cancelled stream ends quietly"
    assert wait_gone(started.pid), "the daemon killed the cancelled command"


def test_leaving_a_stream_early_kills_the_command(client):
    for event in client.commands.stream(["sleep", "60"]):
        assert isinstance(event, Started) and pid_alive(event.pid)
        pid = event.pid
        break
    assert wait_gone(pid), "an abandoned stream cancels its call"


def test_deadline_exceeded_and_the_command_is_killed(client):
    stream = client.commands.stream(["sleep", "60"], request_timeout=5)
    it = iter(stream)
    started = next(it)
    assert isinstance(started, Started) and pid_alive(started.pid)
    with pytest.raises(agentjail.DeadlineExceeded) as e:
        list(it)
    assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert wait_gone(started.pid), "the daemon killed the command when the deadline passed"
    start = time.monotonic()
    with pytest.raises(agentjail.DeadlineExceeded):
        client.commands.run(["sleep", "60"], request_timeout=0.5)
    assert time.monotonic() - start < 10
