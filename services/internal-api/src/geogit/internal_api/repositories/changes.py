"""A push's ref changes, as git's hooks read them: `<old> <new> <ref>` per line."""

from __future__ import annotations

import re
from dataclasses import dataclass

from geogit.common.proto.events.v1 import repository_pb2
from geogit.internal_api.repositories.refnames import BRANCH_PREFIX

_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@dataclass(frozen=True)
class RefUpdate:
    old: str
    new: str
    ref: str

    @property
    def created(self) -> bool:
        return set(self.old) == {"0"}

    @property
    def deleted(self) -> bool:
        return set(self.new) == {"0"}

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix(BRANCH_PREFIX) if self.ref.startswith(BRANCH_PREFIX) else None

    def to_proto(self) -> repository_pb2.RefChange:
        return repository_pb2.RefChange(old_oid=self.old, new_oid=self.new, ref=self.ref)


def parse_changes(text: str) -> list[RefUpdate]:
    """`<old> <new> <ref>` lines as git's hooks read them; raises ValueError on anything else."""
    updates = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if (
            len(parts) != 3
            or not all(_OBJECT_ID.fullmatch(oid) for oid in parts[:2])
            or not parts[2].startswith("refs/")
        ):
            raise ValueError(f"line {number} of changes is not '<old> <new> <ref>'")
        updates.append(RefUpdate(*parts))
    return updates
