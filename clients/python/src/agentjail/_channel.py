"""Channel options shared by the sync and asyncio clients."""

from __future__ import annotations

from typing import List, Tuple, Union

Option = Tuple[str, Union[str, int]]

#: Largest message the daemon accepts by default (``max_message_bytes``).
MAX_SEND_BYTES = 32 * 1024 * 1024
#: Reads and command output can be large when the policy allows it.
MAX_RECEIVE_BYTES = 256 * 1024 * 1024

CHANNEL_OPTIONS: List[Option] = [
    # grpcio sends the percent-encoded socket path as :authority, which
    # daemons before the authority fix reset (RST_STREAM); `localhost` is
    # accepted by every version.
    ("grpc.default_authority", "localhost"),
    ("grpc.max_send_message_length", MAX_SEND_BYTES),
    ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
]
