"""Git request bodies as storage wants them: plain bytes in messages of at most 64 KiB.

git gzips fetch negotiation bodies (`Content-Encoding: gzip`) and sends large pushes chunked.
Both are undone here a piece at a time: each incoming chunk is inflated with a bounded output
size, so neither a large push nor a gzip bomb makes the edge hold more than one message. The
inflated total is bounded too (413): a negotiation is wants and haves, and without a bound
1 MB of gzip becomes 1 GiB of work for storage.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterator

MESSAGE_BYTES = 64 * 1024
"""grpc.aio moves 64 KiB messages at about twice the rate of 16 KiB ones (DESIGN §9)."""

GZIP_ENCODINGS = frozenset({"gzip", "x-gzip"})
IDENTITY_ENCODINGS = frozenset({"", "identity"})


class BodyError(ValueError):
    """The request body cannot be decoded; the message says why and is shown to the client."""

    status = 400


class InflatedTooLarge(BodyError):
    status = 413


def is_supported_encoding(content_encoding: str) -> bool:
    return content_encoding in GZIP_ENCODINGS or content_encoding in IDENTITY_ENCODINGS


async def decoded(
    raw: AsyncIterator[bytes], content_encoding: str, max_inflated: int
) -> AsyncIterator[bytes]:
    """`raw` undone of its content encoding and cut into messages of at most 64 KiB; a gzip
    body inflating to more than `max_inflated` bytes is refused."""
    if content_encoding in GZIP_ENCODINGS:
        inflated = 0
        async for chunk in _gunzipped(raw):
            inflated += len(chunk)
            if inflated > max_inflated:
                raise InflatedTooLarge(
                    f"gzip request body inflates to more than {max_inflated} bytes"
                )
            yield chunk
        return
    async for data in raw:
        for start in range(0, len(data), MESSAGE_BYTES):
            yield data[start : start + MESSAGE_BYTES]


async def _gunzipped(raw: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    async for data in raw:
        for chunk in _inflate(inflater, data):
            yield chunk
        if inflater.unused_data:
            raise BodyError("request body has data after the end of its gzip stream")
    if not inflater.eof:
        raise BodyError("gzip request body ends before its gzip stream does")


def _inflate(inflater: zlib._Decompress, data: bytes) -> Iterator[bytes]:
    # With max_length, input zlib could not expand yet waits in unconsumed_tail, and output
    # can still be pending after the input is used up: loop until a call returns less.
    while True:
        try:
            out = inflater.decompress(data, MESSAGE_BYTES)
        except zlib.error as exc:
            raise BodyError(f"request body is not valid gzip: {exc}") from exc
        if out:
            yield out
        data = inflater.unconsumed_tail
        if not data and len(out) < MESSAGE_BYTES:
            return


class Recorded:
    """A body whose chunks are kept as they are read, until `taken`: the wants check reads the
    start of a body decoded, and a request it relays must go out as it came (gzip stays gzip,
    so the primary applies its own bound to it and the secondary inflates at most the want
    section)."""

    def __init__(self, raw: AsyncIterator[bytes]) -> None:
        self._raw = raw
        self._kept: list[bytes] | None = []

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._raw:
            if self._kept is not None:
                self._kept.append(chunk)
            yield chunk

    def taken(self) -> bytes:
        """What was read so far; from now on nothing more is kept."""
        kept, self._kept = self._kept or [], None
        return b"".join(kept)

    def rest(self) -> AsyncIterator[bytes]:
        """The chunks not read yet, for a relay that takes over from `chunks`."""
        return self._raw
