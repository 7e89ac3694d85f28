"""Request body decoding: gzip undone incrementally, messages never above 64 KiB."""

from __future__ import annotations

import gzip
import os
from collections.abc import AsyncIterator

import pytest

from geogit.edge_proxy.body import MESSAGE_BYTES, BodyError, InflatedTooLarge, Recorded, decoded

LIMIT = 64 * 1024 * 1024


async def pieces(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def collect(raw: AsyncIterator[bytes], encoding: str) -> list[bytes]:
    return [chunk async for chunk in decoded(raw, encoding, LIMIT)]


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
    async for chunk in decoded(pieces(packed), "x-gzip", LIMIT):
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


async def test_gzip_inflating_beyond_the_limit_is_413_after_at_most_the_limit() -> None:
    limit = 1024 * 1024
    packed = gzip.compress(bytes(limit + 1))
    inflated = 0
    with pytest.raises(InflatedTooLarge, match=f"inflates to more than {limit} bytes") as error:
        async for chunk in decoded(pieces(packed), "gzip", limit):
            inflated += len(chunk)
    assert error.value.status == 413
    assert inflated <= limit
    exact = [chunk async for chunk in decoded(pieces(gzip.compress(bytes(limit))), "gzip", limit)]
    assert sum(map(len, exact)) == limit


async def test_identity_bodies_are_not_bounded_by_the_inflation_limit() -> None:
    data = os.urandom(3 * MESSAGE_BYTES)
    out = [chunk async for chunk in decoded(pieces(data), "", MESSAGE_BYTES)]
    assert b"".join(out) == data


async def test_recorded_body_hands_over_the_raw_bytes_read_and_the_rest() -> None:
    data = b"0032want " + b"a" * 40 + b"\n" + b"0000" + os.urandom(4 * MESSAGE_BYTES).hex().encode()
    packed = gzip.compress(data)
    raw_chunks = [packed[i : i + 1000] for i in range(0, len(packed), 1000)]
    raw = Recorded(pieces(*raw_chunks))
    body = decoded(raw.chunks(), "gzip", LIMIT)
    first = await anext(body)
    assert data.startswith(first)
    sent = raw.taken()
    relayed = sent + b"".join([chunk async for chunk in raw.rest()])
    assert relayed == packed
    assert raw.taken() == b""
