"""A repository storage move end to end: a primary and a secondary, each with two storage
shards, every service a real process, git over HTTP through the front doors.

While one loop pushes through the primary and another clones through the secondary, the admin
moves the project to the other shard (POST /projects/:id/repository_storage_moves): no push
or clone fails, the primary's copy is on the new shard only, and the secondary's replica
follows — its registry names the new shard, the old shard's copy is gone, and it serves the
latest push from there itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e import Account, Api, clone_url, git
from geo_support import primary_and_secondary, registry, served_locally, wait_until

from geogit.common.paths import hashed_repository_path
from geogit.common.tansu import TansuBroker
from geogit.devstack.site import Site
from geogit.storage.testing import commit_all, make_work_tree

MOVES = {"GEOGIT_STORAGE_MOVE_REMOVAL_DELAY_SECONDS": "5"}


@pytest.fixture(scope="module")
def sites(
    tmp_path_factory: pytest.TempPathFactory, tansu: TansuBroker
) -> Iterator[tuple[Site, Site, Api]]:
    base = tmp_path_factory.mktemp("moves")
    with primary_and_secondary(
        base, tansu.bootstrap, extra_env=MOVES, extra_shards=("second",)
    ) as sites:
        yield sites


def _has_copy(site: Site, shard: str, project: dict[str, Any]) -> bool:
    path = site.shard_repositories_dir(shard) / hashed_repository_path(project["id"])
    return (path / "HEAD").is_file()


class Loops:
    """Pushes through the primary and clones through the secondary until stopped; the first
    failure of either is kept, and the loop stops."""

    def __init__(
        self, primary: Site, secondary: Site, project: dict[str, Any], owner: Account, work: Path
    ) -> None:
        self.push_url = clone_url(primary.http_url, project, owner)
        self.clone_url = clone_url(secondary.http_url, project, owner)
        self.tree, self.work = work / "tree", work
        self.pushed: list[str] = []
        self.clones = 0
        self.failures: list[BaseException] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._guard, args=(f,)) for f in (self._push, self._clone)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def _guard(self, loop: Any) -> None:
        try:
            loop()
        except BaseException as exc:
            self.failures.append(exc)

    def _push(self) -> None:
        while not self._stop.is_set():
            commit = commit_all(self.tree, f"push {len(self.pushed)}")
            git("push", "-q", self.push_url, "main", cwd=self.tree)
            self.pushed.append(commit)

    def _clone(self) -> None:
        while not self._stop.is_set():
            into = self.work / f"clone-{self.clones}"
            git("clone", "-q", self.clone_url, str(into))
            self.clones += 1


def test_a_move_under_pushes_and_clones_and_the_secondary_follows(
    sites: tuple[Site, Site, Api], tmp_path: Path
) -> None:
    primary, secondary, api = sites
    owner = api.account()
    project = api.project(owner)
    make_work_tree(tmp_path / "tree")
    git("push", "-q", clone_url(primary.http_url, project, owner), "main", cwd=tmp_path / "tree")
    wait_until(lambda: served_locally(secondary, project, owner), what="the first replica")
    assert registry(secondary, project["id"])["storage_shard"] == "default"  # type: ignore[index]

    loops = Loops(primary, secondary, project, owner, tmp_path)
    loops.start()
    try:
        wait_until(lambda: len(loops.pushed) >= 2 or bool(loops.failures), what="pushes")
        scheduled = api.call(
            "POST",
            f"/projects/{project['id']}/repository_storage_moves",
            json={"destination_storage_name": "second"},
        )
        assert (scheduled["source_storage_name"], scheduled["state"]) == ("default", "scheduled")
        path = f"/projects/{project['id']}/repository_storage_moves/{scheduled['id']}"
        wait_until(
            lambda: api.call("GET", path)["state"] in ("finished", "failed", "cleanup_failed"),
            what="the move to end",
        )
        after = len(loops.pushed)
        wait_until(lambda: len(loops.pushed) >= after + 2 or bool(loops.failures), what="more")
    finally:
        loops.stop()
    assert loops.failures == []
    assert api.call("GET", path)["state"] == "finished"
    assert loops.clones > 0
    assert api.call("GET", f"/projects/{project['id']}")["repository_storage"] == "second"
    assert _has_copy(primary, "second", project) and not _has_copy(primary, "default", project)

    head = loops.pushed[-1]
    wait_until(
        lambda: served_locally(secondary, project, owner, head),
        what="the secondary to serve the last push itself",
    )
    entry = registry(secondary, project["id"])
    assert entry is not None and entry["storage_shard"] == "second"
    assert _has_copy(secondary, "second", project)
    assert not _has_copy(secondary, "default", project)
