"""geogit-ssh-gateway: the asyncssh server, its lifecycle and `main`.

Lifecycle: starting → ready (listening; readiness 200) → draining (SIGTERM/SIGINT: the listener
closes, running sessions get up to GEOGIT_SHUTDOWN_GRACE_SECONDS) → closed (remaining
connections dropped, exit 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import signal

import asyncssh

from geogit.common.internal_api_client import ApiUnavailable, InternalApiError
from geogit.common.logging import configure_logging
from geogit.common.ops_http import OpsServer
from geogit.common.storage_client import ChannelPool
from geogit.ssh_gateway.client import WINDOW
from geogit.ssh_gateway.clients.internal_api import InternalApiClient
from geogit.ssh_gateway.config import SshGatewaySettings
from geogit.ssh_gateway.geo_proxy import new_http_client
from geogit.ssh_gateway.host_keys import HostKeyError, load_or_create_host_keys
from geogit.ssh_gateway.limits import SessionLimits
from geogit.ssh_gateway.metrics import SshMetrics
from geogit.ssh_gateway.session import Identity, SessionHandler

log = logging.getLogger(__name__)


class State(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    CLOSED = "closed"


class _Connection(asyncssh.SSHServer):
    """One client connection: public-key auth only, looked up once and cached."""

    def __init__(self, gateway: SshGateway) -> None:
        self._gateway = gateway
        self._conn: asyncssh.SSHServerConnection | None = None
        self._checked: dict[bytes, Identity | None] = {}
        self.identity: Identity | None = None
        self.lost = False

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._gateway.connections[conn] = self
        self._gateway.metrics.connections.inc()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._conn is not None:
            self._gateway.connections.pop(self._conn, None)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        blob = key.public_data
        if blob not in self._checked:  # the probe and the signed request ask twice
            try:
                found = await self._gateway.api.authorized_key(blob)
            except ApiUnavailable as exc:
                log.warning("key lookup failed", extra={"error": str(exc)})
                self._gateway.metrics.auth.labels("unavailable").inc()
                self.identity = Identity(0, "", unavailable=str(exc))
                return True
            except InternalApiError as exc:
                log.warning("key lookup failed", extra={"error": str(exc)})
                self._gateway.metrics.auth.labels("error").inc()
                return False
            self._checked[blob] = Identity(found.id, found.username) if found else None
            self._gateway.metrics.auth.labels("accepted" if found else "unknown").inc()
        identity = self._checked[blob]
        if identity is None:
            return False
        self.identity = identity
        return True

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool:
        raise asyncssh.ChannelOpenError(
            asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "port forwarding is not allowed"
        )

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        return False

    def unix_connection_requested(self, dest_path: str) -> bool:
        raise asyncssh.ChannelOpenError(
            asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "forwarding is not allowed"
        )

    def unix_server_requested(self, listen_path: str) -> bool:
        return False


class SshGateway:
    def __init__(self, settings: SshGatewaySettings) -> None:
        self.settings = settings
        self.state = State.STARTING
        self.api = InternalApiClient(
            settings.internal_api_url,
            settings.internal_api_secret,
            settings.internal_api_timeout_seconds,
        )
        self.metrics = SshMetrics()
        self.limits = SessionLimits(
            settings.max_sessions, settings.max_sessions_per_user, self.metrics
        )
        self.connections: dict[asyncssh.SSHServerConnection, _Connection] = {}
        self.primary_http = new_http_client(settings.idle_timeout_seconds)
        self.storage_channels = ChannelPool()
        self._handler = SessionHandler(
            self.api,
            self.limits,
            settings.idle_timeout_seconds,
            self.primary_http,
            self.metrics,
            self.storage_channels,
        )
        self._acceptor: asyncssh.SSHAcceptor | None = None
        ops_host, ops_port = settings.ops_host_and_port
        self.ops = OpsServer(
            ops_host,
            ops_port,
            lambda: self.state is State.READY,
            header_timeout=settings.ops_header_timeout_seconds,
            max_connections=settings.ops_max_connections,
            registry=self.metrics.registry,
        )
        self.port = 0

    async def start(self) -> None:
        host_keys = load_or_create_host_keys(
            self.settings.host_keys_dir, self.settings.may_generate_host_keys
        )
        host, port = self.settings.ssh_host_and_port
        await self.ops.start()
        self._acceptor = await asyncssh.create_server(
            lambda: _Connection(self),
            host,
            port,
            server_host_keys=host_keys,
            process_factory=self._session,
            encoding=None,
            window=WINDOW,
            login_timeout=self.settings.login_grace_seconds,
            allow_pty=True,  # accepted so the session can refuse it with a message
            agent_forwarding=False,
            x11_forwarding=False,
            allow_scp=False,
            server_version="geogit",
        )
        self.port = self._acceptor.sockets[0].getsockname()[1]
        self.state = State.READY
        log.info("ssh gateway ready", extra={"port": self.port, "ops_port": self.ops.port})

    async def _session(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        conn = process.get_extra_info("connection")
        owner = self.connections.get(conn)
        if owner is None or owner.identity is None:
            process.exit(1)
            return
        await self._handler(process, owner.identity, lambda: owner.lost)

    async def stop(self) -> None:
        """Stop accepting, let running sessions finish up to the grace, drop the rest."""
        self.state = State.DRAINING
        if self._acceptor is not None:
            self._acceptor.close()
        if not await self.limits.wait_idle(self.settings.shutdown_grace_seconds):
            log.warning("grace over, dropping sessions", extra={"sessions": self.limits.active})
        for conn in list(self.connections):
            conn.close()
        if self._acceptor is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._acceptor.wait_closed(), 5)
        await self.api.aclose()
        await self.primary_http.aclose()
        await self.storage_channels.close()
        await self.ops.stop()
        self.state = State.CLOSED


async def serve(settings: SshGatewaySettings) -> None:
    gateway = SshGateway(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await gateway.start()
    await stop.wait()
    log.info("draining", extra={"sessions": gateway.limits.active})
    await gateway.stop()
    log.info("stopped")


def main() -> None:
    try:
        settings = SshGatewaySettings()
        settings.check_secrets("internal_api_secret")
    except ValueError as exc:
        raise SystemExit(f"geogit-ssh-gateway: {exc}") from exc
    configure_logging("ssh-gateway", settings.log_level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(settings))
    except HostKeyError as exc:
        raise SystemExit(f"geogit-ssh-gateway: {exc}") from exc


if __name__ == "__main__":
    main()
