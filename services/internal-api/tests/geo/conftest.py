"""A secondary site per test module, beside the session's primary (see secondary_support)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from internal_api_support import ServerInfo
from secondary_support import Secondary, running_secondary


@pytest.fixture(scope="module")
def secondary(
    server: ServerInfo, admin_token: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Secondary]:
    with running_secondary(server, admin_token, tmp_path_factory.mktemp("secondary")) as site:
        yield site
