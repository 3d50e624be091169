"""Every file call against the real daemon; host-side checks beside each."""

from __future__ import annotations

import hashlib
import os

import pytest

import agentjail
from agentjail import pb
from conftest import MAX_READ_BYTES


def test_write_then_read_round_trips_text_and_bytes(client, daemon, uniq):
    r = client.files.write(f"{uniq}/a/b.txt", "héllo\n")
    assert r.created and r.bytes_written == len("héllo\n".encode())
    assert r.info.rule, "every response names the rule that allowed it"
    assert daemon.w(f"{uniq}/a/b.txt").read_text() == "héllo\n", "parents created, content on disk"
    assert client.files.read(f"{uniq}/a/b.txt") == "héllo\n"
    client.files.write(f"{uniq}/bin", b"\x00\x01\xff")
    assert client.files.read(f"{uniq}/bin", format="bytes") == b"\x00\x01\xff"


def test_read_pages_through_a_file_larger_than_one_response(client, daemon, uniq):
    text = "".join(f"line {i:05d} ü\n" for i in range(3 * MAX_READ_BYTES // 10))
    assert len(text.encode()) > 2 * MAX_READ_BYTES
    client.files.write(f"{uniq}/big.txt", text)
    one = client.files.read_window(f"{uniq}/big.txt", byte_offset=0)
    assert one.truncated, "control: one response does not hold the whole file"
    assert client.files.read(f"{uniq}/big.txt") == text
    blob = os.urandom(3 * MAX_READ_BYTES) + b"\x00"
    client.files.write(f"{uniq}/big.bin", blob)
    assert client.files.read(f"{uniq}/big.bin", format="bytes") == blob


def test_read_window_lines_and_sha(client, uniq):
    client.files.write(f"{uniq}/l.txt", "a\nb\nc\nd\n")
    r = client.files.read_window(f"{uniq}/l.txt", offset=1, limit=2)
    assert r.text == "b\nc\n" and r.total_lines == 4 and r.truncated and r.next_offset == 3
    assert r.sha256 == hashlib.sha256(b"a\nb\nc\nd\n").hexdigest()


def test_write_modes_and_expected_sha(client, daemon, uniq):
    first = client.files.write(f"{uniq}/m.txt", "one", mode="create")
    with pytest.raises(agentjail.AlreadyExists):
        client.files.write(f"{uniq}/m.txt", "two", mode="create")
    with pytest.raises(agentjail.NotFound):
        client.files.write(f"{uniq}/absent.txt", "x", mode="overwrite")
    assert not daemon.w(f"{uniq}/absent.txt").exists()
    second = client.files.write(f"{uniq}/m.txt", "two", expected_sha256=first.sha256)
    assert second.previous_sha256 == first.sha256 and not second.created
    assert daemon.w(f"{uniq}/m.txt").read_text() == "two"


def test_edit_single_multi_dry_run(client, daemon, uniq):
    client.files.write(f"{uniq}/e.py", "x = 1\ny = 2\n")
    dry = client.files.edit(f"{uniq}/e.py", "x = 1", "x = 10", dry_run=True)
    assert not dry.applied and "+x = 10" in dry.diff
    assert daemon.w(f"{uniq}/e.py").read_text() == "x = 1\ny = 2\n", "a dry run writes nothing"
    r = client.files.edit(f"{uniq}/e.py", edits=[("x = 1", "x = 10"), {"old": "y = 2", "new": "y = 20"}])
    assert r.applied and list(r.replacements) == [1, 1]
    assert daemon.w(f"{uniq}/e.py").read_text() == "x = 10\ny = 20\n"
    client.files.write(f"{uniq}/r.txt", "a a a")
    assert list(client.files.edit(f"{uniq}/r.txt", "a", "b", replace_all=True).replacements) == [3]


def test_list_pages_glob_grep_stat(client, uniq):
    for i in range(5):
        client.files.write(f"{uniq}/d/f{i}.txt", f"needle {i}\n" if i % 2 == 0 else "hay\n")
    client.files.write(f"{uniq}/d/.hidden", "needle\n")
    entries = client.files.list(f"{uniq}/d", page_size=2)
    assert [e.path for e in entries] == [f"{uniq}/d/f{i}.txt" for i in range(5)], "every page, hidden left out"
    assert all(e.kind == pb.ENTRY_KIND_FILE for e in entries)
    assert len(client.files.list(f"{uniq}/d", include_hidden=True)) == 6
    assert sorted(client.files.glob("*.txt", path=f"{uniq}/d", sort="name").paths) == [
        f"{uniq}/d/f{i}.txt" for i in range(5)
    ]
    files = client.files.grep("needle", path=f"{uniq}/d").files
    assert sorted(files) == [f"{uniq}/d/f{i}.txt" for i in (0, 2, 4)]
    lines = client.files.grep("NEEDLE 2", path=f"{uniq}/d", output="content", case_insensitive=True).lines
    assert [(ln.path, ln.line_number, ln.text.strip()) for ln in lines] == [(f"{uniq}/d/f2.txt", 1, "needle 2")]
    counts = client.files.grep("needle", path=f"{uniq}/d", output="count", fixed_string=True).counts
    assert {c.path: c.count for c in counts} == {f"{uniq}/d/f{i}.txt": 1 for i in (0, 2, 4)}
    st = client.files.stat(f"{uniq}/d/f0.txt")
    assert st.kind == pb.ENTRY_KIND_FILE and st.size == len("needle 0\n") and st.readable
    assert client.files.exists(f"{uniq}/d") and not client.files.exists(f"{uniq}/nope")


def test_mkdir_move_remove(client, daemon, uniq):
    assert client.files.mkdir(f"{uniq}/x/y").created
    assert daemon.w(f"{uniq}/x/y").is_dir()
    client.files.write(f"{uniq}/x/y/f", "1")
    client.files.write(f"{uniq}/g", "2")
    with pytest.raises(agentjail.AlreadyExists):
        client.files.move(f"{uniq}/g", f"{uniq}/x/y/f")
    assert daemon.w(f"{uniq}/x/y/f").read_text() == "1", "a refused move leaves the destination"
    assert client.files.move(f"{uniq}/g", f"{uniq}/x/y/f", overwrite=True).overwrote
    assert daemon.w(f"{uniq}/x/y/f").read_text() == "2" and not daemon.w(f"{uniq}/g").exists()
    with pytest.raises(agentjail.DirectoryNotEmpty):
        client.files.remove(f"{uniq}/x")
    assert daemon.w(f"{uniq}/x/y/f").exists()
    assert client.files.remove(f"{uniq}/x", recursive=True).removed
    assert not daemon.w(f"{uniq}/x").exists()
    assert not client.files.remove(f"{uniq}/x", missing_ok=True).removed


def test_other_workspace_by_name(client, daemon):
    (daemon.ro / "ro.txt").write_text("read-only\n")
    assert client.files.read("ro.txt", workspace="ro") == "read-only\n"
    with agentjail.connect(daemon.socket, workspace="ro") as ro:
        assert ro.files.read("ro.txt") == "read-only\n"


def test_whoami_lists_the_workspaces(client, daemon):
    w = client.whoami()
    assert w.agent == "local" and w.identified_by == "unix-peer" and w.uid == 0
    assert [(ws.name, ws.path, ws.read_only) for ws in w.workspaces] == [
        ("main", str(daemon.ws), False),
        ("ro", str(daemon.ro), True),
    ]


def test_whoami_tolerates_fields_this_client_does_not_know():
    """A newer daemon's WhoAmI (extra fields) still parses, the known fields intact."""
    known = pb.WhoAmIResponse(agent="local", uid=7).SerializeToString()
    unknown_field = bytes([(14 << 3) | 2, 3]) + b"abc"  # field 14, length-delimited
    parsed = pb.WhoAmIResponse.FromString(known + unknown_field)
    assert parsed.agent == "local" and parsed.uid == 7


def test_a_file_call_past_its_deadline_is_deadline_exceeded(client, uniq):
    client.files.write(f"{uniq}/d.txt", "x")
    # A 1 µs deadline usually expires before the answer, but not always
    # (a fast local answer can win the race): any expiry must raise
    # DeadlineExceeded, and one of a few tries must expire.
    expired = None
    for _ in range(20):
        try:
            client.files.read(f"{uniq}/d.txt", timeout=1e-6)
        except agentjail.DeadlineExceeded as e:
            expired = e
            break
    assert expired is not None, "a 1 µs deadline never expired in 20 tries"
    assert expired.reason is None
    assert client.files.read(f"{uniq}/d.txt", timeout=10) == "x", "control: the same call with time to answer"
