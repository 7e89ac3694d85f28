"""Relays one Git command between an SSH client and the storage RPC serving it.

The same relay as storage's ssh_helper, with the SSH channel in place of a process's stdio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from geogit.common import git_ssh
from geogit.common.proto.storage.v1 import shared_pb2
from geogit.common.storage_client import ChannelPool, storage_metadata
from geogit.ssh_gateway.client import ClientGone, ClientIdle, SshClient
from geogit.ssh_gateway.clients.internal_api import Grant
from geogit.ssh_gateway.commands import Command


def first_request(command: Command, grant: Grant, git_protocol: str) -> Any:
    repository = grant.repository
    return git_ssh.first_request(
        command.git,
        shared_pb2.Repository(
            storage_name=repository.storage_name,
            relative_path=repository.relative_path,
            gl_repository=repository.gl_repository,
            gl_project_path=repository.gl_project_path,
        ),
        git_protocol,
        shared_pb2.User(gl_id=grant.gl_id, gl_username=grant.gl_username, protocol="ssh"),
    )


class GitRelay:
    def __init__(
        self,
        channels: ChannelPool,
        client: SshClient,
        command: Command,
        grant: Grant,
        git_protocol: str,
    ) -> None:
        self._channels = channels
        self._client = client
        self._command = command
        self._grant = grant
        self._git_protocol = git_protocol
        self._client_error: Exception | None = None

    async def _requests(self) -> AsyncIterator[Any]:
        make = git_ssh.request_type(self._command.git)
        yield first_request(self._command, self._grant, self._git_protocol)
        while True:
            try:
                chunk = await self._client.read()
            except (ClientIdle, ClientGone) as exc:
                self._client_error = exc
                raise
            if not chunk:
                break
            yield make(stdin=chunk)
        yield make(stdin_eof=True)

    async def run(self) -> int:
        """The storage command's exit status; raises ClientIdle / ClientGone / AioRpcError."""
        storage = self._grant.storage
        call = git_ssh.start_call(
            self._channels.get(storage.address),
            self._command.git,
            self._requests(),
            storage_metadata(storage.token),
        )
        try:
            async for response in call:
                if response.stdout:
                    await self._client.write_stdout(response.stdout)
                if response.stderr:
                    await self._client.write_stderr(response.stderr)
                if response.HasField("exit_status"):
                    if self._client_error is not None:
                        # Storage saw our side end early: the client's fault, say so.
                        raise self._client_error
                    return int(response.exit_status.value)
        except BaseException:
            if self._client_error is not None:
                raise self._client_error from None
            raise
        finally:
            # Ends the RPC (and so the storage's git) whatever happened to the client.
            call.cancel()
        if self._client_error is not None:
            raise self._client_error
        return 1
