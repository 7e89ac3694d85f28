"""The documented fixed ports and the shape of .run/stack.json (DESIGN §6)."""

from __future__ import annotations

import json
import socket
import stat
from pathlib import Path

import pytest

from geogit.devstack.credentials import UserCredentials
from geogit.devstack.ports import SitePorts, busy_ports
from geogit.devstack.site import Site
from geogit.devstack.stack import Stack, StackDemo, read_stack, write_stack


def test_fixed_ports_are_the_documented_ones() -> None:
    assert SitePorts.fixed(0) == SitePorts(
        http=8080,
        internal_api=8081,
        storage=8082,
        storage_ops=8083,
        ssh=2222,
        ssh_ops=8084,
        replicator_ops=8085,
        balancer_ops=8086,
    )
    assert SitePorts.fixed(2) == SitePorts(
        http=8280,
        internal_api=8281,
        storage=8282,
        storage_ops=8283,
        ssh=2422,
        ssh_ops=8284,
        replicator_ops=8285,
        balancer_ops=8286,
    )


def test_every_site_listens_on_its_replicator_ops_port() -> None:
    assert SitePorts.fixed(0).listening()["replicator ops"] == 8085
    assert SitePorts.fixed(1).listening()["replicator ops"] == 8185
    assert len(set(SitePorts.fixed(0).listening().values())) == 7


def test_busy_ports_names_the_taken_one() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        free = SitePorts.free().http
        assert busy_ports({"edge proxy": taken, "other": free}) == {"edge proxy": taken}


def test_stack_file_has_the_shape_design_promises(tmp_path: Path) -> None:
    db = "postgresql+asyncpg://postgres@127.0.0.1:15432"
    sites = [
        Site("primary", "primary", tmp_path, SitePorts.fixed(0), f"{db}/geogit_primary", "k:1"),
        Site(
            "secondary-1",
            "secondary",
            tmp_path,
            SitePorts.fixed(1),
            f"{db}/g_s_1",
            "k:1",
            primary_url="http://127.0.0.1:8080",
        ),
    ]
    stack = Stack.of(sites, UserCredentials("root", "glpat-xyz"), "127.0.0.1:19092")
    path = tmp_path / "stack.json"

    write_stack(path, stack)

    raw = json.loads(path.read_text())
    assert set(raw) == {"sites", "admin", "kafka_bootstrap"}
    assert raw["admin"] == {"username": "root", "token": "glpat-xyz"}
    assert raw["kafka_bootstrap"] == "127.0.0.1:19092"
    primary, secondary = raw["sites"]
    assert {
        key: primary[key]
        for key in ("name", "role", "http_url", "ssh_host", "ssh_port", "internal_api_url")
    } == {
        "name": "primary",
        "role": "primary",
        "http_url": "http://127.0.0.1:8080",
        "ssh_host": "127.0.0.1",
        "ssh_port": 2222,
        "internal_api_url": "http://127.0.0.1:8081",
    }
    assert primary["storage_address"] == "127.0.0.1:8082"
    assert (secondary["name"], secondary["role"], secondary["http_url"], secondary["ssh_port"]) == (
        "secondary-1",
        "secondary",
        "http://127.0.0.1:8180",
        2322,
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds tokens
    assert read_stack(path) == stack


def test_demo_section_is_added_when_present(tmp_path: Path) -> None:
    site = Site("primary", "primary", tmp_path, SitePorts.fixed(0), "postgresql://x/y", "k:1")
    stack = Stack.of([site], UserCredentials("root", "t"), "k:1")
    stack.demo = StackDemo(username="alice", token="a", project="alice/demo", clone_url="u")
    write_stack(tmp_path / "stack.json", stack)
    assert json.loads((tmp_path / "stack.json").read_text())["demo"]["project"] == "alice/demo"


def test_the_primary_is_the_site_recorded_as_primary(tmp_path: Path) -> None:
    sites = [
        Site("primary", "secondary", tmp_path, SitePorts.fixed(0), "postgresql://x/p", "k:1",
             primary_url="http://127.0.0.1:8180"),
        Site("secondary-1", "primary", tmp_path, SitePorts.fixed(1), "postgresql://x/s", "k:1"),
    ]  # fmt: skip
    stack = Stack.of(sites, UserCredentials("root", "t"), "k:1")
    assert stack.primary().name == "secondary-1"
    stack.sites[1].role = "secondary"
    with pytest.raises(KeyError):
        stack.primary()
