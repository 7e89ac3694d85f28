"""Fixtures for the dev stack's tests: shared Tansu broker, directories PostgreSQL may enter."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from geogit.common.testing import tansu  # noqa: F401  (fixture)
from geogit.devstack.databases import can_connect
from geogit.devstack.testing import server_url_for_tests


@pytest.fixture
def open_tmp_path() -> Iterator[Path]:
    """A tmp dir an unprivileged server account can traverse (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="geogit-devstack-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def test_server() -> str:
    url = server_url_for_tests()
    if not can_connect(url):
        pytest.skip(f"no PostgreSQL at {url} (set GEOGIT_TEST_DATABASE_URL)")
    return url
