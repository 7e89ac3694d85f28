"""Git's pkt-line framing (gitprotocol-common) and side-band multiplexing (gitprotocol-pack).

A pkt-line is a 4-hex-digit length, counting those 4 bytes, followed by the payload. Lengths
0000, 0001 and 0002 are the special flush, delim and response-end packets; 0003 is invalid;
nothing may exceed 65520 bytes. Everything here works on streams a packet at a time, so a
push is never held in memory whole, and rejects malformed framing with a message saying which
rule was broken.
"""

import asyncio
import enum
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

FLUSH_PKT = b"0000"
DELIM_PKT = b"0001"
RESPONSE_END_PKT = b"0002"
MAX_PKT_LEN = 65520
MAX_PKT_PAYLOAD = MAX_PKT_LEN - 4

SIDEBAND_DATA = 1
SIDEBAND_PROGRESS = 2
SIDEBAND_ERROR = 3
MAX_SIDEBAND_DATA = MAX_PKT_PAYLOAD - 1
"""Data bytes per side-band-64k packet: one payload byte goes to the band number."""

_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


class PktLineError(ValueError):
    """The byte stream does not follow pkt-line framing."""


class PacketKind(enum.Enum):
    DATA = enum.auto()
    FLUSH = enum.auto()
    DELIM = enum.auto()
    RESPONSE_END = enum.auto()


@dataclass(frozen=True)
class Packet:
    kind: PacketKind
    payload: bytes = b""

    def __post_init__(self) -> None:
        if self.kind is not PacketKind.DATA and self.payload:
            raise ValueError(f"a {self.kind.name} packet carries no payload")


_SPECIAL_BY_LENGTH = {
    0: Packet(PacketKind.FLUSH),
    1: Packet(PacketKind.DELIM),
    2: Packet(PacketKind.RESPONSE_END),
}
_WIRE_BY_KIND = {
    PacketKind.FLUSH: FLUSH_PKT,
    PacketKind.DELIM: DELIM_PKT,
    PacketKind.RESPONSE_END: RESPONSE_END_PKT,
}


def pkt_line(payload: bytes) -> bytes:
    if len(payload) > MAX_PKT_PAYLOAD:
        raise PktLineError(
            f"pkt-line payload of {len(payload)} bytes exceeds {MAX_PKT_PAYLOAD} bytes"
        )
    return b"%04x" % (len(payload) + 4) + payload


def encode_packets(packets: Iterable[Packet]) -> bytes:
    return b"".join(
        pkt_line(packet.payload) if packet.kind is PacketKind.DATA else _WIRE_BY_KIND[packet.kind]
        for packet in packets
    )


def parse_pkt_length(header: bytes) -> int:
    """Total length from a 4-byte header: 0-2 for special packets, else 4..MAX_PKT_LEN.

    Digits are checked one by one because `int(x, 16)` also takes signs, spaces, `0x` and `_`.
    """
    if not all(byte in _HEX_DIGITS for byte in header):
        raise PktLineError(f"invalid pkt-line length prefix {header!r}")
    length = int(header, 16)
    if length == 3:
        raise PktLineError(f"pkt-line length {length} is reserved/invalid")
    if length > MAX_PKT_LEN:
        raise PktLineError(f"pkt-line longer than {MAX_PKT_LEN} bytes")
    return length


def _truncated(expected: int, got: int) -> PktLineError:
    return PktLineError(f"truncated pkt-line: expected {expected} bytes, got {got}")


class PktLineDecoder:
    """Turns chunks of a byte stream, cut anywhere, into packets.

    Only the bytes of the one packet still incomplete are kept between calls. A bad length
    prefix is reported as soon as its 4 bytes arrive, without waiting for a payload.
    """

    def __init__(self) -> None:
        self._partial = b""

    def feed(self, data: bytes) -> list[Packet]:
        buffer = self._partial + data if self._partial else data
        packets: list[Packet] = []
        position = 0
        while len(buffer) - position >= 4:
            length = parse_pkt_length(buffer[position : position + 4])
            if length in _SPECIAL_BY_LENGTH:
                packets.append(_SPECIAL_BY_LENGTH[length])
                position += 4
                continue
            if len(buffer) - position < length:
                break
            packets.append(Packet(PacketKind.DATA, buffer[position + 4 : position + length]))
            position += length
        self._partial = buffer[position:]
        return packets

    def close(self) -> None:
        """Declare the end of the stream; a packet cut short is an error, not silently lost."""
        if not self._partial:
            return
        got = len(self._partial)
        expected = 4 if got < 4 else parse_pkt_length(self._partial[:4])
        raise _truncated(expected, got)


async def read_packet(read_exactly: Callable[[int], Awaitable[bytes]]) -> Packet:
    """Read one packet; `read_exactly(n)` returns fewer than n bytes only at end of stream.

    Raises `EOFError` when the stream ends cleanly between packets, `PktLineError` when it ends
    inside one.
    """
    header = await read_exactly(4)
    if not header:
        raise EOFError("end of pkt-line stream")
    if len(header) < 4:
        raise _truncated(4, len(header))
    length = parse_pkt_length(header)
    if length in _SPECIAL_BY_LENGTH:
        return _SPECIAL_BY_LENGTH[length]
    payload = await read_exactly(length - 4)
    if len(payload) < length - 4:
        raise _truncated(length, 4 + len(payload))
    return Packet(PacketKind.DATA, payload)


def stream_read_exactly(reader: asyncio.StreamReader) -> Callable[[int], Awaitable[bytes]]:
    """Adapt `StreamReader.readexactly`, which raises at EOF, to `read_packet`'s contract."""

    async def read_exactly(size: int) -> bytes:
        try:
            return await reader.readexactly(size)
        except asyncio.IncompleteReadError as exc:
            return exc.partial

    return read_exactly


def sideband_packet(band: int, data: bytes) -> bytes:
    """Frame `data` on one side-band, in as many pkt-lines as it takes (none if it is empty)."""
    if band not in (SIDEBAND_DATA, SIDEBAND_PROGRESS, SIDEBAND_ERROR):
        raise PktLineError(f"unknown side-band band {band}")
    prefix = bytes((band,))
    return b"".join(
        pkt_line(prefix + data[start : start + MAX_SIDEBAND_DATA])
        for start in range(0, len(data), MAX_SIDEBAND_DATA)
    )


class SidebandDemuxer:
    """Splits a side-band stream into `(band, data)`; a flush comes out as `(0, b"")`."""

    def __init__(self) -> None:
        self._decoder = PktLineDecoder()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        frames: list[tuple[int, bytes]] = []
        for packet in self._decoder.feed(data):
            if packet.kind is PacketKind.FLUSH:
                frames.append((0, b""))
                continue
            if packet.kind is not PacketKind.DATA:
                raise PktLineError(f"unexpected {packet.kind.name} packet in side-band stream")
            if not packet.payload:
                raise PktLineError("side-band pkt-line without a band byte")
            band = packet.payload[0]
            if band not in (SIDEBAND_DATA, SIDEBAND_PROGRESS, SIDEBAND_ERROR):
                raise PktLineError(f"unknown side-band band {band}")
            frames.append((band, packet.payload[1:]))
        return frames

    def close(self) -> None:
        self._decoder.close()
