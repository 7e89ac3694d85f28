"""New projects are placed on storage shards by weight (GEOGIT_STORAGE_WEIGHTS, GitLab's
repository_storages_weighted): the draw follows the weights, a shard of weight 0 takes nothing,
bad weights stop the start-up with what is wrong, and through the real API with two real
storage shards every new repository is created on the shard its project names."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from internal_api_support import Api, Database, ServerInfo, make_settings, serve_in_thread

from geogit.common.net import free_port
from geogit.common.paths import hashed_repository_path
from geogit.internal_api.app import create_app
from geogit.internal_api.repositories.placement import choose_shard
from geogit.storage.testing import StorageProcess


def test_the_draw_follows_the_weights_and_never_picks_weight_zero() -> None:
    draw = random.Random(12)
    picks = Counter(choose_shard({"a": 3, "b": 1, "c": 0}, "a", draw) for _ in range(4000))
    assert set(picks) == {"a", "b"}
    assert 0.72 < picks["a"] / 4000 < 0.78


def test_without_weights_every_project_goes_to_the_default_storage() -> None:
    assert {choose_shard({}, "nfs-1") for _ in range(50)} == {"nfs-1"}


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"default": 1, "nfs-9": 1}, "names shards not in GEOGIT_STORAGES: nfs-9"),
        ({"default": -1}, "negative weight for default"),
        ({"default": 0}, "every weight is 0"),
    ],
)
def test_bad_weights_stop_the_start_up(
    database: Database, storage: StorageProcess, weights: dict[str, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        create_app(make_settings(database, storage, storage_weights=weights))


@pytest.fixture(scope="module")
def second_shard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageProcess]:
    # No pushes reach it in these tests, so its internal API address is never called.
    shard = StorageProcess(
        tmp_path_factory.mktemp("second") / "repositories", "http://127.0.0.1:9", name="second"
    )
    shard.start()
    yield shard
    shard.stop()


async def test_new_repositories_are_created_on_the_weighted_shard(
    database: Database,
    storage: StorageProcess,
    second_shard: StorageProcess,
    admin_token: str,
    server: ServerInfo,
) -> None:
    settings = make_settings(
        database,
        storage,
        http_address=f"127.0.0.1:{free_port()}",
        storages={"default": storage.address, "second": second_shard.address},
        storage_weights={"default": 0, "second": 1},
    )
    with serve_in_thread(settings) as weighted:
        async with httpx.AsyncClient(base_url=weighted.url, timeout=60) as client:
            api = Api(client, admin_token)
            owner = await api.user("placed")
            projects = [await api.project(owner) for _ in range(5)]
    for project in projects:
        assert project["repository_storage"] == "second"
        disk_path = hashed_repository_path(project["id"])
        assert (second_shard.root / disk_path / "HEAD").is_file()
        assert not (storage.root / disk_path).exists()
