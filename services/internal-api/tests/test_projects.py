"""Projects: the repository appears on the real storage at the hashed path of the id, stays
there through renames and transfers, and goes when the project is deleted."""

from __future__ import annotations

from internal_api_support import Api, outbox_count, outbox_rows, storage_repo, unique

from geogit.common.events import EVENT_TYPES
from geogit.common.paths import hashed_repository_path
from geogit.internal_api.db import SessionMaker
from geogit.internal_api.models import Project
from geogit.storage.testing import StorageProcess


async def test_create_makes_the_repository_on_storage(
    api: Api, db: SessionMaker, storage: StorageProcess
) -> None:
    alice = await api.user("alice")
    response = await api.client.post(
        "/api/v4/projects",
        headers=alice.headers,
        json={"name": "My Demo App", "visibility": "internal", "default_branch": "trunk"},
    )
    assert response.status_code == 201, response.text
    project = response.json()
    assert project["path"] == "my-demo-app" and project["name"] == "My Demo App"
    assert project["path_with_namespace"] == f"{alice.username}/my-demo-app"
    assert project["namespace"]["path"] == alice.username
    assert project["visibility"] == "internal" and project["default_branch"] == "trunk"
    assert project["http_url_to_repo"] == (
        f"http://git.example.test/{alice.username}/my-demo-app.git"
    )
    disk = storage.path_of(storage_repo(project))
    assert disk == storage.root / hashed_repository_path(project["id"])
    assert (disk / "HEAD").read_text().strip() == "ref: refs/heads/trunk"

    async with db() as session:
        row = await session.get(Project, project["id"])
        assert row is not None and row.repository_seq == 1 and row.storage_shard == "default"
    events = await outbox_rows(db, f"project-{project['id']}")
    assert [(e.stream, e.type, e.aggregate_seq) for e in events] == [
        ("domain", "ProjectCreated", 1),
        ("domain", "MemberSet", 2),
        ("repository", "RepositoryCreated", 1),
    ]
    created = EVENT_TYPES["ProjectCreated"].FromString(events[0].payload)
    assert created.disk_path == hashed_repository_path(project["id"])  # type: ignore[attr-defined]


async def test_get_by_id_or_url_encoded_path(api: Api) -> None:
    bob = await api.user("bob")
    project = await api.project(bob)
    encoded = project["path_with_namespace"].replace("/", "%2F")
    by_path = await api.client.get(f"/api/v4/projects/{encoded}", headers=bob.headers)
    assert by_path.status_code == 200 and by_path.json()["id"] == project["id"]
    upper = await api.client.get(f"/api/v4/projects/{encoded.upper()}", headers=bob.headers)
    assert upper.json()["id"] == project["id"]
    by_id = await api.client.get(f"/api/v4/projects/{project['id']}", headers=bob.headers)
    assert by_id.json() == by_path.json()
    members = await api.client.get(f"/api/v4/projects/{encoded}/members", headers=bob.headers)
    assert [m["username"] for m in members.json()] == [bob.username]


async def test_private_projects_are_hidden_from_others(api: Api) -> None:
    carol, dave = await api.user("carol"), await api.user("dave")
    private = await api.project(carol)
    public = await api.project(carol, visibility="public")
    internal = await api.project(carol, visibility="internal")
    assert (
        await api.client.get(f"/api/v4/projects/{private['id']}", headers=dave.headers)
    ).json() == {"message": "404 Project Not Found"}
    assert (await api.client.get(f"/api/v4/projects/{public['id']}")).status_code == 200
    assert (await api.client.get(f"/api/v4/projects/{internal['id']}")).status_code == 404
    assert (
        await api.client.get(f"/api/v4/projects/{internal['id']}", headers=dave.headers)
    ).status_code == 200

    seen = await api.client.get("/api/v4/projects?per_page=100", headers=dave.headers)
    ids = {p["id"] for p in seen.json()}
    assert {public["id"], internal["id"]} <= ids and private["id"] not in ids
    anonymous = {p["id"] for p in (await api.client.get("/api/v4/projects?per_page=100")).json()}
    assert public["id"] in anonymous and internal["id"] not in anonymous
    mine = await api.client.get("/api/v4/projects?owned=true", headers=carol.headers)
    assert {p["id"] for p in mine.json()} == {private["id"], public["id"], internal["id"]}
    assert mine.headers["X-Total"] == "3"


async def test_project_list_pages(api: Api) -> None:
    erin = await api.user("erin")
    made = [await api.project(erin) for _ in range(3)]
    page1 = await api.client.get("/api/v4/projects?owned=true&per_page=2", headers=erin.headers)
    page2 = await api.client.get(
        "/api/v4/projects?owned=true&per_page=2&page=2", headers=erin.headers
    )
    assert page1.headers["X-Total"] == "3" and page1.headers["X-Total-Pages"] == "2"
    assert page1.headers["X-Next-Page"] == "2" and page2.headers["X-Prev-Page"] == "1"
    listed = [p["id"] for p in page1.json() + page2.json()]
    assert listed == sorted((p["id"] for p in made), reverse=True)
    assert "owned=true" in page1.headers["Link"]


async def test_rename_keeps_the_repository_in_place(
    api: Api, db: SessionMaker, storage: StorageProcess
) -> None:
    frank = await api.user("frank")
    project = await api.project(frank)
    disk = storage.path_of(storage_repo(project))
    new_path = unique("renamed")
    renamed = await api.client.put(
        f"/api/v4/projects/{project['id']}",
        headers=frank.headers,
        json={"path": new_path, "visibility": "public", "default_branch": "trunk"},
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["path_with_namespace"] == f"{frank.username}/{new_path}"
    # An empty repository's HEAD may name any branch: it is the one the first push creates.
    assert (disk / "HEAD").read_text().strip() == "ref: refs/heads/trunk"
    old = await api.client.get(
        f"/api/v4/projects/{project['path_with_namespace'].replace('/', '%2F')}",
        headers=frank.headers,
    )
    assert old.status_code == 404
    types = [e.type for e in await outbox_rows(db, f"project-{project['id']}")]
    assert types[-2:] == ["ProjectRenamed", "ProjectUpdated"]


async def test_transfer_moves_the_namespace_not_the_repository(
    api: Api, db: SessionMaker, storage: StorageProcess
) -> None:
    grace, heidi = await api.user("grace"), await api.user("heidi")
    project = await api.project(grace)
    moved = await api.client.put(
        f"/api/v4/projects/{project['id']}/transfer",
        params={"namespace": heidi.username},
        headers=api.admin,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["path_with_namespace"] == f"{heidi.username}/{project['path']}"
    assert (storage.path_of(storage_repo(project)) / "HEAD").is_file()
    gone = await api.client.get(f"/api/v4/projects/{project['id']}", headers=grace.headers)
    assert gone.status_code == 404
    members = await api.client.get(
        f"/api/v4/projects/{project['id']}/members", headers=heidi.headers
    )
    assert [(m["username"], m["access_level"]) for m in members.json()] == [(heidi.username, 50)]


async def test_delete_removes_the_repository(
    api: Api, db: SessionMaker, storage: StorageProcess
) -> None:
    ivan = await api.user("ivan")
    project = await api.project(ivan)
    disk = storage.path_of(storage_repo(project))
    assert disk.is_dir()
    deleted = await api.client.delete(f"/api/v4/projects/{project['id']}", headers=ivan.headers)
    assert deleted.status_code == 202
    assert deleted.json() == {"message": "202 Accepted"}
    assert not disk.exists()
    assert (
        await api.client.get(f"/api/v4/projects/{project['id']}", headers=api.admin)
    ).status_code == 404
    events = await outbox_rows(db, f"project-{project['id']}")
    assert [(e.type, e.aggregate_seq) for e in events][-2:] == [
        ("ProjectDeleted", 3),
        ("RepositoryDeleted", 2),
    ]


async def test_only_owners_delete_and_maintainers_edit(api: Api) -> None:
    judy, kim = await api.user("judy"), await api.user("kim")
    project = await api.project(judy)
    await api.add_member(project, kim, 40)
    url = f"/api/v4/projects/{project['id']}"
    assert (await api.client.delete(url, headers=kim.headers)).status_code == 403
    edit = await api.client.put(url, headers=kim.headers, json={"description": "ok"})
    assert edit.status_code == 200
    visibility = await api.client.put(url, headers=kim.headers, json={"visibility": "public"})
    assert visibility.status_code == 403


async def test_project_paths_are_validated_and_unique(api: Api, db: SessionMaker) -> None:
    leo = await api.user("leo")
    existing = await api.project(leo)
    before = await outbox_count(db)
    for path in ("../etc", "a/b", ".hidden", "x.git", "-dash", "sp ace", "a" * 300):
        response = await api.client.post(
            "/api/v4/projects", headers=leo.headers, json={"path": path}
        )
        assert response.status_code == 400, path
    taken = await api.client.post(
        "/api/v4/projects", headers=leo.headers, json={"path": existing["path"].upper()}
    )
    assert taken.status_code == 400
    assert taken.json() == {"message": {"path": ["has already been taken"]}}
    neither = await api.client.post("/api/v4/projects", headers=leo.headers, json={})
    assert neither.status_code == 400
    branch = await api.client.post(
        "/api/v4/projects",
        headers=leo.headers,
        json={"path": unique("p"), "default_branch": "a..b"},
    )
    assert branch.status_code == 400
    for name, problem in (
        ("HEAD", "'HEAD' is reserved: git reads it as the current commit"),
        ("-x", "must not start with '-'"),
        ("0" * 40, "looks like an object id: git would read it as a commit"),
        (
            "refs/heads/main",
            "must be a branch name, not a full ref: give 'main', not 'refs/heads/main'",
        ),
    ):
        refused = await api.client.post(
            "/api/v4/projects",
            headers=leo.headers,
            json={"path": unique("p"), "default_branch": name},
        )
        assert refused.status_code == 400, name
        assert refused.json() == {"message": {"default_branch": [problem]}}
        changed = await api.client.put(
            f"/api/v4/projects/{existing['id']}", headers=leo.headers, json={"default_branch": name}
        )
        assert changed.status_code == 400, name
        assert changed.json() == {"message": {"default_branch": [problem]}}
    for ref in ("..%2F..%2Fetc", "a%2F..", "%2E%2E%2Fx%2Fy"):
        response = await api.client.get(f"/api/v4/projects/{ref}", headers=leo.headers)
        assert response.status_code == 400, ref
    assert await outbox_count(db) == before
