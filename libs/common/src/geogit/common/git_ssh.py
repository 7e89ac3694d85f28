"""Calls to storage's SSHService for a registry command, shared by the SSH gateway and
storage's ssh helper: the two relay the same protocol, one from an SSH channel and one from
a process's stdio.

Message types follow the proto's naming (`SSHUploadPack` takes `SSHUploadPackRequest`), so a
new command needs no table here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from geogit.common.git_commands import GitCommandSpec
from geogit.common.proto.storage.v1 import shared_pb2, ssh_pb2, ssh_pb2_grpc


def request_type(command: GitCommandSpec) -> Any:
    return getattr(ssh_pb2, f"{command.ssh_rpc}Request")


def first_request(
    command: GitCommandSpec,
    repository: shared_pb2.Repository,
    git_protocol: str,
    user: shared_pb2.User,
) -> Any:
    """The request that opens the call; fields the command does not take are left out."""
    fields: dict[str, Any] = {"repository": repository}
    if "git_protocol" in command.first_request:
        fields["git_protocol"] = git_protocol
    if "user" in command.first_request:
        fields["user"] = user
    return request_type(command)(**fields)


def start_call(
    channel: grpc.aio.Channel,
    command: GitCommandSpec,
    requests: AsyncIterator[Any],
    metadata: tuple[tuple[str, str], ...],
) -> Any:
    """The command's bidirectional call on `channel`; responses are `SSHResponse`."""
    return getattr(ssh_pb2_grpc.SSHServiceStub(channel), command.ssh_rpc)(
        requests, metadata=metadata
    )
