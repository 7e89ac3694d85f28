"""The hooks payload and the hooks directory git is pointed at during a push.

Gitaly's shape: git runs a thin executable for each hook; it reads GEOGIT_HOOKS_PAYLOAD and
calls HookService back on the storage that spawned git, where the policy calls live.
"""

from __future__ import annotations

import base64
import shlex
import sys
from pathlib import Path

from pydantic import BaseModel, ValidationError

from geogit.common.tokens import HOOKS_AUDIENCE, issue_token

PAYLOAD_ENV = "GEOGIT_HOOKS_PAYLOAD"
HOOK_NAMES = ("pre-receive", "update", "post-receive")


class HookRepository(BaseModel):
    storage_name: str
    relative_path: str
    gl_repository: str = ""
    gl_project_path: str = ""


class HooksPayload(BaseModel):
    repository: HookRepository
    storage_address: str
    storage_token: str
    gl_id: str = ""
    gl_username: str = ""
    protocol: str = ""
    correlation_id: str = ""
    requested_hooks: list[str] = list(HOOK_NAMES)

    def encode(self) -> str:
        return base64.b64encode(self.model_dump_json().encode()).decode()

    @classmethod
    def decode(cls, value: str) -> HooksPayload:
        try:
            return cls.model_validate_json(base64.b64decode(value, validate=True))
        except (ValueError, ValidationError) as exc:
            raise ValueError(f"invalid {PAYLOAD_ENV}: {exc}") from exc


def hooks_token(secret: str, ttl_seconds: float) -> str:
    """Valid for HookService only, and for as long as one push may run."""
    return issue_token(secret, "geogit-storage", HOOKS_AUDIENCE, ttl_seconds=int(ttl_seconds))


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
