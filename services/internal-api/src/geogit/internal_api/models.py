"""The site's database, as typed SQLAlchemy mappings.

The Alembic migrations are the schema's source of truth; these mappings mirror them (a test
compares the two). Times are timezone-aware UTC; defaults are set on the Python side as well
as in the database, so a freshly flushed row can be read without another round trip.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True), str: Text, int: BigInteger}


def _created_at() -> Mapped[datetime]:
    return mapped_column(default=utcnow, server_default=func.now())


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        Index("users_username_key", func.lower(text("username")), unique=True),
        Index("users_email_key", func.lower(text("email")), unique=True),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    username: Mapped[str]
    email: Mapped[str]
    name: Mapped[str]
    password_hash: Mapped[str]
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    state: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    created_at: Mapped[datetime] = _created_at()

    @property
    def active(self) -> bool:
        return self.state == "active"


class PersonalAccessToken(Base):
    """Only the SHA-256 digest of a token is kept; the token itself is shown once."""

    __tablename__ = "personal_access_tokens"

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str]
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    expires_at: Mapped[date | None] = mapped_column(Date)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[datetime] = _created_at()

    def active_on(self, today: date) -> bool:
        # GitLab: a token expiring on a date stops working at the start of that day (UTC).
        return not self.revoked and (self.expires_at is None or today < self.expires_at)


class SshKey(Base):
    __tablename__ = "ssh_keys"

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str]
    # The OpenSSH line as uploaded ("<type> <base64> [comment]").
    key: Mapped[str]
    key_type: Mapped[str]
    fingerprint_sha256: Mapped[str] = mapped_column(unique=True)
    expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created_at()


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (
        Index(
            "projects_full_path_key",
            func.lower(text("namespace")),
            func.lower(text("path")),
            unique=True,
        ),
        CheckConstraint("push_hold IN ('', 'queue', 'read_only')", name="projects_push_hold"),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    # The owner's username: every namespace is a user's personal namespace for now.
    namespace: Mapped[str]
    path: Mapped[str]
    name: Mapped[str]
    description: Mapped[str] = mapped_column(default="", server_default="")
    visibility: Mapped[str] = mapped_column(String(16))
    default_branch: Mapped[str]
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    storage_shard: Mapped[str]
    # Hashed path on the shard: derived from the id, so renames never move the repository.
    disk_path: Mapped[str] = mapped_column(unique=True)
    # Sequence of the project's repository events (created = 1, then one per push).
    repository_seq: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    # The refs checksum and time of the latest push (on a secondary: the latest it has seen).
    repository_checksum: Mapped[str] = mapped_column(default="", server_default="")
    repository_pushed_at: Mapped[datetime | None]
    # A secondary's read-your-writes floor: after a push it relayed, the sequence that push
    # reached on the primary; the replica must get there before reads are served locally.
    geo_min_seq: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    created_at: Mapped[datetime] = _created_at()
    last_activity_at: Mapped[datetime] = _created_at()
    # A storage move's switch (repositories/push_hold.py): "" none; "queue": new pushes wait
    # at their authorization; "read_only": a push reaching pre-receive is refused too.
    push_hold: Mapped[str] = mapped_column(default="", server_default="")

    @property
    def full_path(self) -> str:
        return f"{self.namespace}/{self.path}"

    @property
    def gl_repository(self) -> str:
        return f"project-{self.id}"


class Member(Base):
    __tablename__ = "members"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    access_level: Mapped[int] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = _created_at()


class ProtectedBranch(Base):
    __tablename__ = "protected_branches"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    # An exact branch name or a wildcard such as "release/*".
    name: Mapped[str]
    push_access_level: Mapped[int] = mapped_column(SmallInteger)
    allow_force_push: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    created_at: Mapped[datetime] = _created_at()


class GeoSite(Base):
    __tablename__ = "geo_sites"
    __table_args__ = (
        CheckConstraint(
            "selective_sync_type IN ('', 'namespaces', 'shards')",
            name="geo_sites_selective_sync_type",
        ),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)
    url: Mapped[str]
    internal_url: Mapped[str] = mapped_column(default="", server_default="")
    primary: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    created_at: Mapped[datetime] = _created_at()
    # PEM Ed25519 public key: verifies the site's Geo tokens (geogit.common.geo) on every site.
    public_key: Mapped[str] = mapped_column(default="", server_default="")
    # Selective sync (geo/selective_sync.py): "" everything, "namespaces" (owners' user ids)
    # or "shards" (storage shard names); outside it the site proxies and holds no replica.
    selective_sync_type: Mapped[str] = mapped_column(default="", server_default="")
    selective_sync_namespace_ids: Mapped[list[int]] = mapped_column(
        ARRAY(BigInteger), default=list, server_default="{}"
    )
    selective_sync_shards: Mapped[list[str]] = mapped_column(
        ARRAY(Text), default=list, server_default="{}"
    )


class _OutboxColumns:
    """An event waiting for the relay: the envelope's fields, the payload, and `sent_at`, the
    only column ever updated (set once Kafka has the event)."""

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    event_id: Mapped[str] = mapped_column(UUID(as_uuid=False), unique=True)
    # "domain", "repository" or "replication": which topic the relay publishes the event on.
    stream: Mapped[str] = mapped_column(String(16))
    type: Mapped[str]
    schema_version: Mapped[int] = mapped_column(Integer)
    aggregate_id: Mapped[str]
    aggregate_seq: Mapped[int]
    # The serialized payload message (the envelope is rebuilt with `id` as global_seq).
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    occurred_at: Mapped[datetime]
    origin_site: Mapped[str]
    correlation_id: Mapped[str] = mapped_column(default="", server_default="")
    sent_at: Mapped[datetime | None]
    # The epoch of the primary that wrote the event (DESIGN §10).
    epoch: Mapped[int] = mapped_column(default=1, server_default=text("1"))


class OutboxEvent(_OutboxColumns, Base):
    """The event store (DESIGN §4): append-only, `id` is the global sequence, rows are kept.

    On the primary its own events; on a secondary the primary's, mirrored by the event feed
    with their global sequence as id and already sent, so a promoted secondary's store holds
    the whole history and its outbox continues the sequence.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("stream", "aggregate_id", "aggregate_seq"),
        Index("outbox_unsent", "id", postgresql_where=text("sent_at IS NULL")),
    )


class ReportOutboxEvent(_OutboxColumns, Base):
    """A site's own replication reports, on their way to `geogit.replication`: kept apart from
    `outbox`, whose ids are the global sequence."""

    __tablename__ = "report_outbox"
    __table_args__ = (
        UniqueConstraint("stream", "aggregate_id", "aggregate_seq"),
        Index("report_outbox_unsent", "id", postgresql_where=text("sent_at IS NULL")),
    )


class GeoEventFeed(Base):
    """A secondary's position in the primary's event store (one row): the last global
    sequence applied to the read model, and when the feed last knew it had everything."""

    __tablename__ = "geo_event_feed"
    __table_args__ = (CheckConstraint("id = 1", name="geo_event_feed_single_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    last_global_seq: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    caught_up_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())


class ReplicaRegistry(Base):
    """A secondary's replica of one project (DESIGN §5); written by the replicator through
    the internal API, read by the freshness rule. No foreign key: the row outlives a deleted
    project until the replicator has removed the replica."""

    __tablename__ = "replica_registry"

    project_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    state: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    synced_seq: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    checksum: Mapped[str] = mapped_column(default="", server_default="")
    last_synced_at: Mapped[datetime | None]
    retry_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_retry_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(default="", server_default="")
    verified_at: Mapped[datetime | None]
    verification_state: Mapped[str] = mapped_column(
        String(16), default="pending", server_default="pending"
    )
    # Set by a rollback (DESIGN §10): the next sync keeps what the new primary lacks under
    # refs/geogit/diverged/epoch-<n>/ instead of overwriting it.
    diverged_epoch: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    # The shard the replica is on; "" for a row written before shards moved (the project's).
    storage_shard: Mapped[str] = mapped_column(default="", server_default="")


class ReplicationStatus(Base):
    """Every site's view of each secondary's replicas, from the geogit.replication topic."""

    __tablename__ = "replication_status"

    site: Mapped[str] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    state: Mapped[str] = mapped_column(String(16))
    seq: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    verified: Mapped[bool | None] = mapped_column(Boolean)
    error: Mapped[str] = mapped_column(default="", server_default="")
    # Of the latest failure: how many in a row, and when the replicator tries again.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_retry_at: Mapped[datetime | None]
    synced_at: Mapped[datetime | None]
    verified_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())


class ReplicationLagSample(Base):
    """Push-to-replica lag reported by a secondary's replicator, for percentiles."""

    __tablename__ = "replication_lag_samples"
    __table_args__ = (Index("replication_lag_samples_site", "site", "recorded_at"),)

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    site: Mapped[str]
    lag_ms: Mapped[int]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())


class GeoPushFloor(Base):
    """A push relayed through this secondary for a project its read model has not got yet:
    the sequence it reached, applied as the project's `geo_min_seq` when the project arrives."""

    __tablename__ = "geo_push_floors"

    project_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    min_seq: Mapped[int]


class GeoSiteState(Base):
    """This site's authority (one row, DESIGN §10): its role, the epoch it holds or follows,
    its primary, and a planned failover's maintenance. Bootstrapped from GEOGIT_SITE_ROLE and
    GEOGIT_PRIMARY_URL; changed only by promotion, demotion and fencing."""

    __tablename__ = "geo_site_state"
    __table_args__ = (
        CheckConstraint("id = 1", name="geo_site_state_single_row"),
        CheckConstraint("role IN ('primary', 'secondary')", name="geo_site_state_role"),
    )

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    epoch: Mapped[int]
    primary_site: Mapped[str] = mapped_column(default="", server_default="")
    primary_url: Mapped[str] = mapped_column(default="", server_default="")
    # Non-empty while this primary is read-only, failing over to the named site.
    maintenance_target: Mapped[str] = mapped_column(default="", server_default="")
    maintenance_since: Mapped[datetime | None]
    # When this site, a primary, learnt of a higher epoch and stopped taking writes.
    fenced_at: Mapped[datetime | None]
    # Set when this site learnt of an epoch whose history forks below what it had applied:
    # its read model is rolled back to this sequence before it applies anything else.
    rollback_after_seq: Mapped[int | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())


class GeoEpoch(Base):
    """The epoch history: epoch n's events are those after `after_seq` (until epoch n+1's)."""

    __tablename__ = "geo_epochs"

    epoch: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    primary_site: Mapped[str]
    after_seq: Mapped[int]
    promoted_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())


class PushReferenceCounter(Base):
    """Pushes between pre-receive and post-receive, per project (GitLab's reference counter):
    a planned failover waits for them to land before the primary's last sequence is final."""

    __tablename__ = "push_reference_counters"

    project_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    # Pushes authorized (routed to a shard) that have not reached pre-receive yet, and the time
    # of the latest: a storage move waits for them before it refuses pre-receive.
    authorized: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    authorized_at: Mapped[datetime | None]


class GeoDivergedRef(Base):
    """A commit this site had and the new primary lacked, kept after a rollback (DESIGN §10)."""

    __tablename__ = "geo_diverged_refs"
    __table_args__ = (UniqueConstraint("project_id", "kept_as"),)

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    project_id: Mapped[int]
    epoch: Mapped[int]
    ref: Mapped[str]
    kept_as: Mapped[str]
    oid: Mapped[str]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())


MOVE_STATES = ("scheduled", "started", "replicated", "finished", "failed", "cleanup_failed")
# A move in one of these holds its project: no second move may start (the partial index).
RUNNING_MOVE_STATES = ("scheduled", "started", "replicated")


class RepositoryStorageMove(Base):
    """A project's repository moved to another shard of this site (GitLab's project repository
    storage move): scheduled, started (copying), replicated (switched: the destination is the
    project's; the source copy waits to be removed), finished; or failed / cleanup_failed."""

    __tablename__ = "repository_storage_moves"
    __table_args__ = (
        CheckConstraint(
            "state IN ('scheduled', 'started', 'replicated', 'finished', 'failed',"
            " 'cleanup_failed')",
            name="repository_storage_moves_state",
        ),
        Index("repository_storage_moves_project_id", "project_id"),
        Index(
            "repository_storage_moves_one_running",
            "project_id",
            unique=True,
            postgresql_where=text("state IN ('scheduled', 'started', 'replicated')"),
        ),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    state: Mapped[str]
    source_storage_name: Mapped[str]
    destination_storage_name: Mapped[str]
    error_message: Mapped[str] = mapped_column(default="", server_default="")
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()
