"""What a request must look like before any route sees it (DESIGN §8: bad input, clear 4xx).

Dot segments are refused rather than resolved: httpx and other clients normalise them, so
`/api/v4/projects/../internal/allowed` would otherwise be matched as a public path here and
arrive as an internal one upstream. Nothing is forwarded for a refused request.
"""

from __future__ import annotations

import unicodedata

from geogit.edge_proxy.asgi import Request
from geogit.edge_proxy.config import EdgeProxySettings


def refusal(request: Request, settings: EdgeProxySettings) -> tuple[int, str] | None:
    """The status and message to refuse `request` with, or None if it may be routed."""
    url_bytes = len(request.scope["raw_path"]) + len(request.scope["query_string"])
    if url_bytes > settings.max_url_bytes:
        return 414, f"URL longer than {settings.max_url_bytes} bytes."
    header_bytes = sum(len(name) + len(value) + 4 for name, value in request.headers)
    if header_bytes > settings.max_header_bytes:
        return 431, f"Request headers larger than {settings.max_header_bytes} bytes."
    return _path_problem(request.path)


def _path_problem(path: str) -> tuple[int, str] | None:
    if not path.startswith("/"):
        return 400, "The request path must start with '/'."
    if any(unicodedata.category(char) == "Cc" for char in path) or "\\" in path:
        return 400, "The request path contains control characters or backslashes."
    segments = path[1:].split("/")
    if segments[-1] == "":
        segments.pop()  # one trailing slash is harmless
    for segment in segments:
        if segment in (".", ".."):
            return 400, "The request path must not contain '.' or '..' segments."
        if not segment:
            return 400, "The request path must not contain empty segments ('//')."
    return None
