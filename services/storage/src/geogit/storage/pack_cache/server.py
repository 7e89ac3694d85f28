"""PackObjectsServer: the Unix socket the pack-objects hook (hook.py) calls, in front of the cache.

The socket lives in a 0700 directory and is itself 0600; a request must carry the random token
this process put in the environment of the upload-packs it spawned (no JWT: the hook imports
the standard library only). The request is checked before anything runs: frame sizes, the
token, `pack-objects` options from an allow-list, a repository under the storage root, and
stdin up to a bound (spooled to disk, never held in memory).

The cache key is the repository, the arguments and stdin, as in Gitaly, plus the refs that
change pack-objects' answer for the same input: with `--include-tag` every tag (a new tag
pointing into the pack is sent with it), and always the replace refs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import shlex
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

from geogit.storage.git import Git, GitCommand, GitError
from geogit.storage.git_services import UploadPackHook
from geogit.storage.hooks import install_file
from geogit.storage.metrics import StorageMetrics
from geogit.storage.pack_cache import hook
from geogit.storage.pack_cache.cache import Entry, PackCache, PackRequest, open_file

log = logging.getLogger(__name__)
SOCKET_NAME = "pack-objects.sock"
HOOK_NAME = "geogit-pack-objects-hook.py"
# sun_path holds 108 bytes; a deeper runtime directory gets its socket in a private temp one.
_MAX_SOCKET_PATH = 100
_SEND_BYTES = 1 << 30
_FLAGS = frozenset(
    {
        "--revs",
        "--thin",
        "--stdout",
        "--shallow",
        "--progress",
        "-q",
        "--quiet",
        "--delta-base-offset",
        "--include-tag",
        "--all-progress",
        "--all-progress-implied",
    }
)
_VALUED = ("--filter=",)


class Refused(Exception):
    """A request the server will not run; the message goes to git's stderr via the hook."""


def install_hook(directory: Path) -> Path:
    """Copy the hook into storage's runtime directory (atomically: git may be running it)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / HOOK_NAME
    install_file(target, Path(hook.__file__).read_text(), 0o644)
    return target


def parse_args(args: Any) -> tuple[str | None, tuple[str, ...]]:
    """`[--shallow-file ''] pack-objects <options>` as upload-pack writes it, else Refused."""
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise Refused("args must be a list of strings")
    shallow_file = None
    if args[:1] == ["--shallow-file"]:
        if args[1:2] != [""]:
            raise Refused("--shallow-file must be empty")
        shallow_file, args = "", args[2:]
    if args[:1] != ["pack-objects"]:
        raise Refused("only pack-objects is served")
    options = tuple(args[1:])
    for option in options:
        if option not in _FLAGS and not option.startswith(_VALUED):
            raise Refused(f"unsupported pack-objects argument {option[:80]!r}")
    if "--stdout" not in options:
        raise Refused("pack-objects must write to --stdout")
    return shallow_file, options


class PackObjectsServer:
    def __init__(
        self,
        git: Git,
        cache: PackCache,
        storage_root: Path,
        socket_dir: Path,
        hook_path: Path,
        metrics: StorageMetrics,
        max_stdin_bytes: int,
        read_timeout: float = 30.0,
    ) -> None:
        self.git = git
        self.cache = cache
        self.storage_root = storage_root.resolve()
        if len(str(socket_dir / SOCKET_NAME)) > _MAX_SOCKET_PATH:
            socket_dir = Path(tempfile.mkdtemp(prefix="geogit-pack-objects-"))
        self.socket_dir = socket_dir
        self.metrics = metrics
        self.max_stdin_bytes = max_stdin_bytes
        self.read_timeout = read_timeout
        self.token = secrets.token_urlsafe(32)
        command = f"{shlex.quote(sys.executable)} -S -I {shlex.quote(str(hook_path))}"
        # Only the command's own configuration (here GIT_CONFIG_COUNT, as with -c) counts:
        # git ignores uploadpack.packObjectsHook in a repository's config.
        self._hook_config = (("uploadpack.packObjectsHook", command),)
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    @property
    def socket_path(self) -> Path:
        return self.socket_dir / SOCKET_NAME

    @property
    def hook(self) -> UploadPackHook:
        env = {hook.SOCKET_ENV: str(self.socket_path), hook.TOKEN_ENV: self.token}
        return UploadPackHook(self._hook_config, env)

    async def start(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.socket_dir.chmod(0o700)
        self.socket_path.unlink(missing_ok=True)
        await self.cache.start()
        self._server = await asyncio.start_unix_server(self._serve, str(self.socket_path))
        self.socket_path.chmod(0o600)
        log.info("pack-objects cache serving", extra={"socket": str(self.socket_path)})

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self.cache.stop()
        self.socket_path.unlink(missing_ok=True)
        if self.socket_dir.name.startswith("geogit-pack-objects-"):
            with contextlib.suppress(OSError):
                self.socket_dir.rmdir()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            try:
                key, request = await asyncio.wait_for(self._request(reader), self.read_timeout)
            except (Refused, TimeoutError, asyncio.IncompleteReadError, GitError) as exc:
                reason = _reason(exc)
                self.metrics.pack_cache_refused.labels(reason).inc()
                log.warning("pack-objects request refused", extra={"reason": str(exc)})
                writer.write(_frame(hook.ERROR, f"pack-objects cache: {_message(exc)}".encode()))
                await writer.drain()
                return
            entry = self.cache.open(key, request)
            with open_file(entry.path, "rb") as file:  # before any await: eviction may unlink it
                await self._send(writer, entry, file)
        except (ConnectionError, OSError) as exc:
            log.info("pack-objects reader went away", extra={"error": str(exc)})
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _request(self, reader: asyncio.StreamReader) -> tuple[str, PackRequest]:
        header = await _read_frame(reader, hook.MAX_HEADER_BYTES)
        try:
            fields = json.loads(header)
        except ValueError as exc:
            raise Refused("the request header is not JSON") from exc
        if not isinstance(fields, dict) or not isinstance(fields.get("token"), str):
            raise Refused("the request header must be an object with a token")
        if not hmac.compare_digest(fields["token"].encode(), self.token.encode()):
            raise Refused("invalid token")
        shallow_file, options = parse_args(fields.get("args"))
        repository = self._repository(fields.get("repository"))
        digest = hashlib.sha256()
        digest.update(json.dumps([str(repository), shallow_file, options]).encode())
        stdin = await self._spool(reader, digest)
        try:
            digest.update(await self._refs(repository, "--include-tag" in options))
        except BaseException:
            stdin.unlink(missing_ok=True)
            raise
        return digest.hexdigest(), PackRequest(repository, options, shallow_file, stdin)

    def _repository(self, value: Any) -> Path:
        if not isinstance(value, str) or not value:
            raise Refused("repository must be a path")
        try:
            path = Path(value).resolve(strict=True)
        except OSError as exc:
            raise Refused("no such repository") from exc
        if self.storage_root not in path.parents or not (path / "objects").is_dir():
            raise Refused("not a repository of this storage")
        return path

    async def _spool(self, reader: asyncio.StreamReader, digest: Any) -> Path:
        """stdin into a file of the cache directory, hashed on the way; bounded."""
        fd, name = tempfile.mkstemp(prefix="stdin-", dir=self.cache.directory)
        path, total = Path(name), 0
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := await _read_frame(reader, hook.MAX_STDIN_FRAME_BYTES):
                    total += len(chunk)
                    if total > self.max_stdin_bytes:
                        raise Refused(f"stdin exceeds {self.max_stdin_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            os.unlink(path)
            raise
        return path

    async def _refs(self, repository: Path, tags: bool) -> bytes:
        if (repository / "reftable").exists():
            return await self._listed_refs(repository, tags)
        return await asyncio.to_thread(refs_fingerprint, repository, tags)

    async def _listed_refs(self, repository: Path, tags: bool) -> bytes:
        patterns = ["refs/replace/", *(["refs/tags/"] if tags else [])]
        command = GitCommand(
            "for-each-ref",
            options=["--format=%(objectname) %(refname)"],
            args=patterns,
            git_dir=repository,
        )
        return await self.git.check(command)

    async def _send(self, writer: asyncio.StreamWriter, entry: Entry, file: IO[bytes]) -> None:
        loop = asyncio.get_running_loop()
        async for item in self.cache.read(entry):
            if isinstance(item, bytes):
                writer.write(_frame(hook.STDERR, item))
                await writer.drain()
                continue
            offset, length = item
            while length:
                count = min(length, _SEND_BYTES)
                writer.write(hook.ANSWER_FRAME.pack(hook.STDOUT, count))
                sent = await loop.sendfile(writer.transport, file, offset, count)
                if sent != count:
                    # The frame promised `count` bytes: cut the connection, never send less.
                    raise OSError(f"pack-cache entry ended {count - sent} bytes early")
                offset, length = offset + count, length - count
        writer.write(_frame(hook.EXIT, str(entry.exit_code).encode()))
        await writer.drain()


def refs_fingerprint(repository: Path, tags: bool) -> bytes:
    """The refs that change pack-objects' answer, read from the files-backend directly (a git
    process per clone costs more than the whole lookup): every loose ref under refs/replace/
    (and refs/tags/) by name and content, and the digest of packed-refs. git replaces each by
    renaming a finished file over it, so a read sees an old or a new state, never half."""
    digest = hashlib.sha256()
    for top in ("refs/replace", *(["refs/tags"] if tags else [])):
        for directory, subdirectories, files in os.walk(repository / top):
            subdirectories.sort()
            for name in sorted(files):
                path = Path(directory, name)
                with contextlib.suppress(FileNotFoundError):  # packed meanwhile: see below
                    content = path.read_bytes()
                    digest.update(f"{path.relative_to(repository)}\0".encode() + content)
    with contextlib.suppress(FileNotFoundError), open(repository / "packed-refs", "rb") as packed:
        while chunk := packed.read(1024 * 1024):
            digest.update(chunk)
    return digest.digest()


async def _read_frame(reader: asyncio.StreamReader, limit: int) -> bytes:
    (length,) = hook.REQUEST_FRAME.unpack(await reader.readexactly(hook.REQUEST_FRAME.size))
    if length > limit:
        raise Refused(f"frame of {length} bytes exceeds {limit}")
    return await reader.readexactly(length)


def _frame(kind: bytes, body: bytes) -> bytes:
    return hook.ANSWER_FRAME.pack(kind, len(body)) + body


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "truncated"
    if isinstance(exc, GitError):
        return "refs"
    return "invalid"


def _message(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "request not received in time"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "request truncated"
    return str(exc)
