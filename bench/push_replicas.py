"""Pushes per second with one internal API versus two (issue 14 item 3): does the internal API
scale out?

One primary site with two replicas of every stateless service behind HAProxy (site.py,
balancer.py). PROJECTS clients each push a new commit to a project of their own through the
site's one HTTP address, over and over (bench/pushers.py: a closed loop, PUSH_INTERVAL_S apart),
for WINDOW_S; the figure is the pushes acknowledged in that window per second. "One internal
API" is the same site with `internal-api-2` stopped and HAProxy seeing it down; everything else
(two edge proxies, the balancer hop, storage, PostgreSQL) stays the same. The two settings
alternate, `--repeat` rounds each (one unmeasured warm-up first); medians, and their ratio.

Every push costs the internal API two authorizations, pre-receive and post-receive (the
project's row lock and the outbox's), so on one machine the ratio says how much of a push's
cost is the API's Python and how much is what it waits on (git, PostgreSQL).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    CACHE_DIR,
    ForeignCpu,
    Options,
    conditions,
    host_facts,
    log,
    print_foreign_warning,
    print_table,
    run_area,
)
from bench.geo import Account, GeoProject, new_account, new_project
from bench.pushers import Pusher, pusher, pushing, wait_first_ack
from geogit.common.tansu import TansuBroker
from geogit.devstack.api import AdminApi
from geogit.devstack.balancer import replica_downs, replica_states
from geogit.devstack.site import Site
from geogit.devstack.testing import running_site

PROJECTS = 50
WINDOW_S = 20.0
WINDOW_S_QUICK = 6.0
SETTINGS = (1, 2)  # internal APIs serving
STATE_TIMEOUT_S = 60.0


def run(options: Options) -> dict[str, Any]:
    return run_area(options, lambda foreign: _measure(options, foreign), _report)


def _set_internal_apis(site: Site, count: int) -> None:
    """Two, or one with internal-api-2 stopped; returns once HAProxy sees it so."""
    name = site.process_name("internal-api-2")
    record = site.supervisor.record(name)
    running = record is not None and record.is_running()
    if count == 1 and running:
        site.supervisor.stop(name)
    elif count == 2 and not running:
        site.start_service("internal-api-2")
    wanted = "UP" if count == 2 else "DOWN"
    deadline = time.monotonic() + STATE_TIMEOUT_S
    while replica_states(site.balancer_url, "internal-api").get("internal-api-2") != wanted:
        if time.monotonic() > deadline:
            raise RuntimeError(f"HAProxy never saw internal-api-2 {wanted}")
        time.sleep(0.2)


def _api_requests(site: Site) -> list[float]:
    """Requests each internal API replica answered so far (its own /metrics), health checks
    included: their share is the same in every window."""
    counts = []
    for url in site.replica_urls("internal-api"):
        try:
            text = httpx.get(f"{url}/metrics", timeout=10, trust_env=False).text
        except httpx.HTTPError:
            counts.append(0.0)  # stopped
            continue
        counts.append(
            sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("geogit_internal_api_requests_total{")
            )
        )
    return counts


def _window(
    site: Site,
    projects: list[GeoProject],
    owner: Account,
    work: Path,
    label: str,
    seconds: float,
) -> dict[str, Any]:
    """PROJECTS pushers for `seconds` after each has had one push acknowledged."""
    pushers: list[Pusher] = [
        pusher(f"{label}-{index}", site, project, owner, work)
        for index, project in enumerate(projects)
    ]
    with pushing(pushers):
        for p in pushers:
            wait_first_ack(p, 120.0)
        before = _api_requests(site)
        downs_before = replica_downs(site.balancer_url, "internal-api")
        started = time.monotonic()
        time.sleep(seconds)
        ended = time.monotonic()
        after = _api_requests(site)
        downs = replica_downs(site.balancer_url, "internal-api")
        for p in pushers:
            p.halt()
    acknowledged = [r for p in pushers for r in p.acknowledged if started <= r.finished <= ended]
    refused = [r for p in pushers for r in p.refused if started <= r.finished <= ended]
    durations = sorted(r.finished - r.started for r in acknowledged)
    return {
        "pushes_per_s": round(len(acknowledged) / (ended - started), 2),
        "acknowledged": len(acknowledged),
        "refused": len(refused),
        "refusals": sorted({r.message for r in refused}),
        "push_p50_ms": round(statistics.median(durations) * 1000, 1) if durations else None,
        "api_requests_per_replica": [round(a - b) for a, b in zip(after, before, strict=True)],
        # Health checks the busy API failed in time (HAProxy then sends it nothing).
        "api_marked_down": {name: downs[name] - downs_before.get(name, 0) for name in downs},
    }


def _measure(options: Options, foreign: ForeignCpu) -> dict[str, Any]:
    seconds = WINDOW_S_QUICK if options.quick else WINDOW_S
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="pr-")))
        broker = stack.enter_context(TansuBroker())
        site, admin = stack.enter_context(running_site(tmp / "site", broker.bootstrap, replicas=2))
        assert admin is not None
        api = stack.enter_context(AdminApi(site.http_url, admin.token))
        owner = new_account(api)
        log(f"creating {PROJECTS} projects")
        with ThreadPoolExecutor(8) as pool:
            projects = list(
                pool.map(lambda i: new_project(api, owner, f"replicas-{i}"), range(PROJECTS))
            )
        work = tmp / "clients"
        work.mkdir()
        log(f"warm-up: {PROJECTS} pushers, {seconds:.0f} s, two internal APIs")
        _window(site, projects, owner, work, "warm", seconds)
        windows: dict[int, list[dict[str, Any]]] = {count: [] for count in SETTINGS}
        for round_ in range(1, options.repeat + 1):
            for count in SETTINGS:
                _set_internal_apis(site, count)
                result = _window(site, projects, owner, work, f"r{round_}-{count}", seconds)
                windows[count].append(result)
                log(
                    f"round {round_}/{options.repeat}, {count} internal API(s):"
                    f" {result['pushes_per_s']} pushes/s, p50 {result['push_p50_ms']} ms,"
                    f" API requests per replica {result['api_requests_per_replica']},"
                    f" refused {result['refused']}, APIs marked down {result['api_marked_down']}"
                )
        _set_internal_apis(site, 2)
    medians = {
        count: statistics.median(w["pushes_per_s"] for w in runs) for count, runs in windows.items()
    }
    return {
        **host_facts(options.repeat),
        "projects": PROJECTS,
        "window_s": seconds,
        "windows": {str(count): runs for count, runs in windows.items()},
        "pushes_per_s": {str(count): round(value, 2) for count, value in medians.items()},
        "ratio": round(medians[2] / medians[1], 3) if medians[1] else None,
    }


def _report(r: dict[str, Any]) -> None:
    print(
        f"\npush-replicas: {r['projects']} projects, {r['window_s']:.0f} s windows, pushes"
        f" through the site's one address (two edge proxies behind HAProxy), {r['git_version']}"
    )
    print(f"{conditions(r)}\n")
    rows = []
    for count in SETTINGS:
        runs = r["windows"][str(count)]
        rows.append(
            [
                f"{count} internal API{'s' if count > 1 else ''}",
                f"{r['pushes_per_s'][str(count)]:.1f}",
                " ".join(f"{w['pushes_per_s']:.1f}" for w in runs),
                " ".join(str(w["push_p50_ms"]) for w in runs),
                str(sum(w["refused"] for w in runs)),
            ]
        )
    print_table(["setting", "median pushes/s", "runs", "push p50 ms", "refused"], rows)
    print(f"\n2 internal APIs / 1 = {r['ratio']}")
    print_foreign_warning(r)
