"""Failover: how long writes stop, and what is lost, when another site becomes primary
(DESIGN §10).

Real processes throughout: a primary and two secondaries from `running_sites` (each with its
own fresh database, on a Tansu broker of the benchmark's own, with the failover tests' fast
peer checks), the real git client over HTTP with Basic auth, promotion driven through the
candidate's front door as `geogit geo promote` drives it.

(1) planned failover: projects with a small pushed history, replicated to both secondaries;
    two clients push a new commit every 100 ms, one through the primary's URL and one through
    secondary-1's, while secondary-1 is promoted planned; then the same again to fail back.
    Reported: the failover time (promote POST to the first push acknowledged through the
    candidate's URL that started after it became primary; target < 30 s), each client's write
    unavailability and refusals, acknowledged pushes missing on the new primary (zero loss,
    DESIGN §10), replicas secondary-2 re-synced from scratch (target 0), its ReplicateRepository
    RPCs, the promotion's own wait and the time until every site agrees on the new primary.
(2) unplanned failover: concurrent pushers through the primary's URL, the primary killed (-9)
    while they push, the force preview's gap (the RPO in events), the forced promotion, the
    acknowledged pushes the new primary lacks (what that RPO costs), when the surviving sites
    agree on the new primary, and the time from the kill to the first push acknowledged
    through secondary-1.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.common import (
    CACHE_DIR,
    Options,
    git,
    log,
    print_foreign_warning,
    print_table,
    run_area,
)
from bench.geo import (
    Account,
    GeoProject,
    advertised,
    checked_git,
    distribution_ms,
    git_client,
    new_account,
    run_git,
    seeded_project,
    wait_state,
)
from bench.promotion import RoleWatch, admin, promote
from bench.pushers import Pusher, pusher, pushing, unavailability, wait_first_ack
from bench.sites import kept_logs, repository_dir
from geogit.common.geo_coordination import PromotionOut
from geogit.common.tansu import TansuBroker
from geogit.devstack.api import AdminApi
from geogit.devstack.site import Site
from geogit.devstack.testing import FAST_GEO, running_sites

TARGET_FAILOVER_S = 30.0
TARGET_RESYNCED = 0
TARGET_LOST_PLANNED = 0  # DESIGN §10: a planned failover loses nothing
PLANNED_PROJECTS, PLANNED_PROJECTS_QUICK = 100, 10
RPO_PUSHERS, RPO_PUSHERS_QUICK = 20, 5
RPO_PUSHING_S, RPO_PUSHING_S_QUICK = 10.0, 5.0
HISTORY_COMMITS = 3  # each project's small pushed history
CREATE_THREADS = 8  # project creation: enough to keep the primary busy, not swamped
WARM_S = 3.0  # pushes acknowledged as usual before the promotion
SETTLED_S = 2.0  # pushes kept going once every client had one acknowledged after the switch
SETTLE_TIMEOUT_S = 180.0
AGREE_TIMEOUT_S = 60.0  # (2): how long the surviving sites are given to agree
REPLICA_TIMEOUT_S = 300.0
FAILOVER_ENV = {"GEOGIT_GEO_PEER_CHECK_SECONDS": "1", "GEOGIT_SITE_POLL_SECONDS": "1"}
LOGS_KEPT = CACHE_DIR / "failover-logs"  # the sites' logs of the last run


# Repositories on a site's disk, and what its storage says it did ----------------------------


def inodes(site: Site, projects: Sequence[GeoProject]) -> dict[int, int]:
    """Project id -> inode of its repository directory: a replica re-synced from scratch is
    built aside and renamed in, so its inode changes; an incremental fetch keeps it."""
    return {p.id: os.stat(repository_dir(site, p.id)).st_ino for p in projects}


def on_branch(site: Site, project_id: int, commit: str) -> bool:
    """Whether a branch of the site's repository holds `commit` (read on disk: the question
    is what the site has, not what it would serve)."""
    done = run_git(
        "--git-dir",
        str(repository_dir(site, project_id)),
        "branch",
        "--contains",
        commit,
        "--format=%(refname)",
    )
    return done.returncode == 0 and bool(done.stdout.strip())


def branch_tips(site: Site, project_id: int) -> dict[str, str]:
    """Ref name -> object id of every branch of the site's repository, from disk."""
    output = git(
        "--git-dir",
        str(repository_dir(site, project_id)),
        "for-each-ref",
        "--format=%(objectname) %(refname)",
        "refs/heads/",
    )
    return {name: oid for oid, name in (line.split(" ", 1) for line in output.splitlines())}


def replicate_rpcs(site: Site) -> int:
    """ReplicateRepository RPCs the site's storage has handled, every status code summed."""
    response = httpx.get(f"{site.storage_ops_url}/metrics", timeout=10, trust_env=False)
    response.raise_for_status()
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
            if sample.name == "geogit_storage_rpc_total"
            and sample.labels.get("method") == "ReplicateRepository"
        )
    )


def serves_refs(
    site: Site, project: GeoProject, account: Account, wanted: Mapping[str, str]
) -> bool:
    """Served from the site's own replica, with every ref of `wanted` at its object id."""
    with git_client(account) as client:
        try:
            response = client.get(project.refs_url(site), params={"service": "git-upload-pack"})
        except httpx.HTTPError:
            return False
    if response.status_code != 200 or response.headers.get("Geogit-Route") != "local":
        return False
    refs = advertised(response.content)
    return all(refs.get(name) == oid for name, oid in wanted.items())


def wait_serving(
    site: Site, project: GeoProject, account: Account, wanted: Mapping[str, str]
) -> float:
    """Seconds until the site serves `wanted` locally: only then is a replica's inode final."""
    started = time.monotonic()
    while not serves_refs(site, project, account, wanted):
        if time.monotonic() - started > REPLICA_TIMEOUT_S:
            raise RuntimeError(
                f"{site.name} does not serve {project.full_path} locally at the new primary's"
                f" branches after {REPLICA_TIMEOUT_S:.0f} s"
            )
        time.sleep(0.2)
    return time.monotonic() - started


# Deployment and data -------------------------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    primary: Site
    first: Site
    second: Site
    token: str

    @property
    def sites(self) -> list[Site]:
        return [self.primary, self.first, self.second]


@contextmanager
def failover_sites(tmp: Path) -> Iterator[Deployment]:
    """A broker of our own, the primary and two secondaries; their logs are kept afterwards."""
    base = tmp / "sites"
    with (
        kept_logs(base, LOGS_KEPT),
        TansuBroker() as broker,
        running_sites(base, broker.bootstrap, secondaries=2, extra_env=FAILOVER_ENV) as (
            primary,
            (first, second),
            credentials,
        ),
    ):
        yield Deployment(primary, first, second, credentials.token)


def seed(
    api: AdminApi, owner: Account, d: Deployment, prefix: str, count: int, work: Path
) -> list[GeoProject]:
    """`count` projects with a small pushed history, each served locally by both secondaries
    before anything is measured: a failover moves authority, not a backlog of replication."""
    scratch = work / f"{prefix}.git"
    checked_git("init", "-q", "--bare", str(scratch))
    log(f"{count} projects of {HISTORY_COMMITS} commits each, replicated to both secondaries")
    with ThreadPoolExecutor(CREATE_THREADS) as pool:
        seeded = list(
            pool.map(
                lambda i: seeded_project(
                    api, owner, d.primary, scratch, f"{prefix}-{i:03d}", HISTORY_COMMITS
                ),
                range(count),
            )
        )
    for site in (d.first, d.second):
        for project, tip in seeded:
            wait_state(site, project, owner, tip, "current", REPLICA_TIMEOUT_S)
    return [project for project, _ in seeded]


# (1) Planned failover and fail back ----------------------------------------------------------


@dataclass(frozen=True)
class Switch:
    """One planned promotion: who becomes primary, who was, who only follows."""

    label: str
    candidate: Site
    old: Site
    follower: Site


def settle(switch: Switch, watch: RoleWatch, clients: Sequence[Pusher]) -> None:
    """Until every site agrees and every client had a push acknowledged that started after
    the candidate became primary, then SETTLED_S more; a switch that never settles fails."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while not (
        watch.agreed is not None
        and watch.became_primary is not None
        and all(p.first_ack_after(watch.became_primary) for p in clients)
    ):
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{switch.label}: not settled after {SETTLE_TIMEOUT_S:.0f} s (primary at"
                f" {watch.became_primary}, agreed at {watch.agreed},"
                f" {[unavailability(p) for p in clients]})"
            )
        time.sleep(0.1)
    time.sleep(SETTLED_S)


def planned(
    switch: Switch, d: Deployment, owner: Account, projects: Sequence[GeoProject], work: Path
) -> dict[str, Any]:
    """One planned promotion under two pushing clients, one through each switching site."""
    target = projects[0]
    clients = [
        pusher(f"{switch.label}-via-{site.name}", site, target, owner, work)
        for site in (switch.old, switch.candidate)
    ]
    before, rpcs_before = inodes(switch.follower, projects), replicate_rpcs(switch.follower)
    log(f"{switch.label}: 2 clients pushing every 100 ms; promoting {switch.candidate.name}")
    with RoleWatch(switch.candidate, d.sites, d.token) as watch, pushing(clients):
        time.sleep(WARM_S)
        sent, sent_at = time.monotonic(), time.time()
        result = promote(switch.candidate, d.token, "planned")
        answered = time.monotonic()
        settle(switch, watch, clients)
    tips = branch_tips(switch.candidate, target.id)
    caught_up_s = wait_serving(switch.follower, target, owner, tips)
    changed = [pid for pid, ino in inodes(switch.follower, projects).items() if before[pid] != ino]
    assert watch.became_primary is not None and watch.agreed is not None
    ack = clients[1].first_ack_after(watch.became_primary)
    assert ack is not None
    lost = [
        r.commit
        for p in clients
        for r in p.acknowledged
        if not on_branch(switch.candidate, target.id, r.commit)
    ]
    return {
        "label": switch.label,
        "candidate": switch.candidate.name,
        "promote_sent_at": datetime.fromtimestamp(sent_at, UTC).isoformat(timespec="milliseconds"),
        "failover_s": round(ack.finished - sent, 2),
        "became_primary_s": round(watch.became_primary - sent, 2),
        "promote_answered_s": round(answered - sent, 2),
        **promotion_fields(result),
        "all_agree_s": round(watch.agreed - sent, 2),
        "clients": [unavailability(p) for p in clients],
        "lost_acknowledged": len(lost),
        "lost_commits": lost[:10],
        "follower": switch.follower.name,
        "resynced": len(changed),
        "resynced_projects": changed[:10],
        "replicate_rpcs": replicate_rpcs(switch.follower) - rpcs_before,
        "follower_caught_up_s": round(caught_up_s, 2),
    }


def measure_planned(
    api: AdminApi, owner: Account, d: Deployment, count: int, work: Path
) -> list[dict[str, Any]]:
    projects = seed(api, owner, d, "planned", count, work)
    return [
        planned(Switch("failover", d.first, d.primary, d.second), d, owner, projects, work),
        planned(Switch("failback", d.primary, d.first, d.second), d, owner, projects, work),
    ]


# (2) Unplanned failover ----------------------------------------------------------------------


def loss(
    d: Deployment, clients: Sequence[Pusher], projects: Sequence[GeoProject], killed: float
) -> dict[str, Any]:
    """Acknowledged pushes whose commit no branch of the new primary's (secondary-1's)
    repository holds: what the RPO cost, with how long before the kill began each was
    acknowledged (the replicas' lag; the kill signals the site's services one after the other,
    so a push may still be acknowledged while it runs), and how many of them a branch of
    secondary-2's replica holds at that moment (refs/geogit/diverged/ is not a branch)."""
    lost = [
        (p.name, project, r)
        for p, project in zip(clients, projects, strict=True)
        for r in p.acknowledged
        if not on_branch(d.first, project.id, r.commit)
    ]
    return {
        "lost_acknowledged": len(lost),
        "lost_on_secondary_2": sum(on_branch(d.second, pr.id, r.commit) for _, pr, r in lost),
        "lost_oldest_before_kill_s": round(
            max((killed - r.finished for _, _, r in lost), default=0), 2
        ),
        "lost": [
            {
                "client": name,
                "commit": r.commit,
                "acked_s_before_kill": round(killed - r.finished, 2),
            }
            for name, _, r in lost[:10]
        ],
    }


def pushes_around(clients: Sequence[Pusher], killed: float) -> dict[str, Any]:
    """The pushers' record: acknowledged, refused before the kill (a refusal there is the
    system's, not the kill's) with their messages, and cut off by the kill."""
    records = [r for p in clients for r in p.records]
    before = [r for r in records if not r.ok and r.finished < killed]
    return {
        "pushes": len(records),
        "acknowledged": sum(r.ok for r in records),
        "acknowledged_after_kill": sum(r.ok and r.finished >= killed for r in records),
        "refused_before_kill": len(before),
        "refused_before_kill_messages": sorted({r.message for r in before}),
        "cut_by_kill": sum(not r.ok and r.started < killed <= r.finished for r in records),
        "started_after_kill": sum(r.started >= killed for r in records),
        "acknowledged_push_ms": distribution_ms([r.finished - r.started for r in records if r.ok]),
    }


def promotion_fields(result: PromotionOut) -> dict[str, Any]:
    """What both scenarios report of the promote answer."""
    return {
        "waited_seconds": result.waited_seconds,
        "epoch": result.epoch,
        "after_seq": result.after_seq,
        "followers": [f.model_dump() for f in result.followers],
    }


def since(moment: float | None, origin: float) -> float | None:
    return None if moment is None else round(moment - origin, 2)


def measure_unplanned(
    api: AdminApi, owner: Account, d: Deployment, count: int, seconds: float, work: Path
) -> dict[str, Any]:
    """Kill -9 the primary under `count` pushers; force-promote secondary-1; count the loss.
    The broker stays up: only the primary's region is lost."""
    projects = seed(api, owner, d, "rpo", count, work)
    clients = [pusher(f"rpo-{i:02d}", d.primary, p, owner, work) for i, p in enumerate(projects)]
    probe = pusher("after-kill", d.first, projects[0], owner, work)
    with admin(d.first, d.token) as candidate:
        first_id = candidate.site_state().site_id
        log(f"unplanned: {count} clients pushing every 100 ms for {seconds:.0f} s, then kill -9")
        with pushing(clients):
            time.sleep(seconds)
            killed, killed_at = time.monotonic(), time.time()
            d.primary.stop(kill=True)
            kill_s = time.monotonic() - killed
            for c in clients:  # joined on the way out, while the candidate is asked
                c.halt()
            with RoleWatch(d.first, [d.first, d.second], d.token) as watch, pushing([probe]):
                preview = candidate.promotion_preview(first_id, "force")
                previewed = time.monotonic()
                result = promote(d.first, d.token, "force")
                promoted = time.monotonic()
                recovered = wait_first_ack(probe, SETTLE_TIMEOUT_S)
                watch.wait_agreed(AGREE_TIMEOUT_S)
    return {
        "pushers": count,
        "pushing_s": seconds,
        "killed_at": datetime.fromtimestamp(killed_at, UTC).isoformat(timespec="milliseconds"),
        "kill_s": round(kill_s, 2),
        **pushes_around(clients, killed),
        "gap": preview.gap,
        "candidate_seq": preview.candidate_seq,
        "highest_seen_seq": preview.highest_seen_seq,
        "projects_behind": preview.projects_behind_count,
        "pushes_behind": preview.pushes_behind,
        "projects_behind_sample": [b.model_dump() for b in preview.projects_behind[:5]],
        "preview_sites": [s.model_dump() for s in preview.sites],
        "preview_answered_s": round(previewed - killed, 2),
        "promote_answered_s": round(promoted - killed, 2),
        **promotion_fields(result),
        **loss(d, clients, projects, killed),
        "first_ack_after_kill_s": round(recovered.finished - killed, 2),
        "became_primary_s": since(watch.became_primary, killed),
        "survivors_agree_s": since(watch.agreed, killed),
        "probe": unavailability(probe),
    }


# The run -------------------------------------------------------------------------------------


def run(options: Options) -> dict[str, Any]:
    return run_area(
        options,
        lambda _: run_sites(options),
        report,
        extra={"settings": {**FAST_GEO, **FAILOVER_ENV}},
    )


def run_sites(options: Options) -> dict[str, Any]:
    """Both scenarios on one deployment: the unplanned one starts after the fail back, with
    the original layout again (epoch 3), and ends it (the primary is killed)."""
    quick = options.quick
    CACHE_DIR.mkdir(parents=True, exist_ok=True)  # no cached repository made it
    with (
        tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="failover-") as tmp,
        failover_sites(Path(tmp)) as d,
        admin(d.primary, d.token) as api,
    ):
        work = Path(tmp) / "work"
        work.mkdir()
        owner = new_account(api)
        switches = measure_planned(
            api, owner, d, PLANNED_PROJECTS_QUICK if quick else PLANNED_PROJECTS, work
        )
        unplanned = measure_unplanned(
            api,
            owner,
            d,
            RPO_PUSHERS_QUICK if quick else RPO_PUSHERS,
            RPO_PUSHING_S_QUICK if quick else RPO_PUSHING_S,
            work,
        )
    return {
        "git_version": git("--version").strip(),
        "cpus": os.cpu_count(),
        "projects": PLANNED_PROJECTS_QUICK if quick else PLANNED_PROJECTS,
        "planned": switches,
        "unplanned": unplanned,
        "targets": targets(switches),
    }


def targets(switches: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each target with the worst figure of the two switches and whether it was met."""
    worst_failover = max(s["failover_s"] for s in switches)
    resynced = max(s["resynced"] for s in switches)
    lost = sum(s["lost_acknowledged"] for s in switches)
    return {
        "failover_s": {
            "target": f"< {TARGET_FAILOVER_S:.0f}",
            "worst": worst_failover,
            "met": worst_failover < TARGET_FAILOVER_S,
        },
        "resynced_on_follower": {
            "target": TARGET_RESYNCED,
            "worst": resynced,
            "met": resynced <= TARGET_RESYNCED,
        },
        "planned_lost_acknowledged": {
            "target": TARGET_LOST_PLANNED,
            "worst": lost,
            "met": lost <= TARGET_LOST_PLANNED,
        },
    }


# Report --------------------------------------------------------------------------------------


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def report(r: dict[str, Any]) -> None:
    load = r["load_average"]
    print(
        f"\nfailover benchmark: 3 sites, {r['git_version']}, {r['cpus']} CPUs, one run,"
        f" load average {load['before']} before, {load['after']} after"
    )
    print(f"settings: {r['settings']}\n")
    report_planned(r["planned"], r["projects"], r["targets"])
    report_unplanned(r["unplanned"])
    print_foreign_warning(r, lead="\n")


def report_planned(switches: Sequence[dict[str, Any]], projects: int, t: Mapping[str, Any]) -> None:
    print(
        f"(1) planned: {projects} projects replicated to both secondaries; 2 clients pushing"
        " every 100 ms, one through each switching site"
    )
    print_table(
        ["s from the promote POST", *(f"{s['label']} -> {s['candidate']}" for s in switches)],
        [
            [label, *(f"{s[key]:.2f}" for s in switches)]
            for label, key in (
                ("candidate says it is primary", "became_primary_s"),
                ("promote answered", "promote_answered_s"),
                ("promote's waited_seconds", "waited_seconds"),
                ("every site agrees on the new primary", "all_agree_s"),
                ("failover time (first ack through the candidate)", "failover_s"),
            )
        ],
    )
    print()
    print_table(
        [
            "switch",
            "client",
            "pushes",
            "acked",
            "refused",
            "unavailable s",
            "acked push ms p50/max",
        ],
        [
            [
                s["label"],
                c["client"],
                str(c["pushes"]),
                str(c["acknowledged"]),
                str(c["refused"]),
                "never recovered" if c["unavailable_s"] is None else f"{c['unavailable_s']:.2f}",
                push_ms(c["acknowledged_push_ms"]),
            ]
            for s in switches
            for c in s["clients"]
        ],
    )
    for s in switches:
        for c in s["clients"]:
            for message in c["messages"]:
                print(f"  {c['client']} refused: {message}")
        print(
            f"{s['label']}: lost acknowledged pushes {s['lost_acknowledged']};"
            f" {s['follower']}: {s['resynced']} replicas re-synced from scratch,"
            f" {s['replicate_rpcs']} ReplicateRepository RPCs, caught up"
            f" {s['follower_caught_up_s']:.1f} s after the clients stopped;"
            f" epoch {s['epoch']} after seq {s['after_seq']}; {followed(s['followers'])}"
        )
    failover, resynced, lost = (
        t["failover_s"],
        t["resynced_on_follower"],
        t["planned_lost_acknowledged"],
    )
    print(
        f"failover time worst {failover['worst']:.2f} s (target {failover['target']} s:"
        f" {verdict(failover['met'])}); re-synced worst {resynced['worst']} (target"
        f" {resynced['target']}: {verdict(resynced['met'])}); lost acknowledged {lost['worst']}"
        f" (target {lost['target']}: {verdict(lost['met'])})\n"
    )


def followed(followers: Sequence[Mapping[str, Any]]) -> str:
    """The promotion's own word on each other site."""
    return ", ".join(
        f"{f['site']} {'followed' if f['followed'] else 'did not follow: ' + f['error']}"
        for f in followers
    )


def seconds(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else f"not within {AGREE_TIMEOUT_S:.0f} s"


def push_ms(d: Mapping[str, float]) -> str:
    return f"{d['p50']:.0f}/{d['max']:.0f}" if d else ""


def report_unplanned(u: Mapping[str, Any]) -> None:
    print(
        f"(2) unplanned: {u['pushers']} clients pushing every 100 ms through the primary for"
        f" {u['pushing_s']:.0f} s ({u['pushes']} pushes, {u['acknowledged']} acknowledged),"
        f" then kill -9 of the primary; broker left running"
    )
    print_table(
        ["", "value"],
        [
            ["force preview: gap (RPO, events)", str(u["gap"])],
            ["force preview: pushes not yet in the candidate's replicas", str(u["pushes_behind"])],
            ["force preview: projects whose replica is behind", str(u["projects_behind"])],
            [
                "force preview: candidate_seq / highest_seen_seq",
                f"{u['candidate_seq']} / {u['highest_seen_seq']}",
            ],
            ["preview answered, s after the kill", f"{u['preview_answered_s']:.2f}"],
            ["promote answered, s after the kill", f"{u['promote_answered_s']:.2f}"],
            ["promote's waited_seconds", f"{u['waited_seconds']:.2f}"],
            ["secondary-1 says it is primary, s after the kill", seconds(u["became_primary_s"])],
            ["secondary-1 and -2 agree on it, s after the kill", seconds(u["survivors_agree_s"])],
            ["acknowledged pushes lost (not on secondary-1)", str(u["lost_acknowledged"])],
            ["of those, on a branch of secondary-2's replica", str(u["lost_on_secondary_2"])],
            [
                "oldest lost push, acknowledged s before the kill began",
                f"{u['lost_oldest_before_kill_s']:.2f}",
            ],
            [
                "first ack through secondary-1, s after the kill",
                f"{u['first_ack_after_kill_s']:.2f}",
            ],
        ],
    )
    print(f"epoch {u['epoch']} after seq {u['after_seq']}; {followed(u['followers'])}")
    print(
        f"pushes refused before the kill: {u['refused_before_kill']}"
        f" {u['refused_before_kill_messages']}; cut off by the kill: {u['cut_by_kill']};"
        f" started after it (before the pushers stopped): {u['started_after_kill']};"
        f" acknowledged after it: {u['acknowledged_after_kill']}; acknowledged push ms"
        f" p50/max {push_ms(u['acknowledged_push_ms'])}; the kill took {u['kill_s']:.2f} s"
    )
    for lost in u["lost"]:
        print(
            f"  lost: {lost['client']} {lost['commit'][:12]}, acknowledged"
            f" {lost['acked_s_before_kill']:.2f} s before the kill began (< 0: while it ran)"
        )
