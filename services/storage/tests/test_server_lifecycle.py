"""Health, metrics and graceful SIGTERM of the real storage process."""

from __future__ import annotations

import queue
import threading
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from geogit.common.pktline import FLUSH_PKT
from geogit.common.proto.storage.v1 import ssh_pb2, ssh_pb2_grpc
from geogit.storage.testing import StorageProcess, git, make_work_tree


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_health_and_metrics(storage: StorageProcess) -> None:
    health = health_pb2_grpc.HealthStub(storage.channel)
    for service in ("", "geogit.storage.v1.RepositoryService"):
        status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    storage.create()
    status, body = _get(f"http://127.0.0.1:{storage.ops_port}/metrics")
    assert status == 200
    assert 'geogit_storage_rpc_total{code="OK",method="CreateRepository"}' in body
    assert _get(f"http://127.0.0.1:{storage.ops_port}/-/liveness")[0] == 200
    assert _get(f"http://127.0.0.1:{storage.ops_port}/nope")[0] == 404


def test_sigterm_drains_in_flight_sessions(tmp_path: Path, internal_api) -> None:
    server = StorageProcess(tmp_path / "repositories", internal_api.url)
    server.start()
    repo = server.create()
    tree = make_work_tree(tmp_path / "src")
    git("push", "-q", server.url(repo), "main", cwd=tree, env=server.git_env(repo))

    # An upload-pack session that has read the refs and waits for the client's wants.
    requests: queue.Queue[ssh_pb2.SSHUploadPackRequest | None] = queue.Queue()
    requests.put(ssh_pb2.SSHUploadPackRequest(repository=repo))

    def request_stream():
        while (item := requests.get()) is not None:
            yield item

    stub = ssh_pb2_grpc.SSHServiceStub(server.channel)
    responses = stub.SSHUploadPack(request_stream(), metadata=server.metadata())
    first = next(responses)
    assert b"refs/heads/main" in first.stdout

    exit_code: list[int] = []
    stopper = threading.Thread(target=lambda: exit_code.append(server.stop()))
    stopper.start()
    stopper.join(1.5)
    assert stopper.is_alive(), "storage exited while a session was still running"
    assert _get(f"http://127.0.0.1:{server.ops_port}/-/readiness")[0] == 503

    with pytest.raises(grpc.RpcError):
        grpc_channel = grpc.insecure_channel(server.address)
        health_pb2_grpc.HealthStub(grpc_channel).Check(health_pb2.HealthCheckRequest(), timeout=2)

    # The client finishes its conversation (no wants: flush), and the session ends normally.
    requests.put(ssh_pb2.SSHUploadPackRequest(stdin=FLUSH_PKT))
    requests.put(ssh_pb2.SSHUploadPackRequest(stdin_eof=True))
    requests.put(None)
    rest = list(responses)
    assert rest[-1].exit_status.value == 0
    stopper.join(30)
    assert exit_code == [0]
