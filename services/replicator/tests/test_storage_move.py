"""A replica follows its project's repository storage move (`RepositoryMoved` from the
primary) on a real secondary with two storage shards: once the read model has the event, the
feed's sync puts the replica on the new shard, the registry says so, and the old shard's copy
is gone; until then the registry still names the old shard (which the freshness rule proxies
for)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from replicator_site import PrimaryRepository, Replication, SecondarySite, replication
from test_selective_sync import _set_feed_position
from test_worker import announced

from geogit.common.events import new_event
from geogit.common.proto.events.v1 import repository_pb2
from geogit.replicator.clients.storage import repository
from geogit.replicator.scheduler import Action
from geogit.storage.testing import git


@pytest.fixture(scope="module")
def two_shard_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecondarySite]:
    site = SecondarySite(tmp_path_factory.mktemp("two-shards"), extra_shards=("second",))
    with site.running() as running:
        yield running


def _moved(repo: PrimaryRepository, checksum: str) -> repository_pb2.RepositoryMoved:
    return repository_pb2.RepositoryMoved(
        project_id=repo.project_id,
        seq=repo.seq,
        storage_shard="second",
        old_storage_shard="default",
        disk_path=repo.disk_path,
        checksum=checksum,
    )


def _has_copy(site: SecondarySite, shard: str, repo: PrimaryRepository) -> bool:
    return (site.shards[shard].root / repo.disk_path / "HEAD").is_file()


async def _registry_shard(parts: Replication, repo: PrimaryRepository) -> str:
    replicable = await parts.api.replicable(repo.project_id)
    assert replicable is not None and replicable.registry is not None
    return replicable.registry.storage_shard


async def test_a_replica_follows_its_project_to_the_new_shard(
    two_shard_site: SecondarySite,
) -> None:
    site = two_shard_site
    repo, checksum = await announced(site)
    async with replication(site) as parts:
        assert await parts.worker(repo.project_id, Action.SYNC) is None
        assert await _registry_shard(parts, repo) == "default"

        # The primary's move: a new sequence, the same refs, another shard.
        repo.seq += 1
        site.primary.states[repo.project_id] = (repo.seq, checksum)
        moved = _moved(repo, checksum)
        await _set_feed_position(site, 0)
        await site.apply(moved)
        event = new_event(
            moved,
            aggregate_id=f"project-{repo.project_id}",
            aggregate_seq=repo.seq,
            origin_site="primary",
        )
        await parts.feed.handle(event, None)  # type: ignore[arg-type]

        async with asyncio.timeout(30):
            while await _registry_shard(parts, repo) != "second":  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        await parts.idle()
        replicable = await parts.api.replicable(repo.project_id)
        assert replicable is not None and replicable.registry is not None
        assert replicable.storage_shard == "second"
        assert (replicable.registry.state, replicable.registry.synced_seq) == ("synced", repo.seq)
        assert site.shards["second"].checksum(repository("second", repo.disk_path)) == checksum
        assert not _has_copy(site, "default", repo)


async def test_any_later_work_on_a_replica_left_on_the_old_shard_moves_it(
    two_shard_site: SecondarySite,
) -> None:
    """A replica whose move was not asked for (its event lost, or the replicator ran ahead of
    the read model and synced on the old shard): the registry names the old shard, so the next
    check of it, here a verification, moves it instead of verifying it where it is."""
    site = two_shard_site
    repo, checksum = await announced(site)
    async with replication(site) as parts:
        assert await parts.worker(repo.project_id, Action.SYNC) is None
        repo.seq += 1
        site.primary.states[repo.project_id] = (repo.seq, checksum)
        await site.apply(_moved(repo, checksum))
        # The registry still names the old shard: this replica is not the project's yet.
        assert await _registry_shard(parts, repo) == "default"
        assert await parts.worker(repo.project_id, Action.VERIFY) is None
        assert await _registry_shard(parts, repo) == "second"
        assert _has_copy(site, "second", repo) and not _has_copy(site, "default", repo)


async def test_an_old_replica_keeping_diverged_refs_stays(two_shard_site: SecondarySite) -> None:
    """Commits kept after a rollback (refs/geogit/diverged/...) are never dropped: the replica
    follows to the new shard, and the old copy holding them stays."""
    site = two_shard_site
    repo, checksum = await announced(site)
    async with replication(site) as parts:
        assert await parts.worker(repo.project_id, Action.SYNC) is None
        old = site.shards["default"].root / repo.disk_path
        kept = "refs/geogit/diverged/epoch-2/refs/heads/main"
        git("--git-dir", str(old), "update-ref", kept, "refs/heads/main")
        repo.seq += 1
        site.primary.states[repo.project_id] = (repo.seq, checksum)
        await site.apply(_moved(repo, checksum))
        assert await parts.worker(repo.project_id, Action.SYNC) is None
        assert await _registry_shard(parts, repo) == "second"
        assert _has_copy(site, "second", repo) and _has_copy(site, "default", repo)
        assert git("--git-dir", str(old), "rev-parse", kept).returncode == 0
