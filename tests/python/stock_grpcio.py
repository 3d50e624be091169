"""Calls the daemon the way a stock grpcio user does: no channel options.

Usage: stock_grpcio.py SOCKET STUB_DIR. Prints one JSON object per check;
tests/stock_clients.rs asserts on them. Generated stubs are in STUB_DIR
(grpc_tools.protoc output for proto/agentjail/v1/agentjail.proto).
"""

import asyncio
import json
import sys

import grpc
import grpc.aio

sys.path.insert(0, sys.argv[2])
from agentjail.v1 import agentjail_pb2, agentjail_pb2_grpc  # noqa: E402
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (  # noqa: E402
    ProtoReflectionDescriptorDatabase,
)

TARGET = "unix://" + sys.argv[1]


def report(check, **fields):
    print(json.dumps({"check": check, **fields}), flush=True)


def sync_whoami():
    with grpc.insecure_channel(TARGET) as channel:
        stub = agentjail_pb2_grpc.ToolSandboxStub(channel)
        who = stub.WhoAmI(agentjail_pb2.WhoAmIRequest(), timeout=10)
        # Twice on one connection: the second request reuses HPACK state.
        again = stub.WhoAmI(agentjail_pb2.WhoAmIRequest(), timeout=10)
        report("sync", agent=who.agent, again=again.agent, grpc=grpc.__version__)


async def aio_whoami():
    async with grpc.aio.insecure_channel(TARGET) as channel:
        stub = agentjail_pb2_grpc.ToolSandboxStub(channel)
        answers = await asyncio.gather(
            *(stub.WhoAmI(agentjail_pb2.WhoAmIRequest(), timeout=10) for _ in range(5))
        )
        report("aio", agents=[a.agent for a in answers])


def reflection_v1alpha():
    with grpc.insecure_channel(TARGET) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = list(db.get_services())
        proto = db.FindFileContainingSymbol("agentjail.v1.ToolSandbox")
        report("reflection", services=services, file=proto.name)


sync_whoami()
asyncio.run(aio_whoami())
reflection_v1alpha()
