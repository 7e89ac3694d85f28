"""Strings a caller may send: the one check that text can be stored and passed on.

PostgreSQL's text cannot hold NUL, and a lone surrogate (which JSON's `"\\ud800"` escape can
carry) cannot be encoded as UTF-8 at all; either reached the driver and became a 500. Every
string a request carries is typed `StorableText` so such input is a 400 naming the field.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = "must not contain NUL characters or unpaired surrogates"


def check_storable(value: str) -> str:
    """Return `value`, or raise the validation error FastAPI answers with a 400."""
    if _UNSTORABLE.search(value):
        raise PydanticCustomError("unstorable_text", UNSTORABLE_MESSAGE)
    return value


def is_storable(value: str) -> bool:
    return _UNSTORABLE.search(value) is None


StorableText = Annotated[str, AfterValidator(check_storable)]
