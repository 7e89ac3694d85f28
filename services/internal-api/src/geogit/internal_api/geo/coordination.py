"""What sites tell each other about authority (DESIGN §10): the wire shapes of the site-local
Geo routes (`geogit.common.geo_routes`), shared by their handlers and `clients/sites.py`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from geogit.common.text import StorableText

_BIGINT = 2**63 - 1
Seq = Annotated[int, Field(ge=0, le=_BIGINT)]
Epoch = Annotated[int, Field(ge=1, le=_BIGINT)]
PromotionMode = Literal["planned", "force"]


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
    role: Literal["primary", "secondary"]
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
