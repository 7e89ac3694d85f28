"""Test and benchmark support: run the real geogit-edge-proxy process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from geogit.common.net import free_port


class EdgeProxyProcess:
    def __init__(
        self,
        log_dir: Path,
        internal_api_url: str,
        internal_api_secret: str,
        site_name: str = "primary",
        **settings: str,
    ) -> None:
        """`settings` are extra GEOGIT_* variables, named by field (`shutdown_grace_seconds`)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"edge-proxy-{self.port}.log"
        self.env = {
            **os.environ,
            "GEOGIT_HTTP_ADDRESS": f"127.0.0.1:{self.port}",
            "GEOGIT_INTERNAL_API_URL": internal_api_url,
            "GEOGIT_INTERNAL_API_SECRET": internal_api_secret,
            "GEOGIT_SITE_NAME": site_name,
            **{f"GEOGIT_{name.upper()}": value for name, value in settings.items()},
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait_ready: bool = True) -> None:
        """Start and wait for /-/readiness (or only /-/liveness when the internal API is down)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "geogit.edge_proxy.server"],
                env=self.env,
                stdout=log,
                stderr=log,
            )
        probe = "/-/readiness" if wait_ready else "/-/liveness"
        deadline = time.monotonic() + 20
        while not self.answers(probe):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"edge-proxy did not start:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def answers(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(self.url + path, timeout=2):
                return True
        except OSError:  # HTTPError (a non-2xx answer) is an OSError too
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)
