"""Shared benchmark plumbing: cached repositories, timing, memory sampling, reporting.

Every benchmark compares a geogit path with the plain-git path it stands in for, on the same
machine in the same run, so figures are ratios that survive a change of hardware.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

import psutil  # type: ignore[import-untyped]

BENCH_DIR = Path(__file__).resolve().parent
CACHE_DIR = BENCH_DIR / ".cache"
MAKE_REPO = Path("/work/shared/tools/make_repo.py")
MIB = 1024 * 1024


@dataclass(frozen=True)
class RepoSpec:
    """Arguments of make_repo.py; the same spec always yields the same commit ids.

    With `source`, the repository is instead a copy of a real one (its branches and tags):
    real histories carry what generated ones do not (old time zones, odd tree modes, thousands
    of refs).
    """

    commits: int = 10000
    files: int = 1000
    binary_mb: int = 200
    seed: int = 1
    source: str = ""

    @property
    def key(self) -> str:
        if self.source:
            path = Path(self.source).resolve()
            return f"real-{path.parent.name}-{path.name}".replace("+", "-")
        return f"c{self.commits}-f{self.files}-b{self.binary_mb}-s{self.seed}"

    def args(self) -> list[str]:
        return [
            f"--commits={self.commits}",
            f"--files={self.files}",
            f"--binary-mb={self.binary_mb}",
            f"--seed={self.seed}",
        ]


LARGE = RepoSpec()
QUICK = RepoSpec(commits=500, binary_mb=10)
# No binaries, a handful of files: cloning it is almost all per-operation cost.
TINY = RepoSpec(commits=5, files=10, binary_mb=0)


@dataclass(frozen=True)
class Options:
    quick: bool
    repeat: int
    repo: Path | None = None

    @property
    def spec(self) -> RepoSpec:
        """The main repository: a real one when given, else generated; the quick one makes a
        smoke test of the benchmark, not figures."""
        if self.repo is not None:
            return RepoSpec(source=str(self.repo))
        return QUICK if self.quick else LARGE


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
    log(f"preparing repository {spec.key} (once; cached in {out})")
    started = time.monotonic()
    if spec.source:
        git("init", "-q", "--bare", str(scratch))
        git(
            "--git-dir",
            str(scratch),
            "fetch",
            "-q",
            "--no-tags",
            spec.source,
            "+refs/heads/*:refs/heads/*",
            "+refs/tags/*:refs/tags/*",
        )
        head = git("--git-dir", spec.source, "symbolic-ref", "HEAD").strip()
        git("--git-dir", str(scratch), "symbolic-ref", "HEAD", head)
    else:
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


def megabytes(sizes: Mapping[str, int], prefix: str = "", suffix: str = "") -> dict[str, float]:
    """Byte counts (sampled peaks, say) in MB for the results, each name given `prefix`/`suffix`."""
    return {f"{prefix}{name}{suffix}": round(value / MIB, 1) for name, value in sizes.items()}


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


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest rank: with fewer than 100 values, p99 is the slowest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def cpu_seconds(proc: psutil.Process) -> float:
    """CPU of a process and of the children it has waited for."""
    t = proc.cpu_times()
    return float(t.user + t.system + t.children_user + t.children_system)


def children_cpu() -> float:
    """CPU seconds of every child this process has waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def clone_attempt(
    args: Sequence[str], url: str, dest: str, timeout: float
) -> tuple[float, str | None]:
    """One `git clone -q <args> <url> <dest>` of a concurrent burst: its seconds and, if it
    failed, why (its status and the end of its stderr)."""
    started = time.perf_counter()
    try:
        done = subprocess.run(
            ["git", "clone", "-q", *args, url, dest],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return time.perf_counter() - started, f"timed out after {timeout:.0f} s"
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        return elapsed, f"status {done.returncode}: {done.stderr.strip()[-500:]}"
    return elapsed, None


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
        cpu_before = children_cpu() + (cpu_seconds(server) if server else 0.0)
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
        cpu = children_cpu() + (cpu_seconds(server) if server else 0.0) - cpu_before
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
        return me.ru_utime + me.ru_stime + children_cpu()


def run_area(
    options: Options,
    measure: Callable[[ForeignCpu], dict[str, Any]],
    report: Callable[[dict[str, Any]], None],
    prebuilt: Sequence[RepoSpec] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An area's run: `measure` under a foreign-CPU check, how the run went added, `report`.

    The `prebuilt` repositories are generated first, so that the load average taken before and
    the site start-up do not wait on make_repo. Every process `measure` starts must be stopped
    and reaped by the time it returns: ForeignCpu counts what it cannot attribute as foreign.
    `extra` goes into the results beside the preset.
    """
    for spec in prebuilt:
        generated_repo(spec)
    load_before = load_average()
    with ForeignCpu() as foreign:
        results = measure(foreign)
    results |= {
        "preset": "quick" if options.quick else "default",
        **(extra or {}),
        "load_average": {"before": load_before, "after": load_average()},
        "foreign_cpu": {"seconds": round(foreign.seconds, 1), "share": round(foreign.share, 3)},
    }
    report(results)
    return results


def host_facts(repeat: int, **versions: str) -> dict[str, Any]:
    """What the figures were taken with: git (and other `versions`), CPUs, runs per figure."""
    return {
        "git_version": git("--version").strip(),
        **versions,
        "cpus": psutil.cpu_count(),
        "repeat": repeat,
    }


def write_results(name: str, results: Mapping[str, Any]) -> Path:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / f"results-{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    for row in [headers, ["-" * w for w in widths], *rows]:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths, strict=True)).rstrip())


def conditions(r: Mapping[str, Any]) -> str:
    """The end of a report's first line: CPUs, runs per figure, the load before and after."""
    load = r["load_average"]
    return (
        f"{r['cpus']} CPUs, median of {r['repeat']}, load average {load['before']} before, "
        f"{load['after']} after"
    )


def print_foreign_warning(r: Mapping[str, Any], lead: str = "") -> None:
    """Timings taken while other processes used over a tenth of the machine are not figures."""
    foreign = r["foreign_cpu"]
    if foreign["share"] > 0.1:
        print(
            f"{lead}WARNING: other processes used {foreign['seconds']:.0f} CPU s "
            f"({foreign['share']:.0%} of the machine) during this run: timings are skewed"
        )


def mb_cell(value: float | str | None) -> str:
    """A peak RSS in MB; blank for a process the probe does not have, a placeholder as given."""
    if value is None:
        return ""
    return value if isinstance(value, str) else f"{value:.1f}"


def cpu_cell(parts: Mapping[str, float], key: str) -> str:
    """CPU seconds of one server part; blank where the side has no such part."""
    return f"{parts[key]:.2f}" if key in parts else ""


# Processes the benchmarks start and measure -------------------------------------------------


def process_tree(roots: Sequence[psutil.Process]) -> list[psutil.Process]:
    """Each root followed by its live descendants; roots that have gone are skipped."""
    procs = []
    for root in roots:
        with suppress(psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            procs.extend([root, *root.children(recursive=True)])
    return procs


def total_cpu(procs: Sequence[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        with suppress(psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            total += cpu_seconds(proc)
    return total


def process_name(proc: psutil.Process) -> str:
    """The name, or "" for a process that ended while being looked at."""
    try:
        return str(proc.name())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return ""


def tree_cpu(**roots: psutil.Process) -> Callable[[], dict[str, float]]:
    """Each root with its live descendants, each with the CPU of the children it reaped."""
    return lambda: {name: total_cpu(process_tree([root])) for name, root in roots.items()}


def cpu_delta(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in after}


def rss_by_name(root: psutil.Process, name: str) -> dict[str, int]:
    """RSS of `root`'s tree: its processes called `name`, and the rest (the git children)."""
    procs = process_tree([root])
    return {
        name: sum(rss(p) for p in procs if process_name(p) == name),
        "git_children": sum(rss(p) for p in procs if process_name(p) != name),
    }


def installed_binary(name: str) -> str | None:
    """`name` on PATH or in /usr/sbin (daemons live there and root's PATH may lack it)."""
    found = shutil.which(name)
    if found is None and Path(f"/usr/sbin/{name}").exists():
        found = f"/usr/sbin/{name}"
    return found


def ensure_installed(binaries: Mapping[str, str]) -> dict[str, str]:
    """Paths of `binaries` (binary -> Debian package), installing the packages of missing ones.

    The anchors are stock Debian daemons; installing them on demand keeps a benchmark one
    command on a fresh machine. Needs root for apt-get.
    """
    missing = sorted({pkg for name, pkg in binaries.items() if installed_binary(name) is None})
    if missing:
        install = f"apt-get install -y -qq {' '.join(missing)}"
        if os.geteuid() != 0:
            raise RuntimeError(f"{', '.join(binaries)} needed: {install}")
        log(f"{', '.join(binaries)}: installing Debian's packages ({install})")
        subprocess.run(
            ["sh", "-c", f"apt-get update -qq && {install}"],
            env=os.environ | {"DEBIAN_FRONTEND": "noninteractive"},
            check=True,
            stdout=subprocess.DEVNULL,
        )
    found = {name: installed_binary(name) for name in binaries}
    paths = {name: path for name, path in found.items() if path is not None}
    if len(paths) != len(found):
        raise RuntimeError(f"apt-get installed {' '.join(missing)} but {found} is incomplete")
    return paths


def start_process(
    stack: ExitStack, argv: list[str], log_file: IO[bytes]
) -> subprocess.Popen[bytes]:
    """Start a server, logging to `log_file`; `stack` stops it (and what it forked) on exit."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a Ctrl-C reaches us, and we stop it in order
    )
    stack.callback(stop_process, proc)
    return proc


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process we started and whatever it forked, then SIGKILL what remains."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for child in children:
        with suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=5)
    for child in alive:
        with suppress(psutil.NoSuchProcess):
            child.kill()


def wait_until(
    ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, work: Path
) -> None:
    """Until `ready()`; if `proc` dies or 30 s pass, fail quoting the logs in `work`."""
    deadline = time.monotonic() + 30
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            logs = "".join(
                p.read_text(errors="replace")[-2000:]
                for p in (work / "processes.log", work / "error.log")
                if p.exists()
            )
            raise RuntimeError(f"{what} did not come up (status {proc.poll()}):\n{logs}")
        time.sleep(0.05)


# The two sides of a comparison --------------------------------------------------------------

T = TypeVar("T")


def alternate(
    anchor: Callable[[], T], subject: Callable[[], T], repeat: int, warm: bool = True
) -> Iterator[tuple[T, T]]:
    """`repeat` rounds of one anchor run then one subject run, so that drift (page cache, CPU
    clock, other load) hits both alike; with `warm`, one unmeasured run of each goes first."""
    if warm:
        anchor()
        subject()
    for _ in range(repeat):
        yield anchor(), subject()


class CloneSide(Protocol):
    """What `compare` needs of a side: a name for the log, and one clone of a spec's repository."""

    @property
    def name(self) -> str: ...

    def clone(self, spec: RepoSpec, *args: str) -> CloneRun: ...


@dataclass
class Side:
    """One way of serving the repositories: its clone URLs, a CPU meter, a memory probe.

    `cpu` returns the cumulative CPU seconds of each server part (deltas are what count);
    `env` is added to the clean environment of every git run (an SSH command, say).
    """

    name: str
    urls: dict[str, str]  # spec key -> clone URL
    cpu: Callable[[], dict[str, float]]
    probe: Callable[[], dict[str, int]]
    env: dict[str, str] = field(default_factory=dict)

    def server_cpu(self) -> float:
        return sum(self.cpu().values())

    def clone(self, spec: RepoSpec, *args: str, sample: bool = False) -> CloneRun:
        before = self.server_cpu()
        argv = ["clone", "-q", *args, self.urls[spec.key]]
        probe = (lambda _pid: self.probe()) if sample else None
        run = timed_clone(argv, clean_env(**self.env), probe)
        return CloneRun(run.seconds, run.cpu + self.server_cpu() - before, run.peaks)


def compare(
    anchor: CloneSide, subject: CloneSide, spec: RepoSpec, repeat: int, *args: str
) -> tuple[Timing, Timing]:
    """Median of `repeat` clones each way, after one unmeasured each that warms the page cache."""
    log(f"warming: {spec.key} clone {' '.join(args)}")
    timings = Timing(), Timing()
    runs = alternate(
        partial(anchor.clone, spec, *args), partial(subject.clone, spec, *args), repeat
    )
    for i, (a, s) in enumerate(runs, 1):
        timings[0].runs.append(a)
        timings[1].runs.append(s)
        log(
            f"run {i}/{repeat}: {anchor.name} {a.seconds:.3f} s ({a.cpu:.2f} CPU s), "
            f"{subject.name} {s.seconds:.3f} s ({s.cpu:.2f} CPU s)"
        )
    return timings


def memory_run(
    sides: Sequence[Side], spec: RepoSpec
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """One more full clone each way with RSS sampled every 50 ms.

    Returns the peaks in MB keyed `<side>_<process>_peak`, and each side's server CPU for that
    clone by part.
    """
    log("memory run: one more full clone each way, sampling RSS every 50 ms")
    peaks: dict[str, float] = {}
    cpu: dict[str, dict[str, float]] = {}
    for side in sides:
        before = side.cpu()
        peaks |= megabytes(side.clone(spec, sample=True).peaks, f"{side.name}_", "_peak")
        cpu[side.name] = {k: round(v, 2) for k, v in cpu_delta(side.cpu(), before).items()}
    return peaks, cpu


def comparison(
    names: tuple[str, str], anchor: Timing, subject: Timing, size: int | None = None
) -> dict[str, Any]:
    """Timings keyed by side name; ratio is anchor time / subject time, 1.0 is parity."""
    anchor_name, subject_name = names
    out: dict[str, Any] = {
        anchor_name: anchor.as_json(),
        subject_name: subject.as_json(),
        "ratio": round(anchor.median / subject.median, 3),
        "overhead_ms": round((subject.median - anchor.median) * 1000, 1),
        "cpu_ratio": round(subject.median_cpu / anchor.median_cpu, 2),
    }
    if size is not None:
        out[anchor_name]["mib_per_s"] = round(size / MIB / anchor.median, 1)
        out[subject_name]["mib_per_s"] = round(size / MIB / subject.median, 1)
    return out


def clone_headers(
    first: str, anchor: str, subject: str, anchor_seconds: str | None = None
) -> list[str]:
    """Column headers for `clone_row`s; `anchor_seconds` names the anchor's seconds column."""
    return [
        first,
        f"{anchor_seconds or anchor} s",
        f"{subject} s",
        "ratio",
        "overhead ms",
        f"{anchor} CPU s",
        f"{subject} CPU s",
        f"{anchor} MiB/s",
        f"{subject} MiB/s",
    ]


def clone_row(label: str, c: Mapping[str, Any], names: tuple[str, str]) -> list[str]:
    """A `comparison` as a table row: seconds, ratio, overhead, CPU, and MiB/s if it has a size."""
    anchor, subject = (c[name] for name in names)
    rates = ["", ""]
    if "mib_per_s" in anchor:
        rates = [f"{anchor['mib_per_s']:.1f}", f"{subject['mib_per_s']:.1f}"]
    return [
        label,
        f"{anchor['median_s']:.3f}",
        f"{subject['median_s']:.3f}",
        f"{c['ratio']:.2f}",
        f"{c['overhead_ms']:+.0f}",
        f"{anchor['median_cpu_s']:.2f}",
        f"{subject['median_cpu_s']:.2f}",
        *rates,
    ]


def print_clone_ratios(full: Mapping[str, Any], names: tuple[str, str], target: float) -> None:
    """The full clone's throughput ratio against its target, and its CPU ratio."""
    anchor, subject = names
    print(f"ratio clone throughput {subject}/{anchor}: {full['ratio']:.2f} (target >= {target})")
    print(
        f"ratio clone CPU {subject}/{anchor}: {full['cpu_ratio']:.2f} "
        f"({full[anchor]['median_cpu_s']:.2f} vs {full[subject]['median_cpu_s']:.2f} CPU s)"
    )


def print_overhead(what: str, c: Mapping[str, Any], names: tuple[str, str]) -> None:
    """The ratio of a clone that is mostly fixed cost, with that cost per clone."""
    anchor, subject = names
    print(
        f"ratio {what} {subject}/{anchor}: {c['ratio']:.2f} ({c['overhead_ms']:+.0f} ms per clone)"
    )
