"""Every stateless service really is stateless (issue 14 item 3): a primary and a secondary,
each with two edge proxies, two SSH gateways and two internal APIs behind HAProxy (one
address per service, as a Kubernetes Service), real processes throughout.

- The stale-read hunter: push through the secondary's one address (over HTTP or SSH, so the
  push lands on the primary through whichever edge or gateway replica HAProxy picked), then at
  once read the ref back through that same address over HTTP and over SSH, which may be
  answered by the other replica of everything: never an older ref than was just pushed.
- Requests land on both replicas of every service (each replica's own /metrics).
- Both gateways present the same host key: the hunter's SSH runs with strict host key
  checking against one known_hosts entry.
- An edge proxy replica killed mid-run: HAProxy routes to the other; nothing fails once the
  health check has seen it gone.
- The primary's two outbox relays published every event once, each aggregate's in order
  (Kafka keeps order per partition, and an aggregate's events share one).
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from e2e import Account, Api, clone_url, git
from geo_support import served_locally, ssh_env, wait_until
from prometheus_client.parser import text_string_to_metric_families

from geogit.common.events import decode_event
from geogit.common.tansu import TansuBroker
from geogit.devstack.balancer import CHECK_INTERVAL_MS, FALL, replica_states
from geogit.devstack.site import Site
from geogit.devstack.testing import running_sites
from geogit.storage.testing import commit_all, make_work_tree

ROUNDS = 30
# HAProxy marks a dead replica down after FALL failed checks CHECK_INTERVAL_MS apart (plus a
# check's own timeout); past that no new request may fail.
DOWN_WITHIN = FALL * CHECK_INTERVAL_MS / 1000 + 1.5


@pytest.fixture(scope="module")
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as tansu:
        yield tansu


@pytest.fixture(scope="module")
def sites(
    tmp_path_factory: pytest.TempPathFactory, broker: TansuBroker
) -> Iterator[tuple[Site, Site, Api]]:
    with running_sites(tmp_path_factory.mktemp("replicas"), broker.bootstrap, replicas=2) as (
        primary,
        (secondary,),
        admin,
    ):
        api = Api(primary.http_url, admin.token)
        yield primary, secondary, api
        api.http.close()


def _counter(url: str, name: str, **labels: str) -> float:
    """The sum of a counter's samples on one replica's /metrics, over the labels given."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != name:
                continue
            if all(sample.labels.get(key) == value for key, value in labels.items()):
                total += sample.value
    return total


def _edge_git_requests(url: str) -> float:
    return sum(
        _counter(url, "geogit_edge_http_requests_total", route=route)
        for route in ("git_info_refs", "git_upload_pack", "git_receive_pack")
    )


def _internal_api_requests(url: str) -> float:
    """Requests other than health checks (HAProxy's and the services' readiness)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "geogit_internal_api_requests_total" and "/-/" not in (
                sample.labels.get("route", "")
            ):
                total += sample.value
    return total


def _known_hosts(site: Site, path: Path) -> None:
    """The site's host keys as one client records them, through the site's one address."""
    scan = subprocess.run(
        ["ssh-keyscan", "-p", str(site.ports.ssh), site.host],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    path.write_text(scan.stdout)


def _host_keys(host: str, port: int) -> set[str]:
    scan = subprocess.run(
        ["ssh-keyscan", "-p", str(port), host], capture_output=True, text=True, timeout=30
    )
    return {" ".join(line.split()[1:]) for line in scan.stdout.splitlines() if line.strip()}


def _strict(env: dict[str, str], known_hosts: Path) -> dict[str, str]:
    command = env["GIT_SSH_COMMAND"]
    command = command.replace("-o StrictHostKeyChecking=no", "-o StrictHostKeyChecking=yes")
    command = command.replace(
        "-o UserKnownHostsFile=/dev/null", f"-o UserKnownHostsFile={known_hosts}"
    )
    return {"GIT_SSH_COMMAND": command}


def _head(tree: Path) -> str:
    return git("rev-parse", "HEAD", cwd=tree).stdout.strip()


def _remote_head(url: str, env: dict[str, str] | None = None) -> str:
    return git("ls-remote", url, "refs/heads/main", env=env).stdout.split()[0]


def _ready_project(
    api: Api, primary: Site, secondary: Site, work: Path
) -> tuple[Account, dict[str, Any], Path, dict[str, str]]:
    """An account with an SSH key, a project pushed to the primary and served locally by the
    secondary, and the SSH environment (strict host key checking) for the secondary."""
    owner = api.account()
    project = api.project(owner)
    tree = make_work_tree(work / "src", commits=2)
    git("push", "-q", clone_url(primary.http_url, project, owner), "main", cwd=tree)
    envs = ssh_env(api, owner, work, [secondary], [secondary])
    known_hosts = work / "known_hosts"
    _known_hosts(secondary, known_hosts)
    wait_until(
        lambda: served_locally(secondary, project, owner, _head(tree)), what="a local replica"
    )
    return owner, project, tree, _strict(envs[secondary], known_hosts)


def test_both_gateways_present_the_same_host_key(sites: tuple[Site, Site, Api]) -> None:
    for site in sites[:2]:
        behind = _host_keys(site.host, site.ports.ssh)
        assert behind, f"no host key from {site.name}'s address"
        for replica in site.replica_ports:
            assert _host_keys(site.host, replica.ssh) == behind


def test_the_stale_read_hunter_sees_no_stale_read_whichever_replica_answers(
    sites: tuple[Site, Site, Api], tmp_path: Path
) -> None:
    primary, secondary, api = sites
    owner, project, tree, ssh = _ready_project(api, primary, secondary, tmp_path)
    http_url = clone_url(secondary.http_url, project, owner)
    ssh_url = f"git@{secondary.host}:{project['path_with_namespace']}.git"
    before = {
        "edge": [_edge_git_requests(url) for url in secondary.replica_urls("edge-proxy")],
        "ssh": [
            _counter(url, "geogit_ssh_connections_total")
            for url in secondary.replica_urls("ssh-gateway")
        ],
        "api": [_internal_api_requests(url) for url in secondary.replica_urls("internal-api")],
        "primary edge": [_edge_git_requests(url) for url in primary.replica_urls("edge-proxy")],
    }
    stale: list[str] = []
    for round_ in range(ROUNDS):
        (tree / "round.txt").write_text(f"round {round_}\n")
        commit_all(tree, f"round {round_}")
        over_ssh = round_ % 2 == 1
        git("push", "-q", ssh_url if over_ssh else http_url, "main", cwd=tree, env=ssh)
        pushed = _head(tree)
        for how, seen in (
            ("http", _remote_head(http_url)),
            ("ssh", _remote_head(ssh_url, env=ssh)),
        ):
            if seen != pushed:
                stale.append(f"round {round_} ({'ssh' if over_ssh else 'http'} push): {how} {seen}")
    assert stale == [], f"{len(stale)} stale reads: {stale}"
    after = {
        "edge": [_edge_git_requests(url) for url in secondary.replica_urls("edge-proxy")],
        "ssh": [
            _counter(url, "geogit_ssh_connections_total")
            for url in secondary.replica_urls("ssh-gateway")
        ],
        "api": [_internal_api_requests(url) for url in secondary.replica_urls("internal-api")],
        "primary edge": [_edge_git_requests(url) for url in primary.replica_urls("edge-proxy")],
    }
    served = {
        what: [a - b for a, b in zip(after[what], before[what], strict=True)] for what in after
    }
    print(f"\nrequests per replica over {ROUNDS} rounds: {served}")
    for what, counts in served.items():
        assert len(counts) == 2 and all(count > 0 for count in counts), (what, counts)


def test_an_edge_proxy_killed_mid_run_costs_nothing_past_the_health_check(
    sites: tuple[Site, Site, Api], tmp_path: Path
) -> None:
    primary, secondary, api = sites
    owner, project, tree, _ = _ready_project(api, primary, secondary, tmp_path)
    http_url = clone_url(secondary.http_url, project, owner)
    failures: list[tuple[float, str]] = []
    reads = 0
    stop = threading.Event()

    def hunt() -> None:
        nonlocal reads
        while not stop.is_set():
            result = git("ls-remote", http_url, "refs/heads/main", check=False)
            reads += 1
            if result.returncode != 0:
                failures.append((time.monotonic(), result.stderr.strip()[-200:]))

    victim = secondary.process_name("edge-proxy-1")
    reader = threading.Thread(target=hunt)
    reader.start()
    killed_at = stale = 0.0
    try:
        for round_ in range(8):
            if round_ == 2:
                secondary.supervisor.stop(victim, kill=True)
                killed_at = time.monotonic()
            (tree / "round.txt").write_text(f"kill round {round_}\n")
            commit_all(tree, f"kill round {round_}")
            pushed = git("push", "-q", http_url, "main", cwd=tree, check=False)
            if pushed.returncode != 0:
                failures.append((time.monotonic(), "push: " + pushed.stderr.strip()[-200:]))
                continue
            read = git("ls-remote", http_url, "refs/heads/main", check=False)
            if read.returncode != 0:
                failures.append((time.monotonic(), read.stderr.strip()[-200:]))
            else:
                stale += read.stdout.split()[0] != _head(tree)
            time.sleep(0.5)
        balancer_saw = replica_states(secondary.balancer_url, "edge-proxy")
    finally:
        stop.set()
        reader.join(60)
        survivor = _edge_git_requests(secondary.replica_urls("edge-proxy")[1])
        secondary.start_service("edge-proxy-1")
    assert balancer_saw == {"edge-proxy-1": "DOWN", "edge-proxy-2": "UP"}
    late = [(at - killed_at, why) for at, why in failures if at - killed_at > DOWN_WITHIN]
    print(
        f"\nedge-proxy-1 killed: {reads} reads, {len(failures)} failed"
        f" ({[round(at - killed_at, 2) for at, _ in failures]} s after the kill);"
        f" the survivor had served {survivor:.0f} git requests"
    )
    assert stale == 0
    assert late == [], late
    assert reads > 20


async def _records(bootstrap: str, topic: str) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            await consumer.topics()
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()
            ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Any] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batches = await consumer.getmany(timeout_ms=1000)
            for batch in batches.values():
                records.extend(decode_event(record.value) for record in batch)
        return records
    finally:
        await consumer.stop()


async def test_two_relays_published_every_event_once_in_order(
    sites: tuple[Site, Site, Api], broker: TansuBroker
) -> None:
    """Both of the primary's internal APIs run the outbox relay; its advisory lock lets one
    publish at a time, so the topics hold each global sequence once, ascending within each
    aggregate."""
    primary, _, api = sites
    api.account()  # at least one event after everything above
    topics = primary.topics
    seen: list[int] = []
    for topic in (topics.domain, topics.repository):
        per_aggregate: dict[str, list[int]] = {}
        for event in await _records(broker.bootstrap, topic):
            per_aggregate.setdefault(event.aggregate_id, []).append(event.global_seq)
            seen.append(event.global_seq)
        for aggregate, sequences in per_aggregate.items():  # what Kafka orders: a partition
            assert sequences == sorted(sequences), (topic, aggregate, sequences)
    assert len(seen) == len(set(seen)), "an event was published twice"
    relayed = [
        _counter(url, "geogit_outbox_published_total")
        for url in primary.replica_urls("internal-api")
    ]
    print(f"\nevents on Kafka: {len(seen)}; published by each primary internal API: {relayed}")
    assert sum(relayed) >= len(seen)  # the primary's own reports are counted there too
