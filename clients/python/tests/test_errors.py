"""Each reason the daemon sends arrives as its own exception class, with the
ErrorInfo metadata parsed and the gRPC code; nothing happened on the host."""

from __future__ import annotations

import os
import re
from datetime import timedelta

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

import agentjail
from agentjail import errors
from conftest import MAX_WRITE_BYTES, REPO

PERMISSION = grpc.StatusCode.PERMISSION_DENIED


def test_every_reason_of_the_daemon_has_a_class():
    source = (REPO / "src" / "error.rs").read_text()
    reasons = set(re.findall(r'Reason::\w+ => "([A-Z_]+)"', source))
    assert len(reasons) >= 19, "parsed src/error.rs"
    assert reasons == set(errors.REASON_CLASSES)
    for reason, cls in errors.REASON_CLASSES.items():
        assert issubclass(cls, agentjail.AgentjailError) and cls.REASON == reason
        assert getattr(agentjail, cls.__name__) is cls, "exported from the package"


def test_policy_denied_names_rule_and_path(client, daemon, uniq):
    with pytest.raises(agentjail.PolicyDenied) as e:
        client.files.write(f"{uniq}/.env", "TOKEN=x")
    assert e.value.code == PERMISSION and e.value.reason == "POLICY_DENIED"
    assert '"**/.env"' in e.value.rule and e.value.path == f"{uniq}/.env"
    assert e.value.message and "POLICY_DENIED" in str(e.value)
    assert isinstance(e.value.__cause__, grpc.RpcError), "the gRPC error is kept as the cause"
    assert not daemon.w(f"{uniq}/.env").exists()
    client.files.write(f"{uniq}/env.txt", "ok")  # positive control
    assert daemon.w(f"{uniq}/env.txt").exists()


def test_path_outside_workspace_and_invalid_argument(client, daemon):
    with pytest.raises(agentjail.PathOutsideWorkspace) as e:
        client.files.read("../../etc/passwd")
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and e.value.path == "../../etc/passwd"
    with pytest.raises(agentjail.InvalidArgument):
        client.files.read("/etc/passwd")
    with pytest.raises(agentjail.InvalidArgument):
        client.files.grep("(unclosed")


def test_symlink_escape(client, daemon, uniq):
    outside = daemon.root / "outside.txt"
    outside.write_text("host secret\n")
    daemon.w(uniq).mkdir()
    os.symlink(outside, daemon.w(f"{uniq}/link"))
    with pytest.raises(agentjail.SymlinkEscape) as e:
        client.files.write(f"{uniq}/link", "overwritten")
    assert e.value.code == PERMISSION
    assert outside.read_text() == "host secret\n"


def test_kinds_of_file(client, daemon, uniq):
    client.files.write(f"{uniq}/f.txt", "x")
    with pytest.raises(agentjail.IsADirectory):
        client.files.read(uniq)
    with pytest.raises(agentjail.NotADirectory):
        client.files.list(f"{uniq}/f.txt")
    os.mkfifo(daemon.w(f"{uniq}/fifo"))
    with pytest.raises(agentjail.NotARegularFile):
        client.files.read(f"{uniq}/fifo")
    with pytest.raises(agentjail.NotFound) as e:
        client.files.read(f"{uniq}/missing")
    assert e.value.code == grpc.StatusCode.NOT_FOUND


def test_too_large(client, daemon, uniq):
    with pytest.raises(agentjail.TooLarge) as e:
        client.files.write(f"{uniq}/huge", b"x" * (MAX_WRITE_BYTES + 1))
    assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert not daemon.w(f"{uniq}/huge").exists()


def test_stale_content(client, daemon, uniq):
    client.files.write(f"{uniq}/s.txt", "v1")
    seen = client.files.read_window(f"{uniq}/s.txt")
    daemon.w(f"{uniq}/s.txt").write_text("changed by someone else")
    with pytest.raises(agentjail.StaleContent) as e:
        client.files.write(f"{uniq}/s.txt", "v2", expected_sha256=seen.sha256)
    assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(agentjail.StaleContent):
        client.files.edit(f"{uniq}/s.txt", "changed", "v3", expected_sha256=seen.sha256)
    assert daemon.w(f"{uniq}/s.txt").read_text() == "changed by someone else"


def test_match_not_found_and_ambiguous_carry_lines(client, daemon, uniq):
    client.files.write(f"{uniq}/m.py", "def f():\n    return 1\n\nx = 1\nx = 1\n")
    with pytest.raises(agentjail.MatchNotFound) as nf:
        client.files.edit(f"{uniq}/m.py", "    return 2", "    return 3")
    assert nf.value.nearest_line == 2 and nf.value.edit_index == 0
    with pytest.raises(agentjail.MatchAmbiguous) as amb:
        client.files.edit(f"{uniq}/m.py", "x = 1", "x = 2")
    assert amb.value.matches == 2 and amb.value.lines == [4, 5]
    assert daemon.w(f"{uniq}/m.py").read_text().count("x = 1") == 2


def test_read_only_and_unknown_workspace(client, daemon):
    with pytest.raises(agentjail.ReadOnlyWorkspace) as e:
        client.files.write("new.txt", "x", workspace="ro")
    assert e.value.code == PERMISSION and not (daemon.ro / "new.txt").exists()
    with pytest.raises(agentjail.UnknownWorkspace) as u:
        client.files.read("a", workspace="nope")
    assert u.value.code == grpc.StatusCode.NOT_FOUND


def _status(code: grpc.StatusCode, reason: str, metadata: dict, delay: float = 0.0):
    st = status_pb2.Status(code=code.value[0], message="m")
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=errors.ERROR_DOMAIN, metadata=metadata))
    st.details.append(info)
    if delay:
        retry = any_pb2.Any()
        retry.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(nanos=int(delay * 1e9))))
        st.details.append(retry)
    return (("grpc-status-details-bin", st.SerializeToString()),)


def test_a_reason_this_client_does_not_know_is_caught_by_the_catch_all():
    e = errors.from_status(grpc.StatusCode.ABORTED, "m", _status(grpc.StatusCode.ABORTED, "NEW_REASON", {"k": "v"}))
    assert type(e) is agentjail.UnknownReason
    assert e.reason == "NEW_REASON" and e.metadata == {"k": "v"} and e.code == grpc.StatusCode.ABORTED


def test_the_reason_header_alone_is_enough():
    e = errors.from_status(grpc.StatusCode.NOT_FOUND, "m", (("agentjail-reason", "NOT_FOUND"),))
    assert type(e) is agentjail.NotFound


def test_retry_info_is_parsed():
    e = errors.from_status(
        grpc.StatusCode.UNAVAILABLE, "m", _status(grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE", {}, delay=0.25)
    )
    assert type(e) is agentjail.Unavailable and e.retry_delay == timedelta(seconds=0.25)
    assert agentjail.RetryPolicy().delay(e, 1) == 0.25, "RetryInfo replaces the computed backoff"


def test_statuses_without_a_reason_map_by_code():
    assert type(errors.from_status(grpc.StatusCode.DEADLINE_EXCEEDED, "m", ())) is agentjail.DeadlineExceeded
    assert type(errors.from_status(grpc.StatusCode.CANCELLED, "m", ())) is agentjail.Cancelled
    transport = errors.from_status(grpc.StatusCode.UNAVAILABLE, "m", ())
    assert type(transport) is agentjail.Unavailable and transport.reason is None
    assert type(errors.from_status(grpc.StatusCode.OUT_OF_RANGE, "m", ())) is agentjail.RpcFailed


def test_grpcio_cancelled_after_the_deadline_is_deadline_exceeded():
    from agentjail._retry import Deadline, deadline_or

    timeout_expired = errors.from_status(grpc.StatusCode.CANCELLED, "Timeout expired", ())
    assert type(deadline_or(timeout_expired, Deadline(0))) is agentjail.DeadlineExceeded
    assert type(deadline_or(timeout_expired, Deadline(None))) is agentjail.Cancelled, "no deadline: a real cancel"
    assert type(deadline_or(timeout_expired, Deadline(60))) is agentjail.Cancelled, "deadline not reached"
