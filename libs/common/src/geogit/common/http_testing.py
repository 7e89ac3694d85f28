"""Test helper: several HTTP requests on one keep-alive connection, as a proxy's pool sends them.

A server that closes the connection after a failed request hands the next caller of a pooled
connection an error (the edge answered 502 to another user). `OneConnection` fails loudly if
the connection does not survive, instead of quietly opening a new one as clients do.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class OneConnection:
    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        self._connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        self._headers = headers or {}
        self._socket: object | None = None

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Answer:
        content = json.dumps(body).encode() if body is not None else None
        all_headers = {**self._headers, **(headers or {})}
        if content is not None:
            all_headers["Content-Type"] = "application/json"
        try:
            self._connection.request(method, path, body=content, headers=all_headers)
            if self._socket is None:
                self._socket = self._connection.sock
            assert self._connection.sock is self._socket, "the server closed the connection"
            response = self._connection.getresponse()
            answer = Answer(response.status, response.read())
        except (ConnectionError, http.client.HTTPException) as exc:
            raise AssertionError(f"the keep-alive connection broke: {exc!r}") from exc
        assert not response.will_close, "the server asked to close the connection"
        return answer

    def close(self) -> None:
        self._connection.close()
