"""Backfill with 1 vs 3 replicators (issue 14): does a site's consumer group share the work?

Real processes: a primary with PROJECTS small projects (one commit each) and two secondaries
whose replicators are stopped before the projects exist. Secondary 1 then starts one
replicator, secondary 2 three (started together, as a Deployment's pods are); each backfill
is timed from the start of its replicators until every project is synced at its latest
sequence, one after the other so they never compete. CPU is the replicators' own and the
secondary's storage tree (the git fetches), which is the same work however it is divided.
With `--repo PATH` a real repository's branches and tags are one more project of both runs.

The anchor is the one-replicator run in the same process: the ratio is 3-replicator time over
1-replicator time. One replicator already runs GEOGIT_MAX_CONCURRENCY syncs at once, so on a
machine with few cores the git work, not the replicator, is the limit; what three replicators
should show there is the same time and the same CPU, split three ways.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench.common import (
    CACHE_DIR,
    ForeignCpu,
    Options,
    RepoSpec,
    cpu_delta,
    generated_repo,
    host_facts,
    log,
    print_table,
    run_area,
    tree_cpu,
)
from bench.geo import (
    Account,
    all_synced,
    create_small_projects,
    new_account,
    new_project,
    push_branches_and_tags,
)
from bench.sites import site_process
from geogit.common.tansu import TansuBroker
from geogit.devstack.api import AdminApi
from geogit.devstack.replicators import start_replicator_replica
from geogit.devstack.site import Site
from geogit.devstack.testing import running_sites

PROJECTS = 500
QUICK_PROJECTS = 60
REPLICATORS = (1, 3)
BACKFILL_TIMEOUT_S = 1800.0


def run(options: Options) -> dict[str, Any]:
    return run_area(options, lambda foreign: measure(options, foreign), report)


def measure(options: Options, foreign: ForeignCpu) -> dict[str, Any]:
    projects = QUICK_PROJECTS if options.quick else PROJECTS
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="replicators-") as tmp,
        TansuBroker() as broker,
        running_sites(Path(tmp) / "sites", broker.bootstrap, secondaries=len(REPLICATORS)) as (
            primary,
            secondaries,
            admin,
        ),
        AdminApi(primary.http_url, admin.token) as api,
    ):
        for site in secondaries:
            site.supervisor.stop(site.process_name("replicator"))
        owner = new_account(api)
        created_s = create_small_projects(api, owner, primary, projects, Path(tmp))
        log(f"{projects} projects created in {created_s:.1f} s")
        if options.repo is not None:
            push_real(api, owner, primary, options.spec)
            projects += 1
        runs = {
            str(count): backfill(site, count)
            for site, count in zip(secondaries, REPLICATORS, strict=True)
        }
    one, three = runs["1"], runs["3"]
    return {
        **host_facts(1),
        "projects": projects,
        "runs": runs,
        "time_ratio_3_over_1": round(three["seconds"] / one["seconds"], 2),
        "replicator_cpu_ratio_3_over_1": round(
            three["replicator_cpu_s"] / one["replicator_cpu_s"], 2
        ),
    }


def push_real(api: AdminApi, owner: Account, primary: Site, spec: RepoSpec) -> None:
    """The real repository's branches and tags, one more project for both backfills."""
    source = generated_repo(spec)
    project = new_project(api, owner, f"bench-{spec.key}")
    push_branches_and_tags(source, project.url(primary, owner))
    log(f"pushed {spec.key} as project {project.id}")


def backfill(site: Site, replicators: int) -> dict[str, Any]:
    """Start `replicators` replicators on the site at once; time them to every project synced."""
    started = time.perf_counter()
    with ThreadPoolExecutor(replicators) as pool:
        starts: list[Callable[[], object]] = [site.start_replicator]
        starts += [partial(start_replicator_replica, site, i) for i in range(1, replicators)]
        list(pool.map(lambda start: start(), starts))
    roots = {"storage": site_process(site, "storage")}
    names = ["replicator", *(f"replicator-{i}" for i in range(1, replicators))]
    for name in names:
        record = site.supervisor.record(site.process_name(name))
        assert record is not None, f"{name} is not running"
        roots[name.replace("-", "_")] = psutil.Process(record.pid)
    cpu = tree_cpu(**roots)
    before = cpu()
    while not all_synced(site):
        if time.perf_counter() - started > BACKFILL_TIMEOUT_S:
            raise RuntimeError(f"{site.name}: backfill incomplete after {BACKFILL_TIMEOUT_S} s")
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    used = cpu_delta(cpu(), before)
    for name in names[1:]:  # the site stops its own; extra ones would outlive it
        site.supervisor.stop(site.process_name(name))
    replicator_cpu = sum(v for k, v in used.items() if k != "storage")
    log(f"{replicators} replicator(s): {seconds:.1f} s, replicator CPU {replicator_cpu:.1f} s")
    return {
        "seconds": round(seconds, 2),
        "replicator_cpu_s": round(replicator_cpu, 2),
        "storage_cpu_s": round(used["storage"], 2),
        "cpu_by_process_s": {k: round(v, 2) for k, v in used.items()},
    }


def report(r: dict[str, Any]) -> None:
    print(f"\nBackfill of {r['projects']} projects on a new secondary, {r['cpus']} CPUs")
    rows = [
        [
            count,
            f"{run['seconds']:.1f}",
            f"{run['replicator_cpu_s']:.1f}",
            f"{run['storage_cpu_s']:.1f}",
        ]
        for count, run in r["runs"].items()
    ]
    print_table(["replicators", "time s", "replicator CPU s", "storage CPU s"], rows)
    print(
        f"3 vs 1 replicators: time x{r['time_ratio_3_over_1']},"
        f" replicator CPU x{r['replicator_cpu_ratio_3_over_1']}"
    )
