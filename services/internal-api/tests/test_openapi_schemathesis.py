"""A bounded schemathesis run against the app's own OpenAPI document, as the admin.

Every operation gets a handful of generated requests, valid (positive) and invalid (negative);
none may be answered with a server error, and documented responses must match their schema.
(schemathesis' pytest plugin does not run under pytest 9, so operations are driven directly.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from internal_api_support import (
    Database,
    ServerInfo,
    internal_headers,
    make_settings,
    serve_in_thread,
)
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from geogit.common.net import free_port
from geogit.internal_api.bootstrap import bootstrap_admin
from geogit.storage.testing import StorageProcess

EXAMPLES_PER_OPERATION = 6
# Internal endpoints answer only the internal JWT; they have their own tests.
INTERNAL_PREFIXES = (
    "/api/v4/internal/",
    "/api/v4/geo/proxy",
    "/api/v4/geo/events",
    "/api/v4/geo/projects/",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerInfo, str]]:
    """A site of its own: generated requests block users, revoke tokens and delete projects,
    which must not disturb the other tests' admin and data."""
    database = Database()
    database.create()
    port = free_port()
    storage = StorageProcess(
        tmp_path_factory.mktemp("schemathesis") / "repositories", f"http://127.0.0.1:{port}"
    )
    storage.start()
    try:
        settings = make_settings(database, storage, http_address=f"127.0.0.1:{port}")
        with serve_in_thread(settings) as server:
            admin = asyncio.run(
                bootstrap_admin(database.url, "primary", "root", "root@example.com", "p" * 12)
            )
            yield server, admin.token
    finally:
        storage.stop()
        database.drop()


def test_admin_api_never_fails_on_generated_requests(site: tuple[ServerInfo, str]) -> None:
    server, admin_token = site
    schema = schemathesis.openapi.from_url(f"{server.url}/api/v4/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    admin_api = [op for op in operations if not op.path.startswith(INTERNAL_PREFIXES)]
    assert len(admin_api) > 30
    for operation in admin_api:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(mode))
            @hypothesis.settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: schemathesis.Case) -> None:
                case.call_and_validate(
                    base_url=server.url,
                    headers={"PRIVATE-TOKEN": admin_token},
                    checks=[not_a_server_error, response_schema_conformance],
                )

            try:
                run()
            except hypothesis.errors.Unsatisfiable:
                # An operation without parameters or body has no invalid input to try.
                assert mode is GenerationMode.NEGATIVE, operation.label


def test_internal_api_never_fails_on_generated_requests(site: tuple[ServerInfo, str]) -> None:
    server, _ = site
    schema = schemathesis.openapi.from_url(f"{server.url}/api/v4/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    internal = [op for op in operations if op.path.startswith(INTERNAL_PREFIXES)]
    assert len(internal) == 15  # with POST /api/v4/internal/geo/reports
    for operation in internal:

        @given(case=operation.as_strategy(GenerationMode.POSITIVE))
        @hypothesis.settings(
            max_examples=EXAMPLES_PER_OPERATION * 2,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=server.url,
                headers=internal_headers(),
                checks=[not_a_server_error, response_schema_conformance],
            )

        run()
