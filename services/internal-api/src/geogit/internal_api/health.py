"""Probes and metrics: /-/liveness, /-/readiness (the database answers), /metrics."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from geogit.internal_api.deps import ServicesDep

log = logging.getLogger(__name__)
READINESS_TIMEOUT_SECONDS = 2.0

router = APIRouter(include_in_schema=False)


@router.get("/-/liveness")
async def liveness() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/-/readiness")
async def readiness(services: ServicesDep) -> JSONResponse:
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS), services.sessions() as session:
            await session.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        log.warning("not ready: database unreachable", extra={"error": repr(exc)})
        return JSONResponse({"status": "not ready", "database": "unreachable"}, 503)
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/metrics")
async def metrics(services: ServicesDep) -> Response:
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
