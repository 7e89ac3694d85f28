"""An exception no handler takes is a 500 that leaves the keep-alive connection open: the
edge pools its connections to this API, and a closed one became another caller's 502."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from internal_api_support import Database, make_settings

from geogit.common.http_testing import OneConnection
from geogit.common.net import free_port
from geogit.internal_api.app import create_app
from geogit.storage.testing import StorageProcess


@pytest.fixture
def url(database: Database, storage: StorageProcess) -> Iterator[str]:
    """The real app with one more route, which fails as a bug would."""
    address = f"127.0.0.1:{free_port()}"
    app = create_app(make_settings(database, storage, http_address=address))

    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/api/v4/broken", broken)
    host, port = address.split(":")
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=int(port), log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
        time.sleep(0.02)
    yield f"http://{address}"
    server.should_exit = True
    thread.join(timeout=30)


def test_a_bug_is_a_500_and_the_connection_survives(url: str) -> None:
    connection = OneConnection(url)
    try:
        for _ in range(3):
            failed = connection.request("GET", "/api/v4/broken")
            assert (failed.status, failed.json()) == (500, {"message": "500 Internal Server Error"})
            assert connection.request("GET", "/-/liveness").status == 200
    finally:
        connection.close()
