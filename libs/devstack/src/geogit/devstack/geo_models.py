"""What a site says about itself and about a promotion (DESIGN §10), as the `geogit` command
reads it: `GET /api/v4/geo/site_state`, `GET /api/v4/geo/sites/:id/promotion` and
`POST /api/v4/geo/sites/:id/promote`.

Typed, so an answer of the wrong shape fails in one place with the field it lacks; fields these
models do not name are ignored, so a server that says more keeps working.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from geogit.devstack.site import Role

PromotionMode = Literal["planned", "force"]


class Maintenance(BaseModel):
    """The primary's read-only window of a planned failover."""

    target: str
    since: str


class SiteState(BaseModel):
    """One site's own answer: its role and epoch, as its database holds them."""

    site_id: int
    site: str
    role: Role
    epoch: int
    primary_site: str = ""
    primary_url: str = ""
    maintenance: Maintenance | None = None
    fenced: bool = False
    last_global_seq: int


class SiteProbe(BaseModel):
    """Another site as the candidate saw it while preparing the preview."""

    site: str
    reachable: bool
    role: str = ""
    epoch: int | None = None
    last_global_seq: int | None = None
    error: str = ""


class ProjectBehind(BaseModel):
    project_id: int
    full_path: str
    replica_seq: int | None = None
    latest_seq: int


class PromotionPreview(BaseModel):
    """What promoting the candidate now would put at risk."""

    candidate: str
    epoch: int
    next_epoch: int
    candidate_seq: int
    highest_seen_seq: int
    gap: int
    sites: list[SiteProbe] = []
    projects_behind: list[ProjectBehind] = []
    blockers: list[str] = []


class Follower(BaseModel):
    site: str
    followed: bool
    error: str = ""


class PromotionResult(BaseModel):
    site: str
    epoch: int
    after_seq: int
    mode: PromotionMode
    waited_seconds: float
    followers: list[Follower] = []
