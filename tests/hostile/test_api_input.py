"""Hostile input to the admin API through the real edge of both sites (issue 9 items 2, 5).

Every case is sent on one keep-alive connection through a site's edge proxy, then a normal
request follows on that same connection and must succeed: a failed request must never poison
a pooled connection (a 500 used to close the internal API's side, and another user's next
request through the edge got a 502). Each case asserts the status and the whole message, that
no row changed on either site, and that every service of both sites is still healthy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from e2e import Account
from geo_support import wait_until
from hostile_support import TABLES, GeoPair, geo_pair, row_counts, unhealthy

from geogit.common.http_testing import OneConnection
from geogit.common.text import UNSTORABLE_MESSAGE
from geogit.devstack.site import Site

__all__ = ["geo_pair"]  # the fixture

OID = "0123456789abcdef0123456789abcdef01234567"


def _invalid(field: str, problem: str = UNSTORABLE_MESSAGE) -> dict[str, Any]:
    return {"message": f"400 Bad request - {field} is invalid: {problem}"}


def _field(field: str, problem: str) -> dict[str, Any]:
    return {"message": {field: [problem]}}


def _user(**fields: str) -> dict[str, str]:
    return {"username": "x", "email": "x@example.com", "name": "X", "password": "p" * 12, **fields}


# (who, method, path, JSON body or None, status, answer); {project} and {user} are filled in.
UNSTORABLE = {
    "search projects %00": (
        "owner",
        "GET",
        "/api/v4/projects?search=%00",
        None,
        400,
        _invalid("search"),
    ),
    "search users %00": (
        "owner",
        "GET",
        "/api/v4/users?search=a%00",
        None,
        400,
        _invalid("search"),
    ),
    "username query %00": (
        "owner",
        "GET",
        "/api/v4/users?username=%00",
        None,
        400,
        _invalid("username"),
    ),
    # The edge refuses a path with a control character before any service sees it.
    "project id %00": (
        "owner",
        "GET",
        "/api/v4/projects/a%00b",
        None,
        400,
        "The request path contains control characters or backslashes.\n",
    ),
    "project name NUL": (
        "owner",
        "POST",
        "/api/v4/projects",
        {"name": "a\x00"},
        400,
        _invalid("name"),
    ),
    "project name surrogate": (
        "owner",
        "POST",
        "/api/v4/projects",
        {"name": "a\ud800"},
        400,
        _invalid("name"),
    ),
    "description NUL": (
        "owner",
        "PUT",
        "/api/v4/projects/{project}",
        {"description": "\x00"},
        400,
        _invalid("description"),
    ),
    "user name NUL": (
        "admin",
        "POST",
        "/api/v4/users",
        _user(name="a\x00b"),
        400,
        _invalid("name"),
    ),
    "username surrogate": (
        "admin",
        "POST",
        "/api/v4/users",
        _user(username="\udfff"),
        400,
        _invalid("username"),
    ),
    "key title NUL": (
        "owner",
        "POST",
        "/api/v4/user/keys",
        {"title": "t\x00", "key": "ssh-ed25519 AAAA"},
        400,
        _invalid("title"),
    ),
    "token name NUL": (
        "admin",
        "POST",
        "/api/v4/users/{user}/personal_access_tokens",
        {"name": "\x00", "scopes": ["api"]},
        400,
        _invalid("name"),
    ),
    "transfer namespace %00": (
        "admin",
        "PUT",
        "/api/v4/projects/{project}/transfer?namespace=%00",
        None,
        400,
        _invalid("namespace"),
    ),
}
FULL_REF = "must be a branch name, not a full ref: give 'main', not 'refs/heads/main'"
BRANCH_NAMES = {
    "default HEAD": (
        "owner",
        "POST",
        "/api/v4/projects",
        {"path": "b1", "default_branch": "HEAD"},
        400,
        _field("default_branch", "'HEAD' is reserved: git reads it as the current commit"),
    ),
    "default -x": (
        "owner",
        "POST",
        "/api/v4/projects",
        {"path": "b2", "default_branch": "-x"},
        400,
        _field("default_branch", "must not start with '-'"),
    ),
    "default object id": (
        "owner",
        "PUT",
        "/api/v4/projects/{project}",
        {"default_branch": OID},
        400,
        _field("default_branch", "looks like an object id: git would read it as a commit"),
    ),
    "default full ref": (
        "owner",
        "PUT",
        "/api/v4/projects/{project}",
        {"default_branch": "refs/heads/main"},
        400,
        _field("default_branch", FULL_REF),
    ),
    "protect full ref": (
        "owner",
        "POST",
        "/api/v4/projects/{project}/protected_branches",
        {"name": "refs/heads/main"},
        400,
        _field("name", FULL_REF),
    ),
    "protect HEAD": (
        "owner",
        "POST",
        "/api/v4/projects/{project}/protected_branches",
        {"name": "HEAD"},
        400,
        _field("name", "'HEAD' is reserved: git reads it as the current commit"),
    ),
}
RESERVED = {
    f"username {name}": (
        "admin",
        "POST",
        "/api/v4/users",
        _user(username=name),
        400,
        _field("username", f"'{name}' is reserved: it is a route of this site"),
    )
    for name in (
        "api",
        "help",
        "admin",
        "explore",
        "groups",
        "projects",
        "users",
        "dashboard",
        "assets",
        "uploads",
        "public",
        "s",
        "search",
        "Api",
    )
} | {
    "username -": (
        "admin",
        "POST",
        "/api/v4/users",
        _user(username="-"),
        400,
        _field("username", "'-' is reserved: it is a route of this site"),
    ),
}
EDGES = {
    "search projects %": ("owner", "GET", "/api/v4/projects?search=%25", None, 200, []),
    "search projects _": ("owner", "GET", "/api/v4/projects?search=_", None, 200, []),
    "search users %": ("admin", "GET", "/api/v4/users?search=%25", None, 200, []),
    "search users _": ("admin", "GET", "/api/v4/users?search=_", None, 200, []),
    "transfer to nobody (query)": (
        "admin",
        "PUT",
        "/api/v4/projects/{project}/transfer?namespace=nobody",
        None,
        404,
        {"message": "404 Namespace Not Found - namespace 'nobody' does not exist"},
    ),
    "transfer to nobody (body)": (
        "admin",
        "PUT",
        "/api/v4/projects/{project}/transfer",
        {"namespace": "nobody"},
        404,
        {"message": "404 Namespace Not Found - namespace 'nobody' does not exist"},
    ),
    # A user's request names no internal scope or header: through the secondary it carries the
    # secondary's proxy token (403), on the primary it carries none (401).
    "geo events as a user": ("owner", "GET", "/api/v4/geo/events", None, None, None),
}
CATEGORIES = {
    "unstorable text": UNSTORABLE,
    "branch names": BRANCH_NAMES,
    "reserved usernames": RESERVED,
    "small edges": EDGES,
}
CASES = [
    pytest.param(case, id=f"{category}: {name}")
    for category, cases in CATEGORIES.items()
    for name, case in cases.items()
]


@pytest.fixture(scope="module")
def owner(geo_pair: GeoPair) -> tuple[Account, dict[str, Any]]:
    """A user and their project, once the secondary's read model holds them (its rows must
    not move while a case runs)."""
    account = geo_pair.api.account()
    project = geo_pair.api.project(account)

    def known(table: str) -> bool:
        return row_counts(geo_pair.secondary)[table] == row_counts(geo_pair.primary)[table]

    mirrored = [table for table in TABLES if table != "outbox"]
    wait_until(lambda: all(known(t) for t in mirrored), what="the secondary's read model")
    return account, project


@pytest.fixture(params=["primary", "secondary"])
def through(request: pytest.FixtureRequest, geo_pair: GeoPair) -> Iterator[Site]:
    yield geo_pair.primary if request.param == "primary" else geo_pair.secondary


@pytest.mark.parametrize("case", CASES)
def test_hostile_api_input(
    geo_pair: GeoPair,
    owner: tuple[Account, dict[str, Any]],
    through: Site,
    case: tuple[str, str, str, Any, int | None, Any],
) -> None:
    who, method, path, body, status, answer = case
    if status is None:
        status, answer = (
            (401, {"message": "401 Unauthorized"})
            if through.role == "primary"
            else (403, {"message": "403 Forbidden"})
        )
    account, project = owner
    token = account.token if who == "owner" else geo_pair.api.http.headers["PRIVATE-TOKEN"]
    before = {site.name: row_counts(site) for site in geo_pair.sites}
    connection = OneConnection(through.http_url, {"PRIVATE-TOKEN": token})
    try:
        got = connection.request(method, path.format(project=project["id"], user=account.id), body)
        shown = got.body.decode() if isinstance(answer, str) else got.json()
        assert (got.status, shown) == (status, answer), got.body
        follow = connection.request("GET", f"/api/v4/projects/{project['id']}")
        assert follow.status == 200, follow.body
        assert follow.json()["default_branch"] == "main"
        assert follow.json()["path_with_namespace"] == project["path_with_namespace"]
    finally:
        connection.close()
    assert {site.name: row_counts(site) for site in geo_pair.sites} == before
    assert unhealthy(*geo_pair.sites) == []


def test_case_counts() -> None:
    """The closing note reports these; they change only when a case is added here."""
    assert {category: len(cases) for category, cases in CATEGORIES.items()} == {
        "unstorable text": 12,
        "branch names": 6,
        "reserved usernames": 15,
        "small edges": 7,
    }
