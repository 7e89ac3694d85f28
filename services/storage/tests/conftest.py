from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_internal_api import FakeInternalApi
from storage_fixtures import (  # noqa: F401 (fixtures)
    HOUSEKEEPING_ENV,
    _reset_policy,
    internal_api,
    storage,
)

from geogit.storage.testing import StorageProcess


@pytest.fixture(scope="session")
def second_storage(
    tmp_path_factory: pytest.TempPathFactory, internal_api: FakeInternalApi
) -> Iterator[StorageProcess]:
    server = StorageProcess(
        tmp_path_factory.mktemp("storage2") / "repositories", internal_api.url, name="second"
    )
    server.env[HOUSEKEEPING_ENV] = "false"
    server.start()
    yield server
    server.stop()


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path
