"""Work stays proportional to the request (issue 9, items 4 and 7): big pushes, slow and
oversized clients, many at once — against a real primary and secondary.

Each test asserts the answer (status and message), that the services stay healthy, and that
nothing changed that should not have.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from e2e import Account, Api, clone_url, git
from geo_support import internal, primary_and_secondary, served_locally, wait_until
from ssh_harness import SshKey, make_key, ssh, ssh_command

from geogit.common.tansu import TansuBroker
from geogit.devstack.site import Site
from geogit.storage.testing import commit_all, make_work_tree

HEADER_TIMEOUT = 2.0
BODY_IDLE_TIMEOUT = 3.0
SECONDARY_MAX_CONNECTIONS = 64
LISTENER_ENV = {
    "GEOGIT_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
    "GEOGIT_OPS_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
    "GEOGIT_BODY_IDLE_TIMEOUT_SECONDS": str(BODY_IDLE_TIMEOUT),
}
SLOWLORIS_SOCKETS = 40
BIG_PUSH_MIB = 200
"""Much more than every buffer on the way (an SSH window of 2 MiB, gRPC's and HTTP's few MiB)."""
RSS_GROWTH_LIMIT_MIB = 48
"""What a gateway may grow by while relaying a BIG_PUSH_MIB pack: a few buffers, not the pack."""


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Site, Api]]:
    # A broker of its own: its projects' events must not mix with the session primary's.
    with (
        TansuBroker() as broker,
        primary_and_secondary(
            tmp_path_factory.mktemp("hostile-big"),
            broker.bootstrap,
            # Short bounds on the secondary only: the primary keeps the defaults, under which 270
            # clients at once on two shared cores still get their heads through.
            secondary_env={
                **LISTENER_ENV,
                "GEOGIT_MAX_CONNECTIONS": str(SECONDARY_MAX_CONNECTIONS),
            },
        ) as sites,
    ):
        yield sites


@pytest.fixture(scope="module")
def primary(sites: tuple[Site, Site, Api]) -> Site:
    return sites[0]


@pytest.fixture(scope="module")
def secondary(sites: tuple[Site, Site, Api]) -> Site:
    return sites[1]


@pytest.fixture(scope="module")
def api(sites: tuple[Site, Site, Api]) -> Api:
    return sites[2]


def service_pid(site: Site, service: str) -> int:
    record = site.supervisor.record(site.process_name(service))
    assert record is not None, f"{service} of {site.name} is not running"
    return record.pid


class PeakRss:
    """The highest resident memory of a process while the block runs (psutil, every 10 ms)."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.before = 0
        self.peak = 0
        self._stop = threading.Event()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self) -> PeakRss:
        self.before = self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.before) / 2**20


def all_healthy(*sites: Site) -> None:
    for site in sites:
        for url in (site.http_url, site.internal_api_url, site.ssh_ops_url):
            response = httpx.get(f"{url}/-/readiness", timeout=10)
            assert response.status_code == 200, (url, response.status_code, response.text)


def ssh_account(api: Api, sites: list[Site], keys: Path) -> tuple[Account, SshKey]:
    """An account with an SSH key that every site given already knows."""
    account = api.account()
    key = make_key(keys, account.username)
    api.call("POST", f"/users/{account.id}/keys", json={"title": "laptop", "key": key.public})
    blob = key.public.split()[1]
    for site in sites:
        wait_until(
            lambda site=site: internal(site, "/authorized_keys", key=blob).status_code == 200,
            what=f"the key on {site.name}",
        )
    return account, key


def ssh_url(project: dict[str, Any]) -> str:
    return f"git@127.0.0.1:{project['path_with_namespace']}.git"


def write_incompressible(path: Path, mib: int) -> None:
    chunk = os.urandom(2**20)
    with path.open("wb") as handle:
        for index in range(mib):
            handle.write(index.to_bytes(8, "big") + chunk[8:])


def remote_head(url: str, env: dict[str, str] | None = None) -> str:
    return git("ls-remote", url, "refs/heads/main", env=env).stdout.split()[0]


@pytest.mark.parametrize("through", ["primary", "secondary"])
def test_big_ssh_push_keeps_the_gateway_flat(
    api: Api, primary: Site, secondary: Site, tmp_path: Path, through: str
) -> None:
    """A pack 100 times an SSH window goes through; the gateway (the primary's own, or the
    secondary's relaying it to the primary over HTTP) grows by a few buffers, not the pack."""
    site = primary if through == "primary" else secondary
    account, key = ssh_account(api, [site], tmp_path)
    project = api.project(account)
    env = {"GIT_SSH_COMMAND": ssh_command(key, site.ports.ssh)}
    work = make_work_tree(tmp_path / "work", commits=1)
    git("push", "-q", ssh_url(project), "main", cwd=work, env=env)  # warms the path up
    write_incompressible(work / "big.bin", BIG_PUSH_MIB)
    git("-c", "core.compression=0", "add", "big.bin", cwd=work)
    pushed = commit_all(work, "big")

    with PeakRss(service_pid(site, "ssh-gateway")) as rss:
        git("-c", "pack.compression=0", "push", "-q", ssh_url(project), "main", cwd=work, env=env)

    assert remote_head(clone_url(primary.http_url, project, account)) == pushed
    assert rss.growth_mib < RSS_GROWTH_LIMIT_MIB, (
        f"the {through}'s gateway grew by {rss.growth_mib:.0f} MiB for a {BIG_PUSH_MIB} MiB push"
    )
    all_healthy(primary, secondary)


# Slow and oversized clients -----------------------------------------------------------------

# Every kind of listener, on the secondary (the one with short bounds; the code is the same).
LISTENERS = {
    "edge": lambda site: site.http_url,
    "internal API": lambda site: site.internal_api_url,
    "storage ops": lambda site: site.storage_ops_url,
    "ssh-gateway ops": lambda site: site.ssh_ops_url,
    "replicator ops": lambda site: site.replicator_ops_url,
}
HALF_HEADS = {
    "request line only": b"GET /-/readiness HTTP/1.1\r\n",
    "one header line": b"GET /-/readiness HTTP/1.1\r\nHost: x\r\n",
    "half a request line": b"GET /-/readin",
    "head without its blank line": b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n",
}
OVERSIZED_HEADS = {
    "one huge header": lambda size: b"GET / HTTP/1.1\r\nX-Big: " + b"a" * size + b"\r\n\r\n",
    "many headers": lambda size: (
        b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(size // 8)) + b"\r\n"
    ),
    "huge URL": lambda size: b"GET /" + b"a" * size + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "never-ending header": lambda size: b"GET / HTTP/1.1\r\nX-Big: " + b"a" * size,
}


def address(url: str) -> tuple[str, int]:
    parsed = httpx.URL(url)
    assert parsed.port is not None
    return parsed.host, parsed.port


async def answer_to(url: str, request: bytes, timeout: float) -> tuple[bytes, float]:
    """What a listener answers to `request` (sent, then nothing more), and after how long."""
    host, port = address(url)
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port)
    with contextlib.suppress(ConnectionError):
        writer.write(request)
        await writer.drain()
    try:
        return await first_answer(reader, timeout), time.monotonic() - started
    finally:
        writer.close()


async def first_answer(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """The first chunk the server sends (a refusal fits in one); b"" if it just closed."""
    with contextlib.suppress(ConnectionError):
        return await asyncio.wait_for(reader.read(65536), timeout)
    return b""


def listener_urls(primary: Site, secondary: Site) -> dict[str, str]:
    return {name: url(secondary) for name, url in LISTENERS.items()}


@pytest.mark.parametrize("head", list(HALF_HEADS.values()), ids=list(HALF_HEADS))
async def test_a_half_sent_head_gets_408_within_the_header_timeout(
    primary: Site, secondary: Site, head: bytes
) -> None:
    """On every listener at once."""
    urls = listener_urls(primary, secondary)
    answers = await asyncio.gather(
        *(answer_to(url, head, HEADER_TIMEOUT + 10) for url in urls.values())
    )
    for name, (response, elapsed) in zip(urls, answers, strict=True):
        assert response.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), (name, response)
        assert b"took too long" in response, (name, response)
        assert elapsed < HEADER_TIMEOUT + 3, (name, elapsed)
    all_healthy(primary, secondary)


@pytest.mark.parametrize("listener", list(LISTENERS))
async def test_slowloris_sockets_are_all_dropped_and_others_served(
    primary: Site, secondary: Site, listener: str
) -> None:
    """40 sockets trickling a head a byte at a time: every one is answered 408 and closed once
    the header timeout is over, and a normal request on the same listener is served meanwhile."""
    url = LISTENERS[listener](secondary)
    host, port = address(url)
    started = time.monotonic()
    sockets = [await asyncio.open_connection(host, port) for _ in range(SLOWLORIS_SOCKETS)]
    head = b"GET /-/readiness HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        answer = asyncio.create_task(first_answer(reader, HEADER_TIMEOUT + 10))
        for byte in head:
            if answer.done():
                break
            with contextlib.suppress(ConnectionError):
                writer.write(bytes([byte]))
            await asyncio.wait([answer], timeout=0.25)
        return await answer

    trickles = [asyncio.create_task(trickle(*pair)) for pair in sockets]
    await asyncio.sleep(0.5)
    async with httpx.AsyncClient() as client:
        normal = await client.get(f"{url}/-/readiness", timeout=10)
    responses = await asyncio.gather(*trickles)
    for _, writer in sockets:
        writer.close()
    assert normal.status_code == 200, normal.text
    assert all(response.startswith(b"HTTP/1.1 408 ") for response in responses), {
        response[:40] for response in responses
    }
    assert time.monotonic() - started < HEADER_TIMEOUT + 8
    all_healthy(primary, secondary)


@pytest.mark.parametrize("shape", list(OVERSIZED_HEADS.values()), ids=list(OVERSIZED_HEADS))
async def test_an_oversized_head_gets_431(primary: Site, secondary: Site, shape: Any) -> None:
    """128 KiB of head, more than any listener takes, on every listener at once."""
    urls = listener_urls(primary, secondary)
    head = shape(128 * 1024)
    answers = await asyncio.gather(*(answer_to(url, head, 10) for url in urls.values()))
    for name, (response, _) in zip(urls, answers, strict=True):
        assert response.startswith(b"HTTP/1.1 431 "), (name, response[:200])
        assert b"too large" in response.lower() or b"larger than" in response, (name, response)
    all_healthy(primary, secondary)


async def test_a_push_body_that_stops_ends_the_request_and_changes_nothing(
    api: Api, primary: Site, secondary: Site, tmp_path: Path
) -> None:
    owner = api.account()
    project = api.project(owner)
    tree = make_work_tree(tmp_path / "work", commits=1)
    url = clone_url(primary.http_url, project, owner)
    git("push", "-q", url, "main", cwd=tree)
    before = git("ls-remote", url).stdout
    old = before.split()[0]
    wait_until(lambda: served_locally(secondary, project, owner, old), what="the replica")
    command = f"{old} {'1' * 40} refs/heads/main\0report-status\n".encode()
    body = b"%04x" % (len(command) + 4) + command + b"0000PACK\0\0\0\2"
    host, port = address(secondary.http_url)
    token = base64.b64encode(f"{owner.username}:{owner.token}".encode()).decode()
    reader, writer = await asyncio.open_connection(host, port)
    started = time.monotonic()
    writer.write(
        f"POST /{project['path_with_namespace']}.git/git-receive-pack HTTP/1.1\r\n"
        f"Host: {host}\r\nAuthorization: Basic {token}\r\n"
        "Content-Type: application/x-git-receive-pack-request\r\n"
        "Content-Length: 100000\r\n\r\n".encode()
        + body
    )
    response = await first_answer(reader, BODY_IDLE_TIMEOUT + 10)
    writer.close()
    elapsed = time.monotonic() - started
    assert response == b"", response[:200]  # closed: the request ended, nothing was answered
    assert BODY_IDLE_TIMEOUT - 0.5 <= elapsed < BODY_IDLE_TIMEOUT + 5, elapsed
    assert git("ls-remote", url).stdout == before
    all_healthy(primary, secondary)


async def test_connections_beyond_the_cap_get_503_with_retry_after(
    primary: Site, secondary: Site
) -> None:
    host, port = address(secondary.http_url)
    held = [await asyncio.open_connection(host, port) for _ in range(SECONDARY_MAX_CONNECTIONS)]
    try:
        await asyncio.sleep(0.2)
        async with httpx.AsyncClient() as client:
            refused = await client.get(f"{secondary.http_url}/-/readiness", timeout=10)
    finally:
        for _, writer in held:
            writer.close()
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "1"
    assert refused.text == "Too many connections to this server, retry later.\n"
    await asyncio.sleep(0.5)
    async with httpx.AsyncClient() as client:
        again = await client.get(f"{secondary.http_url}/-/readiness", timeout=10)
    assert again.status_code == 200, again.text
    all_healthy(primary, secondary)


# Many at once ---------------------------------------------------------------------------------

CONCURRENT_CLONES = 200
CONCURRENT_SSH_CLONES = 50
CONCURRENT_PUSHES = 20


def test_concurrent_clones_and_pushes_of_one_project_all_succeed(
    api: Api, primary: Site, secondary: Site, tmp_path: Path
) -> None:
    """200 HTTP clones and 50 SSH clones of one project at once, while 20 pushes land on
    branches of their own: every one succeeds, and every clone has the history pushed."""
    account, key = ssh_account(api, [primary], tmp_path)
    project = api.project(account)
    http_url = clone_url(primary.http_url, project, account)
    env = {"GIT_SSH_COMMAND": ssh_command(key, primary.ports.ssh)}
    tree = make_work_tree(tmp_path / "seed", commits=3)
    git("push", "-q", http_url, "main", cwd=tree)
    main = git("rev-parse", "HEAD", cwd=tree).stdout.strip()
    pushers = []
    for index in range(CONCURRENT_PUSHES):
        pusher = tmp_path / f"pusher-{index}"
        git("clone", "-q", http_url, str(pusher))
        (pusher / "own.txt").write_text(f"branch {index}\n")
        pushers.append((pusher, commit_all(pusher, f"branch {index}")))

    def clone(index: int) -> tuple[int, str]:
        over_ssh = index >= CONCURRENT_CLONES
        target = tmp_path / f"clone-{index}"
        result = git(
            "clone",
            "-q",
            ssh_url(project) if over_ssh else http_url,
            str(target),
            check=False,
            env=env if over_ssh else None,
        )
        if result.returncode != 0:
            return result.returncode, result.stderr
        return 0, git("rev-parse", "HEAD", cwd=target).stdout.strip()

    def push(index: int) -> tuple[int, str]:
        pusher, _ = pushers[index]
        result = git("push", "-q", "origin", f"HEAD:refs/heads/b{index}", cwd=pusher, check=False)
        return result.returncode, result.stderr

    with ThreadPoolExecutor(CONCURRENT_CLONES + CONCURRENT_SSH_CLONES + CONCURRENT_PUSHES) as pool:
        clones = [
            pool.submit(clone, index) for index in range(CONCURRENT_CLONES + CONCURRENT_SSH_CLONES)
        ]
        pushes = [pool.submit(push, index) for index in range(CONCURRENT_PUSHES)]
        clone_results = [future.result() for future in clones]
        push_results = [future.result() for future in pushes]

    failures = [result for result in clone_results + push_results if result[0] != 0]
    assert not failures, f"{len(failures)} failed, first: {failures[0]}"
    assert {head for _, head in clone_results} == {main}
    refs = git("ls-remote", http_url).stdout
    for index, (_, commit) in enumerate(pushers):
        assert f"{commit}\trefs/heads/b{index}" in refs
    assert f"{main}\trefs/heads/main" in refs
    all_healthy(primary, secondary)


# Oversized push options relayed by the secondary ----------------------------------------------

PUSH_OPTIONS = [b"o" * 65000] * 146
"""About 9 MiB of push options, each as long as a pkt-line allows."""


def pkt_lines(lines: list[bytes]) -> bytes:
    return b"".join(b"%04x" % (len(line) + 4) + line for line in lines) + b"0000"


def test_oversized_push_options_are_refused_by_the_relaying_gateway(
    api: Api, primary: Site, secondary: Site, tmp_path: Path
) -> None:
    """The secondary's gateway holds a push's options before it asks the primary: more than
    8 MiB of them is refused with a message, and no ref changes."""
    account, key = ssh_account(api, [secondary], tmp_path)
    project = api.project(account)
    url = clone_url(primary.http_url, project, account)
    git("push", "-q", url, "main", cwd=make_work_tree(tmp_path / "work", commits=1))
    before = git("ls-remote", url).stdout
    old = before.split()[0]
    command = f"{old} {'1' * 40} refs/heads/main\0report-status push-options\n".encode()
    result = ssh(
        key,
        secondary.ports.ssh,
        "git@127.0.0.1",
        f"git-receive-pack '{project['path_with_namespace']}.git'",
        input=pkt_lines([command]) + pkt_lines(PUSH_OPTIONS),
        timeout=120,
    )
    assert result.returncode == 1, result
    assert result.stderr == "geogit: the client's push options exceed 8 MiB\n", result.stderr
    assert git("ls-remote", url).stdout == before
    all_healthy(primary, secondary)
