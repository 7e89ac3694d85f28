"""Promotion of a secondary to primary (DESIGN §10), on the candidate itself (admin only):

- `GET /api/v4/geo/sites/:id/promotion?mode=planned|force`: what a promotion would do now —
  the candidate's sequence, the highest any reachable site has seen (the gap is the RPO), the
  projects whose replicas are behind, and what would block it;
- `POST /api/v4/geo/sites/:id/promote` `{"mode": ...}`: do it; answers once every other site
  was told to follow (or could not be reached, which it says).

Both are site-local routes: the candidate's edge sends them to the candidate's own API.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from geogit.common.geo_coordination import PromotionMode, PromotionOut, PromotionPreview
from geogit.internal_api.deps import AdminUser, ServicesDep
from geogit.internal_api.geo.promotion import PromotionError
from geogit.internal_api.params import Id

router = APIRouter(prefix="/api/v4/geo", tags=["geo"])


class PromoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: PromotionMode
    # How long a planned promotion waits for the candidate to be current.
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 120.0


@router.get("/sites/{site_id}/promotion", response_model=PromotionPreview)
async def promotion_preview(
    site_id: Id,
    _: AdminUser,
    services: ServicesDep,
    mode: Annotated[PromotionMode, Query()] = "planned",
) -> PromotionPreview:
    return await services.geo.promotions.preview(site_id, mode)


@router.post("/sites/{site_id}/promote", response_model=PromotionOut)
async def promote(
    site_id: Id, body: PromoteIn, _: AdminUser, services: ServicesDep
) -> PromotionOut:
    metrics = services.metrics.promotions
    try:
        result = await services.geo.promotions.promote(site_id, body.mode, body.timeout_seconds)
    except PromotionError:
        metrics.labels(body.mode, "refused").inc()
        raise
    metrics.labels(body.mode, "done").inc()
    return result
