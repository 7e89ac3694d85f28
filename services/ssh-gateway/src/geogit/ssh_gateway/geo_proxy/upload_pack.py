"""git-upload-pack over SSH, served by the primary's stateless smart HTTP.

Over SSH the server speaks first and remembers the conversation; over HTTP every request
stands alone. Protocol v2 was designed stateless, so each command request is one POST and its
response goes back unchanged (the 0002 response-end that git's remote-curl adds after each
response is for its own fetch-pack, which runs stateless; a client over SSH expects none).
Protocol v0 (and v1) negotiates over several rounds and needs `Negotiation`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from geogit.common.git_commands import HttpService
from geogit.common.pktline import FLUSH_PKT, Packet, PacketKind, encode_packets, pkt_line
from geogit.ssh_gateway.clients.primary import Primary
from geogit.ssh_gateway.geo_proxy.streams import (
    ByteReader,
    ClientStreams,
    ProxyError,
    coalesced,
    read_section,
    relay,
)

SERVICE: HttpService = "git-upload-pack"
_VERSION_2 = pkt_line(b"version 2\n")
_DEEPEN = (b"deepen ", b"deepen-since ", b"deepen-not ")
_SHALLOW_INFO = (b"shallow ", b"unshallow ")


async def run(primary: Primary, stdin: ByteReader, client: ClientStreams) -> int:
    async with primary.advertisement(SERVICE) as advertisement:
        version_2 = await advertisement.peek(len(_VERSION_2)) == _VERSION_2
        await relay(advertisement.rest(), client)
    if version_2:
        await _serve_v2(primary, stdin, client)
        return 0
    # The wants, capabilities and shallow/deepen/filter lines; none when the client wants
    # nothing (a fetch with everything local, `git ls-remote`).
    head = await read_section(stdin, "wants")
    if head:
        await Negotiation(primary, stdin, client, head).run()
    return 0


async def _serve_v2(primary: Primary, stdin: ByteReader, client: ClientStreams) -> None:
    """Command requests until the client's closing flush (or its EOF), one POST each."""
    while (first := await stdin.next_packet()) is not None and first.kind is not PacketKind.FLUSH:
        async with primary.rpc(SERVICE, coalesced(_command_request(first, stdin))) as response:
            await relay(response.rest(), client)


async def _command_request(first: Packet, stdin: ByteReader) -> AsyncIterator[Packet]:
    """`command=...`, capabilities, delim, arguments: everything up to the request's flush."""
    packet = first
    while packet.kind is not PacketKind.FLUSH:
        yield packet
        packet = await stdin.read_packet()
    yield packet


class Negotiation:
    """v0 negotiation: stateful towards the client, one stateless POST per round of haves.

    A stateful upload-pack remembers every round; a stateless one forgets everything once it
    has answered. So, as fetch-pack does in --stateless-rpc mode, every POST repeats the head
    (wants, capabilities, shallow/deepen/filter lines) and a `have` for every commit the
    primary has acknowledged as common so far, followed by the client's next batch. What the
    primary then says again only because it was told again — the shallow list, and ACKs of
    commits the client already had acknowledged — is dropped, so the client sees what a
    stateful server would have sent.
    """

    def __init__(
        self, primary: Primary, stdin: ByteReader, client: ClientStreams, head: list[Packet]
    ) -> None:
        self._primary = primary
        self._stdin = stdin
        self._client = client
        self._head = encode_packets(head) + FLUSH_PKT
        capabilities = head[0].payload.rstrip(b"\n").split(b" ")[2:]
        self._multi_ack = b"multi_ack" in capabilities or b"multi_ack_detailed" in capabilities
        self._deepen = any(packet.payload.startswith(_DEEPEN) for packet in head)
        self._common: dict[bytes, None] = {}  # insertion-ordered, as fetch-pack replays them
        self._done = False

    async def run(self) -> None:
        if self._deepen:
            # The client waits for the shallow list before its first have; the head alone
            # gets it (upload-pack accepts a stateless request that ends after the wants).
            async with self._primary.rpc(SERVICE, self._head) as response:
                await relay(response.rest(), self._client)
        while not self._done:
            body = coalesced(self._round(), self._state())
            async with self._primary.rpc(SERVICE, body) as response:
                await self._relay_answer(response)

    def _state(self) -> bytes:
        """What the primary must be told again before each round: fetch-pack's `state`."""
        return self._head + b"".join(pkt_line(b"have %s\n" % oid) for oid in self._common)

    async def _round(self) -> AsyncIterator[Packet]:
        """The client's next haves, up to its flush or its `done` (which may follow haves)."""
        while True:
            packet = await self._stdin.read_packet()
            if packet.kind is PacketKind.FLUSH:
                break
            if packet.payload.rstrip(b"\n") == b"done":
                # Set before `done` goes out, so it holds once the answer has been read.
                self._done = True
                break
            if not packet.payload.startswith(b"have "):
                raise ProxyError(f"the client sent {packet.payload[:60]!r} among its haves")
            yield packet
        yield packet

    async def _relay_answer(self, response: ByteReader) -> None:
        """ACKs and a NAK for a round; after `done`, the final ACK or NAK and then the pack."""
        in_shallow_list = self._deepen
        while (packet := await response.next_packet()) is not None:
            line = packet.payload
            if in_shallow_list:
                # Repeated in every answer; the client had it once, before its first have.
                if packet.kind is PacketKind.FLUSH or line.startswith(_SHALLOW_INFO):
                    in_shallow_list = packet.kind is not PacketKind.FLUSH
                    continue
                in_shallow_list = False
            if line.startswith(b"ACK "):
                oid, _, status = line[4:].rstrip(b"\n").partition(b" ")
                if self._is_news(oid, status):
                    await self._client.write_stdout(encode_packets([packet]))
                if status:
                    continue
            else:
                await self._client.write_stdout(encode_packets([packet]))
            break  # NAK, ERR, the plain ACK or the first side-band packet: no more ACKs
        await relay(response.rest(), self._client)

    def _is_news(self, oid: bytes, status: bytes) -> bool:
        """Whether a stateful server would have sent this ACK, and remember what to replay.

        `common` and `continue` name commits to replay; `ready` says when to stop and the
        plain ACK after `done` ends the negotiation, so both always pass. Without multi_ack
        the plain ACK names the first common commit, which the client must hear once.
        """
        if status == b"ready" or (not status and self._multi_ack):
            return True
        if oid in self._common:
            return False
        self._common[oid] = None
        return True
