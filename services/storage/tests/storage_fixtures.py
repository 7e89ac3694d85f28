"""Fixtures shared by storage's tests and its neighbours' (the edge proxy's): a real storage
process in front of the internal API's test double. Conftests import them by name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_internal_api import FakeInternalApi

from geogit.storage.testing import API_SECRET, StorageProcess

# The shared storages do no background housekeeping: tests that inspect a repository's files
# (fsck, objects, packs) must not race a repack. test_housekeeping.py starts storages with it.
HOUSEKEEPING_ENV = "GEOGIT_HOUSEKEEPING_ENABLED"


@pytest.fixture(scope="session")
def internal_api() -> Iterator[FakeInternalApi]:
    api = FakeInternalApi(API_SECRET)
    api.start()
    yield api
    api.stop()


@pytest.fixture(autouse=True)
def _reset_policy(internal_api: FakeInternalApi) -> None:
    internal_api.reset()


@pytest.fixture(scope="session")
def storage(
    tmp_path_factory: pytest.TempPathFactory, internal_api: FakeInternalApi
) -> Iterator[StorageProcess]:
    server = StorageProcess(tmp_path_factory.mktemp("storage") / "repositories", internal_api.url)
    server.env[HOUSEKEEPING_ENV] = "false"
    server.start()
    yield server
    server.stop()
