"""The Geo status page's access, its numbers against the API's, the failed-replica table and
the actions, against the real app (the browser test in tests/ drives it through two sites)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from internal_api_support import Api, outbox_rows, unique
from sqlalchemy.dialects.postgresql import insert

from geogit.common.geo import generate_site_key
from geogit.common.proto.events.v1 import domain_pb2
from geogit.internal_api.db import SessionMaker
from geogit.internal_api.events.outbox import site_aggregate
from geogit.internal_api.models import ReplicationStatus, utcnow
from geogit.internal_api.status_page.chart import lag_chart
from geogit.internal_api.status_page.session import COOKIE, safe_return_path
from geogit.internal_api.status_page.views import LagPoint


async def _secondary(api: Api) -> dict[str, Any]:
    name = unique("site-")
    response = await api.client.post(
        "/api/v4/geo/sites",
        headers=api.admin,
        json={"name": name, "url": "http://127.0.0.1:9/", "public_key": generate_site_key()[1]},
    )
    assert response.status_code == 201, response.text
    site: dict[str, Any] = response.json()
    return site


async def _failed(db: SessionMaker, site: str, project_id: int, error: str) -> None:
    async with db() as session, session.begin():
        await session.execute(
            insert(ReplicationStatus).values(
                site=site,
                project_id=project_id,
                state="failed",
                seq=1,
                error=error,
                attempts=4,
                next_retry_at=utcnow() + timedelta(minutes=5),
            )
        )


async def test_anonymous_callers_are_sent_to_sign_in_and_non_admins_refused(api: Api) -> None:
    anonymous = await api.client.get("/-/geo")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/-/geo/sign_in?return_to=/-/geo"
    person = await api.user()
    refused = await api.client.get("/-/geo", headers=person.headers)
    assert refused.status_code == 403 and "Only administrators" in refused.text
    forged = await api.client.get("/-/geo", cookies={COOKIE: "eyJhbGciOiJub25lIn0.e30."})
    assert forged.status_code == 303


async def test_sign_in_sets_a_session_that_ends_when_the_token_is_revoked(api: Api) -> None:
    admin = await api.user("admin", admin=True)
    wrong = await api.client.post("/-/geo/sign_in", data={"token": "glpat-nonsense"})
    assert wrong.status_code == 401 and "that token is not valid here" in wrong.text
    person = await api.user()
    not_admin = await api.client.post("/-/geo/sign_in", data={"token": person.token})
    assert not_admin.status_code == 401 and "only administrators" in not_admin.text
    signed = await api.client.post(
        "/-/geo/sign_in", data={"token": admin.token, "return_to": "//evil.example/"}
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/-/geo"
    cookie = signed.cookies[COOKIE]
    assert "httponly" in signed.headers["set-cookie"].lower()
    assert "samesite=strict" in signed.headers["set-cookie"].lower()
    page = await api.client.get("/-/geo", cookies={COOKIE: cookie})
    assert page.status_code == 200 and "Geo status" in page.text
    tokens = await api.client.get(
        "/api/v4/personal_access_tokens", headers=api.admin, params={"user_id": admin.id}
    )
    for token in tokens.json():
        revoked = await api.client.delete(
            f"/api/v4/personal_access_tokens/{token['id']}", headers=api.admin
        )
        assert revoked.status_code == 204, revoked.text
    after = await api.client.get("/-/geo", cookies={COOKIE: cookie})
    assert after.status_code == 303


@pytest.mark.parametrize(
    ("asked", "kept"),
    [
        ("/-/geo/projects/3", "/-/geo/projects/3"),
        ("//evil.example/-/geo", "/-/geo"),
        ("/-/geo//evil.example", "/-/geo"),
        ("https://evil.example/-/geo", "/-/geo"),
        ("/-/geox", "/-/geo"),
        ("/-/geo\\@evil", "/-/geo"),
    ],
)
def test_sign_in_returns_only_to_the_page_itself(asked: str, kept: str) -> None:
    assert safe_return_path(asked) == kept


async def test_the_page_shows_the_apis_numbers_and_a_failed_replica_with_its_cause(
    api: Api, db: SessionMaker
) -> None:
    site = await _secondary(api)
    owner = await api.user()
    project = await api.project(owner)
    cause = f"fetch failed: disk full <{random.randint(0, 10**6)}>"
    await _failed(db, site["name"], project["id"], cause)
    status = await api.client.get(f"/api/v4/geo/sites/{site['id']}/status", headers=api.admin)
    page = await api.client.get("/-/geo", headers=api.admin, params={"q": project["path"]})
    assert page.status_code == 200, page.text
    html = page.text
    counts = status.json()
    assert f'data-field="failed" class="bad">{counts["repositories_failed_count"]}<' in html
    assert f">{counts['repositories_synced_count']} / {counts['repositories_count']}<" in html
    # The cause, escaped; the attempts and the next retry; the project's own page linked.
    assert cause.replace("<", "&lt;").replace(">", "&gt;") in html and cause not in html
    assert f'href="/-/geo/projects/{project["id"]}"' in html
    assert '<td data-label="Attempts">4</td>' in html and "in 5 min" in html
    nothing = await api.client.get("/-/geo", headers=api.admin, params={"q": "no-such-thing-x"})
    assert 'id="no-problems"' in nothing.text
    detail = await api.client.get(f"/-/geo/projects/{project['id']}", headers=api.admin)
    assert detail.status_code == 200 and site["name"] in detail.text and "disk full" in detail.text
    missing = await api.client.get("/-/geo/projects/999999999", headers=api.admin)
    assert missing.status_code == 404


async def test_api_actions_put_the_request_on_the_log(api: Api, db: SessionMaker) -> None:
    site = await _secondary(api)
    owner = await api.user()
    project = await api.project(owner)
    base = f"/api/v4/geo/sites/{site['id']}"
    resync = await api.client.post(f"{base}/projects/{project['id']}/resync", headers=api.admin)
    assert resync.status_code == 202, resync.text
    backfill = await api.client.post(f"{base}/backfill", headers=api.admin)
    assert backfill.status_code == 202, backfill.text
    rows = await outbox_rows(db, site_aggregate(site["id"]))
    actions = [
        domain_pb2.GeoActionRequested.FromString(row.payload)
        for row in rows
        if row.type == "GeoActionRequested"
    ]
    assert [(a.site, a.action, a.project_id) for a in actions] == [
        (site["name"], "resync", project["id"]),
        (site["name"], "backfill", 0),
    ]


async def test_api_actions_refuse_what_is_wrong_and_write_nothing(
    api: Api, db: SessionMaker
) -> None:
    site = await _secondary(api)
    person = await api.user()
    project = await api.project(person)
    base = f"/api/v4/geo/sites/{site['id']}"
    before = len(await outbox_rows(db, site_aggregate(site["id"])))
    cases = [
        (f"{base}/projects/{project['id']}/resync", person.headers, 403),
        (f"{base}/projects/{project['id']}/resync", {}, 401),
        (f"{base}/projects/999999999/reverify", api.admin, 404),
        (f"{base}/projects/{project['id']}/explode", api.admin, 400),
        ("/api/v4/geo/sites/999999999/backfill", api.admin, 404),
    ]
    for path, headers, status in cases:
        response = await api.client.post(path, headers=headers)
        assert response.status_code == status, (path, response.text)
    assert len(await outbox_rows(db, site_aggregate(site["id"]))) == before


async def test_page_actions_need_the_sessions_csrf_value(api: Api, db: SessionMaker) -> None:
    site = await _secondary(api)
    admin = await api.user("admin", admin=True)
    signed = await api.client.post("/-/geo/sign_in", data={"token": admin.token})
    cookies = {COOKIE: signed.cookies[COOKIE]}
    page = await api.client.get("/-/geo", cookies=cookies)
    marker = 'name="csrf" value="'
    csrf = page.text.split(marker, 1)[1].split('"', 1)[0]
    target = f"/-/geo/sites/{site['id']}/backfill"
    forged = await api.client.post(target, cookies=cookies, data={"csrf": "guess"})
    assert forged.status_code == 403 and "did not come from this page" in forged.text
    forged_rows = await outbox_rows(db, site_aggregate(site["id"]))
    assert "GeoActionRequested" not in [row.type for row in forged_rows]
    done = await api.client.post(target, cookies=cookies, data={"csrf": csrf})
    assert done.status_code == 303 and done.headers["location"] == "/-/geo?requested=backfill"
    rows = await outbox_rows(db, site_aggregate(site["id"]))
    assert [row.type for row in rows].count("GeoActionRequested") == 1


def test_the_lag_chart_is_svg_with_one_line_pair_per_site_and_escaped_names() -> None:
    now = utcnow()
    points = [LagPoint(now - timedelta(minutes=m), 200.0 + m, 900.0 + 10 * m) for m in (30, 20, 5)]
    svg = lag_chart({"east<1>": points, "west": points[:1]}, ["east<1>", "west", "idle"], now)
    root = ET.fromstring(svg)
    namespace = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{namespace}polyline")) == 2  # east: p99 and median
    assert len(root.findall(f"{namespace}circle")) == 2  # west's one minute, both lines
    description = root.find(f"{namespace}desc")
    assert description is not None and "east<1>: 3 minutes" in (description.text or "")
    assert "idle: 0 minutes" in (description.text or "") and "up to 2 s" in (description.text or "")
    assert "east<1>" not in svg  # escaped in the markup
