"""Internal API settings, from GEOGIT_* environment variables (secrets also from *_FILE)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from geogit.common.geo import public_key_of
from geogit.common.geo_coordination import SiteRole
from geogit.common.http_listener import HttpListenerSettings
from geogit.common.kafka_settings import KafkaSettings
from geogit.common.net import split_address

MIB = 1024 * 1024


class InternalApiSettings(HttpListenerSettings, KafkaSettings):
    """Without GEOGIT_KAFKA_BOOTSTRAP the outbox relay is off (events wait in the outbox)."""

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/geogit"
    # How long a request waits to connect to the database before
    # it is answered 503 "the site's database is unavailable", and the Retry-After it suggests.
    database_connect_timeout_seconds: float = 5.0
    database_retry_after_seconds: int = 5
    http_address: str = "127.0.0.1:8081"
    # Verifies the JWT the gateways, storage and hooks send in Geogit-Api-Request.
    internal_api_secret: str = ""
    # Signs the short-lived tokens handed to callers of storage (and used by our own calls).
    storage_secret: str = ""
    # Storage shard name -> gRPC "host:port" (GEOGIT_STORAGES is a JSON object).
    storages: dict[str, str] = Field(default_factory=lambda: {"default": "127.0.0.1:9999"})
    # Shard that new projects are created on, unless storage_weights is set.
    default_storage: str = "default"
    # Shard name -> weight for new projects (GEOGIT_STORAGE_WEIGHTS is a JSON object); a shard
    # of weight 0 takes none. Empty: every new project on default_storage.
    storage_weights: dict[str, int] = Field(default_factory=dict)
    # Repository storage moves (repositories/storage_moves.py): how long after its
    # authorization a push still counts as on its way to pre-receive (a switch waits for it;
    # one whose pack upload takes longer is refused if a switch starts meanwhile); how long a
    # push waits for a switch before it is refused; how long the source copy is kept after
    # the switch, for clones still streaming from it; the bound on each copy and on the pushes
    # in flight; how many moves one API replica runs at once (the rest wait, scheduled); how
    # often each replica looks for moves no live replica runs.
    storage_move_drain_seconds: float = 30.0
    storage_move_push_wait_seconds: float = 30.0
    storage_move_removal_delay_seconds: float = 300.0
    storage_move_copy_timeout_seconds: float = 3600.0
    storage_move_land_timeout_seconds: float = 60.0
    storage_move_concurrency: Annotated[int, Field(ge=1)] = 2
    storage_move_sweep_seconds: Annotated[float, Field(gt=0)] = 30.0
    # The site's front door, as users see it: clone URLs and messages printed after a push.
    external_url: str = "http://127.0.0.1:8080"
    external_ssh_url: str = "ssh://git@127.0.0.1:2222"
    shutdown_grace_seconds: int = 30
    site_role: SiteRole = "primary"
    # A secondary: the primary's front door (its edge proxy), for proxied traffic, the event
    # store and read-your-writes checks.
    primary_url: str = ""
    # Every site: its Ed25519 private key (PEM), which signs its Geo tokens; other sites verify
    # them with its public key, given when the site was registered (DESIGN §3.4).
    geo_private_key: str = ""
    # A secondary: relay in place (`transparent`) or send git a 302 to /-/from_secondary/ first.
    geo_proxy_mode: Literal["transparent", "redirect"] = "transparent"
    # The freshness rule (DESIGN §5): reads are served locally only while the event feed has
    # confirmed it is caught up within this many seconds.
    freshness_max_lag_seconds: float = 15.0
    # How often a secondary asks the primary's event store for events it may have missed, and
    # how often it checks its Kafka consumer's lag for the heartbeat.
    event_store_poll_seconds: float = 5.0
    feed_heartbeat_seconds: float = 1.0
    # Timeout of one call to the primary.
    primary_timeout_seconds: float = 10.0
    # How often the site asks the others who is primary, to learn of a promotion it was not
    # told of (DESIGN §10).
    geo_peer_check_seconds: float = 5.0
    # The site's other services by name -> readiness URL (a JSON object), which the Geo status
    # page shows the health of: {"storage": "http://storage:8083/-/readiness", ...}.
    service_health_urls: dict[str, str] = Field(default_factory=dict)
    max_body_bytes: int = MIB
    # The hooks' calls carry a push's ref changes: storage accepts up to 64 MiB of them.
    max_internal_body_bytes: int = 64 * MIB
    # Outbox relay pacing: how often an idle relay looks for new rows — woken by the writers'
    # NOTIFY, it polls only as a fallback: every `relay_listen_poll_seconds` while its LISTEN
    # connection is up, every `relay_poll_seconds` while it is down —, how far it backs off
    # while Kafka is unreachable, and how long one publish may take before it counts as failed.
    relay_poll_seconds: float = 0.1
    relay_listen_poll_seconds: float = 2.0
    relay_batch_size: int = 200
    relay_max_backoff_seconds: float = 10.0
    relay_publish_timeout_seconds: float = 15.0

    @property
    def http_host_port(self) -> tuple[str, int]:
        return split_address(self.http_address, "127.0.0.1")

    def check_required_secrets(self) -> None:
        """The secrets must exist even in development: nothing internal works without them.

        The Geo private key too, on every site: a primary signs coordination tokens and may
        become a secondary (DESIGN §10).
        """
        required = ("internal_api_secret", "storage_secret", "geo_private_key")
        self.check_secrets(*required)
        missing = [f"GEOGIT_{name.upper()}" for name in required if not getattr(self, name)]
        if self.site_role == "secondary" and not self.primary_url:
            missing.append("GEOGIT_PRIMARY_URL")
        if missing:
            raise ValueError(f"{', '.join(missing)} must be set")
        try:
            public_key_of(self.geo_private_key)
        except ValueError as exc:
            raise ValueError(f"GEOGIT_GEO_PRIVATE_KEY: {exc}") from exc

    @property
    def is_secondary(self) -> bool:
        return self.site_role == "secondary"
