"""A geogit site as the subject of a benchmark: started, loaded with repositories, measured.

Kept apart from `bench.common` so that areas without a site (storage) need not import the
dev stack.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]

from bench.common import (
    CACHE_DIR,
    RepoSpec,
    Side,
    generated_repo,
    git,
    log,
    process_tree,
    rss,
    tree_cpu,
)
from geogit.common.paths import hashed_repository_path
from geogit.common.tansu import TansuBroker
from geogit.devstack.site import STORAGE_NAME, Site
from geogit.devstack.testing import running_site


@contextmanager
def bench_site(prefix: str) -> Iterator[tuple[Path, Site, str]]:
    """A scratch directory under the cache, a Tansu broker and a started site in it.

    Yields the directory, the site and its admin's token; everything is stopped on the way out.
    """
    with (
        tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix=prefix) as tmp,
        TansuBroker() as broker,
        running_site(Path(tmp) / "site", broker.bootstrap) as (site, admin),
    ):
        assert admin is not None
        yield Path(tmp), site, admin.token


@contextmanager
def kept_logs(base: Path, kept: Path) -> Iterator[None]:
    """On the way out, the logs of the sites run under `base` are copied to `kept`: the run
    directory is temporary, and the logs are where a figure's time (or a failure) is found."""
    try:
        yield
    finally:
        if (base / "logs").is_dir():
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(base / "logs", kept)
            log(f"site logs kept in {kept}")


@dataclass(frozen=True)
class Project:
    spec: RepoSpec
    relative_path: str  # under the storage root, as a plain-git anchor sees it
    full_path: str  # namespace/path, as the site's front doors see it
    path: Path


def load_project(
    site: Site,
    token: str,
    spec: RepoSpec,
    owner_id: int | None = None,
    visibility: str = "public",
) -> Project:
    """A project holding the spec's repository, loaded on disk behind storage's back.

    Created by the admin (`token`), in the namespace of user `owner_id` if given. Fetched from
    the cached generated repository and repacked with bitmaps, as storage_clone does, so both
    sides of a comparison serve one well-kept pack.
    """
    endpoint = "/projects" if owner_id is None else f"/projects/user/{owner_id}"
    project = api_call(
        site,
        token,
        endpoint,
        {"path": f"bench-{spec.key}", "visibility": visibility},
    )
    relative = hashed_repository_path(int(project["id"]))
    path = site.repositories_dir / relative
    source = generated_repo(spec)
    log(f"loading {spec.key} into project {project['path_with_namespace']} and repacking")
    started = time.monotonic()
    git("--git-dir", str(path), "fetch", "-q", str(source), "+refs/*:refs/*")
    head = git("--git-dir", str(source), "symbolic-ref", "HEAD").strip()
    git("--git-dir", str(path), "symbolic-ref", "HEAD", head)
    git("--git-dir", str(path), "repack", "-adbq")
    log(f"loaded in {time.monotonic() - started:.0f} s")
    return Project(spec, relative, str(project["path_with_namespace"]), path)


def api_call(site: Site, token: str, endpoint: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """POST to the site's REST API (`/api/v4` + endpoint) and return the created object."""
    response = httpx.post(
        f"{site.http_url}/api/v4{endpoint}",
        headers={"PRIVATE-TOKEN": token},
        json=dict(body),
        timeout=60,
    )
    if response.status_code >= 300:
        raise RuntimeError(f"POST {endpoint} failed: {response.status_code} {response.text}")
    return dict(response.json())


def repository_dir(site: Site, project_id: int, shard: str = STORAGE_NAME) -> Path:
    """The project's repository on the site's disk, in the shard's storage root."""
    return site.shard_repositories_dir(shard) / hashed_repository_path(project_id)


def site_process(site: Site, service: str) -> psutil.Process:
    record = site.supervisor.record(site.process_name(service))
    if record is None:
        raise RuntimeError(f"{service} of the site is not running")
    return psutil.Process(record.pid)


def rss_probe(storage: psutil.Process, **parts: psutil.Process) -> Callable[[], dict[str, int]]:
    """RSS of each named part, then of storage and (summed) the git children doing its work."""

    def probe() -> dict[str, int]:
        return {name: rss(proc) for name, proc in parts.items()} | {
            "storage": rss(storage),
            "storage_children": sum(rss(p) for p in process_tree([storage])[1:]),
        }

    return probe


def site_side(
    site: Site, name: str, service: str, urls: dict[str, str], env: dict[str, str] | None = None
) -> Side:
    """The site as the subject, entered through its front door `service` (reported as `name`).

    CPU and memory cover the door, the internal API that authorizes every request, and storage
    with its git children, which serves the pack.
    """
    door = site_process(site, service)
    api, storage = site_process(site, "internal-api"), site_process(site, "storage")
    parts = {name: door, "internal_api": api}
    return Side(
        name, urls, tree_cpu(**parts, storage=storage), rss_probe(storage, **parts), env or {}
    )
