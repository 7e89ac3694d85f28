"""Git request bodies as storage wants them: plain bytes in messages of at most 64 KiB.

git gzips fetch negotiation bodies (`Content-Encoding: gzip`) and sends large pushes chunked.
Both are undone here a piece at a time: each incoming chunk is inflated with a bounded output
size, so neither a large push nor a gzip bomb makes the edge hold more than one message.
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


def is_supported_encoding(content_encoding: str) -> bool:
    return content_encoding in GZIP_ENCODINGS or content_encoding in IDENTITY_ENCODINGS


async def decoded(raw: AsyncIterator[bytes], content_encoding: str) -> AsyncIterator[bytes]:
    """`raw` undone of its content encoding and cut into messages of at most 64 KiB."""
    if content_encoding in GZIP_ENCODINGS:
        async for chunk in _gunzipped(raw):
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
