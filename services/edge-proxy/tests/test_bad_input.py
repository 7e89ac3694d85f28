"""Bad requests get a clear 4xx from the edge and reach neither the internal API nor storage."""

from __future__ import annotations

import gzip
import http.client

import httpx
import pytest
from edge_harness import Project
from fake_internal_api import FakeInternalApi

from geogit.common.pktline import FLUSH_PKT, pkt_line
from geogit.edge_proxy.testing import EdgeProxyProcess

UPLOAD_REQUEST = "application/x-git-upload-pack-request"


def raw_request(
    edge: EdgeProxyProcess, method: str, target: str, headers: dict[str, str] | None = None
) -> tuple[int, str, dict[str, str]]:
    """A request whose target is sent exactly as written (httpx would normalise `..`)."""
    connection = http.client.HTTPConnection("127.0.0.1", edge.port, timeout=10)
    connection.request(method, target, headers=headers or {})
    response = connection.getresponse()
    body = response.read().decode(errors="replace")
    connection.close()
    return response.status, body, {k.lower(): v for k, v in response.getheaders()}


@pytest.mark.parametrize(
    ("target", "status", "says"),
    [
        ("/../../etc/passwd", 400, "'..'"),
        ("/group/../project.git/info/refs?service=git-upload-pack", 400, "'..'"),
        ("/group/%2e%2e/project.git/info/refs?service=git-upload-pack", 400, "'..'"),
        ("/group/./project.git/info/refs?service=git-upload-pack", 400, "'.'"),
        ("//group/project.git/info/refs?service=git-upload-pack", 400, "empty segments"),
        ("/group/pro%00ject.git/info/refs?service=git-upload-pack", 400, "control characters"),
        ("/group/-project.git/info/refs?service=git-upload-pack", 400, "must be 1-255"),
        ("/group/project.git.git/info/refs?service=git-upload-pack", 400, "'.git'"),
        ("/group/project.git/info/refs?service=git-upload-archive", 400, "Unknown git service"),
        ("/group/project.git/info/refs", 403, "Dumb HTTP is not supported"),
        ("/group/project.git/HEAD", 404, "404 Not Found"),
        ("/a/b/c.git/info/refs?service=git-upload-pack", 404, "404 Not Found"),
        ("/", 404, "404 Not Found"),
        ("/users/sign_in", 404, "404 Not Found"),
        ("/" + "a" * 9000, 414, "URL longer than"),
    ],
)
def test_bad_targets(
    edge: EdgeProxyProcess, internal_api: FakeInternalApi, target: str, status: int, says: str
) -> None:
    code, body, headers = raw_request(edge, "GET", target)
    assert (code, says in body) == (status, True), body
    assert headers["geogit-served-by"] == "test-site" and headers["geogit-route"] == "local"
    assert not internal_api.policy.git_http_calls


def test_wrong_method_is_405(edge: EdgeProxyProcess) -> None:
    code, _, headers = raw_request(edge, "GET", "/group/project.git/git-upload-pack")
    assert (code, headers["allow"]) == (405, "POST")


def test_oversized_headers(edge: EdgeProxyProcess, internal_api: FakeInternalApi) -> None:
    target = "/group/project.git/info/refs?service=git-upload-pack"
    code, body, _ = raw_request(edge, "GET", target, {"X-Big": "x" * 33_000})
    assert (code, "Request headers larger than" in body) == (431, True)
    assert not internal_api.policy.git_http_calls


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ({"Content-Type": "application/octet-stream"}, "Content-Type must be"),
        ({"Content-Type": UPLOAD_REQUEST, "Content-Encoding": "br"}, "not supported"),
    ],
)
def test_unsupported_bodies_are_415(
    project: Project, internal_api: FakeInternalApi, headers: dict[str, str], says: str
) -> None:
    response = httpx.post(f"{project.url}/git-upload-pack", content=b"0000", headers=headers)
    assert (response.status_code, says in response.text) == (415, True)
    assert not internal_api.policy.git_http_calls


def test_invalid_git_protocol_header(project: Project, internal_api: FakeInternalApi) -> None:
    response = httpx.get(
        f"{project.url}/info/refs",
        params={"service": "git-upload-pack"},
        headers={"Git-Protocol": "version=2; rm -rf /"},
    )
    assert (response.status_code, response.text) == (400, "Invalid Git-Protocol header.\n")
    assert not internal_api.policy.git_http_calls


def test_corrupt_gzip_body(project: Project) -> None:
    body = gzip.compress(pkt_line(b"want 0000\n") + FLUSH_PKT)[:-12] + b"garbage!"
    response = httpx.post(
        f"{project.url}/git-upload-pack",
        content=body,
        headers={"Content-Type": UPLOAD_REQUEST, "Content-Encoding": "gzip"},
    )
    assert response.status_code == 400
    assert "gzip" in response.text


def test_malformed_pkt_lines_are_refused_by_storage(project: Project) -> None:
    response = httpx.post(
        f"{project.url}/git-upload-pack",
        content=b"zzzzwant nothing\n",
        headers={"Content-Type": UPLOAD_REQUEST},
    )
    assert response.status_code == 400
    assert "malformed pkt-line" in response.text


def _post_upload_pack(project: Project, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{project.url}/git-upload-pack",
        content=body,
        headers={"Content-Type": UPLOAD_REQUEST, **headers},
        timeout=30,
    )


# The error comes at the first line; the flush packets after it (1 MiB inflated) are bytes git
# never reads, which once turned the answer into a 502 beyond 64 KiB.
@pytest.mark.parametrize(
    ("encoding", "unread"), [("", 0), ("gzip", 0), ("gzip", 1024 * 1024), ("", 1024 * 1024)]
)
def test_git_protocol_errors_are_400_with_gits_message(
    populated: Project, populated_head: str, encoding: str, unread: int
) -> None:
    body = pkt_line(f"have {populated_head}\n".encode()) + FLUSH_PKT * (1 + unread // 4)
    headers = {"Content-Encoding": encoding} if encoding else {}
    response = _post_upload_pack(populated, gzip.compress(body) if encoding else body, **headers)
    assert response.status_code == 400
    assert response.text == (
        "fatal: git upload-pack: protocol error, expected to get object ID,"
        f" not 'have {populated_head}'\n"
    )


def test_not_our_ref_is_a_complete_response_carrying_gits_message(populated: Project) -> None:
    unknown = "1234567890" * 4
    body = pkt_line(f"want {unknown}\n".encode()) + FLUSH_PKT + pkt_line(b"done\n")
    response = _post_upload_pack(populated, body)  # httpx raises on a truncated body
    assert response.status_code == 200
    refused = f"ERR upload-pack: not our ref {unknown}".encode()
    assert response.content == pkt_line(refused) + pkt_line(
        f"ERR fatal: git upload-pack: not our ref {unknown}".encode()
    )


def test_gzip_inflating_beyond_the_bound_is_413(populated: Project, populated_head: str) -> None:
    want = pkt_line(f"want {populated_head}\n".encode()) + FLUSH_PKT
    body = gzip.compress(want + bytes(129 * 1024 * 1024))
    response = _post_upload_pack(populated, body, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413, response.text
    assert response.text == f"gzip request body inflates to more than {128 * 1024 * 1024} bytes\n"
