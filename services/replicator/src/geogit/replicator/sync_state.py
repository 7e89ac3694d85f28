"""What this replicator knows of each project beyond the read model, in one place.

Two sources write it: the repository feed (a push's sequence and checksum, a new default
branch, possibly ahead of the site's read model) and the worker (the HEAD it set, how often
the project was unknown or the internal API unreachable). The worker reads it to choose a
sync's target and HEAD's branch. It is only memory: after a restart the read model and the
registry say everything that matters, and backfill catches up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Hint:
    """What a repository event said, possibly ahead of the read model."""

    seq: int
    checksum: str
    pushed_at: datetime | None


@dataclass
class ProjectSyncState:
    # The newest repository event's state, kept until a newer one (or the project's end).
    hint: Hint | None = None
    # The default branch a `ProjectUpdated` announced; None: the read model's.
    branch: str | None = None
    # The branch this replicator last pointed the replica's HEAD at.
    head: str | None = None
    # Syncs in a row for which the read model did not know the project.
    unknown_attempts: int = 0
    # Work in a row that could not reach the internal API.
    api_failures: int = 0


class SyncStates:
    def __init__(self) -> None:
        self._projects: dict[int, ProjectSyncState] = {}

    def __getitem__(self, project_id: int) -> ProjectSyncState:
        state = self._projects.get(project_id)
        if state is None:
            state = self._projects[project_id] = ProjectSyncState()
        return state

    def hint(self, project_id: int, hint: Hint) -> None:
        """Keep the newer of what is known and what an event announced."""
        state = self[project_id]
        if state.hint is None or hint.seq > state.hint.seq:
            state.hint = hint

    def default_branch(self, project_id: int, branch: str) -> None:
        self[project_id].branch = branch

    def get(self, project_id: int) -> ProjectSyncState | None:
        """What is known of a project, without starting to track it."""
        return self._projects.get(project_id)

    def forget(self, project_id: int) -> None:
        """The replica is gone, or the project is left to backfill: nothing known of its refs,
        HEAD or attempts still holds, and a deleted project's entry must not stay forever."""
        self._projects.pop(project_id, None)
