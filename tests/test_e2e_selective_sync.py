"""Selective sync end to end (GitLab Geo's): real processes, real git over HTTP, a primary
and a secondary limited to one namespace through PUT /api/v4/geo/sites/:id.

A project outside the selection is cloned through the secondary all the same — proxied to the
primary, for the reason the freshness rule gives — and the secondary's storage never holds it;
once the selection takes its namespace in, it replicates and the secondary serves it itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e import Account, Api, clone_url, git
from geo_support import internal, primary_and_secondary, route, served_locally, wait_until

from geogit.common.paths import hashed_repository_path
from geogit.common.tansu import TansuBroker
from geogit.devstack.site import Site
from geogit.storage.testing import make_work_tree

OUTSIDE = "outside this site's selective sync"


@pytest.fixture(scope="module")
def sites(
    tmp_path_factory: pytest.TempPathFactory, tansu: TansuBroker
) -> Iterator[tuple[Site, Site, Api]]:
    with primary_and_secondary(tmp_path_factory.mktemp("selective"), tansu.bootstrap) as sites:
        yield sites


def _pushed(api: Api, primary: Site, owner: Account, work: Path) -> tuple[dict[str, Any], str]:
    project = api.project(owner)
    tree = make_work_tree(work)
    git("push", "-q", clone_url(primary.http_url, project, owner), "main", cwd=tree)
    return project, git("rev-parse", "HEAD", cwd=tree).stdout.strip()


def _select(api: Api, site_id: int, *namespaces: Account) -> None:
    body = {
        "selective_sync_type": "namespaces",
        "selective_sync_namespace_ids": [owner.id for owner in namespaces],
    }
    site = api.call("PUT", f"/geo/sites/{site_id}", json=body)
    assert site["selective_sync_namespace_ids"] == sorted(owner.id for owner in namespaces)


def test_a_project_outside_the_selection_is_proxied_and_never_stored_until_selected(
    sites: tuple[Site, Site, Api], tmp_path: Path
) -> None:
    primary, secondary, api = sites
    site_id = next(s["id"] for s in api.call("GET", "/geo/sites") if s["name"] == secondary.name)
    inside, outside = api.account(), api.account()
    _select(api, site_id, inside)

    kept, kept_head = _pushed(api, primary, inside, tmp_path / "kept")
    left, left_head = _pushed(api, primary, outside, tmp_path / "left")
    replica = secondary.repositories_dir / hashed_repository_path(left["id"])
    wait_until(lambda: served_locally(secondary, kept, inside, kept_head), what="A's replica")
    # The secondary has heard of B's push (its read model is past it) and holds no replica.
    wait_until(
        lambda: internal(secondary, f"/geo/replicables/{left['id']}").json()["seq"] >= 2,
        what="the secondary to hear of B's push",
    )
    assert internal(secondary, f"/geo/replicables/{left['id']}").json()["selected"] is False
    assert route(secondary, left, outside) == "proxy"
    clone = tmp_path / "through-secondary"
    git("clone", "-q", clone_url(secondary.http_url, left, outside), str(clone))
    assert git("rev-parse", "HEAD", cwd=clone).stdout.strip() == left_head
    edge_log = secondary.supervisor.log_path(secondary.process_name("edge-proxy"))
    wait_until(lambda: OUTSIDE in edge_log.read_text(), what="the proxy's reason in the log")
    assert not replica.exists()
    assert internal(secondary, f"/geo/replicables/{left['id']}").json()["registry"] is None
    # The primary's status of the site counts the selected projects only, as GitLab's does.
    assert api.call("GET", f"/geo/sites/{site_id}/status")["repositories_count"] == 1

    # Into the selection: the secondary's replicator backfills, B replicates, and is local.
    _select(api, site_id, inside, outside)
    wait_until(lambda: served_locally(secondary, left, outside, left_head), what="B's replica")
    assert replica.exists()
    local = tmp_path / "local"
    git("clone", "-q", clone_url(secondary.http_url, left, outside), str(local))
    assert git("rev-parse", "HEAD", cwd=local).stdout.strip() == left_head
    assert route(secondary, left, outside) == "local"
    assert api.call("GET", f"/geo/sites/{site_id}/status")["repositories_count"] == 2
