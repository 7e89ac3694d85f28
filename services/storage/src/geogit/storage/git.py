"""The one place where storage runs git.

Every git process is built here from an allow-list of subcommands. Options come from our own
code; anything that came from a request (ref names, object ids, patterns, URLs) goes after
`--`, so it can never be read as an option. Processes are asyncio subprocesses whose output is
streamed, and a process whose caller goes away (cancellation, timeout) is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from geogit.common.git_commands import GIT_COMMANDS

log = logging.getLogger(__name__)

CHUNK_SIZE = 64 * 1024
# Pack output is read in larger pieces: whatever git wrote while the previous message was
# being sent goes out as one message, which costs far less CPU per byte (DESIGN §9).
STDOUT_CHUNK_SIZE = 256 * 1024
_STREAM_LIMIT = 1024 * 1024
# The unprivileged maximum for F_SETPIPE_SZ.
PIPE_BYTES = 1024 * 1024
CORK_SECONDS = 0.001
STDERR_TAIL_BYTES = 8 * 1024

ALLOWED_SUBCOMMANDS = frozenset(
    {
        "cat-file",
        "check-ref-format",
        "commit-graph",
        "config",
        "fetch",
        "for-each-ref",
        "init",
        "ls-remote",
        "merge-base",
        "pack-objects",
        "pack-refs",
        "prune",
        "prune-packed",
        "repack",
        "rev-list",
        "symbolic-ref",
        "update-ref",
        # The services clients reach, from the Git command registry.
        *(command.subcommand for command in GIT_COMMANDS),
    }
)

# Object checks on every object storage receives (push or replication fetch), as Gitaly does:
# all of git's checks apply, except quirks that real, long-lived histories carry and that git
# itself reads without trouble; refusing them would refuse whole projects on migration day.
# What can hurt a client or the server (`.git` or `.gitmodules` entries, bad object ids,
# missing or truncated objects) stays an error.
FSCK_IGNORED = (
    # Old git and other tools wrote malformed time zones ("+051800", "-0"); psf/requests
    # carries one. git parses the rest of the signature fine.
    "badTimezone",
    # A signature without a space before its date, usually one with no date at all.
    "missingSpaceBeforeDate",
    # Trees written with "040000" for "40000" (an old GitHub bug, found in ohmyzsh and many
    # others); git reads the mode the same.
    "zeroPaddedFilemode",
)


def object_check_config(prefix: str) -> tuple[tuple[str, str], ...]:
    """`receive.fsckObjects`/`fetch.fsckObjects` and their exceptions, for `prefix` receive or
    fetch."""
    ignored = tuple((f"{prefix}.fsck.{message_id}", "ignore") for message_id in FSCK_IGNORED)
    return ((f"{prefix}.fsckObjects", "true"), *ignored)


# Housekeeping (geogit.storage.housekeeping) is the only thing that repacks: git's own
# `gc --auto` (after receive-pack, fetch, and maintenance) stays off. Written into every
# repository storage creates, and passed to the commands that would start one.
AUTO_GC_OFF = (("gc.auto", "0"), ("receive.autogc", "false"), ("maintenance.auto", "false"))


# Variables a caller's environment must not leak into git: they would redirect it to
# another repository, object store or configuration.
_SCRUBBED_PREFIXES = ("GIT_",)


class GitError(Exception):
    """A git process failed; `stderr` holds the tail of what it said."""

    def __init__(self, message: str, returncode: int | None = None, stderr: bytes = b"") -> None:
        detail = stderr.decode(errors="replace").strip()
        super().__init__(f"{message}: {detail}" if detail else message)
        self.returncode = returncode
        self.stderr = stderr


class GitProtocolError(GitError):
    """upload-pack or receive-pack refused what the client sent; the message is git's own."""


# Services whose input is the client's request: when they die with one of the messages below,
# the request was at fault, not storage. What git says when the repository, the disk or the
# machine fails ("unable to", "bad object", "pack-objects died", a signal) is absent on
# purpose and stays an internal error.
CLIENT_INPUT_SUBCOMMANDS = frozenset({"receive-pack", "upload-pack"})
_CLIENT_FAULTS = re.compile(
    r"^fatal: (?:"
    # pkt-line.c: the body ended early (empty, truncated) or its framing is wrong.
    r"the remote end hung up unexpectedly|protocol error: bad line length"
    # upload-pack.c (v0 and v2 fetch): wants, haves, shallow and deepen lines.
    r"|git upload-pack: (?:protocol error|not our ref|expected SHA1|deepen and deepen-since"
    r"|ambiguous deepen-not"
    r"|filtering capability not negotiated)"
    r"|Invalid deepen|invalid shallow line|invalid filter-spec|expected flush after"
    # serve.c and ls-refs.c (protocol v2): commands, capabilities and arguments.
    r"|invalid command '|no command requested|unknown capability|unexpected line: "
    r"|command '[^']*' requested after|unknown object format|mismatched object format"
    # receive-pack.c: the command list and push options.
    r"|protocol error: expected"
    r")",
    re.MULTILINE,
)
PROTOCOL_MESSAGE_CHARS = 1000


def client_fault(subcommand: str, returncode: int, stderr: bytes) -> str | None:
    """git's own message when a failed service refused its client's request, else None."""
    if subcommand not in CLIENT_INPUT_SUBCOMMANDS or returncode != 128:
        return None
    text = stderr.decode(errors="replace")
    match = _CLIENT_FAULTS.search(text)
    if match is None:
        return None
    line = text[match.start() :].split("\n", 1)[0]
    return line[:PROTOCOL_MESSAGE_CHARS]


@dataclass(frozen=True)
class GitCommand:
    subcommand: str
    options: Sequence[str] = ()
    args: Sequence[str] = ()
    # Some plumbing (upload-archive) has no option parser; its args then follow directly.
    separator: bool = True
    git_dir: Path | None = None
    # git's global --shallow-file (upload-pack passes "" to pack-objects for shallow fetches).
    shallow_file: str | None = None
    config: Sequence[tuple[str, str]] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    # Seconds an abandoned process may take to finish on its own before it is killed.
    stop_grace: float = 0.0

    def argv(self, git_bin: str) -> list[str]:
        if self.subcommand not in ALLOWED_SUBCOMMANDS:
            raise ValueError(f"git subcommand not allowed: {self.subcommand!r}")
        for option in self.options:
            if not option.startswith("-"):
                raise ValueError(f"git option must start with '-': {option!r}")
        argv = [git_bin]
        if self.git_dir is not None:
            argv.append(f"--git-dir={self.git_dir}")
        if self.shallow_file is not None:
            argv += ["--shallow-file", self.shallow_file]
        argv += [self.subcommand, *self.options]
        if self.separator:
            argv.append("--")
        argv += self.args
        return argv


class Git:
    """Builds and runs git processes with a controlled environment."""

    def __init__(self, git_bin: str = "git", home: Path | None = None) -> None:
        self.git_bin = git_bin
        self.home = home

    def environment(self, command: GitCommand) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
        env.update(GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", LANG="C", LC_ALL="C")
        if self.home is not None:
            env["HOME"] = str(self.home)
            env["GIT_CONFIG_GLOBAL"] = os.devnull
        # Configuration travels in the environment so secrets (extra HTTP headers) never
        # appear in the process list.
        env["GIT_CONFIG_COUNT"] = str(len(command.config))
        for index, (key, value) in enumerate(command.config):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        env.update(command.env)
        return env

    async def spawn(self, command: GitCommand, *, stdin: bool = False) -> GitProcess:
        argv = command.argv(self.git_bin)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self.environment(command),
                start_new_session=True,
                limit=_STREAM_LIMIT,
            )
        except OSError as exc:
            raise GitError(f"spawning git {command.subcommand}") from exc
        _widen_stdout(proc)
        log.debug("git started", extra={"argv": argv[1:3], "pid": proc.pid})
        return GitProcess(command.subcommand, proc, command.stop_grace)

    @contextlib.asynccontextmanager
    async def process(
        self, command: GitCommand, *, stdin: bool = False
    ) -> AsyncIterator[GitProcess]:
        """A running git process that is killed if the block is left before it exits."""
        proc = await self.spawn(command, stdin=stdin)
        try:
            yield proc
        finally:
            await proc.kill_if_running()

    async def run(
        self, command: GitCommand, *, input: bytes | None = None, timeout: float = 300.0
    ) -> GitResult:
        """Run to completion, for commands whose output is small by construction."""
        async with self.process(command, stdin=input is not None) as proc:
            try:
                stdout, stderr = await asyncio.wait_for(proc.proc.communicate(input), timeout)
            except TimeoutError as exc:
                raise GitError(f"git {command.subcommand} timed out after {timeout:.0f} s") from exc
            return GitResult(proc.proc.returncode or 0, stdout, stderr)

    async def check(
        self, command: GitCommand, *, input: bytes | None = None, timeout: float = 300.0
    ) -> bytes:
        result = await self.run(command, input=input, timeout=timeout)
        if result.returncode != 0:
            raise GitError(f"git {command.subcommand} failed", result.returncode, result.stderr)
        return result.stdout


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: bytes
    stderr: bytes


class GitProcess:
    """A streaming git child: stdout in chunks, stderr drained concurrently (tail kept)."""

    def __init__(
        self, subcommand: str, proc: asyncio.subprocess.Process, stop_grace: float = 0.0
    ) -> None:
        self.subcommand = subcommand
        self.proc = proc
        self.stop_grace = stop_grace
        self._stderr_tail = bytearray()

    @property
    def stderr_tail(self) -> bytes:
        return bytes(self._stderr_tail)

    async def stdout_chunks(self, size: int = STDOUT_CHUNK_SIZE) -> AsyncIterator[bytes]:
        """Output in messages of up to `size`, gathering pieces that follow within CORK_SECONDS.

        upload-pack writes a pack in pieces of at most 8 KiB; sent one by one they cost the
        relay more CPU than index-pack leaves it. A negotiation reply still goes out after at
        most one cork interval.
        """
        stdout = self.proc.stdout
        assert stdout is not None
        while first := await stdout.read(size):
            pieces, length = [first], len(first)
            while length < size:
                try:
                    more = await asyncio.wait_for(stdout.read(size - length), CORK_SECONDS)
                except TimeoutError:
                    break
                if not more:
                    break
                pieces.append(more)
                length += len(more)
            yield pieces[0] if len(pieces) == 1 else b"".join(pieces)

    async def stderr_chunks(self, size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """Stream stderr while remembering its tail for error messages."""
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(size):
            self._stderr_tail += chunk
            del self._stderr_tail[:-STDERR_TAIL_BYTES]
            yield chunk

    async def drain_stderr(self) -> None:
        async for _ in self.stderr_chunks():
            pass

    async def write_stdin(self, chunks: AsyncIterator[bytes]) -> None:
        """Copy chunks to stdin with back-pressure, then close it. What git leaves unread of a
        finite body is read to its end by the interceptor (interceptors.py), as raw messages."""
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            async for chunk in chunks:
                stdin.write(chunk)
                await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            # git stopped reading (it finished or failed); its exit status tells which.
            pass
        finally:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                stdin.close()

    async def wait(self) -> int:
        return await self.proc.wait()

    async def kill_if_running(self) -> None:
        """Stop an abandoned git, first by closing its input if it was given a grace period.

        receive-pack only removes its quarantine when it sees the end of its input; a signal
        would leave the pushed objects behind. Output is drained meanwhile so a git blocked on
        writing can still notice.
        """
        if self.proc.returncode is not None:
            return
        if self.stop_grace > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._close_and_drain(), self.stop_grace)
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()
        log.info("git stopped", extra={"subcommand": self.subcommand, "pid": self.proc.pid})

    async def _close_and_drain(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.proc.stdin.close()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        await asyncio.gather(self._discard(self.proc.stdout), self._discard(self.proc.stderr))
        await self.proc.wait()

    @staticmethod
    async def _discard(stream: asyncio.StreamReader) -> None:
        while await stream.read(CHUNK_SIZE):
            pass

    def failure(self, returncode: int) -> GitError:
        """The error for a non-zero exit: a GitProtocolError when the client was at fault."""
        stderr = self.stderr_tail
        message = client_fault(self.subcommand, returncode, stderr)
        if message is not None:
            return GitProtocolError(message, returncode)
        return GitError(f"git {self.subcommand} exited with {returncode}", returncode, stderr)


def _widen_stdout(proc: asyncio.subprocess.Process) -> None:
    """A 1 MiB pipe for git's output (Linux's default is 64 KiB): git writes a pack in 8 KiB
    pieces, and a wider pipe lets them gather into fewer, larger reads for the relay. asyncio
    has no public handle on the pipe, so a missing one just leaves the default."""
    transport = getattr(proc, "_transport", None)
    pipe = transport.get_pipe_transport(1) if transport is not None else None
    handle = pipe.get_extra_info("pipe") if pipe is not None else None
    if handle is not None:
        # ValueError: git already exited and asyncio closed the pipe.
        with contextlib.suppress(OSError, ValueError):
            fcntl.fcntl(handle.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
