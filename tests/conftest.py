from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e import Api

from geogit.common.tansu import TansuBroker
from geogit.common.testing import tansu  # noqa: F401 (fixture)
from geogit.devstack.site import Site
from geogit.devstack.testing import running_site


@pytest.fixture(scope="session")
def primary(
    tmp_path_factory: pytest.TempPathFactory,
    tansu: TansuBroker,
) -> Iterator[tuple[Site, str]]:
    """One real site (storage, internal API, edge proxy) and its admin's token."""
    with running_site(tmp_path_factory.mktemp("primary"), tansu.bootstrap) as (site, admin):
        assert admin is not None
        yield site, admin.token


@pytest.fixture(scope="session")
def site(primary: tuple[Site, str]) -> Site:
    return primary[0]


@pytest.fixture(scope="session")
def api(primary: tuple[Site, str]) -> Iterator[Api]:
    site, token = primary
    client = Api(site.http_url, token)
    yield client
    client.http.close()


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path
