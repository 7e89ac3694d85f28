"""The Git command registry: each Git service described once, for every site component.

The SSH gateway parses a client's command line with it, storage's ssh helper relays by it,
the internal API decides read or write access from it and the edge-proxy builds its smart
HTTP routes from it. Adding a Git command is one entry here (and its name in the literals
below) plus its handlers; services/ssh-gateway/README.md lists the files.

Imports stay at the standard library: storage's ssh helper starts once per git command.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

# The names on the wire are typed literals so pydantic models refuse anything else; a unit
# test keeps them equal to the registry.
GitAction = Literal["git-upload-pack", "git-receive-pack", "git-upload-archive"]
HttpService = Literal["git-upload-pack", "git-receive-pack"]
Access = Literal["read", "write"]
# What a command's first request carries besides the repository.
FirstRequestField = Literal["git_protocol", "user"]


@dataclass(frozen=True)
class GitCommandSpec:
    # What the client runs over SSH; it is also the internal API's `action`.
    ssh_name: GitAction
    access: Access
    # storage.v1.SSHService method; its messages are `<ssh_rpc>Request` and `SSHResponse`.
    ssh_rpc: str
    first_request: frozenset[FirstRequestField]
    # Smart HTTP's `service=` name and storage.v1.SmartHTTPService methods; None when the
    # command has no HTTP form (and so a secondary cannot relay it to the primary).
    http_service: HttpService | None = None
    info_refs_rpc: str = ""
    post_rpc: str = ""

    @property
    def subcommand(self) -> str:
        """The git subcommand storage runs ("upload-pack")."""
        return self.ssh_name.removeprefix("git-")

    @property
    def writes(self) -> bool:
        return self.access == "write"


UPLOAD_PACK = GitCommandSpec(
    ssh_name="git-upload-pack",
    access="read",
    ssh_rpc="SSHUploadPack",
    first_request=frozenset({"git_protocol"}),
    http_service="git-upload-pack",
    info_refs_rpc="InfoRefsUploadPack",
    post_rpc="PostUploadPack",
)
RECEIVE_PACK = GitCommandSpec(
    ssh_name="git-receive-pack",
    access="write",
    ssh_rpc="SSHReceivePack",
    # The pusher, for the hooks storage runs.
    first_request=frozenset({"git_protocol", "user"}),
    http_service="git-receive-pack",
    info_refs_rpc="InfoRefsReceivePack",
    post_rpc="PostReceivePack",
)
UPLOAD_ARCHIVE = GitCommandSpec(
    ssh_name="git-upload-archive",
    access="read",
    ssh_rpc="SSHUploadArchive",
    # upload-archive knows no protocol versions.
    first_request=frozenset(),
)

GIT_COMMANDS: tuple[GitCommandSpec, ...] = (UPLOAD_PACK, RECEIVE_PACK, UPLOAD_ARCHIVE)
SSH_COMMANDS: Mapping[str, GitCommandSpec] = MappingProxyType(
    {command.ssh_name: command for command in GIT_COMMANDS}
)
HTTP_COMMANDS: Mapping[str, GitCommandSpec] = MappingProxyType(
    {command.http_service: command for command in GIT_COMMANDS if command.http_service}
)
# Smart HTTP's services in registry order: the edge-proxy has a POST route for each.
HTTP_SERVICES: tuple[HttpService, ...] = tuple(
    command.http_service for command in GIT_COMMANDS if command.http_service
)


def joined_spelling(words: list[str]) -> list[str]:
    """`git upload-pack <path>` spelt as `git-upload-pack <path>`; git's shell takes both."""
    if len(words) == 3 and words[0] == "git":
        return [f"git-{words[1]}", words[2]]
    return words
