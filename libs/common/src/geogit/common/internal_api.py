"""Wire models of the internal API (DESIGN §3.3, §3.5), shared by its server and its callers.

Shapes follow GitLab's /api/v4/internal endpoints so the flow reads the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# GitAction is re-exported: the internal API's `action` is the registry's SSH command name.
from geogit.common.git_commands import GitAction as GitAction
from geogit.common.git_commands import HttpService
from geogit.common.text import StorableText

# Statuses of the contract: a refusal carrying a message for the user; authorized_keys for a
# key nobody registered (a 401 is the caller's token refused); GitLab's "custom action" (on a
# secondary, serve the command from the primary).
DENIAL_STATUSES = frozenset({401, 403, 404})
UNKNOWN_KEY_STATUSES = frozenset({403, 404})
STATUS_CUSTOM_ACTION = 300


class Denied(Exception):
    """A refusal with a message for the user, in GitLab's wording, and its HTTP status.

    One type on both sides of the contract: the internal API's access decisions raise it, and
    the internal-API client returns it as an answer. A plain exception, not a frozen dataclass:
    raising one through a context manager sets its traceback.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"Denied({self.status}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Denied):
            return NotImplemented
        return (self.status, self.message) == (other.status, other.message)

    def __hash__(self) -> int:
        return hash((self.status, self.message))


GitProtocolName = Literal["http", "ssh"]
ANY_CHANGES = "_any"


class AllowedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: GitAction
    protocol: GitProtocolName
    # One of: the pusher as gl_id ("user-1"), an SSH key id, or a username.
    gl_id: StorableText = ""
    key_id: int | None = None
    username: StorableText = ""
    # The project: by gl_repository ("project-7") or by full path ("alice/demo").
    gl_repository: StorableText = ""
    project: StorableText = ""
    # "<old> <new> <ref>" lines, or "_any" before the pack is known.
    changes: StorableText = ANY_CHANGES
    relative_path: StorableText = ""
    # The shard the pushed repository is on (pre-receive): a push that reaches a copy a
    # storage move has just left is refused, never landed where no one reads it.
    storage_name: StorableText = ""
    # Where the pushed objects wait in quarantine, relative to the repository directory.
    git_object_directory: StorableText = ""
    git_alternate_object_directories: list[StorableText] = []
    push_options: list[StorableText] = []
    # pre-receive: if allowed, also count the push until post-receive (what /pre_receive
    # does), so a push pays one round trip before its refs move.
    count_push: bool = False


class AllowedResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: bool
    message: str = ""
    reference_counter_increased: bool = False
    gl_repository: str = ""
    gl_project_path: str = ""
    gl_id: str = ""
    gl_username: str = ""


class PreReceiveRequest(BaseModel):
    gl_repository: StorableText


class PreReceiveResponse(BaseModel):
    reference_counter_increased: bool


class PostReceiveRequest(BaseModel):
    gl_repository: StorableText
    identifier: StorableText
    changes: StorableText
    push_options: list[StorableText] = []


class PostReceiveMessage(BaseModel):
    type: Literal["basic", "alert"] = "basic"
    message: str


class PostReceiveResponse(BaseModel):
    reference_counter_decreased: bool = True
    messages: list[PostReceiveMessage] = []


class GitHttpAuthorizeRequest(BaseModel):
    """What the edge-proxy asks before streaming a smart-HTTP request (DESIGN §3.1)."""

    model_config = ConfigDict(extra="forbid")

    # "namespace/project", as in the URL, without ".git".
    project: StorableText
    service: HttpService
    # The client's Authorization header, verbatim ("" when anonymous).
    authorization: StorableText = ""
    git_protocol: StorableText = ""
    # The request's Geogit-Geo-Token header: another site relaying or replicating (DESIGN §3.4).
    geo_token: StorableText = ""
    # The request's path and query as received, for a secondary's redirect answer.
    path: StorableText = ""
    # A POST whose whole body is one flush-pkt (Content-Length 4): git's probe before it
    # streams a large push. It carries no command and never reaches pre-receive, so a storage
    # move must not wait for it as for a push on its way.
    probe: bool = False


class StorageAccess(BaseModel):
    name: str
    address: str
    # Short-lived storage JWT (audience geogit-storage) minted for this request.
    token: str


class RepositoryRef(BaseModel):
    storage_name: str
    relative_path: str
    gl_repository: str
    gl_project_path: str


class GitHttpServe(BaseModel):
    action: Literal["serve"] = "serve"
    storage: StorageAccess
    repository: RepositoryRef
    gl_id: str = ""
    gl_username: str = ""
    gl_repository: str


class GitHttpRedirect(BaseModel):
    action: Literal["redirect"] = "redirect"
    location: str


class GitHttpProxy(BaseModel):
    """A secondary's answer when it must not serve: relay the request to the primary as is."""

    action: Literal["proxy"] = "proxy"
    reason: str = ""
    # The secondary's own refusal, for the edge to give if the primary cannot be reached:
    # the read model may lag a grant, so a denial goes to the primary first.
    denied_status: int | None = None
    denied_message: str = ""


GitHttpAuthorizeResponse = Annotated[
    GitHttpServe | GitHttpRedirect | GitHttpProxy, Field(discriminator="action")
]


class GeoProxyInfo(BaseModel):
    """GET /api/v4/geo/proxy: `{}` on a primary; on a secondary where to proxy and how to sign."""

    geo_proxy_url: str = ""
    # A Geo JWT (scope `proxy`) naming this site, sent as Geogit-Geo-Token on proxied requests.
    geo_proxy_extra_data: str = ""
    # The epoch of the primary named (DESIGN §10): an edge never follows a lower one.
    geo_epoch: int = 0


class GeoProxyData(BaseModel):
    primary_repo: str
    request_headers: dict[str, str]


class GeoProxyPayload(BaseModel):
    action: Literal["geo_proxy_to_primary"] = "geo_proxy_to_primary"
    data: GeoProxyData


class GeoProxyToPrimary(BaseModel):
    """`/internal/allowed`'s 300 answer on a secondary: the gateway speaks to the primary."""

    status: bool = True
    message: str = ""
    payload: GeoProxyPayload


class ProxiedPush(BaseModel):
    """A secondary's edge tells its internal API that a push it relayed succeeded."""

    model_config = ConfigDict(extra="forbid")

    project: Annotated[StorableText, Field(max_length=1024)]


class RepositoryState(BaseModel):
    """The primary's view of a repository: its latest sequence, refs checksum, and when that
    push was acknowledged (None before the first push)."""

    project_id: int
    seq: int
    checksum: str
    pushed_at: datetime | None = None


_BIGINT = 2**63 - 1


class RegistryEntry(BaseModel):
    """A secondary's replication registry row for one project (DESIGN §5)."""

    model_config = ConfigDict(extra="forbid")

    state: Literal["pending", "syncing", "synced", "failed"] = "pending"
    synced_seq: Annotated[int, Field(ge=0, le=_BIGINT)] = 0
    checksum: Annotated[StorableText, Field(max_length=128)] = ""
    last_synced_at: datetime | None = None
    retry_count: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    next_retry_at: datetime | None = None
    last_error: Annotated[StorableText, Field(max_length=4000)] = ""
    verified_at: datetime | None = None
    verification_state: Literal["pending", "verified", "failed"] = "pending"
    # Non-zero after a rollback: the next sync keeps what the new primary lacks under
    # refs/geogit/diverged/epoch-<n>/ (DESIGN §10).
    diverged_epoch: Annotated[int, Field(ge=0, le=_BIGINT)] = 0
    # The shard the replica is on ("": the project's, as before repository storage moves);
    # the freshness rule serves only a replica on the project's shard.
    storage_shard: Annotated[StorableText, Field(max_length=255)] = ""


class Replicable(BaseModel):
    """A project as the replicator needs it: where it lives and what it should be."""

    project_id: int
    full_path: str
    storage_shard: str
    disk_path: str
    default_branch: str
    seq: int
    checksum: str
    pushed_at: datetime | None = None
    registry: RegistryEntry | None = None
    # Outside the site's selective sync: no replica is kept (any there is removed).
    selected: bool = True


class ReplicablePage(BaseModel):
    replicables: list[Replicable]
    # Registry rows whose project no longer exists, or is outside the site's selective sync:
    # replicas to delete.
    orphans: list[int] = []
    next_after: int | None = None


ReportType = Literal["ReplicaSynced", "ReplicaFailed", "ReplicaVerified", "ReplicaDiverged"]


class ReplicationReport(BaseModel):
    """A replicator's report (DESIGN §4, `geogit.replication`), handed to its own site's
    internal API, which keeps it in the site's outbox until Kafka has it: a broker outage
    delays reports, it does not lose them."""

    model_config = ConfigDict(extra="forbid")

    type: ReportType
    project_id: Annotated[int, Field(ge=1, le=_BIGINT)]
    # The protobuf payload (ReplicaSynced, ...), base64.
    payload: Annotated[str, Field(max_length=16_384, pattern=r"^[A-Za-z0-9+/]*={0,2}$")]


class GeoSiteStatus(BaseModel):
    """A secondary's own view of itself: event feed position and replication counts."""

    site: str
    role: str
    epoch: int = 1
    # Where this site's primary is (empty on the primary itself): the replicator fetches there.
    primary_url: str = ""
    last_global_seq: int
    caught_up_at: datetime | None
    fresh: bool
    projects: int
    synced: int
    failed: int
    verified: int
    # Non-empty while this primary is failing over to the named site (DESIGN §10).
    maintenance: str = ""
    # Refs a rollback kept under refs/geogit/diverged/ on this site's replicas.
    diverged_refs: int = 0


class AuthorizedKey(BaseModel):
    """GET /api/v4/internal/authorized_keys?key=<base64 blob>: GitLab's shape plus the user."""

    id: int
    key: str
    user_id: int
    username: str


class ErrorMessage(BaseModel):
    """Every 4xx/5xx body, as GitLab shapes it."""

    message: str


DATABASE_UNAVAILABLE = "the site's database is unavailable"
"""The internal API's 503 message while its database cannot be reached; the gateways pass it to
git clients as is, so a user reads what is wrong instead of a gateway error."""


@dataclass(frozen=True)
class Unavailable:
    """A 503 the internal API chose to give (its database is down): the message for the user and
    the `Retry-After` seconds it suggested, if any."""

    message: str
    retry_after: str | None


def unavailable_answer(status: int, headers: Mapping[str, str], body: bytes) -> Unavailable | None:
    """The internal API's own 503 (JSON `{"message": ...}`), or None for any other answer.

    A 503 without that body came from something in between (a proxy, a restarting pod) and
    stays a gateway error for the caller to report as such.
    """
    if status != 503:
        return None
    content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/json":
        return None
    try:
        message = ErrorMessage.model_validate_json(body).message
    except ValidationError:
        return None
    retry_after = headers.get("retry-after")
    return Unavailable(message, retry_after if retry_after and retry_after.isdigit() else None)
