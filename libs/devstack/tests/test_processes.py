"""The supervisor against real child processes: start, readiness, stop, and what it refuses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from geogit.common.net import free_port
from geogit.devstack.probes import HttpProbe
from geogit.devstack.processes import ProcessError, ProcessRecord, Supervisor
from geogit.devstack.procfs import Identity, identity_of


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def http_server(port: int) -> list[str]:
    return [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]


def sleeper() -> tuple[subprocess.Popen[bytes], Identity]:
    """A `sleep 30` and its identity, once /proc shows its command line: read at once after
    the spawn, a loaded kernel may still show it empty."""
    process = subprocess.Popen(["sleep", "30"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        identity = identity_of(process.pid)
        if identity is not None and identity.cmdline == ("sleep", "30"):
            return process, identity
        time.sleep(0.01)
    process.kill()
    raise AssertionError("sleep never showed its command line")


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while identity_of(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_start_waits_for_readiness_and_stop_terminates(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path)
    port = free_port()
    record = supervisor.start(
        "web", http_server(port), os.environ, HttpProbe(f"http://127.0.0.1:{port}/")
    )

    assert record.is_running()
    assert record.identity.cmdline == tuple(http_server(port))
    saved = json.loads((tmp_path / "pids" / "web.json").read_text())
    assert saved["pid"] == record.pid and saved["probe"] == {"http": f"http://127.0.0.1:{port}/"}
    assert os.getpgid(record.pid) == record.pid  # its own session, immune to the shell's Ctrl-C

    result = supervisor.stop("web")
    assert result.outcome == "stopped"
    assert identity_of(record.pid) is None
    assert supervisor.records() == []


def test_another_shell_stops_what_up_started(tmp_path: Path) -> None:
    """`up` exits after starting; a new process with only the run dir stops the child."""
    port = free_port()
    starter = f"""
import os, sys
from pathlib import Path
from geogit.devstack.probes import HttpProbe
from geogit.devstack.processes import Supervisor
record = Supervisor(Path({str(tmp_path)!r})).start(
    "web", {http_server(port)!r}, os.environ, HttpProbe("http://127.0.0.1:{port}/"))
print(record.pid)
"""
    pid = int(subprocess.run(python(starter), capture_output=True, check=True).stdout)
    assert identity_of(pid) is not None  # outlived the process that started it

    results = Supervisor(tmp_path).stop_all()

    assert [(r.name, r.pid, r.outcome) for r in results] == [("web", pid, "stopped")]
    assert wait_gone(pid)


def test_stop_all_goes_in_reverse_start_order(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path)
    for name in ("first", "second", "third"):
        supervisor.start(name, python("import time; time.sleep(60)"), os.environ, probe=None)
    assert [r.name for r in supervisor.stop_all()] == ["third", "second", "first"]


def test_refuses_to_kill_a_pid_whose_command_line_does_not_match(tmp_path: Path) -> None:
    bystander, identity = sleeper()
    try:
        supervisor = Supervisor(tmp_path)
        supervisor.pids_dir.mkdir(parents=True)
        forged = ProcessRecord(
            name="web",
            pid=bystander.pid,
            identity=Identity(("python", "-m", "geogit.storage.server"), identity.start_ticks),
            log_path=tmp_path / "web.log",
            probe=None,
            order=1,
        )
        (supervisor.pids_dir / "web.json").write_text(json.dumps(forged.to_json()))

        result = supervisor.stop("web")

        assert result.outcome == "refused"
        assert "sleep 30" in result.detail
        assert bystander.poll() is None  # untouched
        assert supervisor.record("web") is None  # the stale record is dropped
    finally:
        bystander.kill()
        bystander.wait()


def test_refuses_a_recycled_pid_with_the_same_command_line(tmp_path: Path) -> None:
    """Same command line, other start time: a different process that reused the pid."""
    bystander, identity = sleeper()
    try:
        supervisor = Supervisor(tmp_path)
        supervisor.pids_dir.mkdir(parents=True)
        earlier = Identity(identity.cmdline, identity.start_ticks - 1000)
        record = ProcessRecord("sleeper", bystander.pid, earlier, tmp_path / "x.log", None, 1)
        (supervisor.pids_dir / "sleeper.json").write_text(json.dumps(record.to_json()))

        assert supervisor.stop("sleeper").outcome == "refused"
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_readiness_timeout_quotes_the_log_and_leaves_nothing_running(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path)
    code = "print('warming up the flux capacitor', flush=True); import time; time.sleep(60)"
    probe = HttpProbe(f"http://127.0.0.1:{free_port()}/-/readiness")

    with pytest.raises(ProcessError) as failure:
        supervisor.start("slow", python(code), os.environ, probe, timeout=1.0)

    message = str(failure.value)
    assert "slow not ready after 1s" in message
    assert "warming up the flux capacitor" in message
    assert supervisor.records() == []
    assert not [p for p in Path("/proc").glob("[0-9]*") if _runs(p, "flux capacitor")]


def test_early_exit_reports_the_status_and_only_this_run_of_the_log(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path)
    supervisor.log_path("crash").parent.mkdir(parents=True)
    supervisor.log_path("crash").write_text("output of an earlier run\n")
    code = "import sys; print('cannot bind: address in use', file=sys.stderr); sys.exit(3)"
    probe = HttpProbe(f"http://127.0.0.1:{free_port()}/")

    with pytest.raises(ProcessError) as failure:
        supervisor.start("crash", python(code), os.environ, probe, timeout=10)

    message = str(failure.value)
    assert "status 3" in message and "cannot bind: address in use" in message
    assert "earlier run" not in message


def test_sigterm_ignored_means_sigkill_after_the_grace(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path, grace_seconds=0.5)
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        " print('handler', 'installed', flush=True); time.sleep(60)"
    )
    record = supervisor.start("stubborn", python(code), os.environ, probe=None)
    # Signalled only once the handler is installed, however slowly the interpreter starts.
    deadline = time.monotonic() + 30
    while "handler installed" not in supervisor.log_path("stubborn").read_text():
        assert time.monotonic() < deadline, "the child never installed its handler"
        time.sleep(0.05)

    assert supervisor.stop("stubborn").outcome == "killed"
    assert identity_of(record.pid) is None


def test_stop_takes_down_what_the_child_left_in_its_group(tmp_path: Path) -> None:
    grandchild_file = tmp_path / "grandchild.pid"
    code = f"""
import pathlib, signal, subprocess, sys, time
child = subprocess.Popen(["sleep", "60"])
pathlib.Path({str(grandchild_file)!r}).write_text(str(child.pid))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # exits, orphaning the sleep
time.sleep(60)
"""
    supervisor = Supervisor(tmp_path)
    supervisor.start("parent", python(code), os.environ, probe=None)
    deadline = time.monotonic() + 10
    while not grandchild_file.exists() or not grandchild_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    grandchild = int(grandchild_file.read_text())

    assert supervisor.stop("parent").outcome == "stopped"
    assert wait_gone(grandchild)


def test_status_of_a_dead_child_is_not_running(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path)
    record = supervisor.start("brief", python("import time; time.sleep(60)"), os.environ, None)
    os.kill(record.pid, signal.SIGKILL)
    assert wait_gone(record.pid)

    assert not record.is_running()
    assert supervisor.forget_dead() == ["brief"]
    assert supervisor.stop("brief").outcome == "not running"


def _runs(proc: Path, needle: str) -> bool:
    try:
        return needle.encode() in (proc / "cmdline").read_bytes()
    except OSError:
        return False


def test_a_wrapper_that_execs_the_real_program_is_recorded_as_that_program(
    tmp_path: Path,
) -> None:
    port = free_port()
    wrapper = ["sh", "-c", f"sleep 0.2; exec {' '.join(http_server(port))}"]
    supervisor = Supervisor(tmp_path)
    record = supervisor.start("web", wrapper, os.environ, HttpProbe(f"http://127.0.0.1:{port}/"))

    assert record.identity.cmdline == tuple(http_server(port))
    assert supervisor.stop("web").outcome == "stopped"
