"""The hooks payload and the hooks directory git is pointed at during a push.

Gitaly's shape: git runs a thin executable for each hook (hook_client.py); it reads
GEOGIT_HOOKS_PAYLOAD and calls back over a Unix socket into the storage that spawned git,
where the policy calls live (hook_server.py). The payload carries that socket and the storage
process's hook token; it is a dataclass read with the json module, not pydantic.

`update` never reaches storage: geogit's policy sees every ref change in pre-receive, so the
script only runs the repository's own custom_hooks/update when there is one.
"""

from __future__ import annotations

import base64
import binascii
import json
import shlex
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from geogit.storage import hook_client
from geogit.storage.hook_client import PAYLOAD_ENV

CALLBACK_HOOKS = ("pre-receive", "post-receive")
CLIENT_FILE = "geogit-hook-client.py"
# Run from the repository directory ($GIT_DIR of a bare repository), as git runs every hook.
UPDATE_SCRIPT = '#!/bin/sh\n[ -x custom_hooks/update ] || exit 0\nexec custom_hooks/update "$@"\n'


def _object(cls: type[Any], data: Any) -> dict[str, Any]:
    """`data` as keyword arguments for `cls`: a JSON object with no fields `cls` lacks."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__} must be a JSON object")
    if unknown := sorted(set(data) - {item.name for item in fields(cls)}):
        raise ValueError(f"{cls.__name__}: unknown fields {unknown}")
    return data


def _all_strings(*values: object) -> bool:
    return all(isinstance(value, str) for value in values)


@dataclass(frozen=True)
class HookRepository:
    storage_name: str
    relative_path: str
    gl_repository: str = ""
    gl_project_path: str = ""

    def __post_init__(self) -> None:
        if not _all_strings(*asdict(self).values()):
            raise ValueError("repository fields must be strings")


@dataclass(frozen=True)
class HooksPayload:
    repository: HookRepository
    socket_path: str
    token: str
    gl_id: str = ""
    gl_username: str = ""
    protocol: str = ""
    correlation_id: str = ""

    def __post_init__(self) -> None:
        scalars = (self.socket_path, self.token, self.gl_id, self.gl_username)
        if not _all_strings(*scalars, self.protocol, self.correlation_id):
            raise ValueError("payload fields must be strings")

    def encode(self) -> str:
        return base64.b64encode(json.dumps(asdict(self)).encode()).decode()

    @classmethod
    def decode(cls, value: str) -> HooksPayload:
        try:
            data = _object(cls, json.loads(base64.b64decode(value, validate=True)))
            repository = HookRepository(**_object(HookRepository, data.pop("repository", None)))
            return cls(repository=repository, **data)
        except (ValueError, TypeError, binascii.Error) as exc:
            raise ValueError(f"invalid {PAYLOAD_ENV}: {exc}") from exc


def install_hooks(hooks_dir: Path) -> Path:
    """Write the hook scripts and the client they exec, each file replaced atomically."""
    hooks_dir.mkdir(parents=True, exist_ok=True)
    client = hooks_dir / CLIENT_FILE
    install_file(client, Path(hook_client.__file__).read_text(), 0o644)
    command = f"{shlex.quote(sys.executable)} -S -I {shlex.quote(str(client))}"
    for name in CALLBACK_HOOKS:
        install_file(hooks_dir / name, f'#!/bin/sh\nexec {command} {name} "$@"\n', 0o755)
    install_file(hooks_dir / "update", UPDATE_SCRIPT, 0o755)
    return hooks_dir


def install_file(target: Path, text: str, mode: int) -> None:
    """Replace `target` atomically: a git process may be running the old one."""
    staging = target.with_name(f".{target.name}.new")
    staging.write_text(text)
    staging.chmod(mode)
    staging.replace(target)
