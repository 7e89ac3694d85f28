"""`geogit dev` as a user meets it, for what needs no running services."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from geogit.devstack.cli import main
from geogit.devstack.layout import LayoutError, repository_root
from geogit.devstack.processes import Supervisor


@pytest.mark.parametrize("count", ["-1", "10"])
def test_secondaries_out_of_range_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], count: str
) -> None:
    assert main(["dev", "--run-dir", str(tmp_path), "up", "--secondaries", count]) == 1
    assert "--secondaries must be 0 to 9" in capsys.readouterr().err
    assert not (tmp_path / "pids").exists()  # nothing started


def test_geo_status_of_a_stack_that_is_not_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--run-dir", str(tmp_path)]) == 1
    assert "not up" in capsys.readouterr().err


def test_status_and_down_of_a_stack_that_is_not_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dev", "--run-dir", str(tmp_path), "status"]) == 3
    assert "down" in capsys.readouterr().out
    assert main(["dev", "--run-dir", str(tmp_path), "down"]) == 0


def test_up_refuses_while_the_stack_is_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    supervisor = Supervisor(tmp_path)
    supervisor.start(
        "kafka", [sys.executable, "-c", "import time; time.sleep(60)"], os.environ, None
    )
    try:
        assert main(["dev", "--run-dir", str(tmp_path), "up"]) == 1
        assert "already up: kafka" in capsys.readouterr().err
        assert main(["dev", "--run-dir", str(tmp_path), "status"]) == 0
        assert "kafka" in capsys.readouterr().out
    finally:
        assert main(["dev", "--run-dir", str(tmp_path), "down"]) == 0
    assert supervisor.records() == []


def test_run_dir_is_at_the_checkout_root(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert repository_root(nested) == tmp_path.resolve()
    with pytest.raises(LayoutError):
        repository_root(Path("/"))


def test_console_script_is_installed() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "geogit"), "dev", "--help"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    assert "up" in result.stdout and "down" in result.stdout and "status" in result.stdout
