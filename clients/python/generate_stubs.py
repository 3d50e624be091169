#!/usr/bin/env python3
"""Regenerates the checked-in gRPC stubs from ``proto/`` (needs grpcio-tools).

    python3 clients/python/generate_stubs.py

The stubs land in ``src/agentjail/v1/`` (the proto package ``agentjail.v1``
maps onto this package's ``agentjail.v1``, so the generated imports work as
they are). ``tests/test_stubs.py`` fails when they no longer match the proto.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PROTO_DIR = REPO / "proto"
PROTO_FILE = "agentjail/v1/agentjail.proto"
OUT_DIR = HERE / "src"


def protoc(*args: str) -> None:
    """Runs grpcio-tools' protoc with the well-known types on the include path."""
    import grpc_tools
    from grpc_tools import protoc as _protoc

    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    argv = ["protoc", f"-I{PROTO_DIR}", f"-I{well_known}", *args, PROTO_FILE]
    if _protoc.main(argv) != 0:
        raise SystemExit(f"protoc failed: {' '.join(argv)}")


def generate(out_dir: Path = OUT_DIR) -> None:
    """Writes agentjail_pb2.py, agentjail_pb2.pyi and agentjail_pb2_grpc.py."""
    out_dir.mkdir(parents=True, exist_ok=True)
    protoc(
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
    )


if __name__ == "__main__":
    generate()
    print(f"regenerated stubs for {PROTO_FILE} in {OUT_DIR / 'agentjail' / 'v1'}", file=sys.stderr)
