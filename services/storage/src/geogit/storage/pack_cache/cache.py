"""PackCache: one `pack-objects` run per distinct request, its output kept on disk a while.

Gitaly's pack-objects cache (internal/streamcache), rebuilt: an entry is a file that one
writer task fills from `git pack-objects` while any number of readers follow it as it grows,
so concurrent identical requests share one run and a reader never waits for the end. Readers
send from the file (os.sendfile, through `loop.sendfile`), so memory does not grow with pack
size. A failed run is dropped at once: no later request can join it, and its readers get its
exit status, never a cached answer.

Bounds: entries older than `max_age` are removed (a sweep, and never served past it); when the
finished entries exceed `max_bytes` the oldest go first. A reader holding a removed entry's
file open finishes reading it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

from geogit.storage.git import Git, GitCommand, GitError
from geogit.storage.metrics import StorageMetrics

log = logging.getLogger(__name__)
READ_SIZE = 1024 * 1024
STDERR_BYTES = 64 * 1024
# What the cache writes into its directory: entries, and the request stdin server.py spools.
OWN_FILES = ("*.pack", "stdin-*")


@dataclass(frozen=True)
class PackRequest:
    """What storage runs for a request: `git [--shallow-file F] pack-objects <options>`."""

    repository: Path
    options: tuple[str, ...]
    shallow_file: str | None
    stdin: Path  # the spooled object list, removed once the run has read it


@dataclass
class Entry:
    key: str
    path: Path
    created: float = field(default_factory=time.monotonic)
    size: int = 0
    stderr: bytearray = field(default_factory=bytearray)
    exit_code: int | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def done(self) -> bool:
        return self.exit_code is not None

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self) -> None:
        await self._changed.wait()


class PackCache:
    def __init__(
        self,
        git: Git,
        directory: Path,
        max_bytes: int,
        max_age: float,
        metrics: StorageMetrics,
        timeout: float = 3600.0,
    ) -> None:
        self.git = git
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.metrics = metrics
        self.timeout = timeout
        self._entries: OrderedDict[str, Entry] = OrderedDict()  # oldest first
        self._writers: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """A fresh directory: entries of an earlier process are not in this one's index. Only
        the cache's own files go (entries, spooled stdin): the directory is configurable."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for pattern in OWN_FILES:
            for stale in self.directory.glob(pattern):
                with contextlib.suppress(OSError):
                    stale.unlink()
        self._sweeper = asyncio.create_task(self._sweep_periodically())

    async def stop(self) -> None:
        for task in [*self._writers, self._sweeper]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for entry in list(self._entries.values()):
            self._remove(entry, None)

    def open(self, key: str, request: PackRequest) -> Entry:
        """The live entry for `key`, or a new one whose run starts now (a miss)."""
        self.expire()
        entry = self._entries.get(key)
        if entry is not None:
            self.metrics.pack_cache_hits.labels("done" if entry.done else "writing").inc()
            request.stdin.unlink(missing_ok=True)
            return entry
        self.metrics.pack_cache_misses.inc()
        entry = Entry(key, self.directory / f"{key}.pack")
        entry.path.touch(mode=0o600)
        self._entries[key] = entry
        task = asyncio.create_task(self._write(entry, request))
        self._writers.add(task)
        task.add_done_callback(self._writers.discard)
        return entry

    async def read(self, entry: Entry) -> AsyncIterator[tuple[int, int] | bytes]:
        """The entry as it grows: (offset, length) ranges of its file to send, and stderr
        pieces as bytes, until the run has ended (then `entry.exit_code` is its status)."""
        sent = err_sent = 0
        while True:
            if len(entry.stderr) > err_sent:
                piece = bytes(entry.stderr[err_sent:])
                err_sent += len(piece)
                yield piece
            if entry.size > sent:
                length = entry.size - sent
                yield sent, length
                sent += length
                self.metrics.pack_cache_served_bytes.inc(length)
                continue
            if entry.done:
                return
            await entry.changed()

    def expire(self) -> None:
        """Remove finished entries past their age, then the oldest over the size bound."""
        deadline = time.monotonic() - self.max_age
        for entry in [e for e in self._entries.values() if e.done and e.created < deadline]:
            self._remove(entry, "age")
        total = sum(e.size for e in self._entries.values())
        for entry in [e for e in self._entries.values() if e.done]:
            if total <= self.max_bytes:
                break
            total -= entry.size
            self._remove(entry, "size")

    @property
    def entries(self) -> int:
        return len(self._entries)

    def _remove(self, entry: Entry, reason: str | None) -> None:
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]
            if reason is not None:
                self.metrics.pack_cache_evicted.labels(reason).inc()
        # Readers with the file open finish reading it; the space is freed when they do.
        entry.path.unlink(missing_ok=True)

    async def _sweep_periodically(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, min(self.max_age / 2, 30.0)))
            self.expire()

    async def _write(self, entry: Entry, request: PackRequest) -> None:
        code = 1
        try:
            code = await asyncio.wait_for(self._run(entry, request), self.timeout)
        except (GitError, OSError, TimeoutError) as exc:
            entry.stderr += f"pack-objects cache: {exc}\n".encode()
            log.warning("pack-objects run failed", extra={"key": entry.key, "error": str(exc)})
        finally:
            request.stdin.unlink(missing_ok=True)
            entry.exit_code = code
            if code != 0:
                self.metrics.pack_cache_failures.inc()
                self._remove(entry, None)  # never served as a cached answer
            entry.notify()
        self.expire()

    async def _run(self, entry: Entry, request: PackRequest) -> int:
        command = GitCommand(
            "pack-objects",
            options=request.options,
            git_dir=request.repository,
            shallow_file=request.shallow_file,
        )
        async with self.git.process(command, stdin=True) as proc:
            feeder = asyncio.create_task(proc.write_stdin(_file_chunks(request.stdin)))
            stderr = asyncio.create_task(self._collect_stderr(entry, proc.proc.stderr))
            stdout = proc.proc.stdout
            assert stdout is not None
            with open_file(entry.path, "wb") as out:
                while chunk := await stdout.read(READ_SIZE):
                    _write_all(out, chunk)
                    entry.size += len(chunk)
                    self.metrics.pack_cache_written_bytes.inc(len(chunk))
                    entry.notify()
            await asyncio.gather(feeder, stderr)
            return await proc.wait()

    @staticmethod
    async def _collect_stderr(entry: Entry, stream: asyncio.StreamReader | None) -> None:
        """Progress, kept (up to STDERR_BYTES) for every reader, late ones too."""
        assert stream is not None
        while chunk := await stream.read(STDERR_BYTES):
            entry.stderr += chunk[: max(0, STDERR_BYTES - len(entry.stderr))]
            entry.notify()


def _write_all(out: IO[bytes], chunk: bytes) -> None:
    """Local disk, into the page cache: not worth a thread. Unbuffered, one write may be short
    (a full disk); readers trust `entry.size`, so every byte counted must be on disk."""
    view = memoryview(chunk)
    while view:
        written = out.write(view)
        if not written:
            raise OSError(f"short write to a pack-cache entry ({len(view)} bytes left)")
        view = view[written:]


def open_file(path: Path, mode: str) -> IO[bytes]:
    """A cache file, unbuffered (a reader follows what the writer has written)."""
    return cast(IO[bytes], open(path, mode, buffering=0))


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with open_file(path, "rb") as source:
        while chunk := source.read(READ_SIZE):
            yield chunk
