"""Supervise the dev stack's child processes so `geogit dev down` from another shell stops them.

Every child runs in its own session (a Ctrl-C in the shell that ran `up` must not take the
stack down, and the children outlive `up`, which returns once they are ready), writes to
`<run>/logs/<name>.log`, and is recorded in `<run>/pids/<name>.json` with the command line and
start time the kernel reports for it. Stopping re-reads /proc and signals the pid only if both
still match: a pid recycled by some unrelated process after a crash or reboot is left alone.

Linux only (/proc), like the rest of the dev stack.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from geogit.devstack.probes import Probe, probe_from_json, probe_to_json
from geogit.devstack.procfs import Identity, identity_of, settled_identity

_LOG_TAIL_BYTES = 4000
_POLL_SECONDS = 0.1


class ProcessError(RuntimeError):
    """A child could not be started or did not become ready; the message quotes its log."""


@dataclass(frozen=True)
class ProcessRecord:
    """One started child as written to `<run>/pids/<name>.json`."""

    name: str
    pid: int
    identity: Identity
    log_path: Path
    probe: Probe | None
    order: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": self.pid,
            "cmdline": list(self.identity.cmdline),
            "start_ticks": self.identity.start_ticks,
            "log": str(self.log_path),
            "probe": probe_to_json(self.probe),
            "order": self.order,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessRecord:
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            identity=Identity(tuple(data["cmdline"]), int(data["start_ticks"])),
            log_path=Path(data["log"]),
            probe=probe_from_json(data.get("probe")),
            order=int(data["order"]),
        )

    def is_running(self) -> bool:
        return identity_of(self.pid) == self.identity


StopOutcome = Literal["stopped", "killed", "not running", "refused"]


@dataclass(frozen=True)
class StopResult:
    name: str
    pid: int
    outcome: StopOutcome
    detail: str = ""


def log_tail(path: Path, since: int = 0, limit: int = _LOG_TAIL_BYTES) -> str:
    """The end of a log, from offset `since` on (so an appended log shows only this run)."""
    try:
        with open(path, "rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(since, size - limit))
            return log.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


class Supervisor:
    """Starts, records, health-checks and stops the children of one run directory.

    Several Supervisor objects on the same run directory (the `up` process, a later `down` in
    another shell) agree because all state is in the files; the in-memory Popen handles only
    let the starting process reap its own children.
    """

    def __init__(self, run_dir: Path, grace_seconds: float = 15.0) -> None:
        self.run_dir = run_dir
        self.logs_dir = run_dir / "logs"
        self.pids_dir = run_dir / "pids"
        self.grace_seconds = grace_seconds
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def _record_path(self, name: str) -> Path:
        return self.pids_dir / f"{name}.json"

    def records(self) -> list[ProcessRecord]:
        """Every recorded child, in start order."""
        if not self.pids_dir.is_dir():
            return []
        records = []
        for path in self.pids_dir.glob("*.json"):
            try:
                records.append(ProcessRecord.from_json(json.loads(path.read_text())))
            except (OSError, ValueError, KeyError) as exc:
                raise ProcessError(f"unreadable process record {path}: {exc}") from exc
        return sorted(records, key=lambda record: record.order)

    def record(self, name: str) -> ProcessRecord | None:
        path = self._record_path(name)
        if not path.exists():
            return None
        return ProcessRecord.from_json(json.loads(path.read_text()))

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        probe: Probe | None,
        timeout: float = 30.0,
        cwd: Path | None = None,
    ) -> ProcessRecord:
        """Start `argv` and return once `probe` passes; on failure nothing is left running."""
        existing = self.record(name)
        if existing is not None and existing.is_running():
            raise ProcessError(f"{name} is already running (pid {existing.pid})")
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.pids_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_path(name)
        with open(log_path, "ab") as log:
            log.write(f"=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
            log.flush()
            since = log.tell()
            try:
                child = subprocess.Popen(
                    list(argv),
                    env=dict(env),
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ProcessError(f"{name}: cannot run {argv[0]}: {exc}") from exc
        self._children[child.pid] = child
        identity = settled_identity(child.pid)
        if identity is None:  # exited (and became a zombie) before we could look at it
            code = child.wait()
            del self._children[child.pid]
            tail = log_tail(log_path, since)
            raise ProcessError(f"{name} exited with status {code} at once; {log_path}:\n{tail}")
        record = ProcessRecord(name, child.pid, identity, log_path, probe, self._next_order())
        self._write_record(record)
        try:
            self._wait_ready(record, child, since, timeout)
        except BaseException:
            self.stop(name)
            raise
        return self._resettle(record)

    def _resettle(self, record: ProcessRecord) -> ProcessRecord:
        """Record the command line a ready child ended up with.

        A wrapper (`sh -c "exec ..."`, a launcher script) execs into the real program after we
        first looked; the start time proves it is still the same process.
        """
        current = identity_of(record.pid)
        if current is None or current == record.identity:
            return record
        if current.start_ticks != record.identity.start_ticks:
            return record
        settled = ProcessRecord(
            record.name, record.pid, current, record.log_path, record.probe, record.order
        )
        self._write_record(settled)
        return settled

    def _next_order(self) -> int:
        return max((record.order for record in self.records()), default=0) + 1

    def _write_record(self, record: ProcessRecord) -> None:
        path = self._record_path(record.name)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(record.to_json(), indent=2) + "\n")
        temporary.replace(path)

    def _wait_ready(
        self, record: ProcessRecord, child: subprocess.Popen[bytes], since: int, timeout: float
    ) -> None:
        if record.probe is None:
            return
        deadline = time.monotonic() + timeout
        while not record.probe.check():
            if (code := child.poll()) is not None:
                raise ProcessError(
                    f"{record.name} exited with status {code} before it was ready"
                    f" ({record.probe.describe()}); {record.log_path}:\n"
                    f"{log_tail(record.log_path, since)}"
                )
            if time.monotonic() > deadline:
                raise ProcessError(
                    f"{record.name} not ready after {timeout:.0f}s ({record.probe.describe()});"
                    f" {record.log_path}:\n{log_tail(record.log_path, since)}"
                )
            time.sleep(_POLL_SECONDS)

    def stop(self, name: str, kill: bool = False) -> StopResult:
        """SIGTERM the recorded pid, SIGKILL its process group after the grace period; with
        `kill`, SIGKILL at once (no drain, no clean shutdown: a crash, for drills).

        Refuses to signal a pid whose command line or start time no longer match the record.
        """
        record = self.record(name)
        if record is None:
            return StopResult(name, 0, "not running", "no record")
        try:
            return self._stop(record, kill)
        finally:
            self._record_path(name).unlink(missing_ok=True)

    def _stop(self, record: ProcessRecord, kill: bool) -> StopResult:
        current = identity_of(record.pid)
        if current is None:
            self._reap(record.pid)
            return StopResult(record.name, record.pid, "not running")
        if current != record.identity:
            return StopResult(
                record.name,
                record.pid,
                "refused",
                f"pid {record.pid} is now {' '.join(current.cmdline)!r}, not the process"
                " `up` started; left alone",
            )
        if kill:
            self._kill_group(record.pid)
            self._wait_gone(record, 5.0)
            return StopResult(record.name, record.pid, "killed")
        os.kill(record.pid, signal.SIGTERM)
        outcome: StopOutcome = "stopped"
        if not self._wait_gone(record, self.grace_seconds):
            outcome = "killed"
            self._kill_group(record.pid)
            self._wait_gone(record, 5.0)
        # Whatever the leader left behind in its group (a git child, a uvicorn worker) goes too.
        self._kill_group(record.pid)
        return StopResult(record.name, record.pid, outcome)

    def _wait_gone(self, record: ProcessRecord, timeout: float) -> bool:
        child = self._children.get(record.pid)
        if child is not None:
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            del self._children[record.pid]
            return True
        deadline = time.monotonic() + timeout
        while identity_of(record.pid) == record.identity:
            if time.monotonic() > deadline:
                return False
            time.sleep(_POLL_SECONDS / 2)
        return True

    def _reap(self, pid: int) -> None:
        child = self._children.pop(pid, None)
        if child is not None:
            child.wait()

    @staticmethod
    def _kill_group(pgid: int) -> None:
        """SIGKILL the group the child leads; its pgid cannot be reused while members live."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)

    def stop_all(self) -> list[StopResult]:
        """Stop every recorded child, last started first."""
        return [self.stop(record.name) for record in reversed(self.records())]

    def forget_dead(self) -> list[str]:
        """Drop the records of children that are no longer running; returns their names."""
        dead = [record.name for record in self.records() if not record.is_running()]
        for name in dead:
            self._record_path(name).unlink(missing_ok=True)
        return dead
