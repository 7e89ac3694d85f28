"""Typed path parameters shared by the routers."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import unquote

from fastapi import Depends, Path

MAX_ID = 2**63 - 1

# A database id: out-of-range numbers are a 400, never an overflow in the driver.
Id = Annotated[int, Path(ge=1, le=MAX_ID)]


def _project_ref(project_id: Annotated[str, Path(max_length=1024)]) -> str:
    # EncodedPathSegments leaves string parameters percent-encoded exactly once.
    return unquote(project_id)


def _branch_name(name: Annotated[str, Path(max_length=1024)]) -> str:
    return unquote(name)


# GitLab's `:id` of a project: its number or its URL-encoded full path ("alice%2Fdemo").
ProjectRef = Annotated[str, Depends(_project_ref)]
BranchName = Annotated[str, Depends(_branch_name)]
