"""Shared benchmark plumbing: cached repositories, timing, memory sampling, reporting.

Every benchmark compares a geogit path with the plain-git path it stands in for, on the same
machine in the same run, so figures are ratios that survive a change of hardware.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

BENCH_DIR = Path(__file__).resolve().parent
CACHE_DIR = BENCH_DIR / ".cache"
MAKE_REPO = Path("/work/shared/tools/make_repo.py")
MIB = 1024 * 1024


@dataclass(frozen=True)
class RepoSpec:
    """Arguments of make_repo.py; the same spec always yields the same commit ids."""

    commits: int = 10000
    files: int = 1000
    binary_mb: int = 200
    seed: int = 1

    @property
    def key(self) -> str:
        return f"c{self.commits}-f{self.files}-b{self.binary_mb}-s{self.seed}"

    def args(self) -> list[str]:
        return [
            f"--commits={self.commits}",
            f"--files={self.files}",
            f"--binary-mb={self.binary_mb}",
            f"--seed={self.seed}",
        ]


@dataclass(frozen=True)
class Options:
    quick: bool
    repeat: int


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def git(*args: str, env: Mapping[str, str] | None = None) -> str:
    result = subprocess.run(["git", *args], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def generated_repo(spec: RepoSpec) -> Path:
    """The generated bare repository, built once (~30 s for the default spec) and reused.

    Built under a scratch name and renamed, so an interrupted build is never mistaken for a
    finished one.
    """
    out = CACHE_DIR / f"repo-{spec.key}.git"
    if out.exists():
        return out
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    scratch = CACHE_DIR / f"building-{spec.key}-{os.getpid()}.git"
    shutil.rmtree(scratch, ignore_errors=True)
    log(f"generating repository {spec.key} (once; cached in {out})")
    started = time.monotonic()
    subprocess.run(
        [sys.executable, str(MAKE_REPO), str(scratch), *spec.args()],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    scratch.rename(out)
    log(f"generated in {time.monotonic() - started:.0f} s")
    return out


def pack_bytes(git_dir: Path) -> int:
    return sum(p.stat().st_size for p in (git_dir / "objects" / "pack").glob("*.pack"))


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without anything that would reroute git."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "GEOGIT_"))}
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env | extra


class PeakSampler:
    """Samples resident memory every `interval` seconds in a thread and keeps the peaks.

    Sampling misses spikes shorter than the interval; at 50 ms that is fine for a clone that
    streams for seconds. Each probe returns a mapping name -> bytes for one sample.
    """

    def __init__(self, probe: Callable[[], Mapping[str, int]], interval: float = 0.05) -> None:
        self.probe = probe
        self.interval = interval
        self.peaks: dict[str, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sample = self.probe()
            except psutil.Error:  # a process ended between listing and reading it
                sample = {}
            for name, value in sample.items():
                self.peaks[name] = max(self.peaks.get(name, 0), value)
            self.samples += 1
            self._stop.wait(self.interval)


def rss(proc: psutil.Process, anonymous: bool = False) -> int:
    """Resident bytes; `anonymous` leaves out file-backed and shared pages (Linux)."""
    try:
        info = proc.memory_info()
        return int(info.rss - info.shared) if anonymous else int(info.rss)
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return 0


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


@dataclass(frozen=True)
class CloneRun:
    seconds: float
    # CPU seconds of every process doing the clone's work: on a machine with few cores a relay
    # that burns CPU slows the client's index-pack even when it is not on the critical path.
    cpu: float
    peaks: dict[str, int]


@dataclass
class Timing:
    """Repeated runs of one operation; medians are what gets reported."""

    runs: list[CloneRun] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def median_cpu(self) -> float:
        return statistics.median(r.cpu for r in self.runs)

    def as_json(self) -> dict[str, Any]:
        return {
            "median_s": round(self.median, 4),
            "runs_s": [round(r.seconds, 4) for r in self.runs],
            "median_cpu_s": round(self.median_cpu, 3),
        }


def cpu_seconds(proc: psutil.Process) -> float:
    """CPU of a process and of the children it has waited for."""
    t = proc.cpu_times()
    return float(t.user + t.system + t.children_user + t.children_system)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_clone(
    argv: Sequence[str],
    env: Mapping[str, str],
    probe: Callable[[int], Mapping[str, int]] | None = None,
    server: psutil.Process | None = None,
) -> CloneRun:
    """Run `git clone ... <dest>` into a fresh directory, removed afterwards (untimed).

    CPU is the client's whole process tree (git reaps its helpers and index-pack, we reap git)
    plus `server`'s, which includes the git children it reaped. `probe` receives the clone
    process's pid so it can find client-side children such as the ssh helper.
    """
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="clone-") as tmp:
        dest = str(Path(tmp) / "c")
        cpu_before = _children_cpu() + (cpu_seconds(server) if server else 0.0)
        started = time.perf_counter()
        proc = subprocess.Popen(["git", *argv, dest], env=dict(env), stderr=subprocess.PIPE)
        if probe is None:
            _, stderr = proc.communicate()
            peaks: dict[str, int] = {}
        else:
            with PeakSampler(lambda: probe(proc.pid)) as sampler:
                _, stderr = proc.communicate()
            peaks = sampler.peaks
        elapsed = time.perf_counter() - started
        cpu = _children_cpu() + (cpu_seconds(server) if server else 0.0) - cpu_before
        if proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(argv)} failed: {stderr.decode(errors='replace')}")
    return CloneRun(elapsed, cpu, peaks)


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def warn_if_busy() -> None:
    """Timings on a shared machine are not figures; say so rather than print them silently."""
    load, cpus = load_average(), os.cpu_count() or 1
    if load > 0.5 * cpus:
        log(f"WARNING: load average {load} on {cpus} CPUs: other work will skew the timings")


class ForeignCpu:
    """CPU used by processes outside this benchmark while it ran (a shared-machine check).

    The machine's busy time minus our own and our reaped children's, so it is only exact once
    every child (the storage server included) has been waited for. Descendants whose CPU
    reaches no reaped parent (children of a process that ignores SIGCHLD, like fcgiwrap's
    workers) must be measured another way and added to `unreaped` before the block ends.
    """

    unreaped: float = 0.0

    def __enter__(self) -> ForeignCpu:
        self._start = (self._machine_busy(), self._own(), time.monotonic())
        return self

    def __exit__(self, *exc: object) -> None:
        busy, own, started = self._start
        self.seconds = (self._machine_busy() - busy) - (self._own() - own) - self.unreaped
        self.share = self.seconds / ((time.monotonic() - started) * (os.cpu_count() or 1))

    @staticmethod
    def _machine_busy() -> float:
        t = psutil.cpu_times()
        return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))

    @staticmethod
    def _own() -> float:
        me = resource.getrusage(resource.RUSAGE_SELF)
        return me.ru_utime + me.ru_stime + _children_cpu()


def write_results(name: str, results: Mapping[str, Any]) -> Path:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / f"results-{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    for row in [headers, ["-" * w for w in widths], *rows]:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths, strict=True)).rstrip())
