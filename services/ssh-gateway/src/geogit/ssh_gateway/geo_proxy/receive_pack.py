"""git-receive-pack over SSH, served by the primary's stateless smart HTTP.

A push is one request either way: the commands, the push options if the client announced
them, and the pack, answered by the report (and hook messages on side-band). The one thing an
SSH client does differently is when it stops sending: after a pack it closes its end, but
when every command deletes a ref there is no pack and it keeps the connection open waiting
for the report. So the request ends at stdin's EOF or, for a deletion-only push, right after
the commands and options, as receive-pack itself decides whether to read a pack.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from geogit.common.git_commands import HttpService
from geogit.common.pktline import FLUSH_PKT, Packet, encode_packets
from geogit.ssh_gateway.clients.primary import Primary
from geogit.ssh_gateway.geo_proxy.streams import (
    ByteReader,
    ClientStreams,
    read_section,
    relay,
)

SERVICE: HttpService = "git-receive-pack"
# `<old> <new> <ref>`; in a signed push the same lines sit inside the certificate.
_COMMAND = re.compile(rb"([0-9a-f]{40}|[0-9a-f]{64}) ([0-9a-f]{40}|[0-9a-f]{64}) ")


async def run(primary: Primary, stdin: ByteReader, client: ClientStreams) -> int:
    async with primary.advertisement(SERVICE) as advertisement:
        await relay(advertisement.rest(), client)
    commands = await read_section(stdin, "commands")
    if not any(_COMMAND.match(packet.payload) for packet in commands):
        return 0  # up to date, or a shallow client's list alone: receive-pack would do nothing
    options = None
    if b"push-options" in _capabilities(commands):
        options = await read_section(stdin, "push options")
    if _sends_pack(commands):
        # The client may spend minutes building a big pack; the primary's listener would drop
        # a request body idle that long, so the request starts when the pack does.
        await stdin.peek(1)
    async with primary.rpc(SERVICE, _request(commands, options, stdin)) as response:
        await relay(response.rest(), client)
    return 0


async def _request(
    commands: list[Packet], options: list[Packet] | None, stdin: ByteReader
) -> AsyncIterator[bytes]:
    yield encode_packets(commands) + FLUSH_PKT
    if options is not None:
        yield encode_packets(options) + FLUSH_PKT
    if _sends_pack(commands):
        async for chunk in stdin.rest():
            yield chunk


def _capabilities(commands: list[Packet]) -> list[bytes]:
    """The capabilities after the NUL of the first command (or of `push-cert`)."""
    for packet in commands:
        if b"\0" in packet.payload:
            return packet.payload.partition(b"\0")[2].split()
    return []


def _sends_pack(commands: list[Packet]) -> bool:
    """receive-pack reads a pack unless every command deletes a ref (its delete_only())."""
    return any(
        match[2].strip(b"0")
        for packet in commands
        if (match := _COMMAND.match(packet.payload)) is not None
    )
