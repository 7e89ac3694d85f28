"""The hooks payload and the hooks directory git is pointed at during a push.

Gitaly's shape: git runs a thin executable for each hook; it reads GEOGIT_HOOKS_PAYLOAD and
calls HookService back on the storage that spawned git, where the policy calls live. The
payload is a dataclass read with the json module, not pydantic: the executable starts twice
per push and its imports are a fixed cost of every push (DESIGN §9).
"""

from __future__ import annotations

import base64
import binascii
import json
import shlex
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

PAYLOAD_ENV = "GEOGIT_HOOKS_PAYLOAD"
HOOK_NAMES = ("pre-receive", "update", "post-receive")


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
    storage_address: str
    storage_token: str
    gl_id: str = ""
    gl_username: str = ""
    protocol: str = ""
    correlation_id: str = ""
    requested_hooks: list[str] = field(default_factory=lambda: list(HOOK_NAMES))

    def __post_init__(self) -> None:
        scalars = (self.storage_address, self.storage_token, self.gl_id, self.gl_username)
        if not _all_strings(*scalars, self.protocol, self.correlation_id):
            raise ValueError("payload fields must be strings")
        if not isinstance(self.requested_hooks, list) or not _all_strings(*self.requested_hooks):
            raise ValueError("requested_hooks must be a list of strings")

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
    """Write the hook scripts; each execs the geogit-hooks entry point of this interpreter."""
    hooks_dir.mkdir(parents=True, exist_ok=True)
    python = shlex.quote(sys.executable)
    for name in HOOK_NAMES:
        guard = "[ -x custom_hooks/update ] || exit 0\n" if name == "update" else ""
        script = f'#!/bin/sh\n{guard}exec {python} -m geogit.storage.hooks_cli {name} "$@"\n'
        target = hooks_dir / name
        staging = target.with_suffix(".new")
        staging.write_text(script)
        staging.chmod(0o755)
        staging.replace(target)
    return hooks_dir
