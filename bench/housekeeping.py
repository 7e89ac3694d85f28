"""1000 small pushes to one repository, with housekeeping off and on, against a freshly repacked
copy (issue 12, item 5: housekeeping that keeps repositories fast).

Two bare repositories start as storage holds a new one (`gc.auto=0` in its config, as
storage's CreateRepository writes it) filled by one fetch of the base repository. Each receives
the same 1000 pushes, one small commit each (a changed file: a blob, two trees and the commit),
pushed one after the other with `git push` over the local transport, with receive-pack's
configuration from storage (`git_services.RECEIVE_PACK_CONFIG`: `receive.autogc=false`,
`gc.auto=0`, object checks), so git never repacks on its own:

- **off**: nothing else runs, as before housekeeping existed (the loose objects pile up);
- **on**: storage's `Housekeeper` runs in this process, and `after_push` is called after each
  push returns, as post-receive will call it; the pushes go on while it works.

Then a copy of the pushed repository is repacked with `git repack -adf` (the anchor), and each
repository is timed, alternating anchor/subject after one unmeasured run each, median of
`--repeat`: a clone (`git clone --bare --no-local file://`) and a fetch of the 1000 pushes into
a copy of the base (`git fetch file://`). Ratios are anchor time / subject time: 1.0 is parity,
target ≥ 0.9 (within 10 %). Disk is every file of each repository (allocated blocks).
`--repo PATH` pushes on top of a real repository; `--quick` makes 100 pushes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import (
    CACHE_DIR,
    MIB,
    CloneRun,
    ForeignCpu,
    Options,
    RepoSpec,
    Timing,
    alternate,
    children_cpu,
    clean_env,
    comparison,
    conditions,
    generated_repo,
    git,
    host_facts,
    log,
    print_foreign_warning,
    print_table,
    run_area,
    timed_clone,
)
from geogit.common.paths import hashed_repository_path
from geogit.storage.git import AUTO_GC_OFF, Git
from geogit.storage.git_services import RECEIVE_PACK_CONFIG
from geogit.storage.housekeeping import Housekeeper
from geogit.storage.housekeeping.heuristics import inspect_repository
from geogit.storage.metrics import StorageMetrics

PUSHES = 1000
QUICK_PUSHES = 100
# A small generated repository: ~1.4k commits' worth of history is not needed to show what
# loose objects cost; a few hundred files make each push's root tree a real object.
SMALL = RepoSpec(commits=300, files=200, binary_mb=1)
TARGET = 0.9
SIDES = ("off", "on")
AUTHOR = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def run(options: Options) -> dict[str, Any]:
    spec = options.spec if options.repo is not None else SMALL
    pushes = QUICK_PUSHES if options.quick else PUSHES
    return run_area(
        options,
        lambda foreign: _measure(spec, pushes, options.repeat, foreign),
        _report,
        prebuilt=[spec],
    )


def _measure(spec: RepoSpec, pushes: int, repeat: int, foreign: ForeignCpu) -> dict[str, Any]:
    base = generated_repo(spec)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="housekeeping-") as tmp:
        work = Path(tmp)
        branch = git("--git-dir", str(base), "symbolic-ref", "--short", "HEAD").strip()
        client = _bare_copy(base, work / "client.git")
        tips = _commits(client, branch, pushes)
        root = work / "repositories"
        repos = {side: _new_repository(root, n, base) for n, side in enumerate(SIDES, 1)}
        push_seconds: dict[str, float] = {}
        metrics = StorageMetrics()
        housekeeper = Housekeeper(Git(home=work), root, metrics, interval_seconds=0)
        for side in SIDES:
            log(f"{side}: {pushes} pushes to {branch}")
            started = time.perf_counter()
            keeper = housekeeper if side == "on" else None
            asyncio.run(_push_all(client, repos[side], branch, tips, keeper))
            push_seconds[side] = time.perf_counter() - started
        fresh = work / "fresh.git"
        shutil.copytree(repos["off"], fresh, symlinks=True)
        log("anchor: a copy repacked with git repack -adf")
        git("--git-dir", str(fresh), "repack", "-adfq")
        for side in SIDES:
            assert git("--git-dir", str(repos[side]), "rev-parse", branch).strip() == tips[-1]
        fetch_base = _bare_copy(base, work / "fetch-base.git")
        clone = {side: _compare(fresh, repos[side], repeat, _clone) for side in SIDES}
        fetch = {
            side: _compare(fresh, repos[side], repeat, lambda r: _fetch(fetch_base, r))
            for side in SIDES
        }
        layout = {side: _layout(path) for side, path in {**repos, "fresh": fresh}.items()}
        sample = metrics.registry.get_sample_value
        steps = {
            step: int(sample("geogit_storage_housekeeping_steps_total", {"step": step}) or 0)
            for step in (
                "repack_incremental",
                "repack_geometric",
                "repack_full",
                "prune",
                "pack_refs",
                "commit_graph_append",
                "commit_graph_replace",
                "clean_stale",
            )
        }
        runs = {
            outcome: int(
                sample(
                    "geogit_storage_housekeeping_runs_total",
                    {"trigger": "push", "outcome": outcome},
                )
                or 0
            )
            for outcome in ("optimized", "unchanged", "skipped", "failed")
        }
    return {
        "repository": spec.key,
        "pushes": pushes,
        **host_facts(repeat),
        "push_seconds": {side: round(s, 2) for side, s in push_seconds.items()},
        "clone": {side: comparison(("fresh", side), *t) for side, t in clone.items()},
        "fetch": {side: comparison(("fresh", side), *t) for side, t in fetch.items()},
        "layout": layout,
        "housekeeping_runs": runs,
        "housekeeping_steps": steps,
    }


def _bare_copy(source: Path, dest: Path) -> Path:
    git("clone", "-q", "--bare", "--no-local", str(source), str(dest))
    return dest


def _new_repository(root: Path, project: int, base: Path) -> Path:
    """As storage holds a new repository (CreateRepository's config) after one fetch."""
    path = root / hashed_repository_path(project)
    path.parent.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "--bare", str(path))
    for key, value in AUTO_GC_OFF:
        git("--git-dir", str(path), "config", key, value)
    git("--git-dir", str(path), "fetch", "-q", str(base), "+refs/*:refs/*")
    head = git("--git-dir", str(base), "symbolic-ref", "HEAD").strip()
    git("--git-dir", str(path), "symbolic-ref", "HEAD", head)
    return path


def _commits(client: Path, branch: str, count: int) -> list[str]:
    """`count` commits on `branch`, each changing one small file; their ids in order."""
    lines = []
    for i in range(count):
        message = f"housekeeping bench {i}"
        body = f"push {i}\n" * (1 + i % 5)
        lines += [
            f"commit refs/heads/{branch}",
            f"mark :{i + 1}",
            f"committer bench <bench@example.com> {1_700_000_000 + i} +0000",
            f"data {len(message)}",
            message,
        ]
        if i == 0:
            lines.append(f"from refs/heads/{branch}^0")
        lines += [f"M 100644 inline housekeeping-bench/f{i % 50}.txt", f"data {len(body)}", body]
    lines += [f"get-mark :{i + 1}" for i in range(count)]
    done = subprocess.run(
        ["git", "--git-dir", str(client), "fast-import", "--quiet", "--force"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        check=True,
        env=clean_env(**AUTHOR),
    )
    return done.stdout.split()


def _receive_env() -> dict[str, str]:
    """receive-pack's configuration from storage, inherited by the local receive-pack."""
    env = clean_env(GIT_CONFIG_COUNT=str(len(RECEIVE_PACK_CONFIG)))
    for index, (key, value) in enumerate(RECEIVE_PACK_CONFIG):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


async def _push_all(
    client: Path, target: Path, branch: str, tips: list[str], keeper: Housekeeper | None
) -> None:
    env = _receive_env()
    if keeper is not None:
        keeper.start()
    for tip in tips:
        proc = await asyncio.create_subprocess_exec(
            "git",
            "--git-dir",
            str(client),
            "push",
            "-q",
            f"file://{target}",
            f"{tip}:refs/heads/{branch}",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"push of {tip} failed: {stderr.decode(errors='replace')}")
        if keeper is not None:
            keeper.after_push(target)
    if keeper is not None:
        await keeper.idle()
        await keeper.stop()


def _clone(repo: Path) -> CloneRun:
    return timed_clone(["clone", "-q", "--bare", "--no-local", f"file://{repo}"], clean_env())


def _fetch(fetch_base: Path, repo: Path) -> CloneRun:
    """A fetch of everything pushed, into a fresh copy of the base (copied untimed)."""
    with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="fetch-") as tmp:
        dest = Path(tmp) / "f.git"
        shutil.copytree(fetch_base, dest, symlinks=True)
        url = f"file://{repo}"
        argv = ["git", "--git-dir", str(dest), "fetch", "-q", url, "+refs/heads/*:refs/heads/*"]
        cpu, started = children_cpu(), time.perf_counter()
        subprocess.run(argv, env=clean_env(), check=True, capture_output=True)
        return CloneRun(time.perf_counter() - started, children_cpu() - cpu, {})


def _compare(
    anchor: Path, subject: Path, repeat: int, operation: Callable[[Path], CloneRun]
) -> tuple[Timing, Timing]:
    timings = Timing(), Timing()
    for a, s in alternate(lambda: operation(anchor), lambda: operation(subject), repeat):
        timings[0].runs.append(a)
        timings[1].runs.append(s)
    return timings


def _layout(path: Path) -> dict[str, Any]:
    info = inspect_repository(path)
    allocated = 0
    for directory, _, files in os.walk(path):
        for name in files:
            allocated += os.lstat(Path(directory) / name).st_blocks * 512
    return {
        "disk_mib": round(allocated / MIB, 2),
        "loose_objects": info.loose_objects,
        "packs": info.packs.count,
        "bitmap": info.packs.bitmap,
        "midx": info.packs.midx_packs is not None,
        "commit_graph": info.commit_graph,
    }


def _report(r: dict[str, Any]) -> None:
    print(
        f"\nhousekeeping benchmark: {r['repository']} + {r['pushes']} pushes, "
        f"{r['git_version']}, {conditions(r)}\n"
    )
    clone, fetch, layout = r["clone"], r["fetch"], r["layout"]
    rows = []
    for side, label in (("off", "housekeeping off (before)"), ("on", "housekeeping on (after)")):
        c, f, lay = clone[side], fetch[side], layout[side]
        rows.append(
            [
                label,
                f"{c[side]['median_s']:.3f}",
                f"{c['ratio']:.2f}",
                f"{f[side]['median_s']:.3f}",
                f"{f['ratio']:.2f}",
                f"{lay['disk_mib']:.1f}",
                str(lay["packs"]),
                str(lay["loose_objects"]),
                f"{r['push_seconds'][side]:.1f}",
            ]
        )
    fresh = layout["fresh"]
    rows.append(
        [
            "fresh copy (git repack -adf)",
            f"{clone['off']['fresh']['median_s']:.3f}",
            "1.00",
            f"{fetch['off']['fresh']['median_s']:.3f}",
            "1.00",
            f"{fresh['disk_mib']:.1f}",
            str(fresh["packs"]),
            str(fresh["loose_objects"]),
            "",
        ]
    )
    headers = ["repository", "clone s", "clone ratio", "fetch s", "fetch ratio", "disk MiB"]
    print_table([*headers, "packs", "loose objects", "pushes s"], rows)
    print(
        f"(ratio = fresh copy's time / this repository's time, 1.0 is parity; target >= {TARGET})"
    )
    steps = ", ".join(f"{k} {v}" for k, v in r["housekeeping_steps"].items() if v)
    runs = ", ".join(f"{k} {v}" for k, v in r["housekeeping_runs"].items() if v)
    print(f"housekeeping during the pushes: runs {runs}; steps {steps}")
    print()
    print_foreign_warning(r)
    for what, c in (("clone", clone), ("fetch", fetch)):
        print(f"ratio {what} off -> on: {c['off']['ratio']:.2f} -> {c['on']['ratio']:.2f}")
    print(f"disk MiB off -> on: {layout['off']['disk_mib']:.1f} -> {layout['on']['disk_mib']:.1f}")
