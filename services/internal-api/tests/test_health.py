"""Probes and metrics answer without credentials; readiness really asks the database."""

from __future__ import annotations

import httpx
from internal_api_support import Api, Database, make_settings

from geogit.common.net import free_port
from geogit.internal_api.app import create_app
from geogit.storage.testing import StorageProcess


async def test_liveness_readiness_and_metrics(api: Api) -> None:
    assert (await api.client.get("/-/liveness")).json() == {"status": "ok"}
    ready = await api.client.get("/-/readiness")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"
    metrics = await api.client.get("/metrics")
    assert metrics.status_code == 200
    assert "geogit_internal_api_requests_total" in metrics.text


async def test_every_response_carries_the_correlation_id(api: Api) -> None:
    response = await api.client.get("/-/liveness", headers={"X-Request-Id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"
    generated = await api.client.get("/-/liveness", headers={"X-Request-Id": "bad id; drop"})
    assert generated.headers["X-Request-Id"] not in ("", "bad id; drop")


async def test_unknown_routes_are_gitlab_shaped_404s(api: Api) -> None:
    response = await api.client.get("/api/v4/nothing/here")
    assert response.status_code == 404
    assert response.json() == {"message": "404 Not Found"}


async def test_an_unreachable_database_is_a_503_not_a_crash(storage: StorageProcess) -> None:
    closed = Database()
    closed.url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing"
    app = create_app(make_settings(closed, storage))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://internal-api") as client,
    ):
        assert (await client.get("/-/liveness")).status_code == 200
        ready = await client.get("/-/readiness")
        assert ready.status_code == 503 and ready.json()["database"] == "unreachable"
        response = await client.get("/api/v4/user", headers={"PRIVATE-TOKEN": "glpat-x"})
        assert response.status_code == 503
        assert response.json() == {"message": "the site's database is unavailable"}
        assert response.headers["retry-after"] == "5"
