"""The Git command registry agrees with itself, with the wire literals and with the protos."""

from __future__ import annotations

from typing import get_args

import pytest

from geogit.common import git_commands, git_ssh
from geogit.common.git_commands import (
    GIT_COMMANDS,
    HTTP_COMMANDS,
    HTTP_SERVICES,
    RECEIVE_PACK,
    SSH_COMMANDS,
    UPLOAD_ARCHIVE,
    UPLOAD_PACK,
    joined_spelling,
)
from geogit.common.proto.storage.v1 import (
    shared_pb2,
    smarthttp_pb2,
    smarthttp_pb2_grpc,
    ssh_pb2_grpc,
)


def test_lookup_by_ssh_name_and_http_service() -> None:
    assert SSH_COMMANDS["git-upload-pack"] is UPLOAD_PACK
    assert SSH_COMMANDS["git-receive-pack"] is RECEIVE_PACK
    assert SSH_COMMANDS["git-upload-archive"] is UPLOAD_ARCHIVE
    assert HTTP_COMMANDS["git-upload-pack"] is UPLOAD_PACK
    assert HTTP_COMMANDS["git-receive-pack"] is RECEIVE_PACK
    assert "git-upload-archive" not in HTTP_COMMANDS
    assert HTTP_SERVICES == ("git-upload-pack", "git-receive-pack")


def test_the_literals_name_exactly_the_registry() -> None:
    assert set(get_args(git_commands.GitAction)) == {c.ssh_name for c in GIT_COMMANDS}
    assert set(get_args(git_commands.HttpService)) == set(HTTP_SERVICES)


def test_access_and_subcommands() -> None:
    assert [c.access for c in GIT_COMMANDS] == ["read", "write", "read"]
    assert [c.writes for c in GIT_COMMANDS] == [False, True, False]
    assert [c.subcommand for c in GIT_COMMANDS] == ["upload-pack", "receive-pack", "upload-archive"]


def test_the_registry_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        SSH_COMMANDS["git-foo"] = UPLOAD_PACK  # type: ignore[index]
    with pytest.raises(AttributeError):
        UPLOAD_PACK.access = "write"  # type: ignore[misc]


@pytest.mark.parametrize("command", GIT_COMMANDS, ids=lambda c: c.ssh_name)
def test_every_rpc_exists_in_the_protos(command: git_commands.GitCommandSpec) -> None:
    assert hasattr(ssh_pb2_grpc.SSHServiceServicer, command.ssh_rpc)
    assert git_ssh.request_type(command).DESCRIPTOR.name == f"{command.ssh_rpc}Request"
    if command.http_service is not None:
        assert hasattr(smarthttp_pb2_grpc.SmartHTTPServiceServicer, command.info_refs_rpc)
        assert hasattr(smarthttp_pb2_grpc.SmartHTTPServiceServicer, command.post_rpc)
        assert hasattr(smarthttp_pb2, f"{command.post_rpc}Request")
    else:
        assert command.info_refs_rpc == command.post_rpc == ""


def test_first_requests_carry_what_each_command_takes() -> None:
    repository = shared_pb2.Repository(relative_path="@hashed/ab/cd/abcd.git")
    user = shared_pb2.User(gl_id="user-1", protocol="ssh")
    fetch = git_ssh.first_request(UPLOAD_PACK, repository, "version=2", user)
    push = git_ssh.first_request(RECEIVE_PACK, repository, "version=2", user)
    archive = git_ssh.first_request(UPLOAD_ARCHIVE, repository, "version=2", user)
    assert (fetch.git_protocol, fetch.HasField("repository")) == ("version=2", True)
    assert (push.git_protocol, push.user.gl_id) == ("version=2", "user-1")
    assert archive.HasField("repository")
    assert not set(archive.DESCRIPTOR.fields_by_name) & {"git_protocol", "user"}


def test_joined_spelling() -> None:
    assert joined_spelling(["git", "upload-pack", "a/b"]) == ["git-upload-pack", "a/b"]
    assert joined_spelling(["git-upload-pack", "a/b"]) == ["git-upload-pack", "a/b"]
    assert joined_spelling(["git", "status"]) == ["git", "status"]
