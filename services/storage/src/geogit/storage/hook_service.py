"""HookService: the policy half of git's hooks during a push.

pre-receive asks the internal API, in one round trip, whether these exact ref changes are
allowed (it can see the quarantined objects through the object directories passed along)
and to count the push until post-receive; it refuses the push with the API's message
otherwise, and git then discards the quarantine. post-receive reports the push so the
internal API can record it and emit its event, prints what the API says, and lets
housekeeping look at the repository. The answers are
hook_client frames; hook_server.py carries them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from geogit.common.internal_api import (
    AllowedRequest,
    Denied,
    GeoProxyToPrimary,
    GitProtocolName,
    PostReceiveRequest,
)
from geogit.common.internal_api_client import InternalApiError
from geogit.storage.clients.internal_api import InternalApiClient
from geogit.storage.errors import InvalidArgument, StorageError
from geogit.storage.hook_client import EXIT, STDERR, STDOUT
from geogit.storage.hooks import HooksPayload
from geogit.storage.housekeeping import Housekeeper

log = logging.getLogger(__name__)
Frame = tuple[bytes, bytes]
# A repository's own hook may not hold a push (and its socket call) open for ever.
CUSTOM_HOOK_TIMEOUT_SECONDS = 600.0


@dataclass(frozen=True)
class HookCall:
    """One hook run as git started it: hook_server.py has checked where it points."""

    hook: str
    payload: HooksPayload
    repository: Path
    object_directories: list[str]
    push_options: list[str]
    changes: str


def _out(text: str) -> Frame:
    return STDOUT, text.encode()


def _err(text: str) -> Frame:
    return STDERR, text.encode()


def _exit(value: int) -> Frame:
    return EXIT, str(value).encode()


class HookService:
    def __init__(self, internal_api: InternalApiClient, housekeeper: Housekeeper) -> None:
        self.internal_api = internal_api
        self.housekeeper = housekeeper

    def run(self, call: HookCall) -> AsyncIterator[Frame]:
        """hook_server.py admits only CALLBACK_HOOKS."""
        return self.pre_receive(call) if call.hook == "pre-receive" else self.post_receive(call)

    async def pre_receive(self, call: HookCall) -> AsyncIterator[Frame]:
        payload = call.payload
        quarantine = _relative_object_dirs(call.object_directories, call.repository)
        try:
            answer = await self.internal_api.allowed(
                AllowedRequest(
                    action="git-receive-pack",
                    protocol=_protocol(payload.protocol),
                    gl_id=payload.gl_id,
                    gl_repository=payload.repository.gl_repository,
                    project=payload.repository.gl_project_path,
                    relative_path=payload.repository.relative_path,
                    storage_name=payload.repository.storage_name,
                    changes=call.changes,
                    git_object_directory=quarantine[0] if quarantine else "",
                    git_alternate_object_directories=quarantine[1:],
                    push_options=call.push_options,
                    count_push=True,
                )
            )
        except InternalApiError as exc:
            log.error("pre-receive check failed", extra={"error": str(exc)})
            yield _err(f"geogit: push refused: could not check permissions ({exc})\n")
            yield _exit(1)
            return
        if isinstance(answer, GeoProxyToPrimary):
            log.error("allowed told a push's hook to proxy to the primary")
            yield _err("geogit: push refused: this site cannot take pushes\n")
            yield _exit(1)
            return
        if isinstance(answer, Denied):
            yield _err(f"geogit: {answer.message}\n")
            yield _exit(1)
            return
        if not answer.reference_counter_increased:
            yield _err("geogit: push refused: the repository is busy, try again\n")
            yield _exit(1)
            return
        async for frame in _custom_hook(call.repository, "pre-receive", call.changes):
            yield frame

    async def post_receive(self, call: HookCall) -> AsyncIterator[Frame]:
        try:
            answer = await self.internal_api.post_receive(
                PostReceiveRequest(
                    gl_repository=call.payload.repository.gl_repository,
                    identifier=call.payload.gl_id,
                    changes=call.changes,
                    push_options=call.push_options,
                )
            )
        except InternalApiError as exc:
            # The refs have moved already; say so loudly, the replicators' verification will
            # notice the missing event.
            log.error("post-receive report failed", extra={"error": str(exc)})
            yield _err(f"geogit: warning: the push landed but was not recorded ({exc})\n")
            yield _exit(1)
            return
        finally:
            self._housekeep(call.repository)
        for message in answer.messages:
            yield _out(_format_message(message.type, message.message))
        async for frame in _custom_hook(call.repository, "post-receive", call.changes):
            yield frame

    def _housekeep(self, repository: Path) -> None:
        """The refs moved whatever the API said: the repository may need housekeeping. Only
        ever a log line: the push is done, and its answer must not change."""
        try:
            self.housekeeper.after_push(repository)
        except (StorageError, RuntimeError) as exc:
            log.warning("housekeeping not scheduled after a push", extra={"error": str(exc)})


def _relative_object_dirs(directories: list[str], repo: Path) -> list[str]:
    relative = []
    for directory in directories:
        resolved = Path(directory).resolve()
        if not resolved.is_relative_to(repo):
            raise InvalidArgument(f"object directory outside the repository: {directory!r}")
        relative.append(str(resolved.relative_to(repo)))
    return relative


def _protocol(value: str) -> GitProtocolName:
    return "ssh" if value == "ssh" else "http"


def _format_message(kind: str, message: str) -> str:
    if kind == "alert":
        rule = "=" * 70
        return f"\n{rule}\n\n{message}\n\n{rule}\n\n"
    return f"\n{message}\n\n"


async def _custom_hook(repo: Path, name: str, changes: str) -> AsyncIterator[Frame]:
    """Run the repository's own server-side hook (custom_hooks/<name>) if it has one."""
    executable = repo / "custom_hooks" / name
    if not os.access(executable, os.X_OK):
        yield _exit(0)
        return
    proc = await asyncio.create_subprocess_exec(
        str(executable),
        cwd=repo,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(
            proc.communicate(changes.encode()), CUSTOM_HOOK_TIMEOUT_SECONDS
        )
    except TimeoutError:
        proc.kill()
        await proc.wait()
        yield _err(f"geogit: custom_hooks/{name} ran over {CUSTOM_HOOK_TIMEOUT_SECONDS:.0f} s\n")
        yield _exit(1)
        return
    finally:
        if proc.returncode is None:  # cancelled: storage is stopping
            proc.kill()
    if stdout:
        yield STDOUT, stdout
    if stderr:
        yield STDERR, stderr
    yield _exit(proc.returncode or 0)
