"""The byte streams on both sides of the proxy: the SSH client's stdio and the primary's bodies.

Both are read a packet at a time while Git's framing matters (advertisements, commands,
negotiation) and then passed on in the chunks they arrive in (packs), so only the bytes read
ahead of the protocol are ever held.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Protocol

from geogit.common.pktline import Packet, PacketKind, PktLineError, encode_packets, read_packet

CHUNK_SIZE = 64 * 1024
"""About this many bytes go into one HTTP body chunk (DESIGN §9: 64 KiB or more on packs)."""
MAX_SECTION_BYTES = 8 * 1024 * 1024
"""The wants, ref commands or push options held before they go to the primary (about 80k
wants): a bound on what one session can make the gateway hold."""


class ProxyError(Exception):
    """Ends the command; the message is for the client's terminal, after `geogit: `."""


class ClientStreams(Protocol):
    """The SSH client's side of one Git command."""

    async def read(self) -> bytes:
        """The next chunk of the client's stdin, b"" at EOF."""
        ...

    async def write_stdout(self, data: bytes) -> None: ...

    async def write_stderr(self, data: bytes) -> None: ...


class ByteReader:
    """Packets and raw bytes from a stream that arrives in chunks cut anywhere.

    `peer` names the other end in error messages ("the client", "the primary").
    """

    def __init__(self, next_chunk: Callable[[], Awaitable[bytes]], peer: str) -> None:
        self._next_chunk = next_chunk
        self._peer = peer
        self._buffer = bytearray()
        self._eof = False

    async def _fill(self, size: int) -> None:
        while len(self._buffer) < size and not self._eof:
            chunk = await self._next_chunk()
            if chunk:
                self._buffer += chunk
            else:
                self._eof = True

    async def peek(self, size: int) -> bytes:
        """The next `size` bytes without consuming them (fewer only at the end of the stream)."""
        await self._fill(size)
        return bytes(self._buffer[:size])

    async def _read_exactly(self, size: int) -> bytes:
        await self._fill(size)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def next_packet(self) -> Packet | None:
        """The next packet, or None where the stream ends cleanly between packets."""
        try:
            return await read_packet(self._read_exactly)
        except EOFError:
            return None
        except PktLineError as exc:
            raise ProxyError(f"{self._peer} sent a malformed pkt-line: {exc}") from exc

    async def read_packet(self) -> Packet:
        """The next packet, where the protocol says one must come."""
        packet = await self.next_packet()
        if packet is None:
            raise ProxyError(f"{self._peer} ended the conversation early")
        return packet

    async def rest(self) -> AsyncIterator[bytes]:
        """Everything left, as it arrives: what was read ahead first, then chunk by chunk."""
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            yield data
        while not self._eof:
            chunk = await self._next_chunk()
            if chunk:
                yield chunk
            else:
                self._eof = True


def client_reader(client: ClientStreams) -> ByteReader:
    return ByteReader(client.read, "the client")


async def relay(source: AsyncIterable[bytes], client: ClientStreams) -> None:
    async for chunk in source:
        await client.write_stdout(chunk)


async def coalesced(packets: AsyncIterable[Packet], first: bytes = b"") -> AsyncIterator[bytes]:
    """Packets as body chunks of about CHUNK_SIZE: one HTTP chunk per pkt-line would be wasteful."""
    batch = bytearray(first)
    async for packet in packets:
        batch += encode_packets([packet])
        if len(batch) >= CHUNK_SIZE:
            yield bytes(batch)
            batch.clear()
    if batch:
        yield bytes(batch)


async def read_section(stdin: ByteReader, what: str) -> list[Packet]:
    """The client's packets up to a flush, at most MAX_SECTION_BYTES of them; empty when the
    client flushes at once or hangs up before sending anything."""
    section: list[Packet] = []
    size = 0
    while (packet := await stdin.next_packet()) is not None:
        if packet.kind is PacketKind.FLUSH:
            return section
        size += len(packet.payload) + 4
        if size > MAX_SECTION_BYTES:
            raise ProxyError(f"the client's {what} exceed {MAX_SECTION_BYTES // 2**20} MiB")
        section.append(packet)
    if section:
        raise ProxyError(f"the client hung up in the middle of its {what}")
    return section
