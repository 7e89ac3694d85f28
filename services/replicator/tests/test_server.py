"""The replicator's wiring: each ReplicatorServer counts in a registry of its own, and its
/metrics shows that registry and then the process-wide collectors."""

from __future__ import annotations

import httpx
import pytest

from geogit.common.geo import generate_site_key, public_key_of, verify_geo_token
from geogit.replicator.config import ReplicatorSettings
from geogit.replicator.server import ReplicatorServer


def _settings(site: str) -> ReplicatorSettings:
    return ReplicatorSettings(
        site_name=site,
        internal_api_url="http://127.0.0.1:9",  # nothing answers: backfill only logs
        internal_api_secret="internal-api-secret-for-tests-0123456789",
        storage_secret="storage-secret-for-tests-0123456789abcdef",
        primary_url="http://127.0.0.1:9",
        geo_private_key=generate_site_key()[0],
        ops_address="127.0.0.1:0",
        backfill_interval_seconds=3600,
    )


async def test_two_replicators_in_one_process_show_their_own_metrics() -> None:
    first, second = ReplicatorServer(_settings("one")), ReplicatorServer(_settings("two"))
    await first.start()
    await second.start()
    try:
        first.metrics.deletions.inc()
        async with httpx.AsyncClient(trust_env=False) as client:
            shown = [
                (await client.get(f"http://127.0.0.1:{server.ops.port}/metrics")).text
                for server in (first, second)
            ]
    finally:
        await first.stop()
        await second.stop()
    assert "geogit_replication_deletions_total 1.0" in shown[0]
    assert "geogit_replication_deletions_total 0.0" in shown[1]
    assert all("python_gc_objects_collected_total" in text for text in shown)


def test_start_needs_an_ed25519_geo_private_key() -> None:
    settings = _settings("one")
    settings.check_required()
    with pytest.raises(ValueError, match="GEOGIT_GEO_PRIVATE_KEY must be set"):
        settings.model_copy(update={"geo_private_key": ""}).check_required()
    public_key = generate_site_key()[1]
    with pytest.raises(ValueError, match="GEOGIT_GEO_PRIVATE_KEY: not a readable PEM private"):
        settings.model_copy(update={"geo_private_key": public_key}).check_required()


async def test_the_replicators_tokens_are_signed_by_its_site_key() -> None:
    private_key = generate_site_key()[0]
    settings = _settings("one").model_copy(update={"geo_private_key": private_key})
    server = ReplicatorServer(settings)
    try:
        claims = verify_geo_token(
            server.geo_signer.token("replication"), public_key_of(private_key), "one"
        )
        assert (claims.site, claims.scope, claims.epoch) == ("one", "replication", 1)
    finally:
        await server.primary.aclose()
        await server.api.aclose()
        await server.storage.close()
