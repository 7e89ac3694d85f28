"""How any geogit process talks to a storage server: channel options and call metadata.

Kept to grpc alone: the git-ssh helper imports it in every process it starts, and each import
is a fixed cost of every replication fetch (DESIGN §9).
"""

from __future__ import annotations

import grpc

from geogit.common.logging import CORRELATION_METADATA_KEY, get_correlation_id

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# CalculateChecksum of a repository without refs: what every site agrees a new project has.
EMPTY_CHECKSUM = "0" * 40
# Flow-control windows stay bounded: with BDP probing on, gRPC grows a stream's window (and
# what a reader behind a slow client buffers) to many MiB, and 20 concurrent full clones grew
# the edge proxy's RSS from ~390 to ~820 MB. A fixed 1 MiB window keeps loopback throughput and
# caps what each stream can hold.
STREAM_WINDOW_BYTES = 1024 * 1024
CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.lookahead_bytes", STREAM_WINDOW_BYTES),
)


def storage_metadata(token: str) -> tuple[tuple[str, str], ...]:
    metadata = [("authorization", f"Bearer {token}")]
    if correlation_id := get_correlation_id():
        metadata.append((CORRELATION_METADATA_KEY, correlation_id))
    return tuple(metadata)


def aio_channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)


class ChannelPool:
    """One long-lived channel per storage address, shared by every request of a process.

    A channel per request would pay a TCP and HTTP/2 handshake each time; a channel
    multiplexes concurrent calls and reconnects by itself after storage restarts."""

    def __init__(self) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}

    def get(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = aio_channel(address)
        return channel

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()


def sync_channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
