"""geogit's pre-receive and post-receive hook: forwards what git gave it to storage.

git runs this on every push, so its start-up is a fixed cost of every push (DESIGN §9). It is
deliberately standard-library only and runs as `python -S -I` (no site-packages, no grpc, no
pydantic): Gitaly's gitaly-hooks is a tiny binary talking to its parent; this is the same
idea. Storage copies this file next to the hook scripts and listens on the Unix socket named
in the payload; the policy lives there (hook_server.py). Storage imports the framing below, so
both ends of the socket read the protocol from one place.

The protocol, one connection per hook run. A frame is a kind byte, a 4-byte big-endian
length and that many bytes.
  hook → storage:  HEADER (JSON: hook, args, payload, object dirs, push options),
                   STDIN frames, then an empty STDIN frame (end of input);
  storage → hook:  STDOUT and STDERR frames, then one EXIT frame (the status in ASCII).
Anything else, or a connection that ends before EXIT, refuses the push: git then discards
the quarantined objects.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import socket
import struct
import sys

PAYLOAD_ENV = "GEOGIT_HOOKS_PAYLOAD"
HEADER = b"h"
STDIN = b"i"
STDOUT = b"o"
STDERR = b"e"
EXIT = b"x"
FRAME = struct.Struct(">cI")
MAX_FRAME_BYTES = 1024 * 1024
CHUNK_SIZE = 64 * 1024
CONNECT_TIMEOUT_SECONDS = 10.0


def encode_frame(kind: bytes, data: bytes = b"") -> bytes:
    return FRAME.pack(kind, len(data)) + data


class HookRefused(Exception):
    """The hook cannot do its job; git must refuse the push."""


def _payload(raw: str) -> dict[str, object]:
    try:
        payload = json.loads(base64.b64decode(raw, validate=True))
    except (ValueError, binascii.Error) as exc:
        raise HookRefused(f"invalid {PAYLOAD_ENV}: {exc}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("socket_path"), str):
        raise HookRefused(f"invalid {PAYLOAD_ENV}: no storage socket")
    return payload


def _header(name: str, args: list[str], raw_payload: str) -> bytes:
    count = int(os.environ.get("GIT_PUSH_OPTION_COUNT", "0") or 0)
    alternates = os.environ.get("GIT_ALTERNATE_OBJECT_DIRECTORIES", "")
    header = {
        "hook": name,
        "args": args,
        "payload": raw_payload,
        "object_directory": os.environ.get("GIT_OBJECT_DIRECTORY", ""),
        "alternate_object_directories": [d for d in alternates.split(":") if d],
        "push_options": [os.environ.get(f"GIT_PUSH_OPTION_{i}", "") for i in range(count)],
    }
    return json.dumps(header).encode()


def _send_request(sock: socket.socket, header: bytes) -> None:
    sock.sendall(encode_frame(HEADER, header))
    while chunk := sys.stdin.buffer.read(CHUNK_SIZE):
        sock.sendall(encode_frame(STDIN, chunk))
    sock.sendall(encode_frame(STDIN))


def _read_exactly(stream: socket.SocketIO, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            raise HookRefused("storage closed the hook connection before answering")
        data += chunk
    return bytes(data)


def _relay_answer(sock: socket.socket) -> int:
    stream = socket.SocketIO(sock, "rb")
    outputs = {STDOUT: sys.stdout.buffer, STDERR: sys.stderr.buffer}
    while True:
        kind, size = FRAME.unpack(_read_exactly(stream, FRAME.size))
        if size > MAX_FRAME_BYTES:
            raise HookRefused("storage sent an oversized frame")
        data = _read_exactly(stream, size)
        if kind == EXIT:
            return int(data)
        if kind not in outputs:
            raise HookRefused(f"storage sent an unknown frame {kind!r}")
        outputs[kind].write(data)
        outputs[kind].flush()


def run(name: str, args: list[str], raw_payload: str) -> int:
    payload = _payload(raw_payload)
    header = _header(name, args, raw_payload)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(CONNECT_TIMEOUT_SECONDS)
        try:
            sock.connect(str(payload["socket_path"]))
        except OSError as exc:
            raise HookRefused(f"cannot reach storage's hook socket ({exc.strerror})") from exc
        sock.settimeout(None)
        # Storage may refuse before it has read everything: its answer says why.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            _send_request(sock, header)
        return _relay_answer(sock)


def failure_message(hook: str, reason: str) -> str:
    """After post-receive the refs have moved already: say so rather than "refused"."""
    if hook == "post-receive":
        return f"geogit: warning: the push landed but was not recorded ({reason})"
    return f"geogit: push refused: {reason}"


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: hook_client.py <hook> [args...]", file=sys.stderr)
        return 2
    try:
        return run(argv[1], argv[2:], os.environ.get(PAYLOAD_ENV, ""))
    except (HookRefused, OSError, ValueError) as exc:
        print(failure_message(argv[1], str(exc)), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
