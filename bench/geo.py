"""Geo: how closely and how cheaply a secondary follows the primary (DESIGN §3.2, §5, §9).

Real processes throughout: a primary and one secondary from `running_sites` (each with its own
fresh database, on a Tansu broker of the benchmark's own, with the FAST_GEO settings the tests
use), the real git client over HTTP with Basic auth (username + personal access token), and
every repository put on the primary by `git push` — the secondary only follows pushes.

(a) replication lag under load: concurrent pushers, one per project, to the primary; each
    push is timed from git's acknowledgement to the secondary serving that exact commit
    locally (target p99 < 2 s);
(b) a full clone of the large repository from the secondary's replica versus from the primary,
    alternating (target: secondary throughput ≥ 0.95 of the primary's);
(c) the same clone through the secondary while it proxies (its replica is stale because its
    replicator is stopped) versus the primary directly (target: ≤ 15 % overhead);
(d) backfill: a new, empty secondary started against a primary holding 500 small projects,
    timed until its read model has them all and until every replica is synced.

Peak RSS of the secondary's replicator and edge proxy is sampled during (a) and (b).
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]

from bench.common import (
    CACHE_DIR,
    MIB,
    TINY,
    Options,
    PeakSampler,
    RepoSpec,
    Side,
    clean_env,
    clone_headers,
    clone_row,
    compare,
    comparison,
    conditions,
    cpu_delta,
    generated_repo,
    host_facts,
    log,
    megabytes,
    pack_bytes,
    percentile,
    print_foreign_warning,
    print_table,
    rss,
    run_area,
    tree_cpu,
)
from bench.sites import kept_logs, rss_probe, site_process
from geogit.common.tansu import TansuBroker
from geogit.common.tokens import API_REQUEST_HEADER, INTERNAL_API_AUDIENCE, issue_token
from geogit.devstack.api import AdminApi
from geogit.devstack.geo_sites import register_sites
from geogit.devstack.ports import SitePorts
from geogit.devstack.site import Site
from geogit.devstack.testing import FAST_GEO, fresh_database, running_sites

TARGET_LAG_P99_S = 1.0  # issue 12: p99 < 1 s
TARGET_LOCAL_RATIO = 0.95
TARGET_LOCAL_SHALLOW_MS = 10  # issue 12: the secondary's local shallow answer <= primary's + 10 ms
TARGET_PROXY_OVERHEAD = 0.15
LAG_PROJECTS, LAG_PROJECTS_QUICK = 20, 5
PUSHES_PER_PROJECT = 10
BACKFILL_PROJECTS, BACKFILL_PROJECTS_QUICK = 500, 50
CREATE_THREADS = 8  # project creation for (d): enough to keep the primary busy, not swamped
POLL_S = 0.02  # (a): how often a waiting pusher asks the secondary for its refs
LAG_TIMEOUT_S = 60.0  # (a): a push not served locally by then counts as an error
STATUS_POLL_S = 0.25  # (d): how often the new site's status is read
REPLICA_TIMEOUT_S = 1800.0  # first replica of the large repository, and the backfill
GIT_TIMEOUT_S = 1800.0
MAIN = "refs/heads/main"
LOCAL_NAMES = ("primary", "secondary")  # anchor, subject of (b)
PROXY_NAMES = ("primary", "proxy")  # anchor, subject of (c)
AUTHOR = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}
LOGS_KEPT = CACHE_DIR / "geo-logs"  # the sites' logs of the last run, for a look afterwards


# The sites' doors: admin API, internal API, Git over HTTP ---------------------------------


@dataclass(frozen=True)
class Account:
    id: int
    username: str
    token: str


@dataclass(frozen=True)
class GeoProject:
    """A private project of the benchmark's user, as both sites' front doors name it."""

    id: int
    full_path: str

    def url(self, site: Site, account: Account) -> str:
        """Clone/push URL with Basic credentials in it, as a user would paste it."""
        scheme, rest = site.http_url.split("://", 1)
        return f"{scheme}://{account.username}:{account.token}@{rest}/{self.full_path}.git"

    def refs_url(self, site: Site) -> str:
        return f"{site.http_url}/{self.full_path}.git/info/refs"


def new_account(api: AdminApi) -> Account:
    """A plain user with a token that may push: the projects are private, so every Git
    request authenticates and the secondary's authorization path is exercised."""
    name = f"bench{uuid.uuid4().hex[:8]}"
    user = api.create_user(name, f"{name}@example.com", name.title(), uuid.uuid4().hex)
    token = api.create_token(
        int(user["id"]), "bench", ["api", "read_repository", "write_repository"]
    )
    return Account(int(user["id"]), name, token)


def new_project(api: AdminApi, owner: Account, name: str) -> GeoProject:
    project = api.create_project(name, "private", for_user_id=owner.id)
    return GeoProject(int(project["id"]), str(project["path_with_namespace"]))


def delete_project(site: Site, admin_token: str, project_id: int) -> None:
    """DELETE /projects/:id (AdminApi has no call for it; GitLab answers 202)."""
    response = httpx.delete(
        f"{site.http_url}/api/v4/projects/{project_id}",
        headers={"PRIVATE-TOKEN": admin_token},
        timeout=60,
        trust_env=False,
    )
    if response.status_code >= 300:
        raise RuntimeError(f"DELETE project {project_id}: {response.status_code} {response.text}")


def internal(site: Site, path: str) -> httpx.Response:
    """A GET on the site's own internal API, signed as one of its services would sign it:
    the registry and the site's status are not on any public door."""
    token = issue_token(site.secrets.internal_api_secret, "bench", INTERNAL_API_AUDIENCE)
    return httpx.get(
        f"{site.internal_api_url}/api/v4/internal{path}",
        headers={API_REQUEST_HEADER: token},
        timeout=30,
        trust_env=False,
    )


def known_seq(site: Site, project_id: int) -> int:
    """The latest repository sequence the site has heard of for the project."""
    response = internal(site, f"/geo/replicables/{project_id}")
    response.raise_for_status()
    return int(response.json()["seq"])


def advertised(body: bytes) -> dict[str, str]:
    """Ref name -> object id from a protocol v0 `info/refs` advertisement (pkt-lines)."""
    refs: dict[str, str] = {}
    pos = 0
    while pos + 4 <= len(body):
        size = int(body[pos : pos + 4], 16)
        if size < 4:  # flush (or delim) packet
            pos += 4
            continue
        line = body[pos + 4 : pos + size].rstrip(b"\n").split(b"\0", 1)[0]
        pos += size
        oid, _, name = line.decode(errors="replace").partition(" ")
        if len(oid) == 40 and name:
            refs[name] = oid
    return refs


def refs_state(client: httpx.Client, url: str, sha: str) -> str:
    """What the site serves for the main branch: "current" (locally, the wanted commit),
    "stale" (locally, an older one), "proxy" (relayed to the primary), or "error"."""
    try:
        response = client.get(url, params={"service": "git-upload-pack"})
    except httpx.HTTPError:
        return "error"
    if response.status_code != 200:
        return "error"
    route = response.headers.get("Geogit-Route", "")
    if route != "local":
        return route or "error"
    return "current" if advertised(response.content).get(MAIN) == sha else "stale"


def git_client(account: Account) -> httpx.Client:
    return httpx.Client(auth=(account.username, account.token), timeout=30, trust_env=False)


def wait_state(
    site: Site, project: GeoProject, account: Account, sha: str, want: str, timeout: float
) -> float:
    """Seconds until the site's refs of `project` are in state `want` for `sha`."""
    started = time.perf_counter()
    with git_client(account) as client:
        while (state := refs_state(client, project.refs_url(site), sha)) != want:
            if time.perf_counter() - started > timeout:
                raise RuntimeError(
                    f"{site.name}: {project.full_path} is {state!r}, not {want!r} for {sha[:12]}"
                    f" after {timeout:.0f} s"
                )
            time.sleep(0.1)
    return time.perf_counter() - started


# Local repositories the pushes come from ---------------------------------------------------


def run_git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """git with a clean environment and an author; the caller checks the status."""
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=clean_env(**AUTHOR),
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_S,
        check=False,
    )


def checked_git(*args: str, cwd: Path | None = None) -> str:
    done = run_git(*args, cwd=cwd)
    if done.returncode != 0:
        raise RuntimeError(f"git {args[0]} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip()


def small_commit(tree: Path, text: str) -> str:
    """Append a line to one file and commit it: a push of three small objects."""
    with open(tree / "log.txt", "a") as out:
        out.write(f"{text}\n")
    checked_git("add", "-A", cwd=tree)
    checked_git("commit", "-q", "-m", text, cwd=tree)
    return checked_git("rev-parse", "HEAD", cwd=tree)


def new_work_tree(path: Path) -> str:
    checked_git("init", "-q", "-b", "main", str(path))
    return small_commit(path, f"first commit of {path.name}")


def borrowing_repo(path: Path, source: Path) -> Path:
    """An empty bare repository that borrows `source`'s objects (alternates): commits on top
    of a generated repository without copying it, and without writing into the cache."""
    checked_git("init", "-q", "--bare", str(path))
    (path / "objects" / "info" / "alternates").write_text(f"{source / 'objects'}\n")
    return path


def commit_on(repo: Path, parent: str | None, message: str) -> str:
    """A commit with `parent`'s tree (or one small file's), made without a work tree."""
    if parent is None:
        blob = subprocess.run(
            ["git", "--git-dir", str(repo), "hash-object", "-w", "--stdin"],
            input=f"{message}\n",
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        tree = subprocess.run(
            ["git", "--git-dir", str(repo), "mktree"],
            input=f"100644 blob {blob}\tREADME\n",
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return checked_git("--git-dir", str(repo), "commit-tree", tree, "-m", message)
    tree = checked_git("--git-dir", str(repo), "rev-parse", f"{parent}^{{tree}}")
    return checked_git("--git-dir", str(repo), "commit-tree", tree, "-p", parent, "-m", message)


# (a) Replication lag under load -------------------------------------------------------------


@dataclass(frozen=True)
class PushLag:
    """One push: git's time, then how long until the secondary (1) stopped serving the old
    commit locally — its read model heard of the push, or its replicator began the sync and
    marked the registry `syncing`; either way it proxies — and (2) served the new one
    locally. `heard_s` is (1): it tells event delivery from the fetch itself."""

    project_id: int
    round: int
    acked_at: float  # wall clock (epoch s), to find the push in the sites' logs
    push_s: float
    lag_s: float | None
    heard_s: float | None
    polls: int
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "round": self.round,
            "acked_at": datetime.fromtimestamp(self.acked_at, UTC).isoformat(
                timespec="milliseconds"
            ),
            "push_ms": round(self.push_s * 1000),
            "lag_ms": None if self.lag_s is None else round(self.lag_s * 1000),
            "heard_ms": None if self.heard_s is None else round(self.heard_s * 1000),
            "polls": self.polls,
        }


@dataclass(frozen=True)
class Pusher:
    project: GeoProject
    tree: Path
    push_url: str
    refs_url: str


def prepare_pusher(
    api: AdminApi, owner: Account, primary: Site, secondary: Site, work: Path, index: int
) -> Pusher:
    """A project with a first commit, already replicated: the measured pushes update an
    existing replica rather than create one."""
    project = new_project(api, owner, f"lag-{index:02d}")
    tree = work / f"lag-{index:02d}"
    sha = new_work_tree(tree)
    push_url = project.url(primary, owner)
    checked_git("push", "-q", push_url, "main", cwd=tree)
    wait_state(secondary, project, owner, sha, "current", 120)
    return Pusher(project, tree, push_url, project.refs_url(secondary))


def one_push(pusher: Pusher, client: httpx.Client, round_: int) -> PushLag:
    sha = small_commit(pusher.tree, f"round {round_}")
    started = time.perf_counter()
    done = run_git("push", "-q", pusher.push_url, "main", cwd=pusher.tree)
    acked, acked_at = time.perf_counter(), time.time()
    pushed = partial(PushLag, pusher.project.id, round_, acked_at, acked - started)
    if done.returncode != 0:
        return pushed(None, None, 0, f"push: {done.stderr.strip()[-300:]}")
    heard, polls = None, 0
    while time.perf_counter() - acked < LAG_TIMEOUT_S:
        state = refs_state(client, pusher.refs_url, sha)
        now, polls = time.perf_counter(), polls + 1
        if heard is None and state not in ("stale", "error"):
            heard = now - acked
        if state == "current":
            return pushed(now - acked, heard, polls)
        time.sleep(POLL_S)
    return pushed(None, heard, polls, f"not local after {LAG_TIMEOUT_S:.0f} s")


def push_rounds(pusher: Pusher, owner: Account, start: threading.Barrier) -> list[PushLag]:
    """One client: push a small commit, wait for the secondary to serve it, push the next."""
    with git_client(owner) as client:
        start.wait()
        return [one_push(pusher, client, i) for i in range(PUSHES_PER_PROJECT)]


def distribution_ms(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    points = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "max": 100.0}
    return {name: round(percentile(values, p) * 1000, 1) for name, p in points.items()}


def measure_lag(
    api: AdminApi, owner: Account, primary: Site, secondary: Site, count: int, work: Path
) -> tuple[dict[str, Any], list[Pusher]]:
    log(f"(a) {count} projects, first commit each, waiting for their first replica")
    with ThreadPoolExecutor(count) as pool:
        pushers = list(
            pool.map(
                lambda i: prepare_pusher(api, owner, primary, secondary, work, i), range(count)
            )
        )
    log(f"(a) {count} concurrent pushers x {PUSHES_PER_PROJECT} pushes, polling every 20 ms")
    cpu = tree_cpu(**site_roots("primary", primary), **site_roots("secondary", secondary))
    start = threading.Barrier(count)
    cpu_before = cpu()
    with PeakSampler(secondary_probe(secondary)) as sampler, ThreadPoolExecutor(count) as pool:
        started = time.perf_counter()
        outcomes = [
            p for ps in pool.map(lambda p: push_rounds(p, owner, start), pushers) for p in ps
        ]
        wall = time.perf_counter() - started
    server_cpu = cpu_delta(cpu(), cpu_before)
    return lag_results(outcomes, wall, server_cpu, sampler.peaks, count), pushers


def slowness(outcome: PushLag) -> float:
    """Sort key, slowest first; a push never served locally is the slowest of all."""
    return -(math.inf if outcome.lag_s is None else outcome.lag_s)


def lag_results(
    outcomes: list[PushLag],
    wall: float,
    server_cpu: dict[str, float],
    peaks: dict[str, int],
    projects: int,
) -> dict[str, Any]:
    lags = [o.lag_s for o in outcomes if o.lag_s is not None]
    heard = [o.heard_s for o in outcomes if o.heard_s is not None]
    polls = sum(o.polls for o in outcomes)
    errors = [o.error for o in outcomes if o.error]
    return {
        "projects": projects,
        "pushes": len(outcomes),
        "wall_s": round(wall, 2),
        "lag_ms": distribution_ms(lags),
        "heard_ms": distribution_ms(heard),
        "push_ms": distribution_ms([o.push_s for o in outcomes]),
        "polls": polls,
        "polls_per_s": round(polls / wall, 1),
        "errors": len(errors),
        "error_samples": errors[:5],
        "slowest": [o.as_json() for o in sorted(outcomes, key=slowness)[:5]],
        "server_cpu_s": {name: round(value, 1) for name, value in server_cpu.items()},
        "primary_cpu_s_per_push": cpu_per_push(server_cpu, len(outcomes)),
        "peak_rss_mb": megabytes(peaks),
    }


def cpu_per_push(server_cpu: dict[str, float], pushes: int) -> dict[str, float]:
    """The primary's CPU seconds per push, per service tree and in all: what caps lag under
    load when the machine has few cores (issue 12)."""
    primary = {
        name.removeprefix("primary_"): value
        for name, value in server_cpu.items()
        if name.startswith("primary_")
    }
    per_push = {name: round(value / max(pushes, 1), 3) for name, value in primary.items()}
    return per_push | {"total": round(sum(primary.values()) / max(pushes, 1), 3)}


# Processes of a site ------------------------------------------------------------------------


def site_roots(prefix: str, site: Site) -> dict[str, psutil.Process]:
    """The site's front door, internal API and storage (its git children come along)."""
    return {
        f"{prefix}_{service.replace('-', '_')}": site_process(site, service)
        for service in ("edge-proxy", "internal-api", "storage")
    }


def secondary_probe(secondary: Site) -> Callable[[], dict[str, int]]:
    """The secondary's replicator and edge proxy (what the brief asks for), and its storage
    with the git children that do the fetches, for scale."""
    return rss_probe(
        site_process(secondary, "storage"),
        replicator=site_process(secondary, "replicator"),
        edge_proxy=site_process(secondary, "edge-proxy"),
    )


def side(name: str, urls: dict[str, str], *sites: tuple[str, Site]) -> Side:
    """A way to clone: its URLs by spec key, and the CPU of every site process on the path."""
    roots: dict[str, psutil.Process] = {}
    for prefix, site in sites:
        roots |= site_roots(prefix, site)
    return Side(name, urls, tree_cpu(**roots), lambda: {})


# (b) Clone from the replica versus from the primary ----------------------------------------


@dataclass(frozen=True)
class Pushed:
    """A generated repository pushed into a project, and its first replication."""

    spec: RepoSpec
    project: GeoProject
    source: Path
    head: str
    push_s: float
    replicate_s: float
    primary_pack: int
    replica_pack: int


def push_branches_and_tags(source: Path, url: str) -> None:
    checked_git(
        "--git-dir",
        str(source),
        "push",
        "-q",
        url,
        "refs/heads/*:refs/heads/*",
        "refs/tags/*:refs/tags/*",
    )


def push_generated(
    api: AdminApi, owner: Account, primary: Site, secondary: Site, spec: RepoSpec
) -> Pushed:
    """The generated repository's branches and tags, pushed over HTTP to the primary; then
    the wait for the secondary's first replica, served locally."""
    source = generated_repo(spec)
    project = new_project(api, owner, f"bench-{spec.key}")
    head = checked_git("--git-dir", str(source), "rev-parse", MAIN)
    log(f"pushing {spec.key} to the primary ({pack_bytes(source) / MIB:.0f} MiB pack)")
    started = time.perf_counter()
    push_branches_and_tags(source, project.url(primary, owner))
    push_s = time.perf_counter() - started
    replicate_s = wait_state(secondary, project, owner, head, "current", REPLICA_TIMEOUT_S)
    log(f"pushed in {push_s:.1f} s, served locally by the secondary {replicate_s:.1f} s later")
    disk_path = str(internal(secondary, f"/geo/replicables/{project.id}").json()["disk_path"])
    return Pushed(
        spec,
        project,
        source,
        head,
        push_s,
        replicate_s,
        pack_bytes(primary.repositories_dir / disk_path),
        pack_bytes(secondary.repositories_dir / disk_path),
    )


def require_route(site: Site, owner: Account, pushed: Sequence[Pushed], route: str) -> None:
    """Fail rather than report a figure for the wrong path."""
    with git_client(owner) as client:
        for p in pushed:
            response = client.get(p.project.refs_url(site), params={"service": "git-upload-pack"})
            seen = response.headers.get("Geogit-Route", "")
            if response.status_code != 200 or seen != route:
                raise RuntimeError(
                    f"{site.name} answers {response.status_code} with Geogit-Route {seen!r} for"
                    f" {p.project.full_path}, not {route!r}"
                )


def urls(pushed: Sequence[Pushed], site: Site, owner: Account) -> dict[str, str]:
    return {p.spec.key: p.project.url(site, owner) for p in pushed}


def measure_local_clone(
    primary: Site, secondary: Site, owner: Account, large: Pushed, tiny: Pushed, repeat: int
) -> dict[str, Any]:
    require_route(secondary, owner, [large, tiny], "local")
    anchor = side("primary", urls([large, tiny], primary, owner), ("primary", primary))
    subject = side("secondary", urls([large, tiny], secondary, owner), ("secondary", secondary))
    log(f"(b) full clone of {large.spec.key}: primary versus the secondary's replica")
    timings = compare(anchor, subject, large.spec, repeat)
    log(f"(b) shallow clone --depth 1 of {TINY.key}: primary versus the secondary's replica")
    shallow = compare(anchor, subject, TINY, repeat, "--depth", "1")
    require_route(secondary, owner, [large, tiny], "local")
    return comparison(LOCAL_NAMES, *timings, large.primary_pack) | {
        "shallow_tiny": comparison(LOCAL_NAMES, *shallow)
    }


# (c) Clone through the proxying secondary versus the primary --------------------------------


def make_stale(primary: Site, secondary: Site, owner: Account, pushed: Sequence[Pushed]) -> None:
    """With the replicator stopped, one more commit per project: the secondary hears of the
    new sequence but cannot fetch it, so the freshness rule sends its reads to the primary."""
    secondary.supervisor.stop(secondary.process_name("replicator"))
    for p in pushed:
        before = known_seq(secondary, p.project.id)
        scratch = borrowing_repo(
            Path(tempfile.mkdtemp(dir=CACHE_DIR, prefix="geo-extra-")), p.source
        )
        try:
            sha = commit_on(scratch, p.head, "one more commit, not replicated")
            push_url = p.project.url(primary, owner)
            checked_git("--git-dir", str(scratch), "push", "-q", push_url, f"{sha}:{MAIN}")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        deadline = time.monotonic() + 60
        while known_seq(secondary, p.project.id) <= before:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the secondary never heard of the push to {p.project.full_path}"
                )
            time.sleep(0.1)
    require_route(secondary, owner, pushed, "proxy")


def measure_proxy_clone(
    primary: Site, secondary: Site, owner: Account, large: Pushed, tiny: Pushed, repeat: int
) -> dict[str, Any]:
    make_stale(primary, secondary, owner, [large, tiny])
    try:
        anchor = side("primary", urls([large, tiny], primary, owner), ("primary", primary))
        subject = side(
            "proxy",
            urls([large, tiny], secondary, owner),
            ("secondary", secondary),
            ("primary", primary),
        )
        log(f"(c) full clone of {large.spec.key}: primary versus the secondary proxying")
        full = compare(anchor, subject, large.spec, repeat)
        log(f"(c) clone of {TINY.key}: primary versus the secondary proxying")
        small = compare(anchor, subject, TINY, repeat)
        require_route(secondary, owner, [large, tiny], "proxy")
    finally:
        secondary.start_replicator()
    return {
        "full_clone": with_overhead(comparison(PROXY_NAMES, *full, large.primary_pack)),
        "tiny_clone": with_overhead(comparison(PROXY_NAMES, *small)),
    }


def with_overhead(c: dict[str, Any]) -> dict[str, Any]:
    """Proxy time over primary time, minus one: the share a client pays for the extra hop."""
    return c | {"overhead_pct": round((1 / c["ratio"] - 1) * 100, 1)}


# (d) Backfill of a new secondary ------------------------------------------------------------


def seeded_project(
    api: AdminApi, owner: Account, primary: Site, scratch: Path, name: str, commits: int = 1
) -> tuple[GeoProject, str]:
    """A new project with a history of `commits` small commits (made in the bare `scratch`
    repository, which threads may share) pushed to its main branch; the project and its tip."""
    project = new_project(api, owner, name)
    sha: str | None = None
    for index in range(commits):
        sha = commit_on(scratch, sha, f"{name} commit {index + 1}")
    assert sha is not None, "a project needs at least one commit"
    checked_git(
        "--git-dir", str(scratch), "push", "-q", project.url(primary, owner), f"{sha}:{MAIN}"
    )
    return project, sha


def create_small_projects(
    api: AdminApi, owner: Account, primary: Site, count: int, work: Path
) -> float:
    """`count` projects, one small commit pushed to each, from a pool of threads; seconds."""
    scratch = work / "fill.git"
    checked_git("init", "-q", "--bare", str(scratch))
    started = time.perf_counter()
    with ThreadPoolExecutor(CREATE_THREADS) as pool:
        list(
            pool.map(
                lambda i: seeded_project(api, owner, primary, scratch, f"fill-{i:04d}"),
                range(count),
            )
        )
    return time.perf_counter() - started


@dataclass
class Backfill:
    """When the new site was ready, had every project in its read model, had them synced."""

    ready_s: float = 0.0
    read_model_s: float | None = None
    synced_s: float | None = None
    last_status: dict[str, Any] = field(default_factory=dict)
    peaks: dict[str, int] = field(default_factory=dict)


def all_synced(site: Site) -> bool:
    """Every project of the site's read model has a synced registry row at its latest seq
    (the status counts registry rows, which could include a deleted project's)."""
    after: int | None = 0
    while after is not None:
        page = internal(site, f"/geo/replicables?after={after}&limit=1000").json()
        for item in page["replicables"]:
            entry = item["registry"]
            if entry is None or entry["state"] != "synced" or entry["synced_seq"] < item["seq"]:
                return False
        after = page["next_after"]
    return True


def follow_backfill(
    site: Site, starting: Future[None], projects: int, started: float, result: Backfill
) -> None:
    """Poll the new site's status from the moment its internal API answers (while its later
    services still start), until every project is synced or REPLICA_TIMEOUT_S passes."""
    while result.synced_s is None:
        elapsed = time.perf_counter() - started
        if elapsed > REPLICA_TIMEOUT_S:
            raise RuntimeError(f"backfill incomplete after {elapsed:.0f} s: {result.last_status}")
        if starting.done() and not result.ready_s:
            starting.result()  # raises if the site failed to start
            result.ready_s = elapsed
        try:
            status = internal(site, "/geo/status").json()
        except (httpx.HTTPError, ValueError):  # not listening yet
            time.sleep(STATUS_POLL_S)
            continue
        result.last_status = status
        if result.read_model_s is None and status["projects"] >= projects:
            result.read_model_s = elapsed
        if status["synced"] >= projects and status["projects"] >= projects and all_synced(site):
            result.synced_s = elapsed
        time.sleep(STATUS_POLL_S)
    if not result.ready_s:  # synced in the moment between the replicator's readiness and ours
        starting.result()
        result.ready_s = time.perf_counter() - started


def replicator_probe(site: Site) -> Callable[[], dict[str, int]]:
    """The new site's replicator, once it runs (its pid is only known after start)."""

    def probe() -> dict[str, int]:
        record = site.supervisor.record(site.process_name("replicator"))
        return {"replicator": rss(psutil.Process(record.pid))} if record else {}

    return probe


def backfill_site(
    primary: Site, admin_token: str, bootstrap: str, base_dir: Path, projects: int
) -> Backfill:
    """A new secondary, registered on the primary, with an empty database and storage."""
    result = Backfill()
    with fresh_database() as database_url:
        site = Site(
            "secondary-backfill",
            "secondary",
            base_dir,
            SitePorts.free(),
            database_url,
            bootstrap,
            extra_env=FAST_GEO,
            primary_url=primary.http_url,
            topics=primary.topics,
        )
        register_sites(primary, admin_token, [site])
        log(f"(d) starting a new secondary; waiting until it has synced {projects} projects")
        with PeakSampler(replicator_probe(site), interval=0.2) as sampler:
            started = time.perf_counter()
            try:
                with ThreadPoolExecutor(1) as pool:
                    starting = pool.submit(site.start)
                    follow_backfill(site, starting, projects, started, result)
            finally:
                site.stop()
        result.peaks = sampler.peaks
    return result


def measure_backfill(
    api: AdminApi,
    admin_token: str,
    owner: Account,
    sites: tuple[Site, Site],
    earlier: Sequence[int],
    count: int,
    bootstrap: str,
    work: Path,
) -> dict[str, Any]:
    """Only the `count` small projects are left on the primary — the earlier ones go, or the
    new site would spend its time fetching the large repository — and secondary-1's
    replicator is stopped, so the new site does not share the machine with another backfill."""
    primary, secondary = sites
    secondary.supervisor.stop(secondary.process_name("replicator"))
    for project_id in earlier:
        delete_project(primary, admin_token, project_id)
    log(f"(d) creating {count} projects on the primary, one pushed commit each")
    create_s = create_small_projects(api, owner, primary, count, work)
    on_primary = int(internal(primary, "/geo/status").json()["projects"])
    result = backfill_site(primary, admin_token, bootstrap, primary.base_dir, on_primary)
    status = result.last_status
    return {
        "projects": on_primary,
        "create_s": round(create_s, 1),
        "site_ready_s": round(result.ready_s, 1),
        "read_model_s": round(result.read_model_s or 0.0, 1),
        "synced_s": round(result.synced_s or 0.0, 1),
        "projects_per_s": round(on_primary / (result.synced_s or math.inf), 1),
        "final_status": {k: status.get(k) for k in ("projects", "synced", "failed", "verified")},
        "replicator_peak_rss_mb": round(result.peaks.get("replicator", 0) / MIB, 1),
    }


# The run ------------------------------------------------------------------------------------


def run(options: Options) -> dict[str, Any]:
    return run_area(
        options,
        lambda _: run_sites(options, options.spec),
        report,
        prebuilt=(options.spec, TINY),
        extra={"settings": dict(FAST_GEO)},
    )


def run_lag(options: Options) -> dict[str, Any]:
    """Area `geo-lag`: only (a), the replication lag under load (a few minutes, not an hour)."""
    return run_area(
        options,
        lambda _: run_lag_sites(options),
        report_lag_only,
        extra={"settings": dict(FAST_GEO)},
    )


def run_lag_sites(options: Options) -> dict[str, Any]:
    lag_count = LAG_PROJECTS_QUICK if options.quick else LAG_PROJECTS
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="geo-") as tmp,
        geo_sites(Path(tmp)) as (primary, secondary, admin_token, _),
        AdminApi(primary.http_url, admin_token) as api,
    ):
        work = Path(tmp) / "work"
        work.mkdir()
        owner = new_account(api)
        lag, _ = measure_lag(api, owner, primary, secondary, lag_count, work)
        return {"repository": "lag only", **host_facts(options.repeat), "lag": lag}


@contextmanager
def geo_sites(tmp: Path) -> Iterator[tuple[Site, Site, str, str]]:
    """A broker of our own, the primary and one secondary; their logs are kept afterwards."""
    base = tmp / "sites"
    with (
        kept_logs(base, LOGS_KEPT),
        TansuBroker() as broker,
        running_sites(base, broker.bootstrap, secondaries=1) as (primary, (secondary,), admin),
    ):
        yield primary, secondary, admin.token, broker.bootstrap


def run_sites(options: Options, spec: RepoSpec) -> dict[str, Any]:
    lag_count = LAG_PROJECTS_QUICK if options.quick else LAG_PROJECTS
    fill_count = BACKFILL_PROJECTS_QUICK if options.quick else BACKFILL_PROJECTS
    with (
        tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="geo-") as tmp,
        geo_sites(Path(tmp)) as (primary, secondary, admin_token, bootstrap),
        AdminApi(primary.http_url, admin_token) as api,
    ):
        work = Path(tmp) / "work"
        work.mkdir()
        owner = new_account(api)
        lag, pushers = measure_lag(api, owner, primary, secondary, lag_count, work)
        with PeakSampler(secondary_probe(secondary)) as sampler:
            large = push_generated(api, owner, primary, secondary, spec)
            tiny = push_generated(api, owner, primary, secondary, TINY)
            local = measure_local_clone(primary, secondary, owner, large, tiny, options.repeat)
        proxy = measure_proxy_clone(primary, secondary, owner, large, tiny, options.repeat)
        earlier = [p.project.id for p in pushers] + [large.project.id, tiny.project.id]
        backfill = measure_backfill(
            api, admin_token, owner, (primary, secondary), earlier, fill_count, bootstrap, work
        )
        return {
            "repository": spec.key,
            **host_facts(options.repeat),
            "lag": lag,
            "large_push": {
                "push_s": round(large.push_s, 1),
                "first_replica_s": round(large.replicate_s, 1),
                "primary_pack_bytes": large.primary_pack,
                "replica_pack_bytes": large.replica_pack,
                "peak_rss_mb": megabytes(sampler.peaks),
            },
            "local_clone": local,
            "proxy_clone": proxy,
            "backfill": backfill,
        }


# Report -------------------------------------------------------------------------------------


def report(r: dict[str, Any]) -> None:
    print(f"\ngeo benchmark: {r['repository']}, {r['git_version']}, {conditions(r)}")
    print(f"settings (FAST_GEO, as running_sites applies them): {r['settings']}\n")
    report_lag(r["lag"])
    report_clones(r)
    report_memory(r)
    report_backfill(r["backfill"])
    print_foreign_warning(r, lead="\n")


def report_lag_only(r: dict[str, Any]) -> None:
    print(f"\ngeo benchmark, lag only: {r['git_version']}, {conditions(r)}")
    print(f"settings (FAST_GEO, as running_sites applies them): {r['settings']}\n")
    report_lag(r["lag"])
    print_foreign_warning(r, lead="\n")


def report_lag(lag: dict[str, Any]) -> None:
    rows = []
    for label, key in (
        ("push acknowledged -> served locally", "lag_ms"),
        ("push acknowledged -> old commit no longer served", "heard_ms"),
        ("git push itself", "push_ms"),
    ):
        d = lag[key]
        rows.append([label, *(f"{d.get(p, 0):.0f}" for p in ("p50", "p90", "p95", "p99", "max"))])
    print(
        f"(a) replication lag: {lag['projects']} concurrent pushers, {lag['pushes']} pushes in"
        f" {lag['wall_s']:.1f} s, {lag['polls']} polls ({lag['polls_per_s']:.0f}/s)"
    )
    print_table(["ms", "p50", "p90", "p95", "p99", "max"], rows)
    p99 = lag["lag_ms"].get("p99", math.inf) / 1000
    verdict = "met" if p99 < TARGET_LAG_P99_S and not lag["errors"] else "NOT met"
    print(
        f"lag p99 {p99:.2f} s (target < {TARGET_LAG_P99_S:.0f} s: {verdict}); errors"
        f" {lag['errors']}/{lag['pushes']}; server CPU s {lag['server_cpu_s']}"
    )
    print(f"primary CPU s per push: {lag['primary_cpu_s_per_push']}")
    slowest = ", ".join(
        f"project {o['project_id']} round {o['round']} at {o['acked_at']}: {o['lag_ms']} ms"
        for o in lag["slowest"][:3]
    )
    print(f"slowest: {slowest}\n")


def report_clones(r: dict[str, Any]) -> None:
    local, proxy = r["local_clone"], r["proxy_clone"]
    full, tiny = proxy["full_clone"], proxy["tiny_clone"]
    print_table(
        clone_headers("clone", "primary", "other"),
        [
            clone_row(f"(b) full, secondary local ({r['repository']})", local, LOCAL_NAMES),
            clone_row(
                f"(b) shallow --depth 1 {TINY.key}, secondary local",
                local["shallow_tiny"],
                LOCAL_NAMES,
            ),
            clone_row(f"(c) full, secondary proxying ({r['repository']})", full, PROXY_NAMES),
            clone_row(f"(c) {TINY.key}, secondary proxying", tiny, PROXY_NAMES),
        ],
    )
    print("(ratio = primary time / other time, 1.0 is parity; CPU = client git + site processes)")
    ok = "met" if local["ratio"] >= TARGET_LOCAL_RATIO else "NOT met"
    print(
        f"(b) secondary/primary throughput {local['ratio']:.2f}"
        f" (target >= {TARGET_LOCAL_RATIO}: {ok})"
    )
    shallow = local["shallow_tiny"]["overhead_ms"]
    ok = "met" if shallow <= TARGET_LOCAL_SHALLOW_MS else "NOT met"
    print(
        f"(b) secondary's local shallow answer {shallow:+.0f} ms over the primary's"
        f" (target <= +{TARGET_LOCAL_SHALLOW_MS} ms: {ok})"
    )
    ok = "met" if full["overhead_pct"] <= TARGET_PROXY_OVERHEAD * 100 else "NOT met"
    print(
        f"(c) proxy overhead {full['overhead_pct']:+.1f} % on the full clone (target <="
        f" {TARGET_PROXY_OVERHEAD:.0%}: {ok}), {tiny['overhead_pct']:+.1f} %"
        f" ({tiny['overhead_ms']:+.0f} ms) on the tiny clone\n"
    )


def report_memory(r: dict[str, Any]) -> None:
    push = r["large_push"]
    print(
        f"large repository: pushed in {push['push_s']:.1f} s, first replica served locally"
        f" {push['first_replica_s']:.1f} s after; pack {push['primary_pack_bytes'] / MIB:.1f} MiB"
        f" on the primary, {push['replica_pack_bytes'] / MIB:.1f} MiB on the secondary"
    )
    during_a, during_b = r["lag"]["peak_rss_mb"], push["peak_rss_mb"]
    print_table(
        ["secondary process", "peak RSS MB (a) lag", "peak RSS MB (b) push, replicate, clone"],
        [
            [name, f"{during_a.get(key, 0):.1f}", f"{during_b.get(key, 0):.1f}"]
            for key, name in (
                ("replicator", "replicator"),
                ("edge_proxy", "edge proxy"),
                ("storage", "storage server"),
                ("storage_children", "storage git children (summed)"),
            )
        ],
    )
    print()


def report_backfill(b: dict[str, Any]) -> None:
    print(
        f"(d) backfill of {b['projects']} projects (created with {CREATE_THREADS} threads in"
        f" {b['create_s']:.0f} s) by a new secondary"
    )
    print_table(
        ["since the new site's start", "s"],
        [
            ["every service ready", f"{b['site_ready_s']:.1f}"],
            ["read model has every project", f"{b['read_model_s']:.1f}"],
            ["every project synced", f"{b['synced_s']:.1f}"],
        ],
    )
    print(
        f"{b['projects_per_s']:.1f} projects/s; final status {b['final_status']}; replicator"
        f" peak RSS {b['replicator_peak_rss_mb']:.0f} MB"
    )
