"""Checks the pkt-line framing of what a client sends before git reads it.

git would also refuse bad framing, but with "fatal: protocol error" from deep inside a
process; checking here turns it into a precise INVALID_ARGUMENT. A response-end packet
(0002) is refused too: only servers send it, and git 2.39's upload-pack aborts on one
("BUG: serve.c: unexpected response end packet"). Only the headers are
parsed, so the check costs nothing per byte of payload. A push is pkt-lines up to its first
flush and raw pack data after it, so the check stops there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from geogit.common.pktline import PktLineError, parse_pkt_length
from geogit.storage.errors import InvalidArgument

_HEADER = 4
RESPONSE_END = 2


class PktLineGuard:
    def __init__(self, *, until_first_flush: bool) -> None:
        self.until_first_flush = until_first_flush
        self.error: InvalidArgument | None = None
        self._done = False
        self._header = b""
        self._skip = 0

    def check(self, chunk: bytes) -> None:
        position = 0
        while not self._done and position < len(chunk):
            if self._skip:
                step = min(self._skip, len(chunk) - position)
                self._skip -= step
                position += step
                continue
            need = _HEADER - len(self._header)
            self._header += chunk[position : position + need]
            position += min(need, len(chunk) - position)
            if len(self._header) < _HEADER:
                return
            length = parse_pkt_length(self._header)
            self._header = b""
            if length == RESPONSE_END:
                raise PktLineError("a response-end packet (0002) is only sent by servers")
            if length == 0 and self.until_first_flush:
                self._done = True
            self._skip = max(length - _HEADER, 0)

    async def guarded(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Pass chunks through; on bad framing record the error and end the stream."""
        async for chunk in chunks:
            try:
                self.check(chunk)
            except PktLineError as exc:
                self.error = InvalidArgument(f"malformed pkt-line in request: {exc}")
                return
            yield chunk

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error
