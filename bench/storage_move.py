"""A repository storage move (issue 14 item 2): how long a move takes, against git's own copy.

Real processes: a primary and a secondary, each with two storage shards (`default`, `second`).
The repository (generated, or the real one of `--repo`: its branches and tags) is pushed to
the primary and replicated; then it is moved back and forth between the shards `--repeat`
times (POST /projects/:id/repository_storage_moves, followed with GET). Each move is timed
from the POST to `replicated` (the switch is done; pushes go to the new shard) and to
`finished` (the old copy removed after GEOGIT_STORAGE_MOVE_REMOVAL_DELAY_SECONDS), and then
until the secondary's replica is on its shard of the same name.

The anchor, in the same run and alternating with the moves: `git clone --bare --no-local` of
the primary's copy into a new directory — the pack git itself would send and index for the
same repository. The move does that and more (a final incremental fetch under the push hold,
a checksum of each copy), so the ratio says what the move's safety costs. The peak RSS of
both storage shards' processes and their git children is sampled during each move: a move
streams, so it must not grow with the pack.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench.common import (
    CACHE_DIR,
    MIB,
    ForeignCpu,
    Options,
    PeakSampler,
    alternate,
    generated_repo,
    git,
    host_facts,
    log,
    megabytes,
    pack_bytes,
    print_table,
    process_tree,
    rss,
    run_area,
)
from bench.geo import all_synced, internal, new_account, new_project, push_branches_and_tags
from bench.sites import repository_dir, site_process
from geogit.common.tansu import TansuBroker
from geogit.devstack.api import AdminApi
from geogit.devstack.site import Site
from geogit.devstack.testing import running_sites

SHARDS = ("default", "second")
REMOVAL_DELAY_S = 2
MOVE_TIMEOUT_S = 1800.0
TERMINAL = {"finished", "failed", "cleanup_failed"}


def run(options: Options) -> dict[str, Any]:
    return run_area(options, lambda foreign: measure(options, foreign), report, [options.spec])


def measure(options: Options, foreign: ForeignCpu) -> dict[str, Any]:
    spec = options.spec
    source = generated_repo(spec)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    env = {"GEOGIT_STORAGE_MOVE_REMOVAL_DELAY_SECONDS": str(REMOVAL_DELAY_S)}
    with (
        tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="moves-") as tmp,
        TansuBroker() as broker,
        running_sites(
            Path(tmp) / "sites", broker.bootstrap, extra_env=env, extra_shards=SHARDS[1:]
        ) as (primary, (secondary,), admin),
        AdminApi(primary.http_url, admin.token) as api,
    ):
        owner = new_account(api)
        project = new_project(api, owner, f"move-{spec.key}")
        started = time.perf_counter()
        push_branches_and_tags(source, project.url(primary, owner))
        log(f"pushed {spec.key} in {time.perf_counter() - started:.1f} s")
        _wait(lambda: all_synced(secondary), "the first replica")
        refs = _refs(source)
        where = ["default"]  # the shard the primary's copy is on
        moves: list[dict[str, Any]] = []  # the first is the warm-up

        def move() -> float:
            destination = SHARDS[1 - SHARDS.index(where[0])]
            moves.append(_move(api, primary, secondary, project.id, destination))
            where[0] = destination
            if _refs(repository_dir(primary, project.id, destination)) != refs:
                raise RuntimeError("the moved copy's refs differ from the source's")
            return float(moves[-1]["replicated_s"])

        def anchor() -> float:
            return _anchor(repository_dir(primary, project.id, where[0]), Path(tmp) / "anchor.git")

        rounds = list(alternate(anchor, move, options.repeat))
    anchors = [a for a, _ in rounds]
    replicated = statistics.median(m for _, m in rounds)
    anchor_s = statistics.median(anchors)
    return {
        **host_facts(options.repeat),
        "repository": spec.key,
        "refs": len(refs.splitlines()),
        "pack_mb": round(pack_bytes(source) / MIB, 1),
        "moves": moves,
        "anchor_clone_s": [round(a, 2) for a in anchors],
        "median_replicated_s": round(replicated, 2),
        "median_anchor_s": round(anchor_s, 2),
        "ratio_replicated_over_anchor": round(replicated / anchor_s, 2),
    }


def _move(
    api: AdminApi, primary: Site, secondary: Site, project_id: int, destination: str
) -> dict[str, Any]:
    """One move, timed per state, with the storage shards' memory sampled meanwhile."""
    roots = [site_process(primary, "storage"), site_process(primary, "storage-second")]
    started = time.perf_counter()
    seen: dict[str, float] = {}
    with PeakSampler(lambda: _storage_rss(roots)) as memory:
        scheduled = api.move_storage(project_id, destination)
        state = scheduled["state"]
        while state not in TERMINAL:
            if time.perf_counter() - started > MOVE_TIMEOUT_S:
                raise RuntimeError(f"the move to {destination} is still {state}")
            time.sleep(0.05)
            answer = api.storage_move(project_id, scheduled["id"])
            state = answer["state"]
            seen.setdefault(state, time.perf_counter() - started)
    if state != "finished":
        raise RuntimeError(f"the move to {destination} ended {state}: {answer['error_message']}")
    _wait(lambda: _replica_shard(secondary, project_id) == destination, "the secondary to follow")
    followed = time.perf_counter() - started
    log(f"moved to {destination}: replicated {seen['replicated']:.1f} s, followed {followed:.1f} s")
    return {
        "destination": destination,
        "replicated_s": round(seen["replicated"], 2),
        "finished_s": round(seen["finished"], 2),
        "secondary_followed_s": round(followed, 2),
        **megabytes(memory.peaks, "peak_rss_", "_mb"),
    }


def _storage_rss(roots: list[psutil.Process]) -> dict[str, int]:
    """The storage servers themselves, and the git processes doing their work: git's memory
    grows with the repository (as the anchor's does), the servers' must not."""
    return {
        "storage": sum(rss(p) for p in roots),
        "git": sum(rss(p) for p in process_tree(roots) if p not in roots),
    }


def _anchor(source: Path, into: Path) -> float:
    shutil.rmtree(into, ignore_errors=True)
    started = time.perf_counter()
    git("clone", "--bare", "--no-local", "--quiet", str(source), str(into))
    return time.perf_counter() - started


def _refs(repository: Path) -> str:
    """Branches and tags, as the push sent them."""
    return git("--git-dir", str(repository), "for-each-ref", "refs/heads", "refs/tags")


def _replica_shard(secondary: Site, project_id: int) -> str | None:
    entry = internal(secondary, f"/geo/replicables/{project_id}").json()["registry"]
    if entry is None or entry["state"] != "synced":
        return None
    return str(entry["storage_shard"])


def _wait(condition: Callable[[], bool], what: str, timeout: float = MOVE_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def report(r: dict[str, Any]) -> None:
    print(f"\nStorage move of {r['repository']} ({r['refs']} refs, pack {r['pack_mb']} MB)")
    rows = [
        [
            m["destination"],
            f"{m['replicated_s']:.2f}",
            f"{m['finished_s']:.2f}",
            f"{m['secondary_followed_s']:.2f}",
            f"{m['peak_rss_storage_mb']:.0f}",
            f"{m['peak_rss_git_mb']:.0f}",
        ]
        for m in r["moves"][1:]
    ]
    print("(after one warm-up move and clone, not shown)")
    print_table(
        ["to", "switched s", "finished s", "secondary s", "storage peak MB", "its git peak MB"],
        rows,
    )
    print(
        f"anchor git clone --bare --no-local: median {r['median_anchor_s']:.2f} s;"
        f" move to switched: median {r['median_replicated_s']:.2f} s"
        f" (x{r['ratio_replicated_over_anchor']})"
    )
