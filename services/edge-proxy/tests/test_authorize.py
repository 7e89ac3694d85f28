"""What the edge does with each answer of the internal API's git_http/authorize."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from edge_harness import Project, git, message, serve_answer, serving
from fake_internal_api import FakeInternalApi, GitHttpAnswer
from fastapi.responses import JSONResponse

from geogit.common.internal_api import GitHttpAuthorizeRequest, GitHttpRedirect
from geogit.common.net import free_port
from geogit.common.paths import hashed_repository_path
from geogit.common.proto.storage.v1 import shared_pb2
from geogit.edge_proxy.testing import EdgeProxyProcess
from geogit.storage.testing import API_SECRET, StorageProcess


def info_refs(url: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{url}/info/refs", params={"service": "git-upload-pack"}, headers=headers)


def test_401_makes_git_ask_for_credentials(
    project: Project, internal_api: FakeInternalApi, tmp_path: Path, env: dict[str, str]
) -> None:
    internal_api.policy.git_http = lambda _: message(401, "HTTP Basic: Access denied")
    response = info_refs(project.url)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="geogit"'
    assert response.text == "HTTP Basic: Access denied\n"
    result = git("clone", project.url, str(tmp_path / "c"), env=env, check=False)
    assert result.returncode != 0
    assert "could not read Username" in result.stderr


def test_credentials_in_the_url_reach_authorize_as_basic(
    populated: Project,
    storage: StorageProcess,
    internal_api: FakeInternalApi,
    tmp_path: Path,
    env: dict[str, str],
) -> None:
    def needs_credentials(request: GitHttpAuthorizeRequest) -> GitHttpAnswer:
        if request.authorization != "Basic " + base64.b64encode(b"alice:s3cret").decode():
            return message(401, "HTTP Basic: Access denied")
        return serve_answer(storage, populated.repo)

    internal_api.policy.git_http = needs_credentials
    with_credentials = populated.url.replace("http://", "http://alice:s3cret@")
    git("clone", "-q", with_credentials, str(tmp_path / "ok"), env=env)
    wrong = populated.url.replace("http://", "http://alice:wrong@")
    result = git("clone", wrong, str(tmp_path / "no"), env=env, check=False)
    assert result.returncode != 0
    assert "remote: HTTP Basic: Access denied" in result.stderr
    assert "Authentication failed" in result.stderr


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (403, "You are not allowed to download code from this project."),
        (404, "The project you were looking for could not be found."),
    ],
)
def test_denials_are_shown_by_git(
    project: Project,
    internal_api: FakeInternalApi,
    tmp_path: Path,
    env: dict[str, str],
    status: int,
    text: str,
) -> None:
    internal_api.policy.git_http = lambda _: message(status, text)
    result = git("clone", project.url, str(tmp_path / "c"), env=env, check=False)
    assert result.returncode != 0
    assert f"remote: {text}" in result.stderr
    response = info_refs(project.url)
    assert (response.status_code, response.text) == (status, text + "\n")
    assert response.headers["content-type"].startswith("text/plain")


def test_redirect_is_followed_by_git(
    populated: Project,
    storage: StorageProcess,
    internal_api: FakeInternalApi,
    edge: EdgeProxyProcess,
    tmp_path: Path,
    env: dict[str, str],
) -> None:
    location = f"/{populated.path}.git/info/refs?service=git-upload-pack"
    serve = serving(storage, populated)

    def moved(request: GitHttpAuthorizeRequest) -> GitHttpAnswer:
        if request.project == "old/name":
            return GitHttpRedirect(location=location)
        return serve(request)

    internal_api.policy.git_http = moved
    response = info_refs(f"{edge.url}/old/name.git")
    assert (response.status_code, response.headers["location"]) == (302, location)
    result = git("clone", f"{edge.url}/old/name.git", str(tmp_path / "c"), env=env)
    assert "redirecting to" in result.stderr
    assert (tmp_path / "c" / "file0.txt").exists()


@pytest.mark.parametrize(
    "answer",
    [
        JSONResponse({"detail": "Not Found"}, 404),  # FastAPI's own 404: no such endpoint
        JSONResponse({"detail": "token expired"}, 401),  # our JWT refused, not the user
        JSONResponse({"action": "shrug"}),
        JSONResponse({"action": "serve"}),  # missing fields
        JSONResponse({"message": "boom"}, 500),
        GitHttpRedirect(location="//evil.example/x"),
    ],
    ids=["foreign-404", "foreign-401", "unknown-action", "incomplete", "500", "open-redirect"],
)
def test_unexpected_answers_are_gateway_errors(
    project: Project, internal_api: FakeInternalApi, answer: GitHttpAnswer
) -> None:
    internal_api.policy.git_http = lambda _: answer
    response = info_refs(project.url)
    assert response.status_code == 502
    assert "internal API gave an invalid" in response.text
    assert response.headers["geogit-served-by"] == "test-site"


def test_storage_failure_before_output_is_an_http_error(
    project: Project, storage: StorageProcess, internal_api: FakeInternalApi
) -> None:
    # The internal API knows the project, storage has no repository for it.
    gone = shared_pb2.Repository(
        storage_name=storage.name,
        relative_path=hashed_repository_path(999_999_937),
        gl_repository="project-999999937",
        gl_project_path=project.path,
    )
    internal_api.policy.git_http = lambda _: serve_answer(storage, gone)
    response = info_refs(project.url, **{"X-Request-Id": "trace-me-42"})
    assert response.status_code == 404
    assert response.text == "The repository was not found on storage.\n"
    assert "trace-me-42" in storage.log_path.read_text()


@pytest.fixture
def orphan_edge(edge_logs: Path) -> Iterator[EdgeProxyProcess]:
    """An edge whose internal API is not running."""
    proxy = EdgeProxyProcess(edge_logs, f"http://127.0.0.1:{free_port()}", API_SECRET)
    proxy.start(wait_ready=False)
    yield proxy
    proxy.stop()


def test_internal_api_down(
    orphan_edge: EdgeProxyProcess, tmp_path: Path, env: dict[str, str]
) -> None:
    assert httpx.get(f"{orphan_edge.url}/-/readiness").status_code == 503
    url = f"{orphan_edge.url}/group/project.git"
    response = info_refs(url)
    assert response.status_code == 503
    assert "the internal API is unavailable" in response.text
    result = git("clone", url, str(tmp_path / "c"), env=env, check=False)
    assert "remote: The Git request could not be authorized: the internal API is unavailable" in (
        result.stderr
    )
    api = httpx.get(f"{orphan_edge.url}/api/v4/projects")
    assert api.status_code == 503
    assert api.json() == {"message": "the internal API is unavailable"}
