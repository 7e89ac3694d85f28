"""Helpers for the failover tests (DESIGN §10): the sites' authority, promotion through the
candidate's front door, pushers that record what was acknowledged, and the refs of a site's
repositories read from disk."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from e2e import Account, clone_url, git

from geogit.common.paths import hashed_repository_path
from geogit.devstack.site import Site
from geogit.storage.testing import commit_all, make_work_tree

DIVERGED = "refs/geogit/diverged/"


def site_state(site: Site, admin_token: str) -> dict[str, Any]:
    response = httpx.get(
        f"{site.http_url}/api/v4/geo/site_state",
        headers={"PRIVATE-TOKEN": admin_token},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def answers(site: Site) -> bool:
    try:
        return httpx.get(f"{site.http_url}/-/readiness", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def promote(site: Site, admin_token: str, mode: str, **extra: Any) -> httpx.Response:
    site_id = site_state(site, admin_token)["site_id"]
    return httpx.post(
        f"{site.http_url}/api/v4/geo/sites/{site_id}/promote",
        json={"mode": mode, **extra},
        headers={"PRIVATE-TOKEN": admin_token},
        timeout=300,
    )


def preview(site: Site, admin_token: str, mode: str) -> dict[str, Any]:
    site_id = site_state(site, admin_token)["site_id"]
    response = httpx.get(
        f"{site.http_url}/api/v4/geo/sites/{site_id}/promotion",
        params={"mode": mode},
        headers={"PRIVATE-TOKEN": admin_token},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def repository(site: Site, project_id: int) -> Path:
    return site.repositories_dir / hashed_repository_path(project_id)


def refs_on_disk(site: Site, project_id: int) -> dict[str, str]:
    """Every ref of the project's repository on the site's storage, refs/geogit/ included."""
    repo = repository(site, project_id)
    output = subprocess.run(
        ["git", "--git-dir", str(repo), "for-each-ref", "--format=%(objectname) %(refname)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {name: oid for oid, name in (line.split(" ", 1) for line in output.splitlines())}


def public_refs(site: Site, project_id: int) -> dict[str, str]:
    return {n: o for n, o in refs_on_disk(site, project_id).items() if not n.startswith(DIVERGED)}


def contains(site: Site, project_id: int, commit: str) -> bool:
    repo = repository(site, project_id)
    result = subprocess.run(
        ["git", "--git-dir", str(repo), "branch", "--contains", commit, "--format=%(refname)"],
        capture_output=True,
        text=True,
    )
    return result.returncode == 0 and bool(result.stdout.strip())


@dataclass
class Push:
    url: str
    branch: str
    commit: str
    ok: bool
    stderr: str
    finished_at: float


@dataclass
class GitClient:
    """A git client working against `url` in a thread of its own, a round every `pause`
    seconds, until stopped."""

    name: str
    url: str
    work: Path
    env: dict[str, str] = field(default_factory=dict)
    pause: float = 0.1
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.round()
            self._stop.wait(self.pause)

    def round(self) -> None:
        raise NotImplementedError


@dataclass
class Pusher(GitClient):
    """Pushes a new commit to its own branch (named after it) every round."""

    pushes: list[Push] = field(default_factory=list)
    rounds: int = 0

    def start(self) -> None:
        self.tree = make_work_tree(self.work, commits=1)
        git("checkout", "-q", "-b", self.name, cwd=self.tree)
        super().start()

    def round(self) -> None:
        self.rounds += 1
        (self.tree / f"{self.name}.txt").write_text(f"{self.name} {self.rounds}\n")
        commit = commit_all(self.tree, f"{self.name} round {self.rounds}")
        result = git(
            "push",
            "-q",
            self.url,
            f"+HEAD:refs/heads/{self.name}",
            cwd=self.tree,
            check=False,
            env=self.env,
        )
        ok = result.returncode == 0
        self.pushes.append(Push(self.url, self.name, commit, ok, result.stderr, time.monotonic()))
        if not ok:
            # A refused push is not in history: the next round builds on what landed.
            git("reset", "-q", "--hard", "HEAD~1", cwd=self.tree)

    @property
    def acknowledged(self) -> list[Push]:
        return [push for push in self.pushes if push.ok]

    @property
    def refused(self) -> list[Push]:
        return [push for push in self.pushes if not push.ok]


@dataclass
class Cloner(GitClient):
    """Clones `url` (depth 1) every round while the sites switch; every clone must work."""

    pause: float = 0.2
    failures: list[str] = field(default_factory=list)
    clones: int = 0

    def round(self) -> None:
        target = self.work / f"clone-{self.clones}"
        result = git(
            "clone", "-q", "--depth", "1", self.url, str(target), check=False, env=self.env
        )
        self.clones += 1
        if result.returncode != 0:
            self.failures.append(result.stderr)
        shutil.rmtree(target, ignore_errors=True)


def http_pusher(
    name: str, site: Site, project: dict[str, Any], account: Account, work: Path
) -> Pusher:
    return Pusher(name, clone_url(site.http_url, project, account), work / name)
