"""The pack-objects cache with the real git binary: clones through it carry exactly the objects
of an uncached clone, identical requests share one run, a push that changes the answer is
never served an old entry, bad requests fail the clone cleanly, and entries are bounded."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fake_internal_api import FakeInternalApi

from geogit.common.proto.storage.v1 import shared_pb2
from geogit.storage.git import Git
from geogit.storage.metrics import StorageMetrics
from geogit.storage.pack_cache import hook
from geogit.storage.pack_cache.cache import PackCache, PackRequest, open_file
from geogit.storage.pack_cache.server import HOOK_NAME, SOCKET_NAME, refs_fingerprint
from geogit.storage.testing import StorageProcess, commit_all, git, make_work_tree

SLOW_MARK = "slow-pack-objects"
TOKEN_SEEN = "upload-pack-token"


@pytest.fixture(scope="module")
def cached(
    tmp_path_factory: pytest.TempPathFactory, internal_api: FakeInternalApi
) -> Iterator[StorageProcess]:
    """A storage whose own pack-objects runs wait while SLOW_MARK exists, so that concurrent
    clones meet while the entry is still being written; its upload-packs' hook token is kept
    in TOKEN_SEEN, for the tests that play the hook."""
    base = tmp_path_factory.mktemp("cached")
    wrapper = base / "git"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case " $* " in\n'
        f'  *" pack-objects "*) [ -e "{base / SLOW_MARK}" ] && sleep 1.5 ;;\n'
        f'  *" upload-pack "*) printf %s "${hook.TOKEN_ENV}" > "{base / TOKEN_SEEN}" ;;\n'
        "esac\n"
        'exec git "$@"\n'
    )
    wrapper.chmod(0o755)
    server = StorageProcess(base / "repositories", internal_api.url)
    server.env["GEOGIT_GIT_BIN"] = str(wrapper)
    server.env["GEOGIT_PACK_CACHE_ENABLED"] = "true"
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def uncached(
    tmp_path_factory: pytest.TempPathFactory, internal_api: FakeInternalApi
) -> Iterator[StorageProcess]:
    server = StorageProcess(tmp_path_factory.mktemp("uncached") / "repositories", internal_api.url)
    server.env["GEOGIT_PACK_CACHE_ENABLED"] = "false"
    server.start()
    yield server
    server.stop()


def metrics(storage: StorageProcess) -> dict[str, float]:
    url = f"http://127.0.0.1:{storage.ops_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    found = {}
    for line in text.splitlines():
        if line.startswith("geogit_storage_pack_cache") and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name.replace("geogit_storage_pack_cache_", "")] = float(value)
    return found


def delta(after: dict[str, float], before: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def push_project(storage: StorageProcess, work: Path, commits: int = 6) -> shared_pb2.Repository:
    repo = storage.create()
    tree = make_work_tree(work, commits=commits)
    (tree / "data.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    commit_all(tree, "data")
    git("tag", "-a", "-m", "first release", "v1", cwd=tree)
    git("push", "-q", storage.url(repo), "main", "v1", cwd=tree, env=storage.git_env(repo))
    return repo


def clone(storage: StorageProcess, repo: shared_pb2.Repository, dest: Path, *args: str) -> Path:
    git("clone", "-q", *args, storage.url(repo), str(dest), env=storage.git_env(repo))
    return dest


def objects_of(clone_dir: Path) -> tuple[bytes, bytes]:
    listed = git("rev-list", "--all", "--objects", cwd=clone_dir).stdout
    checked = git(
        "cat-file", "--batch-all-objects", "--batch-check", "--unordered", cwd=clone_dir
    ).stdout
    return b"\n".join(sorted(listed.splitlines())), b"\n".join(sorted(checked.splitlines()))


@pytest.mark.parametrize("args", [(), ("--depth", "1"), ("--filter=blob:none",)])
def test_cached_clone_has_the_objects_of_an_uncached_one(
    cached: StorageProcess, uncached: StorageProcess, tmp_path: Path, args: tuple[str, ...]
) -> None:
    theirs = push_project(uncached, tmp_path / "src")
    ours = cached.create()
    git("push", "-q", cached.url(ours), "main", "v1", cwd=tmp_path / "src", env=cached.git_env())
    before = metrics(cached)
    plain = objects_of(clone(uncached, theirs, tmp_path / "plain", *args))
    first = objects_of(clone(cached, ours, tmp_path / "first", *args))
    second = objects_of(clone(cached, ours, tmp_path / "second", *args))
    after = metrics(cached)
    assert first == plain and second == plain
    # A partial clone's checkout fetches its blobs: a second request, answered again too.
    misses = delta(after, before, "misses_total")
    assert misses == (2 if "--filter=blob:none" in args else 1)
    assert delta(after, before, 'hits_total{state="done"}') == misses
    assert delta(after, before, "served_bytes_total") == 2 * delta(
        after, before, "written_bytes_total"
    )


def test_concurrent_clones_share_one_run(cached: StorageProcess, tmp_path: Path) -> None:
    repo = push_project(cached, tmp_path / "src")
    slow = cached.root.parent / SLOW_MARK
    slow.touch()
    before = metrics(cached)
    try:
        with ThreadPoolExecutor(4) as pool:
            dirs = list(pool.map(lambda i: clone(cached, repo, tmp_path / f"c{i}"), range(4)))
    finally:
        slow.unlink()
    after = metrics(cached)
    assert len({objects_of(d) for d in dirs}) == 1
    assert delta(after, before, "misses_total") == 1
    assert delta(after, before, 'hits_total{state="writing"}') == 3


def test_a_push_is_never_answered_from_an_old_entry(cached: StorageProcess, tmp_path: Path) -> None:
    repo = push_project(cached, tmp_path / "src")
    tree = tmp_path / "src"
    clone(cached, repo, tmp_path / "before")
    new_head = commit_all(tree, "after the first clone")
    git("push", "-q", cached.url(repo), "main", cwd=tree, env=cached.git_env(repo))
    again = clone(cached, repo, tmp_path / "after")
    assert git("rev-parse", "HEAD", cwd=again).stdout.decode().strip() == new_head


def test_a_new_tag_is_sent_with_include_tag(cached: StorageProcess, tmp_path: Path) -> None:
    """The same wants and arguments, but a tag now points into the pack: --include-tag must
    send it, so the tags are part of the key."""
    repo = push_project(cached, tmp_path / "src")
    tree = tmp_path / "src"
    args = ("--single-branch", "--branch", "main")
    first = clone(cached, repo, tmp_path / "first", *args)
    assert git("tag", cwd=first).stdout.split() == [b"v1"]
    git("tag", "-a", "-m", "second release", "v2", "main~2", cwd=tree)
    git("push", "-q", cached.url(repo), "v2", cwd=tree, env=cached.git_env(repo))
    before = metrics(cached)
    second = clone(cached, repo, tmp_path / "second", *args)
    assert git("tag", cwd=second).stdout.split() == [b"v1", b"v2"]
    assert delta(metrics(cached), before, "misses_total") == 1


def test_the_refs_in_the_key_follow_loose_and_packed_tags(tmp_path: Path) -> None:
    tree = make_work_tree(tmp_path / "src", commits=3)
    repo = tree / ".git"
    seen = [refs_fingerprint(repo, tags=True)]
    git("tag", "v1", "HEAD~1", cwd=tree)
    seen.append(refs_fingerprint(repo, tags=True))
    git("pack-refs", "--all", cwd=tree)
    seen.append(refs_fingerprint(repo, tags=True))
    git("update-ref", "refs/tags/v1", "HEAD~2", cwd=tree)
    git("pack-refs", "--all", cwd=tree)
    seen.append(refs_fingerprint(repo, tags=True))
    git("update-ref", "refs/replace/" + "1" * 40, "HEAD", cwd=tree)
    seen.append(refs_fingerprint(repo, tags=True))
    assert len(set(seen)) == len(seen)
    without_tags = refs_fingerprint(repo, tags=False)
    git("tag", "v2", cwd=tree)
    assert refs_fingerprint(repo, tags=False) == without_tags


def test_the_hook_file_and_socket_are_private(cached: StorageProcess) -> None:
    runtime = cached.root / "+geogit"
    assert (runtime / HOOK_NAME).read_bytes() == Path(hook.__file__).read_bytes()
    sock = runtime / "pack-objects" / SOCKET_NAME
    assert sock.stat().st_mode & 0o777 == 0o600
    assert sock.parent.stat().st_mode & 0o777 == 0o700


# The hook against the socket, with what git would give it ---------------------------------


def run_hook(
    cached: StorageProcess,
    cwd: Path,
    args: list[str],
    stdin: bytes,
    token: str | None = None,
) -> subprocess.CompletedProcess[bytes]:
    runtime = cached.root / "+geogit"
    env = {
        hook.SOCKET_ENV: str(runtime / "pack-objects" / SOCKET_NAME),
        hook.TOKEN_ENV: token if token is not None else hook_token(cached),
    }
    return subprocess.run(
        [sys.executable, "-S", "-I", str(runtime / HOOK_NAME), "git", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        timeout=60,
    )


def hook_token(storage: StorageProcess) -> str:
    """The token storage gave its upload-packs, as the git wrapper saw it (after a clone)."""
    seen = storage.root.parent / TOKEN_SEEN
    if not seen.exists():
        push_project(storage, storage.root.parent / "token-src")
    return seen.read_text()


def wants(repo_path: Path) -> bytes:
    head = git("--git-dir", str(repo_path), "rev-parse", "main").stdout
    return head + b"\n"


def test_the_hook_yields_a_valid_pack(cached: StorageProcess, tmp_path: Path) -> None:
    repo = push_project(cached, tmp_path / "src")
    path = cached.path_of(repo)
    done = run_hook(cached, path, ["pack-objects", "--revs", "--stdout"], wants(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"PACK")
    verified = git("index-pack", "--stdin", "--strict", cwd=tmp_path / "src", input=done.stdout)
    assert verified.returncode == 0


@pytest.mark.parametrize(
    ("args", "token", "message"),
    [
        (["pack-objects", "--revs", "--stdout"], "forged", "invalid token"),
        (["repack", "-a"], None, "only pack-objects is served"),
        (["pack-objects", "--revs", "--stdout", "--index-version=1"], None, "unsupported"),
        (["pack-objects", "--revs", "objects/pack/x"], None, "unsupported"),
        (["--shallow-file", "/etc/passwd", "pack-objects", "--stdout"], None, "must be empty"),
    ],
)
def test_refused_requests_fail_with_a_clear_message(
    cached: StorageProcess, tmp_path: Path, args: list[str], token: str | None, message: str
) -> None:
    repo = push_project(cached, tmp_path / "src")
    path = cached.path_of(repo)
    done = run_hook(cached, path, args, wants(path), token=token)
    assert done.returncode == 1 and done.stdout == b""
    assert message.encode() in done.stderr
    assert b"geogit pack-objects hook: pack-objects cache:" in done.stderr


def test_a_repository_outside_storage_is_refused(cached: StorageProcess, tmp_path: Path) -> None:
    elsewhere = make_work_tree(tmp_path / "elsewhere") / ".git"
    done = run_hook(cached, elsewhere, ["pack-objects", "--revs", "--stdout"], wants(elsewhere))
    assert done.returncode == 1 and b"not a repository of this storage" in done.stderr


def test_oversized_stdin_is_refused(cached: StorageProcess, tmp_path: Path) -> None:
    repo = push_project(cached, tmp_path / "src")
    path = cached.path_of(repo)
    huge = wants(path) * (70 * 1024 * 1024 // 41)
    done = run_hook(cached, path, ["pack-objects", "--revs", "--stdout"], huge)
    assert done.returncode == 1 and b"stdin exceeds" in done.stderr


def raw_exchange(cached: StorageProcess, payload: bytes) -> bytes:
    path = cached.root / "+geogit" / "pack-objects" / SOCKET_NAME
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (hook.REQUEST_FRAME.pack(10**6) + b"{}", b"exceeds"),
        (hook.REQUEST_FRAME.pack(5) + b"{}", b"truncated"),
        (hook.REQUEST_FRAME.pack(7) + b"not js!", b"not JSON"),
        (hook.REQUEST_FRAME.pack(2) + b"[]", b"must be an object"),
    ],
)
def test_bad_frames_get_an_error_frame(cached: StorageProcess, payload: bytes, message: bytes):
    answer = raw_exchange(cached, payload)
    kind, length = hook.ANSWER_FRAME.unpack(answer[: hook.ANSWER_FRAME.size])
    assert kind == hook.ERROR and message in answer[hook.ANSWER_FRAME.size :]
    assert len(answer) == hook.ANSWER_FRAME.size + length


def test_a_failing_run_fails_the_clone_and_is_not_cached(
    cached: StorageProcess, tmp_path: Path
) -> None:
    repo = push_project(cached, tmp_path / "src")
    path = cached.path_of(repo)
    missing = b"0" * 39 + b"1\n"
    before = metrics(cached)
    for _ in range(2):
        done = run_hook(cached, path, ["pack-objects", "--revs", "--stdout"], missing)
        assert done.returncode != 0
    after = metrics(cached)
    assert delta(after, before, "misses_total") == 2
    assert delta(after, before, "failures_total") == 2


def test_a_clone_fails_cleanly_when_storage_refuses(cached: StorageProcess, tmp_path: Path):
    """upload-pack reports the hook's failure; the client gets an error, never a pack."""
    repo = push_project(cached, tmp_path / "src")
    sock = cached.root / "+geogit" / "pack-objects" / SOCKET_NAME
    moved = sock.with_name("moved.sock")
    sock.rename(moved)
    try:
        done = git(
            "clone", cached.url(repo), str(tmp_path / "c"), env=cached.git_env(repo), check=False
        )
    finally:
        moved.rename(sock)
    assert done.returncode != 0
    assert re.search(rb"cannot reach storage|pack-objects died", done.stderr)
    assert not (tmp_path / "c").exists()


# Eviction, in process: the cache alone with the real git ----------------------------------


def _request(repo: Path, scratch: Path, want: bytes) -> PackRequest:
    stdin = scratch / f"stdin-{time.monotonic_ns()}"
    stdin.write_bytes(want)
    return PackRequest(repo, ("--revs", "--stdout"), None, stdin)


async def _fill(cache: PackCache, key: str, request: PackRequest) -> bytes:
    entry = cache.open(key, request)
    out = b""
    with open_file(entry.path, "rb") as file:
        async for item in cache.read(entry):
            if isinstance(item, tuple):
                file.seek(item[0])
                out += file.read(item[1])
    assert entry.exit_code == 0
    return out


def test_eviction_by_size_and_age(tmp_path: Path) -> None:
    tree = make_work_tree(tmp_path / "src", commits=3)
    repo = tree / ".git"
    heads = [git("rev-parse", f"HEAD~{i}", cwd=tree).stdout for i in range(3)]

    async def scenario() -> None:
        metrics = StorageMetrics()
        cache = PackCache(Git(), tmp_path / "cache", 10**9, 3600, metrics)
        await cache.start()
        sizes = [
            len(await _fill(cache, f"k{i}", _request(repo, tmp_path, h)))
            for i, h in enumerate(heads)
        ]
        assert cache.entries == 3
        cache.max_bytes = sizes[1] + sizes[2]
        cache.expire()
        assert cache.entries == 2 and not (tmp_path / "cache" / "k0.pack").exists()
        assert metrics.pack_cache_evicted.labels("size")._value.get() == 1
        cache.max_age = 0.0
        cache.expire()
        assert cache.entries == 0 and not list((tmp_path / "cache").glob("*.pack"))
        assert metrics.pack_cache_evicted.labels("age")._value.get() == 2
        await cache.stop()

    asyncio.run(scenario())


def test_an_evicted_entry_is_still_read_to_its_end(tmp_path: Path) -> None:
    tree = make_work_tree(tmp_path / "src", commits=3)
    (tree / "big.bin").write_bytes(os.urandom(1024 * 1024))
    commit_all(tree, "big")
    head = git("rev-parse", "HEAD", cwd=tree).stdout

    async def scenario() -> None:
        cache = PackCache(Git(), tmp_path / "cache", 1, 3600, StorageMetrics())
        await cache.start()
        whole = await _fill(cache, "k", _request(tree / ".git", tmp_path, head))
        assert whole.startswith(b"PACK") and cache.entries == 0  # over the bound once done
        await cache.stop()

    asyncio.run(scenario())


def test_start_removes_only_the_caches_own_files(tmp_path: Path) -> None:
    """GEOGIT_PACK_CACHE_DIR is configurable: an earlier process's entries and spooled stdin go,
    anything else an operator keeps there stays."""
    directory = tmp_path / "cache"
    directory.mkdir()
    for name in ("old.pack", "stdin-abc123", "notes.txt"):
        (directory / name).write_text("x")

    async def scenario() -> None:
        cache = PackCache(Git(), directory, 10**9, 3600, StorageMetrics())
        await cache.start()
        await cache.stop()

    asyncio.run(scenario())
    assert sorted(path.name for path in directory.iterdir()) == ["notes.txt"]
