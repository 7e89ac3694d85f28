"""Health endpoints and metrics."""

from __future__ import annotations

import httpx

from geogit.edge_proxy.testing import EdgeProxyProcess


def test_health_endpoints(edge: EdgeProxyProcess) -> None:
    for path in ("/-/liveness", "/-/readiness"):
        response = httpx.get(edge.url + path)
        assert (response.status_code, response.json()) == (200, {"status": "ok"})
        assert response.headers["geogit-served-by"] == "test-site"
        assert len(response.headers["x-request-id"]) == 32


def test_metrics_count_requests_by_route_and_status(edge: EdgeProxyProcess) -> None:
    httpx.get(edge.url + "/nowhere")
    httpx.post(edge.url + "/-/liveness")
    text = httpx.get(edge.url + "/metrics").text
    assert 'geogit_edge_http_requests_total{route="not_found",status="404"}' in text
    assert 'geogit_edge_http_requests_total{route="method_not_allowed",status="405"}' in text
    assert 'geogit_edge_http_requests_in_flight{route="metrics"} 1.0' in text
    assert "geogit_edge_http_request_duration_seconds_bucket" in text
    assert "process_resident_memory_bytes" in text
