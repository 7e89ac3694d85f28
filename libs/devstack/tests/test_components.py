"""`geogit dev stop|start|restart COMPONENT` on a stack file written as `up` writes it, with
real processes (Tansu, storage, or stand-ins recorded under a service's name) on free ports so
the test runs beside a dev stack."""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

import pytest

from geogit.common.net import free_port
from geogit.devstack.cli import main
from geogit.devstack.components import resolve, stack_sites
from geogit.devstack.credentials import CredentialStore, UserCredentials
from geogit.devstack.layout import RunLayout
from geogit.devstack.ports import SitePorts
from geogit.devstack.processes import Supervisor
from geogit.devstack.procfs import identity_of
from geogit.devstack.site import SERVICES, Site
from geogit.devstack.stack import Stack, read_stack, write_stack

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
STUBBORN = [
    sys.executable,
    "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)",
]


def _stack(run_dir: Path) -> tuple[Site, Site, str]:
    """A primary and a secondary on free ports, recorded as `up` records them; nothing runs."""
    store = CredentialStore(RunLayout(run_dir).secrets_file)
    supervisor = Supervisor(run_dir)
    bootstrap = f"127.0.0.1:{free_port()}"
    primary = Site(
        "primary", "primary", run_dir, SitePorts.free(), "postgresql+asyncpg://x@127.0.0.1/p",
        bootstrap, secrets=store.site("primary"), supervisor=supervisor,
    )  # fmt: skip
    secondary = Site(
        "secondary-1", "secondary", run_dir, SitePorts.free(), "postgresql+asyncpg://x@127.0.0.1/s",
        bootstrap, secrets=store.site("secondary-1"), supervisor=supervisor,
        primary_url=primary.http_url,
    )  # fmt: skip
    admin = UserCredentials("root", uuid.uuid4().hex, "")
    write_stack(RunLayout(run_dir).stack_file, Stack.of([primary, secondary], admin, bootstrap))
    return primary, secondary, bootstrap


def _dev(run_dir: Path, *args: str) -> int:
    return main(["dev", "--run-dir", str(run_dir), *args])


def _status_line(out: str, component: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(f"{component} "))


@pytest.fixture
def external_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stack's databases on some server of the user's: no throwaway cluster to look at."""
    monkeypatch.setenv("GEOGIT_DATABASE_URL", "postgresql+asyncpg://x@127.0.0.1:1/geogit")


@pytest.mark.usefixtures("external_database")
def test_stop_start_and_restart_kafka_and_one_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    primary, _, bootstrap = _stack(tmp_path)
    supervisor = Supervisor(tmp_path)
    try:
        assert _dev(tmp_path, "start", "kafka") == 0
        assert _dev(tmp_path, "start", "primary/storage") == 0
        assert "primary/storage: started" in capsys.readouterr().out
        kafka = supervisor.record("kafka")
        storage = supervisor.record("primary-storage")
        assert kafka is not None and kafka.is_running()
        assert storage is not None and storage.is_running()
        # The same command line and ports as `up`: Tansu on the recorded bootstrap, storage
        # with the site's environment.
        assert f"tcp://{bootstrap}" in kafka.identity.cmdline
        environ = Path(f"/proc/{storage.pid}/environ").read_bytes().split(b"\0")
        assert f"GEOGIT_LISTEN_ADDRESS={primary.storage_address}".encode() in environ

        assert _dev(tmp_path, "status") == 1  # the rest of the stack is stopped
        out = capsys.readouterr().out
        assert "ready" in _status_line(out, "primary-storage")
        assert "stopped" in _status_line(out, "primary/edge-proxy")
        assert "stopped" in _status_line(out, "secondary-1/replicator")

        assert _dev(tmp_path, "stop", "primary/storage") == 0
        assert f"primary-storage (pid {storage.pid}): stopped" in capsys.readouterr().out
        assert not storage.is_running()
        assert supervisor.record("primary-storage") is None
        _dev(tmp_path, "status")
        assert "stopped" in _status_line(capsys.readouterr().out, "primary/storage")

        assert _dev(tmp_path, "stop", "primary/storage") == 0
        assert "was not running" in capsys.readouterr().out

        assert _dev(tmp_path, "restart", "kafka") == 0
        out = capsys.readouterr().out
        assert f"kafka (pid {kafka.pid}): stopped" in out and "kafka: started" in out
        restarted = supervisor.record("kafka")
        assert restarted is not None and restarted.is_running() and restarted.pid != kafka.pid
        assert restarted.identity.cmdline == kafka.identity.cmdline
    finally:
        supervisor.stop_all()
    assert supervisor.records() == []


@pytest.mark.usefixtures("external_database")
def test_starting_what_runs_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _stack(tmp_path)
    supervisor = Supervisor(tmp_path)
    try:
        assert _dev(tmp_path, "start", "kafka") == 0
        before = supervisor.record("kafka")
        assert _dev(tmp_path, "start", "kafka") == 1
        assert "kafka is already running" in capsys.readouterr().err
        assert supervisor.record("kafka") == before
    finally:
        supervisor.stop_all()


UNKNOWN = ["secondary-1/edge", "secondary-1/", "tertiary/storage", "tertiary", "storage", ""]


@pytest.mark.usefixtures("external_database")
@pytest.mark.parametrize("component", UNKNOWN)
def test_unknown_components_are_refused_with_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], component: str
) -> None:
    _stack(tmp_path)
    assert _dev(tmp_path, "stop", component) == 1
    err = capsys.readouterr().err
    assert f"no component {component!r}" in err
    assert "kafka, postgresql, primary, primary/storage" in err
    assert "primary/replicator, secondary-1, secondary-1/storage" in err
    assert Supervisor(tmp_path).records() == []


@pytest.mark.usefixtures("external_database")
def test_an_external_database_is_not_ours_to_stop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _stack(tmp_path)
    assert _dev(tmp_path, "stop", "postgresql") == 1
    assert "stop and start that server yourself" in capsys.readouterr().err


@pytest.mark.parametrize("action", ["stop", "start", "restart"])
def test_components_of_a_stack_that_is_not_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], action: str
) -> None:
    assert _dev(tmp_path, action, "kafka") == 1
    assert "the dev stack is not up" in capsys.readouterr().err
    assert not (tmp_path / "pids").exists()
    assert os.listdir(tmp_path) == []


def _resolved(run_dir: Path, name: str) -> list[str]:
    stack = read_stack(RunLayout(run_dir).stack_file)
    supervisor = Supervisor(run_dir)
    store = CredentialStore(RunLayout(run_dir).secrets_file)
    sites = stack_sites(stack, supervisor, store)
    return [component.name for component in resolve(name, stack, sites, supervisor, None)]


def test_a_site_name_stands_for_all_its_services_in_start_order(tmp_path: Path) -> None:
    _stack(tmp_path)
    assert _resolved(tmp_path, "primary") == [f"primary/{service}" for service in SERVICES]
    assert _resolved(tmp_path, "secondary-1")[-1] == "secondary-1/replicator"
    assert _resolved(tmp_path, "primary/replicator") == ["primary/replicator"]
    assert _resolved(tmp_path, "kafka") == ["kafka"]


def _stand_ins(supervisor: Supervisor, site: str, argv: list[str] = SLEEPER) -> None:
    """A process recorded under each of the site's service names, in start order."""
    for service in SERVICES:
        supervisor.start(f"{site}-{service}", argv, os.environ, None)


@pytest.mark.usefixtures("external_database")
def test_stopping_a_site_stops_its_services_last_started_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _stack(tmp_path)
    supervisor = Supervisor(tmp_path)
    try:
        _stand_ins(supervisor, "primary")
        supervisor.start("secondary-1-storage", SLEEPER, os.environ, None)

        assert _dev(tmp_path, "stop", "primary") == 0

        lines = capsys.readouterr().out.splitlines()
        assert [line.split(" ")[0] for line in lines] == [
            f"primary-{service}" for service in reversed(SERVICES)
        ]
        assert all(line.endswith(": stopped") for line in lines)
        assert [record.name for record in supervisor.records()] == ["secondary-1-storage"]
    finally:
        supervisor.stop_all()


@pytest.mark.usefixtures("external_database")
def test_kill_does_not_wait_for_a_process_that_ignores_sigterm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _stack(tmp_path)
    supervisor = Supervisor(tmp_path)  # its grace is 15 s
    try:
        _stand_ins(supervisor, "secondary-1", STUBBORN)
        records = supervisor.records()
        started = time.monotonic()

        assert _dev(tmp_path, "stop", "secondary-1", "--kill") == 0

        assert time.monotonic() - started < 5
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == f"secondary-1-replicator (pid {records[-1].pid}): killed"
        assert len(lines) == len(SERVICES) and all(line.endswith(": killed") for line in lines)
        assert supervisor.records() == []
        # Gone, or on its way out (a dying process has lost its command line already).
        assert all(identity_of(record.pid) != record.identity for record in records)
    finally:
        supervisor.stop_all()


@pytest.fixture
def stand_in_services(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Site.start_service starts a stand-in under the service's name; the starts, in order."""
    started: list[str] = []

    def start_service(site: Site, service: str) -> None:
        site.supervisor.start(site.process_name(service), SLEEPER, os.environ, None)
        started.append(f"{site.name}/{service}")

    monkeypatch.setattr(Site, "start_service", start_service)
    return started


@pytest.mark.usefixtures("external_database")
def test_starting_a_site_starts_what_is_not_running_in_start_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stand_in_services: list[str]
) -> None:
    _stack(tmp_path)
    supervisor = Supervisor(tmp_path)
    try:
        storage = supervisor.start("primary-storage", SLEEPER, os.environ, None)

        assert _dev(tmp_path, "start", "primary") == 0

        assert stand_in_services == [f"primary/{service}" for service in SERVICES[1:]]
        assert capsys.readouterr().out.splitlines() == [
            f"primary/storage: already running (pid {storage.pid})",
            *(f"primary/{service}: started" for service in SERVICES[1:]),
        ]
    finally:
        supervisor.stop_all()


@pytest.mark.usefixtures("external_database")
def test_restarting_a_site_stops_it_whole_then_starts_it_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stand_in_services: list[str]
) -> None:
    _stack(tmp_path)
    supervisor = Supervisor(tmp_path)
    try:
        _stand_ins(supervisor, "secondary-1")
        before = {record.name: record.pid for record in supervisor.records()}

        assert _dev(tmp_path, "restart", "secondary-1") == 0

        lines = capsys.readouterr().out.splitlines()
        assert [line.split(" ")[0] for line in lines[: len(SERVICES)]] == [
            f"secondary-1-{service}" for service in reversed(SERVICES)
        ]
        assert lines[len(SERVICES) :] == [f"secondary-1/{s}: started" for s in SERVICES]
        after = {record.name: record.pid for record in supervisor.records()}
        assert after.keys() == before.keys()
        assert not set(after.values()) & set(before.values())
    finally:
        supervisor.stop_all()
