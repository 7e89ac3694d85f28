"""A bounded schemathesis run against the app's own OpenAPI document, as the admin.

Every operation gets generated requests: valid (positive), invalid (negative), and valid ones
with one string made hostile (a NUL, a lone surrogate, a direction override, LIKE wildcards...:
hypothesis alone rarely draws them in a few examples). None may be answered with a server
error, and documented responses must match their schema. 40 admin operations x (8 positive +
8 negative + 12 hostile) examples and 14 internal ones x (8 + 8), ~1340 requests in about a
minute on an idle CI machine.
(schemathesis' pytest plugin does not run under pytest 9, so operations are driven directly.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
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

EXAMPLES_PER_OPERATION = 8
HOSTILE_EXAMPLES_PER_OPERATION = 12
# Text PostgreSQL cannot store, text that misleads readers or parsers, and LIKE wildcards.
ODD_TEXT = (
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfff",
    "\u202e",
    "\ufeff",
    "\U0001f600",
    "e\u0301",
    "\x7f",
    "\uffff",
    "\u0085",
    "%",
    "_",
    "\\",
)
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


def _string_slots(value: Any, location: str) -> list[tuple[Any, Any, str]]:
    """Every (container, key) holding a string in a generated body, query or path."""
    slots = []
    items = value.items() if isinstance(value, dict) else enumerate(value or [])
    for key, item in items:
        if isinstance(item, str):
            slots.append((value, key, location))
        elif isinstance(item, (dict, list)):
            slots.extend(_string_slots(item, location))
    return slots


def _with_odd_text(case: schemathesis.Case, odd: str, pick: int) -> schemathesis.Case:
    """`case` with `odd` spliced into one of its strings. A lone surrogate only goes into a
    JSON body: a URL cannot carry one (the client would fail to encode it, not the server)."""
    slots = _string_slots(case.body, "body") if isinstance(case.body, (dict, list)) else []
    if not any(0xD800 <= ord(char) <= 0xDFFF for char in odd):
        slots += _string_slots(case.query, "query") + _string_slots(case.path_parameters, "path")
    if slots:
        container, key, _ = slots[pick % len(slots)]
        text = container[key]
        container[key] = text[:1] + odd + text[1:]
    return case


def _run(
    operation: Any,
    strategy: st.SearchStrategy[schemathesis.Case],
    examples: int,
    call: Callable[[schemathesis.Case], None],
) -> None:
    @given(case=strategy)
    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        call(case)

    run()


def _hostile(operation: Any) -> st.SearchStrategy[schemathesis.Case]:
    return st.builds(
        _with_odd_text,
        operation.as_strategy(GenerationMode.POSITIVE),
        st.sampled_from(ODD_TEXT),
        st.integers(0, 1000),
    )


def test_admin_api_never_fails_on_generated_requests(site: tuple[ServerInfo, str]) -> None:
    server, admin_token = site
    schema = schemathesis.openapi.from_url(f"{server.url}/api/v4/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    admin_api = [op for op in operations if not op.path.startswith(INTERNAL_PREFIXES)]
    assert len(admin_api) > 30

    def call(case: schemathesis.Case) -> None:
        case.call_and_validate(
            base_url=server.url,
            headers={"PRIVATE-TOKEN": admin_token},
            checks=[not_a_server_error, response_schema_conformance],
        )

    for operation in admin_api:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _run(operation, operation.as_strategy(mode), EXAMPLES_PER_OPERATION, call)
            except hypothesis.errors.Unsatisfiable:
                # An operation without parameters or body has no invalid input to try.
                assert mode is GenerationMode.NEGATIVE, operation.label
        _run(operation, _hostile(operation), HOSTILE_EXAMPLES_PER_OPERATION, call)


def test_internal_api_never_fails_on_generated_requests(site: tuple[ServerInfo, str]) -> None:
    server, _ = site
    schema = schemathesis.openapi.from_url(f"{server.url}/api/v4/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    internal = [op for op in operations if op.path.startswith(INTERNAL_PREFIXES)]
    assert len(internal) == 15  # with POST /api/v4/internal/geo/reports

    def call(case: schemathesis.Case) -> None:
        case.call_and_validate(
            base_url=server.url,
            headers=internal_headers(),
            checks=[not_a_server_error, response_schema_conformance],
        )

    for operation in internal:
        strategy = operation.as_strategy(GenerationMode.POSITIVE)
        _run(operation, strategy, EXAMPLES_PER_OPERATION, call)
        _run(operation, _hostile(operation), EXAMPLES_PER_OPERATION, call)
