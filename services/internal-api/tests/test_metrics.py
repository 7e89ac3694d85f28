"""Each app counts into a registry of its own: two sites in one process never mix metrics."""

from __future__ import annotations

import httpx
from starlette.types import Receive, Scope, Send

from geogit.internal_api.metrics import Metrics
from geogit.internal_api.middleware import RequestContext

SAMPLE = "geogit_internal_api_requests_total"
LABELS = {"method": "GET", "route": "unmatched", "status": "204"}


async def _no_content(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def test_requests_are_counted_by_their_own_app_only() -> None:
    mine, other = Metrics(), Metrics()
    transport = httpx.ASGITransport(app=RequestContext(_no_content, mine))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        await client.get("/anything")
    assert mine.registry.get_sample_value(SAMPLE, LABELS) == 1
    assert other.registry.get_sample_value(SAMPLE, LABELS) is None


def test_metrics_page_shows_the_process_too() -> None:
    page = Metrics().render().decode()
    assert "geogit_outbox_published_total" in page
    assert "python_info" in page
