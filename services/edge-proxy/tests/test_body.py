"""Request body decoding: gzip undone incrementally, messages never above 64 KiB."""

from __future__ import annotations

import gzip
import os
from collections.abc import AsyncIterator

import pytest

from geogit.edge_proxy.body import MESSAGE_BYTES, BodyError, decoded


async def pieces(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def collect(raw: AsyncIterator[bytes], encoding: str) -> list[bytes]:
    return [chunk async for chunk in decoded(raw, encoding)]


async def test_identity_is_cut_into_messages() -> None:
    data = os.urandom(3 * MESSAGE_BYTES + 5)
    out = await collect(pieces(data[:10], data[10:]), "")
    assert b"".join(out) == data
    assert max(map(len, out)) <= MESSAGE_BYTES


async def test_gzip_cut_anywhere() -> None:
    data = b"0032want " + os.urandom(2000).hex().encode() + b"\n0000"
    packed = gzip.compress(data)
    for cut in range(1, len(packed), 97):
        out = await collect(pieces(packed[:cut], packed[cut:]), "gzip")
        assert b"".join(out) == data


async def test_gzip_bomb_comes_out_in_bounded_messages() -> None:
    size = 16 * 1024 * 1024
    packed = gzip.compress(bytes(size))  # 16 MiB of zeros in about 16 KiB
    total = 0
    async for chunk in decoded(pieces(packed), "x-gzip"):
        assert len(chunk) <= MESSAGE_BYTES
        total += len(chunk)
    assert total == size


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"plain text, not gzip", "not valid gzip"),
        (gzip.compress(b"hello")[:-4], "ends before"),
        (gzip.compress(b"hello") + b"trailing", "after the end"),
    ],
)
async def test_bad_gzip_is_a_body_error(body: bytes, says: str) -> None:
    with pytest.raises(BodyError, match=says):
        await collect(pieces(body), "gzip")
