import asyncio
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geogit.common.pktline import (
    DELIM_PKT,
    FLUSH_PKT,
    MAX_PKT_LEN,
    MAX_PKT_PAYLOAD,
    RESPONSE_END_PKT,
    SIDEBAND_DATA,
    SIDEBAND_ERROR,
    SIDEBAND_PROGRESS,
    Packet,
    PacketKind,
    PktLineDecoder,
    PktLineError,
    SidebandDemuxer,
    encode_packets,
    pkt_line,
    read_packet,
    sideband_packet,
    stream_read_exactly,
)

packets = st.one_of(
    st.builds(Packet, st.just(PacketKind.DATA), st.binary(max_size=300)),
    st.sampled_from([Packet(kind) for kind in PacketKind if kind is not PacketKind.DATA]),
)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    return [data[start:end] for start, end in zip([0, *points], [*points, len(data)], strict=True)]


def test_pkt_line_matches_git_examples() -> None:
    # Examples from gitprotocol-common.
    assert pkt_line(b"a\n") == b"0006a\n"
    assert pkt_line(b"a") == b"0005a"
    assert pkt_line(b"foobar\n") == b"000bfoobar\n"
    assert pkt_line(b"") == b"0004"


def test_special_packets_encode_to_their_wire_form() -> None:
    encoded = encode_packets([Packet(PacketKind.FLUSH), Packet(PacketKind.DELIM)])
    assert encoded + encode_packets([Packet(PacketKind.RESPONSE_END)]) == (
        FLUSH_PKT + DELIM_PKT + RESPONSE_END_PKT
    )


def test_special_packets_carry_no_payload() -> None:
    with pytest.raises(ValueError, match="FLUSH packet carries no payload"):
        Packet(PacketKind.FLUSH, b"x")


def test_largest_payload_round_trips_and_one_more_byte_is_refused() -> None:
    largest = pkt_line(b"x" * MAX_PKT_PAYLOAD)
    assert len(largest) == MAX_PKT_LEN
    assert largest[:4] == b"fff0"
    assert PktLineDecoder().feed(largest) == [Packet(PacketKind.DATA, b"x" * MAX_PKT_PAYLOAD)]
    with pytest.raises(PktLineError, match="payload of 65517 bytes exceeds 65516"):
        pkt_line(b"x" * (MAX_PKT_PAYLOAD + 1))


@given(st.lists(packets, max_size=20), st.lists(st.integers(min_value=0), max_size=10))
def test_round_trip_through_arbitrary_chunks(packet_list: list[Packet], cuts: list[int]) -> None:
    decoder = PktLineDecoder()
    decoded = [
        p for chunk in _split(encode_packets(packet_list), cuts) for p in decoder.feed(chunk)
    ]
    decoder.close()
    assert decoded == packet_list


def test_uppercase_hex_is_accepted() -> None:
    assert PktLineDecoder().feed(b"000Aabcdef") == [Packet(PacketKind.DATA, b"abcdef")]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"zzzz", r"invalid pkt-line length prefix b'zzzz'"),
        (b"+fff", r"invalid pkt-line length prefix b'\+fff'"),
        (b" 0x5a", r"invalid pkt-line length prefix b' 0x5'"),
        (b"0003", r"pkt-line length 3 is reserved/invalid"),
        (b"fff1", r"pkt-line longer than 65520 bytes"),
        (b"ffff", r"pkt-line longer than 65520 bytes"),
    ],
)
def test_malformed_prefix(data: bytes, message: str) -> None:
    with pytest.raises(PktLineError, match=f"^{message}$"):
        PktLineDecoder().feed(data)


def test_bad_prefix_reported_before_payload_arrives() -> None:
    decoder = PktLineDecoder()
    assert decoder.feed(b"0006a\n00") == [Packet(PacketKind.DATA, b"a\n")]
    with pytest.raises(PktLineError, match="reserved/invalid"):
        decoder.feed(b"03")


@pytest.mark.parametrize(
    ("data", "expected", "got"), [(b"00", 4, 2), (b"0009", 9, 4), (b"0009abc", 9, 7)]
)
def test_truncated_stream(data: bytes, expected: int, got: int) -> None:
    decoder = PktLineDecoder()
    assert decoder.feed(data) == []
    with pytest.raises(
        PktLineError, match=f"^truncated pkt-line: expected {expected} bytes, got {got}$"
    ):
        decoder.close()


async def _read_all(data: bytes) -> list[Packet]:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    read_exactly = stream_read_exactly(reader)
    result = []
    while True:
        try:
            result.append(await read_packet(read_exactly))
        except EOFError:
            return result


async def test_read_packet_over_stream_reader() -> None:
    packet_list = [
        Packet(PacketKind.DATA, b"want 1234\n"),
        Packet(PacketKind.DELIM),
        Packet(PacketKind.DATA, b""),
        Packet(PacketKind.FLUSH),
    ]
    assert await _read_all(encode_packets(packet_list)) == packet_list


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"000", "truncated pkt-line: expected 4 bytes, got 3"),
        (b"0009abc", "truncated pkt-line: expected 9 bytes, got 7"),
        (b"00zz", "invalid pkt-line length prefix b'00zz'"),
    ],
)
async def test_read_packet_rejects_bad_streams(data: bytes, message: str) -> None:
    with pytest.raises(PktLineError, match=f"^{message}$"):
        await _read_all(b"0000" + data)


@given(
    st.lists(
        st.tuples(
            st.sampled_from([SIDEBAND_DATA, SIDEBAND_PROGRESS, SIDEBAND_ERROR]),
            st.binary(min_size=1, max_size=200),
        ),
        max_size=10,
    ),
    st.lists(st.integers(min_value=0), max_size=10),
)
def test_sideband_round_trip(frames: list[tuple[int, bytes]], cuts: list[int]) -> None:
    stream = b"".join(sideband_packet(band, data) for band, data in frames) + FLUSH_PKT
    demuxer = SidebandDemuxer()
    decoded = [frame for chunk in _split(stream, cuts) for frame in demuxer.feed(chunk)]
    demuxer.close()
    assert decoded == [*frames, (0, b"")]


def test_sideband_splits_large_data() -> None:
    data = bytes(range(256)) * 600  # 153600 bytes: three packets
    stream = sideband_packet(SIDEBAND_DATA, data)
    frames = SidebandDemuxer().feed(stream)
    assert [len(chunk) for _, chunk in frames] == [65515, 65515, 22570]
    assert b"".join(chunk for _, chunk in frames) == data
    assert sideband_packet(SIDEBAND_PROGRESS, b"") == b""


def test_sideband_refuses_unknown_bands() -> None:
    with pytest.raises(PktLineError, match=r"^unknown side-band band 4$"):
        sideband_packet(4, b"x")
    with pytest.raises(PktLineError, match=r"^unknown side-band band 4$"):
        SidebandDemuxer().feed(pkt_line(b"\x04x"))
    with pytest.raises(PktLineError, match="without a band byte"):
        SidebandDemuxer().feed(pkt_line(b""))
    with pytest.raises(PktLineError, match="unexpected DELIM packet"):
        SidebandDemuxer().feed(DELIM_PKT)


async def _git(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> bytes:
    process = await asyncio.create_subprocess_exec(
        "git", *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env
    )
    stdout, _ = await process.communicate(stdin)
    assert process.returncode == 0
    return stdout


async def test_speaks_protocol_v2_with_real_git(tmp_path: Path) -> None:
    repository = str(tmp_path / "repo")
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    await _git("init", "-q", "-b", "main", repository)
    await _git("-C", repository, *identity, "commit", "-q", "--allow-empty", "-m", "first")
    head = (await _git("-C", repository, "rev-parse", "HEAD")).strip()
    request = encode_packets(
        [
            Packet(PacketKind.DATA, b"command=ls-refs\n"),
            Packet(PacketKind.DELIM),
            Packet(PacketKind.DATA, b"ref-prefix refs/heads/\n"),
            Packet(PacketKind.FLUSH),
        ]
    )
    env = {**os.environ, "GIT_PROTOCOL": "version=2"}
    response = await _git("upload-pack", "--stateless-rpc", repository, stdin=request, env=env)
    assert await _read_all(response) == [
        Packet(PacketKind.DATA, head + b" refs/heads/main\n"),
        Packet(PacketKind.FLUSH),
    ]
