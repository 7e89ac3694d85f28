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

from geogit.common.logging import bound_correlation_id
from geogit.ssh_gateway import metrics
from geogit.ssh_gateway.commands import CommandRefused, parse_command
from geogit.ssh_gateway.git_relay import ClientGone, ClientIdle, GitRelay
from geogit.ssh_gateway.internal_client import Denial, InternalApiClient, InternalApiError
from geogit.ssh_gateway.limits import SessionLimits, TooManySessions

log = logging.getLogger(__name__)

# GIT_PROTOCOL is the only client environment variable honoured, and only in its known shape.
_GIT_PROTOCOL = re.compile(r"version=[0-9]+(:[A-Za-z0-9_=.-]+)*")
PRODUCT = "geogit"


@dataclass(frozen=True)
class Identity:
    """Who authenticated on this connection (from authorized_keys, once per connection)."""

    key_id: int
    username: str


class SessionHandler:
    def __init__(self, api: InternalApiClient, limits: SessionLimits, idle_timeout: float) -> None:
        self._api = api
        self._limits = limits
        self._idle = idle_timeout

    async def __call__(
        self,
        process: asyncssh.SSHServerProcess[bytes],
        identity: Identity,
        connection_lost: Callable[[], bool],
    ) -> None:
        with bound_correlation_id(None) as correlation_id:
            try:
                with self._limits.session(identity.username):
                    status = await self._run(process, identity, connection_lost, correlation_id)
            except TooManySessions as exc:
                status = _refuse(process, str(exc), "limited")
            except Exception:
                log.exception("ssh session failed", extra={"username": identity.username})
                status = _refuse(process, "internal error", "error")
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
            return _refuse(process, f"subsystem {process.subsystem!r} is not allowed", "refused")
        if process.term_type:
            return _refuse(process, "interactive sessions (pty) are not allowed", "refused")
        try:
            command = parse_command(process.command)
        except CommandRefused as exc:
            return _refuse(process, str(exc), "refused")
        if command.kind == "welcome":
            process.stdout.write(f"Welcome to {PRODUCT}, @{identity.username}!\n".encode())
            metrics.SESSIONS.labels("welcome", "ok").inc()
            return 0
        assert command.action is not None
        try:
            answer = await self._api.allowed(command.action, identity.key_id, command.project)
        except InternalApiError as exc:
            return _refuse(process, str(exc), "error")
        if isinstance(answer, Denial):
            return _refuse(process, answer.message, "denied")
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
        relay = GitRelay(process, command, answer, git_protocol, self._idle, connection_lost)
        started = time.monotonic()
        try:
            status = await relay.run()
        except ClientIdle:
            return _refuse(process, "idle timeout: the client stopped sending or reading", "idle")
        except ClientGone:
            log.info("client gone mid-command, storage call cancelled")
            metrics.SESSIONS.labels(command.action, "client_gone").inc()
            return 1
        except grpc.aio.AioRpcError as exc:
            return _refuse(process, f"storage: {exc.code().name}: {exc.details()}", "error")
        finally:
            metrics.SESSION_SECONDS.labels(command.action).observe(time.monotonic() - started)
        metrics.SESSIONS.labels(command.action, "ok" if status == 0 else "failed").inc()
        return status


def _refuse(process: asyncssh.SSHServerProcess[bytes], message: str, outcome: str) -> int:
    metrics.SESSIONS.labels("-", outcome).inc()
    log.info("session refused", extra={"reason": message, "outcome": outcome})
    with contextlib.suppress(OSError, asyncssh.Error):
        process.stderr.write(f"{PRODUCT}: {message}\n".encode())
    return 1
