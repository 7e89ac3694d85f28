"""Where the dev stack keeps its state: `.run/` at the root of the geogit checkout.

The root is the nearest directory upward from the working directory that contains `.git`, so
`geogit dev down` finds the stack `up` started from any subdirectory of the checkout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RUN_DIR_NAME = ".run"


class LayoutError(RuntimeError):
    """No checkout to put `.run/` in."""


def repository_root(start: Path | None = None) -> Path:
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / ".git").exists():  # a directory, or a file in a worktree
            return directory
    raise LayoutError(
        f"no .git in {here} or above: run geogit dev from inside the geogit checkout,"
        " or pass --run-dir"
    )


@dataclass(frozen=True)
class RunLayout:
    """The files of one dev stack under its run directory."""

    run_dir: Path

    @classmethod
    def find(cls, start: Path | None = None) -> RunLayout:
        return cls(repository_root(start) / RUN_DIR_NAME)

    @property
    def stack_file(self) -> Path:
        return self.run_dir / "stack.json"

    @property
    def roles_file(self) -> Path:
        return self.run_dir / "roles.json"

    @property
    def secrets_file(self) -> Path:
        return self.run_dir / "secrets.json"

    @property
    def postgres_dir(self) -> Path:
        return self.run_dir / "postgres"

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"
