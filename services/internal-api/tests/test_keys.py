"""SSH keys: real keys from ssh-keygen are accepted, anything malformed or weak is refused, and
the SSH gateway's lookup by key blob finds the owner."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from internal_api_support import Api, internal_headers, outbox_count, outbox_rows

from geogit.internal_api.accounts.ssh_keys import fingerprint_of
from geogit.internal_api.db import SessionMaker

KeyMaker = Callable[..., str]


@pytest.fixture(scope="module")
def keygen(tmp_path_factory: pytest.TempPathFactory) -> KeyMaker:
    directory = tmp_path_factory.mktemp("keys")
    counter = iter(range(10_000))

    def make(key_type: str = "ed25519", bits: int | None = None, comment: str = "me@host") -> str:
        path = directory / f"key{next(counter)}"
        args = ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", comment, "-f", str(path)]
        if bits:
            args += ["-b", str(bits)]
        subprocess.run(args, check=True, capture_output=True)
        return Path(f"{path}.pub").read_text().strip()

    return make


def test_fingerprints_match_openssh(keygen: KeyMaker, tmp_path: Path) -> None:
    for key_type, bits in (("ed25519", None), ("rsa", 2048), ("ecdsa", 384)):
        line = keygen(key_type, bits)
        (tmp_path / "k.pub").write_text(line)
        listed = subprocess.run(
            ["ssh-keygen", "-l", "-E", "sha256", "-f", str(tmp_path / "k.pub")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()[1]
        assert fingerprint_of(base64.b64decode(line.split()[1])) == listed


async def test_add_list_and_remove_own_keys(api: Api, db: SessionMaker, keygen: KeyMaker) -> None:
    alice = await api.user("alice")
    line = keygen(comment="alice@laptop")
    added = await api.client.post(
        "/api/v4/user/keys", headers=alice.headers, json={"title": "laptop", "key": line}
    )
    assert added.status_code == 201
    key = added.json()
    assert key["title"] == "laptop" and key["key"] == line and key["expires_at"] is None
    listed = await api.client.get("/api/v4/user/keys", headers=alice.headers)
    assert [k["id"] for k in listed.json()] == [key["id"]]
    assert listed.headers["X-Total"] == "1"
    public = await api.client.get(f"/api/v4/users/{alice.id}/keys", headers=api.admin)
    assert [k["id"] for k in public.json()] == [key["id"]]

    removed = await api.client.delete(f"/api/v4/user/keys/{key['id']}", headers=alice.headers)
    assert removed.status_code == 204
    assert (await api.client.get("/api/v4/user/keys", headers=alice.headers)).json() == []
    types = [e.type for e in await outbox_rows(db, f"user-{alice.id}")]
    assert types[-2:] == ["KeyAdded", "KeyRemoved"]


@pytest.mark.parametrize(
    ("key_type", "bits"), [("ed25519", None), ("rsa", 2048), ("ecdsa", 256), ("ecdsa", 521)]
)
async def test_supported_key_types(api: Api, keygen: KeyMaker, key_type: str, bits: int) -> None:
    bob = await api.user("bob")
    response = await api.client.post(
        f"/api/v4/users/{bob.id}/keys",
        headers=api.admin,
        json={"title": key_type, "key": keygen(key_type, bits)},
    )
    assert response.status_code == 201, response.text


async def test_invalid_keys_are_refused_and_nothing_is_stored(
    api: Api, db: SessionMaker, keygen: KeyMaker
) -> None:
    carol = await api.user("carol")
    good = keygen()
    kind, blob, _ = good.split()
    raw = base64.b64decode(blob)
    invalid = {
        "not base64": f"{kind} ###not-base64###",
        "truncated": f"{kind} {base64.b64encode(raw[:-5]).decode()}",
        "trailing bytes": f"{kind} {base64.b64encode(raw + b'xx').decode()}",
        "type mismatch": f"ssh-rsa {blob}",
        "weak rsa": keygen("rsa", 1024),
        "dsa": f"ssh-dss {blob}",
        "two lines": f"{good}\n{good}",
        "empty": "   ",
        "garbage": "hello world",
    }
    before = await outbox_count(db)
    for case, line in invalid.items():
        response = await api.client.post(
            "/api/v4/user/keys", headers=carol.headers, json={"title": case, "key": line}
        )
        assert response.status_code == 400, case
        assert "key" in response.json()["message"], case
    weak = await api.client.post(
        "/api/v4/user/keys", headers=carol.headers, json={"title": "w", "key": invalid["weak rsa"]}
    )
    assert weak.json() == {"message": {"key": ["RSA key must be at least 2048 bits"]}}
    assert (await api.client.get("/api/v4/user/keys", headers=carol.headers)).json() == []
    assert await outbox_count(db) == before


async def test_a_key_belongs_to_one_user_only(api: Api, keygen: KeyMaker) -> None:
    dave, erin = await api.user("dave"), await api.user("erin")
    line = keygen()
    first = await api.client.post(
        "/api/v4/user/keys", headers=dave.headers, json={"title": "a", "key": line}
    )
    assert first.status_code == 201
    # Same key material with another comment is still the same key.
    same = line.rsplit(" ", 1)[0] + " other@comment"
    second = await api.client.post(
        "/api/v4/user/keys", headers=erin.headers, json={"title": "b", "key": same}
    )
    assert second.status_code == 400
    assert second.json() == {"message": {"fingerprint_sha256": ["has already been taken"]}}


async def test_users_cannot_remove_other_users_keys(api: Api, keygen: KeyMaker) -> None:
    frank, grace = await api.user("frank"), await api.user("grace")
    key = (
        await api.client.post(
            "/api/v4/user/keys", headers=frank.headers, json={"title": "k", "key": keygen()}
        )
    ).json()
    denied = await api.client.delete(f"/api/v4/user/keys/{key['id']}", headers=grace.headers)
    assert denied.status_code == 404
    assert (
        await api.client.get(f"/api/v4/user/keys/{key['id']}", headers=frank.headers)
    ).status_code == 200
    admin_removes = await api.client.delete(
        f"/api/v4/users/{frank.id}/keys/{key['id']}", headers=api.admin
    )
    assert admin_removes.status_code == 204


async def test_authorized_keys_finds_the_owner_by_blob(api: Api, keygen: KeyMaker) -> None:
    heidi = await api.user("heidi")
    line = keygen("ecdsa", 384)
    key = (
        await api.client.post(
            "/api/v4/user/keys", headers=heidi.headers, json={"title": "k", "key": line}
        )
    ).json()
    blob = line.split()[1]
    found = await api.client.get(
        "/api/v4/internal/authorized_keys", params={"key": blob}, headers=internal_headers()
    )
    assert found.status_code == 200
    assert found.json() == {
        "id": key["id"],
        "key": line,
        "user_id": heidi.id,
        "username": heidi.username,
    }
    unknown = await api.client.get(
        "/api/v4/internal/authorized_keys",
        params={"key": keygen().split()[1]},
        headers=internal_headers(),
    )
    assert unknown.status_code == 404
    garbage = await api.client.get(
        "/api/v4/internal/authorized_keys", params={"key": "%%%"}, headers=internal_headers()
    )
    assert garbage.status_code == 400
    no_jwt = await api.client.get("/api/v4/internal/authorized_keys", params={"key": blob})
    assert no_jwt.status_code == 401
