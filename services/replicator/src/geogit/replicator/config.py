"""Replicator settings, from GEOGIT_* environment variables (secrets also from *_FILE)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from geogit.common.geo import public_key_of
from geogit.common.kafka_settings import KafkaSettings
from geogit.common.net import split_address
from geogit.common.ops_http import OpsListenerSettings


class ReplicatorSettings(OpsListenerSettings, KafkaSettings):
    """Without GEOGIT_KAFKA_BOOTSTRAP: backfill scans only, and this replica owns every project."""

    # This site's internal API: the replicables and the registry (internal JWT).
    internal_api_url: str = "http://127.0.0.1:8081"
    internal_api_secret: str = ""
    # This site's storage shards (GEOGIT_STORAGES is a JSON object) and their token secret.
    storages: dict[str, str] = Field(default_factory=lambda: {"default": "127.0.0.1:9999"})
    storage_secret: str = ""
    # Signs the Geo tokens the primary's front door is fetched from with: this site's Ed25519
    # private key (PEM), whose public key the sites hold in their registry. Which primary, and
    # whether this site replicates at all, the site's internal API says (DESIGN §10).
    geo_private_key: str = ""
    # How often the site's role and primary are asked for.
    site_poll_seconds: Annotated[float, Field(gt=0)] = 2.0
    # /metrics, /-/liveness, /-/readiness; POST /backfill starts a scan at once.
    ops_address: str = "127.0.0.1:9123"

    # Projects synced at once; one project is never synced twice at the same time.
    max_concurrency: Annotated[int, Field(ge=1)] = 8
    # How often every project is checked for a missing or late replica, and how old a
    # verification may get before the replica's checksum is compared again.
    backfill_interval_seconds: Annotated[float, Field(gt=0)] = 60.0
    verify_interval_seconds: Annotated[float, Field(gt=0)] = 3600.0
    # Exponential backoff with jitter after a failed sync, between these bounds.
    retry_base_seconds: Annotated[float, Field(gt=0)] = 1.0
    retry_max_seconds: Annotated[float, Field(gt=0)] = 300.0
    # Upper bound for one ReplicateRepository call (a first sync of a large repository).
    sync_timeout_seconds: Annotated[float, Field(gt=0)] = 3600.0
    internal_api_timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    # After SIGTERM, running syncs get this long before they are cancelled.
    shutdown_grace_seconds: Annotated[float, Field(ge=0)] = 30.0

    @property
    def ops_host_and_port(self) -> tuple[str, int]:
        return split_address(self.ops_address)

    def check_required(self) -> None:
        self.check_secrets("internal_api_secret", "storage_secret", "geo_private_key")
        missing = [
            f"GEOGIT_{name.upper()}"
            for name in ("internal_api_secret", "storage_secret", "geo_private_key")
            if not getattr(self, name)
        ]
        if missing:
            raise ValueError(f"{', '.join(missing)} must be set")
        try:
            public_key_of(self.geo_private_key)
        except ValueError as exc:
            raise ValueError(f"GEOGIT_GEO_PRIVATE_KEY: {exc}") from exc
