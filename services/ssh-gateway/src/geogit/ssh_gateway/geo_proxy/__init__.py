"""Git over SSH on a secondary, served by the primary over smart HTTP (DESIGN §3.3).

The `300 geo_proxy_to_primary` answer from `/internal/allowed` names the primary's repository
URL and the headers to send it. Rather than storage, the gateway then speaks smart HTTP to
the primary itself, converting between the SSH form of the protocol (the server speaks first,
no `# service=` header, stateful negotiation) and the stateless HTTP form: gitlab-shell's
`githttp` commands, with v0 negotiation, shallow and partial fetches and push options. Packs
stream both ways; nothing holds one whole.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

import httpx

from geogit.common.git_commands import RECEIVE_PACK, UPLOAD_PACK, GitCommandSpec
from geogit.ssh_gateway.clients.primary import Primary, new_http_client
from geogit.ssh_gateway.geo_proxy import receive_pack, upload_pack
from geogit.ssh_gateway.geo_proxy.streams import (
    ByteReader,
    ClientStreams,
    ProxyError,
    client_reader,
)

__all__ = ["ClientStreams", "can_proxy", "new_http_client", "proxy_to_primary"]

log = logging.getLogger(__name__)

Command = Callable[[Primary, ByteReader, ClientStreams], Awaitable[int]]
# Registry commands with an HTTP form, by SSH name → the module converting it.
COMMANDS: dict[str, Command] = {
    UPLOAD_PACK.ssh_name: upload_pack.run,
    RECEIVE_PACK.ssh_name: receive_pack.run,
}


def can_proxy(command: GitCommandSpec) -> bool:
    """Whether a secondary can serve the command from the primary (over its HTTP form)."""
    return command.ssh_name in COMMANDS


async def proxy_to_primary(
    action: str,
    primary_repo: str,
    request_headers: Mapping[str, str],
    git_protocol: str,
    client: ClientStreams,
    http: httpx.AsyncClient,
) -> int:
    """Serve one command from the primary; the exit status to give the SSH client.

    `http` should come from `new_http_client` (no redirects, no proxies from the environment).
    A refusal or failure of the primary, or a client breaking the protocol, is told on the
    client's stderr with status 1; the client's own I/O errors propagate to the caller.
    """
    primary = Primary(http, primary_repo, request_headers, git_protocol)
    try:
        return await COMMANDS[action](primary, client_reader(client), client)
    except ProxyError as exc:
        log.info("geo proxy failed", extra={"command": action, "error": str(exc)})
        await client.write_stderr(f"geogit: {exc}\n".encode())
        return 1
