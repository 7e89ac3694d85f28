"""The wants check (DESIGN §3.2): before a secondary serves an upload-pack POST itself, every
object the client asks for must be in the replica.

A client may have read its refs from the primary a moment earlier (a proxied info/refs, or
another site), so it can want a commit the replica does not have yet. The request is read up
to the end of its want section — the first flush in protocol v0 (`want <oid> ...` lines
before the haves), the end of the command in v2 (`command=fetch`, then `want <oid>` among the
arguments) — and the bytes read are kept, to be replayed to whichever side serves it. A want
by name (`want-ref`), a malformed request or one whose want section is unusually large is
not checked here: it goes to the primary, which can always serve it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from geogit.common.pktline import PacketKind, PktLineDecoder, PktLineError

# A want section longer than this (about 20k wants) is relayed rather than checked.
MAX_WANT_SECTION = 1024 * 1024
_OID_LENGTHS = frozenset({40, 64})


@dataclass(frozen=True)
class WantSection:
    # Everything read from the body so far, to be sent on before the rest.
    prefix: bytes
    # The object ids wanted, or None when the request cannot be checked here.
    wants: list[str] | None


def _want(payload: bytes) -> str:
    words = payload.rstrip(b"\n").split(b" ")
    oid = words[1].decode("ascii", "replace") if len(words) > 1 else ""
    if len(oid) not in _OID_LENGTHS or not all(c in "0123456789abcdef" for c in oid):
        raise ValueError("malformed want line")
    return oid


async def read_want_section(body: AsyncIterator[bytes]) -> WantSection:
    """Consume `body` up to the end of the want section (not beyond the chunk it ends in)."""
    decoder = PktLineDecoder()
    prefix = bytearray()
    wants: list[str] = []
    checkable = True
    async for chunk in body:
        prefix += chunk
        try:
            packets = decoder.feed(chunk)
        except PktLineError:
            return WantSection(bytes(prefix), None)
        for packet in packets:
            if packet.kind is PacketKind.FLUSH:
                return WantSection(bytes(prefix), wants if checkable else None)
            if packet.kind is not PacketKind.DATA:
                continue
            if packet.payload.startswith(b"want-ref "):
                checkable = False
            elif packet.payload.startswith(b"want "):
                try:
                    wants.append(_want(packet.payload))
                except ValueError:
                    checkable = False
        if len(prefix) > MAX_WANT_SECTION:
            return WantSection(bytes(prefix), None)
    return WantSection(bytes(prefix), None)


async def replayed(prefix: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if prefix:
        yield prefix
    async for chunk in rest:
        yield chunk
