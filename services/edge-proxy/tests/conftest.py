from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_harness import API_BODY_LIMIT, Project, git, git_env, new_project, serving
from fake_internal_api import FakeInternalApi
from storage_fixtures import _reset_policy, internal_api, storage  # noqa: F401 (fixtures)

from geogit.edge_proxy.testing import EdgeProxyProcess
from geogit.storage.testing import API_SECRET, StorageProcess, make_work_tree


@pytest.fixture(scope="session")
def edge_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("edge-logs")


@pytest.fixture(scope="session")
def edge(edge_logs: Path, internal_api: FakeInternalApi) -> Iterator[EdgeProxyProcess]:
    proxy = EdgeProxyProcess(
        edge_logs,
        internal_api.url,
        API_SECRET,
        site_name="test-site",
        max_api_body_bytes=str(API_BODY_LIMIT),
    )
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return git_env(tmp_path)


@pytest.fixture
def project(
    storage: StorageProcess, edge: EdgeProxyProcess, internal_api: FakeInternalApi
) -> Project:
    """An empty repository on storage that the fake internal API serves to anyone."""
    created = new_project(storage, edge.url)
    internal_api.policy.git_http = serving(storage, created)
    return created


@pytest.fixture(scope="session")
def _populated(
    tmp_path_factory: pytest.TempPathFactory,
    storage: StorageProcess,
    edge: EdgeProxyProcess,
    internal_api: FakeInternalApi,
) -> tuple[Project, str]:
    created = new_project(storage, edge.url)
    internal_api.policy.git_http = serving(storage, created)
    tmp = tmp_path_factory.mktemp("populated")
    tree = make_work_tree(tmp / "src", commits=4)
    env = git_env(tmp)
    git("push", "-q", created.url, "main", cwd=tree, env=env)
    return created, git("rev-parse", "HEAD", cwd=tree, env=env).stdout.strip()


@pytest.fixture
def populated(
    _populated: tuple[Project, str], storage: StorageProcess, internal_api: FakeInternalApi
) -> Project:
    """A project with four commits on main, served to anyone; shared, so never pushed to."""
    project, _ = _populated
    internal_api.policy.git_http = serving(storage, project)
    return project


@pytest.fixture
def populated_head(_populated: tuple[Project, str]) -> str:
    return _populated[1]
