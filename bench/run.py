"""`make bench`: run each benchmark area and save its results beside the cached repositories.

Areas are independent modules with a `run(Options) -> dict` entry point, so a new one is
added to AREAS without touching the others.

    python -m bench.run [--quick] [--repeat N] [--repo PATH] [AREA ...]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    clone_storm,
    edge_clone,
    failover,
    geo,
    housekeeping,
    outbox_lock,
    push,
    push_replicas,
    replicators,
    ssh_clone,
    storage_clone,
    storage_move,
)
from bench.common import Options, log, warn_if_busy, write_results

AREAS: dict[str, Callable[[Options], dict[str, Any]]] = {
    "storage": storage_clone.run,
    "edge": edge_clone.run,
    "ssh": ssh_clone.run,
    "geo": geo.run,
    "geo-lag": geo.run_lag,
    "outbox-lock": outbox_lock.run,
    "failover": failover.run,
    "push": push.run,
    "push-replicas": push_replicas.run,
    "housekeeping": housekeeping.run,
    "storm": clone_storm.run,
    "replicators": replicators.run,
    "storage-move": storage_move.run,
}
# `geo-lag` is part (a) of `geo` on its own, `outbox-lock` a micro-benchmark: named
# explicitly, not run by default.
DEFAULT_AREAS = [area for area in AREAS if area not in ("geo-lag", "outbox-lock")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "areas",
        nargs="*",
        metavar="AREA",
        help=f"benchmarks to run: {', '.join(AREAS)} (default: {', '.join(DEFAULT_AREAS)})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small repositories: a smoke test of the benchmark, not figures",
    )
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per operation")
    parser.add_argument(
        "--repo",
        type=Path,
        help="a real repository (bare or not, kept outside this one) to use instead of the"
        " generated main repository",
    )
    args = parser.parse_args(argv)
    if unknown := set(args.areas) - set(AREAS):
        parser.error(f"unknown area(s): {', '.join(sorted(unknown))}")
    options = Options(quick=args.quick, repeat=args.repeat, repo=args.repo)
    for area in args.areas or DEFAULT_AREAS:
        warn_if_busy()
        results = AREAS[area](options)
        suffix = "-real" if options.repo else "-quick" if options.quick else ""
        path = write_results(f"{area}{suffix}", results)
        log(f"results written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
