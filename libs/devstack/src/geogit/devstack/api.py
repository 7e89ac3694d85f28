"""The slice of the admin REST API (GitLab v4 shapes, DESIGN §6) the dev stack drives.

Only what `up`, `demo`, `status` and `geo promote` need: who am I, find/create a user, give
them a token, find/create a project, register Geo sites and read their status, ask a site what
it is, preview and run a promotion. Errors carry GitLab's `{"message": ...}` so a refusal reads
the same as on GitLab.
"""

from __future__ import annotations

import datetime
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from geogit.common.geo_coordination import (
    PromotionMode,
    PromotionOut,
    PromotionPreview,
    SiteStateOut,
)

_TOKEN_LIFETIME = datetime.timedelta(days=365)
# A promotion answers once it is done: the candidate may wait for its feed and replicas.
PROMOTE_TIMEOUT_SECONDS = 300.0
_Model = TypeVar("_Model", bound=BaseModel)


class ApiError(RuntimeError):
    """The API refused or failed; `status` is the HTTP status (0 when unreachable)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class AdminApi:
    """A client of `<base_url>/api/v4` with one personal access token."""

    def __init__(self, base_url: str, token: str, timeout: float = 30.0) -> None:
        self._client = httpx.Client(
            base_url=f"{base_url.rstrip('/')}/api/v4",
            headers={"PRIVATE-TOKEN": token},
            timeout=timeout,
            trust_env=False,  # loopback only; an http_proxy must not intercept it
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: Any = None,
        timeout: float | None = None,
    ) -> Any:
        wait = httpx.USE_CLIENT_DEFAULT if timeout is None else timeout
        try:
            response = self._client.request(method, path, json=json, params=params, timeout=wait)
        except httpx.HTTPError as exc:
            raise ApiError(f"{method} /api/v4{path}: {exc}") from exc
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            status = str(response.status_code)
            # GitLab's messages usually start with the status already ("404 Project Not Found").
            shown = message if str(message).startswith(status) else f"{status} {message}"
            raise ApiError(f"{method} /api/v4{path}: {shown}", response.status_code)
        return response.json() if response.content else None

    def current_user(self) -> dict[str, Any]:
        user: dict[str, Any] = self._request("GET", "/user")
        return user

    def find_user(self, username: str) -> dict[str, Any] | None:
        users: list[dict[str, Any]] = self._request("GET", "/users", params={"username": username})
        return next((user for user in users if user.get("username") == username), None)

    def create_user(self, username: str, email: str, name: str, password: str) -> dict[str, Any]:
        # Only fields every GitLab-shaped server knows: geogit refuses unknown fields.
        body = {"username": username, "email": email, "name": name, "password": password}
        user: dict[str, Any] = self._request("POST", "/users", json=body)
        return user

    def create_token(self, user_id: int, name: str, scopes: list[str]) -> str:
        expires = datetime.date.today() + _TOKEN_LIFETIME
        body = {"name": name, "scopes": scopes, "expires_at": expires.isoformat()}
        answer = self._request("POST", f"/users/{user_id}/personal_access_tokens", json=body)
        return str(answer["token"])

    def find_project(self, full_path: str) -> dict[str, Any] | None:
        try:
            project: dict[str, Any] = self._request("GET", f"/projects/{quote(full_path, '')}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return project

    def create_project(
        self, name: str, visibility: str, for_user_id: int | None = None
    ) -> dict[str, Any]:
        """Create a project for the token's user, or (admin) for `for_user_id`."""
        path = "/projects" if for_user_id is None else f"/projects/user/{for_user_id}"
        body = {"name": name, "path": name, "visibility": visibility}
        project: dict[str, Any] = self._request("POST", path, json=body)
        return project

    def move_storage(self, project_id: int, destination: str) -> dict[str, Any]:
        """Schedule a repository storage move; the answer is the move, as `storage_move` gives."""
        body = {"destination_storage_name": destination}
        move: dict[str, Any] = self._request(
            "POST", f"/projects/{project_id}/repository_storage_moves", json=body
        )
        return move

    def storage_move(self, project_id: int, move_id: int) -> dict[str, Any]:
        move: dict[str, Any] = self._request(
            "GET", f"/projects/{project_id}/repository_storage_moves/{move_id}"
        )
        return move

    def user_keys(self, user_id: int) -> list[dict[str, Any]]:
        keys: list[dict[str, Any]] = self._request("GET", f"/users/{user_id}/keys")
        return keys

    def add_key(self, user_id: int, title: str, key: str) -> None:
        self._request("POST", f"/users/{user_id}/keys", json={"title": title, "key": key})

    def sites(self) -> list[dict[str, Any]]:
        sites: list[dict[str, Any]] = self._request("GET", "/geo/sites")
        return sites

    def add_site(self, name: str, url: str, *, primary: bool, public_key: str) -> dict[str, Any]:
        body = {"name": name, "url": url, "primary": primary, "public_key": public_key}
        site: dict[str, Any] = self._request("POST", "/geo/sites", json=body)
        return site

    def update_site(self, site_id: int, **changes: Any) -> dict[str, Any]:
        site: dict[str, Any] = self._request("PUT", f"/geo/sites/{site_id}", json=changes)
        return site

    def site_status(self, site_id: int) -> dict[str, Any]:
        status: dict[str, Any] = self._request("GET", f"/geo/sites/{site_id}/status")
        return status

    def site_state(self) -> SiteStateOut:
        """What the site answering says it is (its own internal API, even on a secondary)."""
        answer = self._request("GET", "/geo/site_state")
        return _parsed(SiteStateOut, "GET /api/v4/geo/site_state", answer)

    def promotion_preview(self, site_id: int, mode: PromotionMode) -> PromotionPreview:
        path = f"/geo/sites/{site_id}/promotion"
        answer = self._request("GET", path, params={"mode": mode})
        return _parsed(PromotionPreview, f"GET /api/v4{path}", answer)

    def promote(self, site_id: int, mode: PromotionMode) -> PromotionOut:
        path = f"/geo/sites/{site_id}/promote"
        answer = self._request("POST", path, json={"mode": mode}, timeout=PROMOTE_TIMEOUT_SECONDS)
        return _parsed(PromotionOut, f"POST /api/v4{path}", answer)


def _parsed(kind: type[_Model], request: str, answer: Any) -> _Model:
    try:
        return kind.model_validate(answer)
    except ValidationError as exc:
        raise ApiError(f"{request}: unexpected answer: {exc}") from exc
