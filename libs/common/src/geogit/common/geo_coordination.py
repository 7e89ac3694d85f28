"""What sites say about authority and promotion (DESIGN §10): the wire shapes of the site-local
Geo routes (`geogit.common.geo_routes`) and of the promotion admin routes, one definition for
their handlers, the internal API's sites client and the `geogit` command."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from geogit.common.text import StorableText

_BIGINT = 2**63 - 1
Seq = Annotated[int, Field(ge=0, le=_BIGINT)]
Epoch = Annotated[int, Field(ge=1, le=_BIGINT)]
PromotionMode = Literal["planned", "force"]
SiteRole = Literal["primary", "secondary"]


class MaintenanceOut(BaseModel):
    target: str
    since: datetime | None


class EpochOut(BaseModel):
    epoch: int
    after_seq: int
    primary_site: str


class SiteStateOut(BaseModel):
    """GET /api/v4/geo/site_state: a site's own account of its authority."""

    site_id: int | None
    site: str
    role: SiteRole
    epoch: int
    # Where the epoch's events start: what a site that follows this epoch's primary needs.
    epoch_after_seq: int
    primary_site: str
    primary_url: str
    maintenance: MaintenanceOut | None
    fenced: bool
    last_global_seq: int
    # The epoch history as this site knows it (DESIGN §10).
    epochs: list[EpochOut] = []


class FollowIn(BaseModel):
    """POST /api/v4/geo/follow: the new primary tells a site it is now its secondary."""

    model_config = ConfigDict(extra="forbid")

    epoch: Epoch
    after_seq: Seq
    primary_site: Annotated[StorableText, Field(min_length=1, max_length=255)]
    primary_url: Annotated[
        StorableText, Field(min_length=1, max_length=2048, pattern=r"^https?://")
    ]


class FollowOut(BaseModel):
    followed: bool
    rollback: bool


class MaintenanceIn(BaseModel):
    """POST /api/v4/geo/maintenance: a candidate asks the primary to stop writes for it."""

    model_config = ConfigDict(extra="forbid")

    target: Annotated[StorableText, Field(min_length=1, max_length=255)]
    drain_timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 30.0


class DrainedOut(BaseModel):
    """The primary's last word before a planned failover: every event up to here is final."""

    epoch: int
    last_global_seq: int
    pushes_in_flight: int


class SiteSeen(BaseModel):
    site: str
    reachable: bool
    role: str = ""
    epoch: int = 0
    last_global_seq: int = 0
    error: str = ""


class ProjectBehind(BaseModel):
    project_id: int
    full_path: str
    replica_seq: int | None  # None: this site holds no replica of it
    latest_seq: int


class PromotionPreview(BaseModel):
    candidate: str
    mode: PromotionMode
    epoch: int
    next_epoch: int
    candidate_seq: int
    highest_seen_seq: int
    # The RPO a promotion would have now, in events: what reachable sites saw and this did not.
    gap: int
    sites: list[SiteSeen]
    projects_behind: list[ProjectBehind]
    projects_behind_count: int
    # Pushes this site has the events of but whose replicas have not fetched them yet: lost
    # as well in a forced promotion now, so the RPO is `gap` plus these.
    pushes_behind: int
    blockers: list[str]


class Follower(BaseModel):
    site: str
    followed: bool
    rollback: bool = False
    error: str = ""


class PromotionOut(BaseModel):
    site: str
    mode: PromotionMode
    epoch: int
    after_seq: int
    waited_seconds: float
    followers: list[Follower]
    at_risk: PromotionPreview
