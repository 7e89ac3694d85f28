"""A site with replicas: which processes it runs, on which ports, behind which HAProxy
configuration (checked by haproxy itself), and how stack.json keeps them for `dev start`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from geogit.devstack.cli import build_parser
from geogit.devstack.components import stack_sites
from geogit.devstack.credentials import CredentialStore, UserCredentials
from geogit.devstack.ports import MAX_REPLICAS, ReplicaPorts, SitePorts
from geogit.devstack.processes import Supervisor
from geogit.devstack.site import SERVICES, Site, SiteError
from geogit.devstack.stack import Stack, read_stack, write_stack

DB = "postgresql+asyncpg://postgres@127.0.0.1:15432/geogit_primary"


def replicated(base: Path, replicas: int = 2) -> Site:
    return Site(
        "primary",
        "primary",
        base,
        SitePorts.fixed(0),
        DB,
        "127.0.0.1:19092",
        replica_ports=[ReplicaPorts.fixed(0, r) for r in range(1, replicas + 1)],
    )


def test_replica_ports_sit_ten_apart_below_the_next_site() -> None:
    assert ReplicaPorts.fixed(0, 1) == ReplicaPorts(
        http=8090, internal_api=8091, ssh=2232, ssh_ops=8094
    )
    assert ReplicaPorts.fixed(1, 2) == ReplicaPorts(
        http=8200, internal_api=8201, ssh=2342, ssh_ops=8204
    )
    every = {
        port
        for index in range(3)
        for port in (
            *SitePorts.fixed(index).listening().values(),
            SitePorts.fixed(index).balancer_ops,
            *(
                port
                for r in range(1, MAX_REPLICAS + 1)
                for port in ReplicaPorts.fixed(index, r).listening(r).values()
            ),
        )
    }
    assert len(every) == 3 * (8 + 4 * MAX_REPLICAS)  # no two the same
    with pytest.raises(ValueError):
        ReplicaPorts.fixed(0, MAX_REPLICAS + 1)


def test_a_replicated_site_runs_numbered_services_behind_its_balancer(tmp_path: Path) -> None:
    site = replicated(tmp_path)
    assert site.services == (
        "storage",
        "balancer",
        "internal-api-1",
        "internal-api-2",
        "edge-proxy-1",
        "edge-proxy-2",
        "ssh-gateway-1",
        "ssh-gateway-2",
        "replicator",
    )
    assert site.http_url == "http://127.0.0.1:8080"  # the balancer's
    assert site.edge_proxy_env(2)["GEOGIT_HTTP_ADDRESS"] == "127.0.0.1:8100"
    assert site.internal_api_env(1)["GEOGIT_HTTP_ADDRESS"] == "127.0.0.1:8091"
    gateway = site.ssh_gateway_env(2)
    assert gateway["GEOGIT_SSH_ADDRESS"] == "127.0.0.1:2242"
    assert gateway["GEOGIT_OPS_ADDRESS"] == "127.0.0.1:8104"
    assert gateway["GEOGIT_HOST_KEYS_DIR"] == site.ssh_gateway_env(1)["GEOGIT_HOST_KEYS_DIR"]
    for env in (site.edge_proxy_env(1), gateway, site.replicator_env(), site.storage_env()):
        assert env["GEOGIT_INTERNAL_API_URL"] == "http://127.0.0.1:8081"  # through HAProxy
    assert site.replica_urls("ssh-gateway") == ["http://127.0.0.1:8094", "http://127.0.0.1:8104"]
    assert site.listening()["edge proxy 2"] == 8100
    with pytest.raises(SiteError, match="has no edge-proxy-3"):
        site.start_service("edge-proxy-3")
    with pytest.raises(SiteError, match="two or more"):
        replicated(tmp_path, replicas=1)


def test_an_unreplicated_site_is_unchanged(tmp_path: Path) -> None:
    site = Site("primary", "primary", tmp_path, SitePorts.fixed(0), DB, "k:1")
    assert site.services == SERVICES
    assert site.replica_urls("edge-proxy") == ["http://127.0.0.1:8080"]
    assert site.edge_proxy_env()["GEOGIT_HTTP_ADDRESS"] == "127.0.0.1:8080"


def test_haproxy_accepts_the_configuration(tmp_path: Path) -> None:
    site = replicated(tmp_path, replicas=3)
    config = site.balancer_config()
    assert "server ssh-gateway-3 127.0.0.1:2252 check port 8114" in config
    assert "server internal-api-1 127.0.0.1:8091 check" in config
    path = tmp_path / "haproxy.cfg"
    path.write_text(config)
    checked = subprocess.run(
        ["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_stack_json_keeps_the_replicas_for_dev_start(tmp_path: Path) -> None:
    site = replicated(tmp_path)
    stack = Stack.of([site], UserCredentials("root", "t", "p"), "127.0.0.1:19092")
    write_stack(tmp_path / "stack.json", stack)
    again = read_stack(tmp_path / "stack.json")
    store = CredentialStore(tmp_path / "secrets.json")
    (rebuilt,) = stack_sites(again, Supervisor(tmp_path), store)
    assert rebuilt.services == site.services
    assert rebuilt.replica_ports == site.replica_ports
    assert rebuilt.ports == site.ports


def test_up_takes_replicas() -> None:
    args = build_parser().parse_args(["dev", "up", "--replicas", "2"])
    assert args.replicas == 2
    assert build_parser().parse_args(["dev", "up"]).replicas == 1
