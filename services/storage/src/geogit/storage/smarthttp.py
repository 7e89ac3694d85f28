"""SmartHTTPService: git's stateless HTTP protocol, bodies streamed in 64 KiB messages."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from geogit.common.pktline import FLUSH_PKT, pkt_line
from geogit.common.proto.storage.v1 import smarthttp_pb2, smarthttp_pb2_grpc
from geogit.storage import git_services
from geogit.storage.git import Git, GitCommand
from geogit.storage.git_services import UploadPackHook
from geogit.storage.locator import RepositoryLocator
from geogit.storage.push import PushEnvironment
from geogit.storage.request_guard import PktLineGuard
from geogit.storage.streams import input_chunks, pump_git


class SmartHTTPService(smarthttp_pb2_grpc.SmartHTTPServiceServicer):
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

    async def InfoRefsUploadPack(
        self, request: smarthttp_pb2.InfoRefsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[smarthttp_pb2.InfoRefsResponse]:
        path = self.locator.existing(request.repository)
        command = git_services.upload_pack(
            path, request.git_protocol, stateless=True, advertise_refs=True
        )
        async for chunk in self._advertise("git-upload-pack", request.git_protocol, command):
            yield smarthttp_pb2.InfoRefsResponse(data=chunk)

    async def InfoRefsReceivePack(
        self, request: smarthttp_pb2.InfoRefsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[smarthttp_pb2.InfoRefsResponse]:
        path = self.locator.existing(request.repository)
        command = git_services.receive_pack(
            path, request.git_protocol, {}, self.push.hooks_dir, stateless=True, advertise_refs=True
        )
        async for chunk in self._advertise("git-receive-pack", request.git_protocol, command):
            yield smarthttp_pb2.InfoRefsResponse(data=chunk)

    async def _advertise(
        self, service: str, git_protocol: str, command: GitCommand
    ) -> AsyncIterator[bytes]:
        # As git http-backend: protocol v2 starts with the capability advertisement itself.
        if "version=2" not in git_protocol:
            yield pkt_line(f"# service={service}\n".encode()) + FLUSH_PKT
        async for chunk in self._run(command, None):
            yield chunk

    async def PostUploadPack(
        self,
        request_iterator: AsyncIterator[smarthttp_pb2.PostUploadPackRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[smarthttp_pb2.PostUploadPackResponse]:
        first = await anext(request_iterator)
        path = self.locator.existing(first.repository)
        command = git_services.upload_pack(
            path, first.git_protocol, stateless=True, hook=self.pack_objects
        )
        body = input_chunks(first, request_iterator, lambda m: m.data)
        guard = PktLineGuard(until_first_flush=False)
        async for chunk in self._run(command, guard.guarded(body), guard):
            yield smarthttp_pb2.PostUploadPackResponse(data=chunk)

    async def PostReceivePack(
        self,
        request_iterator: AsyncIterator[smarthttp_pb2.PostReceivePackRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[smarthttp_pb2.PostReceivePackResponse]:
        first = await anext(request_iterator)
        path = self.locator.existing(first.repository)
        hooks_env = self.push.hooks_env(first.repository, first.user)
        command = git_services.receive_pack(
            path, first.git_protocol, hooks_env, self.push.hooks_dir, stateless=True
        )
        body = input_chunks(first, request_iterator, lambda m: m.data)
        guard = PktLineGuard(until_first_flush=True)
        async for chunk in self._run(command, guard.guarded(body), guard):
            yield smarthttp_pb2.PostReceivePackResponse(data=chunk)

    async def _run(
        self,
        command: GitCommand,
        body: AsyncIterator[bytes] | None,
        guard: PktLineGuard | None = None,
    ) -> AsyncIterator[bytes]:
        async with self.git.process(command, stdin=body is not None) as proc:
            async for _, chunk in pump_git(
                proc, body, forward_stderr=False, finite_input=body is not None
            ):
                yield chunk
            code = await proc.wait()
        if guard is not None:
            guard.raise_if_failed()
        if code != 0:
            raise proc.failure(code)
