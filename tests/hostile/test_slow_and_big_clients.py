"""Work stays proportional to the request (issue 9, items 4 and 7): big pushes, slow and
oversized clients, many at once — against a real primary and secondary.

Each test asserts the answer (status and message), that the services stay healthy, and that
nothing changed that should not have.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from e2e import Account, Api, clone_url, git
from geo_support import internal, wait_until
from ssh_harness import SshKey, make_key, ssh_command

from geogit.common.tansu import TansuBroker
from geogit.devstack.site import Site
from geogit.devstack.testing import running_sites
from geogit.storage.testing import commit_all, make_work_tree

BIG_PUSH_MIB = 200
"""Much more than every buffer on the way (an SSH window of 2 MiB, gRPC's and HTTP's few MiB)."""
RSS_GROWTH_LIMIT_MIB = 48
"""What a gateway may grow by while relaying a BIG_PUSH_MIB pack: a few buffers, not the pack."""


@pytest.fixture(scope="module")
def sites(
    tmp_path_factory: pytest.TempPathFactory, tansu: TansuBroker
) -> Iterator[tuple[Site, Site, Api]]:
    with running_sites(tmp_path_factory.mktemp("hostile-big"), tansu.bootstrap) as (
        primary,
        (secondary,),
        admin,
    ):
        api = Api(primary.http_url, admin.token)
        yield primary, secondary, api
        api.http.close()


@pytest.fixture(scope="module")
def primary(sites: tuple[Site, Site, Api]) -> Site:
    return sites[0]


@pytest.fixture(scope="module")
def secondary(sites: tuple[Site, Site, Api]) -> Site:
    return sites[1]


@pytest.fixture(scope="module")
def api(sites: tuple[Site, Site, Api]) -> Api:
    return sites[2]


def service_pid(site: Site, service: str) -> int:
    record = site.supervisor.record(site.process_name(service))
    assert record is not None, f"{service} of {site.name} is not running"
    return record.pid


class PeakRss:
    """The highest resident memory of a process while the block runs (psutil, every 10 ms)."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.before = 0
        self.peak = 0
        self._stop = threading.Event()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self) -> PeakRss:
        self.before = self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.before) / 2**20


def all_healthy(*sites: Site) -> None:
    for site in sites:
        for url in (site.http_url, site.internal_api_url, site.ssh_ops_url):
            response = httpx.get(f"{url}/-/readiness", timeout=10)
            assert response.status_code == 200, (url, response.status_code, response.text)


def ssh_account(api: Api, sites: list[Site], keys: Path) -> tuple[Account, SshKey]:
    """An account with an SSH key that every site given already knows."""
    account = api.account()
    key = make_key(keys, account.username)
    api.call("POST", f"/users/{account.id}/keys", json={"title": "laptop", "key": key.public})
    blob = key.public.split()[1]
    for site in sites:
        wait_until(
            lambda site=site: internal(site, "/authorized_keys", key=blob).status_code == 200,
            what=f"the key on {site.name}",
        )
    return account, key


def ssh_url(project: dict[str, Any]) -> str:
    return f"git@127.0.0.1:{project['path_with_namespace']}.git"


def write_incompressible(path: Path, mib: int) -> None:
    chunk = os.urandom(2**20)
    with path.open("wb") as handle:
        for index in range(mib):
            handle.write(index.to_bytes(8, "big") + chunk[8:])


def remote_head(url: str, env: dict[str, str] | None = None) -> str:
    return git("ls-remote", url, "refs/heads/main", env=env).stdout.split()[0]


@pytest.mark.parametrize("through", ["primary", "secondary"])
def test_big_ssh_push_keeps_the_gateway_flat(
    api: Api, primary: Site, secondary: Site, tmp_path: Path, through: str
) -> None:
    """A pack 100 times an SSH window goes through; the gateway (the primary's own, or the
    secondary's relaying it to the primary over HTTP) grows by a few buffers, not the pack."""
    site = primary if through == "primary" else secondary
    account, key = ssh_account(api, [site], tmp_path)
    project = api.project(account)
    env = {"GIT_SSH_COMMAND": ssh_command(key, site.ports.ssh)}
    work = make_work_tree(tmp_path / "work", commits=1)
    git("push", "-q", ssh_url(project), "main", cwd=work, env=env)  # warms the path up
    write_incompressible(work / "big.bin", BIG_PUSH_MIB)
    git("-c", "core.compression=0", "add", "big.bin", cwd=work)
    pushed = commit_all(work, "big")

    with PeakRss(service_pid(site, "ssh-gateway")) as rss:
        git("-c", "pack.compression=0", "push", "-q", ssh_url(project), "main", cwd=work, env=env)

    assert remote_head(clone_url(primary.http_url, project, account)) == pushed
    assert rss.growth_mib < RSS_GROWTH_LIMIT_MIB, (
        f"the {through}'s gateway grew by {rss.growth_mib:.0f} MiB for a {BIG_PUSH_MIB} MiB push"
    )
    all_healthy(primary, secondary)
