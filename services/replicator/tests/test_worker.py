"""The replica worker against a real secondary: its storage fetches from a primary over smart
HTTP, its internal API keeps the registry in PostgreSQL. Nothing of the replicator is mocked;
the primary (another site) is a small stand-in serving real Git."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from replicator_site import PrimaryRepository, Replication, SecondarySite, replication

from geogit.common.events import new_event, timestamp
from geogit.common.internal_api import RegistryEntry
from geogit.common.proto.events.v1 import repository_pb2
from geogit.replicator.backfill import needed
from geogit.replicator.clients.storage import repository
from geogit.replicator.scheduler import Action, Retry, backoff_ceiling
from geogit.replicator.sync_state import Hint
from geogit.replicator.worker import UNKNOWN_PROJECT_RETRIES
from geogit.storage.testing import git


def replica_checksum(site: SecondarySite, repo: PrimaryRepository) -> str:
    return site.storage.checksum(repository("default", repo.disk_path))


async def announced(site: SecondarySite) -> tuple[PrimaryRepository, str]:
    """A project with one commit whose push the site has heard of; its checksum."""
    repo = await site.create()
    seq, checksum = site.primary.states[repo.project_id]
    await site.announce_push(repo, seq, checksum)
    return repo, checksum


async def registry(parts: Replication, repo: PrimaryRepository) -> RegistryEntry | None:
    replicable = await parts.api.replicable(repo.project_id)
    assert replicable is not None
    return replicable.registry


async def test_a_sync_fetches_every_ref_and_counts_the_replica_synced(
    site: SecondarySite,
) -> None:
    repo = await site.create(commits=2)
    seq, checksum = site.primary.states[repo.project_id]
    await site.announce_push(repo, seq, checksum)
    async with replication(site) as parts:
        assert await parts.worker(repo.project_id, Action.SYNC) is None
        entry = await registry(parts, repo)
        assert entry is not None
        assert (entry.state, entry.synced_seq, entry.checksum) == ("synced", seq, checksum)
        assert entry.verification_state == "verified"
        assert replica_checksum(site, repo) == checksum
        assert parts.reports.pending == 2  # ReplicaSynced, ReplicaVerified
        assert parts.sample("geogit_replication_syncs_total", outcome="synced") == 1
        # Synced and current: another request fetches nothing.
        fetches = site.primary.fetches
        assert await parts.worker(repo.project_id, Action.SYNC) is None
        assert site.primary.fetches == fetches


async def test_lag_is_observed_per_push_brought_and_never_for_a_resync(
    site: SecondarySite,
) -> None:
    repo = await site.create()

    async def announce(seq: int, checksum: str) -> None:
        await site.apply(
            repository_pb2.RepositoryUpdated(
                project_id=repo.project_id,
                seq=seq,
                checksum=checksum,
                pushed_at=timestamp(datetime.now(UTC)),
            )
        )

    await announce(*site.primary.states[repo.project_id])
    async with replication(site) as parts:
        assert await parts.worker(repo.project_id, Action.SYNC) is None
        assert parts.sample("geogit_replication_lag_seconds_count") == 1
        # A resync of a current replica, and a re-check, bring no push: no lag sample.
        assert await parts.worker(repo.project_id, Action.RESYNC) is None
        assert await parts.worker(repo.project_id, Action.VERIFY) is None
        assert parts.sample("geogit_replication_syncs_total", outcome="synced") == 2
        assert parts.sample("geogit_replication_lag_seconds_count") == 1
        await announce(*await site.push(repo))
        assert await parts.worker(repo.project_id, Action.SYNC) is None
        assert parts.sample("geogit_replication_lag_seconds_count") == 2


async def test_the_registry_says_syncing_while_the_fetch_runs(site: SecondarySite) -> None:
    """The `syncing` mark is saved while the fetch runs (off the sync's path), and lands before
    the outcome: held mid-fetch, the registry says syncing; afterwards, synced."""
    repo, checksum = await announced(site)
    async with replication(site) as parts:
        site.primary.gate.clear()
        try:
            work = asyncio.ensure_future(parts.worker(repo.project_id, Action.SYNC))
            assert await asyncio.to_thread(site.primary.fetch_held.wait, 30)
            # The mark runs beside the fetch, so it may trail the fetch's start a little.
            for _ in range(1500):  # 30 s
                entry = await registry(parts, repo)
                if entry is not None and entry.state == "syncing":
                    break
                await asyncio.sleep(0.02)
            assert entry is not None and entry.state == "syncing"
        finally:
            site.primary.gate.set()
        assert await work is None
        entry = await registry(parts, repo)
        assert entry is not None and (entry.state, entry.checksum) == ("synced", checksum)


async def test_an_event_ahead_of_the_read_model_is_the_target(site: SecondarySite) -> None:
    repo = await site.create()
    seq, checksum = await site.push(repo)  # the read model has not heard of it
    async with replication(site) as parts:
        parts.states.hint(repo.project_id, Hint(seq, checksum, None))
        assert await parts.worker(repo.project_id, Action.SYNC) is None
        entry = await registry(parts, repo)
        assert entry is not None and (entry.synced_seq, entry.checksum) == (seq, checksum)


async def test_a_mismatch_settles_at_what_the_primary_has_now(site: SecondarySite) -> None:
    repo = await site.create()
    announced = site.primary.states[repo.project_id]
    await site.announce_push(repo, *announced)
    seq, checksum = await site.push(repo)  # landed between the announcement and the fetch
    async with replication(site) as parts:
        assert await parts.worker(repo.project_id, Action.SYNC) is None
        entry = await registry(parts, repo)
        assert entry is not None and (entry.state, entry.synced_seq) == ("synced", seq)
        assert replica_checksum(site, repo) == checksum
        # The push it settled at is the one it brought: its lag counts, timed from that push.
        assert parts.sample("geogit_replication_lag_seconds_count") == 1


async def test_an_unsettled_mismatch_fails_backs_off_and_recovers(site: SecondarySite) -> None:
    repo = await site.create()
    seq, checksum = site.primary.states[repo.project_id]
    # What the site was told is not what the fetch brings, nor what the primary answers now.
    await site.announce_push(repo, seq, "d" * 40)
    site.primary.states[repo.project_id] = (seq + 5, "e" * 40)
    async with replication(site, retry_base=10.0, retry_max=100.0) as parts:
        for attempt in (1, 2):
            before = datetime.now(UTC)
            assert await parts.worker(repo.project_id, Action.SYNC) == Retry(attempt)
            entry = await registry(parts, repo)
            assert entry is not None and entry.state == "failed"
            assert entry.retry_count == attempt
            assert f"{checksum} != primary's {'d' * 40}" in entry.last_error
            assert entry.next_retry_at is not None
            wait = entry.next_retry_at - before
            assert wait >= timedelta(seconds=backoff_ceiling(10.0, 100.0, attempt))
            replicable = await parts.api.replicable(repo.project_id)
            assert replicable is not None
            assert needed(replicable, timedelta(hours=1), datetime.now(UTC)) is None
        assert parts.sample("geogit_replication_syncs_total", outcome="failed") == 2
        site.primary.states[repo.project_id] = (seq, checksum)
        assert await parts.worker(repo.project_id, Action.SYNC) is None
        entry = await registry(parts, repo)
        assert entry is not None and (entry.state, entry.retry_count) == ("synced", 0)


async def test_a_verification_mismatch_resyncs(site: SecondarySite) -> None:
    repo, checksum = await announced(site)
    async with replication(site) as parts:
        await parts.worker(repo.project_id, Action.SYNC)
        replica = site.replica_path(repo)
        head = (replica / "refs" / "heads" / "main").read_text().strip()
        (replica / "refs" / "heads" / "stray").write_text(head + "\n")
        assert replica_checksum(site, repo) != checksum
        assert await parts.worker(repo.project_id, Action.VERIFY) is None
        assert parts.sample("geogit_replication_verifications_total", result="mismatch") == 1
        assert replica_checksum(site, repo) == checksum  # the fetch pruned the stray ref
        entry = await registry(parts, repo)
        assert entry is not None and entry.state == "synced"


def _commit_storage_took_but_never_recorded(replica: Path) -> str:
    """A commit on main that only this replica has: a push a fenced primary's storage took
    after its post-receive could no longer be recorded."""
    parent, tree = rev_parse(replica, "refs/heads/main"), rev_parse(replica, "main^{tree}")
    identity = ("-c", "user.name=t", "-c", "user.email=t@x")
    commit = git(
        "-C", str(replica), *identity, "commit-tree", tree, "-p", parent, "-m", "unrecorded"
    )
    oid = commit.stdout.decode().strip()
    git("-C", str(replica), "update-ref", "refs/heads/main", oid)
    return oid


def rev_parse(repo: Path, rev: str) -> str:
    return git("-C", str(repo), "rev-parse", rev).stdout.decode().strip()


async def test_an_adopted_replica_that_diverged_keeps_what_the_primary_lacks(
    site: SecondarySite,
) -> None:
    repo, checksum = await announced(site)
    async with replication(site) as parts:
        await parts.worker(repo.project_id, Action.SYNC)
        entry = await registry(parts, repo)
        assert entry is not None
        # As a demoted primary's follow leaves it: synced, unverified, diverged epoch set.
        adopted = entry.model_copy(
            update={"verified_at": None, "verification_state": "pending", "diverged_epoch": 3}
        )
        await parts.api.save(repo.project_id, adopted)
        unrecorded = _commit_storage_took_but_never_recorded(site.replica_path(repo))
        assert await parts.worker(repo.project_id, Action.VERIFY) is None
        assert parts.sample("geogit_replication_verifications_total", result="mismatch") == 1
        replica = site.replica_path(repo)
        assert rev_parse(replica, "refs/geogit/diverged/epoch-3/refs/heads/main") == unrecorded
        assert replica_checksum(site, repo) == checksum
        assert parts.sample("geogit_replication_diverged_refs_total") == 1
        entry = await registry(parts, repo)
        assert entry is not None and (entry.state, entry.diverged_epoch) == ("synced", 0)


async def test_a_verified_replica_has_nothing_left_to_diverge(site: SecondarySite) -> None:
    repo, _ = await announced(site)
    async with replication(site) as parts:
        await parts.worker(repo.project_id, Action.SYNC)
        entry = await registry(parts, repo)
        assert entry is not None
        await parts.api.save(
            repo.project_id,
            entry.model_copy(update={"verified_at": None, "diverged_epoch": 3}),
        )
        assert await parts.worker(repo.project_id, Action.VERIFY) is None
        entry = await registry(parts, repo)
        assert entry is not None
        assert (entry.verification_state, entry.diverged_epoch) == ("verified", 0)


async def test_a_delete_removes_the_replica_and_its_registry_row(site: SecondarySite) -> None:
    repo = await site.create()
    await site.announce_push(repo, *site.primary.states[repo.project_id])
    async with replication(site) as parts:
        await parts.worker(repo.project_id, Action.SYNC)
        assert site.replica_path(repo).is_dir()
        await site.announce_deleted(repo)
        assert await parts.worker(repo.project_id, Action.DELETE) is None
        assert not site.replica_path(repo).exists()
        # Nothing known of a deleted project stays behind (hint, HEAD, attempts).
        assert parts.states.get(repo.project_id) is None
        async for page in parts.api.pages():
            assert repo.project_id not in page.orphans
        # A second delete (a redelivered event) finds nothing to remove, and is fine.
        assert await parts.worker(repo.project_id, Action.DELETE) is None
        assert parts.sample("geogit_replication_deletions_total") == 2
        assert parts.states.get(repo.project_id) is None


async def test_a_project_the_read_model_lacks_is_retried_then_left(site: SecondarySite) -> None:
    async with replication(site) as parts:
        outcomes = [await parts.worker(999_999, Action.SYNC) for _ in range(6)]
        assert parts.states.get(999_999) is None
    assert outcomes == [Retry(n) for n in range(1, UNKNOWN_PROJECT_RETRIES + 1)] + [None]


# Coalescing: any ordering of pushes, announcements and deletes ends in the right replica ---

Step = tuple[str, bool]  # ("push", whether the read model applied it too) or ("pause", _)
steps = st.lists(
    st.tuples(st.sampled_from(["push", "pause"]), st.booleans()), min_size=1, max_size=6
)


async def _events(site: SecondarySite, script: list[Step], delete: bool) -> None:
    repo = await site.create(commits=0)
    pushes = 0
    async with replication(site) as parts:
        for kind, read_model_too in script:
            if kind == "pause":
                await asyncio.sleep(0.05)  # let a sync start, or finish
                continue
            seq, checksum = await site.push(repo)
            pushes += 1
            payload = repository_pb2.RepositoryUpdated(
                project_id=repo.project_id, seq=seq, checksum=checksum
            )
            if read_model_too:
                await site.apply(payload)
            event = new_event(
                payload,
                aggregate_id=f"project-{repo.project_id}",
                aggregate_seq=seq,
                origin_site="primary",
            )
            await parts.feed.handle(event, None)  # type: ignore[arg-type]
        if delete:
            await site.announce_deleted(repo)
            gone = repository_pb2.RepositoryDeleted(project_id=repo.project_id)
            event = new_event(
                gone,
                aggregate_id=f"project-{repo.project_id}",
                aggregate_seq=repo.seq + 1,
                origin_site="primary",
            )
            await parts.feed.handle(event, None)  # type: ignore[arg-type]
        await parts.idle()
        syncs = parts.sample("geogit_replication_syncs_total", outcome="synced")
        failures = parts.sample("geogit_replication_syncs_total", outcome="failed")
        assert syncs + failures <= max(pushes, 1)
        if delete:
            assert not site.replica_path(repo).exists()
            assert await parts.api.replicable(repo.project_id) is None
            return
        if not pushes:
            return
        entry = await registry(parts, repo)
        assert entry is not None and entry.state == "synced"
        assert entry.synced_seq == repo.seq
        assert replica_checksum(site, repo) == site.primary.states[repo.project_id][1]


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(script=steps, delete=st.booleans())
def test_events_in_any_order_leave_the_replica_equal_to_the_primary(
    site: SecondarySite, script: list[Step], delete: bool
) -> None:
    asyncio.run(_events(site, script, delete))
