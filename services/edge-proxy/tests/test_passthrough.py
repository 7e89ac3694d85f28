"""/api/v4/* passed to the internal API: streamed both ways, headers as a proxy sets them."""

from __future__ import annotations

import hashlib
import http.client
from collections.abc import Iterator

import httpx
from edge_harness import API_BODY_LIMIT
from fake_internal_api import FakeInternalApi

from geogit.edge_proxy.testing import EdgeProxyProcess

MIB = 1024 * 1024


def test_large_response_streams_without_buffering(
    edge: EdgeProxyProcess, internal_api: FakeInternalApi
) -> None:
    """The stand-in pauses after 1 MiB until the client has it: a buffering proxy deadlocks."""
    url = f"{edge.url}/api/v4/fake/download"
    received = 0
    with httpx.stream("GET", url, params={"size": 20 * MIB, "gate": "1"}, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["geogit-served-by"] == "test-site"
        assert response.headers["geogit-route"] == "local"
        for chunk in response.iter_raw():
            received += len(chunk)
            if received >= MIB:
                internal_api.policy.release_download.set()
    assert received == 20 * MIB


def test_large_request_streams_without_buffering(
    edge: EdgeProxyProcess, internal_api: FakeInternalApi
) -> None:
    """The client holds back all but the first MiB until upstream has seen bytes."""
    digest = hashlib.sha256()

    def body() -> Iterator[bytes]:
        for i in range(20):
            if i == 1:
                assert internal_api.policy.upload_started.wait(10), "upload was buffered"
            chunk = bytes([i]) * MIB
            digest.update(chunk)
            yield chunk

    response = httpx.post(f"{edge.url}/api/v4/fake/echo/upload", content=body(), timeout=30)
    assert response.status_code == 200
    report = response.json()
    assert (report["size"], report["sha256"]) == (20 * MIB, digest.hexdigest())


def test_headers_forwarded_as_a_proxy_should(edge: EdgeProxyProcess) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", edge.port, timeout=10)
    connection.request(
        "PUT",
        "/api/v4/fake/echo/projects/group%2Fproject?per_page=2",
        body=b"hello",
        headers={
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "must not pass",
            "Keep-Alive": "timeout=5",
            "Geogit-Api-Request": "forged-internal-token",
            "X-Forwarded-For": "203.0.113.9",
            "X-Request-Id": "passthrough-1",
            "Private-Token": "user-token",
        },
    )
    response = connection.getresponse()
    report = response.read()
    assert response.status == 200
    assert response.getheader("x-upstream") == "fake"
    assert response.getheader("set-cookie", "").startswith("session=")
    assert response.getheader("x-request-id") == "passthrough-1"
    echo = httpx.Response(200, content=report).json()
    headers = dict(echo["headers"])
    assert echo["method"] == "PUT" and echo["size"] == 5
    assert echo["raw_path"] == "/api/v4/fake/echo/projects/group%2Fproject"
    assert echo["query"] == "per_page=2"
    assert "x-hop" not in headers and "keep-alive" not in headers
    assert "geogit-api-request" not in headers
    assert headers["private-token"] == "user-token"
    assert headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == f"127.0.0.1:{edge.port}"
    assert headers["x-request-id"] == "passthrough-1"
    # The edge's client keeps no cookies: the next user's request carries none.
    connection.request("GET", "/api/v4/fake/echo/again")
    again = httpx.Response(200, content=connection.getresponse().read()).json()
    assert "cookie" not in dict(again["headers"])
    connection.close()


def test_internal_endpoints_are_not_exposed(
    edge: EdgeProxyProcess, internal_api: FakeInternalApi
) -> None:
    for method, path in [
        ("POST", "/api/v4/internal/allowed"),
        ("POST", "/api/v4/internal/git_http/authorize"),
        ("GET", "/api/v4/internal"),
        ("POST", "/api/v4/%69nternal/allowed"),
    ]:
        response = httpx.request(method, f"{edge.url}{path}", json={})
        assert response.status_code == 404, path
        assert response.json() == {"message": "404 Not Found"}
    connection = http.client.HTTPConnection("127.0.0.1", edge.port, timeout=10)
    connection.request("POST", "/api/v4/projects/../internal/allowed", body=b"{}")
    response = connection.getresponse()
    assert response.status == 400 and b"'..'" in response.read()
    assert not internal_api.policy.allowed_calls and not internal_api.policy.git_http_calls


def test_oversized_streamed_api_body_is_cut_off(edge: EdgeProxyProcess) -> None:
    def body() -> Iterator[bytes]:
        for _ in range(API_BODY_LIMIT // MIB + 1):
            yield bytes(MIB)

    response = httpx.post(f"{edge.url}/api/v4/fake/echo/big", content=body(), timeout=30)
    assert response.status_code == 413
    assert response.json() == {"message": "413 Request Entity Too Large"}


def test_oversized_api_body_is_refused_before_forwarding(edge: EdgeProxyProcess) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", edge.port, timeout=10)
    connection.putrequest("POST", "/api/v4/fake/echo/big")
    connection.putheader("Content-Length", str(10**10))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413
    assert response.getheader("geogit-served-by") == "test-site"
