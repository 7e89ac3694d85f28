"""Clients that push to a site over and over, recording what git acknowledged and refused:
the load under which a failover is measured (bench/failover.py), and its evidence.

A client pushes a new commit (`git commit-tree` on its previous one, in a bare repository of
its own) to its own branch through one site's URL, forced, so a refused round costs the next
one nothing; git's exit status is the verdict a user sees.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import clean_env
from bench.geo import Account, GeoProject, checked_git, commit_on, distribution_ms
from geogit.devstack.site import Site

PUSH_INTERVAL_S = 0.1  # a pusher's pause between one push's end and the next one's start
PUSH_TIMEOUT_S = 60.0  # a push that hangs longer counts as refused
MESSAGE_CHARS = 200
COMMIT_ID = re.compile(r"\b[0-9a-f]{40}\b")


@dataclass(frozen=True)
class PushRecord:
    """One push: its commit, when it started and ended (monotonic), and git's verdict."""

    commit: str
    started: float
    finished: float
    ok: bool
    message: str = ""  # a refused push's trimmed stderr


def refusal(stderr: str, secret: str) -> str:
    """What git said about a refused push, on one short line: the remote's and git's own
    errors, without the `To <url>` line, the credentials or the commit id (so that refusals
    of one kind read alike)."""
    text = COMMIT_ID.sub("<commit>", stderr.replace(secret, "***"))
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.startswith(("To ", "hint:"))
    ]
    return " | ".join(lines)[:MESSAGE_CHARS] or "(no message)"


@dataclass
class Pusher:
    """A client pushing a new commit to its own branch (`+<commit>:refs/heads/<branch>`, a
    forced push, so a refused round costs nothing to the next) through one site's URL every
    PUSH_INTERVAL_S, in a thread, recording what git acknowledged (exit 0) and what it refused.
    """

    name: str
    url: str
    repo: Path
    secret: str
    records: list[PushRecord] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        checked_git("init", "-q", "--bare", str(self.repo))
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def halt(self) -> None:
        """Push no more after the current push; `stop` waits for it."""
        self._stop.set()

    def stop(self) -> None:
        self.halt()
        if self._thread is not None:
            self._thread.join(PUSH_TIMEOUT_S * 2)

    def _run(self) -> None:
        parent: str | None = None
        while not self._stop.is_set():
            parent = commit_on(self.repo, parent, f"{self.name} {len(self.records) + 1}")
            self.records.append(self._push(parent))
            self._stop.wait(PUSH_INTERVAL_S)

    def _push(self, commit: str) -> PushRecord:
        argv = ["git", "--git-dir", str(self.repo), "push", "-q", self.url]
        started = time.monotonic()
        try:
            done = subprocess.run(
                [*argv, f"+{commit}:refs/heads/{self.name}"],
                env=clean_env(),
                capture_output=True,
                text=True,
                timeout=PUSH_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return PushRecord(commit, started, time.monotonic(), False, "timed out")
        finished = time.monotonic()
        if done.returncode == 0:
            return PushRecord(commit, started, finished, True)
        return PushRecord(commit, started, finished, False, refusal(done.stderr, self.secret))

    @property
    def acknowledged(self) -> list[PushRecord]:
        return [r for r in self.records if r.ok]

    @property
    def refused(self) -> list[PushRecord]:
        return [r for r in self.records if not r.ok]

    def first_ack_after(self, moment: float) -> PushRecord | None:
        """The first acknowledged push that started at or after `moment`."""
        return next((r for r in self.acknowledged if r.started >= moment), None)


def pusher(name: str, site: Site, project: GeoProject, owner: Account, work: Path) -> Pusher:
    return Pusher(name, project.url(site, owner), work / f"{name}.git", owner.token)


@contextmanager
def pushing(pushers: Sequence[Pusher]) -> Iterator[None]:
    """The pushers run for the block; they are stopped (and joined) however it ends."""
    with ExitStack() as stack:
        for p in pushers:
            p.start()
            stack.callback(p.stop)
        yield


def unavailability(p: Pusher) -> dict[str, Any]:
    """From the start of the client's first refused push to the end of its next acknowledged
    one (0 if never refused, None if it never recovered), its refusals and their messages."""
    refused = p.refused
    window: float | None = 0.0
    if refused:
        first = refused[0]
        recovered = p.first_ack_after(first.started)
        window = None if recovered is None else recovered.finished - first.started
    return {
        "client": p.name,
        "pushes": len(p.records),
        "acknowledged": len(p.acknowledged),
        "refused": len(refused),
        "unavailable_s": None if window is None else round(window, 2),
        "acknowledged_push_ms": distribution_ms([r.finished - r.started for r in p.acknowledged]),
        "messages": sorted({r.message for r in refused}),
    }


def wait_first_ack(p: Pusher, timeout: float) -> PushRecord:
    """The pusher's first acknowledged push, waited for; none within `timeout` fails."""
    deadline = time.monotonic() + timeout
    while not p.acknowledged:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"no push acknowledged through {p.name} after {timeout:.0f} s: {unavailability(p)}"
            )
        time.sleep(0.05)
    return p.acknowledged[0]
