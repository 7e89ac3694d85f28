"""The Geo SSH proxy end to end: the real git client, `proxy_to_primary`, a real primary site.

git runs the command over "SSH" through `geo_proxy_harness` (its GIT_SSH_COMMAND), which
serves it from the primary's smart HTTP front door as the gateway does after a
`300 geo_proxy_to_primary` answer. Results are compared with git talking HTTP directly.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e import Account, Api, clone_url, git
from geo_proxy_harness import PEAK_RSS_FILE, PRIMARY_URL, git_ssh_env

from geogit.common.net import free_port
from geogit.common.pktline import Packet, PacketKind, PktLineDecoder, encode_packets, pkt_line
from geogit.devstack.site import Site
from geogit.ssh_gateway.geo_proxy import new_http_client, proxy_to_primary
from geogit.storage.testing import commit_all, make_work_tree

DEVELOPER, MAINTAINER = 30, 40
PROTOCOLS = ["0", "2"]
LARGE_PACK_MIB = 100
HARNESS = Path(__file__).with_name("geo_proxy_harness.py")


def basic(username: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{token}".encode()).decode()


@dataclass(frozen=True)
class Remote:
    """One project on the primary, reachable over HTTP directly and over the SSH proxy."""

    site: Site
    project: dict[str, Any]
    account: Account

    @property
    def path(self) -> str:
        return str(self.project["path_with_namespace"])

    @property
    def http(self) -> str:
        return clone_url(self.site.http_url, self.project, self.account)

    @property
    def ssh(self) -> str:
        return f"git@secondary.example:{self.path}.git"

    def env(self, token: str | None = None, **extra: str) -> dict[str, str]:
        authorization = basic(self.account.username, token or self.account.token)
        return {**git_ssh_env(self.site.http_url, authorization), **extra}

    def as_user(self, account: Account) -> Remote:
        return Remote(self.site, self.project, account)


@pytest.fixture
def site(ssh_site: tuple[Site, str]) -> Site:
    return ssh_site[0]


@pytest.fixture
def remote(api: Api, site: Site, tmp_path: Path) -> Remote:
    """A project with three commits on main, a second branch and a tag, pushed over HTTP."""
    owner = api.account()
    remote = Remote(site, api.project(owner), owner)
    tree = make_work_tree(tmp_path / "seed", commits=3)
    git("branch", "side", "HEAD~1", cwd=tree)
    git("tag", "v0.1", "HEAD~2", cwd=tree)
    git("push", "-q", remote.http, "main", "side", "--tags", cwd=tree)
    return remote


@pytest.fixture
def pusher(remote: Remote, tmp_path: Path) -> Path:
    """A work tree cloned over HTTP, for changing the primary behind the client's back."""
    path = tmp_path / "pusher"
    git("clone", "-q", remote.http, str(path))
    return path


def refs(repo: Path, *patterns: str) -> str:
    return git("for-each-ref", "--format=%(objectname) %(refname)", *patterns, cwd=repo).stdout


def head(repo: Path, rev: str = "HEAD") -> str:
    return git("rev-parse", rev, cwd=repo).stdout.strip()


def fsck(repo: Path) -> None:
    result = git("fsck", "--strict", "--no-dangling", cwd=repo, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def count(repo: Path, rev: str) -> int:
    return int(git("rev-list", "--count", rev, cwd=repo).stdout)


def object_count(repo: Path) -> int:
    stats = dict(
        line.split(": ") for line in git("count-objects", "-v", cwd=repo).stdout.splitlines()
    )
    return int(stats["count"]) + int(stats["in-pack"])


def mirror(remote: Remote, path: Path) -> Path:
    git("clone", "-q", "--mirror", remote.http, str(path))
    return path


def traced(trace: Path, direction: str) -> list[str]:
    """The fetch's pkt-lines one way from a GIT_TRACE_PACKET file ("... fetch> have ...")."""
    marker = f"fetch{direction} "
    return [
        line.split(marker, 1)[1]
        for line in trace.read_text(errors="replace").splitlines()
        if marker in line
    ]


def sent_by_client(trace: Path) -> list[str]:
    return traced(trace, ">")


def received_by_client(trace: Path) -> list[str]:
    return traced(trace, "<")


def local_commits(
    repo: Path, branch: str, base: str, number: int, dated: int = 4_000_000_000
) -> None:
    """`number` commits on `branch` from `base`, written with one fast-import and dated from
    `dated` on: by default newer than anything else, so a fetch's negotiator offers them
    before the commits it has in common with the remote."""
    stream = []
    for index in range(number):
        message = f"local {index}\n".encode()
        stream += [
            f"commit refs/heads/{branch}".encode(),
            f"committer T <t@example.com> {dated + index} +0000".encode(),
            b"data %d" % len(message),
            message,
            *([f"from {base}".encode()] if index == 0 else []),
            f"M 644 inline local{index}.txt".encode(),
            b"data %d" % len(message),
            message,
        ]
    subprocess.run(
        ["git", "fast-import", "--quiet"],
        input=b"\n".join(stream) + b"\n",
        cwd=repo,
        check=True,
        timeout=60,
    )


@pytest.mark.parametrize("version", ["0", "1", "2"])
def test_clone_fetch_and_ls_remote_match_http(remote: Remote, tmp_path: Path, version: str) -> None:
    reference, cloned, trace = tmp_path / "http", tmp_path / "ssh", tmp_path / "trace"
    git("clone", "-q", remote.http, str(reference))
    config = ["-c", f"protocol.version={version}"]
    env = remote.env(GIT_TRACE_PACKET=str(trace))
    git(*config, "clone", "-q", remote.ssh, str(cloned), env=env)

    assert ("< version 2" in trace.read_text()) == (version == "2")
    assert ("< version 1" in trace.read_text()) == (version == "1")
    assert refs(cloned) == refs(reference)
    assert head(cloned) == head(reference)
    fsck(cloned)
    assert git(*config, "ls-remote", remote.ssh, env=env).stdout == (
        git("ls-remote", remote.http).stdout
    )
    # Up to date: a v0 client sends just a flush, a v2 client just ls-refs.
    git(*config, "fetch", "-q", "origin", cwd=cloned, env=env)
    assert refs(cloned) == refs(reference)


@pytest.mark.parametrize("version", PROTOCOLS)
def test_empty_project_clone_then_first_push(
    api: Api, remote: Remote, tmp_path: Path, version: str
) -> None:
    empty = Remote(remote.site, api.project(remote.account), remote.account)
    work = tmp_path / "empty"
    result = git(
        "-c", f"protocol.version={version}", "clone", empty.ssh, str(work), env=empty.env()
    )
    assert "empty repository" in result.stderr
    commit_all(work, "first")
    git("push", "-q", "origin", "HEAD:main", cwd=work, env=empty.env())
    assert git("ls-remote", empty.http, "refs/heads/main").stdout.split()[0] == head(work)


@pytest.mark.parametrize("version", PROTOCOLS)
def test_shallow_clone_then_deepen_like_http(
    remote: Remote, pusher: Path, tmp_path: Path, version: str
) -> None:
    over_ssh = tmp_path / "shallow"
    config = ["-c", f"protocol.version={version}"]
    git(*config, "clone", "-q", "--depth=1", remote.ssh, str(over_ssh), env=remote.env())
    assert count(over_ssh, "HEAD") == 1

    # Local work the primary lacks makes the deepening fetch negotiate over several rounds,
    # each stateless answer repeating the shallow list the client must see only once.
    local_commits(over_ssh, "local", head(over_ssh), 80)
    over_http = tmp_path / "shallow-http"
    shutil.copytree(over_ssh, over_http)
    git("remote", "set-url", "origin", remote.http, cwd=over_http)
    commit_all(pusher, "new on the primary")
    git("push", "-q", "origin", "main", cwd=pusher)
    trace = tmp_path / "trace"
    env = remote.env(GIT_TRACE_PACKET=str(trace))
    git(*config, "fetch", "-q", "--deepen=2", "origin", cwd=over_ssh, env=env)
    git(*config, "fetch", "-q", "--deepen=2", "origin", cwd=over_http)

    assert head(over_ssh, "origin/main") == head(pusher)
    assert count(over_ssh, "origin/main") == count(over_http, "origin/main") == 4
    assert (over_ssh / ".git/shallow").read_text() == (over_http / ".git/shallow").read_text()
    assert sent_by_client(trace).count("0000") >= 3

    git(*config, "fetch", "-q", "--unshallow", "origin", cwd=over_ssh, env=remote.env())
    assert count(over_ssh, "origin/main") == count(pusher, "main")
    assert not (over_ssh / ".git/shallow").exists()
    fsck(over_ssh)


@pytest.mark.parametrize("version", PROTOCOLS)
def test_partial_clone_then_lazy_fetch(remote: Remote, tmp_path: Path, version: str) -> None:
    partial = tmp_path / "partial"
    config = ["-c", f"protocol.version={version}"]
    env = remote.env()
    git(
        *config,
        "clone",
        "-q",
        "--filter=blob:none",
        "--no-checkout",
        remote.ssh,
        str(partial),
        env=env,
    )
    missing = git("rev-list", "--objects", "--missing=print", "--all", cwd=partial).stdout
    assert any(line.startswith("?") for line in missing.splitlines())

    git(*config, "checkout", "-q", "main", cwd=partial, env=env)  # fetches blobs on demand
    assert (partial / "file2.txt").read_text() == "content 2\n" * 3
    fsck(partial)


@pytest.mark.parametrize("version", PROTOCOLS)
def test_fetch_negotiates_over_many_rounds_like_http(
    remote: Remote, pusher: Path, tmp_path: Path, version: str
) -> None:
    """The primary gets new commits on main and a new unrelated branch, so it is never
    `ready`; the client has 100 commits the primary lacks besides the common ones. The
    common commits are acknowledged in an early round and must be replayed in every later
    stateless request for the pack to be as thin as over HTTP (not the whole history), and
    their repeated ACKs must not reach the client twice."""
    over_ssh = tmp_path / "client"
    git("clone", "-q", remote.http, str(over_ssh))
    local_commits(over_ssh, "local", head(over_ssh), 100, dated=1_000_000_000)
    over_http = tmp_path / "client-http"
    shutil.copytree(over_ssh, over_http)
    for index in range(2):
        commit_all(pusher, f"new {index}")
    git("checkout", "-q", "--orphan", "unrelated", cwd=pusher)
    commit_all(pusher, "unrelated")
    git("push", "-q", "origin", "main", "unrelated", cwd=pusher)

    config = ["-c", f"protocol.version={version}", "-c", "fetch.unpackLimit=100000"]
    trace = tmp_path / "trace"
    git("remote", "set-url", "origin", remote.ssh, cwd=over_ssh)
    git(*config, "fetch", "-q", "origin", cwd=over_ssh, env=remote.env(GIT_TRACE_PACKET=str(trace)))
    git(*config, "fetch", "-q", "origin", cwd=over_http)

    assert refs(over_ssh, "refs/remotes") == refs(over_http, "refs/remotes")
    assert head(over_ssh, "origin/main") == head(pusher, "main")
    assert object_count(over_ssh) == object_count(over_http)
    fsck(over_ssh)
    sent = sent_by_client(trace)
    assert sum(line.startswith("have ") for line in sent) > 100
    assert sent.count("0000") >= 5  # the wants, then four rounds before `done`
    if version == "0":
        received = received_by_client(trace)
        acks = [line for line in received if line.endswith(" common")]
        assert acks and len(acks) == len(set(acks))
        assert received.index(acks[0]) < received.index("NAK")  # common in an early round


def test_push_branch_and_tags_then_force_push_and_delete(remote: Remote, tmp_path: Path) -> None:
    work = tmp_path / "work"
    env = remote.env()
    git("clone", "-q", remote.ssh, str(work), env=env)
    git("checkout", "-q", "-b", "feature", cwd=work)
    commit_all(work, "feature work")
    git("tag", "v1.0", cwd=work)
    git("-c", "user.name=T", "-c", "user.email=t@e", "tag", "-a", "-m", "x", "v1.1", cwd=work)
    git("push", "-q", "origin", "feature", "v1.0", "v1.1", cwd=work, env=env)
    assert refs(work, "refs/heads/feature", "refs/tags") == refs(
        mirror(remote, tmp_path / "m1"), "refs/heads/feature", "refs/tags"
    )

    git("reset", "-q", "--hard", "HEAD~1", cwd=work)
    rewritten = commit_all(work, "rewritten")
    git("push", "-q", "--force", "origin", "feature", cwd=work, env=env)
    assert git("ls-remote", remote.http, "refs/heads/feature").stdout.split()[0] == rewritten

    # Deletions send no pack: the client keeps its end open, waiting for the report.
    git("push", "-q", "origin", "--delete", "feature", "v1.0", cwd=work, env=env)
    listed = git("ls-remote", remote.http).stdout
    assert "refs/heads/feature" not in listed
    assert "refs/tags/v1.0\n" not in listed
    assert "refs/tags/v1.1" in listed


def test_push_options_reach_the_primary(remote: Remote, tmp_path: Path) -> None:
    """Storage advertises receive.advertisePushOptions; the options section is forwarded,
    with a pack and, for a deletion, without one."""
    work = tmp_path / "work"
    git("clone", "-q", remote.ssh, str(work), env=remote.env())
    git("checkout", "-q", "-b", "topic", cwd=work)
    pushed = commit_all(work, "topic work")
    trace = tmp_path / "trace"
    env = remote.env(GIT_TRACE_PACKET=str(trace))
    options = ["-o", "ci.skip", "-o", "merge_request.create"]
    git("push", "-q", *options, "origin", "topic", cwd=work, env=env)
    assert git("ls-remote", remote.http, "refs/heads/topic").stdout.split()[0] == pushed
    sent = [line for line in trace.read_text().splitlines() if "push> " in line]
    assert any("push-options" in line for line in sent)
    assert any(line.endswith("push> ci.skip") for line in sent)

    git("push", "-q", *options, "origin", "--delete", "topic", cwd=work, env=env)
    assert git("ls-remote", remote.http, "refs/heads/topic").stdout == ""


def test_protected_branch_refusal_shows_the_primary_message(
    api: Api, remote: Remote, tmp_path: Path
) -> None:
    developer = api.account()
    api.member(remote.project, developer, DEVELOPER)
    api.protect(remote.project, "main", MAINTAINER)
    as_developer = remote.as_user(developer)
    work = tmp_path / "dev"
    git("clone", "-q", as_developer.ssh, str(work), env=as_developer.env())
    before = git("ls-remote", remote.http, "refs/heads/main").stdout
    commit_all(work, "not allowed")

    result = git("push", "origin", "main", cwd=work, env=as_developer.env(), check=False)
    assert result.returncode != 0
    assert "remote: geogit: You are not allowed to push code to protected branches" in (
        result.stderr
    )
    assert "[remote rejected] main -> main" in result.stderr
    assert git("ls-remote", remote.http, "refs/heads/main").stdout == before


def test_wrong_credential_is_refused_clearly(remote: Remote, tmp_path: Path) -> None:
    env = remote.env(token="not-a-token")
    result = git("clone", remote.ssh, str(tmp_path / "c"), env=env, check=False)
    assert result.returncode != 0
    assert "geogit: the primary refused git-upload-pack (HTTP 401): HTTP Basic: Access denied" in (
        result.stderr
    )
    work = make_work_tree(tmp_path / "w", commits=1)
    result = git("push", remote.ssh, "main", cwd=work, env=env, check=False)
    assert result.returncode != 0
    assert "geogit: the primary refused git-receive-pack (HTTP 401)" in result.stderr


def run_harness(env: dict[str, str], command: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, str(HARNESS), "git@secondary.example", command],
        env={**os.environ, **env},
        input=b"",
        capture_output=True,
        timeout=60,
    )


def test_exit_status_and_message_of_a_refusal_and_an_unreachable_primary(
    remote: Remote,
) -> None:
    refused = run_harness(remote.env(token="wrong"), f"git-upload-pack '{remote.path}.git'")
    assert refused.returncode == 1
    assert refused.stdout == b""
    assert refused.stderr.startswith(b"geogit: the primary refused git-upload-pack (HTTP 401)")

    unreachable = {
        **remote.env(),
        PRIMARY_URL: f"http://127.0.0.1:{free_port()}",
    }
    result = run_harness(unreachable, f"git-receive-pack '{remote.path}.git'")
    assert result.returncode == 1
    assert result.stderr.startswith(b"geogit: the primary site is unreachable: ")


def write_incompressible(path: Path, mib: int) -> None:
    chunk = os.urandom(1024 * 1024)
    with path.open("wb") as handle:
        for index in range(mib):
            handle.write(index.to_bytes(8, "big") + chunk[8:])


def test_push_of_a_large_pack_streams(remote: Remote, tmp_path: Path) -> None:
    """~100 MiB of incompressible data goes through, and the proxy's peak memory is about
    what it is for a small push: nothing holds the pack."""
    work = tmp_path / "work"
    git("clone", "-q", remote.ssh, str(work), env=remote.env())
    peak = tmp_path / "peak-rss"
    env = remote.env(**{PEAK_RSS_FILE: str(peak)})

    commit_all(work, "small")
    git("push", "-q", "origin", "main", cwd=work, env=env)
    small_mib = int(peak.read_text()) / 1024
    write_incompressible(work / "large.bin", LARGE_PACK_MIB)
    git("-c", "core.compression=0", "add", "large.bin", cwd=work)
    pushed = commit_all(work, "large")
    git("-c", "pack.compression=0", "push", "-q", "origin", "main", cwd=work, env=env)
    large_mib = int(peak.read_text()) / 1024

    assert git("ls-remote", remote.http, "refs/heads/main").stdout.split()[0] == pushed
    assert large_mib - small_mib < LARGE_PACK_MIB / 10, (small_mib, large_mib)


class ScriptedClient:
    """A client that sends its whole script at once and records what it is sent."""

    def __init__(self, script: bytes) -> None:
        self._script = script
        self.stdout = bytearray()
        self.stderr = bytearray()

    async def read(self) -> bytes:
        data, self._script = self._script, b""
        return data

    async def write_stdout(self, data: bytes) -> None:
        self.stdout += data

    async def write_stderr(self, data: bytes) -> None:
        self.stderr += data


async def proxied(remote: Remote, script: bytes) -> tuple[int, ScriptedClient]:
    """git-upload-pack through the proxy for a scripted client, against the real primary."""
    authorization = basic(remote.account.username, remote.account.token)
    async with new_http_client(timeout=30) as http:
        return await upload_pack(
            http, f"{remote.site.http_url}/{remote.path}.git", script, authorization
        )


async def upload_pack(
    http: httpx.AsyncClient, url: str, script: bytes, authorization: str = "Basic eDp5"
) -> tuple[int, ScriptedClient]:
    client = ScriptedClient(script)
    status = await proxy_to_primary(
        "git-upload-pack", url, {"Authorization": authorization}, "", client, http
    )
    return status, client


def conversation(output: bytes) -> tuple[list[bytes], int]:
    """What upload-pack said between its advertisement and the pack, and the pack's object
    count (the script asks for side-band-64k, so everything is pkt-lines)."""
    decoder = PktLineDecoder()
    packets = decoder.feed(output)
    decoder.close()
    after_advertisement = packets[packets.index(Packet(PacketKind.FLUSH)) + 1 :]
    lines, pack = [], bytearray()
    for packet in after_advertisement:
        if packet.payload[:1] == b"\1":
            pack += packet.payload[1:]
        elif not pack:
            lines.append(encode_packets([packet]))
    assert pack[:4] == b"PACK", output[-300:]
    return lines, int.from_bytes(pack[8:12], "big")


def unknown_oids(number: int, seed: str) -> list[str]:
    return [hashlib.sha1(f"{seed}{index}".encode()).hexdigest() for index in range(number)]


@pytest.mark.parametrize("multi_ack", ["multi_ack_detailed", "multi_ack", ""])
@pytest.mark.parametrize("deepen", [False, True], ids=["full", "deepen"])
@pytest.mark.parametrize("ready", [False, True], ids=["never-ready", "ready"])
def test_v0_conversation_is_what_a_stateful_upload_pack_says(
    remote: Remote, pusher: Path, tmp_path: Path, multi_ack: str, deepen: bool, ready: bool
) -> None:
    """A scripted v0 client (three rounds of haves, then `done`) gets from the proxy exactly
    the ACKs, NAKs and shallow lines a stateful `git upload-pack` on a mirror gives it, for
    every multi_ack mode, and a pack of the same objects."""
    old_main, side = head(pusher, "origin/main"), head(pusher, "origin/side")
    commit_all(pusher, "new")
    git("checkout", "-q", "--orphan", "unrelated", cwd=pusher)
    commit_all(pusher, "unrelated")
    git("push", "-q", "origin", "main", "unrelated", cwd=pusher)
    mirror_path = mirror(remote, tmp_path / "mirror")

    capabilities = " ".join(filter(None, [multi_ack, "side-band-64k", "ofs-delta", "no-progress"]))
    wants = [f"want {head(pusher, 'main')} {capabilities}\n"]
    if not ready:  # nothing the client has reaches this want
        wants.append(f"want {head(pusher, 'unrelated')}\n")
    unknown = unknown_oids(7, str(tmp_path))
    rounds = [[*unknown[:3], old_main], unknown[3:6], [side, unknown[6]]]
    script = encode_packets(
        [
            *(Packet(PacketKind.DATA, line.encode()) for line in wants),
            *([Packet(PacketKind.DATA, b"deepen 2\n")] if deepen else []),
            Packet(PacketKind.FLUSH),
            *(
                packet
                for haves in rounds
                for packet in [
                    *(Packet(PacketKind.DATA, f"have {oid}\n".encode()) for oid in haves),
                    Packet(PacketKind.FLUSH),
                ]
            ),
            Packet(PacketKind.DATA, b"done\n"),
        ]
    )
    stateful = subprocess.run(
        ["git", "-c", "uploadpack.allowFilter=true", "upload-pack", str(mirror_path)],
        input=script,
        capture_output=True,
        check=True,
        timeout=60,
    )
    status, client = asyncio.run(proxied(remote, script))

    assert status == 0, client.stderr
    expected_lines, expected_objects = conversation(stateful.stdout)
    lines, objects = conversation(bytes(client.stdout))
    assert lines == expected_lines
    assert objects == expected_objects


@pytest.mark.parametrize(
    "script, message",
    [
        (b"zzzzwant", "the client sent a malformed pkt-line: invalid pkt-line length prefix"),
        (
            pkt_line(b"want %s\n" % (b"1" * 40)) + b"0000" + pkt_line(b"bogus\n"),
            "the client sent b'bogus\\n' among its haves",
        ),
    ],
    ids=["framing", "not-a-have"],
)
def test_malformed_client_input_is_refused(remote: Remote, script: bytes, message: str) -> None:
    status, client = asyncio.run(proxied(remote, script))
    assert status == 1
    assert client.stderr.decode().startswith(f"geogit: {message}"), client.stderr


class FakePrimary:
    """A misbehaving primary, which the real one cannot be made to be: one canned answer to
    every request. Its client follows redirects, to show the proxy does not."""

    def __init__(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.requests: list[httpx.Request] = []
        self._answer = (status, body, {"Content-Type": content_type, **headers})

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body, headers = self._answer
        return httpx.Response(status, content=body, headers=headers)

    def client(self) -> httpx.AsyncClient:
        transport = httpx.MockTransport(self._handle)
        return httpx.AsyncClient(transport=transport, follow_redirects=True)


ADVERTISEMENT = "application/x-git-upload-pack-advertisement"


@pytest.mark.parametrize(
    "primary, message",
    [
        (
            FakePrimary(302, b"Redirecting.\n", "text/plain", Location="http://elsewhere/x.git"),
            "the primary refused git-upload-pack (HTTP 302): Redirecting.",
        ),
        (
            FakePrimary(503, b"Down for\n  maintenance.\n", "text/plain"),
            "the primary refused git-upload-pack (HTTP 503): Down for maintenance.",
        ),
        (
            FakePrimary(200, b"<html>sign in</html>", "text/html"),
            "the primary answered 'text/html' instead of a git-upload-pack advertisement",
        ),
        (
            FakePrimary(200, b"", ADVERTISEMENT),
            "the primary sent an empty git-upload-pack advertisement",
        ),
        (
            FakePrimary(200, pkt_line(b"# service=git-receive-pack\n") + b"0000", ADVERTISEMENT),
            "the primary advertised b'# service=git-receive-pack\\n'",
        ),
    ],
    ids=["redirect", "unavailable", "html", "empty", "other-service"],
)
async def test_a_misbehaving_primary_is_reported(primary: FakePrimary, message: str) -> None:
    async with primary.client() as http:
        status, client = await upload_pack(http, "http://primary.example/a/b.git", b"0000")
    assert status == 1
    assert client.stderr.decode() == f"geogit: {message}\n"
    assert client.stdout == b""
    assert [str(request.url) for request in primary.requests] == [
        "http://primary.example/a/b.git/info/refs?service=git-upload-pack"
    ]
