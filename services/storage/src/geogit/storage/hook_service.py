"""HookService: the policy half of git's hooks during a push.

pre-receive asks the internal API whether these exact ref changes are allowed (it can see the
quarantined objects through the object directories passed along) and refuses the push with
the API's message otherwise; git then discards the quarantine. post-receive reports the push
so the internal API can record it and emit its event, and prints what the API says.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from geogit.common.internal_api import (
    AllowedRequest,
    Denied,
    GeoProxyToPrimary,
    GitProtocolName,
    PostReceiveRequest,
    PreReceiveRequest,
)
from geogit.common.internal_api_client import InternalApiError
from geogit.common.proto.storage.v1 import hook_pb2, hook_pb2_grpc, shared_pb2
from geogit.storage.clients.internal_api import InternalApiClient
from geogit.storage.errors import InvalidArgument
from geogit.storage.hooks import HooksPayload
from geogit.storage.locator import RepositoryLocator
from geogit.storage.streams import input_chunks

log = logging.getLogger(__name__)
MAX_CHANGES_BYTES = 64 * 1024 * 1024


def _out(text: str) -> hook_pb2.HookResponse:
    return hook_pb2.HookResponse(stdout=text.encode())


def _err(text: str) -> hook_pb2.HookResponse:
    return hook_pb2.HookResponse(stderr=text.encode())


def _exit(value: int) -> hook_pb2.HookResponse:
    return hook_pb2.HookResponse(exit_status=shared_pb2.ExitStatus(value=value))


class HookService(hook_pb2_grpc.HookServiceServicer):
    def __init__(self, locator: RepositoryLocator, internal_api: InternalApiClient) -> None:
        self.locator = locator
        self.internal_api = internal_api

    async def PreReceiveHook(
        self,
        request_iterator: AsyncIterator[hook_pb2.PreReceiveHookRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[hook_pb2.HookResponse]:
        first = await anext(request_iterator)
        payload, repo_path = self._payload(first.environment)
        changes = await _read_changes(first, request_iterator)
        quarantine = self._relative_object_dirs(first.environment, repo_path)
        try:
            answer = await self.internal_api.allowed(
                AllowedRequest(
                    action="git-receive-pack",
                    protocol=_protocol(payload.protocol),
                    gl_id=payload.gl_id,
                    gl_repository=payload.repository.gl_repository,
                    project=payload.repository.gl_project_path,
                    relative_path=payload.repository.relative_path,
                    changes=changes,
                    git_object_directory=quarantine[0] if quarantine else "",
                    git_alternate_object_directories=quarantine[1:],
                    push_options=list(first.environment.push_options),
                )
            )
            if isinstance(answer, GeoProxyToPrimary):
                raise InternalApiError("allowed told a push's hook to proxy to the primary")
            if isinstance(answer, Denied):
                yield _err(f"geogit: {answer.message}\n")
                yield _exit(1)
                return
            counter = await self.internal_api.pre_receive(
                PreReceiveRequest(gl_repository=payload.repository.gl_repository)
            )
        except InternalApiError as exc:
            log.error("pre-receive check failed", extra={"error": str(exc)})
            yield _err(f"geogit: push refused: could not check permissions ({exc})\n")
            yield _exit(1)
            return
        if not counter.reference_counter_increased:
            yield _err("geogit: push refused: the repository is busy, try again\n")
            yield _exit(1)
            return
        async for response in _custom_hook(repo_path, "pre-receive", [], changes.encode()):
            yield response

    async def UpdateHook(
        self, request: hook_pb2.UpdateHookRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[hook_pb2.HookResponse]:
        _, repo_path = self._payload(request.environment)
        args = [request.ref, request.old_value, request.new_value]
        async for response in _custom_hook(repo_path, "update", args, b""):
            yield response

    async def PostReceiveHook(
        self,
        request_iterator: AsyncIterator[hook_pb2.PostReceiveHookRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[hook_pb2.HookResponse]:
        first = await anext(request_iterator)
        payload, repo_path = self._payload(first.environment)
        changes = await _read_changes(first, request_iterator)
        try:
            answer = await self.internal_api.post_receive(
                PostReceiveRequest(
                    gl_repository=payload.repository.gl_repository,
                    identifier=payload.gl_id,
                    changes=changes,
                    push_options=list(first.environment.push_options),
                )
            )
        except InternalApiError as exc:
            # The refs have moved already; say so loudly, the replicators' verification will
            # notice the missing event.
            log.error("post-receive report failed", extra={"error": str(exc)})
            yield _err(f"geogit: warning: the push landed but was not recorded ({exc})\n")
            yield _exit(1)
            return
        for message in answer.messages:
            yield _out(_format_message(message.type, message.message))
        async for response in _custom_hook(repo_path, "post-receive", [], changes.encode()):
            yield response

    def _payload(self, environment: hook_pb2.HookEnvironment) -> tuple[HooksPayload, Path]:
        try:
            payload = HooksPayload.decode(environment.payload)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
        repo = shared_pb2.Repository(
            storage_name=payload.repository.storage_name,
            relative_path=payload.repository.relative_path,
        )
        return payload, self.locator.existing(repo)

    @staticmethod
    def _relative_object_dirs(environment: hook_pb2.HookEnvironment, repo: Path) -> list[str]:
        if not environment.git_object_directory:
            return []
        dirs = [environment.git_object_directory, *environment.git_alternate_object_directories]
        relative = []
        for directory in dirs:
            resolved = Path(directory).resolve()
            if not resolved.is_relative_to(repo):
                raise InvalidArgument(f"object directory outside the repository: {directory!r}")
            relative.append(str(resolved.relative_to(repo)))
        return relative


async def _read_changes(
    first: hook_pb2.PreReceiveHookRequest | hook_pb2.PostReceiveHookRequest,
    rest: AsyncIterator[hook_pb2.PreReceiveHookRequest | hook_pb2.PostReceiveHookRequest],
) -> str:
    data = bytearray()
    async for chunk in input_chunks(first, rest, lambda m: m.stdin):
        data += chunk
        if len(data) > MAX_CHANGES_BYTES:
            raise InvalidArgument("too many ref changes in one push")
    return data.decode(errors="replace")


def _protocol(value: str) -> GitProtocolName:
    return "ssh" if value == "ssh" else "http"


def _format_message(kind: str, message: str) -> str:
    if kind == "alert":
        rule = "=" * 70
        return f"\n{rule}\n\n{message}\n\n{rule}\n\n"
    return f"\n{message}\n\n"


async def _custom_hook(
    repo: Path, name: str, args: list[str], stdin: bytes
) -> AsyncIterator[hook_pb2.HookResponse]:
    """Run the repository's own server-side hook (custom_hooks/<name>) if it has one."""
    executable = repo / "custom_hooks" / name
    if not os.access(executable, os.X_OK):
        yield _exit(0)
        return
    proc = await asyncio.create_subprocess_exec(
        str(executable),
        *args,
        cwd=repo,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await proc.communicate(stdin)
    if stdout:
        yield hook_pb2.HookResponse(stdout=stdout)
    if stderr:
        yield hook_pb2.HookResponse(stderr=stderr)
    yield _exit(proc.returncode or 0)
