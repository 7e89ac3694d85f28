"""Typed path parameters shared by the routers.

Strings in bodies and queries are `geogit.common.text.StorableText`, validated by pydantic;
path segments arrive percent-encoded and are checked here once decoded, by the same rule.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import unquote

from fastapi import Depends, Path

from geogit.common.text import UNSTORABLE_MESSAGE, is_storable
from geogit.internal_api.errors import bad_request

MAX_ID = 2**63 - 1

# A database id: out-of-range numbers are a 400, never an overflow in the driver.
Id = Annotated[int, Path(ge=1, le=MAX_ID)]


def _decoded(value: str, field: str) -> str:
    # EncodedPathSegments leaves string parameters percent-encoded exactly once.
    decoded = unquote(value)
    if not is_storable(decoded):
        raise bad_request(f"400 Bad request - {field} is invalid: {UNSTORABLE_MESSAGE}")
    return decoded


async def _project_ref(project_id: Annotated[str, Path(max_length=1024)]) -> str:
    return _decoded(project_id, "id")


async def _branch_name(name: Annotated[str, Path(max_length=1024)]) -> str:
    return _decoded(name, "name")


# GitLab's `:id` of a project: its number or its URL-encoded full path ("alice%2Fdemo").
ProjectRef = Annotated[str, Depends(_project_ref)]
BranchName = Annotated[str, Depends(_branch_name)]
