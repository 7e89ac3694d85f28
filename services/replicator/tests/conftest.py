"""One secondary site for the session: its storage process, its internal API on PostgreSQL,
and the primary it replicates from (see replicator_site.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from replicator_site import SecondarySite


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecondarySite]:
    with SecondarySite(tmp_path_factory.mktemp("secondary")).running() as running:
        yield running
