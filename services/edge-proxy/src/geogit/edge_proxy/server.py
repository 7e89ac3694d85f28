"""geogit-edge-proxy: builds the app and runs it under uvicorn until SIGTERM.

Lifecycle: serving → draining (SIGTERM/SIGINT: the listener closes, idle keep-alive
connections close, in-flight requests such as a long clone get up to
GEOGIT_SHUTDOWN_GRACE_SECONDS) → lifespan shutdown closes the pooled clients → exit 0.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
from collections.abc import Iterator

import uvicorn

from geogit.common.http_listener import listener_limits, uvicorn_options
from geogit.common.logging import configure_logging
from geogit.edge_proxy.app import create_app
from geogit.edge_proxy.config import EdgeProxySettings


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's version re-raises the signal after the drain, so a clean drain would still
        end in death by SIGTERM; here the signal only starts the drain and the exit is 0."""
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def build_server(settings: EdgeProxySettings) -> uvicorn.Server:
    host, port = settings.host_and_port
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        ws="none",
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),
        # The app refuses big heads with a clear 414/431; the listener's 431 is the hard stop.
        **uvicorn_options(
            listener_limits(settings, settings.max_header_bytes + settings.max_url_bytes + 1024)
        ),
    )
    return _Server(config)


def main() -> None:
    try:
        settings = EdgeProxySettings()
        server = build_server(settings)
    except ValueError as exc:  # bad or missing settings: say which, without a traceback
        raise SystemExit(f"geogit-edge-proxy: {exc}") from exc
    configure_logging("edge-proxy", settings.log_level)
    # httpx logs every call at INFO; the access log already says what each request did.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    server.run()


if __name__ == "__main__":
    main()
