"""One project's replication work: sync, verify or delete its replica (DESIGN §5).

A sync aims at the newest state this site knows of: the read model's sequence and checksum,
or a newer one announced by a repository event the read model has not applied yet. Storage
fetches every ref from the primary's front door (smart HTTP with a replication Geo token),
atomically, so a sync cut off — the replicator killed, the primary gone — leaves the replica
as it was. The replica counts as synced at a sequence only if its refs checksum equals the
primary's for it. When it matches neither the target nor what the primary reports now, the
sync failed: it is retried and the failure reported.

HEAD follows the project's default branch with a local SetHead, not by asking the primary on
every sync (two more round trips to the other site): after every sync or check, from the
newest `ProjectUpdated` this replicator has seen, else the read model.

A repository storage move on the primary (`RepositoryMoved`) puts the project on another shard
in the read model; the registry says which shard the replica is on. A replica on another shard
than its project's is re-synced into the project's shard — seeded first from the local copy,
storage to storage, so only what it lacks crosses to the primary — and, once synced there,
removed from the old one. Until then the freshness rule proxies its reads.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import grpc

from geogit.common.events import timestamp
from geogit.common.geo import GEO_TOKEN_HEADER, GeoSigner
from geogit.common.internal_api import RegistryEntry, Replicable
from geogit.common.internal_api_client import InternalApiError
from geogit.common.paths import hashed_repository_path
from geogit.common.primary_client import PrimaryClient, PrimaryUnavailable
from geogit.common.proto.events.v1 import replication_pb2
from geogit.common.proto.storage.v1.shared_pb2 import Repository
from geogit.common.repository_client import StorageError
from geogit.replicator.clients.internal_api import InternalApiClient
from geogit.replicator.clients.storage import StorageClient, repository
from geogit.replicator.metrics import ReplicatorMetrics
from geogit.replicator.reports import Reports
from geogit.replicator.scheduler import Action, Retry, backoff_ceiling
from geogit.replicator.site import SiteRole
from geogit.replicator.sync_state import Hint, SyncStates

log = logging.getLogger(__name__)

# Where storage keeps what a rollback must not drop (refs/geogit/diverged/epoch-<n>/...).
KEPT_REFS = "refs/geogit/"
# A sync requested for a project the read model does not know yet (the event outran it) is
# retried this many times before it is left to backfill.
UNKNOWN_PROJECT_RETRIES = 5


def _now() -> datetime:
    return datetime.now(UTC)


def _diverged_prefix(epoch: int) -> str:
    """Where a re-sync after a rollback keeps what the new primary lacks; none otherwise."""
    return f"refs/geogit/diverged/epoch-{epoch}/" if epoch else ""


def _moved_from(replicable: Replicable, registry: RegistryEntry) -> str:
    """The shard the replica is on when a storage move put its project on another; else ""."""
    shard = registry.storage_shard
    return shard if shard and shard != replicable.storage_shard else ""


class ReplicaWorker:
    def __init__(
        self,
        api: InternalApiClient,
        storage: StorageClient,
        reports: Reports,
        primary: PrimaryClient,
        site: SiteRole,
        geo_signer: GeoSigner,
        retry_base: float,
        retry_max: float,
        states: SyncStates,
        metrics: ReplicatorMetrics,
    ) -> None:
        self._api = api
        self._storage = storage
        self._reports = reports
        self._primary = primary
        self._site = site
        self._geo_signer = geo_signer
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._states = states
        self._metrics = metrics

    async def __call__(self, project_id: int, action: Action) -> Retry | None:
        try:
            outcome = await self._work(project_id, action)
        except InternalApiError as exc:
            state = self._states[project_id]
            state.api_failures += 1
            log.warning(
                "internal API unavailable", extra={"project_id": project_id, "error": str(exc)}
            )
            self._metrics.failures.labels("internal_api").inc()
            return Retry(state.api_failures)
        if (known := self._states.get(project_id)) is not None:
            known.api_failures = 0
        return outcome

    async def _work(self, project_id: int, action: Action) -> Retry | None:
        if not self._site.replicating:
            return None  # this site is the primary now: its repositories are the originals
        if action is Action.DELETE:
            await self._delete(project_id)
            return None
        replicable = await self._api.replicable(project_id)
        if replicable is None:
            return self._not_known_yet(project_id)
        self._states[project_id].unknown_attempts = 0
        if not replicable.selected:
            await self._unselected(replicable)
            return None
        registry = replicable.registry or RegistryEntry()
        if (
            action is Action.VERIFY
            and registry.state == "synced"
            and not _moved_from(replicable, registry)
        ):
            return await self._verify(replicable, registry)
        return await self._sync(replicable, registry, forced=action is Action.RESYNC)

    def _not_known_yet(self, project_id: int) -> Retry | None:
        """A deleted project's events may still arrive, and a new one's may come before the
        read model has it: try again a few times, then leave it to backfill."""
        state = self._states[project_id]
        state.unknown_attempts += 1
        if state.unknown_attempts > UNKNOWN_PROJECT_RETRIES:
            self._states.forget(project_id)
            return None
        return Retry(state.unknown_attempts)

    # Sync ----------------------------------------------------------------------------------

    def _target(self, replicable: Replicable) -> Hint:
        read_model = Hint(replicable.seq, replicable.checksum, replicable.pushed_at)
        hint = self._states[replicable.project_id].hint
        return hint if hint is not None and hint.seq > read_model.seq else read_model

    def _source(self, replicable: Replicable) -> tuple[str, dict[str, str]]:
        token = self._geo_signer.token("replication")
        primary = self._site.primary_url.rstrip("/")
        return f"{primary}/{replicable.full_path}.git", {GEO_TOKEN_HEADER: token}

    async def _sync(
        self, replicable: Replicable, registry: RegistryEntry, *, forced: bool = False
    ) -> Retry | None:
        target = self._target(replicable)
        moved_from = _moved_from(replicable, registry)
        current = registry.state == "synced" and registry.synced_seq >= target.seq
        if not forced and not moved_from and current:
            await self._follow_head(replicable)
            return None
        project_id = replicable.project_id
        await self._api.save(project_id, registry.model_copy(update={"state": "syncing"}))
        url, headers = self._source(replicable)
        replica = repository(replicable.storage_shard, replicable.disk_path)
        if moved_from:
            await self._seed(replica, repository(moved_from, replicable.disk_path))
        started = time.monotonic()
        try:
            checksum, kept = await self._storage.replicate_over_http(
                replica,
                url,
                headers,
                keep_diverged_prefix=_diverged_prefix(registry.diverged_epoch),
            )
        except StorageError as exc:
            return await self._failed(replicable, registry, target, f"fetch failed: {exc}")
        finally:
            self._metrics.sync_seconds.observe(time.monotonic() - started)
        if checksum != target.checksum:
            settled = await self._settle(project_id, checksum)
            if settled is None:
                message = f"checksum {checksum} != primary's {target.checksum}"
                return await self._failed(replicable, registry, target, message)
            target = settled
        if kept:
            self._report_diverged(replicable.project_id, registry.diverged_epoch, kept)
        await self._follow_head(replicable)
        await self._synced(replicable, target, checksum, previous_seq=registry.synced_seq)
        if moved_from:
            await self._remove_moved(replicable, moved_from)
        return None

    async def _seed(self, replica: Repository, local: Repository) -> None:
        """A replica following a storage move starts as a copy of the one already here: the
        fetch from the primary then brings only what that lacks."""
        try:
            await self._storage.copy_within_site(replica, local)
        except StorageError as exc:  # the fetch from the primary makes it whole anyway
            log.info("replica not seeded from its old shard", extra={"error": str(exc)})

    async def _remove_moved(self, replicable: Replicable, old_shard: str) -> None:
        """The old shard's copy goes — unless it keeps commits a new primary lacked (DESIGN
        §10) under storage's own refs, which no copy between shards carries."""
        old = repository(old_shard, replicable.disk_path)
        try:
            if await self._storage.has_refs(old, KEPT_REFS):
                log.warning(
                    "replica kept on its old shard: it holds diverged refs",
                    extra={"project_id": replicable.project_id, "shard": old_shard},
                )
                return
            await self._storage.remove_repository(old)
        except StorageError as exc:
            if exc.code != grpc.StatusCode.NOT_FOUND:
                log.warning(
                    "replica left on its old shard",
                    extra={"project_id": replicable.project_id, "error": str(exc)},
                )
                return
        log.info(
            "replica moved",
            extra={"project_id": replicable.project_id, "to": replicable.storage_shard},
        )

    def _report_diverged(
        self, project_id: int, epoch: int, kept: list[replication_pb2.DivergedRef]
    ) -> None:
        log.warning(
            "commits the new primary lacks were kept",
            extra={"project_id": project_id, "epoch": epoch, "refs": len(kept)},
        )
        self._metrics.diverged_refs.inc(len(kept))
        self._reports.publish(
            project_id,
            replication_pb2.ReplicaDiverged(
                site=self._reports.site, project_id=project_id, epoch=epoch, refs=kept
            ),
        )

    async def _settle(self, project_id: int, checksum: str) -> Hint | None:
        """The primary's push the replica now equals (one landed while this site's view was
        behind), with its time for the lag; None if it does not, or the primary cannot say."""
        try:
            state = await self._primary.repository_state(project_id)
        except PrimaryUnavailable as exc:
            log.info("primary cannot settle a checksum", extra={"error": str(exc)})
            return None
        return Hint(state.seq, checksum, state.pushed_at) if state.checksum == checksum else None

    async def _follow_head(self, replicable: Replicable) -> None:
        state = self._states[replicable.project_id]
        branch = replicable.default_branch if state.branch is None else state.branch
        if state.head == branch:
            return
        try:
            await self._storage.set_head(
                repository(replicable.storage_shard, replicable.disk_path), branch
            )
        except StorageError as exc:  # storage unreachable: the next sync or check tries again
            log.info("HEAD not moved", extra={"branch": branch, "error": str(exc)})
            return
        state.head = branch

    async def _synced(
        self, replicable: Replicable, target: Hint, checksum: str, *, previous_seq: int
    ) -> None:
        """Record the replica as current. Lag is per push (acknowledged on the primary to
        current here) and only for a sync that brought one: a resync, or a fetch that found
        the replica already there, is no lag sample — so a quiet site shows none."""
        now = _now()
        entry = RegistryEntry(
            state="synced",
            synced_seq=target.seq,
            checksum=checksum,
            last_synced_at=now,
            verified_at=now,
            verification_state="verified",
            storage_shard=replicable.storage_shard,
        )
        await self._api.save(replicable.project_id, entry)
        lag_ms: int | None = None
        if target.pushed_at is not None and target.seq > previous_seq:
            lag_ms = int((now - target.pushed_at).total_seconds() * 1000)
            self._metrics.lag_seconds.observe(lag_ms / 1000)
        self._metrics.syncs.labels("synced").inc()
        log.info(
            "replica synced",
            extra={"project_id": replicable.project_id, "seq": target.seq, "lag_ms": lag_ms},
        )
        self._reports.publish(
            replicable.project_id,
            replication_pb2.ReplicaSynced(
                site=self._reports.site,
                project_id=replicable.project_id,
                seq=target.seq,
                lag_ms=lag_ms,
            ),
        )
        # The sync compared checksums: the replica is verified at this sequence too.
        self._reports.publish(
            replicable.project_id,
            replication_pb2.ReplicaVerified(
                site=self._reports.site,
                project_id=replicable.project_id,
                checksum=checksum,
                ok=True,
            ),
        )

    async def _failed(
        self, replicable: Replicable, registry: RegistryEntry, target: Hint, error: str
    ) -> Retry:
        attempt = registry.retry_count + 1
        delay = backoff_ceiling(self._retry_base, self._retry_max, attempt)
        next_retry_at = _now() + timedelta(seconds=delay)
        entry = registry.model_copy(
            update={
                "state": "failed",
                "retry_count": attempt,
                "next_retry_at": next_retry_at,
                "last_error": error[:4000],
            }
        )
        await self._api.save(replicable.project_id, entry)
        self._metrics.syncs.labels("failed").inc()
        log.warning(
            "replica sync failed",
            extra={"project_id": replicable.project_id, "attempt": attempt, "error": error},
        )
        self._reports.publish(
            replicable.project_id,
            replication_pb2.ReplicaFailed(
                site=self._reports.site,
                project_id=replicable.project_id,
                seq=target.seq,
                error=error[:2000],
                attempts=attempt,
                next_retry_at=timestamp(next_retry_at),
            ),
        )
        return Retry(attempt)

    # Verify and delete ---------------------------------------------------------------------

    async def _verify(self, replicable: Replicable, registry: RegistryEntry) -> Retry | None:
        """Compare the replica's checksum with the primary's for the sequence it is at."""
        if registry.synced_seq < self._target(replicable).seq:
            return await self._sync(replicable, registry)
        await self._follow_head(replicable)
        if registry.synced_seq > replicable.seq:
            return None  # the read model is behind the replica; verify on a later round
        try:
            checksum = await self._storage.checksum(
                repository(replicable.storage_shard, replicable.disk_path)
            )
        except StorageError as exc:
            checksum = f"unreadable: {exc}"
        ok = checksum == replicable.checksum
        self._metrics.verifications.labels("ok" if ok else "mismatch").inc()
        self._reports.publish(
            replicable.project_id,
            replication_pb2.ReplicaVerified(
                site=self._reports.site,
                project_id=replicable.project_id,
                checksum=checksum,
                ok=ok,
            ),
        )
        if ok:
            await self._api.save(
                replicable.project_id,
                registry.model_copy(
                    # Equal to the primary's: nothing here can have diverged any more.
                    update={
                        "verified_at": _now(),
                        "verification_state": "verified",
                        "diverged_epoch": 0,
                    }
                ),
            )
            return None
        log.warning(
            "replica failed verification, re-syncing", extra={"project_id": replicable.project_id}
        )
        resync = registry.model_copy(update={"state": "pending", "verification_state": "failed"})
        await self._api.save(replicable.project_id, resync)
        return await self._sync(replicable, resync)

    async def _unselected(self, replicable: Replicable) -> None:
        """Outside this site's selective sync: never fetched; a replica made while it was
        inside (its registry row says so) is removed, and the row with it — unless it kept
        commits a new primary lacks (DESIGN §10), which stay, as for a deleted project."""
        registry = replicable.registry
        if registry is not None and registry.diverged_epoch == 0:
            await self._delete(replicable.project_id)
        else:
            self._states.forget(replicable.project_id)

    async def _delete(self, project_id: int) -> None:
        """Remove the replica of a deleted (or unselected) project from every shard that may
        hold it."""
        disk_path = hashed_repository_path(project_id)
        for shard in self._storage.shards:
            try:
                await self._storage.remove_repository(repository(shard, disk_path))
            except StorageError as exc:
                if exc.code != grpc.StatusCode.NOT_FOUND:
                    raise
        await self._api.forget(project_id)
        self._states.forget(project_id)
        self._metrics.deletions.inc()
        log.info("replica removed", extra={"project_id": project_id})
