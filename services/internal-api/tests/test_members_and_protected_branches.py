"""Members with GitLab access levels and protected branch rules, through the admin API."""

from __future__ import annotations

from internal_api_support import Api, outbox_count, outbox_rows

from geogit.internal_api.db import SessionMaker


async def test_member_lifecycle(api: Api, db: SessionMaker) -> None:
    alice, bob = await api.user("alice"), await api.user("bob")
    project = await api.project(alice)
    url = f"/api/v4/projects/{project['id']}/members"
    added = await api.client.post(
        url, headers=alice.headers, json={"user_id": bob.id, "access_level": 30}
    )
    assert added.status_code == 201
    assert added.json()["username"] == bob.username and added.json()["access_level"] == 30
    again = await api.client.post(
        url, headers=alice.headers, json={"user_id": bob.id, "access_level": 30}
    )
    assert again.status_code == 409 and again.json() == {"message": "Member already exists"}

    listed = await api.client.get(url, headers=bob.headers)
    assert {(m["username"], m["access_level"]) for m in listed.json()} == {
        (alice.username, 50),
        (bob.username, 30),
    }
    assert listed.headers["X-Total"] == "2"
    updated = await api.client.put(
        f"{url}/{bob.id}", headers=alice.headers, json={"access_level": 40}
    )
    assert updated.status_code == 200 and updated.json()["access_level"] == 40
    shown = await api.client.get(f"{url}/{bob.id}", headers=alice.headers)
    assert shown.json()["access_level"] == 40
    removed = await api.client.delete(f"{url}/{bob.id}", headers=alice.headers)
    assert removed.status_code == 204
    assert (await api.client.get(f"{url}/{bob.id}", headers=alice.headers)).status_code == 404
    types = [e.type for e in await outbox_rows(db, f"project-{project['id']}")]
    assert types[-3:] == ["MemberSet", "MemberSet", "MemberRemoved"]


async def test_member_rules(api: Api, db: SessionMaker) -> None:
    carol, dave, erin = await api.user("carol"), await api.user("dave"), await api.user("erin")
    project = await api.project(carol)
    url = f"/api/v4/projects/{project['id']}/members"
    await api.add_member(project, dave, 40)
    before = await outbox_count(db)
    # A maintainer cannot make owners, nobody touches the namespace owner here, levels are
    # GitLab's, users must exist, developers manage nobody.
    owner = await api.client.post(
        url, headers=dave.headers, json={"user_id": erin.id, "access_level": 50}
    )
    assert owner.status_code == 403
    demote = await api.client.put(
        f"{url}/{carol.id}", headers=dave.headers, json={"access_level": 10}
    )
    assert demote.status_code == 403
    bad_level = await api.client.post(
        url, headers=dave.headers, json={"user_id": erin.id, "access_level": 35}
    )
    assert bad_level.status_code == 400
    nobody = await api.client.post(
        url, headers=dave.headers, json={"user_id": 987654321, "access_level": 30}
    )
    assert nobody.status_code == 404
    await api.add_member(project, erin, 30)
    after_add = await outbox_count(db)
    by_developer = await api.client.delete(f"{url}/{dave.id}", headers=erin.headers)
    assert by_developer.status_code == 403
    assert await outbox_count(db) == after_add == before + 1


async def test_protected_branch_lifecycle(api: Api, db: SessionMaker) -> None:
    frank = await api.user("frank")
    project = await api.project(frank)
    url = f"/api/v4/projects/{project['id']}/protected_branches"
    created = await api.client.post(
        url,
        headers=frank.headers,
        json={"name": "release/*", "push_access_level": 30, "allow_force_push": True},
    )
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["name"] == "release/*" and rule["allow_force_push"] is True
    assert rule["push_access_levels"] == [
        {"access_level": 30, "access_level_description": "Developers + Maintainers"}
    ]
    duplicate = await api.client.post(url, headers=frank.headers, json={"name": "release/*"})
    assert duplicate.status_code == 409
    default = await api.client.post(url, headers=frank.headers, json={"name": "main"})
    assert default.json()["push_access_levels"][0]["access_level"] == 40
    listed = await api.client.get(url, headers=frank.headers)
    assert [r["name"] for r in listed.json()] == ["release/*", "main"]
    shown = await api.client.get(f"{url}/release%2F%2A", headers=frank.headers)
    assert shown.status_code == 200 and shown.json()["id"] == rule["id"]
    deleted = await api.client.delete(f"{url}/release%2F*", headers=frank.headers)
    assert deleted.status_code == 204
    assert (await api.client.get(f"{url}/release%2F*", headers=frank.headers)).status_code == 404
    types = [e.type for e in await outbox_rows(db, f"project-{project['id']}")]
    assert types[-3:] == ["ProtectedBranchSet", "ProtectedBranchSet", "ProtectedBranchRemoved"]


async def test_protected_branch_rules_are_validated(api: Api, db: SessionMaker) -> None:
    grace, heidi = await api.user("grace"), await api.user("heidi")
    project = await api.project(grace)
    await api.add_member(project, heidi, 30)
    url = f"/api/v4/projects/{project['id']}/protected_branches"
    before = await outbox_count(db)
    for name in ("bad..name", "with space", "-dash", "x?y", "a[b]", "end/"):
        response = await api.client.post(url, headers=grace.headers, json={"name": name})
        assert response.status_code == 400, name
    full = await api.client.post(url, headers=grace.headers, json={"name": "refs/heads/main"})
    assert full.status_code == 400
    assert full.json() == {
        "message": {
            "name": ["must be a branch name, not a full ref: give 'main', not 'refs/heads/main'"]
        }
    }
    level = await api.client.post(
        url, headers=grace.headers, json={"name": "main", "push_access_level": 20}
    )
    assert level.status_code == 400
    merge = await api.client.post(
        url, headers=grace.headers, json={"name": "main", "merge_access_level": 40}
    )
    assert merge.status_code == 400
    developer = await api.client.post(url, headers=heidi.headers, json={"name": "main"})
    assert developer.status_code == 403
    assert await outbox_count(db) == before
