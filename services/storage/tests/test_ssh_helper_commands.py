"""The git-ssh helper reads git's ssh-style command line as the gateway does: from the registry."""

from __future__ import annotations

import pytest

from geogit.common.git_commands import GIT_COMMANDS, UPLOAD_PACK, GitCommandSpec
from geogit.storage.ssh_helper import UsageError, parse_command


@pytest.mark.parametrize("spec", GIT_COMMANDS, ids=lambda spec: spec.ssh_name)
def test_every_registry_command(spec: GitCommandSpec) -> None:
    argv = ["-p", "22", "geogit-storage", f"{spec.ssh_name} '/@hashed/ab/cd/abcd.git'"]
    assert parse_command(argv) == (spec, "@hashed/ab/cd/abcd.git")


def test_the_spaced_spelling() -> None:
    assert parse_command(["host", "git upload-pack 'a.git'"]) == (UPLOAD_PACK, "a.git")


@pytest.mark.parametrize("line", ["ls", "git-upload-pack", "git-upload-pack a b", "git status a"])
def test_anything_else_is_refused(line: str) -> None:
    with pytest.raises(UsageError):
        parse_command(["host", line])
    with pytest.raises(UsageError):
        parse_command([])
