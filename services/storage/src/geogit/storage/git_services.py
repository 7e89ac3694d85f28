"""The git services storage exposes, built once for smart HTTP and SSH alike: one builder per
command of the Git command registry (`geogit.common.git_commands`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from geogit.common.git_commands import RECEIVE_PACK, UPLOAD_ARCHIVE, UPLOAD_PACK
from geogit.storage.errors import InvalidArgument
from geogit.storage.git import GitCommand, object_check_config
from geogit.storage.repositories import PRIVATE_REFS

# Storage's private refs are absent from what upload-pack and receive-pack advertise, and
# receive-pack refuses to update them ("deny updating a hidden ref").
_HIDE_PRIVATE_REFS = ("transfer.hideRefs", PRIVATE_REFS)
UPLOAD_PACK_CONFIG = (
    _HIDE_PRIVATE_REFS,
    # Without these a partial clone (--filter) or a fetch of a specific commit would be refused.
    ("uploadpack.allowFilter", "true"),
    ("uploadpack.allowAnySHA1InWant", "true"),
)
RECEIVE_PACK_CONFIG = (
    _HIDE_PRIVATE_REFS,
    *object_check_config("receive"),
    ("receive.advertisePushOptions", "true"),
    ("receive.advertiseAtomic", "true"),
    # Housekeeping repacks, not a detached `gc --auto` after every push.
    ("receive.autogc", "false"),
    ("gc.auto", "0"),
)
_GIT_PROTOCOL = re.compile(r"\A[A-Za-z0-9=:._-]{0,256}\Z")


def protocol_env(git_protocol: str) -> dict[str, str]:
    """GIT_PROTOCOL for the child ("version=2"); refused unless it looks like one."""
    if not git_protocol:
        return {}
    if not _GIT_PROTOCOL.match(git_protocol):
        raise InvalidArgument(f"invalid git protocol parameter: {git_protocol[:80]!r}")
    return {"GIT_PROTOCOL": git_protocol}


@dataclass(frozen=True)
class UploadPackHook:
    """What makes upload-pack ask the pack-objects cache for its pack (pack_cache/)."""

    config: tuple[tuple[str, str], ...] = ()
    env: dict[str, str] = field(default_factory=dict)


def _stateless(stateless: bool, advertise_refs: bool) -> list[str]:
    options = ["--stateless-rpc"] if stateless else []
    if advertise_refs:
        options.append("--advertise-refs")
    return options


def upload_pack(
    path: Path,
    git_protocol: str,
    *,
    stateless: bool = False,
    advertise_refs: bool = False,
    hook: UploadPackHook | None = None,
) -> GitCommand:
    hook = hook or UploadPackHook()
    return GitCommand(
        UPLOAD_PACK.subcommand,
        options=_stateless(stateless, advertise_refs),
        args=[str(path)],
        config=(*UPLOAD_PACK_CONFIG, *hook.config),
        env={**protocol_env(git_protocol), **hook.env},
    )


def receive_pack(
    path: Path,
    git_protocol: str,
    hooks_env: dict[str, str],
    hooks_dir: Path,
    *,
    stateless: bool = False,
    advertise_refs: bool = False,
) -> GitCommand:
    return GitCommand(
        RECEIVE_PACK.subcommand,
        options=_stateless(stateless, advertise_refs),
        args=[str(path)],
        config=(*RECEIVE_PACK_CONFIG, ("core.hooksPath", str(hooks_dir))),
        env={**protocol_env(git_protocol), **hooks_env},
        # Given its input's end, receive-pack discards the quarantine of an unfinished push.
        stop_grace=10.0,
    )


def upload_archive(path: Path) -> GitCommand:
    # upload-archive has no option parser, so no "--"; the path is ours, not the caller's.
    return GitCommand(UPLOAD_ARCHIVE.subcommand, args=[str(path)], separator=False)
