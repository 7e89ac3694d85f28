"""Probes and metrics: /-/liveness, /-/readiness (the database answers), /metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from geogit.internal_api.deps import ServicesDep
from geogit.internal_api.geo.site_health import database_health

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)


@router.get("/-/liveness")
async def liveness() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/-/readiness")
async def readiness(services: ServicesDep) -> JSONResponse:
    database = await database_health(services.sessions)
    if not database.ok:
        log.warning("not ready: database unreachable", extra={"error": database.detail})
        return JSONResponse({"status": "not ready", "database": "unreachable"}, 503)
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/metrics")
async def metrics(services: ServicesDep) -> Response:
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
