"""A Site's wiring, its real storage, and (once the services exist) a whole real site."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from geogit.common.tansu import TansuBroker
from geogit.devstack.credentials import SiteSecrets
from geogit.devstack.ports import SitePorts
from geogit.devstack.procfs import identity_of
from geogit.devstack.site import SERVICES, Site
from geogit.devstack.testing import running_site

PORTS = SitePorts(
    http=18080,
    internal_api=18081,
    storage=18082,
    storage_ops=18083,
    ssh=12222,
    ssh_ops=18084,
    replicator_ops=18085,
)
API_URL = "http://127.0.0.1:18081"
SECRETS = SiteSecrets(internal_api_secret="api-secret-" + "x" * 32, storage_secret="st-" + "y" * 40)


def make_site(base: Path, ports: SitePorts = PORTS) -> Site:
    return Site(
        "secondary-1",
        "secondary",
        base,
        ports,
        "postgresql+asyncpg://postgres@127.0.0.1:15432/geogit_secondary_1",
        "127.0.0.1:19092",
        SECRETS,
        primary_url="http://127.0.0.1:8080",
    )


def test_services_are_wired_to_each_other(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    storage, api, edge = site.storage_env(), site.internal_api_env(), site.edge_proxy_env()

    assert storage["GEOGIT_LISTEN_ADDRESS"] == "127.0.0.1:18082"
    assert storage["GEOGIT_OPS_ADDRESS"] == "127.0.0.1:18083"
    assert storage["GEOGIT_INTERNAL_API_URL"] == API_URL
    assert storage["GEOGIT_STORAGE_ROOT"] == str(tmp_path / "sites/secondary-1/repositories")
    assert api["GEOGIT_HTTP_ADDRESS"] == "127.0.0.1:18081"
    assert json.loads(api["GEOGIT_STORAGES"]) == {"default": "127.0.0.1:18082"}
    assert api["GEOGIT_DATABASE_URL"].endswith("/geogit_secondary_1")
    assert api["GEOGIT_KAFKA_BOOTSTRAP"] == "127.0.0.1:19092"
    assert api["GEOGIT_KAFKA_IDEMPOTENT"] == "false"
    assert api["GEOGIT_SITE_ROLE"] == "secondary"
    assert api["GEOGIT_EXTERNAL_URL"] == "http://127.0.0.1:18080"
    assert edge["GEOGIT_HTTP_ADDRESS"] == "127.0.0.1:18080"
    assert edge["GEOGIT_INTERNAL_API_URL"] == API_URL
    for env in (storage, api, edge):
        assert env["GEOGIT_SITE_NAME"] == "secondary-1"
        assert env["GEOGIT_INTERNAL_API_SECRET"] == SECRETS.internal_api_secret
    assert storage["GEOGIT_STORAGE_SECRET"] == api["GEOGIT_STORAGE_SECRET"]


def test_every_site_runs_a_replicator_and_signs_with_its_own_key(tmp_path: Path) -> None:
    secondary = make_site(tmp_path)
    primary = Site(
        "primary", "primary", tmp_path, PORTS, "postgresql+asyncpg://x@127.0.0.1/p", "k:1", SECRETS
    )
    assert primary.services == secondary.services == SERVICES
    assert SERVICES[-1] == "replicator"
    for site in (primary, secondary):
        for env in (site.internal_api_env(), site.replicator_env()):
            assert env["GEOGIT_GEO_PRIVATE_KEY"] == site.secrets.geo_private_key
        assert not any("GEO_SECRET" in name for name in site.internal_api_env())
    assert primary.internal_api_env()["GEOGIT_PRIMARY_URL"] == ""
    assert secondary.internal_api_env()["GEOGIT_PRIMARY_URL"] == "http://127.0.0.1:8080"
    # The replicator asks its internal API where the primary is.
    assert "GEOGIT_PRIMARY_URL" not in secondary.replicator_env()
    replicator = primary.replicator_env()
    assert replicator["GEOGIT_OPS_ADDRESS"] == "127.0.0.1:18085"
    assert replicator["GEOGIT_INTERNAL_API_URL"] == API_URL
    assert json.loads(replicator["GEOGIT_STORAGES"]) == {"default": "127.0.0.1:18082"}
    assert set(replicator) == set(secondary.replicator_env())


def test_inherited_geogit_variables_do_not_leak_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEOGIT_STORAGE_ROOT", "/somewhere/else")
    monkeypatch.setenv("GEOGIT_SITE_ROLE", "primary")
    monkeypatch.setenv("GEOGIT_LOG_LEVEL", "DEBUG")
    site = make_site(tmp_path)

    assert site.storage_env()["GEOGIT_STORAGE_ROOT"] != "/somewhere/else"
    assert site.internal_api_env()["GEOGIT_SITE_ROLE"] == "secondary"
    assert "GEOGIT_SITE_ROLE" not in site.storage_env()
    assert site.edge_proxy_env()["GEOGIT_LOG_LEVEL"] == "DEBUG"


def test_real_storage_starts_ready_and_stops(tmp_path: Path) -> None:
    site = make_site(tmp_path, SitePorts.free())
    site.start_storage()
    record = site.supervisor.record("secondary-1-storage")
    assert record is not None and record.is_running()
    assert httpx.get(f"{site.storage_ops_url}/-/readiness", trust_env=False).status_code == 200

    results = site.stop()

    assert [(r.name, r.outcome) for r in results] == [
        ("secondary-1-replicator", "not running"),
        ("secondary-1-ssh-gateway", "not running"),
        ("secondary-1-edge-proxy", "not running"),
        ("secondary-1-internal-api", "not running"),
        ("secondary-1-storage", "stopped"),
    ]
    assert identity_of(record.pid) is None


def test_a_whole_site_serves_the_admin_api_through_its_front_door(
    open_tmp_path: Path, tansu: TansuBroker, test_server: str
) -> None:
    with running_site(open_tmp_path, tansu.bootstrap) as (site, admin):
        assert admin is not None and admin.username == "root"
        response = httpx.get(
            f"{site.http_url}/api/v4/user",
            headers={"PRIVATE-TOKEN": admin.token},
            trust_env=False,
        )
        assert response.status_code == 200
        assert response.json()["username"] == "root"
        assert response.headers["Geogit-Served-By"] == site.name
        gateway = httpx.get(f"{site.ssh_ops_url}/-/readiness", trust_env=False)
        assert gateway.status_code == 200
        assert (site.host_keys_dir / "ssh_host_ed25519_key").exists()
