"""geogit-hooks: the executable git runs for pre-receive, update and post-receive.

Deliberately thin (Gitaly's gitaly-hooks): it forwards what git gave it to HookService on the
storage that spawned git and relays the answer. Any failure to do so refuses the push.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import grpc

from geogit.common.logging import CORRELATION_METADATA_KEY
from geogit.common.proto.storage.v1 import hook_pb2, hook_pb2_grpc
from geogit.common.storage_client import storage_metadata, sync_channel
from geogit.storage.hooks import PAYLOAD_ENV, HooksPayload

CHUNK_SIZE = 64 * 1024


def _push_options() -> list[str]:
    count = int(os.environ.get("GIT_PUSH_OPTION_COUNT", "0") or 0)
    return [os.environ.get(f"GIT_PUSH_OPTION_{i}", "") for i in range(count)]


def _environment(raw_payload: str) -> hook_pb2.HookEnvironment:
    alternates = os.environ.get("GIT_ALTERNATE_OBJECT_DIRECTORIES", "")
    return hook_pb2.HookEnvironment(
        payload=raw_payload,
        git_object_directory=os.environ.get("GIT_OBJECT_DIRECTORY", ""),
        git_alternate_object_directories=[d for d in alternates.split(":") if d],
        push_options=_push_options(),
    )


def _stdin_requests(
    message: type[hook_pb2.PreReceiveHookRequest] | type[hook_pb2.PostReceiveHookRequest],
    environment: hook_pb2.HookEnvironment,
) -> Iterator[hook_pb2.PreReceiveHookRequest | hook_pb2.PostReceiveHookRequest]:
    yield message(environment=environment)
    while chunk := sys.stdin.buffer.read(CHUNK_SIZE):
        yield message(stdin=chunk)


def run_hook(name: str, args: list[str], raw_payload: str) -> int:
    payload = HooksPayload.decode(raw_payload)
    if name not in payload.requested_hooks:
        return 0
    environment = _environment(raw_payload)
    metadata = storage_metadata(payload.storage_token)
    if payload.correlation_id:
        metadata += ((CORRELATION_METADATA_KEY, payload.correlation_id),)
    with sync_channel(payload.storage_address) as channel:
        stub = hook_pb2_grpc.HookServiceStub(channel)
        if name == "pre-receive":
            responses = stub.PreReceiveHook(
                _stdin_requests(hook_pb2.PreReceiveHookRequest, environment), metadata=metadata
            )
        elif name == "post-receive":
            responses = stub.PostReceiveHook(
                _stdin_requests(hook_pb2.PostReceiveHookRequest, environment), metadata=metadata
            )
        elif name == "update" and len(args) == 3:
            responses = stub.UpdateHook(
                hook_pb2.UpdateHookRequest(
                    environment=environment,
                    ref=args[0],
                    old_value=args[1],
                    new_value=args[2],
                ),
                metadata=metadata,
            )
        else:
            print(f"geogit-hooks: unknown hook {name!r}", file=sys.stderr)
            return 1
        return _write_to_git(responses)


def _write_to_git(responses: Iterator[hook_pb2.HookResponse]) -> int:
    status = 1
    for response in responses:
        if response.stdout:
            sys.stdout.buffer.write(response.stdout)
            sys.stdout.buffer.flush()
        if response.stderr:
            sys.stderr.buffer.write(response.stderr)
            sys.stderr.buffer.flush()
        if response.HasField("exit_status"):
            status = response.exit_status.value
    return status


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: geogit-hooks <hook> [args...]", file=sys.stderr)
        return 2
    raw_payload = os.environ.get(PAYLOAD_ENV, "")
    try:
        return run_hook(sys.argv[1], sys.argv[2:], raw_payload)
    except ValueError as exc:
        print(f"geogit: push refused: {exc}", file=sys.stderr)
    except grpc.RpcError as exc:
        print(f"geogit: push refused: storage hook call failed: {exc.details()}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
