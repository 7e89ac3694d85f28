"""Site identity on the primary (DESIGN §3.4): a secondary's Geo token verifies against the
public key in the registry, and everything else is refused with its reason.

The route is the event store, a reader route; every request carrying a Geo token goes through
the same gate whatever the route.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from internal_api_support import Api, ServerInfo, internal_headers, unique
from secondary_support import Registration, Secondary, register_secondary

from geogit.common.geo import BOOTSTRAP_EPOCH, GEO_TOKEN_HEADER, GeoSigner, generate_site_key
from geogit.internal_api.db import SessionMaker
from geogit.internal_api.models import GeoSite

EVENTS = "/api/v4/geo/events"
REFUSED = "403 Forbidden - Geo token refused: "


@pytest.fixture
async def client(server: ServerInfo) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        yield http


@pytest.fixture
def site(server: ServerInfo, admin_token: str) -> Registration:
    return register_secondary(server, admin_token)


async def _read(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get(EVENTS, params={"limit": 1}, headers={GEO_TOKEN_HEADER: token})


async def _refused(client: httpx.AsyncClient, token: str, reason: str) -> None:
    response = await _read(client, token)
    assert response.status_code == 403, response.text
    assert response.json() == {"message": REFUSED + reason}


def _signer(name: str, private_key: str | None = None) -> GeoSigner:
    return GeoSigner(private_key or generate_site_key()[0], name, lambda: BOOTSTRAP_EPOCH)


async def test_a_secondarys_token_verifies_against_its_registered_key(
    client: httpx.AsyncClient, site: Registration
) -> None:
    for scope in ("events", "replication"):
        response = await _read(client, site.signer.token(scope))
        assert response.status_code == 200, response.text
    # Signed with any other key, or presented under another registered name: refused.
    await _refused(client, _signer(site.name).token("events"), "token signature invalid")
    # A scope the reader routes do not take is the plain refusal a user would get.
    for scope in ("proxy", "site"):
        refused = await _read(client, site.signer.token(scope))
        assert refused.status_code == 403 and refused.json() == {"message": "403 Forbidden"}


async def test_unknown_own_and_hs256_tokens_are_refused(
    client: httpx.AsyncClient, site: Registration
) -> None:
    await _refused(client, _signer("nowhere").token("events"), "site 'nowhere' is not registered")
    await _refused(client, _signer("primary").token("events"), "site 'primary' is this site")
    now = int(time.time())
    claims = {"site": site.name, "scope": "events", "epoch": 1, "iss": f"geogit-site/{site.name}"}
    hs256 = jwt.encode(
        {**claims, "aud": "geogit-geo", "iat": now, "exp": now + 30}, "x" * 40, algorithm="HS256"
    )
    await _refused(client, hs256, "token algorithm 'HS256' not accepted (only EdDSA)")


async def test_disabled_rotated_and_keyless_sites_are_refused(
    client: httpx.AsyncClient, api: Api, site: Registration, db: SessionMaker
) -> None:
    path = f"/api/v4/geo/sites/{site.site_id}"
    disabled = await client.put(path, headers=api.admin, json={"enabled": False})
    assert disabled.status_code == 200, disabled.text
    await _refused(client, site.signer.token("events"), f"site {site.name!r} is disabled")
    await client.put(path, headers=api.admin, json={"enabled": True})
    assert (await _read(client, site.signer.token("events"))).status_code == 200

    # Rotation: the new key verifies from now on, the old one no longer does.
    private_key, public_key = generate_site_key()
    rotated = await client.put(path, headers=api.admin, json={"public_key": public_key})
    assert rotated.status_code == 200 and rotated.json()["public_key"] == public_key
    await _refused(client, site.signer.token("events"), "token signature invalid")
    assert (await _read(client, _signer(site.name, private_key).token("events"))).status_code == 200

    # A site registered before keys existed (migration 0005 leaves it without one).
    keyless = unique("keyless-")
    async with db() as session, session.begin():
        session.add(GeoSite(name=keyless, url=f"http://{keyless}.example.test"))
    await _refused(client, _signer(keyless).token("events"), f"site {keyless!r} has no public key")


async def test_a_site_registered_as_the_primary_is_not_a_secondary(
    client: httpx.AsyncClient, api: Api
) -> None:
    private_key, public_key = generate_site_key()
    name = unique("other-primary-")
    body = {"name": name, "url": "http://p.example.test", "primary": True, "public_key": public_key}
    added = await client.post("/api/v4/geo/sites", headers=api.admin, json=body)
    assert added.status_code == 201, added.text
    try:
        await _refused(
            client, _signer(name, private_key).token("events"), f"site {name!r} is not a secondary"
        )
    finally:
        removed = await client.delete(f"/api/v4/geo/sites/{added.json()['id']}", headers=api.admin)
        assert removed.status_code == 204


@pytest.mark.parametrize(
    ("public_key", "problem"),
    [
        ("not a key", "not a PEM public key (expected -----BEGIN PUBLIC KEY-----)"),
        (generate_site_key()[0], "this is a private key; give the site's public key"),
    ],
)
async def test_registration_refuses_a_malformed_public_key(
    client: httpx.AsyncClient, api: Api, public_key: str, problem: str
) -> None:
    body = {"name": unique("bad-key-"), "url": "http://x.example.test", "public_key": public_key}
    response = await client.post("/api/v4/geo/sites", headers=api.admin, json=body)
    assert response.status_code == 400
    assert response.json() == {"message": {"public_key": [problem]}}
    missing = await client.post(
        "/api/v4/geo/sites", headers=api.admin, json={"name": unique("x-"), "url": "http://x"}
    )
    assert missing.status_code == 400 and "public_key is missing" in missing.json()["message"]
    sites = (await client.get("/api/v4/geo/sites", headers=api.admin)).json()
    assert body["name"] not in {listed["name"] for listed in sites}


async def test_a_rotation_to_a_malformed_key_changes_nothing(
    client: httpx.AsyncClient, api: Api, site: Registration
) -> None:
    path = f"/api/v4/geo/sites/{site.site_id}"
    response = await client.put(path, headers=api.admin, json={"public_key": "garbage"})
    assert response.status_code == 400 and "public_key" in response.json()["message"]
    shown = await client.get(path, headers=api.admin)
    assert shown.json()["public_key"] == site.public_key
    assert (await _read(client, site.signer.token("events"))).status_code == 200


async def test_a_secondary_takes_no_geo_token(secondary: Secondary) -> None:
    async with httpx.AsyncClient(base_url=secondary.url, timeout=60) as http:
        response = await http.get(
            EVENTS, headers={GEO_TOKEN_HEADER: secondary.site.signer.token("events")}
        )
        assert response.status_code == 403
        assert response.json() == {"message": REFUSED + "this site is not the primary"}
        # Its own tools read it with the internal JWT.
        assert (await http.get(EVENTS, headers=internal_headers())).status_code == 200
