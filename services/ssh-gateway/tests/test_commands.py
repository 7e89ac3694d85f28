from __future__ import annotations

import pytest

from geogit.common.git_commands import GIT_COMMANDS, SSH_COMMANDS, GitCommandSpec
from geogit.ssh_gateway.commands import Command, CommandRefused, parse_command
from geogit.ssh_gateway.geo_proxy import can_proxy


@pytest.mark.parametrize(
    "line",
    [
        "git-upload-pack 'alice/demo.git'",
        "git-upload-pack '/alice/demo.git'",
        "git-upload-pack alice/demo",
        "git upload-pack '/alice/demo'",
        'git-upload-pack "alice/demo.git/"',
    ],
)
def test_upload_pack_spellings(line: str) -> None:
    assert parse_command(line) == Command("git", "git-upload-pack", "SSHUploadPack", "alice/demo")


def test_receive_pack_and_archive() -> None:
    assert parse_command("git-receive-pack 'a/b.git'").rpc == "SSHReceivePack"
    assert parse_command("git upload-archive 'a/b'").rpc == "SSHUploadArchive"


@pytest.mark.parametrize("line", [None, "", "   "])
def test_no_command_is_the_welcome(line: str | None) -> None:
    assert parse_command(line).kind == "welcome"


@pytest.mark.parametrize(
    "line",
    [
        "ls",
        "bash -c id",
        "git-upload-pack",
        "git-upload-pack a b",
        "git-upload-pack '/'",
        "git-upload-pack 'unterminated",
        "git status 'a/b'",
        "scp -t /tmp",
    ],
)
def test_anything_else_is_refused(line: str) -> None:
    with pytest.raises(CommandRefused):
        parse_command(line)


@pytest.mark.parametrize("spec", GIT_COMMANDS, ids=lambda spec: spec.ssh_name)
def test_every_registry_command_is_served(spec: GitCommandSpec) -> None:
    command = parse_command(f"{spec.ssh_name} 'a/b.git'")
    assert (command.kind, command.git, command.project) == ("git", spec, "a/b")


def test_a_secondary_relays_exactly_the_commands_with_an_http_form() -> None:
    """The internal API answers 300 (serve it from the primary) for every command with an
    HTTP form; the gateway must then have a module that converts it."""
    for spec in SSH_COMMANDS.values():
        assert can_proxy(spec) == (spec.http_service is not None), spec.ssh_name
