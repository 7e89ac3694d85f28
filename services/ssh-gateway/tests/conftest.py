from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e import Api
from ssh_harness import GatewayProcess, SshUser, new_ssh_user

from geogit.common.tansu import TansuBroker
from geogit.common.testing import tansu  # noqa: F401 (fixture)
from geogit.devstack.site import Site
from geogit.devstack.testing import running_site


@pytest.fixture(scope="session")
def ssh_site(
    tmp_path_factory: pytest.TempPathFactory, tansu: TansuBroker
) -> Iterator[tuple[Site, str]]:
    with running_site(tmp_path_factory.mktemp("site"), tansu.bootstrap) as (site, admin):
        assert admin is not None
        yield site, admin.token


@pytest.fixture(scope="session")
def api(ssh_site: tuple[Site, str]) -> Iterator[Api]:
    site, token = ssh_site
    client = Api(site.http_url, token)
    yield client
    client.http.close()


@pytest.fixture(scope="session")
def gateway(
    ssh_site: tuple[Site, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    site, _ = ssh_site
    process = GatewayProcess(
        tmp_path_factory.mktemp("gateway"),
        site.internal_api_url,
        site.secrets.internal_api_secret,
        idle_timeout_seconds="20",
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture
def user(api: Api, keys_dir: Path) -> SshUser:
    return new_ssh_user(api, keys_dir)
