"""`git http-backend` behind a tiny CGI server: an independent smart-HTTP source for
replication tests, guarded by a header the way the primary's front door guards with its JWT."""

from __future__ import annotations

import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from geogit.common.net import free_port


def answer_with_http_backend(
    handler: BaseHTTPRequestHandler, project_root: Path, path: str, query: str, body: bytes
) -> None:
    """Answer `handler`'s request as `git http-backend` answers it (CGI: headers, then body)."""
    env = {
        **os.environ,
        "GIT_PROJECT_ROOT": str(project_root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "REQUEST_METHOD": handler.command,
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": handler.headers.get("Content-Type", ""),
        "HTTP_CONTENT_ENCODING": handler.headers.get("Content-Encoding", ""),
        "GIT_PROTOCOL": handler.headers.get("Git-Protocol", ""),
        "REMOTE_ADDR": "127.0.0.1",
    }
    result = subprocess.run(
        ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
    )
    head, _, payload = result.stdout.partition(b"\r\n\r\n")
    status, headers = 200, []
    for line in head.split(b"\r\n"):
        name, _, value = line.decode().partition(": ")
        if name.lower() == "status":
            status = int(value.split()[0])
        elif name:
            headers.append((name, value))
    handler.send_response(status)
    for name, value in headers:
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


class HttpBackendServer:
    def __init__(self, project_root: Path, header: str, secret: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests_seen = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._cgi(b"")

            def do_POST(self) -> None:
                self._cgi(self._read_body())

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = bytearray()
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        body += self.rfile.read(size)
                        self.rfile.readline()
                    self.rfile.readline()
                    return bytes(body)
                return self.rfile.read(int(self.headers.get("Content-Length", "0")))

            def _cgi(self, body: bytes) -> None:
                server.requests_seen += 1
                if self.headers.get(header) != secret:
                    self.send_error(401, "missing or wrong replication credentials")
                    return
                parts = urlsplit(self.path)
                answer_with_http_backend(self, project_root, parts.path, parts.query, body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._thread.join(5)
