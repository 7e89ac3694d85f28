"""SSHService: git over one bidirectional stream (server speaks first, stateful negotiation).

Used by the SSH gateway and by the git-ssh helper. stdin, stdout and stderr are relayed as
they come and the exit status comes last, as an SSH channel would carry them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from geogit.common.proto.storage.v1 import shared_pb2, ssh_pb2, ssh_pb2_grpc
from geogit.storage import git_services
from geogit.storage.git import Git, GitCommand
from geogit.storage.git_services import UploadPackHook
from geogit.storage.locator import RepositoryLocator
from geogit.storage.push import PushEnvironment
from geogit.storage.request_guard import PktLineGuard
from geogit.storage.streams import Stream, input_chunks, pump_git

SSHRequest = (
    ssh_pb2.SSHUploadPackRequest | ssh_pb2.SSHReceivePackRequest | ssh_pb2.SSHUploadArchiveRequest
)


class SSHService(ssh_pb2_grpc.SSHServiceServicer):
    def __init__(
        self,
        git: Git,
        locator: RepositoryLocator,
        push: PushEnvironment,
        pack_objects: UploadPackHook | None = None,
    ) -> None:
        self.git = git
        self.locator = locator
        self.push = push
        self.pack_objects = pack_objects

    async def SSHUploadPack(
        self,
        request_iterator: AsyncIterator[ssh_pb2.SSHUploadPackRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[ssh_pb2.SSHResponse]:
        first = await anext(request_iterator)
        path = self.locator.existing(first.repository)
        command = git_services.upload_pack(path, first.git_protocol, hook=self.pack_objects)
        guard = PktLineGuard(until_first_flush=False)
        async for response in self._session(command, first, request_iterator, guard):
            yield response

    async def SSHReceivePack(
        self,
        request_iterator: AsyncIterator[ssh_pb2.SSHReceivePackRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[ssh_pb2.SSHResponse]:
        first = await anext(request_iterator)
        path = self.locator.existing(first.repository)
        hooks_env = self.push.hooks_env(first.repository, first.user)
        command = git_services.receive_pack(
            path, first.git_protocol, hooks_env, self.push.hooks_dir
        )
        guard = PktLineGuard(until_first_flush=True)
        async for response in self._session(command, first, request_iterator, guard):
            yield response

    async def SSHUploadArchive(
        self,
        request_iterator: AsyncIterator[ssh_pb2.SSHUploadArchiveRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[ssh_pb2.SSHResponse]:
        first = await anext(request_iterator)
        path = self.locator.existing(first.repository)
        guard = PktLineGuard(until_first_flush=False)
        async for response in self._session(
            git_services.upload_archive(path), first, request_iterator, guard
        ):
            yield response

    async def _session(
        self,
        command: GitCommand,
        first: SSHRequest,
        rest: AsyncIterator[SSHRequest],
        guard: PktLineGuard,
    ) -> AsyncIterator[ssh_pb2.SSHResponse]:
        stdin = guard.guarded(input_chunks(first, rest, lambda m: m.stdin, lambda m: m.stdin_eof))
        async with self.git.process(command, stdin=True) as proc:
            async for stream, chunk in pump_git(proc, stdin, forward_stderr=True):
                if stream is Stream.STDOUT:
                    yield ssh_pb2.SSHResponse(stdout=chunk)
                else:
                    yield ssh_pb2.SSHResponse(stderr=chunk)
            code = await proc.wait()
        guard.raise_if_failed()
        yield ssh_pb2.SSHResponse(exit_status=shared_pb2.ExitStatus(value=code))
