"""`geogit dev stop|start|restart COMPONENT` on a stack file written as `up` writes it, with
real processes (Tansu, storage) on free ports so the test runs beside a dev stack."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from geogit.common.net import free_port
from geogit.devstack.cli import main
from geogit.devstack.credentials import CredentialStore, UserCredentials
from geogit.devstack.layout import RunLayout
from geogit.devstack.ports import SitePorts
from geogit.devstack.processes import Supervisor
from geogit.devstack.site import Site
from geogit.devstack.stack import Stack, write_stack


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
