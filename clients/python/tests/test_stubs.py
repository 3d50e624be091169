"""The checked-in stubs match proto/ (regenerate: python3 clients/python/generate_stubs.py)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2

from agentjail.v1 import agentjail_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import generate_stubs  # noqa: E402


def without_json_names(f: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    """protoc's descriptor sets carry json_name; the embedded descriptor does not."""

    def strip(messages):
        for m in messages:
            for fld in m.field:
                fld.ClearField("json_name")
            strip(m.nested_type)

    strip(f.message_type)
    return f


def fresh_descriptor(tmp: Path) -> descriptor_pb2.FileDescriptorProto:
    out = tmp / "set.pb"
    generate_stubs.protoc(f"--descriptor_set_out={out}")
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    return without_json_names(next(f for f in fds.file if f.name == generate_stubs.PROTO_FILE))


REGENERATE = "stale stubs: run `python3 clients/python/generate_stubs.py` and commit the result"


def test_descriptor_matches_the_proto():
    with tempfile.TemporaryDirectory() as tmp:
        fresh = fresh_descriptor(Path(tmp))
    checked_in = descriptor_pb2.FileDescriptorProto.FromString(agentjail_pb2.DESCRIPTOR.serialized_pb)
    assert checked_in == fresh, REGENERATE


def test_generated_files_are_what_the_script_writes():
    with tempfile.TemporaryDirectory() as tmp:
        generate_stubs.generate(Path(tmp))
        for name in ("agentjail_pb2.py", "agentjail_pb2.pyi", "agentjail_pb2_grpc.py"):
            fresh = (Path(tmp) / "agentjail" / "v1" / name).read_text()
            checked_in = (generate_stubs.OUT_DIR / "agentjail" / "v1" / name).read_text()
            assert checked_in == fresh, f"{name}: {REGENERATE} (with grpcio-tools==1.85.1)"


def test_a_changed_proto_is_detected(tmp_path, monkeypatch):
    """Negative control: the comparison above sees a proto change."""
    proto = tmp_path / "agentjail" / "v1" / "agentjail.proto"
    proto.parent.mkdir(parents=True)
    text = (generate_stubs.PROTO_DIR / generate_stubs.PROTO_FILE).read_text()
    proto.write_text(text.replace("bool read_only = 3;", "bool read_only = 3;\n  string negative_control_extra = 999;"))
    monkeypatch.setattr(generate_stubs, "PROTO_DIR", tmp_path)
    fresh = fresh_descriptor(tmp_path)
    checked_in = descriptor_pb2.FileDescriptorProto.FromString(agentjail_pb2.DESCRIPTOR.serialized_pb)
    assert checked_in != fresh
