"""One SSH session (one exec/shell/subsystem request): refuse, greet, or relay a Git command."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncssh
import grpc
import httpx

from geogit.common.internal_api import Denied, GeoProxyToPrimary
from geogit.common.internal_api_client import InternalApiError
from geogit.common.logging import bound_correlation_id
from geogit.common.storage_client import ChannelPool
from geogit.ssh_gateway.client import ClientGone, ClientIdle, SshClient
from geogit.ssh_gateway.clients.internal_api import InternalApiClient
from geogit.ssh_gateway.commands import Command, CommandRefused, parse_command
from geogit.ssh_gateway.geo_proxy import can_proxy, proxy_to_primary
from geogit.ssh_gateway.git_relay import GitRelay
from geogit.ssh_gateway.limits import SessionLimits, TooManySessions
from geogit.ssh_gateway.metrics import SshMetrics

log = logging.getLogger(__name__)

# GIT_PROTOCOL is the only client environment variable honoured, and only in its known shape.
_GIT_PROTOCOL = re.compile(r"version=[0-9]+(:[A-Za-z0-9_=.-]+)*")
PRODUCT = "geogit"


@dataclass(frozen=True)
class Identity:
    """Who authenticated on this connection (from authorized_keys, once per connection).

    `unavailable` is set when the key could not be looked up because the site's database is
    down: the connection is let in only to be told so (a refusal would read "Permission
    denied"); no command runs for it.
    """

    key_id: int
    username: str
    unavailable: str = ""


class SessionHandler:
    def __init__(
        self,
        api: InternalApiClient,
        limits: SessionLimits,
        idle_timeout: float,
        primary_http: httpx.AsyncClient,
        metrics: SshMetrics,
        storage_channels: ChannelPool,
    ) -> None:
        self._metrics = metrics
        self._storage_channels = storage_channels
        self._api = api
        self._limits = limits
        self._idle = idle_timeout
        # For commands a secondary serves from the primary (the 300 answer).
        self._primary_http = primary_http

    async def __call__(
        self,
        process: asyncssh.SSHServerProcess[bytes],
        identity: Identity,
        connection_lost: Callable[[], bool],
    ) -> None:
        if identity.unavailable:
            status = self._refuse(process, identity.unavailable, "unavailable")
            with contextlib.suppress(OSError, asyncssh.Error):
                process.exit(status)
            return
        with bound_correlation_id(None) as correlation_id:
            try:
                with self._limits.session(identity.username):
                    status = await self._run(process, identity, connection_lost, correlation_id)
            except TooManySessions as exc:
                status = self._refuse(process, str(exc), "limited")
            except Exception:
                log.exception("ssh session failed", extra={"username": identity.username})
                status = self._refuse(process, "internal error", "error")
            with contextlib.suppress(OSError, asyncssh.Error):  # the client may be gone
                process.exit(status)

    async def _run(
        self,
        process: asyncssh.SSHServerProcess[bytes],
        identity: Identity,
        connection_lost: Callable[[], bool],
        correlation_id: str,
    ) -> int:
        if process.subsystem:
            return self._refuse(
                process, f"subsystem {process.subsystem!r} is not allowed", "refused"
            )
        if process.term_type:
            return self._refuse(process, "interactive sessions (pty) are not allowed", "refused")
        try:
            command = parse_command(process.command)
        except CommandRefused as exc:
            return self._refuse(process, str(exc), "refused")
        if command.kind == "welcome":
            process.stdout.write(f"Welcome to {PRODUCT}, @{identity.username}!\n".encode())
            self._metrics.sessions.labels("welcome", "ok").inc()
            return 0
        assert command.action is not None
        try:
            answer = await self._api.allowed_command(
                command.action, identity.key_id, command.project
            )
        except InternalApiError as exc:
            return self._refuse(process, str(exc), "error")
        if isinstance(answer, Denied):
            return self._refuse(process, answer.message, "denied")
        git_protocol = process.env.get("GIT_PROTOCOL", "")
        if not isinstance(git_protocol, str) or not _GIT_PROTOCOL.fullmatch(git_protocol):
            git_protocol = ""
        log.info(
            "git command",
            extra={
                "command": command.action,
                "project": command.project,
                "username": identity.username,
                "git_protocol": git_protocol,
                "correlation_id": correlation_id,
            },
        )
        client = SshClient(process, self._idle, connection_lost)
        started = time.monotonic()
        try:
            if isinstance(answer, GeoProxyToPrimary):
                status = await self._from_primary(command, answer, git_protocol, client)
            else:
                relay = GitRelay(self._storage_channels, client, command, answer, git_protocol)
                status = await relay.run()
        except ClientIdle:
            return self._refuse(
                process, "idle timeout: the client stopped sending or reading", "idle"
            )
        except ClientGone:
            log.info("client gone mid-command, storage call cancelled")
            self._metrics.sessions.labels(command.action, "client_gone").inc()
            return 1
        except grpc.aio.AioRpcError as exc:
            return self._refuse(process, f"storage: {exc.code().name}: {exc.details()}", "error")
        finally:
            self._metrics.session_seconds.labels(command.action).observe(time.monotonic() - started)
        self._metrics.sessions.labels(command.action, "ok" if status == 0 else "failed").inc()
        return status

    async def _from_primary(
        self, command: Command, answer: GeoProxyToPrimary, git_protocol: str, client: SshClient
    ) -> int:
        """A secondary's stale replica, or any push there: the primary serves it over HTTP."""
        if not can_proxy(command.git):
            await client.write_stderr(
                f"{PRODUCT}: {command.action} cannot be relayed to the primary\n".encode()
            )
            return 1
        data = answer.payload.data
        log.info("serving from the primary", extra={"primary_repo": data.primary_repo})
        try:
            return await proxy_to_primary(
                command.git.ssh_name,
                data.primary_repo,
                data.request_headers,
                git_protocol,
                client,
                self._primary_http,
            )
        finally:
            if command.git.writes:
                # Whatever the outcome (the push may have landed though the answer broke off),
                # and before the client hears the exit status, so its next read is not stale.
                await self._report_push(command.project)

    async def _report_push(self, project: str) -> None:
        try:
            await self._api.proxied_push(project)
        except InternalApiError as exc:
            log.warning("could not report a relayed push", extra={"error": str(exc)})

    def _refuse(self, process: asyncssh.SSHServerProcess[bytes], message: str, outcome: str) -> int:
        self._metrics.sessions.labels("-", outcome).inc()
        log.info("session refused", extra={"reason": message, "outcome": outcome})
        with contextlib.suppress(OSError, asyncssh.Error):
            process.stderr.write(f"{PRODUCT}: {message}\n".encode())
        return 1
