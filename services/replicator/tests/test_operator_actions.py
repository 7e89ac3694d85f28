"""An operator's GeoActionRequested (the Geo page, POST /api/v4/geo/sites/:id/...) reaching
this site's replicator: a resync fetches even a replica the registry calls current, a reverify
checks again, a backfill scans now; a request for another site changes nothing here."""

from __future__ import annotations

from replicator_site import SITE, Replication, SecondarySite, replication
from test_worker import announced, replica_checksum

from geogit.common.events import new_event
from geogit.common.proto.events.v1 import domain_pb2
from geogit.storage.testing import git


async def _request(parts: Replication, action: str, project_id: int = 0, site: str = SITE) -> None:
    payload = domain_pb2.GeoActionRequested(
        site_id=2, site=site, action=action, project_id=project_id
    )
    event = new_event(payload, aggregate_id="site-2", aggregate_seq=1, origin_site="primary")
    await parts.feed.handle(event, None)  # type: ignore[arg-type]
    await parts.idle()


async def test_a_resync_fetches_a_replica_the_registry_calls_current(site: SecondarySite) -> None:
    repo, checksum = await announced(site)
    async with replication(site) as parts:
        await _request(parts, "resync", repo.project_id)
        # The registry says synced, but the replica lost its branch behind its back (its
        # objects stay, so git needs no pack: the ref list alone repairs it).
        replica = site.replica_path(repo)
        main = replica / "refs" / "heads" / "main"
        head = main.read_text()
        main.unlink()
        (replica / "packed-refs").unlink(missing_ok=True)
        await _request(parts, "resync", repo.project_id, site="some-other-site")
        assert not main.exists()  # not for this site
        await _request(parts, "sync-ish", repo.project_id)
        assert not main.exists()  # not an action
        await _request(parts, "resync", repo.project_id)
        assert replica_checksum(site, repo) == checksum
        assert git("-C", str(replica), "rev-parse", "main").stdout.decode() == head


async def test_a_reverify_checks_again_and_a_backfill_scans_now(site: SecondarySite) -> None:
    repo, _ = await announced(site)
    async with replication(site) as parts:
        await _request(parts, "resync", repo.project_id)
        checks = parts.sample("geogit_replication_verifications_total", result="ok")
        await _request(parts, "reverify", repo.project_id)
        assert parts.sample("geogit_replication_verifications_total", result="ok") == checks + 1
        assert parts.backfills == []
        await _request(parts, "backfill")
        await _request(parts, "backfill", site="some-other-site")
        assert parts.backfills == [None]
