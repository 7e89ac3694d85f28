"""geogit's `uploadpack.packObjectsHook`: asks the storage that spawned git for the pack.

git upload-pack runs `<hook> git [--shallow-file ''] pack-objects <args>` in the repository
with the object list on stdin, and reads the pack from the hook's stdout and progress from its
stderr. This file sends the arguments, the repository and stdin to storage over its Unix
socket and copies the answer back: stdout frames are spliced from the socket to git's pipe
without passing through Python, stderr frames are written as they come, and the exit status
is git's. Any failure (no socket, refused request, a connection cut in mid-frame) exits
non-zero, so upload-pack fails the fetch rather than send a partial pack.

Storage copies this file into its runtime directory and runs it as `python -S -I <file>`: the
standard library only, nothing from geogit, so it starts in a few milliseconds (DESIGN §9).
Storage imports it for the protocol's constants, the one definition of the wire format.

Wire format. Request (hook → storage): frames of a 4-byte big-endian length and a body; the
first is a JSON object {"token", "args", "repository"}, then stdin in frames, then an empty
frame. Answer (storage → hook): frames of a kind byte, a 4-byte length and a body.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys

SOCKET_ENV = "GEOGIT_PACK_OBJECTS_SOCKET"
TOKEN_ENV = "GEOGIT_PACK_OBJECTS_TOKEN"
REQUEST_FRAME = struct.Struct(">I")
ANSWER_FRAME = struct.Struct(">cI")
MAX_HEADER_BYTES = 64 * 1024
MAX_STDIN_FRAME_BYTES = 1024 * 1024
STDOUT = b"1"
STDERR = b"2"
EXIT = b"x"  # body: the exit status in ASCII
ERROR = b"!"  # body: why storage refused or failed the request (UTF-8)
_CHUNK = 1024 * 1024
_NAME = "geogit pack-objects hook"


class HookError(Exception):
    pass


def _recv_exact(sock: socket.socket, length: int) -> bytes:
    data = bytearray()
    while len(data) < length:
        chunk = sock.recv(min(length - len(data), _CHUNK))
        if not chunk:
            raise HookError("storage closed the connection in the middle of a frame")
        data += chunk
    return bytes(data)


def _copy_out(sock: socket.socket, fd: int, length: int) -> None:
    """`length` bytes from the socket to `fd`: spliced when `fd` is a pipe (git's is)."""
    splice = getattr(os, "splice", None)
    while length:
        moved = 0
        if splice is not None:
            try:
                moved = splice(sock.fileno(), fd, min(length, _CHUNK))
            except OSError:
                splice = None  # not a pipe (a file, a terminal): copy instead
                continue
            if moved == 0:
                raise HookError("storage closed the connection in the middle of a frame")
        else:
            chunk = sock.recv(min(length, _CHUNK))
            if not chunk:
                raise HookError("storage closed the connection in the middle of a frame")
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
            moved = len(chunk)
        length -= moved


def _send_frame(sock: socket.socket, body: bytes) -> None:
    sock.sendall(REQUEST_FRAME.pack(len(body)) + body)


def run(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "git":
        raise HookError(f"expected 'git ...' arguments, got {argv[:2]!r}")
    address, token = os.environ.get(SOCKET_ENV), os.environ.get(TOKEN_ENV)
    if not address or not token:
        raise HookError(f"{SOCKET_ENV} and {TOKEN_ENV} must be set")
    header = json.dumps({"token": token, "args": argv[1:], "repository": os.getcwd()}).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(address)
        except OSError as exc:
            raise HookError(f"cannot reach storage at {address}: {exc}") from exc
        try:
            _send_frame(sock, header)
            while chunk := os.read(0, MAX_STDIN_FRAME_BYTES):
                _send_frame(sock, chunk)
            _send_frame(sock, b"")
        except (BrokenPipeError, ConnectionResetError):
            pass  # storage stopped reading: its answer says why
        while True:
            kind, length = ANSWER_FRAME.unpack(_recv_exact(sock, ANSWER_FRAME.size))
            if kind == STDOUT:
                _copy_out(sock, 1, length)
            elif kind == STDERR:
                os.write(2, _recv_exact(sock, length))
            elif kind == EXIT:
                return int(_recv_exact(sock, length))
            elif kind == ERROR:
                raise HookError(_recv_exact(sock, length).decode(errors="replace"))
            else:
                raise HookError(f"unknown frame kind {kind!r} from storage")


def main() -> None:
    try:
        code = run(sys.argv[1:])
    except (HookError, OSError, ValueError) as exc:
        sys.stderr.write(f"{_NAME}: {exc}\n")
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
