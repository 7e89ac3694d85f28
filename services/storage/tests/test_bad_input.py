"""Bad input gets a precise status and harms nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

import grpc
import jwt
import pytest

from geogit.common.pktline import FLUSH_PKT, pkt_line
from geogit.common.proto.storage.v1 import (
    repository_pb2,
    shared_pb2,
    smarthttp_pb2,
    smarthttp_pb2_grpc,
    ssh_pb2,
    ssh_pb2_grpc,
)
from geogit.common.storage_client import aio_channel
from geogit.common.tokens import STORAGE_AUDIENCE
from geogit.storage.testing import STORAGE_SECRET, StorageProcess, git, make_work_tree, refs_of

ZERO = "0" * 40


def _token(
    secret: str = STORAGE_SECRET,
    audience: str = STORAGE_AUDIENCE,
    iat_offset: int = 0,
    ttl: int = 30,
) -> str:
    now = int(time.time()) + iat_offset
    return jwt.encode({"iss": "t", "aud": audience, "iat": now, "exp": now + ttl}, secret, "HS256")


def _exists(storage: StorageProcess, metadata: tuple[tuple[str, str], ...]) -> None:
    repo = shared_pb2.Repository(relative_path="@hashed/aa/aa/x.git")
    storage.repositories.RepositoryExists(
        repository_pb2.RepositoryExistsRequest(repository=repo), metadata=metadata
    )


def _bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


# Factories, not values: a token minted at collection time would have expired by the time a
# long suite reaches this test, and fail for the wrong reason.
@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        (lambda: (), "missing storage token"),
        (lambda: (("authorization", "Basic dXNlcjpwYXNz"),), "must be 'Bearer <token>'"),
        (lambda: _bearer("not-a-jwt"), "malformed token"),
        (
            lambda: _bearer(_token(secret="forged-secret-0123456789abcdef0123")),
            "signature invalid",
        ),
        (lambda: _bearer(_token(iat_offset=-3600)), "expired"),
        (lambda: _bearer(_token(ttl=3600)), "lifetime exceeds"),
        (lambda: _bearer(_token(audience="geogit-internal-api")), "audience"),
    ],
)
def test_bad_tokens_are_refused(storage: StorageProcess, metadata, reason: str) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        _exists(storage, metadata())
    assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason in failure.value.details()


@pytest.mark.parametrize(
    "path",
    [
        "../outside.git",
        "/etc/passwd.git",
        "@hashed/../../escape.git",
        "@hashed/aa/./b.git",
        "+geogit/hooks.git",
        "@hashed/aa/bb/not-a-repo",
        "",
        "a\x00b.git",
        "a\\..\\b.git",
    ],
)
def test_hostile_paths_are_invalid_argument(storage: StorageProcess, path: str) -> None:
    repo = shared_pb2.Repository(relative_path=path)
    for call in (
        lambda: storage.repositories.CreateRepository(
            repository_pb2.CreateRepositoryRequest(repository=repo), metadata=storage.metadata()
        ),
        lambda: storage.repositories.CalculateChecksum(
            repository_pb2.CalculateChecksumRequest(repository=repo), metadata=storage.metadata()
        ),
    ):
        with pytest.raises(grpc.RpcError) as failure:
            call()
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT, path
    assert not (storage.root.parent / "outside.git").exists()


def test_symlink_out_of_the_root_is_refused(storage: StorageProcess, tmp_path: Path) -> None:
    (storage.root / "@hashed" / "ee").mkdir(parents=True, exist_ok=True)
    link = storage.root / "@hashed" / "ee" / "ff"
    if not link.exists():
        link.symlink_to(tmp_path)
    repo = shared_pb2.Repository(relative_path="@hashed/ee/ff/evil.git")
    with pytest.raises(grpc.RpcError) as failure:
        storage.repositories.CreateRepository(
            repository_pb2.CreateRepositoryRequest(repository=repo), metadata=storage.metadata()
        )
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(tmp_path.iterdir()) == []


def test_unknown_storage_and_missing_repository(storage: StorageProcess) -> None:
    other = shared_pb2.Repository(storage_name="nope", relative_path="@hashed/aa/bb/c.git")
    missing = shared_pb2.Repository(relative_path="@hashed/aa/bb/missing.git")
    with pytest.raises(grpc.RpcError) as failure:
        storage.repositories.CalculateChecksum(
            repository_pb2.CalculateChecksumRequest(repository=other), metadata=storage.metadata()
        )
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as failure:
        storage.repositories.CalculateChecksum(
            repository_pb2.CalculateChecksumRequest(repository=missing), metadata=storage.metadata()
        )
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND
    assert "repository not found" in failure.value.details()


def test_invalid_object_ids_and_branch_names(storage: StorageProcess) -> None:
    repo = storage.create()
    for request, call in (
        (
            repository_pb2.HasObjectsRequest(repository=repo, object_ids=["--batch-all-objects"]),
            storage.repositories.HasObjects,
        ),
        (
            repository_pb2.CommitIsAncestorRequest(
                repository=repo, ancestor_id="--output=/tmp/x", child_id=ZERO
            ),
            storage.repositories.CommitIsAncestor,
        ),
        (
            repository_pb2.CreateRepositoryRequest(
                repository=shared_pb2.Repository(relative_path="@hashed/12/34/branch.git"),
                default_branch="bad..name",
            ),
            storage.repositories.CreateRepository,
        ),
        (
            repository_pb2.CommitIsAncestorRequest(
                repository=shared_pb2.Repository(
                    relative_path=repo.relative_path, git_object_directory="../../../../../tmp"
                ),
                ancestor_id=ZERO,
                child_id=ZERO,
            ),
            storage.repositories.CommitIsAncestor,
        ),
    ):
        with pytest.raises(grpc.RpcError) as failure:
            call(request, metadata=storage.metadata())
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture
def seeded(storage: StorageProcess, work: Path):
    repo = storage.create()
    tree = make_work_tree(work / "src")
    git("push", "-q", storage.url(repo), "main", cwd=tree, env=storage.git_env(repo))
    return repo, tree


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"zzzzwant", "invalid pkt-line length prefix b'zzzz'"),
        (b"0003", "length 3"),
        (b"0002", "a response-end packet (0002) is only sent by servers"),
        (b"ffff" + b"x" * 100, "longer than 65520"),
    ],
)
def test_malformed_pkt_lines_over_http(
    storage: StorageProcess, seeded, body: bytes, reason: str
) -> None:
    repo, _ = seeded
    stub = smarthttp_pb2_grpc.SmartHTTPServiceStub(storage.channel)
    with pytest.raises(grpc.RpcError) as failure:
        list(
            stub.PostUploadPack(
                iter([smarthttp_pb2.PostUploadPackRequest(repository=repo, data=body)]),
                metadata=storage.metadata(),
            )
        )
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason in failure.value.details()


def test_malformed_push_commands_change_nothing(storage: StorageProcess, seeded) -> None:
    repo, _ = seeded
    before = refs_of(storage.path_of(repo))
    stub = smarthttp_pb2_grpc.SmartHTTPServiceStub(storage.channel)
    with pytest.raises(grpc.RpcError) as failure:
        list(
            stub.PostReceivePack(
                iter([smarthttp_pb2.PostReceivePackRequest(repository=repo, data=b"00zz garbage")]),
                metadata=storage.metadata(),
            )
        )
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refs_of(storage.path_of(repo)) == before


def test_truncated_push_changes_nothing(storage: StorageProcess, seeded, work: Path) -> None:
    repo, tree = seeded
    path = storage.path_of(repo)
    before = refs_of(path)
    (tree / "blob").write_bytes(os.urandom(512 * 1024))
    git("add", "blob", cwd=tree)
    git("-c", "user.name=a", "-c", "user.email=b", "commit", "-qm", "new", cwd=tree)
    new = git("rev-parse", "HEAD", cwd=tree).stdout.decode().strip()
    pack = git(
        "pack-objects",
        "--stdout",
        "--revs",
        cwd=tree,
        input=f"{new}\n^{before['refs/heads/main']}\n".encode(),
    ).stdout
    command = pkt_line(
        f"{before['refs/heads/main']} {new} refs/heads/main\0report-status\n".encode()
    )
    body = command + FLUSH_PKT + pack[: len(pack) // 2]
    stub = smarthttp_pb2_grpc.SmartHTTPServiceStub(storage.channel)
    # As git http-backend does, receive-pack answers a truncated pack with a failed report.
    report = b"".join(
        r.data
        for r in stub.PostReceivePack(
            iter([smarthttp_pb2.PostReceivePackRequest(repository=repo, data=body)]),
            metadata=storage.metadata(),
        )
    )
    assert b"unpack ok" not in report
    assert b"unpack " in report and b"ng refs/heads/main" in report
    assert refs_of(path) == before
    assert list((path / "objects").glob("*incoming-*")) == []
    has = storage.repositories.HasObjects(
        repository_pb2.HasObjectsRequest(repository=repo, object_ids=[new]),
        metadata=storage.metadata(),
    )
    assert list(has.missing) == [new]


def test_malformed_ssh_stream_and_protocol(storage: StorageProcess, seeded) -> None:
    repo, _ = seeded
    stub = ssh_pb2_grpc.SSHServiceStub(storage.channel)
    with pytest.raises(grpc.RpcError) as failure:
        list(
            stub.SSHUploadPack(
                iter(
                    [
                        ssh_pb2.SSHUploadPackRequest(repository=repo),
                        ssh_pb2.SSHUploadPackRequest(stdin=b"not a pkt line at all"),
                        ssh_pb2.SSHUploadPackRequest(stdin_eof=True),
                    ]
                ),
                metadata=storage.metadata(),
            )
        )
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as failure:
        list(
            stub.SSHUploadPack(
                iter(
                    [
                        ssh_pb2.SSHUploadPackRequest(
                            repository=repo, git_protocol="version=2\nGIT_DIR=/etc"
                        )
                    ]
                ),
                metadata=storage.metadata(),
            )
        )
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid git protocol" in failure.value.details()


def _want(oid: str) -> bytes:
    return pkt_line(f"want {oid}\n".encode())


def _upload_pack(storage: StorageProcess, repo, body: bytes, git_protocol: str = "") -> bytes:
    stub = smarthttp_pb2_grpc.SmartHTTPServiceStub(storage.channel)
    request = smarthttp_pb2.PostUploadPackRequest(
        repository=repo, data=body, git_protocol=git_protocol
    )
    responses = stub.PostUploadPack(iter([request]), metadata=storage.metadata())
    return b"".join(response.data for response in responses)


# (git protocol, body given the seeded head, git's own message on stderr given the head)
PROTOCOL_ERRORS = {
    "empty": ("", lambda h: b"", "fatal: the remote end hung up unexpectedly"),
    "truncated": ("", lambda h: b"0032want ", "fatal: the remote end hung up unexpectedly"),
    "non-hex want": (
        "",
        lambda h: _want("zz" + h[2:]) + FLUSH_PKT,
        "fatal: git upload-pack: protocol error, expected to get object ID, not 'want zz{t}'",
    ),
    "partial want": (
        "",
        lambda h: _want(h[:20]) + FLUSH_PKT,
        "fatal: git upload-pack: protocol error, expected to get object ID, not 'want {p}'",
    ),
    "have before want": (
        "",
        lambda h: pkt_line(f"have {h}\n".encode()) + FLUSH_PKT,
        "fatal: git upload-pack: protocol error, expected to get object ID, not 'have {h}'",
    ),
    "absurd deepen": (
        "",
        lambda h: _want(h) + pkt_line(b"deepen 99999999999999999999\n") + FLUSH_PKT,
        "fatal: Invalid deepen: deepen 99999999999999999999",
    ),
    "v2 unknown command": (
        "version=2",
        lambda h: pkt_line(b"command=frobnicate\n") + FLUSH_PKT,
        "fatal: invalid command 'frobnicate'",
    ),
    "v2 missing command": (
        "version=2",
        lambda h: pkt_line(b"agent=x\n") + FLUSH_PKT,
        "fatal: no command requested",
    ),
    "v2 unknown argument": (
        "version=2",
        lambda h: pkt_line(b"command=fetch\n") + b"0001" + pkt_line(b"frob\n") + FLUSH_PKT,
        "fatal: unexpected line: 'frob'",
    ),
}


@pytest.mark.parametrize("case", list(PROTOCOL_ERRORS))
def test_protocol_errors_are_invalid_argument_with_gits_message(
    storage: StorageProcess, seeded, case: str
) -> None:
    repo, tree = seeded
    head = git("rev-parse", "HEAD", cwd=tree).stdout.decode().strip()
    before = refs_of(storage.path_of(repo))
    git_protocol, body, message = PROTOCOL_ERRORS[case]
    with pytest.raises(grpc.RpcError) as failure:
        _upload_pack(storage, repo, body(head), git_protocol)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.value.details() == message.format(h=head, t=head[2:], p=head[:20])
    assert refs_of(storage.path_of(repo)) == before


@pytest.mark.parametrize("junk_messages", [1, 200])
async def test_the_status_survives_a_client_still_sending(
    storage: StorageProcess, seeded, junk_messages: int
) -> None:
    """git fails at the first line while the client (grpc.aio, as the edge) is still writing.
    A grpc.aio client whose write fails reports INTERNAL "Internal error from Core" in place
    of the status, unless storage reads the request to its end before answering."""
    repo, _ = seeded
    async with aio_channel(storage.address) as channel:
        stub = smarthttp_pb2_grpc.SmartHTTPServiceStub(channel)
        call = stub.PostUploadPack(metadata=storage.metadata())
        await call.write(
            smarthttp_pb2.PostUploadPackRequest(repository=repo, data=pkt_line(b"have x\n"))
        )

        async def write_junk() -> None:
            junk = smarthttp_pb2.PostUploadPackRequest(data=pkt_line(b"x" * 60000))
            with contextlib.suppress(grpc.aio.AioRpcError):
                for _ in range(junk_messages):
                    await call.write(junk)
                await call.done_writing()

        writer = asyncio.create_task(write_junk())
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            while await call.read() is not grpc.aio.EOF:
                pass
        await writer
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.value.details() == (
        "fatal: git upload-pack: protocol error, expected to get object ID, not 'have x'"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "fatal: the remote end hung up unexpectedly"),
        (pkt_line(b"zzz\n") + FLUSH_PKT, "fatal: protocol error: expected old/new/ref, got 'zzz'"),
    ],
)
def test_push_protocol_errors_are_invalid_argument(
    storage: StorageProcess, seeded, body: bytes, message: str
) -> None:
    repo, _ = seeded
    before = refs_of(storage.path_of(repo))
    stub = smarthttp_pb2_grpc.SmartHTTPServiceStub(storage.channel)
    request = smarthttp_pb2.PostReceivePackRequest(repository=repo, data=body)
    with pytest.raises(grpc.RpcError) as failure:
        list(stub.PostReceivePack(iter([request]), metadata=storage.metadata()))
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.value.details() == message
    assert refs_of(storage.path_of(repo)) == before


@pytest.mark.parametrize("git_protocol", ["", "version=2"])
def test_not_our_ref_comes_after_gits_err_line(
    storage: StorageProcess, seeded, git_protocol: str
) -> None:
    repo, _ = seeded
    unknown = "1234567890" * 4
    if git_protocol:
        body = pkt_line(b"command=fetch\n") + b"0001" + _want(unknown) + FLUSH_PKT
    else:
        body = _want(unknown) + FLUSH_PKT + pkt_line(b"done\n")
    stub = smarthttp_pb2_grpc.SmartHTTPServiceStub(storage.channel)
    request = smarthttp_pb2.PostUploadPackRequest(
        repository=repo, data=body, git_protocol=git_protocol
    )
    received = []
    with pytest.raises(grpc.RpcError) as failure:
        for response in stub.PostUploadPack(iter([request]), metadata=storage.metadata()):
            received.append(response.data)
    assert b"".join(received) == pkt_line(f"ERR upload-pack: not our ref {unknown}".encode())
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.value.details() == f"fatal: git upload-pack: not our ref {unknown}"


def test_a_broken_repository_is_still_an_internal_error(storage: StorageProcess, work: Path):
    repo = storage.create()
    tree = make_work_tree(work / "src")
    path = storage.path_of(repo)
    # Straight into the directory, not through storage: no push, so no housekeeping repacks
    # the objects while the test breaks the repository.
    git("push", "-q", str(path), "main", cwd=tree)
    head = git("rev-parse", "HEAD", cwd=tree).stdout.decode().strip()
    tree_id = git("rev-parse", "HEAD^{tree}", cwd=tree).stdout.decode().strip()
    for pack in (path / "objects" / "pack").glob("*"):
        pack.unlink()
    for loose in (path / "objects").glob(f"{tree_id[:2]}/{tree_id[2:]}"):
        loose.unlink()
    with pytest.raises(grpc.RpcError) as failure:
        _upload_pack(storage, repo, _want(head) + FLUSH_PKT + pkt_line(b"done\n"))
    assert failure.value.code() == grpc.StatusCode.INTERNAL
    assert "git upload-pack exited with 128" in failure.value.details()


def _raw_call(storage: StorageProcess, method: str, metadata, payload: bytes) -> grpc.RpcError:
    call = storage.channel.unary_unary(method)  # no serializers: the bytes go out as given
    with pytest.raises(grpc.RpcError) as failure:
        call(payload, metadata=metadata)
    return failure.value


UNDECODABLE = b"\xff\xff\xff\xff"


def test_unauthenticated_garbage_is_refused_before_decoding(storage: StorageProcess) -> None:
    log_before = storage.log_path.read_text()
    method = "/geogit.storage.v1.RepositoryService/RepositoryExists"
    error = _raw_call(storage, method, (), UNDECODABLE)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "missing storage token" in error.details()
    error = _raw_call(storage, method, storage.metadata(), UNDECODABLE)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("RepositoryExists: the request message could not be decoded")
    new_log = storage.log_path.read_text()[len(log_before) :]
    assert "Traceback" not in new_log and "DecodeError" not in new_log.replace(
        "could not be decoded", ""
    )


def test_undecodable_stream_messages_are_invalid_argument(storage: StorageProcess, seeded):
    repo, _ = seeded
    call = storage.channel.stream_stream("/geogit.storage.v1.SmartHTTPService/PostUploadPack")
    first = smarthttp_pb2.PostUploadPackRequest(repository=repo).SerializeToString()
    for messages in ([UNDECODABLE], [first, UNDECODABLE], []):
        with pytest.raises(grpc.RpcError) as failure:
            list(call(iter(messages), metadata=storage.metadata()))
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT, messages
        reason = "carried no message" if not messages else "could not be decoded"
        assert reason in failure.value.details()
