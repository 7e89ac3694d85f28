"""Large packs through the edge: memory stays flat, SIGTERM drains a clone in flight, and a
storage failure mid-clone cuts the response."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from edge_harness import Project, git, git_env, new_project, serve_answer, serving
from fake_internal_api import FakeInternalApi

from geogit.edge_proxy.testing import EdgeProxyProcess
from geogit.storage.testing import API_SECRET, StorageProcess, commit_all, make_work_tree

MIB = 1024 * 1024
PACK_MIB = 48
# Fixed buffers (gRPC flow-control windows, 256 KiB storage messages, socket buffers) are
# allowed; anything proportional to the pack is not: a third of it is far above the former.
GROWTH_LIMIT_MIB = PACK_MIB / 3


def start_edge(edge_logs: Path, internal_api: FakeInternalApi) -> EdgeProxyProcess:
    proxy = EdgeProxyProcess(edge_logs, internal_api.url, API_SECRET, shutdown_grace_seconds="20")
    proxy.start()
    return proxy


def memory_kib(edge: EdgeProxyProcess, field: str) -> int:
    assert edge.proc is not None
    status = Path(f"/proc/{edge.proc.pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match.group(1))


@dataclass
class BigProject:
    project: Project
    edge: EdgeProxyProcess
    baseline_kib: int  # resident memory of `edge` before the push went through it
    after_push_kib: int  # its peak resident memory once the push was done


@pytest.fixture(scope="module")
def big(
    tmp_path_factory: pytest.TempPathFactory,
    edge_logs: Path,
    storage: StorageProcess,
    internal_api: FakeInternalApi,
) -> Iterator[BigProject]:
    """A project holding an incompressible blob, pushed through an edge of its own."""
    tmp = tmp_path_factory.mktemp("big")
    tree = make_work_tree(tmp / "src", commits=1)
    (tree / "random.bin").write_bytes(os.urandom(PACK_MIB * MIB))
    commit_all(tree, "incompressible")
    edge = start_edge(edge_logs, internal_api)
    project = new_project(storage, edge.url)
    internal_api.policy.git_http = serving(storage, project)
    env = git_env(tmp)
    git("ls-remote", project.url, env=env)  # warm up: imports, pools, channels
    baseline = memory_kib(edge, "VmRSS")
    git("push", "-q", project.url, "main", cwd=tree, env=env)
    yield BigProject(project, edge, baseline, memory_kib(edge, "VmHWM"))
    edge.stop()


def test_memory_does_not_grow_with_pack_size(
    big: BigProject, storage: StorageProcess, internal_api: FakeInternalApi, tmp_path: Path
) -> None:
    internal_api.policy.git_http = serving(storage, big.project)
    git("clone", "-q", big.project.url, str(tmp_path / "clone"), env=git_env(tmp_path))
    assert (tmp_path / "clone" / "random.bin").stat().st_size == PACK_MIB * MIB
    push_growth = (big.after_push_kib - big.baseline_kib) / 1024
    clone_growth = (memory_kib(big.edge, "VmHWM") - big.baseline_kib) / 1024
    assert push_growth < GROWTH_LIMIT_MIB, (
        f"a {PACK_MIB} MiB push grew the edge {push_growth:.1f} MiB"
    )
    assert clone_growth < GROWTH_LIMIT_MIB, f"a clone grew the edge {clone_growth:.1f} MiB"


@pytest.fixture
def fresh_edge(edge_logs: Path, internal_api: FakeInternalApi) -> Iterator[EdgeProxyProcess]:
    proxy = start_edge(edge_logs, internal_api)
    yield proxy
    proxy.stop()


def in_flight(edge: EdgeProxyProcess, route: str) -> float:
    metrics = httpx.get(edge.url + "/metrics").text
    match = re.search(rf'geogit_edge_http_requests_in_flight{{route="{route}"}} (\S+)', metrics)
    return float(match.group(1)) if match else 0.0


def test_sigterm_drains_an_in_flight_clone(
    big: BigProject,
    fresh_edge: EdgeProxyProcess,
    storage: StorageProcess,
    internal_api: FakeInternalApi,
    tmp_path: Path,
) -> None:
    internal_api.policy.git_http = serving(storage, big.project)
    url = big.project.url.replace(big.edge.url, fresh_edge.url)
    clone = subprocess.Popen(
        ["git", "clone", "-q", url, str(tmp_path / "clone")],
        env=git_env(tmp_path),
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while in_flight(fresh_edge, "git_upload_pack") < 1:
        assert clone.poll() is None and time.monotonic() < deadline, "the clone never got going"
        time.sleep(0.01)
    assert fresh_edge.proc is not None
    fresh_edge.proc.send_signal(signal.SIGTERM)
    _, stderr = clone.communicate(timeout=30)
    assert clone.returncode == 0, stderr
    assert (tmp_path / "clone" / "random.bin").stat().st_size == PACK_MIB * MIB
    assert fresh_edge.proc.wait(20) == 0
    assert "Waiting for connections to close" in fresh_edge.log()
    with pytest.raises(httpx.ConnectError):
        httpx.get(fresh_edge.url + "/-/liveness")


def receiving_pack(pack_dir: Path) -> bool:
    """Whether git's index-pack has started writing a pack it is receiving."""
    for pack in pack_dir.glob("tmp_pack_*"):
        with contextlib.suppress(FileNotFoundError):  # renamed once complete
            if pack.stat().st_size:
                return True
    return False


def test_storage_failing_mid_clone_cuts_the_response(
    big: BigProject,
    storage: StorageProcess,
    internal_api: FakeInternalApi,
    tmp_path: Path,
) -> None:
    """After the first bytes the status cannot change: git must see a truncated response."""
    doomed = StorageProcess(tmp_path / "doomed" / "repositories", internal_api.url)
    doomed.start()
    try:
        shutil.copytree(storage.path_of(big.project.repo), doomed.path_of(big.project.repo))
        internal_api.policy.git_http = lambda _: serve_answer(doomed, big.project.repo)
        clone = subprocess.Popen(
            ["git", "clone", "-q", big.project.url, str(tmp_path / "clone")],
            env=git_env(tmp_path),
            stderr=subprocess.PIPE,
            text=True,
        )
        packs = tmp_path / "clone" / ".git" / "objects" / "pack"
        deadline = time.monotonic() + 20
        while not receiving_pack(packs):
            assert clone.poll() is None and time.monotonic() < deadline, "no pack data arrived"
            time.sleep(0.01)
        doomed.stop(signal.SIGKILL)
    finally:
        doomed.stop(signal.SIGKILL)
    _, stderr = clone.communicate(timeout=30)
    assert clone.returncode != 0
    assert "RPC failed" in stderr or "early EOF" in stderr, stderr
    metrics = httpx.get(big.edge.url + "/metrics").text
    assert 'geogit_edge_http_responses_aborted_total{route="git_upload_pack"} 1.0' in metrics
