"""The one command table: what an SSH exec request may ask for, parsed into a `Command`.

Anything not in the table is refused. Paths are accepted as git and users write them:
`git-upload-pack 'alice/demo.git'`, `git upload-pack '/alice/demo'`, unquoted, and so on.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Literal

from geogit.common.internal_api import GitAction

CommandKind = Literal["welcome", "git"]

# Command name → (internal API action, storage RPC).
GIT_COMMANDS: dict[str, tuple[GitAction, str]] = {
    "git-upload-pack": ("git-upload-pack", "SSHUploadPack"),
    "git-receive-pack": ("git-receive-pack", "SSHReceivePack"),
    "git-upload-archive": ("git-upload-archive", "SSHUploadArchive"),
}


class CommandRefused(Exception):
    """The message goes to the client's stderr as is."""


@dataclass(frozen=True)
class Command:
    kind: CommandKind
    action: GitAction | None = None
    rpc: str = ""
    # "alice/demo": no leading slash, no ".git".
    project: str = ""


def parse_command(command_line: str | None) -> Command:
    if command_line is None or not command_line.strip():
        return Command("welcome")
    try:
        words = shlex.split(command_line)
    except ValueError as exc:
        raise CommandRefused(f"cannot parse command: {exc}") from exc
    if len(words) == 3 and words[0] == "git":
        words = [f"git-{words[1]}", words[2]]
    if not words or words[0] not in GIT_COMMANDS:
        name = words[0] if words else command_line
        raise CommandRefused(f"command not allowed: {name!r}; only Git commands are served")
    if len(words) != 2:
        raise CommandRefused(f"{words[0]} takes exactly one repository path")
    project = words[1].strip("/").removesuffix(".git").strip("/")
    if not project:
        raise CommandRefused(f"{words[0]}: missing repository path")
    action, rpc = GIT_COMMANDS[words[0]]
    return Command("git", action, rpc, project)
