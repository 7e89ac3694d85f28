"""A secondary site for the replicator's tests: its real storage process, its real internal
API (PostgreSQL, served in a thread) and, standing in for the other site, a small primary:
`git http-backend` behind the Geo-token check the primary's front door makes, and the
primary's repository-state answer that a sync settles a mismatch with.

The read model is fed by applying the primary's events to the site's database directly (what
the internal API's event feed does with each event it receives), so a test says exactly what
the site knows, and when.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from google.protobuf.message import Message
from http_backend_server import answer_with_http_backend
from internal_api_support import Database, serve_in_thread

from geogit.common.events import Topics, new_event
from geogit.common.geo import (
    BOOTSTRAP_EPOCH,
    GEO_TOKEN_HEADER,
    GeoSigner,
    generate_site_key,
    verify_geo_token,
)
from geogit.common.kafka import KafkaConfig
from geogit.common.net import free_port
from geogit.common.paths import hashed_repository_path
from geogit.common.primary_client import PrimaryClient
from geogit.common.proto.events.v1 import domain_pb2, repository_pb2
from geogit.common.tokens import TokenError
from geogit.internal_api.config import InternalApiSettings
from geogit.internal_api.db import make_engine, make_sessionmaker
from geogit.internal_api.geo import read_model
from geogit.replicator.clients.internal_api import InternalApiClient
from geogit.replicator.clients.storage import StorageClient
from geogit.replicator.feed import RepositoryFeed
from geogit.replicator.metrics import ReplicatorMetrics
from geogit.replicator.ownership import Ownership
from geogit.replicator.read_model_wait import ReadModelWait
from geogit.replicator.reports import Reports
from geogit.replicator.scheduler import Scheduler
from geogit.replicator.site import SiteRole
from geogit.replicator.sync_state import SyncStates
from geogit.replicator.worker import ReplicaWorker
from geogit.storage.git import Git
from geogit.storage.repositories import Repositories
from geogit.storage.testing import API_SECRET, STORAGE_SECRET, StorageProcess, git

SITE = "secondary"
GEO_PRIVATE_KEY, GEO_PUBLIC_KEY = generate_site_key()
OWNER_ID = 1


@dataclass
class PrimaryRepository:
    """One project's repository on the primary, and the sequence its pushes reached."""

    project_id: int
    full_path: str
    path: Path
    work: Path
    seq: int = 1

    @property
    def disk_path(self) -> str:
        return hashed_repository_path(self.project_id)


class Primary:
    """The primary as the replicator sees it: smart HTTP at /<full_path>.git for Geo tokens of
    scope `replication`, and GET /api/v4/geo/projects/:id/repository."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.repositories: dict[int, PrimaryRepository] = {}
        # Project id → (seq, checksum) the primary answers; absent: 404 (it cannot say).
        self.states: dict[int, tuple[int, str]] = {}
        # Project id → when its latest push was acknowledged, for pushes made by `push`.
        self.pushed_at: dict[int, datetime] = {}
        self.fetches = 0
        # A test closes the gate to hold fetches mid-way (the pack request waits for it) and
        # learns from `fetch_held` that one is waiting.
        self.gate = threading.Event()
        self.gate.set()
        self.fetch_held = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._thread.join(5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        primary = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._serve(b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                self._serve(self.rfile.read(length))

            def _serve(self, body: bytes) -> None:
                try:
                    claims = verify_geo_token(
                        self.headers.get(GEO_TOKEN_HEADER, ""), GEO_PUBLIC_KEY, SITE
                    )
                except TokenError:
                    self._answer(401, b"bad geo token\n", "text/plain")
                    return
                parts = urlsplit(self.path)
                prefix = "/api/v4/geo/projects/"
                if parts.path.startswith(prefix) and parts.path.endswith("/repository"):
                    project = unquote(parts.path[len(prefix) : -len("/repository")])
                    state = primary.states.get(int(project))
                    if state is None:
                        self._answer(404, b"{}", "application/json")
                        return
                    pushed_at = primary.pushed_at.get(int(project))
                    answer = {
                        "project_id": int(project),
                        "seq": state[0],
                        "checksum": state[1],
                        "pushed_at": pushed_at.isoformat() if pushed_at else None,
                    }
                    self._answer(200, json.dumps(answer).encode(), "application/json")
                elif claims.scope == "replication" and ".git/" in parts.path:
                    primary.fetches += self.command == "POST"
                    if self.command == "POST" and not primary.gate.is_set():
                        primary.fetch_held.set()
                        primary.gate.wait(60)
                    self._http_backend(parts.path, parts.query, body)
                else:
                    self._answer(404, b"not found\n", "text/plain")

            def _answer(self, status: int, payload: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _http_backend(self, path: str, query: str, body: bytes) -> None:
                answer_with_http_backend(self, primary.root, path, query, body)

        return Handler


class SecondarySite:
    """The secondary's storage and internal API, the primary beside them, and the read model's
    inputs: `create`, `push` and `delete` change the primary; `announce_*` tell the site."""

    def __init__(self, root: Path, extra_shards: tuple[str, ...] = ()) -> None:
        self.root = root
        self.database = Database()
        self.primary = Primary(root / "primary")
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.storage = StorageProcess(root / "storage" / "repositories", self.api_url)
        # The site's storage shards by name: "default" (`storage`) and any others.
        self.shards = {"default": self.storage} | {
            name: StorageProcess(root / name / "repositories", self.api_url, name=name)
            for name in extra_shards
        }
        self._runtime = root / "checksums"
        self._next_id = 1000
        self._stop_api: threading.Event | None = None

    @contextmanager
    def running(self) -> Iterator[SecondarySite]:
        self.database.create()
        self.primary.root.mkdir(parents=True)
        self.primary.start()
        for shard in self.shards.values():
            shard.start()
        settings = InternalApiSettings.model_validate(
            {
                "database_url": self.database.url,
                "internal_api_secret": API_SECRET,
                "storage_secret": STORAGE_SECRET,
                "storages": self.storages,
                "external_url": "http://secondary.example.test",
                "site_name": SITE,
                "site_role": "secondary",
                "primary_url": self.primary.url,
                "geo_private_key": GEO_PRIVATE_KEY,
                "http_address": f"127.0.0.1:{self.api_port}",
                "event_store_poll_seconds": 60.0,
            }
        )
        try:
            with serve_in_thread(settings):
                owner = domain_pb2.UserCreated(
                    user_id=OWNER_ID, username="owner", email="o@x.test", name="O"
                )
                asyncio.run(self.apply(owner))
                yield self
        finally:
            for shard in self.shards.values():
                shard.stop()
            self.primary.stop()
            self.database.drop()

    @property
    def storages(self) -> dict[str, str]:
        return {name: shard.address for name, shard in self.shards.items()}

    # The primary -----------------------------------------------------------------------------

    async def create(self, commits: int = 1) -> PrimaryRepository:
        """A project on the primary with `commits` commits on main, known to the site."""
        self._next_id += 1
        project_id = self._next_id
        full_path = f"owner/p{project_id}"
        path = self.primary.root / f"{full_path}.git"
        git("init", "--bare", "--quiet", "--initial-branch=main", str(path))
        work = self.root / "work" / str(project_id)
        git("init", "--quiet", "--initial-branch=main", str(work))
        repo = PrimaryRepository(project_id, full_path, path, work, seq=0)
        self.repositories[project_id] = repo
        await self.apply(
            domain_pb2.ProjectCreated(
                project_id=project_id,
                namespace="owner",
                path=full_path.split("/")[1],
                visibility="private",
                default_branch="main",
                storage_shard="default",
                disk_path=repo.disk_path,
                owner_id=OWNER_ID,
            )
        )
        await self.apply(repository_pb2.RepositoryCreated(project_id=project_id, seq=1))
        repo.seq = 1
        for _ in range(commits):
            await self.push(repo)
        return repo

    @property
    def repositories(self) -> dict[int, PrimaryRepository]:
        return self.primary.repositories

    async def push(self, repo: PrimaryRepository, branch: str = "main") -> tuple[int, str]:
        """A commit pushed on the primary; the new (seq, checksum), which the primary answers
        from now on but the site does not know until it is announced."""
        git("checkout", "--quiet", "-B", branch, cwd=repo.work)
        (repo.work / "file.txt").write_text(uuid.uuid4().hex)
        git("add", "file.txt", cwd=repo.work)
        git("-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "c", cwd=repo.work)
        git("push", "--quiet", str(repo.path), f"HEAD:refs/heads/{branch}", cwd=repo.work)
        repo.seq += 1
        checksum = await self.checksum(repo.path)
        self.primary.states[repo.project_id] = (repo.seq, checksum)
        self.primary.pushed_at[repo.project_id] = datetime.now(UTC)
        return repo.seq, checksum

    async def checksum(self, path: Path) -> str:
        """What storage computes for a repository: the same code, run here."""
        self._runtime.mkdir(parents=True, exist_ok=True)
        return await Repositories(Git("git", home=self._runtime), self._runtime).checksum(path)

    # What the site knows ---------------------------------------------------------------------

    async def announce_push(self, repo: PrimaryRepository, seq: int, checksum: str) -> None:
        await self.apply(
            repository_pb2.RepositoryUpdated(project_id=repo.project_id, seq=seq, checksum=checksum)
        )

    async def announce_deleted(self, repo: PrimaryRepository) -> None:
        await self.apply(
            domain_pb2.ProjectDeleted(project_id=repo.project_id, disk_path=repo.disk_path)
        )

    async def apply(self, payload: Message) -> None:
        project_id = getattr(payload, "project_id", 0)
        event = new_event(
            payload, aggregate_id=f"project-{project_id}", aggregate_seq=1, origin_site="primary"
        )
        await _apply(self.database.url, event)

    # The replica -----------------------------------------------------------------------------

    def replica_path(self, repo: PrimaryRepository) -> Path:
        return self.storage.root / repo.disk_path


async def _apply(database_url: str, event: object) -> None:
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            await read_model.apply(session, event)  # type: ignore[arg-type]
    finally:
        await engine.dispose()


@dataclass
class Replication:
    """The replicator's parts that a sync goes through, wired as the server wires them, with
    the feed's entry point for events (`feed.handle`) instead of a Kafka consumer."""

    api: InternalApiClient
    storage: StorageClient
    reports: Reports
    primary: PrimaryClient
    states: SyncStates
    metrics: ReplicatorMetrics
    worker: ReplicaWorker
    scheduler: Scheduler
    feed: RepositoryFeed
    # One entry per backfill the feed asked for (an operator's GeoActionRequested).
    backfills: list[None]

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    async def idle(self) -> None:
        async with asyncio.timeout(60):
            while self.scheduler.depth:  # noqa: ASYNC110 (the scheduler exposes a count)
                await asyncio.sleep(0.02)


@asynccontextmanager
async def replication(
    site: SecondarySite, retry_base: float = 0.05, retry_max: float = 0.2
) -> AsyncIterator[Replication]:
    metrics = ReplicatorMetrics()
    states = SyncStates()
    api = InternalApiClient(site.api_url, API_SECRET, 30)
    storage = StorageClient(site.storages, STORAGE_SECRET, 120)
    reports = Reports(api, SITE, metrics)
    signer = GeoSigner(GEO_PRIVATE_KEY, SITE, lambda: BOOTSTRAP_EPOCH)
    primary = PrimaryClient(site.primary.url, signer, 10, scope="replication")
    # The site's role as the replicator learns it: from the secondary's own internal API.
    role = SiteRole(api, primary, 3600, lambda: None)
    await role.refresh()
    assert role.replicating and role.primary_url == site.primary.url, role.role
    worker = ReplicaWorker(
        api,
        storage,
        reports,
        primary,
        role,
        signer,
        retry_base,
        retry_max,
        states,
        metrics,
    )
    scheduler = Scheduler(worker, 4, retry_base, retry_max, metrics)
    # Never started: the tests hand it events, as its Kafka consumer would.
    kafka = KafkaConfig(bootstrap="127.0.0.1:9", idempotent=False, client_id="unused")
    backfills: list[None] = []
    feed = RepositoryFeed(
        kafka,
        Topics("geogit"),
        SITE,
        scheduler,
        states,
        lambda: backfills.append(None),
        ReadModelWait(api, poll_seconds=0.05),
        Ownership(None, scheduler.release, lambda: None, metrics),
    )
    parts = Replication(
        api, storage, reports, primary, states, metrics, worker, scheduler, feed, backfills
    )
    try:
        yield parts
    finally:
        await feed.stop()
        await scheduler.drain(5)
        await storage.close()
        await primary.aclose()
        await api.aclose()
