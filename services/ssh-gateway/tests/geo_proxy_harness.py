"""A `GIT_SSH_COMMAND` that serves the command with `proxy_to_primary`, as the gateway would.

git runs `<this script> [-o SendEnv=GIT_PROTOCOL] [-p port] host "git-upload-pack 'path'"`
(with GIT_SSH_VARIANT=ssh, and GIT_PROTOCOL in the environment for v2). The script plays the
gateway's part after a `300 geo_proxy_to_primary` answer: its stdio is the SSH channel, the
primary's URL and an Authorization header come from the environment the test sets, and its
exit status is the command's. With GEOGIT_TEST_PEAK_RSS_FILE set it writes its peak resident
memory (VmHWM, in KiB) there before exiting.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
from pathlib import Path

from geogit.ssh_gateway.commands import parse_command
from geogit.ssh_gateway.geo_proxy import new_http_client, proxy_to_primary

PRIMARY_URL = "GEOGIT_TEST_PRIMARY_URL"
AUTHORIZATION = "GEOGIT_TEST_AUTHORIZATION"
PEAK_RSS_FILE = "GEOGIT_TEST_PEAK_RSS_FILE"
CHUNK_SIZE = 64 * 1024


def git_ssh_env(primary_url: str, authorization: str) -> dict[str, str]:
    """The environment for git to proxy its SSH commands through this script."""
    return {
        "GIT_SSH_COMMAND": f"{shlex.quote(sys.executable)} {shlex.quote(__file__)}",
        "GIT_SSH_VARIANT": "ssh",
        PRIMARY_URL: primary_url,
        AUTHORIZATION: authorization,
    }


class StdioStreams:
    """The client's side: this process's stdio (blocking calls in threads, since the fds are
    shared with git and must not be switched to non-blocking mode)."""

    async def read(self) -> bytes:
        return await asyncio.to_thread(os.read, 0, CHUNK_SIZE)

    async def write_stdout(self, data: bytes) -> None:
        await asyncio.to_thread(_write_all, 1, data)

    async def write_stderr(self, data: bytes) -> None:
        await asyncio.to_thread(_write_all, 2, data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def serve(command_line: str) -> int:
    command = parse_command(command_line)
    action = command.action
    if action != "git-upload-pack" and action != "git-receive-pack":
        raise SystemExit(f"harness: not a proxied command: {command_line!r}")
    async with new_http_client(timeout=60) as http:
        return await proxy_to_primary(
            action,
            f"{os.environ[PRIMARY_URL]}/{command.project}.git",
            {"Authorization": os.environ[AUTHORIZATION]},
            os.environ.get("GIT_PROTOCOL", ""),
            StdioStreams(),
            http,
        )


def peak_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> int:
    status = asyncio.run(serve(sys.argv[-1]))
    if peak_file := os.environ.get(PEAK_RSS_FILE):
        Path(peak_file).write_text(f"{peak_rss_kib()}\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
