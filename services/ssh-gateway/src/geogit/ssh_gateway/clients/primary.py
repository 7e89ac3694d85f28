"""The primary's smart HTTP front door, as the proxy calls it (DESIGN §3.3).

Two calls, as git's remote-curl makes them: `GET info/refs?service=...` for the advertisement
and `POST <service>` for each stateless request, with the headers the internal API handed out
(a Geo JWT, or Basic credentials). Only a 200 with the Git content type counts as an answer;
anything else ends the command with the primary's own words.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

import httpx

from geogit.common.git_commands import HttpService
from geogit.common.pktline import PacketKind
from geogit.ssh_gateway.geo_proxy.streams import ByteReader, ProxyError

USER_AGENT = "geogit-ssh-gateway"
_ERROR_TEXT_LIMIT = 2048


def new_http_client(timeout: float) -> httpx.AsyncClient:
    """A client fit for proxying: `timeout` bounds each wait (not a whole pack transfer).

    Redirects are not followed (a redirect from the primary is an answer to report, not a
    place to send credentials) and the environment's proxy settings are ignored.
    """
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )


class Primary:
    def __init__(
        self,
        http: httpx.AsyncClient,
        repository_url: str,
        request_headers: Mapping[str, str],
        git_protocol: str,
    ) -> None:
        self._http = http
        self._url = repository_url.rstrip("/")
        self._headers = dict(request_headers)
        if git_protocol:
            self._headers["Git-Protocol"] = git_protocol

    @asynccontextmanager
    async def advertisement(self, service: HttpService) -> AsyncIterator[ByteReader]:
        """The advertisement as the SSH client expects it: without smart HTTP's header.

        HTTP starts with `# service=<service>` and a flush, which SSH does not have; a v2
        answer comes without them (as from git http-backend), so they are dropped if present.
        """
        request = self._http.build_request(
            "GET", f"{self._url}/info/refs", params={"service": service}, headers=self._headers
        )
        async with self._exchange(request, service, "advertisement") as body:
            if not await body.peek(4):
                raise ProxyError(f"the primary sent an empty {service} advertisement")
            if (await body.peek(14))[4:] == b"# service=":
                header = await body.read_packet()
                if header.payload.rstrip(b"\n") != f"# service={service}".encode():
                    raise ProxyError(f"the primary advertised {header.payload[:80]!r}")
                if (await body.read_packet()).kind is not PacketKind.FLUSH:
                    raise ProxyError("the primary sent no flush after its service header")
            yield body

    @asynccontextmanager
    async def rpc(
        self, service: HttpService, body: bytes | AsyncIterable[bytes]
    ) -> AsyncIterator[ByteReader]:
        """One stateless request; the body is streamed if it is an iterable."""
        headers = {
            **self._headers,
            "Content-Type": f"application/x-{service}-request",
            "Accept": f"application/x-{service}-result",
        }
        request = self._http.build_request(
            "POST", f"{self._url}/{service}", content=body, headers=headers
        )
        async with self._exchange(request, service, "result") as response:
            yield response

    @asynccontextmanager
    async def _exchange(
        self, request: httpx.Request, service: HttpService, kind: str
    ) -> AsyncIterator[ByteReader]:
        try:
            response = await self._http.send(request, stream=True, follow_redirects=False)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ProxyError(f"the primary site is unreachable: {_describe(exc)}") from exc
        except httpx.HTTPError as exc:
            raise ProxyError(f"the request to the primary failed: {_describe(exc)}") from exc
        try:
            if response.status_code != 200:
                text = await _error_text(response)
                raise ProxyError(
                    f"the primary refused {service} (HTTP {response.status_code}): {text}"
                )
            content_type = response.headers.get("content-type", "").split(";")[0].strip()
            if content_type != f"application/x-{service}-{kind}":
                raise ProxyError(
                    f"the primary answered {content_type or 'no content type'!r}"
                    f" instead of a {service} {kind}"
                )
            yield ByteReader(_chunks(response), "the primary")
        finally:
            await response.aclose()


def _chunks(response: httpx.Response) -> Callable[[], Awaitable[bytes]]:
    """The body, decoded, chunk by chunk; b"" once it has ended."""
    chunks = response.aiter_bytes()

    async def next_chunk() -> bytes:
        try:
            async for chunk in chunks:
                if chunk:
                    return chunk
        except httpx.HTTPError as exc:
            raise ProxyError(f"the primary's response broke off: {_describe(exc)}") from exc
        return b""

    return next_chunk


async def _error_text(response: httpx.Response) -> str:
    """The start of an error body, as one line of text (the primary's message to the user)."""
    text = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            text += chunk
            if len(text) >= _ERROR_TEXT_LIMIT:
                break
    except httpx.HTTPError:
        pass  # the status says enough
    message = " ".join(text[:_ERROR_TEXT_LIMIT].decode(errors="replace").split())
    return message or response.reason_phrase or "no message"


def _describe(exc: httpx.HTTPError) -> str:
    return str(exc) or type(exc).__name__
