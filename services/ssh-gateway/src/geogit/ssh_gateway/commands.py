"""The one command table: what an SSH exec request may ask for, parsed into a `Command`.

Git commands come from the registry (`geogit.common.git_commands`); the one command that is
not Git is the welcome, the answer to no command at all (gitlab-shell's `discover`), and it is
where another non-Git command would go: a kind here and its branch in `session.py`. Anything
else is refused. Paths are accepted as git and users write them:
`git-upload-pack 'alice/demo.git'`, `git upload-pack '/alice/demo'`, unquoted, and so on.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Literal

from geogit.common.git_commands import SSH_COMMANDS, GitAction, GitCommandSpec, joined_spelling

CommandKind = Literal["welcome", "git"]


class CommandRefused(Exception):
    """The message goes to the client's stderr as is."""


@dataclass(frozen=True)
class Command:
    kind: CommandKind
    action: GitAction | None = None
    rpc: str = ""
    # "alice/demo": no leading slash, no ".git".
    project: str = ""

    @property
    def git(self) -> GitCommandSpec:
        """The registry entry of a `git` command."""
        assert self.action is not None, "the welcome is not a Git command"
        return SSH_COMMANDS[self.action]


def parse_command(command_line: str | None) -> Command:
    if command_line is None or not command_line.strip():
        return Command("welcome")
    try:
        words = joined_spelling(shlex.split(command_line))
    except ValueError as exc:
        raise CommandRefused(f"cannot parse command: {exc}") from exc
    spec = SSH_COMMANDS.get(words[0]) if words else None
    if spec is None:
        name = words[0] if words else command_line
        raise CommandRefused(f"command not allowed: {name!r}; only Git commands are served")
    if len(words) != 2:
        raise CommandRefused(f"{words[0]} takes exactly one repository path")
    project = words[1].strip("/").removesuffix(".git").strip("/")
    if not project:
        raise CommandRefused(f"{words[0]}: missing repository path")
    return Command("git", spec.ssh_name, spec.ssh_rpc, project)
